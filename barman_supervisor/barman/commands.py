"""Barman driven through its command line (``barman -f json …``), never through its internals.

Barman's JSON output puts its console messages under ``_INFO``, ``_WARNING`` and ``_ERROR``;
each becomes its own log event, and the data part is returned as plain values.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from barman_supervisor.barman.config_files import (
    command_config,
    has_command_configs,
    reads_this_configuration,
)
from barman_supervisor.config.settings import Settings
from barman_supervisor.log import get_logger
from barman_supervisor.process.proctable import ProcessTable, ProcInfo
from barman_supervisor.process.runner import Completed, Runner, path_with

_log = get_logger(__name__)
# The shell's code for "command not found or not executable".
COMMAND_NOT_RUN = 127
# archive-wal moves (and compresses) whatever WAL waits; after a bulk load that can be gigabytes.
ARCHIVE_WAL_TIMEOUT = 1800
CRON_TIMEOUT = 300.0
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
SEGMENT_NAME_LENGTH = 24
_SEGMENT = re.compile(r"^[0-9A-F]{24}(\.partial)?(\.\w+)?$")
_SEGMENT_DIR = re.compile(r"^[0-9A-F]{16}$")
_MESSAGE_LEVELS = {
    "_INFO": "info",
    "_WARNING": "warning",
    "_ERROR": "error",
    "_EXCEPTION": "error",
}


@dataclass(frozen=True)
class Outcome:
    """A finished Barman command: its exit, its data and its messages."""

    completed: Completed
    data: Any
    messages: tuple[tuple[str, str], ...]
    cause: str | None = None

    @property
    def ok(self) -> bool:
        return self.completed.ok

    @property
    def errors(self) -> list[str]:
        return [text for level, text in self.messages if level == "error"]

    def reason(self) -> str:
        """A short why for a failure: Barman's last error, else its last line on stderr, else
        the last plain line on stdout (never the JSON document)."""
        if self.completed.timed_out:
            return "timed out"
        said = self._said()
        return f"{self.cause} ({said})" if self.cause and self.cause not in said else said

    def _said(self) -> str:
        if self.errors:
            return self.errors[-1].splitlines()[0]
        for stream in (
            self.completed.stderr,
            "" if self.data is not None else self.completed.stdout,
        ):
            lines = [line.strip() for line in stream.splitlines() if line.strip()]
            if lines:
                return lines[-1][:300]
        return f"exit code {self.completed.returncode}"


@dataclass(frozen=True)
class WalHoldings:
    """WAL segment names at the head of Barman's archive for one server."""

    archived_newest: str | None
    streaming_oldest: str | None
    streaming_newest: str | None


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    hint: str


@dataclass(frozen=True)
class Backup:
    """One backup as ``list-backups`` shows it, with its start time from ``backup.info``."""

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


def backup_info_field(backup_info: str, key: str) -> str | None:
    """One ``key=value`` line of a ``backup.info``; None when absent or ``None``."""
    for line in backup_info.splitlines():
        name, _, value = line.partition("=")
        if name == key:
            value = value.strip()
            return None if value in ("", "None") else value
    return None


def parse_chain_fields(backup_info: str) -> dict[str, Any]:
    """``parent_id`` and ``summarize_wal`` of a ``Backup`` from its ``backup.info``."""
    summarize = backup_info_field(backup_info, "summarize_wal")
    return {
        "parent_id": backup_info_field(backup_info, "parent_backup_id"),
        "summarize_wal": None if summarize is None else summarize == "on",
    }


def parse_begin_time(backup_info: str) -> float | None:
    """``begin_time=2026-11-23 03:00:01.123456+00:00`` of a ``backup.info`` as a timestamp."""
    for line in backup_info.splitlines():
        key, _, value = line.partition("=")
        if key == "begin_time" and value not in ("", "None"):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
            return moment.timestamp() if moment.tzinfo is not None else None
    return None


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


def parse_show_backup(data: Any, server: str) -> BackupFacts | None:
    """``barman -f json show-backup``; None when the document is not about a backup."""
    doc = data.get(server) if isinstance(data, dict) else None
    if not isinstance(doc, dict) or "backup_id" not in doc:
        return None
    base = doc.get("base_backup_information") or {}
    size = base.get("backup_size_with_wals_bytes") or base.get("backup_size_bytes") or 0
    return BackupFacts(
        backup_id=str(doc["backup_id"]),
        status=str(doc.get("status")),
        version_num=int(doc.get("postgresql_version") or 0),
        size_bytes=int(size),
        end_time=timestamp(base.get("end_time_timestamp")),
        incremental=doc.get("backup_type") == "incremental",
        compression=base.get("compression") or None,
    )


def backup_info_paths(barman_home: Path, server: str, backup_id: str) -> tuple[Path, Path]:
    """Where Barman keeps a backup's ``backup.info``: ``meta/`` (3.13.2+), else the backup's
    own directory."""
    base = barman_home / server
    return (
        base / "meta" / f"{backup_id}-backup.info",
        base / "base" / backup_id / "backup.info",
    )


def backup_info_path(barman_home: Path, server: str, backup_id: str) -> Path | None:
    """The ``backup.info`` of this backup that exists, if any."""
    return next(
        (path for path in backup_info_paths(barman_home, server, backup_id) if path.is_file()),
        None,
    )


def backup_info_text(barman_home: Path, server: str, backup_id: str) -> str:
    """list-backups prints no start time and no parent, and no time at all for a FAILED or
    STARTED backup: ``backup.info`` has them (empty when unreadable)."""
    path = backup_info_path(barman_home, server, backup_id)
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path is not None else ""
    except OSError:
        return ""


def backup_info_time(barman_home: Path, server: str, backup_id: str) -> float | None:
    """When Barman last wrote this backup's ``backup.info``; None without one."""
    path = backup_info_path(barman_home, server, backup_id)
    try:
        return path.stat().st_mtime if path is not None else None
    except OSError:  # deleted since
        return None


def parse_json_output(stdout: str) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """Split Barman's JSON output into data and (level, message) pairs; non-JSON is all message."""
    text = stdout.strip()
    if not text:
        return None, ()
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return None, tuple(("info", line) for line in text.splitlines() if line.strip())
    messages: list[tuple[str, str]] = []
    if isinstance(document, dict):
        for key, level in _MESSAGE_LEVELS.items():
            for message in document.pop(key, []) or []:
                messages.append((level, str(message)))
    return document, tuple(messages)


def parse_checks(data: Any, server: str) -> list[Check]:
    checks = (data or {}).get(server, {}) if isinstance(data, dict) else {}
    return [
        Check(name, str(result.get("status")) == "OK", str(result.get("hint") or ""))
        for name, result in sorted(checks.items())
        if isinstance(result, dict)
    ]


def parse_backups(data: Any, server: str) -> list[Backup]:
    """Backups newest first, as ``list-backups`` prints them."""
    rows = (data or {}).get(server, []) if isinstance(data, dict) else []
    return [
        Backup(
            backup_id=str(row.get("backup_id")),
            status=str(row.get("status")),
            end_time=timestamp(row.get("end_time_timestamp")),
            size_bytes=_bytes(row.get("size_bytes")),
            wal_size_bytes=_bytes(row.get("wal_size_bytes")),
        )
        for row in rows
        if isinstance(row, dict)
    ]


def timestamp(value: Any) -> float | None:
    """Barman's ``*_timestamp`` fields: a number as text, or ``None``/empty when unknown."""
    if value in (None, "", "None"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _bytes(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


class Barman:
    def __init__(
        self,
        settings: Settings,
        runner: Runner,
        explain: Callable[[float], str | None] = lambda _since: None,
        table: ProcessTable | None = None,
    ) -> None:
        """``explain`` finds the cause of a failure in Barman's log since a moment; ``table``
        is the process table shared by everything that asks which Barman processes run."""
        self._settings = settings
        self._runner = runner
        self._explain = explain
        self._table = table or ProcessTable()

    def _argv(self, *args: str, server: str | None, json_output: bool = True) -> list[str]:
        """``server``: the one server the command acts on (None: every server), whose own
        configuration file it then reads (see ``barman_config.command_config``)."""
        config = command_config(self._settings, server)
        argv = [self._settings.barman_bin, "-c", str(config)]
        if json_output:
            argv += ["-f", "json"]
        return [*argv, *args]

    def run(
        self,
        *args: str,
        kind: str,
        server: str | None,
        timeout: float | None = None,
        during_shutdown: bool = False,
        on_message: Callable[[str, str], None] | None = None,
        tools_dir: Path | None = None,
    ) -> Outcome:
        """``tools_dir`` goes first on PATH: Barman looks for some PostgreSQL programs there
        only (``pg_verifybackup``), and Debian keeps them in a per-major directory."""
        started = time.time()
        argv = self._argv(*args, server=server)
        try:
            completed = self._runner.run(
                argv,
                kind=kind,
                timeout=timeout,
                echo_stdout=False,
                during_shutdown=during_shutdown,
                env={"PATH": path_with(tools_dir, self._runner.path)} if tools_dir else None,
            )
        except OSError as exc:  # Barman vanished after start: a failed command, not a crash
            reason = f"cannot run {argv[0]}: {exc.strerror or exc}"
            completed = Completed(tuple(argv), COMMAND_NOT_RUN, "", reason, 0.0)
        finally:
            self._table.invalidate()  # it may have started or stopped processes (cron does)
        data, messages = parse_json_output(completed.stdout)
        for level, text in messages:
            if on_message is not None:
                on_message(level, text)
            self._runner.log_line(text, _LOG_LEVELS[level], command=f"barman {args[0]}")
        cause = None if completed.ok else self._explain(started)
        return Outcome(completed, data, messages, cause)

    def cron(self) -> list[Outcome]:
        """``barman cron``: with a configuration file per server (render mode), one run per
        server reading its own. A run for every server builds every server's configuration,
        and so does each ``archive-wal`` process it starts, one per server: with 50 servers one
        run cost a minute of CPU. Else (mounted files) one run for every server."""
        if not has_command_configs(self._settings):
            return [self.run("cron", kind="cron", server=None, timeout=CRON_TIMEOUT)]
        return [
            self.run("cron", kind="cron", server=server.name, timeout=CRON_TIMEOUT)
            for server in self._settings.servers
        ]

    def archive_wal(self, server: str) -> Outcome:
        """What ``barman cron`` starts for every server on every run, here for one server only
        and only when there is WAL to archive; Barman's own lock keeps it one at a time."""
        return self.run(
            "archive-wal", server, kind="archive-wal", server=server, timeout=ARCHIVE_WAL_TIMEOUT
        )

    def check(self, server: str, timeout: float = 120) -> tuple[Outcome, list[Check]]:
        outcome = self.run("check", server, kind="check", server=server, timeout=timeout)
        return outcome, parse_checks(outcome.data, server)

    def list_backups(self, server: str) -> tuple[Outcome, list[Backup]]:
        outcome = self.run("list-backups", server, kind="list", server=server, timeout=60)
        backups = []
        for backup in parse_backups(outcome.data, server):
            info = self._backup_info(server, backup.backup_id)
            begin_time = parse_begin_time(info)
            untimed = begin_time is None and backup.end_time is None
            home = self._settings.barman_home
            recorded_at = backup_info_time(home, server, backup.backup_id) if untimed else None
            backups.append(
                replace(
                    backup,
                    begin_time=begin_time,
                    recorded_at=recorded_at,
                    **parse_chain_fields(info),
                )
            )
        return outcome, backups

    def _backup_info(self, server: str, backup_id: str) -> str:
        return backup_info_text(self._settings.barman_home, server, backup_id)

    def backup_version(self, server: str, backup_id: str) -> int | None:
        """The ``version_num`` of the PostgreSQL a backup was taken from, read from its
        ``backup.info``: what ``show-backup`` would say, without a Barman process."""
        value = backup_info_field(self._backup_info(server, backup_id), "version")
        return int(value) if value is not None and value.isdigit() else None

    def backup_compression(self, server: str, backup_id: str) -> str | None:
        """Barman's ``backup_compression`` of a backup (its files are compressed tar files),
        read from its ``backup.info``; None for plain files."""
        return backup_info_field(self._backup_info(server, backup_id), "compression")

    def show_backup(self, server: str, backup_id: str) -> tuple[Outcome, BackupFacts | None]:
        outcome = self.run("show-backup", server, backup_id, kind="show", server=server, timeout=60)
        return outcome, parse_show_backup(outcome.data, server) if outcome.ok else None

    def switch_wal(self, server: str, archive_timeout: int) -> Outcome:
        return self.run(
            "switch-wal",
            "--force",
            "--archive",
            "--archive-timeout",
            str(archive_timeout),
            server,
            kind="switch-wal",
            server=server,
            timeout=archive_timeout + 60,
        )

    def backup(
        self, server: str, *, immediate: bool, wait_timeout: int, parent: str | None = None
    ) -> Outcome:
        """A full backup, or a block-level incremental one on ``parent`` (issue 13)."""
        args = ["backup", "--wait", "--wait-timeout", str(wait_timeout)]
        if immediate:
            args.append("--immediate-checkpoint")
        if parent is not None:
            args += ["--incremental", parent]
        return self.run(*args, server, kind="backup", server=server)

    def start_receive_wal(self, server: str) -> bool:
        """``receive-wal`` as ``barman cron`` starts it (``-q``, detached), but forked from the
        fork server: no import to pay, memory shared. False without one (then ``cron``)."""
        argv = self._argv("-q", "receive-wal", server, server=server, json_output=False)
        try:
            return self._runner.start_detached(argv, kind="receive-wal") is not None
        finally:
            # The probe right after (start-up's confirmation) must see the new receiver, not a
            # table from before it: that stale "not running" raised a false alert once the
            # start-up ended.
            self._table.invalidate()

    def terminate_receive_wal(self, server: str) -> Outcome:
        return self.run(
            "terminate-process",
            server,
            "receive-wal",
            kind="terminate",
            server=server,
            timeout=30,
            during_shutdown=True,
        )

    def delete(self, server: str, backup_id: str) -> Outcome:
        return self.run("delete", server, backup_id, kind="delete", server=server, timeout=600)

    def reset_streaming(self, server: str) -> Outcome:
        """``receive-wal --reset``: drops the .partial position; only after a timeline change."""
        return self.run("receive-wal", "--reset", server, kind="reset", server=server, timeout=60)

    def mark_failed(self, server: str, backup_id: str, reason: str) -> bool:
        """Record an interrupted backup as FAILED in its backup.info.

        Barman has no command for it: a backup whose process was killed stays STARTED for
        ever, and Barman then treats it as running. Only ``status`` and ``error`` change.
        """
        path = backup_info_path(self._settings.barman_home, server, backup_id)
        if path is None:
            return False
        fields = {"status": "FAILED", "error": reason.replace("\n", " ")}
        rewritten = [
            f"{key}={fields.pop(key)}" if (key := line.split("=", 1)[0]) in fields else line
            for line in path.read_text().splitlines()
        ]
        rewritten += [f"{key}={value}" for key, value in fields.items()]
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text("\n".join(rewritten) + "\n")
        temporary.replace(path)
        return True

    def processes(self, command: str, server: str) -> list[ProcInfo]:
        """Barman processes of this configuration running ``command`` for ``server``: started
        with the server's own file (by the daemon) or the whole configuration (by cron)."""
        return [
            proc
            for proc in self._table.snapshot()
            if proc.state != "Z"
            and command in proc.cmdline
            and reads_this_configuration(self._settings, proc.cmdline)
            and proc.cmdline[-1] == server
        ]

    def wal_holdings(self, server: str) -> WalHoldings:
        """Which WAL segments Barman holds at the head of its archive: the newest archived and
        the range in the streaming directory. Two or three directory reads; no command."""
        base = self._settings.barman_home / server
        streamed = _segments(base / "streaming")
        try:
            newest_dir = max(
                (d for d in (base / "wals").iterdir() if _SEGMENT_DIR.match(d.name)), default=None
            )
        except OSError:
            newest_dir = None
        archived = _segments(newest_dir) if newest_dir is not None else []
        return WalHoldings(
            archived_newest=max(archived, default=None),
            streaming_oldest=min(streamed, default=None),
            streaming_newest=max(streamed, default=None),
        )

    def waiting_wal(self, server: str) -> tuple[list[str], list[str]]:
        """File names in the server's ``streaming/`` and ``incoming/`` directories: what
        ``archive-wal`` would move. Two directory reads; no command."""
        base = self._settings.barman_home / server
        return _names(base / "streaming"), _names(base / "incoming")

    def has_segment(self, server: str, segment: str) -> bool:
        """Whether Barman archived this WAL segment (compressed or not)."""
        directory = self._settings.barman_home / server / "wals" / segment[:16]
        return any(directory.glob(f"{segment}*"))

    def archive_empty(self, server: str) -> bool:
        """No WAL segment archived yet (``xlog.db`` missing or empty): Barman refuses a first
        backup until one is ("WAL archive" check)."""
        try:
            return (
                self._settings.barman_home / server / "wals" / f"{server}-xlog.db"
            ).stat().st_size == 0
        except FileNotFoundError:
            return True

    def wal_times(self, server: str) -> tuple[float | None, float | None]:
        """When Barman last received WAL (streaming directory) and last archived a segment.

        Read from file times, so a probe costs two directory reads and no Barman command.
        """
        base = self._settings.barman_home / server
        received = _newest_mtime((base / "streaming").glob("*"))
        archived = _newest_mtime([base / "wals" / f"{server}-xlog.db"])
        return received, archived


def _segments(directory: Path) -> list[str]:
    """WAL segment names in a directory (``.partial`` and compression suffixes dropped)."""
    try:
        names = [entry.name for entry in directory.iterdir()]
    except OSError:
        return []
    return [name[:SEGMENT_NAME_LENGTH] for name in names if _SEGMENT.match(name)]


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
