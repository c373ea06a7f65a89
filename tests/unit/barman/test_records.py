"""Barman's records: statuses as names, backups ordered by Barman's times, one backup.info
reader."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from barman_supervisor.barman.records import (
    Backup,
    BackupStatus,
    failed_fields,
    newest_backup,
    newest_done,
    parse_backup_info,
)


def test_backup_info_begin_time_is_read_with_its_offset() -> None:
    info = "backup_id=20261124T040000\nbegin_time=2026-11-24 04:00:00.5+14:00\nstatus=FAILED\n"

    assert (
        parse_backup_info(info).begin_time
        == datetime(2026, 11, 23, 14, 0, 0, 500000, UTC).timestamp()
    )
    assert parse_backup_info("begin_time=None\n").begin_time is None
    assert parse_backup_info("begin_time=2026-11-24 04:00:00\n").begin_time is None  # no offset
    assert parse_backup_info("status=DONE\n").begin_time is None


def test_newest_backup_orders_by_timestamps_not_ids() -> None:
    east = Backup("20261124T170000", "DONE", 1100.0, 1, begin_time=1000.0)
    later = Backup("20261124T040000", "DONE", 5100.0, 1, begin_time=5000.0)
    unknown = Backup("20991231T000000", "FAILED", None, None)

    assert newest_backup([east, later, unknown]) == later
    assert sorted([later, unknown, east], key=Backup.order_key) == [unknown, east, later]
    assert newest_backup([]) is None


def test_the_newest_done_backup_skips_a_newer_failed_one() -> None:
    done = Backup("A", BackupStatus.DONE, 100.0, 1)
    failed = Backup("B", BackupStatus.FAILED, 200.0, 1)

    assert newest_done([done, failed]) == done
    assert newest_done([failed]) is None


def test_statuses_are_barmans_words() -> None:
    assert [status.value for status in BackupStatus] == [
        "EMPTY",
        "STARTED",
        "WAITING_FOR_WALS",
        "DONE",
        "SYNCING",
        "FAILED",
    ]
    assert Backup("A", "DONE", None, None).status == BackupStatus.DONE
    assert f"{BackupStatus.WAITING_FOR_WALS}" == "WAITING_FOR_WALS"


@pytest.mark.parametrize("unset", ["None", "", "null", "  "])
def test_an_unset_field_reads_as_none(unset: str) -> None:
    info = parse_backup_info(f"parent_backup_id={unset}\ncompression={unset}\nversion={unset}\n")

    assert info.parent_id is None and info.compression is None and info.version is None
    assert info.get("missing") is None


def test_the_fields_the_daemon_reads() -> None:
    info = parse_backup_info(
        "backup_id=I1\nstatus=DONE\nbegin_wal=000000010000000000000004\nversion=170002\n"
        "compression=lz4\nparent_backup_id=F1\nerror=a=b\nno equals sign\n"
    )

    assert info.status == "DONE" and info.begin_wal == "000000010000000000000004"
    assert info.version == 170002 and info.compression == "lz4" and info.parent_id == "F1"
    assert info.get("error") == "a=b"
    assert parse_backup_info("version=15.2\n").version is None


def test_an_interrupted_backup_is_recorded_failed_and_nothing_else_changes() -> None:
    before = "backup_id=B2\nstatus=STARTED\nbegin_wal=000000010000000000000004\n"

    after = failed_fields(before, "interrupted:\nkilled")

    assert after == (
        "backup_id=B2\nstatus=FAILED\nbegin_wal=000000010000000000000004\n"
        "error=interrupted: killed\n"
    )
    assert parse_backup_info(after).status == BackupStatus.FAILED


def test_backup_info_copy_time_is_read_from_copy_stats() -> None:
    """What ``barman_last_backup_copy_time`` serves, as Barman writes it (a Python literal)."""
    info = "copy_stats={'copy_time': 3.25, 'total_time': 3.5, 'number_of_workers': 1}\n"
    assert parse_backup_info(info).copy_time == 3.25
    assert parse_backup_info("copy_stats={'total_time': 1}\n").copy_time is None
    assert parse_backup_info("copy_stats=None\n").copy_time is None
    assert parse_backup_info("copy_stats={not python\n").copy_time is None
    assert parse_backup_info("status=DONE\n").copy_time is None
