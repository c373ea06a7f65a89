"""A cluster a daemon protects, with its first backup DONE, and the supervisor's own restore
and drill driven against it: what the restore and compression tests share.

The drill drives Barman with the configuration that daemon rendered, through the same ``Runner``
the daemon uses; the restore is the real ``barman-supervisor restore`` command.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import Settings, load_settings
from barman_supervisor.drill import DrillConfig, DrillResult, run_drill
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from tests.support.daemon import Await, Daemon, running_daemon
from tests.support.paths import SUPERVISOR
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster

ROWS = 5000
# A restore of the test cluster takes seconds; this only bounds a hung one.
RESTORE_TIMEOUT_S = 600
FIRST_BACKUP = Await("backup_finished", 180, {"server": "pg"})


@dataclass
class Protected:
    pg: Cluster
    daemon: Daemon
    settings: Settings
    runner: Runner
    barman: Barman
    scratch: Path

    def drill(self, stop: threading.Event | None = None, **config: object) -> DrillResult:
        return run_drill(
            self.settings,
            self.settings.servers[0],
            self.barman,
            self.runner,
            dataclasses.replace(
                DrillConfig.from_settings(self.settings, self.settings.servers[0]),
                scratch_root=self.scratch,
                **config,  # type: ignore[arg-type]
            ),
            stop or threading.Event(),
        )

    def backup_id(self) -> str:
        done = [b for b in self.daemon.backups() if b["status"] == "DONE"]
        assert done, "no DONE backup"
        return str(done[0]["backup_id"])

    def switch_and_archive(self) -> Path:
        """Close the current WAL segment and wait until Barman archived it (compressed or
        not): the archived file."""
        segment = self.pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
        archived = self.daemon.home / "pg" / "wals" / segment[:16] / segment
        wait_until(archived.exists, timeout=60, what=f"WAL {segment} archived")
        return archived

    def restore(self, destination: Path, target: str) -> tuple[int, str]:
        """``barman-supervisor restore pg DESTINATION --target-time TARGET`` as a person runs
        it: its exit code and what it printed (the plan on stdout, a refusal's one line on
        stderr)."""
        done = subprocess.run(
            [SUPERVISOR, "restore", "pg", str(destination), "--target-time", target],
            capture_output=True,
            text=True,
            timeout=RESTORE_TIMEOUT_S,
            env=self.daemon.env,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr


@contextmanager
def protected_cluster(workdir: Path, rows: int = ROWS, **env: str) -> Iterator[Protected]:
    """A cluster with ``rows`` committed rows, a daemon (``env`` on top of a quick cron and an
    immediate checkpoint) whose first backup is DONE, and a scratch directory for drills."""
    with cluster() as pg:
        pg.init()
        pg.sql(f"CREATE TABLE important AS SELECT g AS id FROM generate_series(1, {rows}) g")
        scratch = Path(tempfile.mkdtemp(prefix="bs-drill-"))
        scratch.chmod(0o755)  # the drill's PostgreSQL runs as postgres and must reach it
        try:
            with running_daemon(
                workdir,
                pg,
                until=FIRST_BACKUP,
                BARMAN_CRON_INTERVAL="2",
                BACKUP_IMMEDIATE_CHECKPOINT="true",
                **env,
            ) as daemon:
                finished = daemon.find("backup_finished", server="pg")[0]
                assert finished["ok"], finished
                settings = load_settings(daemon.env)
                runner = Runner(Pid1(), settings.child_env)
                yield Protected(pg, daemon, settings, runner, Barman(settings, runner), scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
