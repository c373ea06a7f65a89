"""prometheus-barman-exporter's names, labels and meaning, served from plain state."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from barman_supervisor.barman.commands import Check
from barman_supervisor.barman.records import Backup
from barman_supervisor.status.health import Limits
from barman_supervisor.status.metrics import registry
from barman_supervisor.status.state import State

NOW = 1_800_000_000.0
HOUR = 3600.0
LIMITS = Limits(
    postgres_max_silence=35, backup_max_age=36 * HOUR, wal_max_lag_bytes=256 << 20, wal_max_age=None
)
# What the exporter serves (barman_exporter.py, 1.0.x): each family, its labels.
EXPORTER_FAMILIES = {
    "barman_up": {"server", "check"},
    "barman_last_backup": {"server"},
    "barman_first_backup": {"server"},
    "barman_backups_total": {"server"},
    "barman_backups_failed": {"server"},
    "barman_backup_size": {"server", "number"},
    "barman_backup_wal_size": {"server", "number"},
    "barman_last_backup_copy_time": {"server"},
    "barman_metrics_update": {"server"},
}


def scrape(state: State) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The exporter's families: each sample's labels (sorted pairs) and value, by name."""
    text = generate_latest(registry(state, lambda _server: LIMITS, clock=lambda: NOW)).decode()
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("barman_") and not family.name.startswith("barman_supervisor_"):
            assert family.type == "gauge", family.name
            families[family.name] = {
                tuple(sorted(sample.labels.items())): sample.value for sample in family.samples
            }
    return families


def catalogue() -> State:
    """A server with two DONE backups, one waiting for its WAL, one FAILED and one running."""
    state = State(["pg", "empty"])
    state.record_backups(
        "pg",
        [
            Backup("RUN", "STARTED", None, None, begin_time=NOW - 60),
            Backup("WAIT", "WAITING_FOR_WALS", None, 300, begin_time=NOW - HOUR),
            Backup("FAIL", "FAILED", None, None, begin_time=NOW - 2 * HOUR),
            Backup(
                "NEW",
                "DONE",
                NOW - 23 * HOUR,
                2000,
                40,
                begin_time=NOW - 24 * HOUR,
                copy_time_s=9.5,
            ),
            Backup(
                "OLD", "DONE", NOW - 47 * HOUR, 1000, 70, begin_time=NOW - 48 * HOUR, copy_time_s=4
            ),
        ],
    )
    state.record_checks(
        "pg", [Check("postgresql", True, ""), Check("backup_maximum_age", False, "too old")]
    )
    return state


def test_every_exporter_family_is_served_with_its_labels() -> None:
    families = scrape(catalogue())

    assert set(families) == set(EXPORTER_FAMILIES)
    for name, samples in families.items():
        for labels in samples:
            assert {key for key, _ in labels} == EXPORTER_FAMILIES[name], name


def test_backup_sizes_are_numbered_from_the_newest_done_backup() -> None:
    families = scrape(catalogue())

    assert families["barman_backup_size"] == {
        (("number", "1"), ("server", "pg")): 2000,
        (("number", "2"), ("server", "pg")): 1000,
    }
    assert families["barman_backup_wal_size"] == {
        (("number", "1"), ("server", "pg")): 40,
        (("number", "2"), ("server", "pg")): 70,
    }
    assert families["barman_last_backup_copy_time"][(("server", "pg"),)] == 9.5


def test_counts_are_the_exporters_done_and_failed_only() -> None:
    families = scrape(catalogue())

    assert families["barman_backups_total"] == {(("server", "pg"),): 3, (("server", "empty"),): 0}
    assert families["barman_backups_failed"] == {(("server", "pg"),): 1, (("server", "empty"),): 0}


def test_first_and_last_backup_are_start_times_of_what_barman_status_counts() -> None:
    """Barman's `status` counts a backup waiting for its WAL; the exporter reads the backup ID,
    which is when the backup started."""
    families = scrape(catalogue())

    assert families["barman_last_backup"] == {(("server", "pg"),): NOW - HOUR}
    assert families["barman_first_backup"] == {(("server", "pg"),): NOW - 48 * HOUR}


def test_a_server_with_no_backup_has_zero_copy_time_and_no_backup_times() -> None:
    families = scrape(catalogue())

    assert families["barman_last_backup_copy_time"][(("server", "empty"),)] == 0
    assert (("server", "empty"),) not in families["barman_last_backup"]
    assert (("server", "empty"),) not in families["barman_first_backup"]


def test_a_backup_without_a_recorded_copy_time_has_none() -> None:
    state = State(["pg"])
    state.record_backups("pg", [Backup("B", "DONE", NOW - 10, 100, 0, begin_time=NOW - 20)])

    assert scrape(state)["barman_last_backup_copy_time"] == {}


def test_checks_are_barman_up_and_their_time_is_the_update_time() -> None:
    state = catalogue()
    families = scrape(state)

    assert families["barman_up"] == {
        (("check", "backup_maximum_age"), ("server", "pg")): 0,
        (("check", "postgresql"), ("server", "pg")): 1,
    }
    checked_at = state.server("pg").checks_at
    assert families["barman_metrics_update"] == {(("server", "pg"),): checked_at}
