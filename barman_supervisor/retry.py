"""Every retry policy of the daemon, built on tenacity.

Waits sleep on the daemon's stop event, so a shutdown interrupts a long backoff at once instead
of after the next attempt.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
    wait_exponential_jitter,
    wait_fixed,
)
from tenacity.stop import stop_base

from barman_supervisor.errors import Interrupted
from barman_supervisor.log import get_logger

_log = get_logger(__name__)
T = TypeVar("T")


def _sleeper(stop: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Interrupted

    return sleep


# A server coming up is noticed within this long during the first minute, when it is most
# likely to come up (containers starting together); after that the backoff grows. A refused
# connection costs next to nothing; half an interval, on average, adds to the time to protected.
FAST_POLL_INTERVAL = 0.25
FAST_POLL_FOR = 60.0


def reach_delay(elapsed: float, initial: float, max_wait: float) -> float:
    """The wait before the next attempt, ``elapsed`` seconds into waiting: FAST_POLL_INTERVAL
    in the first FAST_POLL_FOR seconds, then half the time waited since, from ``initial`` up
    to ``max_wait``."""
    if elapsed < FAST_POLL_FOR:
        return FAST_POLL_INTERVAL
    return min(max_wait, max(initial, (elapsed - FAST_POLL_FOR) / 2))


def until_reachable(
    stop: threading.Event,
    *,
    max_delay: float | None,
    retry_on: tuple[type[BaseException], ...],
    describe: Callable[[RetryCallState], dict[str, Any]],
    initial: float = 1.0,
    max_wait: float = 30.0,
) -> Retrying:
    """Every FAST_POLL_INTERVAL for FAST_POLL_FOR seconds, then exponential backoff with
    jitter, for ever unless ``max_delay`` bounds it.

    Failed attempts are logged with their number and the next wait (the 1st, 2nd, 4th, 8th …,
    so a fast poll does not flood the log); ``describe`` adds what is being waited for (never
    a password).
    """
    stop_rule: stop_base = stop_never if max_delay is None else stop_after_delay(max_delay)

    def wait(state: RetryCallState) -> float:
        delay = reach_delay(state.seconds_since_start or 0.0, initial, max_wait)
        return delay + (random.uniform(0, initial) if delay > FAST_POLL_INTERVAL else 0.0)

    def before_sleep(state: RetryCallState) -> None:
        if state.attempt_number & (state.attempt_number - 1):
            return  # not a power of two
        error = state.outcome.exception() if state.outcome else None
        _log.warning(
            "retrying",
            attempt=state.attempt_number,
            next_wait_s=round(state.upcoming_sleep, 2),
            error=_first_line(error),
            **describe(state),
        )

    return Retrying(
        retry=retry_if_exception_type(retry_on),
        stop=stop_rule,
        wait=wait,
        sleep=_sleeper(stop),
        before_sleep=before_sleep,
        reraise=True,
    )


def every(
    stop: threading.Event, interval: float, *, retry_on: tuple[type[BaseException], ...]
) -> Retrying:
    """For ever at a fixed interval, until the stop: for waiting on something another party
    ends (a claim another replica holds), where a growing backoff would only delay the moment
    it is noticed."""
    return Retrying(
        retry=retry_if_exception_type(retry_on),
        stop=stop_never,
        wait=wait_fixed(interval),
        sleep=_sleeper(stop),
        reraise=True,
    )


def few_times(
    stop: threading.Event,
    *,
    attempts: int,
    retry_on: tuple[type[BaseException], ...],
    initial: float = 0.5,
    max_wait: float = 5.0,
) -> Retrying:
    """A short, bounded retry for calls that must not hold up their caller for long."""
    return Retrying(
        retry=retry_if_exception_type(retry_on),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=initial, max=max_wait, jitter=initial),
        sleep=_sleeper(stop),
        reraise=True,
    )


def _first_line(error: BaseException | None) -> str | None:
    if error is None:
        return None
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def restart_delay(attempt: int, initial: float = 1.0, ceiling: float = 60.0) -> float:
    """Exponential backoff with jitter between streaming restarts: 1, 2, 4 … 60 s."""
    return min(ceiling, initial * 2.0 ** max(0, attempt - 1)) + random.uniform(0, initial)
