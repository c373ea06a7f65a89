"""Backups: the scheduled one and the start-up one, each verified, each announced to the
dead-man's switch, at most BACKUP_CONCURRENCY at once; and the clean-up of what failed.

A backup that pg_verifybackup rejects is a failed backup: health, metrics, alerts and the
dead-man's switch all see it as one.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping

import psycopg

from barman_supervisor.barman.chains import next_backup
from barman_supervisor.barman.commands import COMMAND_NOT_RUN, Barman, Outcome
from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.records import (
    RUNNING_STATUSES,
    Backup,
    BackupStatus,
    newest_backup,
)
from barman_supervisor.barman.space import backup_estimate, backup_space_problem
from barman_supervisor.barman.verify import verify_backup
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.errors import RunnerClosed, first_line
from barman_supervisor.jobs.healing import (
    UNFINISHED_REASON,
    failed_to_delete,
    out_of_space_failures,
    stale_started,
    unfinished_copies,
)
from barman_supervisor.jobs.recorder import JobRecorder, ServerLocks
from barman_supervisor.jobs.verdicts import BackupVerdicts
from barman_supervisor.log import get_logger
from barman_supervisor.postgres.connection import Postgres
from barman_supervisor.process.runner import Completed
from barman_supervisor.status.alerts import Notifier
from barman_supervisor.status.state import BackupSummary, JobRun, State

_log = get_logger(__name__)
CONCURRENCY_POLL_INTERVAL = 1.0


def needs_backup_at_start(backups: list[Backup]) -> bool:
    """A server with no DONE backup is unprotected, and a newest backup that FAILED (often one
    a stop interrupted) is owed: take it now rather than at the next scheduled time. One still
    running will finish by itself."""
    if any(backup.status in RUNNING_STATUSES for backup in backups):
        return False
    newest = newest_backup(backups)
    return newest is None or newest.status != BackupStatus.DONE


def no_room(
    server: ServerSettings,
    backups: list[Backup],
    free_bytes: int,
    postgres: Postgres | None,
    parent: str | None,
) -> Outcome | None:
    """A backup refused for lack of room in BARMAN_HOME (``space.backup_space_problem``), or
    None. It fails as a backup does (the job, /readyz's ``backup_job``, the alert, the
    dead-man's switch) with the sizes, and no Barman command runs. The database's size is asked
    only when no earlier backup of the kind tells more."""
    incremental, database_bytes = parent is not None, None
    if postgres is not None and not any(
        b.status == BackupStatus.DONE and b.incremental == incremental for b in backups
    ):
        try:
            database_bytes = postgres.databases_size()
        except psycopg.Error as exc:  # the backup then says why PostgreSQL cannot be reached
            _log.warning("database_size_unknown", error=first_line(exc))
    reason = backup_space_problem(free_bytes, backup_estimate(backups, incremental, database_bytes))
    if reason is None:
        return None
    _log.error("backup_refused", reason=reason)
    argv = ("barman", "backup", server.name)
    return Outcome(Completed(argv, COMMAND_NOT_RUN, "", reason, 0.0), None, ())


def wait_for_copy_slot(
    slots: threading.BoundedSemaphore, stop: threading.Event, settings: Settings
) -> bool:
    """Wait for one of BACKUP_CONCURRENCY backup slots: many servers on one daemon must not
    all copy at once. False when the daemon stops while waiting."""
    if slots.acquire(blocking=False):
        return True
    _log.info("backup_waiting", reason=f"BACKUP_CONCURRENCY={settings.backup_concurrency} reached")
    while not stop.is_set():
        if slots.acquire(timeout=CONCURRENCY_POLL_INTERVAL):
            return True
    return False


def fail_unfinished(home: BarmanHome, server: str) -> bool:
    """A backup Barman recorded as copied without its end (``unfinished_copies``) is FAILED,
    since every Barman listing of the server fails on it; True when one was."""
    doomed = unfinished_copies(home.backup_infos(server))
    for backup_id in doomed:
        marked = home.mark_failed(server, backup_id, UNFINISHED_REASON)
        _log.warning("unfinished_backup_marked_failed", backup_id=backup_id, marked=marked)
    return bool(doomed)


_INTERRUPTED = "interrupted: the process running it was killed"
_OUT_OF_SPACE_WHY = (
    "it ran out of space and holds space the next backup needs (FAILED_BACKUPS=delete)"
)


class Backups:
    def __init__(
        self,
        settings: Settings,
        barman: Barman,
        state: State,
        recorder: JobRecorder,
        stop: threading.Event,
        notifier: Notifier | None,
        postgres: Mapping[str, Postgres] | None = None,  # database sizes, for ``no_room``
        on_done: Callable[[ServerSettings], None] | None = None,  # a DONE backup's re-check
    ) -> None:
        self._on_done = on_done
        self._settings = settings
        self._postgres = postgres or {}
        self._barman = barman
        self._state = state
        self._recorder = recorder
        self._stop = stop
        self._notifier = notifier
        self._running = ServerLocks()
        self._copy_slots = threading.BoundedSemaphore(settings.backup_concurrency)
        self._fingerprints: dict[str, tuple[int, ...]] = {}
        # Each backup's verdict on disk, its alert and the retention hold (``verdicts``).
        self.verdicts = BackupVerdicts(settings, barman, state, notifier)

    def scheduled(self, server: ServerSettings) -> None:
        """The schedule's backup; the backup itself is recorded as job ``backup``."""
        with self._recorder.job("scheduled_backup", server.name) as run:
            outcome = self.take(
                server, immediate=server.backup_immediate_checkpoint, trigger="schedule"
            )
            if outcome is not None:
                run.take(outcome)

    def scheduled_incremental(self, server: ServerSettings) -> None:
        """BACKUP_INCREMENTAL_SCHEDULE's backup: incremental on the parent ``chains`` chose, or a
        full when no chain can take one more (the reason is logged)."""
        with self._recorder.job("scheduled_incremental_backup", server.name) as run:
            outcome = self.take(
                server,
                immediate=server.backup_immediate_checkpoint,
                trigger="incremental_schedule",
                incremental=True,
            )
            if outcome is not None:
                run.take(outcome)

    def owed(self, server: ServerSettings, trigger: str = "wal_gap") -> None:
        """A backup owed at once (WAL never reached the archive, or a failover was followed):
        a restorable point again, on the current timeline."""
        with self._recorder.job("owed_backup", server.name) as run:
            outcome = self.take(server, immediate=True, trigger=trigger)
            if outcome is not None:
                run.take(outcome)

    def refresh_if_changed(self, server: ServerSettings) -> None:
        """Backups taken or deleted beside the daemon (``barman backup`` by hand) show in the
        state within a monitor tick: ``list-backups`` runs only when Barman's files changed."""
        if self._state.server(server.name).phase != "running":
            return  # the start-up lists backups itself
        self.refresh_if_files_changed(server)

    def refresh_if_files_changed(self, server: ServerSettings) -> None:
        """``list-backups`` (a Python process) only when Barman's backup files changed since
        the last list, whatever the phase: the same files give the same list."""
        self.current(server)

    def current(self, server: ServerSettings) -> list[Backup] | None:
        """The backups as Barman lists them: the last list while Barman's backup files are
        unchanged, else a fresh one (None when Barman could not say)."""
        if self._fingerprint(server) != self._fingerprints.get(server.name):
            return self.refresh(server)
        return self._state.server(server.name).backups

    def take(
        self, server: ServerSettings, *, immediate: bool, trigger: str, incremental: bool = False
    ) -> Outcome | None:
        """One backup, or None when one of this server is already running; once DONE,
        ``on_done`` outside the lock (the front re-checks a red check the backup may clear)."""
        lock = self._running(server.name)
        if not lock.acquire(blocking=False):
            _log.warning("backup_skipped", reason="a backup of this server is already running")
            return None
        try:
            if not wait_for_copy_slot(self._copy_slots, self._stop, self._settings):
                raise RunnerClosed("backup")
            try:
                parent = self._parent(server) if incremental else None
                outcome, done = self._backup(
                    server, immediate=immediate, trigger=trigger, parent=parent
                )
            finally:
                self._copy_slots.release()
        finally:
            lock.release()
        if done and self._on_done is not None:
            self._on_done(server)
        return outcome

    def _parent(self, server: ServerSettings) -> str | None:
        """The parent of the next incremental, chosen from a fresh list; None means a full."""
        backups = self.refresh(server)
        if backups is None:
            _log.warning("incremental_taken_as_full", reason="barman list-backups failed")
            return None
        decision = next_backup(backups, server.backup_policy.chain_max)
        _log.info(
            "incremental_parent_chosen" if decision.parent else "incremental_taken_as_full",
            parent=decision.parent,
            reason=decision.reason,
        )
        return decision.parent

    def _backup(
        self, server: ServerSettings, *, immediate: bool, trigger: str, parent: str | None = None
    ) -> tuple[Outcome, bool]:  # Barman's outcome; whether it is DONE and verified
        _log.info("backup_starting", trigger=trigger, immediate_checkpoint=immediate, parent=parent)
        self._deadman(server, "/start")
        started = time.time()
        postgres, backups = self._postgres.get(server.name), self._state.server(server.name).backups
        free = shutil.disk_usage(self._settings.barman_home).free
        outcome = no_room(server, backups, free, postgres, parent) or self._barman.backup(
            server.name,
            immediate=immediate,
            wait_timeout=self._settings.backup_wait_timeout,
            parent=parent,
        )
        data = outcome.data if isinstance(outcome.data, dict) else {}
        backup_id = str(data["backup_id"]) if data.get("backup_id") else None
        reason = "" if outcome.ok else outcome.reason()
        if outcome.ok and backup_id is not None:
            reason = self._verify(server, backup_id)
        summary = BackupSummary(
            ok=not reason and outcome.ok,
            trigger=trigger,
            backup_id=backup_id,
            status=data.get("status"),
            size_bytes=data.get("size"),
            duration_s=round(outcome.completed.duration, 3),
            reason=reason,
        )
        _log.log(
            logging.INFO if summary.ok else logging.ERROR, "backup_finished", **summary.as_dict()
        )
        self._state.record_backup(server.name, summary)
        self._state.record_run(
            server.name,
            JobRun(
                "backup",
                started,
                summary.duration_s,
                summary.ok,
                reason,
                outcome.completed.returncode,
            ),
        )
        self._deadman(server, "" if summary.ok else "/fail")
        after = self.refresh(server) or []
        if summary.ok:  # a FAILED backup keeps barman check red: superseded now, so gone now
            self._delete_failures(server)
        else:  # the space a copy cut short holds is what the next attempt needs
            policy = self._settings.failed_backups
            doomed = out_of_space_failures(backups, after, reason, policy)
            self._delete(server, doomed, _OUT_OF_SPACE_WHY)
        return outcome, summary.ok

    def _verify(self, server: ServerSettings, backup_id: str) -> str:
        """pg_verifybackup on the new backup; why it was rejected, or empty."""
        verification = verify_backup(
            self._barman,
            server.name,
            backup_id,
            pg_bin_dir=self._settings.pg_bin_dir,
            # Part of the backup: a stop gives it the backup's grace period.
            kind="backup",
        )
        self._state.record_verification(server.name, verification)
        self.verdicts.record_verification(server.name, verification)
        return "" if verification.ok else f"backup verification failed: {verification.reason}"

    def verify_pending(self, server: ServerSettings) -> None:
        """Verify the newest backup that has no verdict yet (taken by hand, or before this
        daemon), unless a backup of this server runs: it reads the disk enough."""
        lock = self._running(server.name)
        if not lock.acquire(blocking=False):
            return
        try:
            self.verdicts.verify_pending(server.name)
        finally:
            lock.release()

    def _deadman(self, server: ServerSettings, suffix: str) -> None:
        if server.deadman_url is not None and self._notifier is not None:
            self._notifier.ping(server.deadman_url, suffix, what=f"deadman{suffix or '/success'}")

    def refresh(self, server: ServerSettings) -> list[Backup] | None:
        """Barman's list of backups into the state; None when Barman could not say."""
        fingerprint = self._fingerprint(server)
        outcome, backups = self._barman.list_backups(server.name)
        if not outcome.ok and fail_unfinished(self._barman.home, server.name):  # then again
            outcome, backups = self._barman.list_backups(server.name)
        if not outcome.ok:
            return None
        self._state.record_backups(server.name, backups)
        self.verdicts.load(server.name, backups)
        self.verdicts.hold(server.name)
        self._fingerprints[server.name] = fingerprint
        return backups

    def _fingerprint(self, server: ServerSettings) -> tuple[int, ...]:
        return self._barman.home.backups_fingerprint(server.name)

    def close_interrupted(self, server: ServerSettings) -> list[Backup] | None:
        """A backup left STARTED by a run that was killed is FAILED; the daemon stopped every
        Barman process of the previous run before this, so none of them can still be going.
        Returns the backups afterwards (None when Barman could not list them)."""
        backups = self.current(server)
        stale = stale_started(backups or [])
        for backup_id in stale:
            marked = self._barman.home.mark_failed(server.name, backup_id, _INTERRUPTED)
            _log.warning("interrupted_backup_marked_failed", backup_id=backup_id, marked=marked)
        return self.refresh(server) if stale else backups

    def delete_superseded_failures(self, server: ServerSettings) -> None:
        """FAILED_BACKUPS=delete: a FAILED backup keeps ``barman check`` red until deleted."""
        lock = self._running(server.name)
        if not lock.acquire(blocking=False):
            return  # a backup runs: its verify-backup reads every backup.info, ours included
        try:
            self._delete_failures(server)
        finally:
            lock.release()

    def _delete_failures(self, server: ServerSettings) -> None:
        backups = self._state.server(server.name).backups
        why = "superseded by a newer DONE backup (FAILED_BACKUPS=delete)"
        self._delete(server, failed_to_delete(backups, self._settings.failed_backups), why)

    def _delete(self, server: ServerSettings, doomed: list[str], why: str) -> None:
        for backup_id in doomed:
            deleted = self._barman.delete(server.name, backup_id)
            _log.log(
                logging.INFO if deleted.ok else logging.ERROR,
                "failed_backup_deleted" if deleted.ok else "failed_backup_not_deleted",
                backup_id=backup_id,
                reason=why,
            )
        if doomed:  # a list-backups only when something was deleted
            self.refresh(server)
