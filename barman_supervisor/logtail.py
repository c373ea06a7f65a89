"""Barman's own log file, followed and re-emitted as events, so ``docker logs`` has it all.

Barman writes the real cause of many failures (``password authentication failed``, ``no
pg_hba.conf entry``) only to its log file, from every process it starts, including the detached
ones of ``barman cron``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from barman_supervisor.log import RepeatFilter, get_logger

_log = get_logger("barman")
# 2026-11-23 23:32:51,861 [3263] barman.server INFO: message
_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) \[(?P<pid>\d+)\] (?P<logger>\S+) "
    r"(?P<level>[A-Z]+): (?P<message>.*)$"
)
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


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
        return LogLine(20, text)
    return LogLine(
        _LEVELS.get(match["level"], 20), match["message"], int(match["pid"]), match["logger"]
    )


class LogTail:
    """Follows a file across rotation and truncation, from its end at start-up."""

    def __init__(self, path: Path, stop: threading.Event, repeats: RepeatFilter | None = None):
        self._path = path
        self._stop = stop
        self._repeats = repeats or RepeatFilter()
        self._thread = threading.Thread(target=self._follow, name="barman-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _follow(self) -> None:
        position = self._path.stat().st_size if self._path.exists() else 0
        inode = self._path.stat().st_ino if self._path.exists() else None
        pending = ""
        while True:
            stopping = self._stop.is_set()
            try:
                stat = self._path.stat()
            except FileNotFoundError:
                stat = None
            if stat is not None:
                if stat.st_ino != inode or stat.st_size < position:
                    inode, position, pending = stat.st_ino, 0, ""
                if stat.st_size > position:
                    with self._path.open("rb") as handle:
                        handle.seek(position)
                        chunk = handle.read(1 << 20)
                    position += len(chunk)
                    pending += chunk.decode("utf-8", errors="replace")
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        self.emit(line)
            for kind, held_back in self._repeats.expired():
                _log.info(
                    "repeated_lines_suppressed", source="barman_log", count=held_back, example=kind
                )
            if stopping:
                return
            self._stop.wait(0.5)

    def emit(self, text: str) -> None:
        if not text.strip():
            return
        line = parse_line(text)
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
