"""What every job shares: its log context, its timing, its recorded outcome, and its locks.

A job of one kind never runs twice at once for one server: APScheduler's ``max_instances=1``
covers a job with itself; the per-server locks here cover two jobs that do the same thing (the
start-up backup and the scheduled one, a drill and the shutdown waiting for it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from barman_supervisor.barman.commands import Outcome
from barman_supervisor.errors import Interrupted, StartupFailed
from barman_supervisor.log import bind, get_logger
from barman_supervisor.status.state import JobRun, State

_log = get_logger(__name__)


@dataclass
class Run:
    """A job's outcome while it runs; a failed step says why, the job goes on or returns."""

    ok: bool = True
    reason: str = ""
    exit_code: int | None = None
    interrupted: bool = False

    def fail(self, reason: str, exit_code: int | None = None) -> None:
        self.ok, self.reason, self.exit_code = False, reason, exit_code

    def take(self, outcome: Outcome) -> bool:
        """Record a Barman command's exit; True when it succeeded."""
        self.exit_code = outcome.completed.returncode
        if not outcome.ok:
            self.fail(outcome.reason(), outcome.completed.returncode)
        return outcome.ok


class JobRecorder:
    def __init__(self, state: State, stop: threading.Event) -> None:
        self._state = state
        self._stop = stop

    @contextmanager
    def job(self, job: str, server: str | None) -> Iterator[Run]:
        """Bind log context, time the job, record its outcome; shutdown is not a failure."""
        run = Run()
        started_wall, started = time.time(), time.monotonic()
        with bind(job=job, **({"server": server} if server else {})):
            _log.info("job_started")
            try:
                yield run
            except Interrupted as exc:
                run.fail(str(exc))
                run.interrupted = True
            except StartupFailed as exc:
                run.fail(str(exc))
                raise
            except Exception as exc:  # a job must never take the scheduler down
                _log.exception("job_crashed")
                run.fail(f"{type(exc).__name__}: {exc}")
            finally:
                self._finish(job, server, run, started_wall, time.monotonic() - started)

    def _finish(
        self, job: str, server: str | None, run: Run, started_at: float, duration: float
    ) -> None:
        stopping = self._stop.is_set()
        if not run.ok and stopping and not run.interrupted:
            # A command the shutdown signalled fails like any other: say why it did.
            run.reason, run.interrupted = f"interrupted by shutdown ({run.reason})", True
        duration = round(duration, 3)
        self._state.record_run(
            server, JobRun(job, started_at, duration, run.ok, run.reason, run.exit_code)
        )
        level = logging.INFO if run.ok else logging.WARNING if stopping else logging.ERROR
        _log.log(
            level,
            "job_finished",
            ok=run.ok,
            duration_s=duration,
            **({"reason": run.reason} if run.reason else {}),
        )


class ServerLocks:
    """One lock per server, created on first use, for one kind of work."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, server: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(server, threading.Lock())
