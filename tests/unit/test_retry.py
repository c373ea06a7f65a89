"""Waiting for PostgreSQL: fast at first, then backing off; a stop ends any wait at once."""

from __future__ import annotations

import threading

import pytest

from barman_supervisor.errors import Interrupted
from barman_supervisor.retry import FAST_POLL_FOR, FAST_POLL_INTERVAL, reach_delay, until_reachable


@pytest.mark.parametrize(
    ("elapsed", "delay"),
    [
        (0.0, FAST_POLL_INTERVAL),
        (FAST_POLL_FOR - 0.1, FAST_POLL_INTERVAL),
        (FAST_POLL_FOR, 1.0),
        (FAST_POLL_FOR + 10, 5.0),
        (FAST_POLL_FOR + 3600, 30.0),
    ],
)
def test_reach_delay(elapsed: float, delay: float) -> None:
    assert reach_delay(elapsed, initial=1.0, max_wait=30.0) == delay


def test_a_stop_interrupts_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    attempts: list[int] = []

    def refuse() -> None:
        attempts.append(1)
        raise ConnectionRefusedError

    policy = until_reachable(
        stop, max_delay=None, retry_on=(ConnectionRefusedError,), describe=lambda _s: {}
    )
    with pytest.raises(Interrupted):
        policy(refuse)
    assert attempts == [1]
