"""``barman-supervisor restore``: what it refuses, which backup it picks, what it tells."""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.verdicts import BackupVerdict, Verdict, VerdictFiles
from barman_supervisor.cli import EXIT_BAD_INPUT
from barman_supervisor.restore import common
from barman_supervisor.restore import local as restore
from tests.unit.conftest import Ran


def test_choose_backup_before_the_target() -> None:
    rows = [
        {"backup_id": "C", "status": "DONE", "end_time_timestamp": "300"},
        {"backup_id": "B", "status": "FAILED", "end_time_timestamp": "200"},
        {"backup_id": "A", "status": "DONE", "end_time_timestamp": "100"},
    ]
    assert restore.choose_backup(rows, None) == "C"
    assert restore.choose_backup(rows, datetime.fromtimestamp(250, UTC)) == "A"
    assert restore.choose_backup(rows, datetime.fromtimestamp(50, UTC)) is None


def test_plan_passes_target_and_action_only_with_a_target() -> None:
    dest = Path("/restore/here")
    plain = restore.Plan("pg", "B1", dest, None, "pause")
    assert plain.recover_args() == ["recover", "--jobs", "1", "pg", "B1", "/restore/here"]
    timed = restore.Plan("pg", "B1", dest, ("time", "2026-11-23 14:05:00+00"), "promote", jobs=2)
    assert timed.recover_args() == [
        "recover",
        "--jobs",
        "2",
        "--target-time",
        "2026-11-23 14:05:00+00",
        "--target-action",
        "promote",
        "pg",
        "B1",
        "/restore/here",
    ]


def test_refusals_change_nothing(run_cli: Callable[..., Ran], tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("data")
    refused = run_cli("restore", "pg", str(full))
    assert refused.code == EXIT_BAD_INPUT and refused.out == ""
    assert refused.error_lines == [
        f"barman-supervisor: error: {full} is not empty; restore into an empty or new "
        "directory (nothing was changed)"
    ]
    assert (full / "keep").read_text() == "data"
    refused = run_cli("restore", "other", str(tmp_path / "x"))
    assert refused.code == 2 and len(refused.error_lines) == 1
    assert refused.error_lines[0].startswith("barman-supervisor: error: no server 'other'")
    assert not (tmp_path / "x").exists()
    refused = run_cli("restore", "pg", str(tmp_path / "y"), "--target-time", "soon")
    assert refused.code == 2 and "is not a time" in refused.err
    assert len(refused.error_lines) == 1 and not (tmp_path / "y").exists()


def test_bad_arguments_are_one_line_too(run_cli: Callable[..., Ran], tmp_path: Path) -> None:
    refused = run_cli("restore", "pg", str(tmp_path), "--target-action", "explode")
    assert refused.code == EXIT_BAD_INPUT and refused.out == ""
    assert refused.error_lines == [
        "barman-supervisor: error: argument --target-action: invalid choice: 'explode' "
        "(choose from 'pause', 'promote', 'shutdown'); see barman-supervisor restore --help"
    ]


def test_choose_backup_by_end_time_not_by_id_or_position() -> None:
    """IDs follow the TZ of the Barman process; list-backups sorts by ID."""
    rows = [
        {"backup_id": "20261124T170000", "status": "DONE", "end_time_timestamp": "1000"},
        {"backup_id": "20261124T040000", "status": "DONE", "end_time_timestamp": "5000"},
    ]
    assert restore.choose_backup(rows, None) == "20261124T040000"
    assert restore.choose_backup(rows, datetime.fromtimestamp(4000, UTC)) == "20261124T170000"


def test_choose_backup_passes_over_one_that_failed_verification() -> None:
    rows = [
        {"backup_id": "C", "status": "DONE", "end_time_timestamp": "300"},
        {"backup_id": "A", "status": "DONE", "end_time_timestamp": "100"},
    ]
    assert restore.choose_backup(rows, None, frozenset({"C"})) == "A"
    assert restore.choose_backup(rows, None, frozenset({"C", "A"})) is None


def failed_verdict(environ: dict[str, str], backup_id: str) -> None:
    """A backup that failed verification, as the daemon left it in BARMAN_HOME."""
    home = BarmanHome(Path(environ["BARMAN_HOME"]))
    home.backup_dir("pg", backup_id).mkdir(parents=True)
    VerdictFiles(home).write("pg", BackupVerdict(backup_id, Verdict.FAILED, "checksum mismatch"))


def test_a_named_backup_that_failed_verification_is_refused_in_one_line(
    run_cli: Callable[..., Ran], environ: dict[str, str], tmp_path: Path
) -> None:
    failed_verdict(environ, "20261201T030000")
    destination = tmp_path / "restored"
    refused = run_cli("restore", "pg", str(destination), "--backup-id", "20261201T030000")
    assert refused.code == EXIT_BAD_INPUT and refused.out == ""
    assert refused.error_lines == [
        "barman-supervisor: error: backup 20261201T030000 failed verification (checksum "
        "mismatch); choose another backup, or add --allow-unverified to restore it anyway "
        "(nothing was changed)"
    ]
    assert not destination.exists()


def test_a_target_less_restore_follows_a_failover_since_the_backup() -> None:
    dest = Path("/restore/here")
    followed = restore.Plan("pg", "B1", dest, None, "pause", timeline=2)
    assert followed.recover_args() == [
        "recover",
        "--jobs",
        "1",
        "--target-tli",
        "2",
        "pg",
        "B1",
        "/restore/here",
    ]
    # a target names its own end: the timeline is not added to it
    timed = restore.Plan("pg", "B1", dest, ("lsn", "0/3000000"), "promote", timeline=2)
    assert "--target-tli" not in timed.recover_args()
    # the backup ended at 0/3000100 on timeline 1; timeline 1 ended at 0/5000060 (a promotion)
    backup_end = 0x3000100
    promoted = {2: {1: 0x5000060}}
    assert restore.newer_timeline(1, backup_end, promoted) == 2
    assert restore.newer_timeline(1, backup_end, {**promoted, 3: {1: 0x5000060, 2: 0x9000000}}) == 3
    assert restore.newer_timeline(2, backup_end, promoted) is None  # on the newest already
    assert restore.newer_timeline(1, backup_end, {}) is None  # no promotion since
    # timeline 2 forked before the backup ended: the backup does not lead there
    assert restore.newer_timeline(1, backup_end, {2: {1: 0x2000000}}) is None
    # timeline 3 is another branch (a restore of timeline 1 put in production): not followed
    branched = {2: {1: 0x5000060}, 3: {1: 0x4000000}}
    assert restore.newer_timeline(1, 0x4800000, branched) == 2


def test_history_files_are_read_whatever_wal_compression_barman_used() -> None:
    text = "1\t0/5000060\tno recovery target specified\n"
    for packed in (
        text.encode(),
        gzip.compress(text.encode()),
        bz2.compress(text.encode()),
        lzma.compress(text.encode()),
    ):
        assert restore.archived_text(packed) == text


def test_recover_jobs_is_one_per_core_and_at_least_one() -> None:
    assert common.recover_jobs(2) == 2
    assert common.recover_jobs(0) == 1
