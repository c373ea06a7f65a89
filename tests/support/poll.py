"""The one bounded poller: every test that waits for something to happen waits here, with a
deadline and a message that names what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
# The first pause is short so that a condition met at once costs no time; later pauses double up
# to ``interval`` so that a slow one (a psql, an HTTP call) is not asked in a busy loop.
FIRST_PAUSE_S = 0.01
INTERVAL_S = 0.25
# How much of the last value the failure message shows.
SHOWN_CHARS = 500


class TimedOut(AssertionError):
    """A wait reached its deadline: a test failure naming what never happened."""


def wait_until(
    predicate: Callable[[], T | None], timeout: float, *, what: str, interval: float = INTERVAL_S
) -> T:
    """The first truthy value of ``predicate()``, asked until ``timeout`` seconds have passed.

    Raises ``TimedOut`` naming ``what`` and showing the last value seen. ``interval`` is the
    longest pause between two tries.
    """
    deadline = time.monotonic() + timeout
    pause = min(FIRST_PAUSE_S, interval)
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            last = repr(value)[:SHOWN_CHARS]
            raise TimedOut(f"timed out after {timeout:g}s waiting for {what} (last: {last})")
        time.sleep(min(pause, left))
        pause = min(pause * 2, interval)
