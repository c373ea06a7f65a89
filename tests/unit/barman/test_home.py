"""Barman's files read without a Barman process: backup.info, the WAL directories, xlog.db."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from barman_supervisor.barman.home import BarmanHome, WalHoldings


def home_with(tmp_path: Path, *files: str) -> BarmanHome:
    """A Barman home holding these files (paths under it, empty unless they end in '=text')."""
    for spec in files:
        name, _, text = spec.partition("=")
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return BarmanHome(tmp_path)


def test_backup_info_is_found_in_meta_first_then_beside_the_backup(tmp_path: Path) -> None:
    home = home_with(
        tmp_path,
        "pg/meta/NEW-backup.info=status=DONE\n",
        "pg/base/NEW/backup.info=status=FAILED\n",
        "pg/base/OLD/backup.info=status=FAILED\n",
    )

    assert home.backup_info_path("pg", "NEW") == tmp_path / "pg/meta/NEW-backup.info"
    assert home.backup_info("pg", "NEW").status == "DONE"
    assert home.backup_info("pg", "OLD").status == "FAILED"
    assert home.backup_info_path("pg", "GONE") is None
    assert home.backup_info("pg", "GONE").fields == {}
    assert home.backup_info_time("pg", "GONE") is None


def test_every_backup_info_is_read_without_barman(tmp_path: Path) -> None:
    home = home_with(
        tmp_path,
        "pg/meta/NEW-backup.info=status=WAITING_FOR_WALS\n",
        "pg/base/NEW/backup.info=status=FAILED\n",
        "pg/base/OLD/backup.info=status=DONE\nend_wal=000000010000000000000003\n",
        "pg/base/EMPTY/data/PG_VERSION=15",
    )

    infos = home.backup_infos("pg")

    assert sorted(infos) == ["NEW", "OLD"]
    assert infos["NEW"].status == "WAITING_FOR_WALS" and infos["NEW"].end_wal is None
    assert infos["OLD"].end_wal == "000000010000000000000003"
    assert home.backup_infos("other") == {}


def test_an_interrupted_backup_is_marked_failed_in_place(tmp_path: Path) -> None:
    home = home_with(tmp_path, "pg/base/B2/backup.info=backup_id=B2\nstatus=STARTED\n")
    info = tmp_path / "pg/base/B2/backup.info"
    info.chmod(0o640)

    assert home.mark_failed("pg", "B2", "interrupted: the process running it was killed")

    assert info.read_text() == (
        "backup_id=B2\nstatus=FAILED\nerror=interrupted: the process running it was killed\n"
    )
    assert stat.S_IMODE(info.stat().st_mode) == 0o640
    assert sorted(p.name for p in info.parent.iterdir()) == ["backup.info"]
    assert not home.mark_failed("pg", "GONE", "x")


def test_the_head_of_the_archive_is_read_from_the_directories(tmp_path: Path) -> None:
    home = home_with(
        tmp_path,
        "pg/wals/0000000100000000/000000010000000000000003",
        "pg/wals/0000000100000000/000000010000000000000004",
        "pg/wals/0000000100000000/000000010000000000000004.00000028.backup",
        "pg/wals/0000000100000001/000000010000000100000002",
        "pg/wals/00000002.history",
        "pg/wals/pg-xlog.db=000000010000000100000002\t16777216\t0\tNone\n",
        "pg/streaming/000000010000000100000003",
        "pg/streaming/000000010000000100000004.partial",
        "pg/incoming/000000010000000100000001",
    )

    assert home.wal_holdings("pg") == WalHoldings(
        archived_newest="000000010000000100000002",
        streaming_oldest="000000010000000100000003",
        streaming_newest="000000010000000100000004",
    )
    streamed, incoming = home.waiting_wal("pg")
    assert sorted(streamed) == [
        "000000010000000100000003",
        "000000010000000100000004.partial",
    ]
    assert incoming == ["000000010000000100000001"]
    assert home.has_segment("pg", "000000010000000000000004")
    assert not home.has_segment("pg", "000000010000000000000005")
    assert home.archived_segment("pg", "000000010000000100000002").is_file()
    assert not home.archive_empty("pg")
    assert home.xlog_db("pg").startswith("000000010000000100000002\t")


def test_an_empty_home_holds_nothing(tmp_path: Path) -> None:
    home = BarmanHome(tmp_path)

    assert home.wal_holdings("pg") == WalHoldings(None, None, None)
    assert home.waiting_wal("pg") == ([], [])
    assert home.archive_empty("pg")
    assert home.xlog_db("pg") == ""
    assert home.wal_times("pg") == (None, None)


def test_an_older_barmans_xlog_db_is_read_too(tmp_path: Path) -> None:
    home = home_with(tmp_path, "pg/wals/xlog.db=000000010000000000000002\t1\t0\tNone\n")

    assert home.xlog_db("pg").startswith("000000010000000000000002")


def test_wal_times_are_the_newest_file_times(tmp_path: Path) -> None:
    home = home_with(
        tmp_path,
        "pg/streaming/000000010000000000000003",
        "pg/streaming/000000010000000000000004.partial",
        "pg/wals/pg-xlog.db=x",
    )
    os.utime(tmp_path / "pg/streaming/000000010000000000000003", (100, 100))
    os.utime(tmp_path / "pg/streaming/000000010000000000000004.partial", (300, 300))
    os.utime(tmp_path / "pg/wals/pg-xlog.db", (200, 200))

    assert home.wal_times("pg") == (300, 200)


def test_the_newest_archived_segments_time_is_the_recovery_point(tmp_path: Path) -> None:
    home = home_with(
        tmp_path,
        "pg/wals/0000000100000000/000000010000000000000009",
        "pg/wals/0000000100000001/000000010000000100000001",
        "pg/wals/0000000100000001/000000010000000100000002",
        "pg/wals/00000002.history",
    )
    os.utime(tmp_path / "pg/wals/0000000100000001/000000010000000100000001", (300, 300))
    os.utime(tmp_path / "pg/wals/0000000100000001/000000010000000100000002", (200, 200))

    assert home.newest_wal_at("pg") == 200
    assert BarmanHome(tmp_path / "none").newest_wal_at("pg") is None


def test_the_backups_fingerprint_changes_with_any_backup_info(tmp_path: Path) -> None:
    home = home_with(tmp_path, "pg/base/B1/backup.info=status=STARTED\n")
    before = home.backups_fingerprint("pg")
    assert home.backups_fingerprint("pg") == before

    info = tmp_path / "pg/base/B1/backup.info"
    os.utime(info, ns=(info.stat().st_mtime_ns + 10**9,) * 2)

    assert home.backups_fingerprint("pg") != before
    assert BarmanHome(tmp_path / "none").backups_fingerprint("pg") == (0, 0)
