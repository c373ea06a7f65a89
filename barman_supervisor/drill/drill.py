"""One restore drill, step by step; see the package docstring for what each step proves."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from psycopg.conninfo import conninfo_to_dict

from barman_supervisor.barman.chains import combine_missing
from barman_supervisor.barman.commands import Barman
from barman_supervisor.barman.records import Backup, BackupFacts
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.drill.cluster import Scratch, TempServer, free_port
from barman_supervisor.drill.plan import (
    DrillConfig,
    restored_age,
    server_options,
    space_problem,
    unreachable_ancestor,
)
from barman_supervisor.drill.source import source_for
from barman_supervisor.errors import DrillFailed, Interrupted
from barman_supervisor.log import get_logger
from barman_supervisor.postgres.programs import (
    RunAs,
    find_bin_dir,
    major_of,
    missing_server_programs,
    server_user,
)
from barman_supervisor.process.runner import Runner
from barman_supervisor.status.state import DrillResult

_log = get_logger(__name__)
T = TypeVar("T")
_WATCH_POLL = 0.2
_WATCH_SETTLE = 1.0
_WATCHER_JOIN = 5.0


@dataclass(frozen=True)
class _Plan:
    """What the checks before any copy found: the backup, its facts, the programs, the user."""

    backup: Backup
    facts: BackupFacts
    bin_dir: Path
    run_as: RunAs


class Drill:
    """One drill's steps in the order a person would take them in an incident (about 235
    lines: the steps read top to bottom; the server and scratch handling live in ``cluster``)."""

    def __init__(
        self,
        settings: Settings,
        server: ServerSettings,
        barman: Barman,
        runner: Runner,
        config: DrillConfig,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.server = server
        self.barman = barman
        self.runner = runner
        self.config = config
        self.stop = stop
        self.clock = clock
        self.kinds = {
            step: f"drill-{step}:{server.name}" for step in ("verify", "recover", "postgres")
        }
        self._deadline = 0.0
        self._scratch: Scratch | None = None
        # Whether a failure is the backup's (``DrillResult.backup_fault``): its verification
        # rejected it, or its restore, start or query failed other than by running out of time.
        self._damaged = False
        self._restoring = False
        self._timed_out = False
        self.source = source_for(
            settings, server, barman, runner, self.kinds, self._remaining, config.pg_bin_dir
        )

    def run(self) -> DrillResult:
        """The whole drill; never raises: a failed step is the result's reason."""
        result = DrillResult(False, "", self.server.name, self.clock(), source=self.source.name)
        started = time.monotonic()
        self._deadline = started + self.config.timeout
        watcher_done = threading.Event()
        watcher = threading.Thread(
            target=self._watch_stop, args=(watcher_done,), name=f"drill-stop-{self.server.name}"
        )
        watcher.start()
        _log.info(
            "drill_started", server=self.server.name, scratch_root=str(self.config.scratch_root)
        )
        try:
            self._steps(result)
            result.ok = True
        except Interrupted as exc:
            result.reason, result.interrupted = str(exc), True
        except DrillFailed as exc:
            # A step the shutdown cut short fails like any other: say why it did.
            result.interrupted = self.stop.is_set()
            result.reason = f"interrupted by shutdown ({exc})" if result.interrupted else str(exc)
            result.backup_fault = not result.interrupted and (
                self._damaged or (self._restoring and not self._timed_out)
            )
        except Exception as exc:  # a drill must report, never take the job down
            _log.exception("drill_crashed", server=self.server.name)
            result.reason = f"{type(exc).__name__}: {exc}"
        finally:
            watcher_done.set()
            self._clean_up(result)
            watcher.join(_WATCHER_JOIN)
        self._finish(result, time.monotonic() - started)
        return result

    def _clean_up(self, result: DrillResult) -> None:
        started = time.monotonic()
        leftover = self._scratch.remove() if self._scratch is not None else ""
        result.timings["cleanup_s"] = round(time.monotonic() - started, 3)
        if leftover:
            result.ok = False
            result.reason = "; ".join(filter(None, [result.reason, leftover]))

    def _finish(self, result: DrillResult, duration: float) -> None:
        result.duration_s = round(duration, 3)
        if result.ok:
            level = logging.INFO
        else:
            level = logging.WARNING if result.interrupted else logging.ERROR
        _log.log(
            level,
            "drill_finished",
            **{k: v for k, v in result.as_dict().items() if v not in (None, "", {})},
        )

    # Steps --------------------------------------------------------------------------------------
    def _steps(self, result: DrillResult) -> None:
        plan = self._plan(result)
        damaged = self._timed(
            result,
            "verify_s",
            lambda: self.source.verify(plan.backup, plan.facts, self._remaining()),
        )
        self._check_stop()
        if damaged is not None:
            self._damaged = True
            raise DrillFailed(f"backup verification failed: {damaged}")
        self._restoring = True
        self._restore_and_query(plan, result)

    def _plan(self, result: DrillResult) -> _Plan:
        """Everything that can refuse the drill before a byte is copied."""
        backup, facts = self._timed(result, "show_s", self.source.choose)
        result.backup_id = backup.backup_id
        result.pg_version = facts.version_num
        major = major_of(facts.version_num)
        bin_dir = find_bin_dir(major, self.config.pg_bin_dir)
        if bin_dir is None:
            raise DrillFailed(missing_server_programs(major, self.config.pg_bin_dir))
        if facts.incremental and not (bin_dir / "pg_combinebackup").is_file():
            raise DrillFailed(
                f"backup {backup.backup_id} is incremental and {combine_missing(major)}"
            )
        try:
            run_as = server_user(os.geteuid(), self.settings.barman_user)
        except LookupError as exc:
            raise DrillFailed(str(exc)) from None
        self._check_space(backup)
        self._check_reachable(run_as)
        self._check_stop()
        return _Plan(backup, facts, bin_dir, run_as)

    def _restore_and_query(self, plan: _Plan, result: DrillResult) -> None:
        self._scratch = Scratch(self.config.scratch_root, plan.run_as)
        scratch = self._scratch.make(f"{self.server.name}-")
        data = scratch / "data"
        restore_started = time.monotonic()
        self._timed(
            result,
            "recover_s",
            lambda: self.source.recover(plan.backup, data, plan.bin_dir, self._remaining()),
        )
        self._check_stop()
        port = free_port()
        socket_dir = self._scratch.socket_dir(scratch, port)
        hba, ident = self._scratch.prepare(scratch, data)
        argv = [
            *plan.run_as.prefix,
            "env",
            "-C",
            str(scratch),
            str(plan.bin_dir / "postgres"),
            "-D",
            str(data),
            *server_options(port, socket_dir, hba, ident, scratch / "external.pid"),
        ]
        postgres = TempServer(self.runner, argv, self.kinds["postgres"], socket_dir, port)
        self._check_stop()
        start_started = time.monotonic()
        postgres.start(self._remaining())
        try:
            superuser = postgres.wait_until_promoted(
                _conninfo_user(self.server) or "postgres", self._keep_waiting, self.stop.wait
            )
            result.timings["start_s"] = round(time.monotonic() - start_started, 3)
            rows, databases, newest_commit = self._timed(
                result,
                "query_s",
                lambda: postgres.verify_data(superuser, self.config.query, self._remaining),
            )
            _log.info(
                "drill_data_verified", server=self.server.name, rows=rows, databases=databases
            )
            result.restore_s = round(time.monotonic() - restore_started, 3)
            result.rows, result.databases = rows, databases
            result.newest_commit_at = newest_commit
            result.restored_as_of, result.restored_age_s = restored_age(
                newest_commit, plan.backup.end_time, self.clock()
            )
        finally:
            stop_started = time.monotonic()
            if not postgres.stop():
                _log.error("drill_postgres_not_stopped", server=self.server.name)
            result.timings["stop_s"] = round(time.monotonic() - stop_started, 3)

    def _check_space(self, backup: Backup) -> None:
        root = self.config.scratch_root
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o711)
            free = shutil.disk_usage(root).free
        except OSError as exc:
            raise DrillFailed(
                f"DRILL_SCRATCH_DIR {root}: {exc.strerror}; make it a writable directory"
            ) from None
        problem = space_problem(
            free,
            (backup.size_bytes or 0) + (backup.wal_size_bytes or 0),
            self.config.space_factor,
            self.config.space_margin_bytes,
        )
        if problem is not None:
            raise DrillFailed(problem)

    def _check_reachable(self, run_as: RunAs) -> None:
        groups = set(os.getgrouplist(run_as.user, run_as.gid))
        blocked = unreachable_ancestor(self.config.scratch_root, run_as.uid, run_as.gid, groups)
        if blocked is not None:
            raise DrillFailed(
                f"user {run_as.user} (who runs the drill's PostgreSQL) cannot enter {blocked}; "
                "set DRILL_SCRATCH_DIR to a directory it can reach"
            )

    # Helpers ------------------------------------------------------------------------------------
    def _timed(self, result: DrillResult, name: str, step: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return step()
        finally:
            result.timings[name] = round(time.monotonic() - started, 3)

    def _remaining(self) -> float:
        """Seconds left before DRILL_TIMEOUT; raises once it is reached or the daemon stops."""
        self._check_stop()
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self._timed_out = True
            raise DrillFailed(f"DRILL_TIMEOUT={self.config.timeout:g}s reached")
        return remaining

    def _keep_waiting(self, last: str) -> None:
        self._check_stop()
        if time.monotonic() > self._deadline:
            self._timed_out = True
            raise DrillFailed(
                "PostgreSQL did not finish recovery within "
                f"DRILL_TIMEOUT={self.config.timeout:g}s ({last})"
            )

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted("drill")

    def _watch_stop(self, done: threading.Event) -> None:
        """A stop request ends whatever the drill thread is waiting for: ``verify`` and
        ``recover`` get SIGTERM, the temporary PostgreSQL a fast shutdown (SIGINT), which also
        cancels a running verification query. The drill thread then cleans up."""
        while not done.is_set():
            if self.stop.wait(_WATCH_POLL) and not done.is_set():
                self.runner.signal([self.kinds["verify"], self.kinds["recover"]], signal.SIGTERM)
                self.runner.signal([self.kinds["postgres"]], signal.SIGINT)
                done.wait(_WATCH_SETTLE)


def run_drill(
    settings: Settings,
    server: ServerSettings,
    barman: Barman,
    runner: Runner,
    config: DrillConfig,
    stop: threading.Event,
) -> DrillResult:
    """One restore drill of ``server``'s newest DONE backup that has not failed verification;
    see the package docstring."""
    return Drill(settings, server, barman, runner, config, stop).run()


def _conninfo_user(server: ServerSettings) -> str | None:
    """The Barman role exists in every restored copy (Barman logged in with it)."""
    user = conninfo_to_dict(server.conninfo).get("user")
    return str(user) if user else None
