"""Work run at once on a trigger, bursts coalesced: one run at a time, at most one more after it.

A burst of completed WAL segments must not start a burst of ``archive-wal`` runs: one run picks
up everything present, so a trigger that comes while a run goes on only asks for exactly one
more run after it (the segment it announced may have come after that run listed its directory).
The decision is a pure state machine (``on_trigger``, ``on_finish``); ``Coalesced`` applies it
under a lock and runs the work on a thread of its own, so the caller (the watcher) never waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum

from barman_supervisor.log import get_logger

_log = get_logger(__name__)


class Phase(Enum):
    IDLE = "idle"
    RUNNING = "running"
    # Running, and one more run owed after it.
    RUNNING_OWED = "running_owed"


def on_trigger(phase: Phase) -> tuple[Phase, bool]:
    """The phase after a trigger, and whether a run starts now."""
    if phase is Phase.IDLE:
        return Phase.RUNNING, True
    return Phase.RUNNING_OWED, False


def on_finish(phase: Phase) -> tuple[Phase, bool]:
    """The phase after a run ended, and whether another run starts now."""
    if phase is Phase.RUNNING_OWED:
        return Phase.RUNNING, True
    return Phase.IDLE, False


class Coalesced:
    """``work`` run on demand, never twice at a time, bursts of triggers folded into one run."""

    def __init__(self, name: str, work: Callable[[], object]) -> None:
        self._name = name
        self._work = work
        self._lock = threading.Lock()
        self._phase = Phase.IDLE
        self._closed = False

    def trigger(self) -> None:
        """Ask for a run; returns at once. After ``close`` nothing starts any more."""
        with self._lock:
            if self._closed:
                return
            self._phase, start = on_trigger(self._phase)
        if start:
            threading.Thread(target=self._loop, name=self._name, daemon=True).start()

    def close(self) -> None:
        """No run starts after this one (shutdown); a running one ends as its work does."""
        with self._lock:
            self._closed = True

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._phase is Phase.IDLE

    def _loop(self) -> None:
        again = True
        while again:
            try:
                self._work()
            except Exception:  # the work records its own outcome; this thread must end cleanly
                _log.exception("triggered_run_crashed", run=self._name)
            with self._lock:
                self._phase, again = on_finish(self._phase)
                if self._closed and again:
                    self._phase, again = Phase.IDLE, False
