"""One scan of /proc shared by every caller for a moment.

Each probe asks whether its server's ``receive-wal`` runs. A scan reads two files per process
(about 25 ms of CPU with 130 processes, more with 50 servers' receivers and walsenders), and the
probes of all servers come due in the same second: without sharing, the daemon spent most of its
idle CPU reading /proc. A command the daemon runs may start or stop processes, so running one
makes the next caller scan afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from barman_supervisor.pid1 import ProcInfo, processes

# Long enough for the probes that fire together to share one scan, short enough that a
# process that just started or died is seen by the next probe round.
SHARED_SCAN_MAX_AGE = 1.0


class ProcessTable:
    def __init__(
        self,
        max_age: float = SHARED_SCAN_MAX_AGE,
        scan: Callable[[], Iterable[ProcInfo]] = processes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age
        self._scan = scan
        self._clock = clock
        self._lock = threading.Lock()
        self._taken_at = float("-inf")
        self._table: list[ProcInfo] = []

    def snapshot(self) -> list[ProcInfo]:
        """The processes as of at most ``max_age`` seconds ago; concurrent callers wait for
        one scan instead of each doing their own."""
        with self._lock:
            if self._clock() - self._taken_at > self._max_age:
                self._table = list(self._scan())
                self._taken_at = self._clock()
            return self._table

    def invalidate(self) -> None:
        with self._lock:
            self._taken_at = float("-inf")
