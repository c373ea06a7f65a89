"""Triggered runs: one at a time, a burst during a run folded into exactly one more run."""

from __future__ import annotations

import threading

from barman_supervisor.jobs.coalesce import Coalesced, Phase, on_finish, on_trigger
from tests.support.poll import wait_until

WAIT_S = 10


def test_a_trigger_when_idle_starts_a_run() -> None:
    assert on_trigger(Phase.IDLE) == (Phase.RUNNING, True)


def test_triggers_during_a_run_owe_exactly_one_more() -> None:
    phase, start = on_trigger(Phase.RUNNING)
    assert (phase, start) == (Phase.RUNNING_OWED, False)
    assert on_trigger(phase) == (Phase.RUNNING_OWED, False)


def test_a_run_ends_idle_or_runs_once_more() -> None:
    assert on_finish(Phase.RUNNING) == (Phase.IDLE, False)
    assert on_finish(Phase.RUNNING_OWED) == (Phase.RUNNING, True)


def test_a_burst_during_a_run_gives_one_more_run_never_two_at_once() -> None:
    release = threading.Event()
    runs: list[int] = []
    active = [0]
    overlapped = [False]

    def work() -> None:
        active[0] += 1
        overlapped[0] |= active[0] > 1
        runs.append(len(runs))
        if len(runs) == 1:
            release.wait(WAIT_S)
        active[0] -= 1

    coalesced = Coalesced("test", work)
    coalesced.trigger()
    wait_until(lambda: runs, timeout=WAIT_S, what="the first run")
    for _ in range(50):
        coalesced.trigger()
    release.set()
    wait_until(lambda: coalesced.idle, timeout=WAIT_S, what="idle again")
    assert len(runs) == 2 and not overlapped[0]


def test_a_crashing_run_leaves_it_idle_and_triggerable() -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    coalesced = Coalesced("test", work)
    coalesced.trigger()
    wait_until(lambda: coalesced.idle and calls, timeout=WAIT_S, what="the crash handled")
    coalesced.trigger()
    wait_until(lambda: len(calls) == 2 and coalesced.idle, timeout=WAIT_S, what="a second run")


def test_nothing_starts_after_close() -> None:
    calls: list[int] = []
    coalesced = Coalesced("test", lambda: calls.append(1))
    coalesced.close()
    coalesced.trigger()
    assert coalesced.idle and calls == []
