"""WAL streaming: ``barman cron`` (shared between callers), the monitor and its watchdog, and
the identity check that catches a failover, a point-in-time restore or a lost slot.

Barman alone does not heal streaming: after an outage nothing restarts ``receive-wal`` until
the next cron, and a killed ``receive-wal`` leaves ``pg_receivewal`` holding the slot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Mapping

import psycopg

from barman_supervisor.barman import Barman
from barman_supervisor.errors import first_line
from barman_supervisor.healing import identity_change, orphaned_receivers, restart_delay
from barman_supervisor.jobs.recorder import JobRecorder
from barman_supervisor.log import bind, get_logger
from barman_supervisor.pid1 import processes
from barman_supervisor.postgres import Postgres, SlotState
from barman_supervisor.settings import ServerSettings, Settings
from barman_supervisor.state import State

_log = get_logger(__name__)
# How long start-up waits for the slot to turn active after ``barman cron`` started streaming.
STREAMING_CONFIRM_TIMEOUT = 30.0
STREAMING_POLL_INTERVAL = 0.5


class Streaming:
    def __init__(
        self,
        settings: Settings,
        barman: Barman,
        state: State,
        postgres: Mapping[str, Postgres],
        recorder: JobRecorder,
        stop: threading.Event,
    ) -> None:
        self._settings = settings
        self._barman = barman
        self._state = state
        self._postgres = postgres
        self._recorder = recorder
        self._stop = stop
        self._cron_lock = threading.Lock()
        self._cron_started_at = float("-inf")
        # server -> (restart attempts so far, monotonic time before which none is tried)
        self._restarts: dict[str, tuple[int, float]] = {}

    def cron(self, requested_at: float | None = None) -> None:
        """``barman cron`` for every server: streaming (re)start, WAL archiving, retention.

        It is global and takes seconds with many servers, so a caller that only needs "a cron
        run that started after I asked" (start-up, the streaming watchdog) passes the moment it
        asked, and concurrent requests share one run. The identity check comes first: cron
        recreates a missing slot, which would hide it.
        """
        with self._cron_lock:
            if requested_at is not None and self._cron_started_at >= requested_at:
                return
            self._cron_started_at = time.monotonic()
            with self._recorder.job("cron", None) as run:
                for server in self._settings.servers:
                    self._check_identity(server)
                run.take(self._barman.cron())

    def confirm_started(self, server: ServerSettings) -> bool:
        """Start-up: ``barman cron`` starts receive-wal; the slot turning active proves it
        streams. False when it did not within STREAMING_CONFIRM_TIMEOUT."""
        self.cron(requested_at=time.monotonic())
        deadline = time.monotonic() + STREAMING_CONFIRM_TIMEOUT
        while not self._stop.is_set():
            slot = self.refresh_slot(server)
            if slot is not None and slot.active:
                _log.info("streaming_running", slot=server.slot_name, walsender_pid=slot.active_pid)
                return True
            if time.monotonic() > deadline:
                break
            self._stop.wait(STREAMING_POLL_INTERVAL)
        _log.error(
            "streaming_not_running",
            slot=server.slot_name,
            waited_s=STREAMING_CONFIRM_TIMEOUT,
            hint="barman cron retries every BARMAN_CRON_INTERVAL; see the barman log events",
        )
        return False

    def refresh_slot(self, server: ServerSettings) -> SlotState | None:
        """The slot as PostgreSQL reports it; None (and the error recorded) when unreachable."""
        try:
            slot = self._postgres[server.name].slot(server.slot_name)
        except psycopg.Error as exc:
            self._state.postgres_unreachable(server.name, first_line(exc))
            return None
        self._state.postgres_seen(server.name, slot)
        return slot

    def monitor(self, server: ServerSettings) -> None:
        """Cheap facts for the probes every HEALTH_INTERVAL (one query, no Barman command), and
        the streaming watchdog: restart streaming as soon as PostgreSQL answers again."""
        before = self._state.server(server.name)
        slot = self.refresh_slot(server)
        running = bool(self._barman.processes("receive-wal", server.name))
        received, archived = self._barman.wal_times(server.name)
        self._state.record_probe(
            server.name,
            receive_wal_running=running,
            wal_received_at=received,
            wal_archived_at=archived,
            disk_free_bytes=shutil.disk_usage(self._settings.barman_home).free,
        )
        after = self._state.server(server.name)
        with bind(server=server.name, job="monitor"):
            if running:
                self._restarts.pop(server.name, None)
            elif slot is not None and after.phase == "running" and after.identity_problem is None:
                self._heal(server)
            if before.receive_wal_running is not None and before.receive_wal_running != running:
                _log.log(
                    logging.INFO if running else logging.WARNING,
                    "receive_wal_changed",
                    running=running,
                )
            if (before.postgres_error is None) != (after.postgres_error is None):
                _log.log(
                    logging.INFO if slot is not None else logging.WARNING,
                    "postgres_reachability_changed",
                    reachable=slot is not None,
                    **({"error": after.postgres_error} if after.postgres_error else {}),
                )

    def _heal(self, server: ServerSettings) -> None:
        """Stop an orphaned pg_receivewal holding the slot, then restart streaming with backoff."""
        streaming_dir = str(self._settings.barman_home / server.name / "streaming")
        for orphan in orphaned_receivers(processes(), streaming_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(orphan.pid, signal.SIGTERM)
            _log.warning("orphan_pg_receivewal_stopped", pid=orphan.pid)
        attempts, not_before = self._restarts.get(server.name, (0, 0.0))
        if time.monotonic() < not_before:
            return
        attempts += 1
        self._restarts[server.name] = (attempts, time.monotonic() + restart_delay(attempts))
        _log.warning("streaming_restart", attempt=attempts)
        self.cron(requested_at=time.monotonic())

    def _check_identity(self, server: ServerSettings) -> None:
        """Failover, point-in-time restore or a lost slot: alert, and never drop .partial WAL
        (``receive-wal --reset``) unless ALLOW_STREAMING_RESET says so."""
        state = self._state.server(server.name)
        if state.phase != "running" or state.identity is None:
            return
        try:
            current = self._postgres[server.name].identify()
            slot = self._postgres[server.name].slot(server.slot_name)
        except psycopg.Error:
            return
        change = identity_change(state.identity, current, slot.exists)
        with bind(server=server.name):
            if change is None:
                if state.identity_problem is not None:
                    _log.info("identity_ok")
                    self._state.set_identity_problem(server.name, None)
                return
            if change.resettable and self._settings.allow_streaming_reset:
                _log.warning("streaming_reset", kind=change.kind, reason=change.reason)
                self._barman.reset_streaming(server.name)
                self._barman.create_slot(server.name)
                self._state.set_identity(server.name, current)
                return
            if state.identity_problem != change.reason:
                _log.error(
                    "identity_changed",
                    kind=change.kind,
                    reason=change.reason,
                    hint="set ALLOW_STREAMING_RESET=true to resume streaming from the new "
                    "position (drops the .partial WAL file)"
                    if change.resettable
                    else "a person must decide; backups and streaming are on hold",
                )
            self._state.set_identity_problem(server.name, change.reason)
