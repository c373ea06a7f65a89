"""Barman's own log file, followed and re-emitted as events, so ``docker logs`` has it all.

Barman writes the real cause of many failures (``password authentication failed``, ``no
pg_hba.conf entry``) only to its log file, from every process it starts, including the detached
ones of ``barman cron``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from barman_supervisor.log import RepeatFilter, get_logger

_log = get_logger("barman")
# 2026-11-23 23:32:51,861 [3263] barman.server INFO: message
_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) \[(?P<pid>\d+)\] (?P<logger>\S+) "
    r"(?P<level>[A-Z]+): (?P<message>.*)$"
)
_LEVELS = {
    name: logging.getLevelName(name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
}


@dataclass(frozen=True)
class LogLine:
    level: int
    message: str
    pid: int | None = None
    logger: str | None = None


def parse_line(text: str) -> LogLine:
    """A Barman log line; lines not in its format (tracebacks) keep the level INFO."""
    match = _LINE.match(text)
    if match is None:
        return LogLine(logging.INFO, text)
    return LogLine(
        _LEVELS.get(match["level"], logging.INFO),
        match["message"],
        int(match["pid"]),
        match["logger"],
    )


# What Barman hides behind "FAILED" or "Impossible to start the backup", most telling first.
_CAUSES = (
    re.compile(r"password authentication failed for user \S+"),
    re.compile(r"no pg_hba\.conf entry for [^,]+(?:, user \S+)?(?:, database \S+)?"),
    re.compile(r"role \S+ does not exist"),
    re.compile(r"database \S+ does not exist"),
    re.compile(r"permission denied for function \S+"),
    re.compile(r"must be superuser[^.]*"),
    re.compile(r"replication slot \S+ is already (?:in use|active)[^.]*"),
    re.compile(r"requested WAL segment \S+ has already been removed"),
    re.compile(r"number of requested standby connections exceeds max_wal_senders[^.]*"),
    re.compile(r"[Nn]o space left on device"),
    re.compile(r"incompatible server version [^;]*"),
    re.compile(r"Connection refused"),
)


def find_cause(messages: list[str]) -> str | None:
    """The most telling known cause among log messages, e.g. 'password authentication failed'."""
    for pattern in _CAUSES:
        for message in messages:
            match = pattern.search(message)
            if match:
                return match.group(0)
    return None


class LogTail:
    """Follows a file across rotation and truncation, from its end at start-up.

    Keeps the last few hundred lines so that a failed command can be explained by what Barman
    wrote to its log while it ran.
    """

    def __init__(self, path: Path, stop: threading.Event, repeats: RepeatFilter | None = None):
        self._path = path
        self._stop = stop
        self._repeats = repeats or RepeatFilter()
        self._thread = threading.Thread(target=self._follow, name="barman-log", daemon=True)
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, LogLine]] = deque(maxlen=500)
        self._position = self._path.stat().st_size if self._path.exists() else 0
        self._inode = self._path.stat().st_ino if self._path.exists() else None
        self._pending = ""

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _follow(self) -> None:
        while True:
            stopping = self._stop.is_set()
            self.poll()
            for kind, held_back in self._repeats.expired():
                _log.info(
                    "repeated_lines_suppressed", source="barman_log", count=held_back, example=kind
                )
            if stopping:
                return
            self._stop.wait(0.5)

    def poll(self) -> None:
        """Read what was appended since the last call; safe from any thread."""
        with self._lock:
            try:
                stat = self._path.stat()
            except FileNotFoundError:
                return
            if stat.st_ino != self._inode or stat.st_size < self._position:
                self._inode, self._position, self._pending = stat.st_ino, 0, ""
            while stat.st_size > self._position:
                with self._path.open("rb") as handle:
                    handle.seek(self._position)
                    chunk = handle.read(1 << 20)
                if not chunk:
                    break
                self._position += len(chunk)
                self._pending += chunk.decode("utf-8", errors="replace")
                *lines, self._pending = self._pending.split("\n")
                for line in lines:
                    self.emit(line)

    def cause_since(self, moment: float) -> str | None:
        """The known cause Barman logged since ``moment`` (wall clock), after catching up."""
        self.poll()
        with self._lock:
            messages = [line.message for seen, line in self._recent if seen >= moment]
        return find_cause(messages)

    def emit(self, text: str) -> None:
        if not text.strip():
            return
        line = parse_line(text)
        self._recent.append((time.time(), line))
        admitted, held_back = self._repeats.admit(line.message)
        if held_back:
            _log.info(
                "repeated_lines_suppressed",
                source="barman_log",
                count=held_back,
                example=line.message,
            )
        if admitted:
            _log.log(
                line.level,
                "barman_log",
                message=line.message,
                barman_pid=line.pid,
                logger=line.logger,
            )
