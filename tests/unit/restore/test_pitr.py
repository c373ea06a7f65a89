"""Whether the archive reaches a recovery target time: xlog.db, pg_waldump output, the verdict."""

from __future__ import annotations

from datetime import UTC, datetime

from barman_supervisor.restore.pitr import last_commit_time, newest_segments, target_problem

XLOG_DB = (
    "000000010000000000000002\t16777216\t1795478600.0\tNone\n"
    "000000010000000000000004\t16777216\t1795478700.0\tNone\n"
    "00000002.history\t42\t1795478701.0\tNone\n"
    "000000010000000000000003\t16777216\t1795478650.0\tNone\n"
)
WALDUMP = """\
rmgr: Heap        len (rec/tot):     59/    59, tx:        735, lsn: 0/03000028, desc: INSERT off 2
rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/03000060, prev 0/03000028, \
desc: COMMIT 2026-11-23 14:05:00.250000 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        736, lsn: 0/03000088, prev 0/03000060, \
desc: ABORT 2026-11-23 14:06:00 UTC
rmgr: XLOG        len (rec/tot):     24/    24, tx:          0, lsn: 0/030000B0, desc: SWITCH
"""


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_newest_segments_skip_history_files() -> None:
    assert newest_segments(XLOG_DB, 2) == ["000000010000000000000004", "000000010000000000000003"]
    assert newest_segments("") == []


def test_last_commit_time_reads_commits_and_aborts() -> None:
    assert last_commit_time(WALDUMP) == ts("2026-11-23 14:06:00")
    assert last_commit_time("rmgr: XLOG desc: SWITCH") is None


def test_a_target_before_the_last_commit_is_reachable() -> None:
    now = ts("2026-11-23 15:00:00")
    newest = ts("2026-11-23 14:06:00")

    assert target_problem(newest - 1, newest, now) is None
    after = target_problem(newest, newest, now)
    assert after is not None and "2026-11-23 14:06:00" in after and "2026-11-23 14:05:59" in after
    no_commit = target_problem(newest - 1, None, now)
    assert no_commit is not None and "no commit after it" in no_commit
    future = target_problem(now + 60, newest, now)
    assert future is not None and "future" in future
