"""Completed WAL segments noticed as they appear in each server's ``streaming/`` directory.

``pg_receivewal`` writes a segment as ``X.partial`` and renames it ``X`` once complete (history
files are written as ``X.tmp`` and renamed the same way): a rename into the directory
(``IN_MOVED_TO``) completes a file; ``IN_CLOSE_WRITE`` of a complete name covers a tool that
writes in place. Barman's ``archive-wal`` keeps the newest completed segment back until the next
``.partial`` exists, so the creation of a ``.partial`` (``IN_CREATE``) is the moment the segment
before it can move: both announce the server. One thread, one inotify descriptor, one watch
per directory; the read blocks with a timeout so a stop is noticed within a second, and an idle
daemon wakes once a second, not per server. A directory that does not exist yet (a server still
starting, a reset that recreated it) is looked for again every ``MISSING_RETRY`` seconds, and a
server is announced once when its watch starts, for what completed before.

The interval job (WAL_ARCHIVE_INTERVAL) stays as the safety net: an inotify queue overflow
announces every server, and anything missed is found by the next directory read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from inotify_simple import INotify, flags

from barman_supervisor.log import get_logger

_log = get_logger(__name__)
COMPLETED = flags.MOVED_TO | flags.CLOSE_WRITE
WATCH_MASK = COMPLETED | flags.CREATE
PARTIAL_SUFFIX = ".partial"
# How long one read waits for an event: the delay before a stop is noticed.
READ_TIMEOUT_MS = 1000
# Seconds between looks for a ``streaming/`` directory that does not exist yet.
MISSING_RETRY = 5.0
JOIN_TIMEOUT = 5.0
INCOMPLETE_SUFFIXES = (PARTIAL_SUFFIX, ".tmp")


def wal_event(name: str, mask: int) -> bool:
    """Whether an event may let ``archive-wal`` move something: a file completed under a
    complete name (neither the segment being written nor a temporary file, not hidden), or a
    new ``.partial`` (the segment before it is no longer held back). Never a directory."""
    if mask & flags.ISDIR or not name or name.startswith("."):
        return False
    if mask & flags.CREATE and name.endswith(PARTIAL_SUFFIX):
        return True
    return bool(mask & COMPLETED) and not name.endswith(INCOMPLETE_SUFFIXES)


class WalWatcher:
    """Calls ``on_completed(server)`` when a completed file appears in that server's directory;
    at most once per server per batch of events, from the watcher's own thread."""

    def __init__(
        self,
        directories: dict[str, Path],
        on_completed: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        self._directories = directories
        self._on_completed = on_completed
        self._stop = stop
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._watches: dict[int, str] = {}
        self._missing: set[str] = set(directories)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wal-watcher", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching; returns once the thread ended (within a read timeout)."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)

    @property
    def watched(self) -> set[str]:
        """The servers whose directory is watched now."""
        return set(self._watches.values())

    def _run(self) -> None:
        with INotify() as inotify:
            next_look = 0.0
            while not (self._closing.is_set() or self._stop.is_set()):
                if self._missing and time.monotonic() >= next_look:
                    self._announce(self._add_missing(inotify))
                    next_look = time.monotonic() + MISSING_RETRY
                self._announce(self._servers_of(inotify.read(timeout=READ_TIMEOUT_MS)))

    def _add_missing(self, inotify: INotify) -> list[str]:
        """Watch the directories that exist now; the servers whose watch started."""
        added = []
        for server in sorted(self._missing):
            try:
                wd = inotify.add_watch(self._directories[server], WATCH_MASK)
            except OSError:
                continue
            self._watches[wd] = server
            added.append(server)
            _log.info("wal_watch_started", server=server)
        self._missing.difference_update(added)
        return added

    def _servers_of(self, events: Iterable[tuple[int, int, int, str]]) -> set[str]:
        """The servers a batch of events announces; a removed directory is looked for again."""
        servers: set[str] = set()
        for wd, mask, _cookie, name in events:
            if mask & flags.Q_OVERFLOW:
                servers.update(self._watches.values())
            elif mask & flags.IGNORED:
                gone = self._watches.pop(wd, None)
                if gone is not None:
                    self._missing.add(gone)
            elif wd in self._watches and wal_event(name, mask):
                servers.add(self._watches[wd])
        return servers

    def _announce(self, servers: Iterable[str]) -> None:
        for server in sorted(servers):
            self._on_completed(server)
