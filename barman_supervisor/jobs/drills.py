"""Scheduled restore drills (DRILL_SCHEDULE), and the shutdown's wait for a running one."""

from __future__ import annotations

import threading
import time

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.drill import DrillConfig, run_drill
from barman_supervisor.jobs.recorder import JobRecorder, ServerLocks
from barman_supervisor.jobs.verdicts import BackupVerdicts
from barman_supervisor.process.runner import Runner
from barman_supervisor.status.state import State


class Drills:
    def __init__(
        self,
        settings: Settings,
        barman: Barman,
        runner: Runner,
        state: State,
        recorder: JobRecorder,
        stop: threading.Event,
        verdicts: BackupVerdicts | None = None,
    ) -> None:
        """``verdicts``: where a drill's verdict on its backup goes (None: nowhere)."""
        self._settings = settings
        self._barman = barman
        self._runner = runner
        self._state = state
        self._recorder = recorder
        self._stop = stop
        self._running = ServerLocks()
        self._verdicts = verdicts

    def drill(self, server: ServerSettings) -> None:
        """One drill; its result feeds /status, /metrics, /readyz and alerts. It stops, and
        cleans up, when the daemon is asked to stop."""
        with self._running(server.name), self._recorder.job("drill", server.name) as run:
            result = run_drill(
                self._settings,
                server,
                self._barman,
                self._runner,
                DrillConfig.from_settings(self._settings, server),
                self._stop,
            )
            self._state.record_drill(server.name, result)
            if self._verdicts is not None:
                self._verdicts.record_drill(server.name, result)
            if not result.ok:
                run.fail(result.reason)

    def wait(self, timeout: float) -> bool:
        """At shutdown: a drill stops its PostgreSQL and deletes its scratch copy before the
        daemon exits. True when no drill is left running."""
        deadline = time.monotonic() + timeout
        for server in self._settings.servers:
            lock = self._running(server.name)
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
            lock.release()
        return True
