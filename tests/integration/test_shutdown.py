"""SIGTERM while a backup runs: wait up to the grace, then stop it so Barman records it FAILED."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration.harness import Cluster, Daemon, cluster, processes_using, wait_until

pytestmark = pytest.mark.integration


def _daemon_with_slow_backup(pg: Cluster, workdir: Path, grace: str) -> Daemon:
    # ~40 MB at 1 MB/s: the first backup runs long enough to be caught in the act.
    pg.sql("CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g")
    daemon = Daemon(
        workdir, pg, BACKUP_BANDWIDTH_LIMIT="1000", SHUTDOWN_GRACE=grace, BARMAN_CRON_INTERVAL="5"
    ).start()
    daemon.wait_for("backup_starting", timeout=120, server="pg")
    wait_until(
        lambda: any("pg_basebackup" in p[3] for p in processes_using(str(workdir))),
        timeout=30,
        what="pg_basebackup to run",
    )
    return daemon


def test_sigterm_mid_backup_waits_for_the_grace_then_fails_it_and_exits_0(tmp_path: Path) -> None:
    with cluster() as pg:
        pg.init()
        daemon = _daemon_with_slow_backup(pg, tmp_path, grace="3")
        try:
            started = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(120) == 0
            elapsed = time.monotonic() - started
        finally:
            daemon.kill()
        assert elapsed >= 3, "the backup was not given its grace period"
        assert daemon.find("waiting_for_backup", grace_s=3.0)
        assert daemon.find("backup_interrupted")
        assert not processes_using(str(tmp_path)), "a Barman process outlived the daemon"
        assert [b["status"] for b in daemon.backups()] == ["FAILED"]
        assert pg.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'barman'") == "f"


def test_sigterm_mid_backup_lets_it_finish_within_the_grace(tmp_path: Path) -> None:
    with cluster() as pg:
        pg.init()
        daemon = _daemon_with_slow_backup(pg, tmp_path, grace="300")
        try:
            daemon.signal(signal.SIGINT)
            assert daemon.wait(300) == 0
        finally:
            daemon.kill()
        assert daemon.find("backup_finished_before_stop")
        assert [b["status"] for b in daemon.backups()] == ["DONE"]
        assert not processes_using(str(tmp_path))
