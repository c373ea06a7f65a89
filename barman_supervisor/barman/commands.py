"""Barman driven through its command line (``barman -f json …``), never through its internals;
what the daemon reads from Barman's files instead is in ``home``.

Barman's JSON output puts its console messages under ``_INFO``, ``_WARNING`` and ``_ERROR``;
each becomes its own log event, and the data part is returned as plain values.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from barman_supervisor.barman.config_files import (
    command_config,
    has_command_configs,
    reads_this_configuration,
)
from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.records import Backup, BackupFacts
from barman_supervisor.config import Settings
from barman_supervisor.log import get_logger
from barman_supervisor.process.proctable import ProcessTable, ProcInfo
from barman_supervisor.process.runner import Completed, Runner, path_with

_log = get_logger(__name__)
# The shell's code for "command not found or not executable".
COMMAND_NOT_RUN = 127
# archive-wal moves (and compresses) whatever WAL waits; after a bulk load that can be gigabytes.
ARCHIVE_WAL_TIMEOUT = 1800
CRON_TIMEOUT = 300.0
# `barman keep` only writes or reads an annotation file.
KEEP_TIMEOUT = 60.0
# What `barman keep --status` prints for a backup with no keep.
NO_KEEP = "nokeep"
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
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
class Check:
    name: str
    ok: bool
    hint: str


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
        is the process table shared by everything that asks which Barman processes run.
        ``home``: Barman's files, read where a command would cost too much."""
        self._settings = settings
        self.home = BarmanHome(settings.barman_home)
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
        """Backups newest first, each with what its ``backup.info`` adds (``records``)."""
        outcome = self.run("list-backups", server, kind="list", server=server, timeout=60)
        backups = []
        for backup in parse_backups(outcome.data, server):
            info = self.home.backup_info(server, backup.backup_id)
            untimed = info.begin_time is None and backup.end_time is None
            recorded_at = self.home.backup_info_time(server, backup.backup_id) if untimed else None
            backups.append(
                replace(
                    backup,
                    begin_time=info.begin_time,
                    recorded_at=recorded_at,
                    copy_time_s=info.copy_time,
                    **info.chain_fields(),
                )
            )
        return outcome, backups

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

    def keep_status(self, server: str, backup_id: str) -> Outcome:
        """``keep --status``: its output holds ``NO_KEEP`` or the keep's target."""
        return self._keep(server, "--status", backup_id)

    def keep_full(self, server: str, backup_id: str) -> Outcome:
        """``keep --target full``: retention keeps the backup and every WAL file after its start
        (the daemon's holds on local retention)."""
        return self._keep(server, "--target", "full", backup_id)

    def release_keep(self, server: str, backup_id: str) -> Outcome:
        return self._keep(server, "--release", backup_id)

    def _keep(self, server: str, *args: str) -> Outcome:
        *options, backup_id = args
        return self.run(
            "keep", *options, server, backup_id, kind="keep", server=server, timeout=KEEP_TIMEOUT
        )

    def reset_streaming(self, server: str) -> Outcome:
        """``receive-wal --reset``: drops the .partial position; only after a timeline change."""
        return self.run("receive-wal", "--reset", server, kind="reset", server=server, timeout=60)

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
