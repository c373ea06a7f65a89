"""The off-site copy jobs: ``barman-cloud-*`` for one server every OFFSITE_INTERVAL.

Two jobs per server, so that a backup upload taking hours never holds up the WAL:

* backups: list the store, copy the DONE backups it lacks, oldest first (``barman-cloud-backup``
  run the way Barman runs it as a post-backup hook, on the finished local backup), then apply
  the store's retention (``barman-cloud-backup-delete --retention-policy``) after one arrived;
* WAL: copy the files of Barman's archive after the newest one copied, in order
  (``barman-cloud-wal-archive``).

The first failure ends a job's round; its next round waits with exponential backoff. What is
owed stays owed: the newest WAL file copied is kept in ``BARMAN_HOME/.offsite/<server>.json``,
so a restart or an outage resumes where the copy stopped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from barman_supervisor.barman.commands import Barman
from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.records import Backup, BackupStatus
from barman_supervisor.config import Offsite, ServerSettings, Settings
from barman_supervisor.errors import ConfigError, CopyFailed, RunnerClosed
from barman_supervisor.log import bind, get_logger
from barman_supervisor.offsite.hold import Ledger, RetentionHold
from barman_supervisor.offsite.holes import WalHole, hole_record, store_segments, wal_holes
from barman_supervisor.offsite.plan import (
    CopyKind,
    OffsiteRecord,
    StoreBackup,
    StoreListing,
    backups_owed,
    cloud_env,
    cloud_options,
    cloud_program,
    connectivity_refusal,
    contiguous_prefix,
    first_error_line,
    parse_store_listing,
    refusals_that_matter,
    store_listing_argv,
    uncopyable_reason,
    upload_options,
    wal_owed,
)
from barman_supervisor.postgres.wal import is_wal_name, timeline_of
from barman_supervisor.process.runner import Completed, Runner
from barman_supervisor.retry import restart_delay
from barman_supervisor.status.state import State

_log = get_logger(__name__)
LIST_TIMEOUT = 120.0
WAL_TIMEOUT = 300.0
# The backoff between failed rounds grows to this (the store may be down for hours).
MAX_BACKOFF = 600.0
# One round of a copy job for a server.
Round = Callable[[ServerSettings], None]
KINDS: tuple[CopyKind, ...] = ("backup", "wal")


class Cloud:
    """Runs ``barman-cloud-*`` for a server: the keys go only into the child's environment."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self._settings = settings
        self._runner = runner

    def run(
        self,
        server: ServerSettings,
        program: str,
        *flags: str,
        kind: str,
        trailing: tuple[str, ...] = (),
        timeout: float = LIST_TIMEOUT,
        extra_env: dict[str, str] | None = None,
    ) -> Completed:
        """Options and ``flags``, URL, server, ``trailing`` (a WAL path)."""
        offsite = _offsite(server)
        argv = [
            cloud_program(self._settings.barman_bin, program),
            *cloud_options(offsite),
            *flags,
            offsite.url,
            server.name,
            *trailing,
        ]
        env = {**cloud_env(offsite), **(extra_env or {})}
        return self._runner.run(argv, kind=kind, timeout=timeout, env=env)

    def listing(self, server: ServerSettings) -> StoreListing:
        """What the store holds for the server: its backups and WAL names, in one run
        (``STORE_LISTING_SCRIPT``)."""
        offsite = _offsite(server)
        argv = store_listing_argv(self._settings.barman_bin, offsite, server.name)
        done = self._runner.run(
            argv, kind="offsite-list", timeout=LIST_TIMEOUT, env=cloud_env(offsite)
        )
        self.require(done, "listing the store")
        listing = parse_store_listing(done.stdout)
        if listing is None:
            raise CopyFailed("listing the store: not a listing of backups and WAL")
        return listing

    def require(self, done: Completed, what: str) -> None:
        if done.timed_out:
            raise CopyFailed(f"{what}: timed out after {done.duration:.0f} s")
        if not done.ok:
            raise CopyFailed(
                f"{what}: {first_error_line(done.stderr, f'exit code {done.returncode}')}"
            )

    def connectivity_check(self) -> None:
        """At start, before anything is written: a wrong key, an unknown bucket or an endpoint
        that does not answer is one line and exit 2 (ConfigError)."""
        for server in self._settings.servers:
            if server.offsite is None:
                continue
            done = self.run(server, "barman-cloud-backup", "-t", kind="offsite-check")
            if not done.ok:
                detail = first_error_line(done.stderr, f"exit code {done.returncode}")
                raise ConfigError(
                    connectivity_refusal(f"OFFSITE_URL ({server.name})", server.offsite.url, detail)
                )
            _log.info("offsite_reachable", server=server.name, url=server.offsite.url)


class Records:
    """Each server's off-site record, written by both jobs through the named methods below (one
    per fact, as the State's writers), published whole to the State after each change."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._records: dict[str, OffsiteRecord] = {}

    def get(self, server: str) -> OffsiteRecord | None:
        with self._lock:
            record = self._records.get(server)
            return None if record is None else replace(record)

    def store_listed(
        self, server: ServerSettings, in_store: set[str], owed: list[str], refused: dict[str, str]
    ) -> None:
        """A listing of the store: what it has, what it lacks, what cannot be copied."""
        with self._change(server) as record:
            record.store_backups = sorted(in_store)
            record.backups_owed = list(owed)
            record.refused_backups = dict(refused)
            record.oldest_owed_backup = record.oldest_owed_backup_end = None

    def backup_copying(self, server: ServerSettings, backup: Backup) -> None:
        with self._change(server) as record:
            record.oldest_owed_backup = backup.backup_id
            record.oldest_owed_backup_end = backup.end_time

    def backup_copied(
        self, server: ServerSettings, backup: Backup, in_store: set[str], owed: list[str]
    ) -> None:
        with self._change(server) as record:
            record.bytes_copied += backup.size_bytes or 0
            record.store_backups = sorted(in_store)
            record.backups_owed = list(owed)
            record.newest_copied_backup = backup.backup_id
            record.newest_copied_backup_end = backup.end_time
            record.oldest_owed_backup = record.oldest_owed_backup_end = None

    def wal_backlog(
        self, server: ServerSettings, owed: int, oldest: str | None, oldest_at: float | None
    ) -> None:
        """How many WAL files the store lacks, and the oldest of them (None when none)."""
        with self._change(server) as record:
            record.wal_owed = owed
            record.oldest_owed_wal = oldest
            record.oldest_owed_wal_at = oldest_at

    def wal_copied(self, server: ServerSettings, newest: Path, files: int, size: int) -> None:
        with self._change(server) as record:
            record.wal_copied, record.newest_wal_at = newest.name, _stat(newest, "st_mtime") or None
            record.wal_copied_at = time.time()
            record.wal_files_copied += files
            record.bytes_copied += size

    def round_failed(self, server: ServerSettings, kind: CopyKind, reason: str) -> None:
        with self._change(server) as record:
            _set_error(record, kind, reason)
            record.failures += 1
            record.last_error_at = time.time()

    def round_succeeded(self, server: ServerSettings, kind: CopyKind) -> None:
        with self._change(server) as record:
            _set_error(record, kind, None)
            record.last_ok_at = time.time()

    def holes_found(self, server: ServerSettings, holes: list[WalHole]) -> None:
        """The store's WAL checked: the ranges missing (none: contiguous)."""
        with self._change(server) as record:
            record.wal_holes = [hole_record(hole) for hole in holes]
            record.wal_missing = sum(hole.count for hole in holes)

    def retention_applied(self, server: ServerSettings) -> None:
        with self._change(server) as record:
            record.retention_at = time.time()

    def retention_held(self, server: ServerSettings, backup_id: str | None) -> None:
        with self._change(server) as record:
            record.retention_hold = backup_id

    @contextlib.contextmanager
    def _change(self, server: ServerSettings) -> Iterator[OffsiteRecord]:
        with self._lock:
            record = self._records.setdefault(server.name, OffsiteRecord(_offsite(server).url))
            yield record
            snapshot = record.as_dict()
        self._state.record_offsite(server.name, snapshot)


class OffsiteCopier:
    def __init__(self, settings: Settings, runner: Runner, barman: Barman, state: State) -> None:
        self._settings = settings
        self._state = state
        self._home = barman.home
        self._cloud = Cloud(settings, runner)
        self._records = Records(state)
        self._ledger = Ledger(settings.barman_home)
        self._hold = RetentionHold(settings, barman, state, self._ledger)
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}
        self._locks = {
            (kind, server.name): threading.Lock() for kind in KINDS for server in settings.servers
        }

    def connectivity_check(self) -> None:
        self._cloud.connectivity_check()

    def run_backups(self, server: ServerSettings) -> None:
        """The backups job (scheduled); never raises, records its outcome."""
        self._guarded("backup", server, self._backups_round)

    def run_wal(self, server: ServerSettings, wait: bool = False) -> None:
        """The WAL job: scheduled (skipped while a round runs), or at once after archive-wal
        (``wait``s behind a running round: it may have listed ``wals/`` before the new files).
        Backing off after a failure, it still measures the backlog and holds retention."""
        self._guarded("wal", server, self._copy_wal, wait)

    def _guarded(
        self, kind: CopyKind, server: ServerSettings, body: Round, wait: bool = False
    ) -> None:
        lock = self._locks[(kind, server.name)]
        if server.offsite is None or not lock.acquire(blocking=wait):
            return
        try:
            with bind(server=server.name, job=f"offsite-{kind}"), contextlib.suppress(RunnerClosed):
                if kind == "wal":
                    self._measure_wal(server)
                attempts, not_before = self._failures.get((kind, server.name), (0, 0.0))
                if time.monotonic() >= not_before:
                    self._attempt(kind, server, body, attempts)
                if kind == "wal":
                    held = self._hold.apply(server, self._records.get(server.name))
                    self._records.retention_held(server, held)
        finally:
            lock.release()

    def _attempt(
        self,
        kind: CopyKind,
        server: ServerSettings,
        body: Callable[[ServerSettings], None],
        attempts: int,
    ) -> None:
        try:
            body(server)
        except CopyFailed as exc:
            delay = restart_delay(attempts + 1, ceiling=MAX_BACKOFF)
            self._failures[(kind, server.name)] = (attempts + 1, time.monotonic() + delay)
            self._records.round_failed(server, kind, str(exc))
            _log.error(
                "offsite_copy_failed", reason=str(exc), attempt=attempts + 1, retry_in_s=delay
            )
            return
        before = self._records.get(server.name)
        if before is not None and (before.backup_error if kind == "backup" else before.wal_error):
            _log.info("offsite_copy_recovered", copy=kind)
        self._failures.pop((kind, server.name), None)
        self._records.round_succeeded(server, kind)

    # Backups ----------------------------------------------------------------------------------
    def _backups_round(self, server: ServerSettings) -> None:
        """One listing of the store (taken first: a consistent view for the hole check, even
        when retention deletes later in the round), the backups owed copied, retention."""
        record = self._records.get(server.name)
        listing = self._cloud.listing(server)
        copied = self._copy_backups(server, listing.backups)
        if copied or record is None or record.retention_at is None:
            self._apply_retention(server, _offsite(server))
        self._check_wal(server, listing)

    def _check_wal(self, server: ServerSettings, listing: StoreListing) -> None:
        """Issue 24: the store's WAL is contiguous from each stored backup's first segment to
        the newest copied segment; a hole is recorded (``/readyz``, ``/status``, ``/metrics``)
        and logged once per change. The history files are read from the local archive."""
        histories = {
            timeline_of(path.name): path.read_text()
            for path in self._home.wals_dir(server.name).glob("*.history")
        }
        segments = store_segments(listing.wal_names)
        # Up to the newest segment copied in order: one after it is owed, not lost (a parallel
        # batch may have sent a later file before an earlier one failed).
        mark = self._ledger.read(server.name).get("wal_copied")
        upto = max((s for s in segments if mark and s <= str(mark)), default=None)
        holes = wal_holes(segments, listing.backups, histories, upto) if upto else []
        before = self._records.get(server.name)
        if before is not None and before.wal_holes != [hole_record(hole) for hole in holes]:
            for hole in holes:
                _log.error("offsite_wal_hole", reason=hole.describe())
        self._records.holes_found(server, holes)

    def _copy_backups(self, server: ServerSettings, listed: list[StoreBackup]) -> bool:
        in_store = {b.backup_id for b in listed}
        backups = self._state.server(server.name).backups
        refused = _refusals(self._home, server.name, backups)
        owed = backups_owed([b for b in backups if b.backup_id not in refused], in_store)
        pending = [b.backup_id for b in owed]
        # Refusals are reported on their own (health: offsite); they hold up neither WAL nor
        # newer backups.
        self._records.store_listed(
            server, in_store, pending, refusals_that_matter(backups, in_store, refused)
        )
        for backup in owed:
            self._records.backup_copying(server, backup)
            self._copy_backup(server, backup.backup_id)
            in_store.add(backup.backup_id)
            pending.remove(backup.backup_id)
            self._records.backup_copied(server, backup, in_store, pending)
        return bool(owed)

    def _copy_backup(self, server: ServerSettings, backup_id: str) -> None:
        info_path = self._home.backup_info_path(server.name, backup_id)
        if info_path is None:
            base = self._home.server_dir(server.name)
            raise CopyFailed(f"backup {backup_id}: no backup.info under {base}")
        _log.info("offsite_backup_copy_started", backup_id=backup_id)
        # The environment Barman gives a post-backup retry hook for a DONE backup.
        hook_env = {
            "BARMAN_HOOK": "backup_retry_script",
            "BARMAN_PHASE": "post",
            "BARMAN_SERVER": server.name,
            "BARMAN_BACKUP_DIR": str(self._home.backup_dir(server.name, backup_id)),
            "BARMAN_BACKUP_ID": backup_id,
            "BARMAN_BACKUP_INFO_PATH": str(info_path),
            "BARMAN_STATUS": BackupStatus.DONE.value,
        }
        done = self._cloud.run(
            server,
            "barman-cloud-backup",
            *upload_options(_offsite(server)),
            kind="offsite-backup",
            timeout=self._settings.offsite_backup_timeout,
            extra_env=hook_env,
        )
        self._cloud.require(done, f"copying backup {backup_id}")
        _log.info("offsite_backup_copied", backup_id=backup_id, duration_s=round(done.duration, 3))

    # WAL ---------------------------------------------------------------------------------------
    def _owed_wal(self, server: ServerSettings) -> tuple[dict[str, Path], list[str]]:
        files = {path.name: path for path in _wal_files(self._home.wals_dir(server.name))}
        ledger = self._ledger.read(server.name)
        # A mark made for another store (OFFSITE_URL changed) says nothing about this one.
        same_store = ledger.get("url") == _offsite(server).url
        watermark = ledger.get("wal_copied") if same_store else None
        return files, wal_owed(files, str(watermark) if watermark else None)

    def _measure_wal(self, server: ServerSettings) -> None:
        """How many WAL files the store lacks and since when the oldest waits (file time:
        when Barman archived it)."""
        files, owed = self._owed_wal(server)
        oldest, oldest_name = None, None
        for name in owed:
            try:
                oldest, oldest_name = files[name].stat().st_mtime, name
                break
            except FileNotFoundError:
                continue
        self._records.wal_backlog(server, len(owed), oldest_name, oldest)

    def _copy_wal(self, server: ServerSettings) -> None:
        """OFFSITE_WAL_JOBS files at a time; the watermark moves over each batch's files up to
        its first failure, which ends the round."""
        files, owed = self._owed_wal(server)
        jobs = self._settings.offsite_wal_jobs
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="offsite-wal") as pool:
            for start in range(0, len(owed), jobs):
                batch = [name for name in owed[start : start + jobs] if files[name].exists()]
                if not batch:  # removed by Barman's retention meanwhile
                    continue
                self._records.wal_backlog(
                    server, len(owed) - start, batch[0], _stat(files[batch[0]], "st_mtime") or None
                )
                results = dict(
                    zip(
                        batch,
                        pool.map(lambda n: self._archive(server, files[n]), batch),
                        strict=True,
                    )
                )
                done = contiguous_prefix(
                    batch, {n for n, failure in results.items() if failure is None}
                )
                if done:
                    self._ledger.write(server.name, wal_copied=done[-1], url=_offsite(server).url)
                    size = sum(_stat(files[n], "st_size") for n in done)
                    self._records.wal_copied(server, files[done[-1]], len(done), size)
                failures = [failure for failure in results.values() if failure is not None]
                if failures:
                    raise CopyFailed(failures[0])
        self._records.wal_backlog(server, 0, None, None)

    def _archive(self, server: ServerSettings, path: Path) -> str | None:
        """One WAL file to the store; None, or why it failed."""
        done = self._cloud.run(
            server,
            "barman-cloud-wal-archive",
            *upload_options(_offsite(server)),
            trailing=(str(path),),
            kind="offsite-wal",
            timeout=WAL_TIMEOUT,
        )
        try:
            self._cloud.require(done, f"copying WAL {path.name}")
        except CopyFailed as exc:
            return str(exc)
        return None

    # Retention -------------------------------------------------------------------------------
    def _apply_retention(self, server: ServerSettings, offsite: Offsite) -> None:
        if not offsite.retention_policy:
            return
        done = self._cloud.run(
            server,
            "barman-cloud-backup-delete",
            "--retention-policy",
            offsite.retention_policy,
            kind="offsite-retention",
            timeout=LIST_TIMEOUT,
        )
        self._cloud.require(done, "applying the store's retention policy")
        self._records.retention_applied(server)


def _set_error(record: OffsiteRecord, kind: CopyKind, reason: str | None) -> None:
    if kind == "backup":
        record.backup_error = reason
    else:
        record.wal_error = reason


def _refusals(home: BarmanHome, server: str, backups: list[Backup]) -> dict[str, str]:
    """DONE backups barman-cloud-backup cannot copy (incremental, compressed), and why."""
    refused = {}
    for backup in backups:
        if backup.status != BackupStatus.DONE:
            continue
        reason = uncopyable_reason(home.backup_info(server, backup.backup_id))
        if reason is not None:
            refused[backup.backup_id] = reason
    return refused


def _stat(path: Path, field: str) -> int:
    """A file's size or time; 0 once Barman's retention removed it."""
    try:
        return int(getattr(path.stat(), field))
    except FileNotFoundError:
        return 0


def _offsite(server: ServerSettings) -> Offsite:
    assert server.offsite is not None
    return server.offsite


def _wal_files(wals: Path) -> list[Path]:
    """Files of Barman's WAL archive: ``wals/<timeline+log>/<segment>`` and history files."""
    if not wals.is_dir():
        return []
    return [
        path
        for path in (*wals.glob("*"), *wals.glob("*/*"))
        if path.is_file() and is_wal_name(path.name)
    ]
