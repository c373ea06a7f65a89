"""Verdicts carried out with a fake Barman: written beside the backup, published, alerted on once,
the retention hold set with ``barman keep`` and released only when it is the daemon's."""

from __future__ import annotations

from pathlib import Path

import pytest

from barman_supervisor.barman.records import Backup
from barman_supervisor.barman.verdicts import (
    BY_DRILL,
    BY_VERIFICATION,
    BackupVerdict,
    Verdict,
    VerdictFiles,
)
from barman_supervisor.barman.verify import Verification
from barman_supervisor.jobs.backups import Backups
from barman_supervisor.jobs.verdicts import (
    BackupVerdicts,
    drill_verdict,
    pending_backup,
    verification_verdict,
)
from barman_supervisor.offsite.hold import Ledger
from barman_supervisor.status.state import DrillResult
from tests.unit.jobs.conftest import World, make_world
from tests.unit.jobs.fakes import Answer, write_backup_info

HOOK = "http://127.0.0.1:9/hook"
NOKEEP = Answer(stdout='{"pg": {"status": "nokeep"}}')
KEPT_BY_SOMEONE = Answer(stdout='{"pg": {"status": "full"}}')


@pytest.fixture
def world(environ: dict[str, str], tmp_path: Path) -> World:
    return make_world(environ, tmp_path, ALERT_WEBHOOK_URL=HOOK)


def listed(world: World, *backups: tuple[str, float]) -> list[Backup]:
    """Backups in the state (as a list-backups left them), each with its directory."""
    result = [Backup(backup_id, "DONE", end, 1, begin_time=end - 1) for backup_id, end in backups]
    for backup in result:
        write_backup_info(world.settings, "pg", backup.backup_id)
    world.state.record_backups("pg", result)
    return result


def handler(world: World) -> BackupVerdicts:
    return BackupVerdicts(world.settings, world.barman, world.state, world.notifier)


def verification(backup_id: str, ok: bool, reason: str = "", **flags: bool) -> Verification:
    return Verification(ok, reason, 1.0, backup_id, 50.0, **flags)


def keeps(world: World) -> list[tuple[str, ...]]:
    return [call for call in world.barman.calls if call[0] == "keep"]


# Verdicts from verifications and drills ----------------------------------------------------------
def test_a_verification_is_verified_failed_or_pending_when_it_could_not_check() -> None:
    assert verification_verdict(verification("A", True)).verdict == Verdict.VERIFIED
    failed = verification_verdict(verification("A", False, "checksum mismatch"))
    assert failed == BackupVerdict("A", Verdict.FAILED, "checksum mismatch", BY_VERIFICATION, 50.0)
    skipped = verification_verdict(verification("A", True, "tar needs 18", skipped=True))
    assert skipped.verdict == Verdict.PENDING and skipped.reason == "tar needs 18"
    no_tool = verification_verdict(verification("A", False, "no tool", inconclusive=True))
    assert no_tool.verdict == Verdict.PENDING and no_tool.attempted


def drill(**fields: object) -> DrillResult:
    base: dict[str, object] = {
        "ok": False,
        "reason": "x",
        "server": "pg",
        "started_at": 9.0,
        "backup_id": "A",
    }
    return DrillResult(**{**base, **fields})  # type: ignore[arg-type]


def test_a_drill_verifies_its_backup_or_fails_it_only_when_the_backup_is_at_fault() -> None:
    assert drill_verdict(drill(ok=True, reason="")) == BackupVerdict(
        "A", Verdict.VERIFIED, "", BY_DRILL, 9.0
    )
    assert drill_verdict(drill(backup_fault=True, reason="query failed")) == BackupVerdict(
        "A", Verdict.FAILED, "query failed", BY_DRILL, 9.0
    )
    # no space, a timeout, a stop, a drill from the store, no backup chosen: nothing said
    assert drill_verdict(drill(reason="not enough free space")) is None
    assert drill_verdict(drill(backup_fault=True, interrupted=True)) is None
    assert drill_verdict(drill(ok=True, source="offsite")) is None
    assert drill_verdict(drill(backup_id=None, backup_fault=True)) is None


def test_the_next_backup_to_verify_is_the_newest_never_checked() -> None:
    a, b, c = (Backup(i, "DONE", end, 1) for i, end in (("A", 1.0), ("B", 2.0), ("C", 3.0)))
    failed_b = Backup("D", "FAILED", 4.0, 1)
    assert pending_backup([a, b, c, failed_b], {}) == c
    verdicts = {
        "C": BackupVerdict("C", Verdict.VERIFIED),
        "B": BackupVerdict("B", Verdict.PENDING, held=True),  # only a keep record
    }
    assert pending_backup([a, b, c], verdicts) == b
    verdicts["B"] = BackupVerdict("B", Verdict.PENDING, "no pg_verifybackup")
    assert pending_backup([a, b, c], verdicts) == a


# Recording: file, state, alert, hold -------------------------------------------------------------
def test_a_failed_verification_is_kept_on_disk_published_and_alerted_once(world: World) -> None:
    listed(world, ("A", 100.0), ("B", 200.0))
    verdicts = handler(world)

    verdicts.record_verification("pg", verification("B", False, 'checksum mismatch "base/5/1"'))
    verdicts.record_verification("pg", verification("B", False, "again"))

    on_disk = VerdictFiles(world.barman.home).read("pg", "B")
    assert on_disk is not None and on_disk.failed and on_disk.reason == "again"
    assert world.state.server("pg").verdicts["B"] == on_disk
    assert len(world.notifier.posts) == 1
    alert = world.notifier.posts[0]
    assert alert["state"] == "backup_unusable" and alert["backup_id"] == "B"
    assert alert["problems"] == [
        {"condition": "verification", "reason": 'checksum mismatch "base/5/1"'}
    ]


def test_a_verified_backup_is_held_with_keep_full_and_the_keep_recorded(world: World) -> None:
    listed(world, ("A", 100.0))
    world.barman.answer("keep", NOKEEP, Answer())

    handler(world).record_verification("pg", verification("A", True))

    assert keeps(world) == [
        ("keep", "--status", "pg", "A"),
        ("keep", "--target", "full", "pg", "A"),
    ]
    held = VerdictFiles(world.barman.home).read("pg", "A")
    assert held is not None and held.held and held.verdict == Verdict.VERIFIED
    assert world.state.server("pg").verdicts["A"].held
    assert world.notifier.posts == []


def test_a_backup_someone_else_keeps_is_left_to_them(world: World) -> None:
    listed(world, ("A", 100.0))
    world.barman.answer("keep", KEPT_BY_SOMEONE)

    handler(world).record_verification("pg", verification("A", True))

    assert keeps(world) == [("keep", "--status", "pg", "A")]
    held = VerdictFiles(world.barman.home).read("pg", "A")
    assert held is not None and not held.held


def test_the_daemons_hold_moves_to_a_newer_verified_backup(world: World) -> None:
    listed(world, ("A", 100.0), ("B", 200.0))
    files = VerdictFiles(world.barman.home)
    files.write("pg", BackupVerdict("A", Verdict.VERIFIED))
    files.set_held("pg", "A", True)
    verdicts = handler(world)
    verdicts.load("pg", world.state.server("pg").backups)
    world.barman.answer("keep", NOKEEP, Answer(), Answer())

    verdicts.record_verification("pg", verification("B", True))

    assert keeps(world) == [
        ("keep", "--status", "pg", "B"),
        ("keep", "--target", "full", "pg", "B"),
        ("keep", "--release", "pg", "A"),
    ]
    released, held = files.read("pg", "A"), files.read("pg", "B")
    assert released is not None and not released.held
    assert held is not None and held.held


def test_a_failed_newer_backup_leaves_the_hold_where_it_is(world: World) -> None:
    listed(world, ("A", 100.0), ("B", 200.0))
    files = VerdictFiles(world.barman.home)
    files.write("pg", BackupVerdict("A", Verdict.VERIFIED))
    files.set_held("pg", "A", True)
    verdicts = handler(world)
    verdicts.load("pg", world.state.server("pg").backups)

    verdicts.record_verification("pg", verification("B", False, "bad"))

    assert keeps(world) == []


def test_a_drill_failure_is_the_backups_verdict(world: World) -> None:
    listed(world, ("A", 100.0))
    handler(world).record_drill("pg", drill(backup_fault=True, reason="query failed"))
    found = VerdictFiles(world.barman.home).read("pg", "A")
    assert found is not None and found.failed and found.by == BY_DRILL
    assert world.notifier.posts[0]["problems"][0]["condition"] == "drill"


def test_a_verdict_for_a_deleted_backup_is_dropped(world: World) -> None:
    verdicts = handler(world)
    assert verdicts.record("pg", BackupVerdict("gone", Verdict.FAILED, "bad")) is None
    assert world.state.server("pg").verdicts == {} and world.notifier.posts == []


def backups_with_b_verified(world: World) -> Backups:
    listed(world, ("A", 100.0), ("B", 200.0))
    VerdictFiles(world.barman.home).write("pg", BackupVerdict("B", Verdict.VERIFIED))
    backups = Backups(
        world.settings, world.barman, world.state, world.recorder, world.stop, world.notifier
    )
    backups.verdicts.load("pg", world.state.server("pg").backups)
    return backups


def test_the_check_verifies_the_newest_unverified_backup_once(world: World) -> None:
    backups = backups_with_b_verified(world)
    world.barman.answer("verify-backup", Answer(returncode=1, stderr="checksum mismatch"))

    backups.verify_pending(world.server)
    backups.verify_pending(world.server)

    assert [c for c in world.barman.calls if c[0] == "verify-backup"] == [
        ("verify-backup", "pg", "A")
    ]
    found = VerdictFiles(world.barman.home).read("pg", "A")
    assert found is not None and found.failed and "checksum mismatch" in found.reason


def test_no_verification_while_a_backup_of_the_server_runs(world: World) -> None:
    """The backup's lock is taken: the check leaves the unverified backup for next time."""
    backups = backups_with_b_verified(world)
    with backups._running(world.server.name):
        backups.verify_pending(world.server)
    assert "verify-backup" not in world.barman.commands()


# Sharing a keep with the off-site hold -----------------------------------------------------------
def test_a_backup_the_offsite_hold_keeps_is_shared_not_kept_again(world: World) -> None:
    listed(world, ("A", 100.0))
    Ledger(world.settings.barman_home).write("pg", kept="A")

    handler(world).record_verification("pg", verification("A", True))

    assert keeps(world) == []
    held = VerdictFiles(world.barman.home).read("pg", "A")
    assert held is not None and held.held


def test_a_keep_the_offsite_hold_still_needs_is_left_in_place(world: World) -> None:
    listed(world, ("A", 100.0), ("B", 200.0))
    files = VerdictFiles(world.barman.home)
    files.write("pg", BackupVerdict("A", Verdict.VERIFIED))
    files.set_held("pg", "A", True)
    Ledger(world.settings.barman_home).write("pg", kept="A")
    verdicts = handler(world)
    verdicts.load("pg", world.state.server("pg").backups)
    world.barman.answer("keep", NOKEEP, Answer())

    verdicts.record_verification("pg", verification("B", True))

    assert ("keep", "--release", "pg", "A") not in keeps(world)
    released = files.read("pg", "A")
    assert released is not None and not released.held  # the keep is the off-site hold's now
