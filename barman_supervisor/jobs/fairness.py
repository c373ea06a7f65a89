"""A semaphore that serves waiters in the order they came.

``threading.Semaphore`` makes no promise about which waiter goes next; for start-up turns the
order is the point: the servers that asked first are protected first, none starves.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class FairSemaphore:
    def __init__(self, value: int) -> None:
        if value < 1:
            raise ValueError("a semaphore needs at least one slot")
        self._free = value
        self._lock = threading.Lock()
        self._queue: deque[threading.Event] = deque()

    def try_acquire(self) -> bool:
        """A slot at once, or False (nobody is overtaken: a queue means no free slot)."""
        with self._lock:
            if self._free > 0 and not self._queue:
                self._free -= 1
                return True
            return False

    def acquire(self) -> None:
        with self._lock:
            if self._free > 0 and not self._queue:
                self._free -= 1
                return
            turn = threading.Event()
            self._queue.append(turn)
        turn.wait()  # the releaser handed its slot over: nothing to take

    def release(self) -> None:
        with self._lock:
            if self._queue:
                self._queue.popleft().set()
            else:
                self._free += 1

    def waiting(self) -> int:
        with self._lock:
            return len(self._queue)

    def __enter__(self) -> FairSemaphore:
        self.acquire()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.release()
