"""Timelines for a restore from the store: which backup leads to a timeline, and which WAL
segments, on which timeline, recovery reads (barman_supervisor.postgres.wal)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from barman_supervisor.offsite.plan import choose_store_backup, parse_store_backups
from barman_supervisor.postgres.wal import (
    PARTIAL_SUFFIX,
    FollowPlan,
    Stretch,
    follow_plan,
    format_lsn,
    is_archive_directory,
    is_segment_name,
    is_wal_name,
    next_segment_name,
    on_lineage,
    parse_history,
    parse_lsn,
    reaches,
    segment_name,
    segment_names_from,
    segment_number,
    segment_of_file,
    wal_plan,
    written_end,
)
from barman_supervisor.restore.store import plan_restore

SIZE = 16 * 1024 * 1024
# Timeline 1 ended in the middle of segment 5, timeline 2 exactly at the start of segment 9.
HISTORY_3 = (
    "1\t0/5000A28\tno recovery target specified\n\n2\t0/9000000\tbefore 2026-11-30 10:00:00+00\n"
)


def test_history_files_and_positions_are_parsed() -> None:
    assert parse_lsn("0/5000A28") == 0x5000A28
    assert parse_lsn("1/0") == 1 << 32
    assert parse_lsn("None") is None
    assert parse_history(HISTORY_3) == {1: 0x5000A28, 2: 0x9000000}
    assert parse_history("# comment only\ngarbage\n") == {}


def test_segment_names_and_numbers_agree_across_timelines() -> None:
    assert segment_name(2, 0x5000A28, SIZE) == "000000020000000000000005"
    assert segment_name(1, (1 << 32) + 3 * SIZE, SIZE) == "000000010000000100000003"
    assert segment_number("000000030000000100000003", SIZE) == 256 + 3
    assert segment_number("000000010000000000000005", SIZE) == segment_number(
        "000000020000000000000005", SIZE
    )


def test_a_backup_reaches_a_timeline_only_if_its_own_ended_after_the_backup() -> None:
    ancestors = parse_history(HISTORY_3)
    assert reaches(3, 0x1, 3, ancestors)
    assert reaches(1, 0x3000100, 3, ancestors)
    # Taken on timeline 1 after timeline 2 forked off: it leads somewhere else.
    assert not reaches(1, 0x6000000, 3, ancestors)
    assert reaches(2, 0x8FFFFFF, 3, ancestors)
    assert not reaches(4, 0x1, 3, ancestors)


def test_wal_is_read_up_to_each_switch_then_from_the_child() -> None:
    plan = wal_plan("000000010000000000000002", 3, parse_history(HISTORY_3), SIZE)
    assert plan == [
        # Segment 5 holds the switch: it is read from timeline 2, which copied it.
        Stretch(1, "000000010000000000000002", "000000010000000000000004"),
        Stretch(2, "000000020000000000000005", "000000020000000000000008"),
        Stretch(3, "000000030000000000000009", None),
    ]


def test_a_backup_inside_the_switch_segment_starts_on_the_child() -> None:
    plan = wal_plan("000000010000000000000005", 2, {1: 0x5000A28}, SIZE)
    assert plan == [Stretch(2, "000000020000000000000005", None)]


def test_without_a_switch_the_backups_timeline_is_read_to_the_end() -> None:
    assert wal_plan("000000010000000000000002", 1, {}, SIZE) == [
        Stretch(1, "000000010000000000000002", None)
    ]


def store(*rows: tuple[str, int, str, str, str]) -> list:  # type: ignore[type-arg]
    listing = {
        "backups_list": [
            {
                "backup_id": backup_id,
                "status": "DONE",
                "timeline": timeline,
                "begin_wal": begin,
                "end_wal": begin,
                "end_xlog": end,
                "end_time_iso": ended,
            }
            for backup_id, timeline, begin, end, ended in rows
        ]
    }
    return parse_store_backups(json.dumps(listing))


BACKUPS = store(
    ("before-fork", 1, "000000010000000000000002", "0/2000100", "2026-11-30T08:00:00+00:00"),
    ("after-fork", 1, "000000010000000000000006", "0/6000100", "2026-11-30T09:00:00+00:00"),
    ("on-two", 2, "000000020000000000000007", "0/7000100", "2026-11-30T09:30:00+00:00"),
)


def test_the_newest_backup_that_leads_to_the_target_timeline_is_chosen() -> None:
    ancestors = {1: 0x5000A28}
    newest = choose_store_backup(BACKUPS, None, 2, ancestors)
    assert newest is not None and newest.backup_id == "on-two"
    # Before timeline 2 had a backup: the one on timeline 1 after the fork is skipped.
    early = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    chosen = choose_store_backup(BACKUPS, early, 2, ancestors)
    assert chosen is not None and chosen.backup_id == "before-fork"
    # Aimed at timeline 1 itself, the newest backup on it is right.
    old = choose_store_backup(BACKUPS, None, 1, {})
    assert old is not None and old.backup_id == "after-fork"


def test_the_plan_aims_at_the_newest_timeline_with_a_history_file() -> None:
    histories = {2: "1\t0/5000A28\tno recovery target specified\n"}
    plan = plan_restore(BACKUPS[:2], histories, None, None, None)
    assert not isinstance(plan, str)
    assert (plan.backup.backup_id, plan.timeline) == ("before-fork", 2)
    assert [s.timeline for s in plan.stretches] == [1, 2]
    assert "timeline 1 from 000000010000000000000002 to 000000010000000000000004" in (
        plan.describe_wal()
    )
    pinned = plan_restore(BACKUPS[:2], histories, None, None, 1)
    assert not isinstance(pinned, str) and pinned.backup.backup_id == "after-fork"
    assert pinned.histories == {}


def test_a_plan_that_cannot_lead_to_the_timeline_says_why() -> None:
    histories = {2: "1\t0/5000A28\tno recovery target specified\n"}
    refused = plan_restore(BACKUPS, histories, None, "after-fork", None)
    assert isinstance(refused, str) and "cannot be recovered onto timeline 2" in refused
    assert "no history file for timeline 3" in str(plan_restore(BACKUPS, histories, None, None, 3))
    nothing = plan_restore(BACKUPS[1:2], histories, None, None, None)
    assert isinstance(nothing, str) and "leads to timeline 2" in nothing


def test_next_wal_name_rolls_over_the_log_number() -> None:
    size = 16 * 1024 * 1024
    assert next_segment_name("000000010000000000000009", size) == "00000001000000000000000A"
    assert next_segment_name("0000000100000000000000FF", size) == "000000010000000100000000"
    assert next_segment_name("00000002000000030000003F", 64 * 1024 * 1024) == (
        "000000020000000400000000"
    )


def test_consecutive_wal_names_for_a_parallel_fetch() -> None:
    size = 16 * 1024 * 1024
    assert segment_names_from("0000000100000000000000FE", size, 3) == [
        "0000000100000000000000FE",
        "0000000100000000000000FF",
        "000000010000000100000000",
    ]
    assert segment_names_from("0000000100000000000000FE", size, 1) == ["0000000100000000000000FE"]


@pytest.mark.parametrize(
    ("name", "wal", "segment", "in_directory"),
    [
        ("000000010000000000000002", True, True, "000000010000000000000002"),
        ("000000010000000000000002.partial", False, False, "000000010000000000000002"),
        ("000000010000000000000002.gz", False, False, "000000010000000000000002"),
        ("000000010000000000000002.00000028.backup", True, False, None),
        ("00000002.history", True, False, None),
        ("00000002.history.partial", False, False, None),
        ("000000010000000000000002.00000028.backup.gz", False, False, None),
        ("000000010000000000000002.00000028", False, False, "000000010000000000000002"),
        ("00000001000000000000000a", False, False, None),
        ("0000000100000000000000", False, False, None),
        ("xlog.db", False, False, None),
    ],
)
def test_one_reading_of_wal_file_names(
    name: str, wal: bool, segment: bool, in_directory: str | None
) -> None:
    assert is_wal_name(name) is wal
    assert is_segment_name(name) is segment
    assert segment_of_file(name) == in_directory


def test_archive_directories_are_a_timeline_and_a_log() -> None:
    assert is_archive_directory("0000000100000002")
    assert not is_archive_directory("000000010000000200000003")
    assert not is_archive_directory("000000010000000g")
    assert not is_archive_directory("barman-xlog.db1")


# --- following a promotion (jobs/failover acts on these) ---------------------------------------
# The standby was promoted at 0/5000A28: timeline 1 ends in segment 5, timeline 2 starts there.
FORK = 0x5000A28
ON_1 = "00000001000000000000000"  # + segment digit: a segment of timeline 1 (log 0)
ON_2 = "00000002000000000000000"


def test_lsns_are_written_as_postgresql_writes_them() -> None:
    assert format_lsn(FORK) == "0/5000A28"
    assert format_lsn(0x1_0000_0000 + 0x60) == "1/60"
    assert parse_lsn(format_lsn(0x2_5A00_0000)) == 0x2_5A00_0000


def test_a_segment_is_on_the_lineage_up_to_the_one_holding_the_fork() -> None:
    ancestors = {1: FORK}
    assert on_lineage(ON_1 + "5", 2, ancestors, SIZE)  # holds the fork: still history
    assert not on_lineage(ON_1 + "6", 2, ancestors, SIZE)  # only the old primary wrote it
    assert on_lineage(ON_2 + "6", 2, ancestors, SIZE)
    assert not on_lineage("000000030000000000000006", 2, ancestors, SIZE)  # not an ancestor


def test_barman_at_or_before_the_fork_resumes_on_the_new_timeline_and_moves_nothing() -> None:
    streaming = [ON_1 + "5" + PARTIAL_SUFFIX]  # the standby had everything (synchronous)
    plan = follow_plan(1, 2, {1: FORK}, streaming, SIZE)
    assert plan == FollowPlan(FORK, 2, (), ON_2 + "5" + PARTIAL_SUFFIX)
    # the new timeline's file is there already: nothing to add
    already = follow_plan(1, 2, {1: FORK}, [*streaming, ON_2 + "5" + PARTIAL_SUFFIX], SIZE)
    assert already == FollowPlan(FORK, 2, (), None)


def test_wal_past_the_fork_is_set_aside_and_streaming_resumes_at_the_fork() -> None:
    # asynchronous: the old primary went on into segments 6 and 7 after the standby's last byte
    streaming = [ON_1 + "6", ON_1 + "7" + PARTIAL_SUFFIX]
    plan = follow_plan(1, 2, {1: FORK}, streaming, SIZE)
    assert plan is not None
    assert plan.set_aside == (ON_1 + "6", ON_1 + "7" + PARTIAL_SUFFIX)
    assert plan.resume == ON_2 + "5" + PARTIAL_SUFFIX  # from the fork's segment: no gap
    assert plan.fork_lsn == FORK


def test_two_promotions_before_one_was_followed_resume_on_the_next_timeline() -> None:
    ancestors = parse_history(HISTORY_3)  # 1 ended at 0/5000A28, 2 at 0/9000000
    plan = follow_plan(1, 3, ancestors, [ON_1 + "5" + PARTIAL_SUFFIX], SIZE)
    # timeline 3's server streams timeline 2 up to its switch, then its own
    assert plan == FollowPlan(FORK, 2, (), ON_2 + "5" + PARTIAL_SUFFIX)
    # a switchover back: Barman streamed timeline 2, timeline 3 forked from it at 0/9000000
    back = follow_plan(2, 3, ancestors, [ON_2 + "8" + PARTIAL_SUFFIX], SIZE)
    assert back == FollowPlan(0x9000000, 3, (), "000000030000000000000009" + PARTIAL_SUFFIX)


def test_a_timeline_not_in_the_new_history_is_not_followed() -> None:
    # Barman streamed timeline 2, the server is on 3 forked from 1: a person decides
    assert follow_plan(2, 3, {1: FORK}, [ON_2 + "6" + PARTIAL_SUFFIX], SIZE) is None


def test_written_wal_ends_at_the_last_aligned_record_byte() -> None:
    start = 5 * SIZE
    assert written_end(start, b"") == start
    assert written_end(start, bytes(SIZE)) == start  # zero-filled, nothing written
    assert written_end(start, b"\x01" * 9 + bytes(100)) == start + 16  # rounded up to 8
    assert written_end(start, b"\x01" * 16 + bytes(100)) == start + 16
