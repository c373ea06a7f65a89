"""Space on Barman's volume, proven on a small filesystem: BARMAN_HOME is a tmpfs this test
mounts (as root) and unmounts.

In order, against real PostgreSQL and Barman: a backup larger than the free space is refused
before Barman runs (logged, /readyz and /status say why, an alert); a backup that passes the
estimate but runs out of space while copying (the test fills the volume once the copy began) is
FAILED and deleted at once; once space is freed the next one is DONE; a restore onto a disk
smaller than that backup is refused in one line.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import READY, Await, Probe, running_daemon
from tests.support.paths import SUPERVISOR
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.integration
MIB = 1048576
# The volume first holds less than the database's estimate (refused), then more (taken).
SMALL, LARGE = "100m", "300m"
# About 60 MiB of rows (1000-byte rows stay uncompressed in the heap): with the new cluster's
# own ~22 MiB, the estimate is ~170 MiB, between SMALL and LARGE.
ROWS = 60000
# Left free once the copy began: far less than the copy still writes.
LEFT_FREE = 8 * MIB
# kB/s for pg_basebackup: the copy of ~85 MiB takes ~10 s, time to fill the volume under it.
BANDWIDTH_KBPS = "8192"
WAIT_S = 300
# The restore's disk: far less than the ~90 MB backup.
RESTORE_DISK = "20m"


@contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[None]:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def _reasons(probe: Probe, condition: str) -> list[str]:
    _code, document = probe.json("/readyz")
    if not document:
        return []
    return [p["reason"] for p in document["servers"]["pg"] if p["condition"] == condition]


def _alerted(webhook: WebhookReceiver, text: str) -> list[Any]:
    return [
        body
        for body in webhook.received
        if any(text in problem["reason"] for problem in body.get("problems", []))
    ]


@pytest.fixture
def pg() -> Iterator[Cluster]:
    with cluster() as server:
        server.init()
        rows = f"SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, {ROWS}) g"
        server.sql(f"CREATE TABLE t AS {rows}")
        yield server


def test_backups_on_a_small_volume(pg: Cluster, tmp_path: Path) -> None:
    home = tmp_path / "barman"
    home.mkdir()
    with webhook_receiver() as webhook, tmpfs(home, SMALL):
        env = {
            "HEALTH_INTERVAL": "1",
            "ALERT_WEBHOOK_URL": webhook.url,
            "BACKUP_BANDWIDTH_LIMIT": BANDWIDTH_KBPS,
        }
        # 1. Refused before Barman runs: the database does not fit.
        with running_daemon(tmp_path, pg, until=Await("backup_refused", WAIT_S), **env) as daemon:
            reason = daemon.find("backup_refused")[0]["reason"]
            assert reason.startswith("not enough free space for the backup in BARMAN_HOME"), reason
            assert "database size" in reason
            print("refusal:", reason)
            probe = daemon.probe
            wait_until(lambda: _reasons(probe, "backup_job"), 60, what="backup_job in /readyz")
            assert "not enough free space" in _reasons(probe, "backup_job")[0]
            status = probe.json("/status")[1]["servers"]["pg"]
            assert "not enough free space" in str(status), status
            wait_until(lambda: _alerted(webhook, "not enough free space"), 60, what="an alert")
            assert not daemon.find("backup_finished", ok=True)
            assert not glob.glob(str(home / "pg" / "base" / "*"))

        # 2. Passes the estimate, runs out of space while copying: FAILED and deleted at once.
        subprocess.run(["mount", "-o", f"remount,size={LARGE}", str(home)], check=True)
        with running_daemon(tmp_path, pg, until=None, output="enospc", **env) as daemon:
            wait_until(
                lambda: glob.glob(str(home / "pg" / "base" / "*" / "data" / "base")),
                WAIT_S,
                what="the copy to begin",
            )
            filler = home / "filler"
            free = shutil.disk_usage(home).free
            subprocess.run(["fallocate", "-l", str(free - LEFT_FREE), str(filler)], check=True)
            finished = daemon.wait_for("backup_finished", WAIT_S)
            print("out of space:", finished)
            assert finished["ok"] is False
            assert "no space left on device" in finished["reason"].lower(), finished
            daemon.wait_for("failed_backup_deleted", 60)
            assert daemon.backups() == []
            assert not glob.glob(str(home / "pg" / "base" / "*"))
            filler.unlink()

        # 3. Space freed: the next backup is DONE.
        with running_daemon(tmp_path, pg, until=READY, output="freed", **env) as daemon:
            done = daemon.wait_for("backup_finished", WAIT_S)
            print("after freeing:", done)
            assert done["ok"] is True
            assert [b["status"] for b in daemon.backups()] == ["DONE"]

            # 4. A restore onto a disk smaller than the backup: one line, exit 2, nothing written.
            destination = tmp_path / "restore"
            destination.mkdir()
            with tmpfs(destination, RESTORE_DISK):
                refused = subprocess.run(
                    [SUPERVISOR, "restore", "pg", str(destination / "pg")],
                    capture_output=True,
                    text=True,
                    timeout=WAIT_S,
                    env=daemon.env,
                    check=False,
                )
                print("restore:", refused.returncode, refused.stderr)
                assert refused.returncode == 2, refused.stdout + refused.stderr
                line = refused.stderr.strip()
                assert "\n" not in line
                assert f"not enough free space for the restore in {destination / 'pg'}" in line
                assert "needed" in line and "free" in line
                assert not any(destination.iterdir())
