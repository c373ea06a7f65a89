"""The restore drill from the off-site store (DRILL_SOURCE=offsite), and restore from the
store after a timeline switch (issue 14), against real PostgreSQL 15, real Barman and a real
S3 API server (moto_server).

The drill restores the store's newest backup and the WAL after it into its scratch directory
and counts the rows there. The server Barman protects is then promoted (stopped, started as a
standby of nothing, promoted: a real timeline switch on the same cluster, as a failover leaves
it). Its history file and the new timeline's WAL reach the store; with the
Barman volume gone, ``restore-offsite`` rebuilds the newest point, which lies on the new
timeline, from the backup of the old one; ``--target-tli 1`` rebuilds the old timeline's end.

The daemon of this module compresses what it copies (OFFSITE_COMPRESSION=lz4), that of
``test_offsite`` does not: both kinds are restored.

The tests of this module run in order and share one daemon.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import load_settings
from barman_supervisor.drill import DrillConfig, DrillResult, run_drill
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from tests.support.offsite import PREFIX, Offsite, offsite_daemon
from tests.support.poll import wait_until
from tests.support.postgres import Cluster
from tests.support.restored import restore_dir, started_copy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def offsite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offsite]:
    with offsite_daemon(
        tmp_path_factory.mktemp("offsite-timeline"),
        BARMAN_CRON_INTERVAL="2",
        BACKUP_IMMEDIATE_CHECKPOINT="true",
        HEALTH_INTERVAL="1",
        OFFSITE_INTERVAL="5",
        OFFSITE_COMPRESSION="lz4",
        # The promotion below is followed; its full backup on timeline 2 would become the
        # store's newest, and these tests restore the timeline-1 backup across the switch.
        FAILOVER_BACKUP="false",
    ) as offsite:
        yield offsite


def current_timeline(pg: Cluster) -> str:
    return pg.sql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")


def restore_offsite(offsite: Offsite, destination: Path, *extra: str) -> str:
    done = offsite.restore_offsite(destination, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def start_and_count(datadir: Path, table: str) -> tuple[int, str]:
    """Start the restored copy; once it has replayed everything and opened for writes, the
    rows of ``table`` and the timeline it opened on."""
    with started_copy(datadir) as restored:
        wait_until(
            lambda: restored.sql("SELECT pg_is_in_recovery()") == "f",
            timeout=120,
            what="recovery finished",
        )
        count = int(restored.sql(f"SELECT count(*) FROM {table}"))
        return count, current_timeline(restored)


def drill_from_the_store(offsite: Offsite) -> DrillResult:
    """One drill with DRILL_SOURCE=offsite, run as the daemon runs it; nothing left behind."""
    settings = load_settings({**offsite.daemon.env, "DRILL_SOURCE": "offsite"})
    server = settings.servers[0]
    runner = Runner(Pid1(), settings.child_env)
    scratch = Path(tempfile.mkdtemp(prefix="bs-drill-offsite-"))
    scratch.chmod(0o755)  # the drill's PostgreSQL runs as postgres and must reach it
    try:
        config = dataclasses.replace(
            DrillConfig.from_settings(settings, server), scratch_root=scratch
        )
        result = run_drill(
            settings,
            server,
            Barman(settings, runner),
            runner,
            config,
            threading.Event(),
        )
        assert sorted(scratch.iterdir()) == []
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def wait_in_store(offsite: Offsite, *names: str) -> None:
    wait_until(
        lambda: set(names) <= offsite.store_wal(),
        timeout=120,
        what=f"{', '.join(names)} in the bucket",
    )


def test_the_drill_restores_from_the_store(offsite: Offsite) -> None:
    copied = offsite.daemon.wait_for("offsite_backup_copied", timeout=240)
    offsite.pg.sql("CREATE TABLE tl (id int)")
    offsite.pg.sql("INSERT INTO tl SELECT g FROM generate_series(1, 100) g")
    wait_in_store(offsite, offsite.switch_and_archive())
    result = drill_from_the_store(offsite)
    assert result.ok, result.reason
    assert result.source == "offsite"
    assert result.backup_id == copied["backup_id"]
    # The rows written after the backup are only in the WAL the store holds.
    assert result.rows == 100
    assert {"recover_s", "start_s", "query_s"} <= set(result.timings)
    # What the store holds is compressed: the backup's tar and every WAL file.
    backup_keys = offsite.s3.keys(f"{PREFIX}/pg/base/{copied['backup_id']}/")
    assert [key for key in backup_keys if key.endswith("/data.tar.lz4")], backup_keys
    wal_keys = offsite.store_wal_keys()
    assert wal_keys
    assert [key for key in wal_keys if not key.endswith(".lz4")] == []


def test_a_restore_from_the_store_follows_a_promotion(offsite: Offsite) -> None:
    pg = offsite.pg
    copied = offsite.daemon.find("offsite_backup_copied")[0]
    pg.promote()
    assert current_timeline(pg) == "00000002"
    pg.sql("INSERT INTO tl SELECT g FROM generate_series(1, 50) g")
    pg.sql("CHECKPOINT")
    segment = offsite.switch_and_archive()
    assert segment.startswith("00000002")
    wait_in_store(offsite, segment, "00000002.history")
    # The drill from the store follows the switch too.
    drilled = drill_from_the_store(offsite)
    assert drilled.ok and drilled.rows == 150, drilled.reason
    # The Barman host is lost: daemon gone, its volume deleted.
    offsite.daemon.stop()
    shutil.rmtree(offsite.daemon.home)
    for extra, rows, timeline in ((), 150, "00000002"), (("--target-tli", "1"), 100, "00000001"):
        with restore_dir("bs-offsite-tl-") as base:
            out = restore_offsite(offsite, base / "data", *extra)
            assert f"backup       {copied['backup_id']} (timeline 1" in out
            assert f"timeline     {int(timeline, 16)} (recovery_target_timeline)" in out
            if timeline == "00000002":
                assert "timeline 1 from 000000010000" in out and "then timeline 2 from" in out
                assert (base / "data" / "barman_wal" / "00000002.history").is_file()
            count, opened_on = start_and_count(base / "data", "tl")
            assert count == rows, out
            # Recovery ends by opening a new timeline after the one it followed.
            assert int(opened_on, 16) == int(timeline, 16) + 1
