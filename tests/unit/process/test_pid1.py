"""Reading /proc/PID/stat, walking a process table, and which signals stop the daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from barman_supervisor.process.pid1 import STOP_SIGNALS, Pid1, noted_signals
from barman_supervisor.process.proctable import (
    ProcInfo,
    child_pids,
    descendants,
    parse_stat,
    processes,
)
from tests.support.poll import wait_until

ZOMBIE_WAIT = 10.0


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("4242 (barman) S 1 4242 4242 0 -1 4194560 1433", ("S", 1)),
        ("77 (pg_receivewal) Z 13 77 77 0 -1", ("Z", 13)),
        ("99 (evil) R 1 (x) S 7 99 99 0 -1 4194560", ("S", 7)),
        ("12 (a b ) c) D 3 12 12 0 -1", ("D", 3)),
    ],
    ids=["plain", "zombie", "name-with-paren-space", "name-with-spaces"],
)
def test_parse_stat(stat: str, expected: tuple[str, int]) -> None:
    assert parse_stat(stat) == expected


def proc(pid: int, ppid: int, *cmdline: str) -> ProcInfo:
    return ProcInfo(pid, ppid, "S", cmdline)


def test_descendants_parents_before_children() -> None:
    table = [
        proc(30, 20, "pg_receivewal"),  # grandchild listed before its parent
        proc(20, 1, "/opt/venv/bin/barman", "receive-wal", "pg"),
        proc(21, 1, "barman", "backup"),
        proc(40, 21, "pg_basebackup"),
        proc(50, 30, "sh"),
        proc(60, 2, "unrelated"),
        proc(1, 0, "barman-supervisor"),
    ]

    found = descendants(1, table)

    assert [p.pid for p in found] == [20, 21, 30, 40, 50]
    assert descendants(40, table) == []
    assert [p.pid for p in descendants(2, table)] == [60]


def test_proc_name_is_the_program_base_name() -> None:
    assert proc(20, 1, "/opt/venv/bin/barman", "cron").name == "barman"
    assert proc(21, 1).name == ""


@pytest.fixture
def saved_handlers() -> Iterator[None]:
    numbers = [*noted_signals(), *STOP_SIGNALS, signal.SIGCHLD]
    saved = {number: signal.getsignal(number) for number in numbers}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.mark.usefixtures("saved_handlers")
def test_signals_that_would_kill_the_daemon_are_noted_not_fatal() -> None:
    supervisor = Pid1()
    supervisor.install_signal_handlers()

    for number in (signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM, signal.SIGRTMIN + 2):
        os.kill(os.getpid(), number)

    assert supervisor.take_noted_signals() == ["SIGHUP", "SIGUSR1", "SIGALRM", "SIGRTMIN+2"]
    assert supervisor.take_noted_signals() == []
    assert not supervisor.stop_requested.is_set()


@pytest.mark.usefixtures("saved_handlers")
def test_sigterm_requests_a_stop() -> None:
    supervisor = Pid1()
    supervisor.install_signal_handlers()

    os.kill(os.getpid(), signal.SIGTERM)
    started = time.monotonic()
    supervisor.pause(60)

    assert time.monotonic() - started < 30  # woken by the signal, not by the timeout
    assert supervisor.stop_requested.is_set() and supervisor.signal_received == "SIGTERM"


# The handler runs while the main thread holds the lock of the event it waits on, as the main
# loop does inside ``stop_requested.wait()``; it must not take that lock.
DEADLOCK_PROBE = """
import os, signal
from barman_supervisor.process.pid1 import Pid1
supervisor = Pid1()
supervisor.install_signal_handlers()
with supervisor.stop_requested._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))  # bytecodes: the handler runs here
supervisor.pause(0)
print(supervisor.stop_requested.is_set())
"""


def test_a_stop_signal_never_waits_for_a_lock_the_main_thread_holds() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DEADLOCK_PROBE], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "True", done.stderr


def test_every_default_fatal_signal_is_handled_or_documented() -> None:
    """Default action 'terminate' (signal(7)); SIGKILL/SIGQUIT/SIGABRT etc. are documented."""
    terminating = {
        signal.SIGHUP, signal.SIGINT, signal.SIGPIPE, signal.SIGALRM, signal.SIGTERM,
        signal.SIGUSR1, signal.SIGUSR2, signal.SIGPROF, signal.SIGVTALRM, signal.SIGIO,
        signal.SIGPWR, signal.SIGSTKFLT, *range(signal.SIGRTMIN, signal.SIGRTMAX + 1),
    }  # fmt: skip
    python_ignores = {signal.SIGPIPE}

    assert terminating - python_ignores <= {*noted_signals(), *STOP_SIGNALS}
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN


def test_an_exited_child_is_found_without_a_scan_and_reaped() -> None:
    """The reaper reads only this process's children: a zombie child is among them."""
    child = subprocess.Popen(["true"])
    wait_until(
        lambda: [p.state for p in processes([child.pid])] == ["Z"],
        ZOMBIE_WAIT,
        what="the child to exit",
    )
    assert child.pid in (child_pids(os.getpid()) or set())

    reaped = Pid1().reap_orphans()

    assert [(proc.pid, code) for proc, code in reaped] == [(child.pid, 0)]
    assert list(processes([child.pid])) == []  # reaped: gone from /proc


def test_processes_of_given_pids_skips_the_ones_gone() -> None:
    found = list(processes([os.getpid(), 2**22 + 1]))
    assert [p.pid for p in found] == [os.getpid()]
