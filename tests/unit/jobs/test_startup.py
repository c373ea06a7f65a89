"""The start-up handler: each step in order, refusals that end the daemon, owed backups."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import psycopg

from barman_supervisor.config import ServerSettings
from barman_supervisor.jobs.backups import Backups
from barman_supervisor.jobs.checks import Checks
from barman_supervisor.jobs.claims import Claims
from barman_supervisor.jobs.startup import Startup
from barman_supervisor.jobs.streaming import Streaming
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from tests.support.poll import wait_until
from tests.unit.jobs.conftest import World, make_world
from tests.unit.jobs.fakes import Answer, backup_list, write_archived_wal, write_backup_info

JOIN_TIMEOUT = 10.0


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


def startup(world: World, outcomes: Outcomes) -> Startup:
    postgres = {world.server.name: world.postgres}
    streaming = Streaming(
        world.settings,
        world.barman,
        world.state,
        postgres,
        world.recorder,
        world.stop,
        on_wal_gap=world.backup_owed,
        failover=world.failover(),
    )
    backups = Backups(
        world.settings, world.barman, world.state, world.recorder, world.stop, world.notifier
    )
    return Startup(
        world.settings,
        world.barman,
        # runs the real `pg_basebackup --version` (the clients' major is part of preflight)
        Runner(Pid1(), world.settings.child_env),
        world.state,
        postgres,
        world.recorder,
        world.stop,
        streaming=streaming,
        checks=Checks(world.barman, world.state, world.recorder, backups),
        backups=backups,
        claims=Claims(world.settings, world.state, postgres, world.stop),
        on_fatal=outcomes.on_fatal,
        on_ready=outcomes.on_ready,
    )


def bootstrap(world: World) -> Outcomes:
    outcomes = Outcomes()
    startup(world, outcomes).bootstrap(world.server)
    return outcomes


def test_a_new_server_is_streamed_archived_backed_up_and_checked(world: World) -> None:
    world.barman.answer("check", ALL_OK)
    world.barman.answer("list-backups", backup_list(), backup_list(("B1", "DONE")))
    world.barman.answer("backup", Answer(data={"backup_id": "B1", "status": "DONE"}))
    write_backup_info(world.settings, "pg", "B1")

    outcomes = bootstrap(world)

    assert outcomes.ready == ["pg"] and outcomes.fatal == []
    assert world.postgres.slots_created == [world.server.slot_name]
    # Barman refuses a first backup until WAL reached its archive; then one check beside the
    # backup (the check's own list of backups only when Barman's files changed meanwhile)
    commands = world.barman.commands()
    assert commands[:3] == ["cron", "switch-wal", "list-backups"]
    # (and the retention hold asks whether the verified B1 is kept, once per list of backups)
    side_by_side = [c for c in commands[3:] if c not in ("list-backups", "keep")]
    assert sorted(side_by_side) == ["backup", "check", "verify-backup"]
    assert ("keep", "--status", "pg", "B1") in world.barman.calls
    assert side_by_side.index("backup") < side_by_side.index("verify-backup")
    assert [c for c in commands if c != "keep"][-1] == "list-backups"
    server = world.state.server("pg")
    assert server.phase == "running" and server.identity == world.postgres.identity_answer
    assert server.runs["bootstrap"].ok


def test_a_check_that_saw_no_backup_beside_the_first_one_runs_again_after_it(
    world: World,
) -> None:
    """minimum_redundancy fails until the first backup is DONE; the check beside it says so,
    and /status and the metrics would show it until BARMAN_CHECK_INTERVAL later."""
    no_backup_yet = {"pg": {"minimum_redundancy_requirements": {"status": "FAILED"}}}
    world.barman.answer("check", Answer(returncode=1, data=no_backup_yet), ALL_OK)
    world.barman.answer("list-backups", backup_list(), backup_list(("B1", "DONE")))
    world.barman.answer("backup", Answer(data={"backup_id": "B1", "status": "DONE"}))
    write_backup_info(world.settings, "pg", "B1")

    outcomes = bootstrap(world)

    assert outcomes.ready == ["pg"]
    assert world.barman.commands().count("check") == 2
    server = world.state.server("pg")
    assert [check.ok for check in server.checks] == [True]


def test_a_restart_with_wal_archived_and_a_done_backup_runs_no_switch_and_no_backup(
    world: World,
) -> None:
    world.barman.answer("check", ALL_OK)
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))
    write_archived_wal(world.settings, "pg")

    outcomes = bootstrap(world)

    assert outcomes.ready == ["pg"]
    assert world.barman.commands() == ["cron", "list-backups", "check"]


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


def test_a_start_up_beyond_startup_concurrency_waits_its_turn_queued(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = make_world(environ, tmp_path, STARTUP_CONCURRENCY="1")
    world.barman.answer("check", ALL_OK)
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))
    held = threading.Event()
    world.barman.hold["switch-wal"] = held
    outcomes = Outcomes()
    handler = startup(world, outcomes)
    first = threading.Thread(target=handler.bootstrap, args=(world.server,), daemon=True)
    first.start()
    wait_until(
        lambda: world.barman.commands() == ["cron", "switch-wal"],
        JOIN_TIMEOUT,
        what="the first bootstrap at its switch-wal",
    )
    second = threading.Thread(target=handler.bootstrap, args=(world.server,), daemon=True)
    second.start()
    wait_until(
        lambda: world.state.server("pg").phase == "queued",
        JOIN_TIMEOUT,
        what="the second bootstrap queued",
    )
    # the second streams at once (its cron), then runs nothing more until its turn
    assert world.barman.commands() == ["cron", "switch-wal", "cron"]
    held.set()
    first.join(JOIN_TIMEOUT)
    second.join(JOIN_TIMEOUT)
    assert outcomes.ready == ["pg", "pg"]
    assert world.barman.commands().count("switch-wal") == 2


def test_wal_another_servers_switch_streamed_is_archived_without_a_switch_of_its_own(
    world: World,
) -> None:
    world.barman.answer("check", ALL_OK)
    world.barman.answer("list-backups", backup_list(("B1", "DONE")))
    streaming = world.settings.barman_home / "pg" / "streaming"
    streaming.mkdir(parents=True)
    (streaming / "000000010000000000000002").write_bytes(b"")
    (streaming / "000000010000000000000003.partial").write_bytes(b"")
    world.barman.effects["archive-wal"] = lambda: write_archived_wal(world.settings, "pg")

    outcomes = bootstrap(world)

    assert outcomes.ready == ["pg"]
    assert "archive-wal" in world.barman.commands()
    assert "switch-wal" not in world.barman.commands()


def test_a_tls_failure_stops_the_start_at_once_naming_the_setting(
    environ: dict[str, str], tmp_path: Path
) -> None:
    """A server that comes up after the check at start with a certificate the settings refuse:
    the same failure at every attempt, so no waiting (PG_WAIT_TIMEOUT is for ever here)."""
    world = make_world(environ, tmp_path, PG_SSLMODE="verify-full", PG_HOST="localhost")
    attempts: list[int] = []

    def refused() -> None:
        attempts.append(1)
        raise psycopg.OperationalError(
            'connection to server at "localhost" (127.0.0.1), port 5432 failed: server '
            'certificate for "127.0.0.1" does not match host name "localhost"'
        )

    world.postgres.facts = refused  # type: ignore[method-assign,assignment]

    outcomes = bootstrap(world)

    assert len(attempts) == 1
    [(server, reason)] = outcomes.fatal
    assert server == "pg" and reason.startswith(
        'PG_HOST: server certificate for "127.0.0.1" does not match host name "localhost" (pg); '
    )


def test_without_tls_settings_the_same_failure_is_waited_out(world: World) -> None:
    attempts: list[int] = []

    def refused() -> None:
        attempts.append(1)
        if len(attempts) == 3:
            world.stop.set()
        raise psycopg.OperationalError("SSL error: certificate verify failed")

    world.postgres.facts = refused  # type: ignore[method-assign,assignment]

    outcomes = bootstrap(world)

    assert len(attempts) == 3 and outcomes.fatal == []
