"""Each backup's verdict on disk, and what follows from it: which backup a restore or a drill
takes, which named one is refused, which backup the daemon holds against retention and which of
its keeps it releases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.records import Backup
from barman_supervisor.barman.verdicts import (
    BY_DRILL,
    BY_VERIFICATION,
    VERDICT_FILE,
    BackupVerdict,
    HoldPlan,
    Verdict,
    VerdictFiles,
    describe,
    failed_ids,
    hold_plan,
    hold_target,
    merged,
    named_refusal,
    usable,
    verdict_of,
    verification_view,
)

VERIFIED, FAILED, PENDING = Verdict.VERIFIED, Verdict.FAILED, Verdict.PENDING


def backup(backup_id: str, end: float, status: str = "DONE", parent: str | None = None) -> Backup:
    return Backup(backup_id, status, end, 1, begin_time=end - 1, parent_id=parent)


def judged(*entries: tuple[str, Verdict] | tuple[str, Verdict, bool]) -> dict[str, BackupVerdict]:
    verdicts = {}
    for entry in entries:
        backup_id, verdict = entry[0], entry[1]
        held = bool(entry[2]) if len(entry) == 3 else False
        verdicts[backup_id] = BackupVerdict(backup_id, verdict, "why", held=held)
    return verdicts


A, B, C = backup("A", 100.0), backup("B", 200.0), backup("C", 300.0)


# Which backup restore and the drill take -------------------------------------------------------
def test_usable_is_the_newest_done_backup_not_failed() -> None:
    assert usable([A, B, C], {}) == C  # pending counts: not proven bad
    assert usable([A, B, C], judged(("C", FAILED))) == B
    assert usable([A, B, C], judged(("C", FAILED), ("B", FAILED))) == A
    assert usable([A, B, C], judged(("A", FAILED), ("B", FAILED), ("C", FAILED))) is None


def test_usable_never_takes_a_backup_that_is_not_done() -> None:
    assert usable([A, backup("D", 400.0, "FAILED"), backup("E", 500.0, "STARTED")], {}) == A


def test_usable_goes_by_time_not_by_id() -> None:
    """IDs follow the TZ of the Barman that took them: a later backup may sort first."""
    later_small_id = backup("0001", 900.0)
    assert usable([C, later_small_id], {}) == later_small_id


def test_a_named_failed_backup_is_refused_with_the_reason_and_the_way_out() -> None:
    verdicts = {
        "C": BackupVerdict("C", FAILED, 'checksum mismatch for file "base/5/16384"'),
        "B": BackupVerdict("B", FAILED, "query failed", BY_DRILL),
    }
    assert named_refusal("C", verdicts) == (
        'backup C failed verification (checksum mismatch for file "base/5/16384"); choose '
        "another backup, or add --allow-unverified to restore it anyway"
    )
    assert "failed a restore drill (query failed)" in (named_refusal("B", verdicts) or "")


@pytest.mark.parametrize("verdict", [VERIFIED, PENDING])
def test_a_named_backup_not_failed_is_not_refused(verdict: Verdict) -> None:
    assert named_refusal("C", judged(("C", verdict))) is None
    assert named_refusal("unknown", {}) is None


def test_verdict_of_an_unjudged_backup_is_pending() -> None:
    assert verdict_of({}, "A") == PENDING
    assert failed_ids(judged(("A", FAILED), ("B", VERIFIED))) == {"A"}


# What retention must keep ----------------------------------------------------------------------
def test_the_newest_verified_backup_is_held_not_a_newer_pending_or_failed_one() -> None:
    assert hold_target([A, B, C], judged(("A", VERIFIED), ("B", FAILED))) == "A"
    assert hold_plan([A, B, C], judged(("A", VERIFIED), ("B", FAILED))) == HoldPlan("A", ())


def test_nothing_is_held_without_a_verified_backup() -> None:
    assert hold_plan([A, B], judged(("A", PENDING), ("B", FAILED))) == HoldPlan(None, ())


def test_a_backup_already_held_by_the_daemon_is_not_held_again() -> None:
    assert hold_plan([A, B], judged(("A", VERIFIED, True))) == HoldPlan(None, ())


def test_the_old_hold_is_released_once_a_newer_backup_verified() -> None:
    verdicts = judged(("A", VERIFIED, True), ("B", FAILED), ("C", VERIFIED))
    assert hold_plan([A, B, C], verdicts) == HoldPlan("C", ("A",))


def test_a_newer_pending_backup_does_not_release_the_hold() -> None:
    assert hold_plan([A, B], judged(("A", VERIFIED, True))) == HoldPlan(None, ())


def test_the_daemon_releases_its_keep_on_a_backup_that_failed_since() -> None:
    """A drill failed on the held backup: its keep protects nothing."""
    assert hold_plan([A, B], judged(("B", FAILED, True))) == HoldPlan(None, ("B",))


def test_a_keep_the_daemon_did_not_set_is_never_released() -> None:
    """Only verdicts marked ``held`` are the daemon's: A may carry someone's keep, not ours."""
    plan = hold_plan([A, B], judged(("A", VERIFIED), ("B", VERIFIED)))
    assert plan == HoldPlan("B", ())


def test_an_incremental_verified_backup_holds_the_full_at_its_chain_root() -> None:
    full, inc1, inc2 = (
        backup("F", 100.0),
        backup("I1", 200.0, parent="F"),
        backup("I2", 300.0, parent="I1"),
    )
    assert hold_target([full, inc1, inc2], judged(("I2", VERIFIED))) == "F"
    # a chain with a lost link holds nothing it could not restore
    assert hold_target([inc1, inc2], judged(("I2", VERIFIED))) is None


# The files -------------------------------------------------------------------------------------
def files(tmp_path: Path, *backup_ids: str) -> VerdictFiles:
    home = BarmanHome(tmp_path)
    for backup_id in backup_ids:
        home.backup_dir("pg", backup_id).mkdir(parents=True)
    return VerdictFiles(home)


def test_a_verdict_is_written_beside_the_backup_and_read_back(tmp_path: Path) -> None:
    store = files(tmp_path, "A")
    verdict = BackupVerdict("A", FAILED, "bad", BY_VERIFICATION, 12.5)
    assert store.write("pg", verdict) == verdict
    path = tmp_path / "pg" / "base" / "A" / VERDICT_FILE
    assert json.loads(path.read_text())["verdict"] == "failed"
    assert store.read("pg", "A") == verdict
    assert store.read_all("pg", ["A", "B"]) == {"A": verdict}


def test_no_verdict_is_written_for_a_deleted_backup(tmp_path: Path) -> None:
    store = files(tmp_path)
    assert store.write("pg", BackupVerdict("gone", VERIFIED)) is None
    assert not (tmp_path / "pg").exists()


@pytest.mark.parametrize(
    "text", ["", "{", "[]", '{"backup_id": "A"}', '{"backup_id": "B", "verdict": "failed"}']
)
def test_an_unreadable_or_foreign_file_is_no_verdict(tmp_path: Path, text: str) -> None:
    store = files(tmp_path, "A")
    store.path("pg", "A").write_text(text)
    assert store.read("pg", "A") is None


def test_a_new_verdict_keeps_the_daemons_keep_and_pending_never_clears_a_verdict() -> None:
    held = BackupVerdict("A", VERIFIED, held=True)
    assert merged(held, BackupVerdict("A", FAILED, "drill", BY_DRILL)).held is True
    assert merged(held, BackupVerdict("A", PENDING, "no tool")) == held
    assert merged(None, BackupVerdict("A", PENDING)) == BackupVerdict("A", PENDING)


def test_the_daemons_keep_is_recorded_and_released_in_the_file(tmp_path: Path) -> None:
    store = files(tmp_path, "A", "B")
    store.write("pg", BackupVerdict("A", VERIFIED, at=5.0))
    assert store.set_held("pg", "A", True) == BackupVerdict("A", VERIFIED, at=5.0, held=True)
    assert store.set_held("pg", "A", False) == BackupVerdict("A", VERIFIED, at=5.0)
    # a backup never checked (the root of a verified chain) gets a pending verdict saying so
    marked = store.set_held("pg", "B", True)
    assert marked == BackupVerdict("B", PENDING, held=True) and not marked.attempted
    assert store.set_held("pg", "gone", True) is None


def test_attempted_tells_a_check_from_a_mere_keep_record() -> None:
    assert BackupVerdict("A", VERIFIED).attempted
    assert BackupVerdict("A", FAILED, "bad").attempted
    assert BackupVerdict("A", PENDING, "compressed, no pg_verifybackup 18").attempted
    assert not BackupVerdict("A", PENDING, held=True).attempted


# What people see -------------------------------------------------------------------------------
def test_status_shows_every_done_backup_newest_first_with_its_verdict() -> None:
    verdicts = {
        "B": BackupVerdict("B", FAILED, "bad file", BY_DRILL, 7.0),
        "A": BackupVerdict("A", VERIFIED, "", BY_VERIFICATION, 3.0, held=True),
    }
    view = verification_view([A, B, C, backup("X", 50.0, "FAILED")], verdicts)
    assert list(view) == ["C", "B", "A"]
    assert view["C"] == {"verdict": "pending"}
    assert view["B"] == {
        "verdict": "failed",
        "by": "drill",
        "at": 7.0,
        "held": False,
        "reason": "bad file",
    }
    assert view["A"] == {"verdict": "verified", "by": "verification", "at": 3.0, "held": True}


def test_describe_in_a_restore_plan() -> None:
    assert describe(None) == "not yet (pending)"
    assert describe(BackupVerdict("A", PENDING, "no tool")) == "not yet (pending: no tool)"
    assert describe(BackupVerdict("A", VERIFIED, at=0.0)).startswith("yes (verification, ")
    failed = describe(BackupVerdict("A", FAILED, "bad", at=0.0))
    assert failed.startswith("FAILED verification ") and failed.endswith(
        ": bad (--allow-unverified)"
    )
