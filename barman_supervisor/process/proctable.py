"""The /proc reader, and one scan of it shared by every caller for a moment.

Each probe asks whether its server's ``receive-wal`` runs. A scan reads two files per process
(about 25 ms of CPU with 130 processes, more with 50 servers' receivers and walsenders), and the
probes of all servers come due in the same second: without sharing, the daemon spent most of its
idle CPU reading /proc. A command the daemon runs may start or stop processes, so running one
makes the next caller scan afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    state: str
    cmdline: tuple[str, ...]

    @property
    def name(self) -> str:
        return Path(self.cmdline[0]).name if self.cmdline else ""


def parse_stat(text: str) -> tuple[str, int]:
    """State letter and parent pid from ``/proc/PID/stat``; the command name may hold ') '."""
    after_name = text[text.rindex(")") + 2 :].split()
    return after_name[0], int(after_name[1])


def processes(pids: Iterable[int] | None = None) -> Iterator[ProcInfo]:
    """Every process visible in /proc (or only these pids); ones that vanish while being read
    are skipped."""
    entries = (
        (e for e in Path("/proc").iterdir() if e.name.isdigit())
        if pids is None
        else (Path(f"/proc/{pid}") for pid in pids)
    )
    for entry in entries:
        try:
            state, ppid = parse_stat((entry / "stat").read_text())
            raw = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        cmdline = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
        yield ProcInfo(int(entry.name), ppid, state, cmdline)


def child_pids(pid: int) -> set[int] | None:
    """The children of a process, from each of its threads' ``children`` file: a handful of
    reads instead of a scan of every process (with 50 servers, ~300). None when the kernel has
    no such file (CONFIG_PROC_CHILDREN), so the caller scans."""
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(word) for word in (task / "children").read_text().split())
    except (OSError, ValueError):
        return None
    return found


def descendants(root: int, table: list[ProcInfo]) -> list[ProcInfo]:
    """Processes below ``root`` in a process table, parents before children."""
    children: dict[int, list[ProcInfo]] = {}
    for proc in table:
        children.setdefault(proc.ppid, []).append(proc)
    found: list[ProcInfo] = []
    stack = list(children.get(root, []))
    while stack:
        proc = stack.pop(0)
        found.append(proc)
        stack.extend(children.get(proc.pid, []))
    return found


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
