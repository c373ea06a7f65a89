"""Self-healing decisions over plain data: orphans, identity changes, stale and failed backups."""

from __future__ import annotations

import pytest

from barman_supervisor.barman.commands import Check
from barman_supervisor.barman.home import WalHoldings
from barman_supervisor.barman.records import Backup, BackupInfo
from barman_supervisor.jobs.healing import (
    client_tool_problems,
    failed_to_delete,
    identity_change,
    orphaned_receivers,
    out_of_space_failures,
    redundancy_check_stale,
    slot_start,
    stale_started,
    unfinished_copies,
    wal_gap,
)
from barman_supervisor.postgres.connection import Identity, SlotState
from barman_supervisor.process.proctable import ProcInfo
from barman_supervisor.retry import restart_delay

STREAMING = "/var/lib/barman/pg/streaming"
RECEIVE_WAL = ProcInfo(
    10, 1, "S", ("python3", "barman", "-c", "/etc/barman.conf", "receive-wal", "pg")
)


def pg_receivewal(pid: int, ppid: int, directory: str = STREAMING) -> ProcInfo:
    return ProcInfo(
        pid, ppid, "S", ("/usr/lib/postgresql/17/bin/pg_receivewal", f"--directory={directory}")
    )


def test_a_pg_receivewal_under_its_receive_wal_is_not_an_orphan() -> None:
    assert orphaned_receivers([RECEIVE_WAL, pg_receivewal(11, 10)], STREAMING) == []


def test_a_pg_receivewal_whose_parent_died_is_an_orphan() -> None:
    orphan = pg_receivewal(11, 1)
    assert orphaned_receivers([orphan], STREAMING) == [orphan]


def test_another_servers_pg_receivewal_is_left_alone() -> None:
    other = pg_receivewal(12, 1, "/var/lib/barman/other/streaming")
    assert orphaned_receivers([other], STREAMING) == []


KNOWN = Identity(system_id="7000", timeline=1)


@pytest.mark.parametrize(
    ("current", "slot_exists", "kind", "resettable"),
    [
        (Identity("7000", 1), True, None, None),
        (Identity("8000", 1), True, "system_id", False),
        (Identity("7000", 2), True, "timeline", True),
        (Identity("7000", 1), False, "slot_missing", True),
    ],
)
def test_identity_change(
    current: Identity, slot_exists: bool, kind: str | None, resettable: bool | None
) -> None:
    change = identity_change(KNOWN, current, slot_exists)

    assert (change.kind if change else None) == kind
    assert (change.resettable if change else None) == resettable


def test_no_identity_known_yet_is_no_change() -> None:
    assert identity_change(None, Identity("1", 1), False) is None


def test_failed_backups_are_deleted_only_when_superseded_and_never_done_ones() -> None:
    backups = [
        Backup("20261124T030000", "FAILED", None, None, begin_time=400.0),
        Backup("20261123T030000", "DONE", 301.0, 1, begin_time=300.0),
        Backup("20261122T030000", "FAILED", None, None, begin_time=200.0),
        Backup("20261121T030000", "DONE", 101.0, 1, begin_time=100.0),
        Backup("20261120T030000", "FAILED", None, None),  # no backup.info: age unknown
    ]

    assert failed_to_delete(backups, "delete") == ["20261122T030000"]
    assert failed_to_delete(backups, "keep") == []
    assert failed_to_delete([Backup("1", "FAILED", None, None, begin_time=1.0)], "delete") == []


def test_a_backup_that_failed_at_its_start_is_aged_by_when_barman_recorded_it() -> None:
    """No begin or end time ("failure starting backup"): the backup.info's file time decides;
    before it was never deleted and kept `barman check` red for good."""
    at_start = Backup("20261124T030000", "FAILED", None, None, recorded_at=200.0)
    later = Backup("20261124T040000", "FAILED", None, None, recorded_at=900.0)
    done = Backup("20261124T035000", "DONE", 501.0, 1, begin_time=500.0)

    assert failed_to_delete([at_start, later, done], "delete") == ["20261124T030000"]
    assert at_start.known_time == 200.0 and done.known_time == 500.0


def test_superseded_is_decided_by_timestamps_not_ids() -> None:
    """TZ moved from UTC to UTC+14: the newer backup got the smaller ID."""
    backups = [
        Backup("20261124T170000", "FAILED", None, None, begin_time=1000.0),
        Backup("20261124T040000", "DONE", 5001.0, 1, begin_time=5000.0),
    ]

    assert failed_to_delete(backups, "delete") == ["20261124T170000"]


def test_stale_started() -> None:
    backups = [Backup("a", "STARTED", None, None), Backup("b", "DONE", 1.0, 1)]
    assert stale_started(backups) == ["a"]


def test_old_client_tools_name_the_package_to_install() -> None:
    checks = [Check("pg_basebackup_compatible", False, ""), Check("postgresql", True, "")]

    (problem,) = client_tool_problems(checks, 170002)
    assert "postgresql-client-17" in problem and "pg_basebackup_compatible" in problem
    assert client_tool_problems([Check("pg_basebackup_compatible", True, "")], 170002) == []


def test_a_check_that_did_not_reach_postgresql_says_nothing_of_the_client_tools() -> None:
    """Seen in the failover bench: PostgreSQL down during the start-up's check, Barman failed
    the compatibility checks with "PostgreSQL version: None", and the daemon stopped."""
    unknown = "PostgreSQL version: None, {} version: 15.18"
    checks = [
        Check("postgresql", False, ""),
        Check("pg_basebackup_compatible", False, unknown.format("pg_basebackup")),
        Check("pg_receivexlog_compatible", False, unknown.format("pg_receivexlog")),
    ]
    assert client_tool_problems(checks, 150018) == []


def test_a_check_that_reached_only_the_normal_connection_says_nothing_of_the_client_tools() -> None:
    """Seen in the failover bench: the primary shut down between the two connections of the
    start-up's check; Barman reads the server's version over the streaming one."""
    checks = [
        Check("postgresql", True, ""),
        Check("postgresql_streaming", False, ""),
        Check("pg_basebackup_compatible", False, ""),
        Check("pg_receivexlog_compatible", False, ""),
    ]
    assert client_tool_problems(checks, 150018) == []
    reached = [Check("postgresql_streaming", True, ""), *checks[:1], *checks[2:]]
    assert len(client_tool_problems(reached, 150018)) == 1


def test_restart_delay_grows_and_is_capped() -> None:
    delays = [restart_delay(attempt, initial=1, ceiling=60) for attempt in (1, 2, 3, 10)]
    assert 1 <= delays[0] < 2 and 2 <= delays[1] < 3 and 4 <= delays[2] < 5
    assert 60 <= delays[3] < 61


MIB16 = 16 * 1048576


def streaming(newest: str | None) -> WalHoldings:
    """Barman streaming into ``newest`` (a .partial), with the segment before it archived."""
    return WalHoldings(archived_newest=None, streaming_oldest=newest, streaming_newest=newest)


@pytest.mark.parametrize(
    ("holdings", "start", "gap"),
    [
        (streaming(None), "0/6000000", None),
        (streaming("000000010000000000000003"), None, None),
        (streaming("000000010000000000000003"), "0/3000148", None),
        (streaming("000000010000000000000003"), "0/4000000", None),  # the next segment: normal
        (
            streaming("000000010000000000000003"),
            "0/5000000",
            ("000000010000000000000004",) * 2,
        ),
        # across a 4 GiB boundary (log 0 segment FF -> log 1 segment 00)
        (
            streaming("0000000100000000000000FE"),
            "1/1000000",
            ("0000000100000000000000FF", "000000010000000100000000"),
        ),
        # the timeline of Barman's WAL names the missing segments
        (
            streaming("000000020000000000000003"),
            "0/7000000",
            ("000000020000000000000004", "000000020000000000000006"),
        ),
        # nothing streaming: the newest archived segment is what Barman holds
        (
            WalHoldings("000000010000000000000003", None, None),
            "0/6000000",
            ("000000010000000000000004", "000000010000000000000005"),
        ),
        # streaming resumed further on than the archive: the hole in between
        (
            WalHoldings(
                "000000010000000000000003", "000000010000000000000007", "000000010000000000000007"
            ),
            "0/7000000",
            ("000000010000000000000004", "000000010000000000000006"),
        ),
        (
            WalHoldings(
                "000000010000000000000003", "000000010000000000000004", "000000010000000000000004"
            ),
            "0/4000000",
            None,
        ),
    ],
)
def test_wal_gap(holdings: WalHoldings, start: str | None, gap: tuple[str, str] | None) -> None:
    found = wal_gap(holdings, start, MIB16)
    assert (None if found is None else (found.first_missing, found.last_missing)) == gap


def test_wal_gap_with_another_segment_size() -> None:
    found = wal_gap(streaming("000000010000000000000003"), "0/14000000", 64 * 1048576)
    assert found is not None and found.first_missing == "000000010000000000000004"


def test_a_slot_no_receiver_used_yet_starts_at_the_current_position() -> None:
    fresh = SlotState(exists=True, active=False, restart_lsn=None, current_lsn="0/7000000")
    used = SlotState(exists=True, active=True, restart_lsn="0/3000000", current_lsn="0/7000000")
    assert (slot_start(fresh), slot_start(used)) == ("0/7000000", "0/3000000")


def test_a_redundancy_check_is_stale_once_a_backup_is_done() -> None:
    failed = [Check("minimum_redundancy_requirements", False, "have 0, expected at least 1")]
    done = [Backup("B1", "DONE", 1.0, 1)]
    assert redundancy_check_stale(failed, done)
    assert not redundancy_check_stale(failed, [Backup("B1", "FAILED", 1.0, 1)])
    assert not redundancy_check_stale([Check("minimum_redundancy_requirements", True, "")], done)
    assert not redundancy_check_stale([Check("wal_archive", False, "")], done)


def test_a_backup_that_ran_out_of_space_is_deleted_at_once() -> None:
    """Only the FAILED backups the attempt left (new in the list), only for lack of space, only
    under the delete policy; an older FAILED one waits for a newer DONE as before."""
    old_failed = Backup("F0", "FAILED", None, None, begin_time=100.0)
    before = [old_failed, Backup("D1", "DONE", 210.0, 5, begin_time=200.0)]
    after = [*before, Backup("F2", "FAILED", None, None, begin_time=300.0)]
    reason = "failure during backup (No space left on device)"

    assert out_of_space_failures(before, after, reason, "delete") == ["F2"]
    assert out_of_space_failures(before, after, reason, "keep") == []
    assert out_of_space_failures(before, after, "timed out", "delete") == []
    done = [*before, Backup("D3", "DONE", 310.0, 5, begin_time=300.0)]
    assert out_of_space_failures(before, done, reason, "delete") == []


def test_a_lost_slot_keeps_nothing_so_what_barman_lacks_up_to_now_is_a_gap() -> None:
    """max_slot_wal_keep_size bit: the primary removed WAL the slot held (wal_status lost); the
    archive ends at segment 3, the primary writes in segment 9: 4 to 8 are a gap."""
    lost = SlotState(
        exists=True,
        active=False,
        wal_status="lost",
        restart_lsn="0/3000000",
        current_lsn="0/9000100",
    )
    assert slot_start(lost) == "0/9000100"
    held = WalHoldings("000000010000000000000003", None, None)
    gap = wal_gap(held, slot_start(lost), 16 * 1024 * 1024)
    assert gap is not None
    assert (gap.first_missing, gap.last_missing) == (
        "000000010000000000000004",
        "000000010000000000000008",
    )


def test_a_copied_backup_with_no_end_is_unfinished_others_are_not() -> None:
    """Barman 3.20 leaves WAITING_FOR_WALS without end_wal when the primary goes away as its
    backup stops; every barman list-backups then fails on it."""
    end = {"end_wal": "000000010000000000000003"}
    infos = {
        "CUT": BackupInfo({"status": "WAITING_FOR_WALS"}),
        "DONE_NO_END": BackupInfo({"status": "DONE", "end_wal": "None"}),
        "WAITING": BackupInfo({"status": "WAITING_FOR_WALS", **end}),
        "DONE": BackupInfo({"status": "DONE", **end}),
        "RUNNING": BackupInfo({"status": "STARTED"}),
        "FAILED": BackupInfo({"status": "FAILED"}),
    }

    assert unfinished_copies(infos) == ["CUT", "DONE_NO_END"]
