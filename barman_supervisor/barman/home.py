"""Barman's files and directories under ``BARMAN_HOME``, read without a Barman process.

A probe that runs every few seconds for every server cannot afford a ``barman`` command (a
second of CPU each); a directory read costs nothing. Barman's layout, per server:

* ``base/<backup id>/`` the backups, and ``meta/<backup id>-backup.info`` (3.13.2+) or
  ``base/<backup id>/backup.info`` (older) each backup's record (``records``);
* ``streaming/`` WAL being received (``.partial``) or waiting to be archived, ``incoming/``
  WAL waiting from ``archive_command``;
* ``wals/<timeline+log>/<segment>`` the archive, and ``wals/<server>-xlog.db`` (``xlog.db``
  before Barman 3.20) its catalogue, one line per archived file.

The writes: ``mark_failed``, a field of ``backup.info`` Barman has no command for; and, after a
promotion, ``set_aside`` (WAL that exists only on the old timeline moved out of ``streaming/``
into ``wals-old-timeline/``, never deleted) and ``add_resume_file`` (where ``pg_receivewal``
resumes on the new timeline).
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from barman_supervisor.barman.records import BackupInfo, failed_fields, parse_backup_info
from barman_supervisor.files import write_atomically
from barman_supervisor.postgres.wal import archive_directory, is_archive_directory, segment_of_file

# Under a server's directory: WAL of a timeline the cluster left, past the point it forked.
OLD_TIMELINE_DIR = "wals-old-timeline"


@dataclass(frozen=True)
class WalHoldings:
    """WAL segment names at the head of Barman's archive for one server."""

    archived_newest: str | None
    streaming_oldest: str | None
    streaming_newest: str | None


class BarmanHome:
    def __init__(self, root: Path) -> None:
        self.root = root

    def server_dir(self, server: str) -> Path:
        return self.root / server

    def backup_dir(self, server: str, backup_id: str) -> Path:
        return self.root / server / "base" / backup_id

    def streaming_dir(self, server: str) -> Path:
        return self.root / server / "streaming"

    def wals_dir(self, server: str) -> Path:
        return self.root / server / "wals"

    def old_timeline_dir(self, server: str) -> Path:
        """Where WAL found only on a timeline the cluster left is kept (``set_aside``): beside
        Barman's own directories, which Barman neither reads nor cleans."""
        return self.root / server / OLD_TIMELINE_DIR

    def set_aside(self, server: str, names: Iterable[str]) -> Path:
        """Move these files of ``streaming/`` into ``old_timeline_dir``, names kept (a file
        already there of the same name gets a numbered suffix): nothing is deleted."""
        target = self.old_timeline_dir(server)
        target.mkdir(mode=0o700, exist_ok=True)
        for name in names:
            destination, copy = target / name, 0
            while destination.exists():
                copy += 1
                destination = target / f"{name}.{copy}"
            (self.streaming_dir(server) / name).rename(destination)
        return target

    def add_resume_file(self, server: str, name: str) -> None:
        """An empty ``.partial`` in ``streaming/``: ``pg_receivewal`` resumes at its segment."""
        (self.streaming_dir(server) / name).touch(exist_ok=True)

    def wal_files(self, server: str) -> list[Path]:
        """Every WAL segment file Barman holds for this server: archived and streamed."""
        archived = [
            path
            for directory in _directories(self.wals_dir(server))
            for path in directory.iterdir()
            if segment_of_file(path.name) is not None
        ]
        streamed = [
            self.streaming_dir(server) / name for name in _names(self.streaming_dir(server))
        ]
        return archived + [path for path in streamed if segment_of_file(path.name) is not None]

    def archived_segment(self, server: str, segment: str) -> Path:
        """Where Barman archives a segment (compressed or not, under the same name)."""
        return self.wals_dir(server) / archive_directory(segment) / segment

    def backup_info_path(self, server: str, backup_id: str) -> Path | None:
        """The ``backup.info`` of this backup that exists, if any: ``meta/`` first."""
        candidates = (
            self.root / server / "meta" / f"{backup_id}-backup.info",
            self.backup_dir(server, backup_id) / "backup.info",
        )
        return next((path for path in candidates if path.is_file()), None)

    def backup_info(self, server: str, backup_id: str) -> BackupInfo:
        """list-backups prints no start time and no parent, and no time at all for a FAILED or
        STARTED backup: ``backup.info`` has them (empty when missing or unreadable)."""
        path = self.backup_info_path(server, backup_id)
        try:
            text = path.read_text(encoding="utf-8", errors="replace") if path is not None else ""
        except OSError:
            text = ""
        return parse_backup_info(text)

    def backup_infos(self, server: str) -> dict[str, BackupInfo]:
        """Every backup's ``backup.info`` read from disk, by backup ID, without Barman: for when
        ``barman list-backups`` itself fails on one of them."""
        meta = self.root / server / "meta"
        ids = {path.name.removesuffix("-backup.info") for path in meta.glob("*-backup.info")}
        base = self.root / server / "base"
        ids |= {path.parent.name for path in base.glob("*/backup.info")}
        return {backup_id: self.backup_info(server, backup_id) for backup_id in sorted(ids)}

    def backup_info_time(self, server: str, backup_id: str) -> float | None:
        """When Barman last wrote this backup's ``backup.info``; None without one."""
        path = self.backup_info_path(server, backup_id)
        try:
            return path.stat().st_mtime if path is not None else None
        except OSError:  # deleted since
            return None

    def backups_fingerprint(self, server: str) -> tuple[int, ...]:
        """Modification times (ns) of Barman's backup directories and their ``backup.info``
        files: any backup started, finished, failed or deleted changes one of them."""
        stamps = []
        for directory in (self.root / server / "base", self.root / server / "meta"):
            try:
                stamps.append(directory.stat().st_mtime_ns)
                stamps.extend(
                    info.stat().st_mtime_ns
                    for info in [*directory.glob("*/backup.info"), *directory.glob("*-backup.info")]
                )
            except OSError:
                stamps.append(0)
        return tuple(stamps)

    def mark_failed(self, server: str, backup_id: str, reason: str) -> bool:
        """Record an interrupted backup as FAILED in its backup.info.

        Barman has no command for it: a backup whose process was killed stays STARTED for
        ever, and Barman then treats it as running. Only ``status`` and ``error`` change.
        """
        path = self.backup_info_path(server, backup_id)
        if path is None:
            return False
        mode = stat.S_IMODE(path.stat().st_mode)
        write_atomically(path, failed_fields(path.read_text(), reason), mode)
        return True

    def xlog_db(self, server: str) -> str:
        """The archive's catalogue (``name<TAB>size<TAB>time<TAB>compression`` lines); empty
        when there is none yet."""
        for name in (f"{server}-xlog.db", "xlog.db"):
            with contextlib.suppress(OSError):
                return (self.wals_dir(server) / name).read_text(encoding="utf-8", errors="replace")
        return ""

    def archive_empty(self, server: str) -> bool:
        """No WAL segment archived yet (``xlog.db`` missing or empty): Barman refuses a first
        backup until one is ("WAL archive" check)."""
        try:
            return (self.wals_dir(server) / f"{server}-xlog.db").stat().st_size == 0
        except FileNotFoundError:
            return True

    def wal_holdings(self, server: str) -> WalHoldings:
        """Which WAL segments Barman holds at the head of its archive: the newest archived and
        the range in the streaming directory. Two or three directory reads; no command."""
        streamed = _segments(self.streaming_dir(server))
        newest_dir = self._newest_archive_directory(server)
        archived = _segments(newest_dir) if newest_dir is not None else []
        return WalHoldings(
            archived_newest=max(archived, default=None),
            streaming_oldest=min(streamed, default=None),
            streaming_newest=max(streamed, default=None),
        )

    def newest_wal_at(self, server: str) -> float | None:
        """When the newest segment in ``wals/`` was written (its file time, kept by Barman's
        move): the recovery point of the archive. Two directory reads and a stat."""
        directory = self._newest_archive_directory(server)
        if directory is None:
            return None
        names = [name for name in _names(directory) if segment_of_file(name) is not None]
        return _newest_mtime([directory / max(names)]) if names else None

    def _newest_archive_directory(self, server: str) -> Path | None:
        try:
            return max(
                (d for d in self.wals_dir(server).iterdir() if is_archive_directory(d.name)),
                default=None,
            )
        except OSError:
            return None

    def waiting_wal(self, server: str) -> tuple[list[str], list[str]]:
        """File names in the server's ``streaming/`` and ``incoming/`` directories: what
        ``archive-wal`` would move. Two directory reads; no command."""
        return _names(self.streaming_dir(server)), _names(self.root / server / "incoming")

    def has_segment(self, server: str, segment: str) -> bool:
        """Whether Barman archived this WAL segment (compressed or not)."""
        directory = self.wals_dir(server) / archive_directory(segment)
        return any(directory.glob(f"{segment}*"))

    def wal_times(self, server: str) -> tuple[float | None, float | None]:
        """When Barman last received WAL (streaming directory) and last archived a segment.

        Read from file times, so a probe costs two directory reads and no Barman command.
        """
        received = _newest_mtime(self.streaming_dir(server).glob("*"))
        archived = _newest_mtime([self.wals_dir(server) / f"{server}-xlog.db"])
        return received, archived


def _segments(directory: Path) -> list[str]:
    """WAL segment names in a directory (``.partial`` and compression suffixes dropped)."""
    segments = (segment_of_file(name) for name in _names(directory))
    return [segment for segment in segments if segment is not None]


def _directories(wals: Path) -> list[Path]:
    try:
        return [d for d in wals.iterdir() if is_archive_directory(d.name)]
    except OSError:
        return []


def _names(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in directory.iterdir()]
    except OSError:
        return []


def _newest_mtime(paths: Iterable[Path]) -> float | None:
    newest: float | None = None
    for path in paths:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        newest = mtime if newest is None else max(newest, mtime)
    return newest
