"""The check handler: Barman's verdict into the state, with the backups it depends on."""

from __future__ import annotations

from barman_supervisor.jobs.backups import Backups
from barman_supervisor.jobs.checks import Checks
from tests.unit.jobs.conftest import World
from tests.unit.jobs.fakes import (
    Answer,
    backup_list,
    write_nightly_backup_infos,
)


def handler(world: World) -> Checks:
    backups = Backups(
        world.settings, world.barman, world.state, world.recorder, world.stop, world.notifier
    )
    return Checks(world.barman, world.state, world.recorder, backups)


def test_failed_checks_name_themselves_in_the_job_reason(world: World) -> None:
    world.barman.answer(
        "check",
        Answer(
            returncode=1,
            data={"pg": {"postgresql": {"status": "OK"}, "wal_level": {"status": "FAILED"}}},
        ),
    )
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))

    handler(world).check(world.server)

    server = world.state.server("pg")
    assert [(c.name, c.ok) for c in server.checks] == [("postgresql", True), ("wal_level", False)]
    assert server.checks_at is not None
    assert server.runs["check"].reason == "failed checks: wal_level"
    assert [b.backup_id for b in server.backups] == ["B1"]


def test_a_check_that_says_nothing_fails_with_barmans_reason(world: World) -> None:
    world.barman.answer("check", Answer(returncode=2, stderr="unknown server"))

    handler(world).check(world.server)

    run = world.state.server("pg").runs["check"]
    assert not run.ok and run.reason == "unknown server" and run.exit_code == 2


def test_the_backup_list_is_asked_again_only_when_barmans_files_changed(world: World) -> None:
    world.barman.answer("check", Answer(data={"pg": {"postgresql": {"status": "OK"}}}))
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))
    checks = handler(world)

    checks.check(world.server)
    checks.check(world.server)
    assert world.barman.commands() == ["list-backups", "check", "check"]

    (world.settings.barman_home / "pg" / "base" / "B2").mkdir(parents=True)
    checks.check(world.server)
    assert world.barman.commands()[3:] == ["list-backups", "check"]


def test_a_failure_a_done_backup_superseded_is_deleted_before_the_check(world: World) -> None:
    """Deleted after it, the check just recorded would say failed_backups until the next."""
    world.barman.answer(
        "list-backups", backup_list(("20261124T030000", "DONE"), ("20261123T030000", "FAILED"))
    )
    write_nightly_backup_infos(world.settings, "pg", 23, 24)
    world.barman.answer("check", Answer(data={"pg": {"failed_backups": {"status": "OK"}}}))

    handler(world).check(world.server)

    commands = world.barman.commands()
    assert commands.index("delete") < commands.index("check"), commands
    assert ("delete", "pg", "20261123T030000") in world.barman.calls


def test_a_red_check_is_asked_again_after_a_done_backup_a_green_one_is_not(world: World) -> None:
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))
    red = {"pg": {"minimum_redundancy": {"status": "FAILED"}}}
    world.barman.answer("check", Answer(returncode=1, data=red))
    checks = handler(world)
    checks.check(world.server)
    world.barman.answer("check", Answer(data={"pg": {"minimum_redundancy": {"status": "OK"}}}))

    checks.recheck_if_failed(world.server)
    assert world.barman.commands().count("check") == 2
    assert all(check.ok for check in world.state.server("pg").checks)

    checks.recheck_if_failed(world.server)
    assert world.barman.commands().count("check") == 2
