"""Barman's records of its backups as plain data: the statuses, a backup as the daemon sees
it, and the one reader of a ``backup.info`` file.

``backup.info`` is Barman's own record of a backup (``key=value`` lines, ``None`` for an unset
field; Barman's ``barman/infofile.py`` writes it). It holds what ``list-backups`` does not
print: the start time, the parent of an incremental backup, the first WAL segment, the
PostgreSQL version and the compression. ``home`` finds the file; this module reads its text.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

# How an unset field is written: Barman writes None as "None"; "null" and an empty value are
# read the same way.
_UNSET = ("", "None", "null")


class BackupStatus(StrEnum):
    """A backup's status as Barman records it (``BackupInfo.STATUS_ALL``)."""

    EMPTY = "EMPTY"
    STARTED = "STARTED"
    WAITING_FOR_WALS = "WAITING_FOR_WALS"
    DONE = "DONE"
    SYNCING = "SYNCING"
    FAILED = "FAILED"


# A backup in one of these may still be running: no second backup may start meanwhile.
RUNNING_STATUSES = (BackupStatus.STARTED, BackupStatus.WAITING_FOR_WALS)


@dataclass(frozen=True)
class Backup:
    """One backup as ``list-backups`` shows it, with its start time from ``backup.info``.

    ``status`` is Barman's text, compared with ``BackupStatus`` members: a status a newer
    Barman adds is shown as it is rather than refused."""

    backup_id: str
    status: str
    end_time: float | None
    size_bytes: int | None
    wal_size_bytes: int | None = None
    begin_time: float | None = None
    # From backup.info (issue 13): the parent of an incremental backup, None for a full; whether
    # PostgreSQL summarized WAL when it was taken (None: not said, e.g. PostgreSQL < 17).
    parent_id: str | None = None
    summarize_wal: bool | None = None
    # When Barman last wrote its backup.info (the file's time), for a backup with neither a
    # begin nor an end time: one that failed at its start ("failure starting backup") has
    # no other time, yet keeps `barman check` red until it is deleted.
    recorded_at: float | None = None
    # Seconds Barman spent copying the files (``copy_stats``' ``copy_time``, what ``show-backup``
    # calls "Copy time"); None when it recorded none.
    copy_time_s: float | None = None

    @property
    def incremental(self) -> bool:
        return self.parent_id is not None

    @property
    def known_time(self) -> float | None:
        """Its start, else its end, else when Barman recorded it; None: age unknown."""
        for moment in (self.begin_time, self.end_time, self.recorded_at):
            if moment is not None:
                return moment
        return None

    def order_key(self) -> tuple[float, str]:
        """Newer sorts later, by Barman's timestamps and never by the ID: IDs are the local time
        of the Barman process (``TZ``), so a changed time zone would reorder them. A backup with
        no known time (no ``backup.info``) counts as the oldest."""
        moment = self.known_time
        return (moment if moment is not None else -math.inf, self.backup_id)


def newest_backup(backups: Iterable[Backup]) -> Backup | None:
    return max(backups, key=Backup.order_key, default=None)


def newest_done(backups: Iterable[Backup]) -> Backup | None:
    """The newest DONE backup, by Barman's timestamps (see ``Backup.order_key``)."""
    return newest_backup(b for b in backups if b.status == BackupStatus.DONE)


@dataclass(frozen=True)
class BackupFacts:
    """What ``barman show-backup`` says about one backup, as far as restoring needs it."""

    backup_id: str
    status: str
    version_num: int
    size_bytes: int
    end_time: float | None
    incremental: bool = False
    # Barman's backup_compression when the backup was taken (tar files); None: plain files.
    compression: str | None = None


@dataclass(frozen=True)
class BackupInfo:
    """A ``backup.info`` file's fields; empty when there is none or it cannot be read."""

    fields: Mapping[str, str]

    def get(self, key: str) -> str | None:
        """One field; None when absent or unset."""
        value = self.fields.get(key, "").strip()
        return None if value in _UNSET else value

    @property
    def status(self) -> str | None:
        return self.get("status")

    @property
    def begin_wal(self) -> str | None:
        return self.get("begin_wal")

    @property
    def end_wal(self) -> str | None:
        return self.get("end_wal")

    @property
    def parent_id(self) -> str | None:
        """The parent of a block-level incremental backup; None for a full one."""
        return self.get("parent_backup_id")

    @property
    def compression(self) -> str | None:
        """Barman's ``backup_compression`` of the backup (compressed tar files); None: plain."""
        return self.get("compression")

    @property
    def version(self) -> int | None:
        """The ``version_num`` of the PostgreSQL the backup was taken from."""
        value = self.get("version")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def begin_time(self) -> float | None:
        """``begin_time=2026-11-23 03:00:01.123456+00:00`` as a timestamp; None without an
        offset (the moment is then unknown)."""
        value = self.get("begin_time")
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment.timestamp() if moment.tzinfo is not None else None

    @property
    def copy_time(self) -> float | None:
        """``copy_stats={'copy_time': 3.2, ...}`` (a Python literal, as Barman writes it): the
        seconds the copy took; None when unset or unreadable."""
        value = self.get("copy_stats")
        if value is None:
            return None
        try:
            stats = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return None
        seconds = stats.get("copy_time") if isinstance(stats, dict) else None
        return float(seconds) if isinstance(seconds, int | float) else None

    def chain_fields(self) -> dict[str, Any]:
        """``parent_id`` and ``summarize_wal`` of a ``Backup``."""
        summarize = self.get("summarize_wal")
        return {
            "parent_id": self.parent_id,
            "summarize_wal": None if summarize is None else summarize == "on",
        }


def parse_backup_info(text: str) -> BackupInfo:
    """The text of a ``backup.info``; lines without ``=`` are ignored."""
    pairs = (line.partition("=") for line in text.splitlines())
    return BackupInfo({key: value for key, equals, value in pairs if equals})


def failed_fields(text: str, reason: str) -> str:
    """A ``backup.info`` recording its backup as FAILED: only ``status`` and ``error`` change,
    every other line stays as Barman wrote it."""
    fields = {"status": BackupStatus.FAILED.value, "error": reason.replace("\n", " ")}
    rewritten = [
        f"{key}={fields.pop(key)}" if (key := line.split("=", 1)[0]) in fields else line
        for line in text.splitlines()
    ]
    rewritten += [f"{key}={value}" for key, value in fields.items()]
    return "\n".join(rewritten) + "\n"
