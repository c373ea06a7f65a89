"""Start-up turns: at most N at once, served in the order they asked."""

from __future__ import annotations

import threading

import pytest

from barman_supervisor.jobs.fairness import FairSemaphore
from tests.support.poll import wait_until

WAIT = 5.0


def taker(gate: FairSemaphore, order: list[int], number: int) -> threading.Thread:
    def take() -> None:
        gate.acquire()
        order.append(number)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def test_waiters_are_served_first_come_first_served() -> None:
    gate = FairSemaphore(1)
    gate.acquire()
    order: list[int] = []
    for number in range(5):
        taker(gate, order, number)
        wait_until(lambda n=number: gate.waiting() == n + 1, WAIT, what=f"{number + 1} waiting")  # type: ignore[misc]
    for served in range(5):
        gate.release()
        wait_until(lambda s=served: len(order) == s + 1, WAIT, what=f"{served + 1} served")  # type: ignore[misc]
    assert order == [0, 1, 2, 3, 4]


def test_no_more_than_its_value_hold_it_at_once() -> None:
    gate = FairSemaphore(2)
    gate.acquire()
    gate.acquire()
    order: list[int] = []
    taker(gate, order, 1)
    wait_until(lambda: gate.waiting() == 1, WAIT, what="one waiting")
    assert order == []
    gate.release()
    wait_until(lambda: order == [1], WAIT, what="taker 1 served")


def test_a_released_slot_is_free_again_when_nobody_waits() -> None:
    gate = FairSemaphore(1)
    with gate:
        assert gate.waiting() == 0
    order: list[int] = []
    taker(gate, order, 1).join(WAIT)  # would never finish if the slot had been lost
    assert order == [1]


def test_try_acquire_takes_a_free_slot_and_never_overtakes() -> None:
    gate = FairSemaphore(1)
    assert gate.try_acquire()
    assert not gate.try_acquire()
    order: list[int] = []
    taker(gate, order, 1)
    wait_until(lambda: gate.waiting() == 1, WAIT, what="one waiting")
    gate.release()  # handed to the waiter, not left for a later try_acquire
    wait_until(lambda: order == [1], WAIT, what="taker 1 served")
    assert not gate.try_acquire()


def test_zero_slots_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FairSemaphore(0)
