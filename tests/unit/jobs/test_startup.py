"""The start-up handler: each step in order, refusals that end the daemon, owed backups."""

from __future__ import annotations

import dataclasses

from barman_supervisor.jobs.backups import Backups
from barman_supervisor.jobs.checks import Checks
from barman_supervisor.jobs.startup import Startup
from barman_supervisor.jobs.streaming import Streaming
from barman_supervisor.pid1 import Supervisor
from barman_supervisor.proc import Runner
from barman_supervisor.settings import ServerSettings
from tests.unit.jobs.conftest import World
from tests.unit.jobs.fakes import Answer, backup_list, show

ALL_OK = Answer(data={"pg": {"postgresql": {"status": "OK"}}})


class Outcomes:
    """What the start-up told the daemon."""

    def __init__(self) -> None:
        self.fatal: list[tuple[str, str]] = []
        self.ready: list[str] = []

    def on_fatal(self, server: str, reason: str) -> None:
        self.fatal.append((server, reason))

    def on_ready(self, server: ServerSettings) -> None:
        self.ready.append(server.name)


def bootstrap(world: World) -> Outcomes:
    outcomes = Outcomes()
    postgres = {world.server.name: world.postgres}
    streaming = Streaming(
        world.settings,
        world.barman,
        world.state,
        postgres,
        world.recorder,
        world.stop,
        on_wal_gap=world.backup_owed,
    )
    backups = Backups(
        world.settings, world.barman, world.state, world.recorder, world.stop, world.notifier
    )
    Startup(
        world.settings,
        world.barman,
        # runs the real `pg_basebackup --version` (the clients' major is part of preflight)
        Runner(Supervisor(), world.settings.child_env),
        world.state,
        postgres,
        world.recorder,
        world.stop,
        streaming=streaming,
        checks=Checks(world.barman, world.state, world.recorder, backups),
        backups=backups,
        on_fatal=outcomes.on_fatal,
        on_ready=outcomes.on_ready,
    ).bootstrap(world.server)
    return outcomes


def test_a_new_server_is_streamed_archived_checked_and_backed_up(world: World) -> None:
    world.barman.answer("check", ALL_OK)
    world.barman.answer(
        "list-backups", backup_list(), backup_list(), backup_list(), backup_list(("B1", "DONE"))
    )
    world.barman.answer("backup", Answer(data={"backup_id": "B1", "status": "DONE"}))
    world.barman.answer("show-backup", show("B1"))

    outcomes = bootstrap(world)

    assert outcomes.ready == ["pg"] and outcomes.fatal == []
    commands = world.barman.commands()
    assert commands[:4] == ["receive-wal", "cron", "switch-wal", "check"]
    assert commands.count("backup") == 1
    assert "check" in commands[commands.index("backup") :]  # a fresh verdict after the backup
    server = world.state.server("pg")
    assert server.phase == "running" and server.identity == world.postgres.identity
    assert server.runs["bootstrap"].ok


def test_a_server_with_a_done_backup_gets_no_backup_at_start(world: World) -> None:
    world.barman.answer("check", ALL_OK)
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))

    outcomes = bootstrap(world)

    assert outcomes.ready == ["pg"]
    assert "backup" not in world.barman.commands()


def test_a_misconfigured_server_is_refused_before_any_barman_command(world: World) -> None:
    world.postgres.facts_answer = dataclasses.replace(
        world.postgres.facts_answer, wal_level="minimal"
    )

    outcomes = bootstrap(world)

    assert outcomes.ready == []
    assert len(outcomes.fatal) == 1 and "wal_level is minimal" in outcomes.fatal[0][1]
    assert world.barman.commands() == []
    server = world.state.server("pg")
    assert server.phase == "failed" and server.problems


def test_a_refused_replication_connection_names_the_fix(world: World) -> None:
    world.postgres.replication_refused = True

    outcomes = bootstrap(world)

    (reason,) = [reason for _server, reason in outcomes.fatal]
    assert "REPLICATION attribute" in reason and "no pg_hba.conf entry" in reason
    assert world.barman.commands() == []


def test_streaming_that_does_not_start_fails_the_step_not_the_server(world: World) -> None:
    world.barman.answer("check", ALL_OK)
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))
    world.barman.answer("switch-wal", Answer(returncode=1, stderr="archive timeout"))

    outcomes = bootstrap(world)

    assert outcomes.ready == ["pg"] and outcomes.fatal == []
    run = world.state.server("pg").runs["bootstrap"]
    assert not run.ok and run.reason == "archive timeout"


def test_a_stop_during_start_up_hands_nothing_to_the_schedule(world: World) -> None:
    world.postgres.down = True
    world.stop.set()

    outcomes = bootstrap(world)

    assert outcomes.ready == [] and outcomes.fatal == []
    assert world.state.server("pg").runs["bootstrap"].reason == "interrupted by shutdown"
