"""The daemon's own metrics over plain state: ages in seconds beside the timestamps, and each
server's readiness limits, so alert rules follow the daemon's settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from barman_supervisor.barman.records import Backup
from barman_supervisor.config.shard import Shard, ownership, shard_status
from barman_supervisor.postgres.connection import SlotState
from barman_supervisor.status.health import Limits
from barman_supervisor.status.metrics import registry
from barman_supervisor.status.state import DrillResult, State

NOW = 1_800_000_000.0
HOUR = 3600.0
LIMITS = Limits(
    postgres_max_silence=35,
    backup_max_age=36 * HOUR,
    wal_max_lag_bytes=256 << 20,
    wal_max_age=None,
    disk_min_free_bytes=512 << 20,
)


def scrape(
    state: State, limits: Callable[[str], Limits] = lambda _server: LIMITS
) -> dict[tuple[str, str], float]:
    """Each sample of the ``barman_supervisor_`` families, by name and server, at ``NOW``."""
    text = generate_latest(registry(state, limits, clock=lambda: NOW)).decode()
    return {
        (sample.name.removeprefix("barman_supervisor_"), sample.labels.get("server", "")): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("barman_supervisor_")
    }


def test_backup_ages_count_from_the_end_of_the_newest_done_backup_of_each_kind() -> None:
    state = State(["pg", "idle"])
    state.record_backups(
        "pg",
        [
            Backup("RUNNING", "STARTED", None, None, begin_time=NOW - 60),
            Backup("I2", "DONE", NOW - 2 * HOUR, 10, begin_time=NOW - 3 * HOUR, parent_id="I1"),
            Backup("I1", "DONE", NOW - 26 * HOUR, 10, begin_time=NOW - 27 * HOUR, parent_id="F"),
            Backup("F", "DONE", NOW - 50 * HOUR, 100, begin_time=NOW - 51 * HOUR),
            Backup("OLD", "DONE", NOW - 200 * HOUR, 100, begin_time=NOW - 201 * HOUR),
        ],
    )

    samples = scrape(state)

    assert samples[("last_backup_age_seconds", "pg")] == 2 * HOUR
    assert samples[("last_full_backup_age_seconds", "pg")] == 50 * HOUR
    assert samples[("last_incremental_backup_age_seconds", "pg")] == 2 * HOUR
    assert samples[("last_backup_timestamp_seconds", "pg")] == NOW - 2 * HOUR
    for family in ("last_backup", "last_full_backup", "last_incremental_backup"):
        assert (f"{family}_age_seconds", "idle") not in samples


def test_no_incremental_age_without_an_incremental_backup() -> None:
    state = State(["pg"])
    state.record_backups(
        "pg",
        [
            Backup("FAILED", "FAILED", NOW - 10, None, parent_id="F"),
            Backup("F", "DONE", NOW - HOUR, 100, begin_time=NOW - 2 * HOUR),
        ],
    )

    samples = scrape(state)

    assert samples[("last_full_backup_age_seconds", "pg")] == HOUR
    assert ("last_incremental_backup_age_seconds", "pg") not in samples


def test_drill_age_counts_from_the_last_drill_whatever_its_result() -> None:
    state = State(["pg", "passed", "stopped"])
    state.record_drill("pg", DrillResult(False, "query failed", "pg", started_at=NOW - 5 * HOUR))
    state.record_drill("passed", DrillResult(True, "", "passed", started_at=NOW - HOUR))
    stopped = DrillResult(False, "stopped", "stopped", started_at=NOW - 60, interrupted=True)
    state.record_drill("stopped", stopped)

    samples = scrape(state)

    assert samples[("last_drill_age_seconds", "pg")] == 5 * HOUR
    assert samples[("last_drill_success", "pg")] == 0
    assert samples[("last_drill_age_seconds", "passed")] == HOUR
    # A drill cut short by a stop says nothing, as for its other series.
    assert ("last_drill_age_seconds", "stopped") not in samples


def test_offsite_age_only_for_a_server_with_a_copied_backup() -> None:
    state = State(["pg", "fresh", "local"])
    state.record_offsite("pg", {"newest_copied_backup_end": NOW - 3 * HOUR, "wal_owed": 0})
    state.record_offsite("fresh", {"newest_copied_backup_end": None, "wal_owed": 2})

    samples = scrape(state)

    assert samples[("offsite_last_backup_age_seconds", "pg")] == 3 * HOUR
    assert samples[("offsite_last_backup_timestamp_seconds", "pg")] == NOW - 3 * HOUR
    assert ("offsite_last_backup_age_seconds", "fresh") not in samples
    assert ("offsite_wal_files_owed", "fresh") in samples
    assert ("offsite_last_backup_age_seconds", "local") not in samples


def test_limits_are_served_per_server_and_an_unset_one_is_absent() -> None:
    state = State(["pg"])

    samples = scrape(state)

    assert samples[("backup_max_age_seconds", "pg")] == 36 * HOUR
    assert samples[("disk_min_free_bytes", "pg")] == 512 << 20
    assert samples[("wal_max_lag_bytes", "pg")] == 256 << 20
    for unset in (
        "wal_max_age_seconds",
        "offsite_backup_max_delay_seconds",
        "offsite_wal_max_lag_seconds",
        "disk_free_bytes",  # no probe yet
    ):
        assert (unset, "pg") not in samples


def test_limits_follow_each_servers_settings() -> None:
    """The limits callable is asked per server: a server's BACKUP_MAX_AGE and off-site store
    reach its own series only."""
    state = State(["pg", "reports"])
    state.record_probe(
        "pg",
        receive_wal_running=True,
        wal_received_at=None,
        wal_archived_at=None,
        disk_free_bytes=40 << 30,
    )
    offsite = Limits(
        postgres_max_silence=35,
        backup_max_age=8 * HOUR,
        wal_max_lag_bytes=1 << 30,
        wal_max_age=900,
        disk_min_free_bytes=1 << 30,
        offsite_backup_max_delay=HOUR,
        offsite_wal_max_lag=600,
    )
    samples = scrape(state, lambda name: offsite if name == "pg" else LIMITS)

    assert samples[("disk_free_bytes", "pg")] == 40 << 30
    assert samples[("backup_max_age_seconds", "pg")] == 8 * HOUR
    assert samples[("wal_max_age_seconds", "pg")] == 900
    assert samples[("offsite_backup_max_delay_seconds", "pg")] == HOUR
    assert samples[("offsite_wal_max_lag_seconds", "pg")] == 600
    assert samples[("backup_max_age_seconds", "reports")] == 36 * HOUR
    assert ("offsite_wal_max_lag_seconds", "reports") not in samples


def test_the_slots_safe_wal_size_and_wal_status_are_served() -> None:
    """Every wal_status is served, 1 for the slot's own, so a change shows at once; no safe size
    while the primary sets no limit (max_slot_wal_keep_size = -1)."""
    state = State(["pg", "unlimited"])
    slot = SlotState(exists=True, active=False, wal_status="unreserved", lag_bytes=9 << 30)
    state.postgres_seen("pg", replace(slot, safe_wal_size=-(1 << 20)))
    state.postgres_seen("unlimited", replace(slot, wal_status="extended"))

    text = generate_latest(registry(state, lambda _server: LIMITS, clock=lambda: NOW)).decode()
    samples = [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("barman_supervisor_slot_")
    ]
    statuses = {
        (s.labels["server"], s.labels["wal_status"]): s.value
        for s in samples
        if s.name == "barman_supervisor_slot_wal_status"
    }
    assert statuses == {
        ("pg", "reserved"): 0,
        ("pg", "extended"): 0,
        ("pg", "unreserved"): 1,
        ("pg", "lost"): 0,
        ("unlimited", "reserved"): 0,
        ("unlimited", "extended"): 1,
        ("unlimited", "unreserved"): 0,
        ("unlimited", "lost"): 0,
    }
    safe = {s.labels["server"]: s.value for s in samples if "safe_wal_size" in s.name}
    assert safe == {"pg": -(1 << 20)}
    assert scrape(state)[("wal_lag_bytes", "pg")] == 9 << 30


def test_the_recovery_point_is_served_for_wals_and_the_store() -> None:
    """How old the newest WAL is in ``wals/`` and, for a server that copies off-site, in the
    store; a server with nothing archived has no sample."""
    state = State(["pg", "idle"])
    state.record_probe(
        "pg",
        receive_wal_running=True,
        wal_received_at=NOW - 1,
        wal_archived_at=NOW - 2,
        disk_free_bytes=40 << 30,
        wal_newest_at=NOW - 3,
    )
    state.record_offsite("pg", {"url": "s3://b/p", "newest_wal_at": NOW - 5})
    text = generate_latest(registry(state, lambda _server: LIMITS, clock=lambda: NOW)).decode()
    ages = {
        (sample.labels["server"], sample.labels["where"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "barman_supervisor_wal_newest_age_seconds"
    }
    assert ages == {("pg", "local"): 3, ("pg", "offsite"): 5}
    assert state.server("idle").recovery_points() == {"local": None}


def test_sharded_every_servers_owner_and_this_replicas_claims_are_served() -> None:
    """Every configured server has an owner series on every replica; claims only for the
    servers this replica owns (0 while it waits for another to let go)."""
    names = ["pg1", "pg2", "pg3"]
    shard = Shard(0, 2, "from SHARD_INDEX 0")
    owners = ownership(names, shard)
    mine = [entry.server for entry in owners if entry.mine]
    assert mine and len(mine) < len(names), "the test needs servers on both shards"
    state = State(mine)
    state.set_shard(shard_status(shard, owners))
    for index, name in enumerate(mine):
        state.record_claim(name, index == 0, None if index == 0 else "backend 7")
    text = generate_latest(registry(state, lambda _server: LIMITS, clock=lambda: NOW)).decode()
    samples = [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]
    owner_series = {
        labels["server"]: labels["shard"]
        for name, labels, _ in samples
        if name == "barman_supervisor_shard_owner"
    }
    assert owner_series == {entry.server: str(entry.owner) for entry in owners}
    claims = {
        labels["server"]: value
        for name, labels, value in samples
        if name == "barman_supervisor_claim_held"
    }
    assert claims == {name: (1 if index == 0 else 0) for index, name in enumerate(mine)}


def test_unsharded_no_shard_series() -> None:
    assert not [key for key in scrape(State(["pg"])) if key[0] in ("shard_owner", "claim_held")]
