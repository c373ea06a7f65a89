"""Backups proven restorable, against real PostgreSQL 15 and real Barman: verification, the
restore drill (success, damaged backup, full disk, stop mid-drill) and the ``restore`` command
with a target time.

One daemon (the real ``barman-supervisor run``) protects one cluster and takes the first backup;
the drill then drives Barman with the configuration that daemon rendered, through the same
``Runner`` the daemon uses, and the restore is the real ``barman-supervisor restore`` command.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from barman_supervisor.barman.verify import verify_backup
from barman_supervisor.cli import EXIT_BAD_INPUT
from barman_supervisor.drill import DrillResult
from tests.support.poll import wait_until
from tests.support.ports import free_port
from tests.support.processes import process_table, processes_using
from tests.support.protected import ROWS, Protected, protected_cluster
from tests.support.restored import count_at_target, restore_dir

pytestmark = pytest.mark.integration
LATER_ROWS = 250
# Seconds between the target and the next commit: the target lies clearly between two commits.
COMMIT_SPACING_S = 1.0


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Protected]:
    with protected_cluster(
        tmp_path_factory.mktemp("restore"), HTTP_BIND="127.0.0.1", HTTP_PORT=str(free_port())
    ) as ready:
        yield ready


def leftovers(p: Protected) -> tuple[list[tuple[int, int, str, str]], list[Path]]:
    return processes_using(str(p.scratch)), sorted(p.scratch.iterdir())


def test_verify_backup_passes_on_a_fresh_backup(protected: Protected) -> None:
    result = verify_backup(protected.barman, "pg", protected.backup_id())
    assert result.ok, result.reason
    assert result.duration_s > 0 and result.backup_id == protected.backup_id()


def test_drill_restores_backup_and_later_wal_and_reads_the_rows(protected: Protected) -> None:
    protected.pg.sql(f"INSERT INTO important SELECT g FROM generate_series(1, {LATER_ROWS}) g")
    protected.switch_and_archive()
    result = protected.drill()
    assert result.ok, result.reason
    # the backup's rows and the ones only in the WAL after it: the restore replays WAL
    assert result.rows == ROWS + LATER_ROWS
    assert result.databases == 1
    assert result.backup_id == protected.backup_id()
    assert result.newest_commit_at is not None and result.restored_age_s is not None
    assert 0 <= result.restored_age_s < 300
    assert result.restore_s is not None and result.restore_s > 0
    assert {"verify_s", "recover_s", "start_s", "query_s", "stop_s"} <= set(result.timings)
    assert leftovers(protected) == ([], [])


def test_drill_refuses_when_scratch_disk_is_too_small(protected: Protected) -> None:
    result = protected.drill(space_factor=1e9)
    assert not result.ok and not result.interrupted
    assert result.reason.startswith("not enough free space for the drill")
    assert "timings" not in result.reason and "recover_s" not in result.timings
    assert leftovers(protected) == ([], [])


def test_stop_mid_drill_leaves_no_postgres_and_no_scratch(protected: Protected) -> None:
    stop = threading.Event()
    box: dict[str, DrillResult] = {}
    # a query that takes a minute: the drill is certainly inside PostgreSQL when stopped
    thread = threading.Thread(
        target=lambda: box.update(
            result=protected.drill(stop, query="SELECT count(*) FROM important, pg_sleep(60)")
        )
    )
    thread.start()
    try:

        def query_running() -> bool:
            postmasters = {
                proc[0]
                for proc in processes_using(str(protected.scratch))
                if "postgres -D" in proc[3]
            }
            return any(proc[1] in postmasters and "SELECT" in proc[3] for proc in process_table())

        wait_until(query_running, timeout=60, interval=0.05, what="the drill's query")
    finally:
        stopped_at = time.monotonic()
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the drill did not stop"
    assert time.monotonic() - stopped_at < 30
    result = box["result"]
    assert not result.ok and result.interrupted
    assert "interrupted by shutdown" in result.reason
    assert leftovers(protected) == ([], [])


def test_drill_of_a_damaged_backup_fails_with_the_reason(protected: Protected) -> None:
    relation = protected.pg.sql("SELECT pg_relation_filepath('important')")
    backup_id = protected.backup_id()
    damaged = protected.daemon.home / "pg" / "base" / backup_id / "data" / relation
    saved = damaged.read_bytes()
    assert len(saved) > 8192
    try:
        os.truncate(damaged, 100)
        verified = verify_backup(protected.barman, "pg", backup_id)
        assert not verified.ok
        assert f'"{relation}" has size 100 on disk' in verified.reason
        result = protected.drill()
        assert not result.ok and not result.interrupted
        assert result.reason.startswith("backup verification failed: ")
        assert relation in result.reason and result.backup_id == backup_id
    finally:
        damaged.write_bytes(saved)
    assert leftovers(protected) == ([], [])


def test_restore_to_a_target_time_brings_back_exactly_the_rows_before_it(
    protected: Protected,
) -> None:
    pg = protected.pg
    pg.sql("CREATE TABLE pitr (id int)")
    pg.sql("INSERT INTO pitr SELECT g FROM generate_series(1, 100) g")
    target = pg.sql("SELECT clock_timestamp()")
    time.sleep(COMMIT_SPACING_S)  # spacing the commits, not waiting for anything
    pg.sql("INSERT INTO pitr SELECT g FROM generate_series(1, 50) g")
    protected.switch_and_archive()

    with restore_dir() as base:
        destination = base / "data"
        code, printed = protected.restore(destination, target)
        assert code == 0, printed
        assert "Restore plan" in printed and protected.backup_id() in printed
        assert f"pg_ctl -D {destination}" in printed and "pg_wal_replay_resume()" in printed
        assert count_at_target(destination, "pitr") == 100
        # the same restore again is refused: the destination holds the copy now
        code, printed = protected.restore(destination, target)
        assert code == EXIT_BAD_INPUT
        assert "not empty" in printed
        assert f"barman-supervisor: error: {destination} is not empty" in printed


def test_a_target_after_the_last_archived_wal_is_archived_first(protected: Protected) -> None:
    """No WAL switch after the rows: Barman's archive ends before the target. The restore
    switches and archives first, so PostgreSQL reaches the target instead of refusing to
    start ("recovery ended before configured recovery target was reached")."""
    pg = protected.pg
    pg.sql("CREATE TABLE late (id int)")
    pg.sql("INSERT INTO late SELECT g FROM generate_series(1, 30) g")
    target = pg.sql("SELECT clock_timestamp()")

    with restore_dir() as base:
        code, printed = protected.restore(base / "data", target)
        assert code == 0, printed
        assert "Archiving the WAL up to now" in printed
        assert count_at_target(base / "data", "late") == 30


def test_a_target_in_the_future_is_refused_before_anything_is_written(
    protected: Protected, tmp_path: Path
) -> None:
    code, printed = protected.restore(tmp_path / "data", "2999-01-01 00:00:00+00")

    assert code == EXIT_BAD_INPUT and "future" in printed, printed
    assert "barman-supervisor: error: --target-time '2999-01-01 00:00:00+00': " in printed
    assert not (tmp_path / "data").exists()


def test_with_the_server_down_a_late_target_is_refused_naming_the_newest(
    protected: Protected, tmp_path: Path
) -> None:
    """Last in this file: it stops PostgreSQL (and starts it again)."""
    pg = protected.pg
    pg.sql("INSERT INTO important VALUES (-2)")
    protected.switch_and_archive()  # the archive holds that commit, not the next one
    pg.sql("INSERT INTO important VALUES (-1)")
    target = pg.sql("SELECT clock_timestamp()")
    pg.stop()
    try:
        code, printed = protected.restore(tmp_path / "data", target)
    finally:
        pg.start()

    assert code == EXIT_BAD_INPUT, printed
    assert f"barman-supervisor: error: --target-time {target!r}: " in printed
    assert "newest commit in the archive is at" in printed  # read with pg_waldump
    assert "PostgreSQL does not answer" in printed
    assert not (tmp_path / "data").exists()
