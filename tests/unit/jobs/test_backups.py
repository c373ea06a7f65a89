"""When start-up must take a backup: none DONE yet, or the newest one failed."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from barman_supervisor.barman.records import Backup
from barman_supervisor.errors import Interrupted
from barman_supervisor.jobs.backups import Backups, needs_backup_at_start
from tests.support.poll import wait_until
from tests.unit.jobs.conftest import World, make_world
from tests.unit.jobs.fakes import (
    Answer,
    backup_list,
    write_backup_info,
    write_nightly_backup_infos,
)

WAIT = 10.0


def backups(*statuses: str) -> list[Backup]:
    return [Backup(f"2026112{n}T030000", status, None, None) for n, status in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "needed"),
    [
        ((), True),
        (("FAILED",), True),
        (("FAILED", "EMPTY", "SYNCING"), True),
        (("DONE",), False),
        (("FAILED", "DONE"), False),
        (("DONE", "FAILED"), True),
        (("STARTED",), False),
        (("WAITING_FOR_WALS",), False),
    ],
)
def test_needs_backup_at_start(statuses: tuple[str, ...], needed: bool) -> None:
    assert needs_backup_at_start(backups(*statuses)) is needed


def test_newest_is_decided_by_timestamps_when_tz_reordered_the_ids() -> None:
    """TZ moved east: the backup taken later got the smaller ID; it FAILED, so one is owed."""
    older_done = Backup("20261124T170000", "DONE", 1100.0, 1, begin_time=1000.0)
    newer_failed = Backup("20261124T040000", "FAILED", None, None, begin_time=5000.0)

    assert needs_backup_at_start([older_done, newer_failed]) is True
    assert needs_backup_at_start([replace(newer_failed, status="DONE", end_time=5100.0)]) is False


# The Backups handler, with a fake Barman ----------------------------------------------------------
def handler(world: World) -> Backups:
    return Backups(
        world.settings, world.barman, world.state, world.recorder, world.stop, world.notifier
    )


def test_a_done_backup_is_verified_recorded_and_announced(world: World) -> None:
    world.barman.answer("backup", Answer(data={"backup_id": "B1", "status": "DONE", "size": 9}))
    write_backup_info(world.settings, "pg", "B1")
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))

    outcome = handler(world).take(world.server, immediate=True, trigger="first")

    assert outcome is not None and outcome.ok
    # keep: whether someone keeps the newest verified backup already (the retention hold)
    assert world.barman.commands() == ["backup", "verify-backup", "list-backups", "keep"]
    assert world.barman.calls[-1] == ("keep", "--status", "pg", "B1")
    assert "--immediate-checkpoint" in world.barman.calls[0]
    server = world.state.server("pg")
    assert server.last_backup == {
        "ok": True,
        "trigger": "first",
        "backup_id": "B1",
        "status": "DONE",
        "size_bytes": 9,
        "duration_s": 0.25,
    }
    assert server.last_verify["ok"] is True
    assert server.runs["backup"].ok
    assert [b.backup_id for b in server.backups] == ["B1"]
    assert world.notifier.pings == ["/start", ""]


def test_a_backup_verification_rejects_is_a_failed_backup(world: World) -> None:
    world.barman.answer("backup", Answer(data={"backup_id": "B1", "status": "DONE"}))
    write_backup_info(world.settings, "pg", "B1")
    world.barman.answer("verify-backup", Answer(returncode=1, stderr="checksum mismatch"))

    handler(world).take(world.server, immediate=False, trigger="schedule")

    server = world.state.server("pg")
    assert server.last_backup["ok"] is False
    assert server.last_backup["reason"].startswith("backup verification failed")
    assert not server.runs["backup"].ok
    assert world.notifier.pings == ["/start", "/fail"]


def test_a_second_backup_of_the_same_server_is_skipped(world: World) -> None:
    world.barman.hold["backup"] = release = threading.Event()
    backups = handler(world)
    first = threading.Thread(
        target=backups.take, args=(world.server,), kwargs={"immediate": True, "trigger": "first"}
    )
    first.start()
    try:
        wait_until(lambda: world.barman.commands() == ["backup"], WAIT, what="the first backup")
        assert backups.take(world.server, immediate=False, trigger="schedule") is None
    finally:
        release.set()
        first.join(10)
    assert world.barman.commands().count("backup") == 1


def test_waiting_for_a_concurrency_slot_ends_with_the_daemon(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = make_world(
        {**environ, "BARMAN_SERVERS": "pg,reports"}, tmp_path, BACKUP_CONCURRENCY="1"
    )
    world.barman.hold["backup"] = release = threading.Event()
    backups = handler(world)
    pg, reports = world.settings.servers
    first = threading.Thread(
        target=backups.take, args=(pg,), kwargs={"immediate": True, "trigger": "first"}
    )
    first.start()
    try:
        wait_until(lambda: world.barman.commands() == ["backup"], WAIT, what="the first backup")
        world.stop.set()
        with pytest.raises(Interrupted):
            backups.take(reports, immediate=True, trigger="first")
    finally:
        release.set()
        first.join(10)
    assert world.barman.commands().count("backup") == 1


def test_interrupted_backups_are_marked_failed(world: World) -> None:
    world.barman.answer(
        "list-backups",
        backup_list(("B2", "STARTED"), ("B1", "DONE")),
        backup_list(("B2", "FAILED"), ("B1", "DONE")),
    )
    backups = handler(world)
    backups.refresh(world.server)

    backups.close_interrupted(world.server)

    assert world.barman.marked_failed == ["B2"]
    assert [b.status for b in world.state.server("pg").backups] == ["FAILED", "DONE"]


def test_only_failures_older_than_a_done_backup_are_deleted(world: World) -> None:
    world.barman.answer(
        "list-backups",
        backup_list(
            ("20261124T030000", "FAILED"),
            ("20261123T030000", "DONE"),
            ("20261122T030000", "FAILED"),
        ),
    )
    write_nightly_backup_infos(world.settings, "pg", 22, 23, 24)
    backups = handler(world)
    backups.refresh(world.server)

    backups.delete_superseded_failures(world.server)

    deletes = [call for call in world.barman.calls if call[0] == "delete"]
    assert deletes == [("delete", "pg", "20261122T030000")]


def test_a_backup_taken_beside_the_daemon_shows_within_a_tick(world: World) -> None:
    world.state.set_phase("pg", "running")
    backups = handler(world)
    world.barman.answer(
        "list-backups", backup_list(("B1", "DONE")), backup_list(("B2", "DONE"), ("B1", "DONE"))
    )
    backups.refresh(world.server)

    backups.refresh_if_changed(world.server)  # nothing changed on disk: no Barman command
    assert world.barman.commands() == ["list-backups"]

    info = world.settings.barman_home / "pg" / "base" / "B2" / "backup.info"
    info.parent.mkdir(parents=True)
    info.write_text("status=DONE\n")
    backups.refresh_if_changed(world.server)

    assert world.barman.commands() == ["list-backups", "list-backups"]
    assert [b.backup_id for b in world.state.server("pg").backups] == ["B2", "B1"]


def test_an_owed_backup_is_taken_at_once_with_an_immediate_checkpoint(world: World) -> None:
    world.barman.answer("backup", Answer(data={"backup_id": "B1", "status": "DONE"}))
    write_backup_info(world.settings, "pg", "B1")

    handler(world).owed(world.server)

    assert "--immediate-checkpoint" in world.barman.calls[0]
    server = world.state.server("pg")
    assert server.last_backup["trigger"] == "wal_gap" and server.runs["owed_backup"].ok


def write_chain_info(world: World, backup_id: str, day: int, parent: str | None) -> None:
    """A ``backup.info`` of a PostgreSQL 17+ backup, incremental when ``parent`` is given."""
    info = world.settings.barman_home / "pg" / "base" / backup_id / "backup.info"
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text(
        f"backup_id={backup_id}\nbegin_time=2026-11-{day} 03:00:00+00:00\n"
        f"parent_backup_id={parent}\nsummarize_wal=on\n"
    )


def test_the_incremental_job_builds_on_the_newest_done_backup(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = make_world(environ, tmp_path, BACKUP_INCREMENTAL_SCHEDULE="0 3 * * 1-6")
    write_chain_info(world, "20261122T030000", 22, None)
    write_chain_info(world, "20261123T030000", 23, "20261122T030000")
    world.barman.answer(
        "list-backups", backup_list(("20261123T030000", "DONE"), ("20261122T030000", "DONE"))
    )
    world.barman.answer("backup", Answer(data={"backup_id": "B3", "status": "DONE"}))
    write_backup_info(world.settings, "pg", "B3", version_num=180001)

    handler(world).scheduled_incremental(world.server)

    backup_call = next(call for call in world.barman.calls if call[0] == "backup")
    assert backup_call[-3:] == ("--incremental", "20261123T030000", "pg")
    server = world.state.server("pg")
    assert server.last_backup["trigger"] == "incremental_schedule"
    assert server.runs["scheduled_incremental_backup"].ok


def test_the_incremental_job_takes_a_full_when_the_parent_is_missing(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = make_world(environ, tmp_path, BACKUP_INCREMENTAL_SCHEDULE="0 3 * * 1-6")
    write_chain_info(world, "20261123T030000", 23, "20261122T030000")
    world.barman.answer("list-backups", backup_list(("20261123T030000", "DONE")))
    world.barman.answer("backup", Answer(data={"backup_id": "B3", "status": "DONE"}))
    write_backup_info(world.settings, "pg", "B3", version_num=180001)

    handler(world).scheduled_incremental(world.server)

    backup_call = next(call for call in world.barman.calls if call[0] == "backup")
    assert "--incremental" not in backup_call


def test_a_backup_larger_than_the_free_space_is_refused_without_running_barman(
    world: World,
) -> None:
    """The previous full says how large the next one is: it cannot fit, so no Barman command
    runs and the backup fails with the sizes (job, /status, dead-man's switch)."""
    world.barman.answer("list-backups", backup_list())
    huge = Backup("B0", "DONE", 1000.0, 1 << 60, begin_time=900.0)
    world.state.record_backups("pg", [huge])

    outcome = handler(world).take(world.server, immediate=True, trigger="schedule")

    assert outcome is not None and not outcome.ok
    assert "backup" not in world.barman.commands()
    server = world.state.server("pg")
    reason = server.last_backup["reason"]
    assert reason.startswith("not enough free space for the backup in BARMAN_HOME")
    assert "previous full backup" in reason
    assert not server.runs["backup"].ok and server.runs["backup"].reason == reason
    assert world.notifier.pings == ["/start", "/fail"]


def test_a_backup_that_fits_is_taken(world: World) -> None:
    world.barman.answer("backup", Answer(data={"backup_id": "B1", "status": "DONE", "size": 9}))
    write_backup_info(world.settings, "pg", "B1")
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))
    world.state.record_backups("pg", [Backup("B0", "DONE", 1000.0, 1, begin_time=900.0)])

    outcome = handler(world).take(world.server, immediate=True, trigger="schedule")

    assert outcome is not None and outcome.ok
    assert world.barman.commands()[0] == "backup"


def test_a_backup_that_ran_out_of_space_is_failed_and_deleted_at_once(world: World) -> None:
    world.barman.answer("backup", Answer(returncode=1, stderr="No space left on device"))
    world.barman.answer("list-backups", backup_list(("B1", "FAILED")))

    handler(world).take(world.server, immediate=True, trigger="schedule")

    server = world.state.server("pg")
    assert server.last_backup["ok"] is False and "No space left" in server.last_backup["reason"]
    assert ("delete", "pg", "B1") in world.barman.calls


def test_a_done_backup_deletes_the_failure_it_supersedes_then_asks_for_a_recheck(
    world: World,
) -> None:
    """The FAILED backup kept barman check red; the front re-checks a red check (on_done)."""
    done: list[str] = []
    backups = Backups(
        world.settings,
        world.barman,
        world.state,
        world.recorder,
        world.stop,
        world.notifier,
        on_done=lambda server: done.append(server.name),
    )
    write_nightly_backup_infos(world.settings, "pg", 23, 24)
    listed = backup_list(("20261124T030000", "DONE"), ("20261123T030000", "FAILED"))
    world.barman.answer("list-backups", listed)
    world.barman.answer("backup", Answer(data={"backup_id": "20261124T030000", "status": "DONE"}))

    backups.take(world.server, immediate=True, trigger="failover")

    assert ("delete", "pg", "20261123T030000") in world.barman.calls
    assert done == ["pg"]

    world.barman.answer("backup", Answer(returncode=1, stderr="connection refused"))
    backups.take(world.server, immediate=True, trigger="failover")
    assert done == ["pg"]  # a failed attempt clears nothing


def test_a_backup_barman_left_without_its_end_is_failed_so_barman_lists_again(
    world: World,
) -> None:
    """Barman's list-backups fails on a WAITING_FOR_WALS backup.info with no end_wal (left by
    a backup the primary's switchover cut short): marked FAILED, then listed again."""
    info = world.settings.barman_home / "pg" / "meta" / "B2-backup.info"
    info.parent.mkdir(parents=True)
    info.write_text("backup_id=B2\nstatus=WAITING_FOR_WALS\n")
    world.barman.answer(
        "list-backups",
        Answer(returncode=1, stderr="'<=' not supported between instances of 'str' and 'NoneType'"),
        backup_list(("B2", "FAILED"), ("B1", "DONE")),
    )

    backups = handler(world).refresh(world.server)

    assert world.barman.marked_failed == ["B2"]
    assert backups is not None and [b.status for b in backups] == ["FAILED", "DONE"]
    assert world.barman.commands() == ["list-backups", "list-backups"]
