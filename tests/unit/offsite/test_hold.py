"""The off-site hold on local retention, where it meets the hold on the newest verified backup:
a keep the daemon set for either is shared, and released only by the hold that lets go last."""

from __future__ import annotations

from pathlib import Path

import pytest

from barman_supervisor.barman.records import Backup
from barman_supervisor.barman.verdicts import BackupVerdict, Verdict, VerdictFiles
from barman_supervisor.offsite.hold import Ledger, RetentionHold
from barman_supervisor.offsite.plan import OffsiteRecord
from tests.unit.jobs.conftest import World, make_world
from tests.unit.jobs.fakes import Answer, write_backup_info

FAILING = OffsiteRecord("s3://b/p", backups_owed=["A"], backup_error="Could not connect")
CAUGHT_UP = OffsiteRecord("s3://b/p")


@pytest.fixture
def world(environ: dict[str, str], tmp_path: Path) -> World:
    world = make_world(environ, tmp_path)
    write_backup_info(world.settings, "pg", "A")
    world.state.record_backups("pg", [Backup("A", "DONE", 100.0, 1)])
    return world


def hold(world: World) -> tuple[RetentionHold, Ledger]:
    ledger = Ledger(world.settings.barman_home)
    return RetentionHold(world.settings, world.barman, world.state, ledger), ledger


def test_the_keep_of_the_newest_verified_backup_is_shared_and_left_in_place(
    world: World,
) -> None:
    files = VerdictFiles(world.barman.home)
    files.write("pg", BackupVerdict("A", Verdict.VERIFIED))
    files.set_held("pg", "A", True)
    retention, ledger = hold(world)

    assert retention.apply(world.server, FAILING) == "A"
    assert ledger.read("pg")["kept"] == "A"
    assert retention.apply(world.server, CAUGHT_UP) == "A"
    assert ledger.read("pg")["kept"] == "A"
    # neither keep --target nor keep --release: the keep is the verified hold's all along
    assert world.barman.commands() == []


def test_once_caught_up_the_hold_moves_to_the_newest_backup_and_is_never_let_go(
    world: World,
) -> None:
    """WAL archived between two rounds is owed before any round saw it: with no hold, a newer
    backup done in between would let retention delete it. The newest backup covers it."""
    retention, _ledger = hold(world)
    world.barman.answer(
        "keep", Answer(stdout="nokeep"), Answer(), Answer(), Answer(stdout="nokeep"), Answer()
    )
    assert retention.apply(world.server, FAILING) == "A"
    assert retention.apply(world.server, CAUGHT_UP) == "A"
    write_backup_info(world.settings, "pg", "B")
    world.state.record_backups("pg", [Backup("A", "DONE", 100.0, 1), Backup("B", "DONE", 200.0, 1)])
    assert retention.apply(world.server, CAUGHT_UP) == "B"
    assert [call[1:4] for call in world.barman.calls] == [
        ("--status", "pg", "A"),
        ("--target", "full", "pg"),
        ("--release", "pg", "A"),
        ("--status", "pg", "B"),
        ("--target", "full", "pg"),
    ]


def test_a_copy_merely_behind_holds_too(world: World) -> None:
    """Issue 24: no error, but a backup upload under way (or WAL waiting) is owed all the same."""
    retention, ledger = hold(world)
    world.barman.answer("keep", Answer(stdout="nokeep"), Answer())
    behind = OffsiteRecord("s3://b/p", backups_owed=["A"])
    assert behind.last_error is None
    assert retention.apply(world.server, behind) == "A"
    assert ledger.read("pg")["kept"] == "A"
    wal_behind = OffsiteRecord("s3://b/p", oldest_owed_wal="000000010000000000000009")
    assert retention.apply(world.server, wal_behind) == "A"  # the same hold, no new keep
    assert retention.apply(world.server, CAUGHT_UP) == "A"
    assert [call[1] for call in world.barman.calls] == ["--status", "--target"]


def test_an_incremental_backup_is_never_held_the_full_before_it_is(world: World) -> None:
    """Barman refuses ``keep`` on an incremental; the full at or before it covers its WAL."""
    write_backup_info(world.settings, "pg", "I")
    info = world.settings.barman_home / "pg" / "base" / "I" / "backup.info"
    info.write_text(info.read_text() + "parent_backup_id=A\n")
    world.state.record_backups("pg", [Backup("A", "DONE", 100.0, 1), Backup("I", "DONE", 200.0, 1)])
    retention, _ledger = hold(world)
    world.barman.answer("keep", Answer(stdout="nokeep"), Answer())
    assert retention.apply(world.server, CAUGHT_UP) == "A"
