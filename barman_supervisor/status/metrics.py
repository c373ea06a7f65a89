"""Prometheus metrics, computed from the state at scrape time.

A custom collector reads one snapshot per scrape, so a metric can never disagree with
``/status`` or ``/readyz`` about the same moment, and jobs never touch metric objects.
Names share the ``barman_supervisor_`` prefix and carry their unit; ages are served beside
timestamps (tools that cannot subtract read those), and each server's readiness limits too, so
alert rules compare with the daemon's own settings. The names prometheus-barman-exporter serves
come from ``exporter``. docs/metrics.md lists them all.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from barman_supervisor.barman.chains import newest_chain
from barman_supervisor.barman.records import Backup, BackupStatus
from barman_supervisor.status.exporter import exporter_families
from barman_supervisor.status.health import Limits, server_problems, wal_lag_seconds
from barman_supervisor.status.state import JobRun, ServerState, State

PREFIX = "barman_supervisor_"


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def _now() -> float:
    """``time.time()`` looked up at each scrape, so a test that fixes the time fixes the ages."""
    return time.time()


def _newest_end(backups: Iterable[Backup]) -> float | None:
    """When the newest of these backups ended (the time readiness ages); None: none did."""
    return max((b.end_time for b in backups if b.end_time is not None), default=None)


def _shard_families(
    shard: Mapping[str, Any] | None, servers: Mapping[str, ServerState]
) -> Iterator[Metric]:
    """Sharded: every configured server's owner (the same series from every replica, so a
    server whose owner is down still has one), and this replica's claims. A server with an
    owner and no claim held anywhere is protected by nobody (``BarmanServerUnclaimed``)."""
    if shard is None:
        return
    owners = _gauge(
        "shard_owner",
        "1 for every configured server, labelled with the shard that owns it",
        ["server", "shard"],
    )
    for name, entry in shard["servers"].items():
        owners.add_metric([name, str(entry["owner"])], 1)
    claims = _gauge(
        "claim_held", "1 while this replica holds the server's claim (advisory lock)", ["server"]
    )
    for name, server in servers.items():
        held = bool(server.claim and server.claim["held"])
        claims.add_metric([name], 1 if held else 0)
    yield owners
    yield claims


class StateCollector(Collector):
    def __init__(
        self, state: State, limits: Callable[[str], Limits], clock: Callable[[], float] = _now
    ) -> None:
        self._state = state
        self._limits = limits
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        servers = self._state.servers()
        global_runs, global_counts = self._state.global_runs()

        up = _gauge("up", "1 while the daemon runs", [])
        up.add_metric([], 1)
        yield up
        started = _gauge("start_time_seconds", "when the daemon started (Unix time)", [])
        started.add_metric([], self._state.started_at)
        yield started

        streaming, backups, jobs = _StreamingFamilies(), _BackupFamilies(), _JobFamilies()
        drills, offsite, chains = _DrillFamilies(), _OffsiteFamilies(), _ChainFamilies()
        limit_families = _LimitFamilies()
        for name, server in servers.items():
            limits = self._limits(name)
            ready = not server_problems(server, now, limits)
            streaming.add(name, server, now, ready)
            backups.add(name, server, now)
            jobs.add(name, server.run_counts, server.runs)
            drills.add(name, server, now)
            offsite.add(name, server, now)
            chains.add(name, server)
            limit_families.add(name, server, limits)
        jobs.add("", global_counts, global_runs)
        for group in (streaming, backups, jobs, drills, offsite, chains, limit_families):
            yield from group.families()
        yield from exporter_families(servers)
        yield from _shard_families(self._state.shard, servers)


class _Families:
    """A group of metric families, filled one server at a time, yielded in definition order."""

    def families(self) -> tuple[Metric, ...]:
        return tuple(vars(self).values())


class _StreamingFamilies(_Families):
    def __init__(self) -> None:
        self.ready = _gauge(
            "ready", "1 when the server is protected (/readyz conditions)", ["server"]
        )
        self.postgres_up = _gauge(
            "postgres_up", "1 when PostgreSQL answered the last probe", ["server"]
        )
        self.receive_wal = _gauge(
            "receive_wal_running", "1 when barman receive-wal runs", ["server"]
        )
        self.slot_active = _gauge("replication_slot_active", "1 when the slot streams", ["server"])
        self.wal_lag = _gauge(
            "wal_lag_bytes", "WAL on the primary not yet received by Barman", ["server"]
        )
        self.slot_safe = _gauge(
            "slot_safe_wal_size_bytes",
            "WAL the primary may still write before it removes WAL the slot holds "
            "(max_slot_wal_keep_size; absent when unlimited)",
            ["server"],
        )
        self.slot_status = _gauge(
            "slot_wal_status",
            "1 for the slot's wal_status (reserved, extended, unreserved, lost)",
            ["server", "wal_status"],
        )
        self.wal_received = _gauge(
            "wal_last_received_age_seconds", "age of the newest WAL Barman received", ["server"]
        )
        self.wal_archived = _gauge(
            "wal_last_archived_age_seconds", "age of the newest WAL in Barman's archive", ["server"]
        )
        self.wal_newest = _gauge(
            "wal_newest_age_seconds",
            "since the newest WAL segment in wals/ (where=local) or in the off-site store "
            "(where=offsite) was written: the recovery point",
            ["server", "where"],
        )

    def add(self, name: str, server: ServerState, now: float, ready: bool) -> None:
        self.ready.add_metric([name], int(ready))
        self.postgres_up.add_metric([name], 0 if server.postgres_error else 1)
        if server.receive_wal_running is not None:
            self.receive_wal.add_metric([name], int(server.receive_wal_running))
        if server.slot is not None:
            self.slot_active.add_metric([name], int(server.slot.active))
            if server.slot.lag_bytes is not None:
                self.wal_lag.add_metric([name], server.slot.lag_bytes)
            if server.slot.safe_wal_size is not None:
                self.slot_safe.add_metric([name], server.slot.safe_wal_size)
            if server.slot.wal_status is not None:
                for status in {*WAL_STATUSES, server.slot.wal_status}:
                    self.slot_status.add_metric(
                        [name, status], int(status == server.slot.wal_status)
                    )
        if server.wal_received_at is not None:
            self.wal_received.add_metric([name], now - server.wal_received_at)
        if server.wal_archived_at is not None:
            self.wal_archived.add_metric([name], now - server.wal_archived_at)
        for where, written_at in server.recovery_points().items():
            if written_at is not None:
                self.wal_newest.add_metric([name, where], now - written_at)


# pg_replication_slots.wal_status's values, each served (0 or 1) so a change shows at once.
WAL_STATUSES = ("reserved", "extended", "unreserved", "lost")


class _BackupFamilies(_Families):
    def __init__(self) -> None:
        self.last_backup = _gauge(
            "last_backup_timestamp_seconds", "end time of the newest DONE backup", ["server"]
        )
        self.duration = _gauge(
            "last_backup_duration_seconds", "wall time of the last successful backup", ["server"]
        )
        self.size = _gauge("last_backup_size_bytes", "size of the newest DONE backup", ["server"])
        self.age = _gauge(
            "last_backup_age_seconds",
            "since the newest DONE backup ended (what backup_max_age_seconds limits)",
            ["server"],
        )
        self.full_age = _gauge(
            "last_full_backup_age_seconds", "since the newest DONE full backup ended", ["server"]
        )
        self.incremental_age = _gauge(
            "last_incremental_backup_age_seconds",
            "since the newest DONE incremental backup ended",
            ["server"],
        )
        self.backups = _gauge("backups", "backups in the catalogue by status", ["server", "status"])
        self.checks = _gauge("check_ok", "each barman check: 1 OK, 0 failed", ["server", "check"])
        self.verified = _gauge(
            "last_backup_verified",
            "1 when pg_verifybackup accepted the last backup; 0 rejected or left unverified",
            ["server"],
        )

    def add(self, name: str, server: ServerState, now: float) -> None:
        done = [
            b for b in server.backups if b.status == BackupStatus.DONE and b.end_time is not None
        ]
        if done:
            newest = max(done, key=lambda b: b.end_time or 0.0)
            self.last_backup.add_metric([name], newest.end_time or 0.0)
            if newest.size_bytes is not None:
                self.size.add_metric([name], newest.size_bytes)
        for family, backups in (
            (self.age, done),
            (self.full_age, [b for b in done if not b.incremental]),
            (self.incremental_age, [b for b in done if b.incremental]),
        ):
            if (end := _newest_end(backups)) is not None:
                family.add_metric([name], now - end)
        for status, count in sorted(Counter(b.status for b in server.backups).items()):
            self.backups.add_metric([name, status], count)
        if server.last_backup.get("ok"):
            self.duration.add_metric([name], float(server.last_backup["duration_s"]))
        for check in server.checks:
            self.checks.add_metric([name, check.name], int(check.ok))
        if server.last_verify:
            verify = server.last_verify
            self.verified.add_metric(
                [name], int(bool(verify.get("ok")) and not verify.get("skipped"))
            )


class _ChainFamilies(_Families):
    """The newest DONE backup's chain (issue 13): what restoring it combines."""

    def __init__(self) -> None:
        self.incremental = _gauge(
            "last_backup_incremental", "1 when the newest DONE backup is incremental", ["server"]
        )
        self.length = _gauge(
            "last_backup_chain_length",
            "backups a restore of the newest DONE backup combines (1 for a full)",
            ["server"],
        )
        self.size = _gauge(
            "last_backup_chain_size_bytes", "size of those backups together", ["server"]
        )

    def add(self, name: str, server: ServerState) -> None:
        chain = newest_chain(server.backups)
        if chain is not None:
            self.incremental.add_metric([name], int(chain.members[-1].incremental))
            self.length.add_metric([name], chain.length)
            self.size.add_metric([name], chain.size_bytes)


class _JobFamilies(_Families):
    def __init__(self) -> None:
        self.runs = CounterMetricFamily(
            PREFIX + "job_runs", "job runs by result", labels=["server", "job", "result"]
        )
        self.durations = _gauge(
            "job_last_duration_seconds", "duration of each job's last run", ["server", "job"]
        )

    def add(
        self, name: str, counts: Mapping[tuple[str, bool], int], runs: Mapping[str, JobRun]
    ) -> None:
        """``name`` is empty for the global jobs (barman cron)."""
        for (job, ok), count in sorted(counts.items()):
            self.runs.add_metric([name, job, "success" if ok else "failure"], count)
        for job, run in sorted(runs.items()):
            self.durations.add_metric([name, job], run.duration_s)


class _DrillFamilies(_Families):
    def __init__(self) -> None:
        self.ok = _gauge("last_drill_success", "1 when the last restore drill passed", ["server"])
        self.at = _gauge("last_drill_timestamp_seconds", "start of the last drill", ["server"])
        self.restore_time = _gauge(
            "last_drill_restore_seconds", "recover + start + query of the last drill", ["server"]
        )
        self.restored_age = _gauge(
            "last_drill_restored_age_seconds",
            "how old the newest data in the last drill's restored copy was",
            ["server"],
        )
        self.age = _gauge(
            "last_drill_age_seconds", "since the last drill started (passed or not)", ["server"]
        )

    def add(self, name: str, server: ServerState, now: float) -> None:
        """A drill cut short by a stop says nothing about the backups."""
        drill = server.last_drill
        if not drill or drill.get("interrupted"):
            return
        started_at = float(drill.get("started_at") or 0.0)
        self.ok.add_metric([name], int(bool(drill.get("ok"))))
        self.at.add_metric([name], started_at)
        self.age.add_metric([name], now - started_at)
        if drill.get("restore_s") is not None:
            self.restore_time.add_metric([name], float(drill["restore_s"]))
        if drill.get("restored_age_s") is not None:
            self.restored_age.add_metric([name], float(drill["restored_age_s"]))


class _OffsiteFamilies(_Families):
    """The off-site copy (OFFSITE_URL): only servers that have one get these series."""

    def __init__(self) -> None:
        self.last_backup = _gauge(
            "offsite_last_backup_timestamp_seconds",
            "end time of the newest backup copied to the off-site store",
            ["server"],
        )
        self.last_backup_age = _gauge(
            "offsite_last_backup_age_seconds",
            "since the newest backup copied to the off-site store ended",
            ["server"],
        )
        self.wal_lag = _gauge(
            "offsite_wal_lag_seconds",
            "how long the oldest WAL file not yet in the off-site store has waited (0: none)",
            ["server"],
        )
        self.wal_owed = _gauge(
            "offsite_wal_files_owed", "WAL files not yet in the off-site store", ["server"]
        )
        self.backups_owed = _gauge(
            "offsite_backups_owed", "DONE backups not yet in the off-site store", ["server"]
        )
        self.up_to_date = _gauge(
            "offsite_last_copy_success", "1 when the last off-site copy round succeeded", ["server"]
        )
        self.wal_missing = _gauge(
            "offsite_wal_missing_segments",
            "WAL segments a restore from the off-site store needs and the store lacks (holes "
            "after a stored backup's start; /status offsite.wal_holes names them)",
            ["server"],
        )
        self.bytes = CounterMetricFamily(
            PREFIX + "offsite_copied_bytes", "bytes copied to the off-site store", labels=["server"]
        )
        self.failures = CounterMetricFamily(
            PREFIX + "offsite_failures", "failed off-site copy rounds", labels=["server"]
        )

    def add(self, name: str, server: ServerState, now: float) -> None:
        record = server.offsite
        if not record:
            return
        if record.get("newest_copied_backup_end") is not None:
            end = float(record["newest_copied_backup_end"])
            self.last_backup.add_metric([name], end)
            self.last_backup_age.add_metric([name], now - end)
        self.wal_lag.add_metric([name], wal_lag_seconds(record, now))
        self.wal_owed.add_metric([name], int(record.get("wal_owed") or 0))
        self.backups_owed.add_metric([name], len(record.get("backups_owed") or []))
        self.wal_missing.add_metric([name], int(record.get("wal_missing") or 0))
        if record.get("last_ok_at") is not None or record.get("last_error"):
            self.up_to_date.add_metric([name], 0 if record.get("last_error") else 1)
        self.bytes.add_metric([name], int(record.get("bytes_copied") or 0))
        self.failures.add_metric([name], int(record.get("failures") or 0))


class _LimitFamilies(_Families):
    """Each server's readiness limits (``health.Limits``), beside the free disk space nothing
    else serves: alert rules compare with these and so follow the daemon's settings. A limit
    that is off (WAL_MAX_AGE=0, no off-site store) has no series."""

    def __init__(self) -> None:
        self.disk_free = _gauge(
            "disk_free_bytes", "free space on the Barman volume (last probe)", ["server"]
        )
        self.disk_min_free = _gauge(
            "disk_min_free_bytes", "DISK_MIN_FREE: not ready below this free space", ["server"]
        )
        self.backup_max_age = _gauge(
            "backup_max_age_seconds",
            "not ready when last_backup_age_seconds exceeds this",
            ["server"],
        )
        self.wal_max_lag = _gauge(
            "wal_max_lag_bytes",
            "WAL_MAX_LAG: not ready when wal_lag_bytes exceeds this",
            ["server"],
        )
        self.wal_max_age = _gauge(
            "wal_max_age_seconds",
            "WAL_MAX_AGE: not ready when wal_last_received_age_seconds exceeds this",
            ["server"],
        )
        self.offsite_backup_max_delay = _gauge(
            "offsite_backup_max_delay_seconds",
            "OFFSITE_BACKUP_MAX_DELAY: not ready when a DONE backup is not off-site this long "
            "after it ended",
            ["server"],
        )
        self.offsite_wal_max_lag = _gauge(
            "offsite_wal_max_lag_seconds",
            "OFFSITE_WAL_MAX_LAG: not ready when offsite_wal_lag_seconds exceeds this",
            ["server"],
        )

    def add(self, name: str, server: ServerState, limits: Limits) -> None:
        if server.disk_free_bytes is not None:
            self.disk_free.add_metric([name], server.disk_free_bytes)
        self.disk_min_free.add_metric([name], limits.disk_min_free_bytes)
        self.backup_max_age.add_metric([name], limits.backup_max_age)
        self.wal_max_lag.add_metric([name], limits.wal_max_lag_bytes)
        for family, limit in (
            (self.wal_max_age, limits.wal_max_age),
            (self.offsite_backup_max_delay, limits.offsite_backup_max_delay),
            (self.offsite_wal_max_lag, limits.offsite_wal_max_lag),
        ):
            if limit is not None:
                family.add_metric([name], limit)


def registry(
    state: State, limits: Callable[[str], Limits], clock: Callable[[], float] = _now
) -> CollectorRegistry:
    """A registry of its own: no process/platform collectors, nothing global to clash with.
    ``clock`` is the time ages are measured to (tests pass a fixed one)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state, limits, clock))
    return reg
