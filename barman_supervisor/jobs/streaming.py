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
from collections.abc import Callable, Mapping

import psycopg

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.errors import first_line
from barman_supervisor.jobs.failover import Failover
from barman_supervisor.jobs.healing import (
    identity_change,
    orphaned_receivers,
    slot_start,
    wal_gap,
)
from barman_supervisor.jobs.recorder import JobRecorder
from barman_supervisor.log import bind, get_logger
from barman_supervisor.postgres.connection import Postgres, SlotState, server_unavailable
from barman_supervisor.process.proctable import processes
from barman_supervisor.retry import restart_delay
from barman_supervisor.status.state import State

_log = get_logger(__name__)
# How long start-up waits for the slot to turn active after ``barman cron`` started streaming.
STREAMING_CONFIRM_TIMEOUT = 30.0
# One query over the kept connection: polled often, streaming is seen at once.
STREAMING_POLL_INTERVAL = 0.1
_GAP_HINT = (
    "if streaming then fails with 'requested WAL segment has already been removed', run "
    "barman receive-wal --reset (or set ALLOW_STREAMING_RESET=true)"
)


def prove_login(postgres: Postgres, state: State, server: str, reachable: bool) -> None:
    """A new login as Barman's commands make it (the kept connection does not show a changed
    password or pg_hba.conf), only while the kept connection answers: otherwise PostgreSQL is
    unreachable, and that is what the probes say. A server that takes no connection at all just
    now (a restart) counts as unreachable too, with that condition's grace."""
    problem = postgres.login_problem() if reachable else None
    if problem is not None and server_unavailable(problem):
        state.postgres_unreachable(server, problem)
        problem = None
    state.record_login(server, problem)


class Streaming:
    """Streaming for every server: the shared cron, the watchdog and the identity check.

    Kept long: the three share the restart bookkeeping, the cron lock and the probe; split, each
    part would reach into the others' state.
    """

    def __init__(
        self,
        settings: Settings,
        barman: Barman,
        state: State,
        postgres: Mapping[str, Postgres],
        recorder: JobRecorder,
        stop: threading.Event,
        on_wal_gap: Callable[[ServerSettings], None],
        failover: Failover,
    ) -> None:
        """``on_wal_gap``: WAL never reached the archive; ``failover`` follows a promotion."""
        self._failover = failover
        self._settings = settings
        self._barman = barman
        self._state = state
        self._postgres = postgres
        self._recorder = recorder
        self._stop = stop
        self._on_wal_gap = on_wal_gap
        self._cron_lock = threading.RLock()  # a followed failover may start cron from cron
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
                self.check_identities()
                outcomes = self._barman.cron()
                run.take(next((outcome for outcome in outcomes if not outcome.ok), outcomes[-1]))
            # What cron changed (streaming started, WAL archived) shows at once, not a tick later.
            for server in self._settings.servers:
                self.probe(server)

    def check_identities(self) -> None:
        """Every server's identity check; also on its own schedule, which is shorter than the
        global cron's (a failover is told within a minute, not at the next cron)."""
        for server in self._settings.servers:
            self._check_identity(server)

    def confirm_started(self, server: ServerSettings) -> bool:
        """Start-up: ``barman cron`` starts receive-wal; the slot turning active proves it
        streams. False when it did not within STREAMING_CONFIRM_TIMEOUT. Not run when an
        earlier cron already started this server's receiver (cron starts every server's):
        with many servers each cron is one ``archive-wal`` process per server."""
        if not self._already_streaming(server):
            self._start_receiver(server)
        deadline = time.monotonic() + STREAMING_CONFIRM_TIMEOUT
        while not self._stop.is_set():
            slot = self.refresh_slot(server)
            if slot is not None and slot.active:
                _log.info("streaming_running", slot=server.slot_name, walsender_pid=slot.active_pid)
                self.probe(server)
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

    def _already_streaming(self, server: ServerSettings) -> bool:
        slot = self.refresh_slot(server)
        active = slot is not None and slot.active
        return active and bool(self._barman.processes("receive-wal", server.name))

    def refresh_slot(self, server: ServerSettings) -> SlotState | None:
        """The slot as PostgreSQL reports it; None (and the error recorded) when unreachable."""
        try:
            slot = self._postgres[server.name].slot(server.slot_name)
        except psycopg.Error as exc:
            self._state.postgres_unreachable(server.name, first_line(exc))
            return None
        self._state.postgres_seen(server.name, slot, self._postgres[server.name].primary())
        return slot

    def probe(self, server: ServerSettings) -> tuple[SlotState | None, bool]:
        """Cheap facts for the probes (one query, file times, no Barman command): the slot
        (None when PostgreSQL does not answer) and whether receive-wal runs."""
        slot = self.refresh_slot(server)
        running = bool(self._barman.processes("receive-wal", server.name))
        received, archived = self._barman.home.wal_times(server.name)
        self._state.record_probe(
            server.name,
            receive_wal_running=running,
            wal_received_at=received,
            wal_archived_at=archived,
            disk_free_bytes=shutil.disk_usage(self._settings.barman_home).free,
            wal_newest_at=self._barman.home.newest_wal_at(server.name),
        )
        return slot, running

    def monitor(self, server: ServerSettings) -> None:
        """The probe every HEALTH_INTERVAL, and the streaming watchdog: restart streaming as
        soon as PostgreSQL answers again; tell of WAL that never reached the archive; prove
        that a new login works."""
        before = self._state.server(server.name)
        slot, running = self.probe(server)
        prove_login(self._postgres[server.name], self._state, server.name, slot is not None)
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
                    logging.INFO if after.postgres_error is None else logging.WARNING,
                    "postgres_reachability_changed",
                    reachable=after.postgres_error is None,
                    **({"error": after.postgres_error} if after.postgres_error else {}),
                )
            if before.login_problem != after.login_problem:
                _log.log(
                    logging.WARNING if after.login_problem else logging.INFO,
                    "postgres_login_changed",
                    ok=after.login_problem is None,
                    **({"error": after.login_problem} if after.login_problem else {}),
                )
            if slot is not None and after.phase == "running":
                if after.identity_problem is not None:
                    self._check_identity(server)  # clear it as soon as it is gone
                self._check_wal_gap(server, slot, running)

    def _check_wal_gap(self, server: ServerSettings, slot: SlotState, running: bool) -> None:
        """A slot that starts past the WAL Barman holds was recreated: the WAL in between is
        not in the archive. Say so once per gap, and ask for a backup."""
        state = self._state.server(server.name)
        if state.facts is None or not slot.exists:
            return
        if state.wal_gap is not None and all(
            self._barman.home.has_segment(server.name, segment)
            for segment in (state.wal_gap.first_missing, state.wal_gap.last_missing)
        ):
            # The server still had the WAL: streaming resumed from where it stopped and filled
            # it in (segments arrive in order, so the first and the last prove the rest).
            _log.info("wal_gap_closed", first=state.wal_gap.first_missing)
            self._state.wal_gap_closed(server.name)
            return
        holdings = self._barman.home.wal_holdings(server.name)
        gap = wal_gap(holdings, slot_start(slot), state.facts.wal_segment_size)
        if gap is None or gap == state.wal_gap:
            return
        allowed = self._settings.allow_streaming_reset
        # Only a receiver that cannot stream (its WAL is gone from the server) is reset.
        reset = allowed and not running
        _log.error(
            "wal_gap_detected",
            first_missing=gap.first_missing,
            last_missing=gap.last_missing,
            slot_start=slot_start(slot),
            action="resetting streaming and taking a fresh backup" if reset else "taking a backup",
            **({} if allowed else {"hint": _GAP_HINT}),
        )
        self._state.record_wal_gap(server.name, gap)
        if reset:
            self._barman.reset_streaming(server.name)
        self._on_wal_gap(server)

    def _heal(self, server: ServerSettings) -> None:
        """Stop an orphaned pg_receivewal holding the slot, then restart streaming with backoff."""
        streaming_dir = str(self._barman.home.streaming_dir(server.name))
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
        self._start_receiver(server)

    def _start_receiver(self, server: ServerSettings) -> None:
        """This server's ``receive-wal``: forked by the fork server when there is one, else
        started by ``barman cron`` (with every other server's that is not running). A missing
        slot is made first, as cron does (``create_slot = auto``) and ``receive-wal`` does not;
        the identity check comes before it, since a new slot would hide a changed server."""
        self._check_identity(server)
        if self._state.server(server.name).identity_problem is not None:
            return
        try:
            if self._postgres[server.name].create_slot(server.slot_name):
                _log.warning("slot_created", slot=server.slot_name, reason="it was missing")
        except psycopg.Error as exc:
            _log.warning("slot_not_created", slot=server.slot_name, error=first_line(exc))
        if not self._barman.start_receive_wal(server.name):
            self.cron(requested_at=time.monotonic())

    def _check_identity(self, server: ServerSettings) -> None:
        """Follow a promotion; alert on anything else (.partial WAL dropped only if allowed)."""
        state = self._state.server(server.name)
        if state.phase != "running" or state.identity is None:
            return
        try:
            current = self._postgres[server.name].identity()
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
            if change.kind == "timeline" and self._failover.follow(server, state.identity, current):
                return
            if change.resettable and self._settings.allow_streaming_reset:
                _log.warning("streaming_reset", kind=change.kind, reason=change.reason)
                self._barman.reset_streaming(server.name)
                try:
                    self._postgres[server.name].create_slot(server.slot_name)
                except psycopg.Error as exc:  # the next cron makes it (create_slot = auto)
                    _log.warning("slot_not_created", slot=server.slot_name, error=first_line(exc))
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
