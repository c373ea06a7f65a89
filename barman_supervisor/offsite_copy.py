"""The off-site copy job: runs ``barman-cloud-*`` for one server every OFFSITE_INTERVAL.

Each round lists the store, copies the backups it lacks (``barman-cloud-backup`` run the way
Barman runs it as a post-backup hook, on the finished local backup), then the WAL files after
the last one copied (``barman-cloud-wal-archive``), in order, and applies the store's retention
(``barman-cloud-backup-delete --retention-policy``) after a new backup reached it. The first
failure ends the round; the next waits with exponential backoff. What is owed stays owed: the
newest WAL file copied is kept in ``BARMAN_HOME/.offsite/<server>.json``, so a restart or an
outage resumes where the copy stopped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from barman_supervisor.barman import Backup, Barman
from barman_supervisor.healing import restart_delay
from barman_supervisor.log import bind, get_logger
from barman_supervisor.offsite import (
    backups_owed,
    cloud_env,
    cloud_options,
    cloud_program,
    connectivity_refusal,
    first_error_line,
    is_wal_name,
    parse_backup_info,
    parse_store_backups,
    refusals_that_matter,
    uncopyable_reason,
    upload_options,
    wal_owed,
)
from barman_supervisor.offsite_keep import Ledger, RetentionHold, backup_info_path
from barman_supervisor.proc import Completed, Runner, RunnerClosed
from barman_supervisor.settings import ConfigError, Offsite, ServerSettings, Settings
from barman_supervisor.state import State

_log = get_logger(__name__)
LIST_TIMEOUT = 120.0
WAL_TIMEOUT = 300.0
# The backoff between failed rounds grows to this (the store may be down for hours).
MAX_BACKOFF = 600.0


class CopyFailed(Exception):
    """One ``barman-cloud-*`` step failed; the message is the one line to show."""


class OffsiteCopier:
    def __init__(self, settings: Settings, runner: Runner, barman: Barman, state: State) -> None:
        self._settings = settings
        self._runner = runner
        self._state = state
        self._ledger = Ledger(settings.barman_home)
        self._hold = RetentionHold(settings, barman, state, self._ledger)
        self._failures: dict[str, tuple[int, float]] = {}
        self._locks = {server.name: threading.Lock() for server in settings.servers}

    def connectivity_check(self) -> None:
        """At start, before anything is written: a wrong key, an unknown bucket or an endpoint
        that does not answer is one line and exit 2 (ConfigError)."""
        for server in self._settings.servers:
            if server.offsite is None:
                continue
            done = self._cloud(server, "barman-cloud-backup", "-t", kind="offsite-check")
            if not done.ok:
                detail = first_error_line(done.stderr, f"exit code {done.returncode}")
                raise ConfigError(
                    connectivity_refusal(f"OFFSITE_URL ({server.name})", server.offsite.url, detail)
                )
            _log.info("offsite_reachable", server=server.name, url=server.offsite.url)

    def run(self, server: ServerSettings) -> None:
        """One copy round (the scheduled job); never raises, records its outcome. While it
        backs off after a failure it still measures the WAL backlog for the probes."""
        if server.offsite is None:
            return
        lock = self._locks[server.name]
        if not lock.acquire(blocking=False):
            return
        try:
            with bind(server=server.name, job="offsite"), contextlib.suppress(RunnerClosed):
                record = dict(self._state.server(server.name).offsite)
                record.setdefault("url", server.offsite.url)
                self._measure_wal(server, record)
                if not self._backing_off(server.name):
                    self._round(server, server.offsite, record)
                self._hold.apply(server, record)
                self._state.update(server.name, offsite=record)
        finally:
            lock.release()

    def _round(self, server: ServerSettings, offsite: Offsite, record: dict[str, Any]) -> None:
        try:
            copied = self._copy_backups(server, record)
            self._copy_wal(server, record)
            if copied or "retention_at" not in record:
                self._apply_retention(server, offsite, record)
        except CopyFailed as exc:
            attempts = self._failures.get(server.name, (0, 0.0))[0] + 1
            delay = restart_delay(attempts, ceiling=MAX_BACKOFF)
            self._failures[server.name] = (attempts, time.monotonic() + delay)
            record.update(
                last_error=str(exc), last_error_at=time.time(), failures=_n(record, "failures") + 1
            )
            _log.error("offsite_copy_failed", reason=str(exc), attempt=attempts, retry_in_s=delay)
        else:
            if record.get("last_error"):
                _log.info("offsite_copy_recovered")
            self._failures.pop(server.name, None)
            record.update(last_error=None, last_ok_at=time.time())

    def _backing_off(self, server: str) -> bool:
        return time.monotonic() < self._failures.get(server, (0, 0.0))[1]

    # Backups ----------------------------------------------------------------------------------
    def _copy_backups(self, server: ServerSettings, record: dict[str, Any]) -> bool:
        listed = self._cloud(
            server, "barman-cloud-backup-list", "--format", "json", kind="offsite-list"
        )
        self._require(listed, "listing the store")
        in_store = {b.backup_id for b in parse_store_backups(listed.stdout)}
        backups = self._state.server(server.name).backups
        refused = _refusals(self._settings.barman_home, server.name, backups)
        owed = backups_owed([b for b in backups if b.backup_id not in refused], in_store)
        record.update(store_backups=sorted(in_store), backups_owed=[b.backup_id for b in owed])
        record.update(oldest_owed_backup=None, oldest_owed_backup_end=None)
        # Reported on their own (health: offsite); they hold up neither WAL nor newer backups.
        record["refused_backups"] = refusals_that_matter(backups, in_store, refused)
        for backup in owed:
            record.update(
                oldest_owed_backup=backup.backup_id, oldest_owed_backup_end=backup.end_time
            )
            self._copy_backup(server, backup.backup_id)
            record["store_backups"] = sorted({*record["store_backups"], backup.backup_id})
            record["backups_owed"].remove(backup.backup_id)
            record.update(
                newest_copied_backup=backup.backup_id,
                newest_copied_backup_end=backup.end_time,
                bytes_copied=_n(record, "bytes_copied") + (backup.size_bytes or 0),
                oldest_owed_backup=None,
                oldest_owed_backup_end=None,
            )
        return bool(owed)

    def _copy_backup(self, server: ServerSettings, backup_id: str) -> None:
        base = self._settings.barman_home / server.name
        info_path = backup_info_path(self._settings.barman_home, server.name, backup_id)
        if info_path is None:
            raise CopyFailed(f"backup {backup_id}: no backup.info under {base}")
        _log.info("offsite_backup_copy_started", backup_id=backup_id)
        # The environment Barman gives a post-backup retry hook for a DONE backup.
        hook_env = {
            "BARMAN_HOOK": "backup_retry_script",
            "BARMAN_PHASE": "post",
            "BARMAN_SERVER": server.name,
            "BARMAN_BACKUP_DIR": str(base / "base" / backup_id),
            "BARMAN_BACKUP_ID": backup_id,
            "BARMAN_BACKUP_INFO_PATH": str(info_path),
            "BARMAN_STATUS": "DONE",
        }
        done = self._cloud(
            server,
            "barman-cloud-backup",
            *upload_options(_offsite(server)),
            kind="offsite-backup",
            timeout=self._settings.offsite_backup_timeout,
            extra_env=hook_env,
        )
        self._require(done, f"copying backup {backup_id}")
        _log.info("offsite_backup_copied", backup_id=backup_id, duration_s=round(done.duration, 3))

    # WAL ---------------------------------------------------------------------------------------
    def _owed_wal(self, server: ServerSettings) -> tuple[dict[str, Path], list[str]]:
        files = {
            path.name: path
            for path in _wal_files(self._settings.barman_home / server.name / "wals")
        }
        watermark = self._ledger.read(server.name).get("wal_copied")
        return files, wal_owed(files, str(watermark) if watermark else None)

    def _measure_wal(self, server: ServerSettings, record: dict[str, Any]) -> None:
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
        record.update(wal_owed=len(owed), oldest_owed_wal_at=oldest, oldest_owed_wal=oldest_name)

    def _copy_wal(self, server: ServerSettings, record: dict[str, Any]) -> None:
        files, owed = self._owed_wal(server)
        for index, name in enumerate(owed):
            path = files[name]
            try:
                size, archived_at = path.stat().st_size, path.stat().st_mtime
            except FileNotFoundError:  # removed by Barman's retention meanwhile
                continue
            record.update(
                wal_owed=len(owed) - index, oldest_owed_wal_at=archived_at, oldest_owed_wal=name
            )
            done = self._cloud(
                server,
                "barman-cloud-wal-archive",
                *upload_options(_offsite(server)),
                trailing=(str(path),),
                kind="offsite-wal",
                timeout=WAL_TIMEOUT,
            )
            self._require(done, f"copying WAL {name}")
            self._ledger.write(server.name, wal_copied=name)
            record.update(
                wal_copied=name,
                wal_copied_at=time.time(),
                bytes_copied=_n(record, "bytes_copied") + size,
                wal_files_copied=_n(record, "wal_files_copied") + 1,
            )
        record.update(wal_owed=0, oldest_owed_wal_at=None, oldest_owed_wal=None)

    # Retention -------------------------------------------------------------------------------
    def _apply_retention(
        self, server: ServerSettings, offsite: Offsite, record: dict[str, Any]
    ) -> None:
        if not offsite.retention_policy:
            return
        done = self._cloud(
            server,
            "barman-cloud-backup-delete",
            "--retention-policy",
            offsite.retention_policy,
            kind="offsite-retention",
            timeout=LIST_TIMEOUT,
        )
        self._require(done, "applying the store's retention policy")
        record["retention_at"] = time.time()

    # Running ---------------------------------------------------------------------------------
    def _cloud(
        self,
        server: ServerSettings,
        program: str,
        *flags: str,
        kind: str,
        trailing: tuple[str, ...] = (),
        timeout: float = LIST_TIMEOUT,
        extra_env: dict[str, str] | None = None,
    ) -> Completed:
        """One ``barman-cloud-*`` command: options and ``flags``, URL, server, ``trailing``
        (a WAL path). The keys go only into its environment."""
        offsite = _offsite(server)
        argv = [
            cloud_program(self._settings.barman_bin, program),
            *cloud_options(offsite),
            *flags,
            offsite.url,
            server.name,
            *trailing,
        ]
        return self._runner.run(
            argv,
            kind=kind,
            timeout=timeout,
            env={**cloud_env(offsite), **(extra_env or {})},
        )

    @staticmethod
    def _require(done: Completed, what: str) -> None:
        if done.timed_out:
            raise CopyFailed(f"{what}: timed out after {done.duration:.0f} s")
        if not done.ok:
            raise CopyFailed(
                f"{what}: {first_error_line(done.stderr, f'exit code {done.returncode}')}"
            )


def _refusals(barman_home: Path, server: str, backups: list[Backup]) -> dict[str, str]:
    """DONE backups barman-cloud-backup cannot copy (incremental, compressed), and why."""
    refused = {}
    for backup in backups:
        path = backup_info_path(barman_home, server, backup.backup_id)
        if backup.status != "DONE" or path is None:
            continue
        reason = uncopyable_reason(parse_backup_info(path.read_text()))
        if reason is not None:
            refused[backup.backup_id] = reason
    return refused


def _offsite(server: ServerSettings) -> Offsite:
    assert server.offsite is not None
    return server.offsite


def _n(record: dict[str, Any], key: str) -> int:
    return int(record.get(key) or 0)


def _wal_files(wals: Path) -> list[Path]:
    """Files of Barman's WAL archive: ``wals/<timeline+log>/<segment>`` and history files."""
    if not wals.is_dir():
        return []
    return [
        path
        for path in (*wals.glob("*"), *wals.glob("*/*"))
        if path.is_file() and is_wal_name(path.name)
    ]
