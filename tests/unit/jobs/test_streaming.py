"""The streaming handler: shared cron runs, the watchdog's restarts, identity changes."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from barman_supervisor.jobs.streaming import Streaming
from tests.unit.jobs.conftest import World, make_world


def handler(world: World) -> Streaming:
    return Streaming(
        world.settings,
        world.barman,
        world.state,
        {world.server.name: world.postgres},
        world.recorder,
        world.stop,
    )


def running(world: World) -> None:
    world.state.set_phase("pg", "running")
    world.state.set_identity("pg", world.postgres.identity)


def test_a_caller_that_asked_before_the_last_run_started_shares_it(world: World) -> None:
    streaming = handler(world)
    asked = time.monotonic()
    streaming.cron()
    streaming.cron(requested_at=asked)
    streaming.cron()
    assert world.barman.commands() == ["cron", "cron"]
    runs, counts = world.state.global_runs()
    assert runs["cron"].ok and counts[("cron", True)] == 2


def test_the_watchdog_restarts_streaming_once_per_backoff(world: World) -> None:
    running(world)
    streaming = handler(world)

    streaming.monitor(world.server)
    streaming.monitor(world.server)

    assert world.barman.commands() == ["cron"]
    server = world.state.server("pg")
    assert server.receive_wal_running is False and server.postgres_error is None


def test_no_restart_while_postgres_is_down_and_the_error_is_recorded(world: World) -> None:
    running(world)
    world.postgres.down = True

    handler(world).monitor(world.server)

    assert world.barman.commands() == []
    assert world.state.server("pg").postgres_error == "connection refused"


def test_a_running_receiver_needs_no_restart(world: World) -> None:
    running(world)
    world.barman.receive_wal_running = True

    handler(world).monitor(world.server)

    assert world.barman.commands() == []
    assert world.state.server("pg").receive_wal_running is True


def test_a_new_timeline_holds_streaming_until_a_person_allows_a_reset(world: World) -> None:
    running(world)
    world.postgres.identity = dataclasses.replace(world.postgres.identity, timeline=2)

    handler(world).cron()

    assert "timeline changed from 1 to 2" in (world.state.server("pg").identity_problem or "")
    assert world.barman.commands() == ["cron"]
    # the watchdog leaves a server with an identity problem alone
    handler(world).monitor(world.server)
    assert world.barman.commands() == ["cron"]


def test_an_allowed_reset_resumes_streaming_from_the_new_timeline(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = make_world(environ, tmp_path, ALLOW_STREAMING_RESET="true")
    running(world)
    world.postgres.identity = dataclasses.replace(world.postgres.identity, timeline=2)

    handler(world).cron()

    assert world.barman.calls[:2] == [
        ("receive-wal", "--reset", "pg"),
        ("receive-wal", "--create-slot", "--if-not-exists", "pg"),
    ]
    server = world.state.server("pg")
    assert server.identity is not None and server.identity.timeline == 2
    assert server.identity_problem is None
