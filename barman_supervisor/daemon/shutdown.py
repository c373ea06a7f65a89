"""Stopping Barman's processes without losing data: at start what a killed run left, at
shutdown everything, in the order that keeps backups and streaming consistent.

Shutdown order matters for the data: a running backup gets the grace period to finish (a killed
backup is a failed backup), then is stopped so Barman records it FAILED; a drill stops its
PostgreSQL and deletes its scratch copy; WAL streaming stops through Barman, and no
``pg_receivewal`` is left holding the slot.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from barman_supervisor.barman.commands import Barman
from barman_supervisor.barman.config_files import reads_this_configuration
from barman_supervisor.config import Settings
from barman_supervisor.log import get_logger
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.proctable import ProcInfo
from barman_supervisor.process.runner import Runner

_log = get_logger(__name__)
BACKUP_STOP_GRACE = 60.0
# A drill's PostgreSQL gets a fast shutdown, then immediate, then SIGKILL: at most 50 s.
DRILL_STOP_GRACE = 60.0
LEFTOVER_GRACE = 10.0
# The longest a stop takes beyond SHUTDOWN_GRACE: a backup's SIGTERM grace, a drill's stop, the
# streaming and leftover graces, the last WAL round (jobs: FLUSH_TIMEOUT + FLUSH_STOP_GRACE),
# with room for `terminate-process`. A container's stop timeout is SHUTDOWN_GRACE plus at least
# this (compose stop_grace_period, Kubernetes terminationGracePeriodSeconds); 165 s add up today.
STOP_MARGIN = 180.0
# ``terminate-process`` waits for its receiver to end, about a second: one after the other,
# fifty servers took fifty seconds to stop.
STREAMING_STOPPERS = 16
_POLL = 0.2


def is_streaming_process(proc: ProcInfo) -> bool:
    return proc.name == "pg_receivewal" or "receive-wal" in proc.cmdline


class BarmanStopper:
    def __init__(
        self,
        settings: Settings,
        supervisor: Pid1,
        runner: Runner,
        barman: Barman,
        wait_for_drills: Callable[[float], bool],
    ) -> None:
        self._settings = settings
        self._supervisor = supervisor
        self._runner = runner
        self._barman = barman
        self._wait_for_drills = wait_for_drills

    def stop_previous_run(self) -> None:
        """A daemon killed with SIGKILL (outside a container) leaves its Barman processes
        running: a backup, receive-wal, pg_receivewal holding the slot. Stop them before
        anything starts, so that an interrupted backup ends FAILED and the slot is free."""
        home = f"{self._settings.barman_home}/"

        def left_by_previous_run(proc: ProcInfo) -> bool:
            if reads_this_configuration(self._settings, proc.cmdline):
                return True
            postgres_tool = proc.name in ("pg_receivewal", "pg_basebackup")
            return postgres_tool and any(home in arg for arg in proc.cmdline)

        strays = self._supervisor.strays(left_by_previous_run)
        if strays:
            _log.warning(
                "previous_run_leftovers",
                processes=[" ".join(proc.cmdline[:6]) for proc in strays],
                action="stopping them",
            )
            self._supervisor.stop_processes(strays, LEFTOVER_GRACE)

    def stop_everything(self) -> None:
        """Backups get their grace; everything else stops now; streaming stops through Barman.
        The caller has stopped scheduling new jobs."""
        self._runner.close()
        self._runner.signal(
            [k for k in self._runner.running_kinds() if k != "backup"], signal.SIGTERM
        )
        self._let_backups_finish()
        if not self._wait_for_drills(DRILL_STOP_GRACE):
            _log.error("drill_not_stopped", grace_s=DRILL_STOP_GRACE)
        self._terminate_receivers()
        stopped = self._supervisor.terminate(is_streaming_process, LEFTOVER_GRACE, signal.SIGINT)
        if stopped:
            _log.info("streaming_stopped", pids=[proc.pid for proc in stopped])
        leftovers = self._supervisor.terminate(lambda _proc: True, LEFTOVER_GRACE)
        if leftovers:
            _log.info("leftovers_stopped", processes=[" ".join(p.cmdline[:4]) for p in leftovers])
        self._supervisor.reap_orphans()

    def _terminate_receivers(self) -> None:
        """Every running ``receive-wal`` through Barman, side by side. A server whose receiver
        never started (a refused start) has nothing to stop and nothing to report."""
        running = [
            server.name
            for server in self._settings.servers
            if self._barman.processes("receive-wal", server.name)
        ]
        if not running:
            return
        with ThreadPoolExecutor(min(STREAMING_STOPPERS, len(running))) as pool:
            outcomes = list(pool.map(self._barman.terminate_receive_wal, running))
        for server, outcome in zip(running, outcomes, strict=True):
            if not outcome.ok:
                _log.warning("terminate_receive_wal_failed", server=server, reason=outcome.reason())

    def _let_backups_finish(self) -> None:
        grace = self._settings.shutdown_grace
        if "backup" not in self._runner.running_kinds():
            return
        _log.warning("waiting_for_backup", grace_s=grace)
        deadline = time.monotonic() + grace
        while "backup" in self._runner.running_kinds() and time.monotonic() < deadline:
            time.sleep(_POLL)
        if "backup" not in self._runner.running_kinds():
            _log.info("backup_finished_before_stop")
            return
        _log.error("backup_interrupted", reason=f"still running after SHUTDOWN_GRACE={grace:g}s")
        self._runner.signal(["backup"], signal.SIGTERM)
        deadline = time.monotonic() + BACKUP_STOP_GRACE
        while "backup" in self._runner.running_kinds() and time.monotonic() < deadline:
            time.sleep(_POLL)
        if self._runner.signal(["backup"], signal.SIGKILL):
            _log.error("backup_killed", reason="ignored SIGTERM")
