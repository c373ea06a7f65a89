"""The work the daemon does for each server: start-up, barman cron, backups, checks.

Every job runs with ``server`` and ``job`` bound to its log events and leaves a ``JobRun`` in the
state for the probes. A job of one kind never runs twice at once for one server: APScheduler's
``max_instances=1`` covers a job with itself, and the locks here cover the start-up backup with
the scheduled one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from barman_supervisor import retry
from barman_supervisor.alerts import Notifier
from barman_supervisor.barman import Backup, Barman, Outcome
from barman_supervisor.drill import DEFAULT_QUERY, DrillConfig, run_drill
from barman_supervisor.healing import (
    client_tool_problems,
    failed_to_delete,
    identity_change,
    orphaned_receivers,
    restart_delay,
    stale_started,
)
from barman_supervisor.log import bind, get_logger
from barman_supervisor.pgbin import survey
from barman_supervisor.pid1 import processes
from barman_supervisor.postgres import Postgres, SlotState, preflight_problems
from barman_supervisor.proc import Runner, RunnerClosed
from barman_supervisor.settings import ServerSettings, Settings
from barman_supervisor.state import JobRun, State
from barman_supervisor.verify import verify_backup

_log = get_logger(__name__)
STREAMING_CONFIRM_TIMEOUT = 30.0


class StartupFailed(Exception):
    """A server can never be protected as configured; a person must change something."""


@dataclass
class _Run:
    ok: bool = True
    reason: str = ""
    exit_code: int | None = None

    def fail(self, reason: str, exit_code: int | None = None) -> None:
        self.ok, self.reason, self.exit_code = False, reason, exit_code

    def take(self, outcome: Outcome) -> bool:
        self.exit_code = outcome.completed.returncode
        if not outcome.ok:
            self.fail(outcome.reason(), outcome.completed.returncode)
        return outcome.ok


def needs_backup_at_start(backups: list[Backup]) -> bool:
    """A server with no DONE backup is unprotected, and a newest backup that FAILED (often one
    a stop interrupted) is owed: take it now rather than at the next scheduled time. One still
    running will finish by itself."""
    if any(backup.status in ("STARTED", "WAITING_FOR_WALS") for backup in backups):
        return False
    newest = max(backups, key=lambda backup: backup.backup_id, default=None)
    return newest is None or newest.status != "DONE"


class Jobs:
    def __init__(
        self,
        settings: Settings,
        barman: Barman,
        runner: Runner,
        state: State,
        stop: threading.Event,
        on_fatal: Callable[[str, str], None],
        on_ready: Callable[[ServerSettings], None],
        notifier: Notifier | None = None,
    ) -> None:
        self._settings = settings
        self._barman = barman
        self._state = state
        self._stop = stop
        self._on_fatal = on_fatal
        self._on_ready = on_ready
        self._notifier = notifier
        self._runner = runner
        self._restarts: dict[str, tuple[int, float]] = {}
        self._cron_started_at = float("-inf")
        self._backups_running = threading.BoundedSemaphore(settings.backup_concurrency)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.postgres = {
            server.name: Postgres(server, settings.pgpass_file, settings.pg_connect_timeout)
            for server in settings.servers
        }

    def _lock(self, kind: str, server: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((kind, server), threading.Lock())

    @contextmanager
    def _job(self, job: str, server: str | None) -> Iterator[_Run]:
        """Bind log context, time the job, record its outcome; shutdown is not a failure."""
        run = _Run()
        started_wall, started = time.time(), time.monotonic()
        with bind(job=job, **({"server": server} if server else {})):
            _log.info("job_started")
            try:
                yield run
            except (RunnerClosed, retry.Interrupted):
                run.fail("interrupted by shutdown")
            except StartupFailed as exc:
                run.fail(str(exc))
                raise
            except Exception as exc:  # a job must never take the scheduler down
                _log.exception("job_crashed")
                run.fail(f"{type(exc).__name__}: {exc}")
            finally:
                duration = time.monotonic() - started
                if not run.ok and self._stop.is_set() and "shutdown" not in run.reason:
                    run.reason = f"interrupted by shutdown ({run.reason})"
                self._state.record_run(
                    server,
                    JobRun(
                        job, started_wall, round(duration, 3), run.ok, run.reason, run.exit_code
                    ),
                )
                _log.log(
                    20 if run.ok else 30 if self._stop.is_set() else 40,
                    "job_finished",
                    ok=run.ok,
                    duration_s=round(duration, 3),
                    **({"reason": run.reason} if run.reason else {}),
                )

    # Start-up ------------------------------------------------------------------------------
    def bootstrap(self, server: ServerSettings) -> None:
        """From 'PostgreSQL may not even be up' to 'streaming and backed up', step by step."""
        try:
            with self._job("bootstrap", server.name) as run:
                self._wait_for_postgres(server)
                self._preflight(server)
                self._identify(server)
                self._phase(server, "slot")
                if not run.take(self._barman.create_slot(server.name)):
                    _log.error("slot_failed", slot=server.slot_name, reason=run.reason)
                self._phase(server, "streaming")
                self._start_streaming(server, run)
                self._phase(server, "first_wal")
                self._archive_first_wal(server, run)
                self._phase(server, "check")
                self.check(server)
                self._refuse_old_client_tools(server)
                self._close_interrupted_backups(server)
                self._first_backup(server, run)
        except StartupFailed as exc:
            self._phase(server, "failed")
            self._on_fatal(server.name, str(exc))
            return
        # Also after a step failed or crashed: the schedule retries it, the probes tell the truth.
        if not self._stop.is_set():
            self._phase(server, "running")
            self._on_ready(server)

    def _phase(self, server: ServerSettings, phase: str) -> None:
        self._state.update(server.name, phase=phase)
        _log.info("startup_step", step=phase, server=server.name)

    def _wait_for_postgres(self, server: ServerSettings) -> None:
        self._phase(server, "waiting_for_postgres")
        postgres = self.postgres[server.name]
        policy = retry.until_reachable(
            self._stop,
            max_delay=self._settings.pg_wait_timeout,
            retry_on=(psycopg.OperationalError,),
            describe=lambda _state: {"host": server.host, "port": server.port},
        )
        try:
            facts = policy(postgres.facts)
        except psycopg.OperationalError as exc:
            raise StartupFailed(
                f"PostgreSQL at {server.host}:{server.port} not reachable within PG_WAIT_TIMEOUT="
                f"{self._settings.pg_wait_timeout:g}s: {str(exc).strip().splitlines()[0]}"
            ) from None
        self._state.update(
            server.name, facts=facts, postgres_reached_at=time.time(), postgres_error=None
        )
        _log.info(
            "postgres_reached",
            host=server.host,
            port=server.port,
            version=facts.version_num,
            wal_level=facts.wal_level,
            max_wal_senders=facts.max_wal_senders,
            max_replication_slots=facts.max_replication_slots,
            archive_mode=facts.archive_mode,
        )

    def _preflight(self, server: ServerSettings) -> None:
        self._phase(server, "preflight")
        facts = self._state.server(server.name).facts
        assert facts is not None
        unservable, programs = survey(
            facts.version_num,
            self._runner,
            self._settings.child_env.get("PATH"),
            self._settings.pg_bin_dir,
        )
        problems = preflight_problems(facts) + unservable
        self._state.update(server.name, problems=problems, programs=programs)
        if problems:
            raise StartupFailed("; ".join(problems))

    def _identify(self, server: ServerSettings) -> None:
        """A replication connection that fails now fails for every backup: say so at once."""
        self._phase(server, "replication_connection")
        policy = retry.few_times(self._stop, attempts=3, retry_on=(psycopg.OperationalError,))
        try:
            identity = policy(self.postgres[server.name].identify)
        except psycopg.OperationalError as exc:
            first_line = str(exc).strip().splitlines()[0]
            raise StartupFailed(
                f"replication connection refused ({first_line}); the streaming user needs the "
                "REPLICATION attribute and a 'host replication' line in pg_hba.conf"
            ) from None
        self._state.update(server.name, identity=identity)
        _log.info(
            "replication_connection_ok", system_id=identity.system_id, timeline=identity.timeline
        )

    def _start_streaming(self, server: ServerSettings, run: _Run) -> None:
        """``barman cron`` starts receive-wal; the slot turning active proves it streams."""
        self.cron(requested_at=time.monotonic())
        deadline = time.monotonic() + STREAMING_CONFIRM_TIMEOUT
        while not self._stop.is_set():
            slot = self.refresh_slot(server)
            if slot is not None and slot.active:
                _log.info("streaming_running", slot=server.slot_name, walsender_pid=slot.active_pid)
                return
            if time.monotonic() > deadline:
                break
            self._stop.wait(0.5)
        run.fail("WAL streaming did not start")
        _log.error(
            "streaming_not_running",
            slot=server.slot_name,
            waited_s=STREAMING_CONFIRM_TIMEOUT,
            hint="barman cron retries every BARMAN_CRON_INTERVAL; see the barman log events",
        )

    def _archive_first_wal(self, server: ServerSettings, run: _Run) -> None:
        """Force a WAL switch and wait until Barman archived the segment.

        On an idle primary the switch only completes once the next segment has data, so a
        restore point is written every second while Barman waits: under a second instead of
        10-15 s.
        """
        done = threading.Event()

        def nudge() -> None:
            while not done.wait(1.0):
                try:
                    self.postgres[server.name].create_restore_point("barman_supervisor_switch")
                except psycopg.Error as exc:
                    _log.debug("restore_point_failed", error=str(exc).splitlines()[0])
                    return

        helper = threading.Thread(target=nudge, name=f"nudge-{server.name}", daemon=True)
        helper.start()
        try:
            outcome = self._barman.switch_wal(server.name, self._settings.wal_archive_timeout)
        finally:
            done.set()
            helper.join(5)
        if run.take(outcome):
            _log.info("first_wal_archived")
        else:
            _log.error("first_wal_not_archived", reason=outcome.reason())

    def _first_backup(self, server: ServerSettings, run: _Run) -> None:
        backups = self.refresh_backups(server)
        if backups is None:
            return
        if not needs_backup_at_start(backups):
            _log.info("first_backup_not_needed", backups=len(backups))
            return
        if not server.backup_on_start:
            _log.warning("no_backup_yet", hint="BACKUP_ON_START is false; waiting for the schedule")
            return
        self._phase(server, "first_backup")
        outcome = self._run_backup(server, immediate=True, reason="first")
        if outcome is not None:
            run.take(outcome)
            # A fresh verdict, now that the backup exists and superseded failures are gone.
            self.check(server)

    # Scheduled jobs --------------------------------------------------------------------------
    def cron(self, requested_at: float | None = None) -> None:
        """``barman cron`` for every server: streaming (re)start, WAL archiving, retention.

        It is global and takes seconds with many servers, so a caller that only needs "a cron
        run that started after I asked" (start-up, the streaming watchdog) passes the moment it
        asked, and concurrent requests share one run. The identity check comes first: cron
        recreates a missing slot, which would hide it.
        """
        with self._lock("cron", "*"):
            if requested_at is not None and self._cron_started_at >= requested_at:
                return
            self._cron_started_at = time.monotonic()
            self._run_cron()

    def _run_cron(self) -> None:
        with self._job("cron", None) as run:
            for server in self._settings.servers:
                self._check_identity(server)
            run.take(self._barman.cron())

    def backup(self, server: ServerSettings) -> None:
        """The schedule's backup; the backup itself is recorded as job ``backup``."""
        with self._job("scheduled_backup", server.name) as run:
            outcome = self._run_backup(
                server, immediate=server.backup_immediate_checkpoint, reason="schedule"
            )
            if outcome is not None:
                run.take(outcome)

    def check(self, server: ServerSettings) -> None:
        with self._lock("check", server.name), self._job("check", server.name) as run:
            outcome, checks = self._barman.check(server.name)
            for check in checks:
                _log.log(
                    20 if check.ok else 30,
                    "check_result",
                    check=check.name,
                    ok=check.ok,
                    **({"hint": check.hint} if check.hint else {}),
                )
            self._state.update(server.name, checks=checks, checks_at=time.time())
            if not checks:
                run.take(outcome)
            elif not outcome.ok:
                failed = [check.name for check in checks if not check.ok]
                run.fail(f"failed checks: {', '.join(failed)}", outcome.completed.returncode)
            self.refresh_backups(server)
            self._delete_superseded_failures(server)

    def _delete_superseded_failures(self, server: ServerSettings) -> None:
        """FAILED_BACKUPS=delete: a FAILED backup keeps ``barman check`` red until deleted."""
        backups = self._state.server(server.name).backups
        for backup_id in failed_to_delete(backups, self._settings.failed_backups):
            deleted = self._barman.delete(server.name, backup_id)
            _log.log(
                20 if deleted.ok else 40,
                "failed_backup_deleted" if deleted.ok else "failed_backup_not_deleted",
                backup_id=backup_id,
                reason="superseded by a newer DONE backup (FAILED_BACKUPS=delete)",
            )
        if backups:
            self.refresh_backups(server)

    def drill(self, server: ServerSettings) -> None:
        """The scheduled restore drill (DRILL_SCHEDULE); its result feeds /status, /metrics,
        /readyz and alerts. It stops, and cleans up, when the daemon is asked to stop."""
        with self._lock("drill", server.name), self._job("drill", server.name) as run:
            config = DrillConfig(
                scratch_root=self._settings.drill_scratch_dir
                or self._settings.barman_home / "drill",
                query=server.drill_query or DEFAULT_QUERY,
                timeout=self._settings.drill_timeout,
                pg_bin_dir=self._settings.pg_bin_dir,
                space_factor=self._settings.drill_space_factor,
                space_margin_bytes=self._settings.drill_space_margin_bytes,
            )
            result = run_drill(
                self._settings, server, self._barman, self._runner, config, self._stop
            )
            self._state.update(server.name, last_drill=result.as_dict())
            if not result.ok:
                run.fail(result.reason)

    def wait_for_drills(self, timeout: float) -> bool:
        """At shutdown: a drill stops its PostgreSQL and deletes its scratch copy before the
        daemon exits. True when no drill is left running."""
        deadline = time.monotonic() + timeout
        for server in self._settings.servers:
            lock = self._lock("drill", server.name)
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
            lock.release()
        return True

    # Helpers ----------------------------------------------------------------------------------
    def _run_backup(
        self, server: ServerSettings, *, immediate: bool, reason: str
    ) -> Outcome | None:
        """One backup, or None when one of this server is already running."""
        lock = self._lock("backup", server.name)
        if not lock.acquire(blocking=False):
            _log.warning("backup_skipped", reason="a backup of this server is already running")
            return None
        try:
            if not self._backup_slot():
                raise RunnerClosed("backup")
        except BaseException:
            lock.release()
            raise
        try:
            _log.info("backup_starting", trigger=reason, immediate_checkpoint=immediate)
            self._deadman(server, "/start")
            started = time.time()
            outcome = self._barman.backup(
                server.name, immediate=immediate, wait_timeout=self._settings.backup_wait_timeout
            )
            data = outcome.data if isinstance(outcome.data, dict) else {}
            duration = round(outcome.completed.duration, 3)
            reason_text = "" if outcome.ok else outcome.reason()
            ok = outcome.ok
            if ok and data.get("backup_id"):
                # A backup that pg_verifybackup rejects is a failed backup: health, metrics,
                # alerts and the dead-man's switch all see it as one.
                verification = verify_backup(
                    self._barman,
                    server.name,
                    str(data["backup_id"]),
                    pg_bin_dir=self._settings.pg_bin_dir,
                    # Part of the backup: a stop gives it the backup's grace period.
                    kind="backup",
                )
                self._state.update(server.name, last_verify=verification.as_dict())
                if not verification.ok:
                    ok, reason_text = False, f"backup verification failed: {verification.reason}"
            summary: dict[str, object] = {
                "ok": ok,
                "trigger": reason,
                "backup_id": data.get("backup_id"),
                "status": data.get("status"),
                "size_bytes": data.get("size"),
                "duration_s": duration,
                **({"reason": reason_text} if reason_text else {}),
            }
            _log.log(20 if ok else 40, "backup_finished", **summary)
            self._state.update(server.name, last_backup=summary)
            self._state.record_run(
                server.name,
                JobRun(
                    "backup",
                    started,
                    duration,
                    ok,
                    reason_text,
                    outcome.completed.returncode,
                ),
            )
            self._deadman(server, "" if ok else "/fail")
            self.refresh_backups(server)
            return outcome
        finally:
            self._backups_running.release()
            lock.release()

    def _backup_slot(self) -> bool:
        """Wait for one of BACKUP_CONCURRENCY backup slots: many servers on one daemon must not
        all copy at once. False when the daemon stops while waiting."""
        if self._backups_running.acquire(blocking=False):
            return True
        _log.info(
            "backup_waiting",
            reason=f"BACKUP_CONCURRENCY={self._settings.backup_concurrency} reached",
        )
        while not self._stop.is_set():
            if self._backups_running.acquire(timeout=1.0):
                return True
        return False

    def _deadman(self, server: ServerSettings, suffix: str) -> None:
        if server.deadman_url is not None and self._notifier is not None:
            self._notifier.ping(server.deadman_url, suffix, what=f"deadman{suffix or '/success'}")

    def monitor(self, server: ServerSettings) -> None:
        """Cheap facts for the probes every HEALTH_INTERVAL (one query, no Barman command), and
        the streaming watchdog: restart streaming as soon as PostgreSQL answers again."""
        before = self._state.server(server.name)
        slot = self.refresh_slot(server)
        running = bool(self._barman.processes("receive-wal", server.name))
        received, archived = self._barman.wal_times(server.name)
        self._state.update(
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
                self._heal_streaming(server)
            if before.receive_wal_running is not None and before.receive_wal_running != running:
                _log.log(20 if running else 30, "receive_wal_changed", running=running)
            if (before.postgres_error is None) != (after.postgres_error is None):
                _log.log(
                    20 if slot is not None else 30,
                    "postgres_reachability_changed",
                    reachable=slot is not None,
                    **({"error": after.postgres_error} if after.postgres_error else {}),
                )

    # Self-healing ------------------------------------------------------------------------------
    def _heal_streaming(self, server: ServerSettings) -> None:
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
            current = self.postgres[server.name].identify()
            slot = self.postgres[server.name].slot(server.slot_name)
        except psycopg.Error:
            return
        change = identity_change(state.identity, current, slot.exists)
        with bind(server=server.name):
            if change is None:
                if state.identity_problem is not None:
                    _log.info("identity_ok")
                    self._state.update(server.name, identity_problem=None)
                return
            if change.resettable and self._settings.allow_streaming_reset:
                _log.warning("streaming_reset", kind=change.kind, reason=change.reason)
                self._barman.reset_streaming(server.name)
                self._barman.create_slot(server.name)
                self._state.update(server.name, identity=current, identity_problem=None)
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
            self._state.update(server.name, identity_problem=change.reason)

    def _refuse_old_client_tools(self, server: ServerSettings) -> None:
        state = self._state.server(server.name)
        problems = client_tool_problems(
            state.checks, state.facts.version_num if state.facts else None
        )
        if problems:
            raise StartupFailed("; ".join(problems))

    def _close_interrupted_backups(self, server: ServerSettings) -> None:
        """A backup left STARTED by a run that was killed is FAILED; the daemon stopped every
        Barman process of the previous run before this, so none of them can still be going."""
        for backup_id in stale_started(self._state.server(server.name).backups):
            marked = self._barman.mark_failed(
                server.name, backup_id, "interrupted: the process running it was killed"
            )
            _log.warning("interrupted_backup_marked_failed", backup_id=backup_id, marked=marked)
        self.refresh_backups(server)

    def refresh_backups(self, server: ServerSettings) -> list[Backup] | None:
        outcome, backups = self._barman.list_backups(server.name)
        if not outcome.ok:
            return None
        self._state.update(server.name, backups=backups, backups_at=time.time())
        return backups

    def refresh_slot(self, server: ServerSettings) -> SlotState | None:
        try:
            slot = self.postgres[server.name].slot(server.slot_name)
        except psycopg.Error as exc:
            self._state.update(server.name, postgres_error=str(exc).strip().splitlines()[0])
            return None
        now = time.time()
        self._state.update(
            server.name,
            slot=slot,
            postgres_reached_at=now,
            postgres_error=None,
        )
        return slot
