"""PID-1 duties: signals, reaping orphans, and stopping what Barman left behind.

``barman cron`` starts ``receive-wal`` and ``archive-wal`` with ``setsid`` and never waits for
them, so they are reparented to PID 1 (or to this daemon when it runs elsewhere, because it
makes itself a child subreaper). Reaping them with ``waitpid(-1)`` would also steal the exit
status of the Barman commands the daemon runs itself, and ``subprocess`` then reports 0 for a
failed backup. So the reaper only waits for zombies whose pid is not owned by a running
``subprocess.Popen``; spawning and reaping share a lock so that no child is seen before it is
registered.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from barman_supervisor.log import get_logger
from barman_supervisor.process.proctable import ProcInfo, child_pids, descendants, processes

_PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(number: int) -> str:
    """``SIGHUP``; real-time signals have no name of their own: ``SIGRTMIN+3``."""
    if signal.SIGRTMIN < number <= signal.SIGRTMAX:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    return signal.Signals(number).name


def noted_signals() -> tuple[int, ...]:
    """Signals whose default action would end the daemon silently (leaving Barman's streaming
    running) and that mean nothing to it: each is logged and otherwise ignored. SIGHUP comes
    from a closing terminal or ssh session, or ``systemctl reload``; settings are frozen at start,
    so nothing is re-read (restart to apply new settings). SIGPIPE stays ignored as Python sets
    it (a closed socket is an error on that socket). SIGQUIT, SIGABRT, SIGKILL and the signals
    of program faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS) keep their default: an
    immediate stop, cleaned up by the next start like a crash."""
    names = (
        *("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO"),
        *("SIGPWR", "SIGSTKFLT", "SIGXCPU", "SIGXFSZ"),
    )
    named = [int(getattr(signal, name)) for name in names if hasattr(signal, name)]
    return (*named, *range(signal.SIGRTMIN, signal.SIGRTMAX + 1))


_log = get_logger(__name__)
_P = TypeVar("_P")


class Wakeup:
    """A pipe a signal handler writes a byte to and one thread waits on.

    A Python signal handler runs in the main thread between any two bytecodes, possibly inside a
    lock that thread holds, so it must take none. ``threading.Event.set()`` takes the lock of the
    event's Condition: a SIGTERM that came while the main loop was inside
    ``stop_requested.wait()`` deadlocked the main thread (a 50-server daemon ignored SIGTERM
    until it was killed). A write to a non-blocking pipe takes no Python lock.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._read, select.POLLIN)

    def notify(self) -> None:
        with contextlib.suppress(BlockingIOError):  # the pipe is full: a wake-up is pending
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> None:
        """Until notified (since the last wait) or ``timeout`` seconds passed."""
        self._poll.poll(timeout * 1000)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass


class Pid1:
    """Owns the process-wide duties: the stop event, the reaper and the child registry."""

    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.signal_received: str | None = None
        # Written by the signal handlers, which take no lock (see Wakeup): the main loop wakes
        # on ``_main_wakeup`` and acts, the reaper on ``_child_wakeup``.
        self._noted: deque[int] = deque()
        self._main_wakeup = Wakeup()
        self._child_wakeup = Wakeup()
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._reaper: threading.Thread | None = None
        self.reaped = 0

    # Signals ------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """Handlers record the signal and wake the thread that acts on it; nothing more."""
        for stop in STOP_SIGNALS:
            signal.signal(stop, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, self._on_child_signal)
        for sig in noted_signals():
            signal.signal(sig, self._on_noted_signal)

    def pause(self, timeout: float) -> None:
        """The main loop's wait: over after ``timeout``, at once when a signal arrives or a
        stop is requested. A stop signal's request takes effect here, outside the handler."""
        self._main_wakeup.wait(timeout)
        if self.signal_received is not None:
            self.stop_requested.set()

    def request_stop(self) -> None:
        """From any thread (never from a handler): stop, and wake the main loop now."""
        self.stop_requested.set()
        self._main_wakeup.notify()

    def take_noted_signals(self) -> list[str]:
        """Names of the noted signals received since the last call, each once."""
        numbers = []
        while self._noted:
            numbers.append(self._noted.popleft())
        return [signal_name(number) for number in dict.fromkeys(numbers)]

    def _on_noted_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._noted.append(signum)
        self._main_wakeup.notify()

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signal_received = signal.Signals(signum).name
        self._main_wakeup.notify()

    def _on_child_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._child_wakeup.notify()

    # Reaping -------------------------------------------------------------------------------
    @staticmethod
    def become_subreaper() -> bool:
        """Orphans of our children come to us even when we are not PID 1 (Linux >= 3.4)."""
        if os.getpid() == 1:
            return True
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
        except (OSError, AttributeError):
            return False

    def spawn(self, start: Callable[[], _P], pid_of: Callable[[_P], int]) -> _P:
        """Start a child the caller will wait for itself; the reaper leaves it alone."""
        with self._lock:
            child = start()
            self._owned.add(pid_of(child))
            return child

    def release(self, pid: int) -> None:
        with self._lock:
            self._owned.discard(pid)

    def reap_orphans(self) -> list[tuple[ProcInfo, int]]:
        """Wait for every zombie child nobody else waits for; returns them with their status."""
        me = os.getpid()
        reaped: list[tuple[ProcInfo, int]] = []
        with self._lock:
            for proc in processes(child_pids(me)):
                if proc.ppid != me or proc.state != "Z" or proc.pid in self._owned:
                    continue
                try:
                    pid, status = os.waitpid(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if pid:
                    reaped.append((proc, os.waitstatus_to_exitcode(status)))
        self.reaped += len(reaped)
        for proc, code in reaped:
            _log.debug("orphan_reaped", pid=proc.pid, exit_code=code)
        return reaped

    def start_reaper(self, poll: float = 5.0) -> None:
        def loop() -> None:
            while True:
                self._child_wakeup.wait(poll)
                try:
                    self.reap_orphans()
                except Exception:  # the reaper must outlive a bad /proc read
                    _log.exception("reaper_failed")

        self._reaper = threading.Thread(target=loop, name="reaper", daemon=True)
        self._reaper.start()

    # Stopping what is left -----------------------------------------------------------------------
    def leftovers(self, match: Callable[[ProcInfo], bool] = lambda _p: True) -> list[ProcInfo]:
        """Live processes below this daemon that match, excluding ones it is waiting for."""
        with self._lock:
            owned = set(self._owned)
        return [
            proc
            for proc in descendants(os.getpid(), list(processes()))
            if proc.state != "Z" and proc.pid not in owned and match(proc)
        ]

    def terminate(
        self, match: Callable[[ProcInfo], bool], grace: float, sig: int = signal.SIGTERM
    ) -> list[ProcInfo]:
        """Signal matching leftovers, wait up to ``grace`` for them, SIGKILL the rest."""
        targets = self.leftovers(match)
        self.stop_processes(targets, grace, sig)
        return targets

    def stop_processes(
        self, targets: list[ProcInfo], grace: float, sig: int = signal.SIGTERM
    ) -> None:
        """Signal, wait up to ``grace`` (reaping what are our children), then SIGKILL."""
        for proc in targets:
            _signal(proc.pid, sig)
        deadline = time.monotonic() + grace
        pending = {proc.pid for proc in targets}
        while pending and time.monotonic() < deadline:
            time.sleep(0.1)
            self.reap_orphans()
            pending &= {proc.pid for proc in processes() if proc.state != "Z"}
        for pid in pending:
            _signal(pid, signal.SIGKILL)
        if pending:
            time.sleep(0.2)
            self.reap_orphans()

    def strays(self, match: Callable[[ProcInfo], bool]) -> list[ProcInfo]:
        """Live matching processes that are not below this daemon: what a killed run left."""
        table = list(processes())
        mine = {proc.pid for proc in descendants(os.getpid(), table)} | {os.getpid()}
        return [p for p in table if p.pid not in mine and p.state != "Z" and match(p)]


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
