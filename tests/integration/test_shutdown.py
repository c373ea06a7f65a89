"""SIGTERM while a backup runs: wait up to the grace, then stop it so Barman records it FAILED."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.daemon import Await, Daemon, running_daemon
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.processes import processes_using

pytestmark = pytest.mark.integration


@contextmanager
def _daemon_with_slow_backup(pg: Cluster, workdir: Path, grace: str) -> Iterator[Daemon]:
    # ~40 MB at 1 MB/s: the first backup runs long enough to be caught in the act.
    pg.sql("CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g")
    with running_daemon(
        workdir,
        pg,
        until=Await("backup_starting", 120, {"server": "pg"}),
        BACKUP_BANDWIDTH_LIMIT="1000",
        SHUTDOWN_GRACE=grace,
        BARMAN_CRON_INTERVAL="5",
    ) as daemon:
        wait_until(
            lambda: any("pg_basebackup" in p[3] for p in processes_using(str(workdir))),
            timeout=30,
            what="pg_basebackup to run",
        )
        yield daemon


def test_sigterm_mid_backup_waits_for_the_grace_then_fails_it_and_exits_0(tmp_path: Path) -> None:
    with cluster() as pg:
        pg.init()
        with _daemon_with_slow_backup(pg, tmp_path, grace="3") as daemon:
            started = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(120) == 0
            elapsed = time.monotonic() - started
        assert elapsed >= 3, "the backup was not given its grace period"
        assert daemon.find("waiting_for_backup", grace_s=3.0)
        assert daemon.find("backup_interrupted")
        assert not processes_using(str(tmp_path)), "a Barman process outlived the daemon"
        assert [b["status"] for b in daemon.backups()] == ["FAILED"]
        assert pg.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'barman'") == "f"


def test_sigterm_mid_backup_lets_it_finish_within_the_grace(tmp_path: Path) -> None:
    with cluster() as pg:
        pg.init()
        with _daemon_with_slow_backup(pg, tmp_path, grace="300") as daemon:
            daemon.signal(signal.SIGINT)
            assert daemon.wait(300) == 0
        assert daemon.find("backup_finished_before_stop")
        assert [b["status"] for b in daemon.backups()] == ["DONE"]
        assert not processes_using(str(tmp_path))
