"""Prometheus metrics, computed from the state at scrape time.

A custom collector reads one snapshot per scrape, so a metric can never disagree with
``/status`` or ``/readyz`` about the same moment, and jobs never touch metric objects.
Names share the ``barman_supervisor_`` prefix and carry their unit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from barman_supervisor.chains import newest_chain
from barman_supervisor.health import Limits, server_problems
from barman_supervisor.offsite import wal_lag_seconds
from barman_supervisor.state import ServerState, State

PREFIX = "barman_supervisor_"


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


class StateCollector(Collector):
    def __init__(self, state: State, limits: Callable[[str], Limits]) -> None:
        self._state = state
        self._limits = limits

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        servers = self._state.servers()
        global_runs, global_counts = self._state.global_runs()

        up = _gauge("up", "1 while the daemon runs", [])
        up.add_metric([], 1)
        yield up
        started = _gauge("start_time_seconds", "when the daemon started (Unix time)", [])
        started.add_metric([], self._state.started_at)
        yield started

        ready = _gauge("ready", "1 when the server is protected (/readyz conditions)", ["server"])
        postgres_up = _gauge("postgres_up", "1 when PostgreSQL answered the last probe", ["server"])
        receive_wal = _gauge("receive_wal_running", "1 when barman receive-wal runs", ["server"])
        slot_active = _gauge("replication_slot_active", "1 when the slot streams", ["server"])
        wal_lag = _gauge(
            "wal_lag_bytes", "WAL on the primary not yet received by Barman", ["server"]
        )
        wal_received = _gauge(
            "wal_last_received_age_seconds", "age of the newest WAL Barman received", ["server"]
        )
        wal_archived = _gauge(
            "wal_last_archived_age_seconds", "age of the newest WAL in Barman's archive", ["server"]
        )
        last_backup = _gauge(
            "last_backup_timestamp_seconds", "end time of the newest DONE backup", ["server"]
        )
        backup_duration = _gauge(
            "last_backup_duration_seconds", "wall time of the last successful backup", ["server"]
        )
        backup_size = _gauge("last_backup_size_bytes", "size of the newest DONE backup", ["server"])
        backups = _gauge("backups", "backups in the catalogue by status", ["server", "status"])
        checks = _gauge("check_ok", "each barman check: 1 OK, 0 failed", ["server", "check"])
        runs = CounterMetricFamily(
            PREFIX + "job_runs", "job runs by result", labels=["server", "job", "result"]
        )
        durations = _gauge(
            "job_last_duration_seconds", "duration of each job's last run", ["server", "job"]
        )

        drill_ok = _gauge("last_drill_success", "1 when the last restore drill passed", ["server"])
        drill_at = _gauge("last_drill_timestamp_seconds", "start of the last drill", ["server"])
        drill_time = _gauge(
            "last_drill_restore_seconds", "recover + start + query of the last drill", ["server"]
        )
        drill_age = _gauge(
            "last_drill_restored_age_seconds",
            "how old the newest data in the last drill's restored copy was",
            ["server"],
        )
        verified = _gauge(
            "last_backup_verified", "1 when pg_verifybackup accepted the last backup", ["server"]
        )

        offsite = _OffsiteFamilies()
        for name, server in servers.items():
            offsite.add(name, server, now)
            _drill_metrics(name, server, drill_ok, drill_at, drill_time, drill_age, verified)
            ready.add_metric([name], 0 if server_problems(server, now, self._limits(name)) else 1)
            postgres_up.add_metric([name], 0 if server.postgres_error else 1)
            if server.receive_wal_running is not None:
                receive_wal.add_metric([name], int(server.receive_wal_running))
            if server.slot is not None:
                slot_active.add_metric([name], int(server.slot.active))
                if server.slot.lag_bytes is not None:
                    wal_lag.add_metric([name], server.slot.lag_bytes)
            if server.wal_received_at is not None:
                wal_received.add_metric([name], now - server.wal_received_at)
            if server.wal_archived_at is not None:
                wal_archived.add_metric([name], now - server.wal_archived_at)
            _backup_metrics(name, server, last_backup, backup_size, backups)
            if server.last_backup.get("ok"):
                backup_duration.add_metric([name], float(server.last_backup["duration_s"]))
            for check in server.checks:
                checks.add_metric([name, check.name], int(check.ok))
            for (job, ok), count in sorted(server.run_counts.items()):
                runs.add_metric([name, job, "success" if ok else "failure"], count)
            for job, run in sorted(server.runs.items()):
                durations.add_metric([name, job], run.duration_s)
        for (job, ok), count in sorted(global_counts.items()):
            runs.add_metric(["", job, "success" if ok else "failure"], count)
        for job, run in sorted(global_runs.items()):
            durations.add_metric(["", job], run.duration_s)
        yield from (
            ready,
            postgres_up,
            receive_wal,
            slot_active,
            wal_lag,
            wal_received,
            wal_archived,
            last_backup,
            backup_duration,
            backup_size,
            backups,
            checks,
            runs,
            durations,
            drill_ok,
            drill_at,
            drill_time,
            drill_age,
            verified,
        )
        yield from offsite.families()
        yield from _chain_metrics(servers)


def _drill_metrics(
    name: str,
    server: ServerState,
    drill_ok: GaugeMetricFamily,
    drill_at: GaugeMetricFamily,
    drill_time: GaugeMetricFamily,
    drill_age: GaugeMetricFamily,
    verified: GaugeMetricFamily,
) -> None:
    drill = server.last_drill
    if drill and not drill.get("interrupted"):
        drill_ok.add_metric([name], int(bool(drill.get("ok"))))
        drill_at.add_metric([name], float(drill.get("started_at") or 0.0))
        if drill.get("restore_s") is not None:
            drill_time.add_metric([name], float(drill["restore_s"]))
        if drill.get("restored_age_s") is not None:
            drill_age.add_metric([name], float(drill["restored_age_s"]))
    if server.last_verify:
        verified.add_metric([name], int(bool(server.last_verify.get("ok"))))


def _backup_metrics(
    name: str,
    server: ServerState,
    last_backup: GaugeMetricFamily,
    backup_size: GaugeMetricFamily,
    backups: GaugeMetricFamily,
) -> None:
    done = [b for b in server.backups if b.status == "DONE" and b.end_time is not None]
    if done:
        newest = max(done, key=lambda b: b.end_time or 0.0)
        last_backup.add_metric([name], newest.end_time or 0.0)
        if newest.size_bytes is not None:
            backup_size.add_metric([name], newest.size_bytes)
    by_status: dict[str, int] = {}
    for backup in server.backups:
        by_status[backup.status] = by_status.get(backup.status, 0) + 1
    for status, count in sorted(by_status.items()):
        backups.add_metric([name, status], count)


def _chain_metrics(servers: Mapping[str, ServerState]) -> list[GaugeMetricFamily]:
    """The newest DONE backup's chain (issue 13): what restoring it combines."""
    incremental = _gauge(
        "last_backup_incremental", "1 when the newest DONE backup is incremental", ["server"]
    )
    length = _gauge(
        "last_backup_chain_length",
        "backups a restore of the newest DONE backup combines (1 for a full)",
        ["server"],
    )
    size = _gauge("last_backup_chain_size_bytes", "size of those backups together", ["server"])
    for name, server in servers.items():
        chain = newest_chain(server.backups)
        if chain is not None:
            incremental.add_metric([name], int(chain.members[-1].incremental))
            length.add_metric([name], chain.length)
            size.add_metric([name], chain.size_bytes)
    return [incremental, length, size]


class _OffsiteFamilies:
    """The off-site copy (OFFSITE_URL): only servers that have one get these series."""

    def __init__(self) -> None:
        self.last_backup = _gauge(
            "offsite_last_backup_timestamp_seconds",
            "end time of the newest backup copied to the off-site store",
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
            self.last_backup.add_metric([name], float(record["newest_copied_backup_end"]))
        self.wal_lag.add_metric([name], wal_lag_seconds(record, now))
        self.wal_owed.add_metric([name], int(record.get("wal_owed") or 0))
        self.backups_owed.add_metric([name], len(record.get("backups_owed") or []))
        if "last_ok_at" in record or "last_error" in record:
            self.up_to_date.add_metric([name], 0 if record.get("last_error") else 1)
        self.bytes.add_metric([name], int(record.get("bytes_copied") or 0))
        self.failures.add_metric([name], int(record.get("failures") or 0))

    def families(self) -> tuple[Metric, ...]:
        return (
            self.last_backup,
            self.wal_lag,
            self.wal_owed,
            self.backups_owed,
            self.up_to_date,
            self.bytes,
            self.failures,
        )


def registry(state: State, limits: Callable[[str], Limits]) -> CollectorRegistry:
    """A registry of its own: no process/platform collectors, nothing global to clash with."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state, limits))
    return reg
