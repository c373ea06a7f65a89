"""Off-site copies (issue 14) against a real S3 API server (moto_server), real PostgreSQL 15
and real Barman: backups and WAL reach the bucket; an outage of the store turns /readyz red
with the reason and the backlog drains afterwards with nothing missing; the store's retention
deletes there; then, with the Barman volume gone, ``restore-offsite`` rebuilds a point in time
from the bucket alone. Bad keys, an unknown bucket and a malformed URL are refused at start.

The tests of this module run in order and share one daemon.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.verdicts import VerdictFiles
from tests.support.offsite import PREFIX, Offsite, offsite_daemon
from tests.support.paths import SUPERVISOR
from tests.support.poll import wait_until
from tests.support.processes import process_table
from tests.support.restored import count_at_target, restore_dir

pytestmark = pytest.mark.integration
# Seconds between the target and the next commit: the target lies clearly between two commits.
COMMIT_SPACING_S = 1.0


@pytest.fixture(scope="module")
def offsite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offsite]:
    with offsite_daemon(
        tmp_path_factory.mktemp("offsite"),
        BARMAN_CRON_INTERVAL="2",
        BACKUP_IMMEDIATE_CHECKPOINT="true",
        HEALTH_INTERVAL="1",
        BARMAN_CHECK_INTERVAL="5",
        OFFSITE_INTERVAL="5",
        OFFSITE_WAL_MAX_LAG="10",
        OFFSITE_RETENTION_POLICY="REDUNDANCY 1",
    ) as offsite:
        yield offsite


def test_backups_and_wal_reach_the_bucket(offsite: Offsite) -> None:
    copied = offsite.daemon.wait_for("offsite_backup_copied", timeout=240)
    assert copied["backup_id"] in offsite.store_backups()
    segment = offsite.switch_and_archive()
    wait_until(lambda: segment in offsite.store_wal(), timeout=60, what=f"{segment} in the bucket")
    status = offsite.offsite_status()
    assert status["url"] == f"s3://{offsite.s3.bucket}/{PREFIX}"
    assert copied["backup_id"] in status["backups"]  # type: ignore[operator]
    wait_until(lambda: offsite.probe.get("/readyz")[0] == 200, timeout=60, what="/readyz 200")
    metrics = offsite.probe.get("/metrics")[1]
    assert 'barman_supervisor_offsite_last_copy_success{server="pg"} 1.0' in metrics
    assert 'barman_supervisor_offsite_copied_bytes_total{server="pg"}' in metrics
    # The key never shows: not in the logs, /status, /metrics, nor any command line.
    texts = [
        offsite.daemon.stdout.read_text(),
        offsite.daemon.stderr.read_text(),
        offsite.probe.get("/status")[1],
        metrics,
    ]
    assert not [t for t in texts if offsite.s3.secret in t]
    assert not [p for p in process_table() if offsite.s3.secret in p[3]]


def test_an_outage_of_the_store_is_red_then_the_backlog_drains(offsite: Offsite) -> None:
    offsite.s3.relay.cut()
    try:
        written = [offsite.switch_and_archive() for _ in range(3)]

        def red_for_offsite() -> str | None:
            code, document = offsite.probe.json("/readyz")
            reasons = [
                p["reason"] for p in document["servers"]["pg"] if p["condition"] == "offsite"
            ]
            return reasons[0] if code == 503 and reasons else None

        reason = wait_until(red_for_offsite, timeout=90, what="/readyz red for offsite")
        assert "off-site" in reason and "Could not connect" in reason, reason
        offsite.daemon.wait_for("alert", timeout=30, state="failing")
        assert not set(written) & offsite.store_wal()
        # Barman's retention may delete nothing the store lacks: the backup is held.
        held = offsite.daemon.wait_for("offsite_hold", timeout=60)["backup_id"]
        assert "full" in keep_status(offsite, held)
    finally:
        offsite.s3.relay.up()
    # Backoff after a few failures is at most MAX_BACKOFF; in this outage it stays short.
    wait_until(lambda: set(written) <= offsite.store_wal(), timeout=180, what="backlog drained")
    wait_until(lambda: offsite.probe.get("/readyz")[0] == 200, timeout=60, what="green again")
    offsite.daemon.wait_for("offsite_copy_recovered", timeout=30)
    # Caught up, the off-site hold moves to the newest full backup (the WAL archived before the
    # next round is owed too, and follows its start) and is not let go; the hold on the newest
    # verified backup (issue 24: retention never removes it) shares its keep.
    done = [b for b in offsite.daemon.backups() if b["status"] == "DONE"]
    newest = max(b["backup_id"] for b in done if b.get("backup_type", "full") != "incremental")
    wait_until(
        lambda: offsite.offsite_status().get("retention_hold") == newest,
        timeout=90,
        what=f"the off-site hold on the newest backup {newest} (held during the outage: {held})",
    )
    assert "full" in keep_status(offsite, newest)
    verdict = VerdictFiles(BarmanHome(offsite.daemon.home)).read("pg", newest)
    assert verdict is not None and verdict.verdict == "verified" and verdict.held
    missing = offsite.local_wal() - offsite.store_wal()
    assert not missing, f"WAL in Barman's archive but not in the store: {sorted(missing)}"
    assert offsite.offsite_status()["wal_files_owed"] == 0


def keep_status(offsite: Offsite, backup_id: str) -> str:
    done = offsite.daemon.barman_command("keep", "--status", "pg", backup_id)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_retention_deletes_on_the_store(offsite: Offsite) -> None:
    first = offsite.store_backups()
    assert len(first) == 1
    taken = offsite.daemon.barman_command("backup", "--wait", "--immediate-checkpoint", "pg")
    assert taken.returncode == 0, taken.stderr
    # REDUNDANCY 1 on the store: the new backup arrives, the older one goes.
    wait_until(
        lambda: (s := offsite.store_backups()) and not s & first and len(s) == 1,
        timeout=180,
        what="the new backup copied and the old one deleted on the store",
    )
    # Locally (7 days' window) both stay: the store's policy is its own.
    done = [b for b in offsite.daemon.backups() if b["status"] == "DONE"]
    assert len(done) == 2


def test_restore_from_the_bucket_alone_to_a_target_time(offsite: Offsite) -> None:
    pg = offsite.pg
    pg.sql("CREATE TABLE pitr (id int)")
    pg.sql("INSERT INTO pitr SELECT g FROM generate_series(1, 100) g")
    target = pg.sql("SELECT clock_timestamp()")
    time.sleep(COMMIT_SPACING_S)  # spacing the commits, not waiting for anything
    pg.sql("INSERT INTO pitr SELECT g FROM generate_series(1, 50) g")
    segment = offsite.switch_and_archive()
    wait_until(lambda: segment in offsite.store_wal(), timeout=90, what=f"{segment} copied")

    # The Barman host is lost: daemon gone, its volume deleted.
    offsite.daemon.stop()
    shutil.rmtree(offsite.daemon.home)
    with restore_dir("bs-offsite-restore-") as base:
        destination = base / "data"
        done = offsite.restore_offsite(destination, "--target-time", target)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Restore plan (from the off-site store)" in done.stdout
        assert f"pg_ctl -D {destination}" in done.stdout
        assert offsite.s3.secret not in done.stdout + done.stderr
        assert count_at_target(destination, "pitr") == 100
        # The same command again is refused: the destination holds the copy now.
        again = offsite.restore_offsite(destination, timeout=120)
        assert again.returncode == 2 and "not empty" in again.stderr
        assert again.stderr.startswith(f"barman-supervisor: error: {destination} is not empty")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"AWS_ACCESS_KEY_ID": "AKIAWRONGKEY0000"}, "Permission denied"),
        ({"OFFSITE_URL": "s3://no-such-bucket/barman"}, "Bucket no-such-bucket does not exist"),
        ({"OFFSITE_URL": "s3:/offsite"}, "is not an S3 URL"),
    ],
)
def test_bad_keys_unknown_bucket_and_malformed_url_are_refused_at_start(
    offsite: Offsite, changes: dict[str, str], expected: str
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bs-offsite-bad-"))
    try:
        env = {**offsite.daemon.env, "BARMAN_HOME": str(workdir / "home"), **changes}
        env["BARMAN_CONFIG_FILE"] = str(workdir / "barman.conf")
        env["BARMAN_CONFIG_DIR"] = str(workdir / "barman.d")
        done = subprocess.run(
            [SUPERVISOR, "run"], capture_output=True, text=True, timeout=120, env=env, check=False
        )
        assert done.returncode == 2, done.stdout + done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], done.stderr
        assert lines[0].startswith("barman-supervisor: error: OFFSITE_URL")
        assert offsite.s3.secret not in done.stdout + done.stderr
        assert not (workdir / "home").exists() and not (workdir / "barman.conf").exists()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
