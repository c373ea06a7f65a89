"""The streaming handler: shared cron runs, the watchdog's restarts, identity changes."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from barman_supervisor.jobs.streaming import Streaming
from tests.unit.jobs.conftest import World, make_world


def handler(world: World) -> Streaming:
    return world.streaming()


def running(world: World) -> None:
    world.state.set_phase("pg", "running")
    world.state.set_identity("pg", world.postgres.identity_answer)


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
    world.postgres.identity_answer = dataclasses.replace(world.postgres.identity_answer, timeline=2)

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
    world.postgres.identity_answer = dataclasses.replace(world.postgres.identity_answer, timeline=2)

    handler(world).cron()

    assert world.barman.calls[:1] == [("receive-wal", "--reset", "pg")]
    assert world.postgres.slots_created == [world.server.slot_name]
    server = world.state.server("pg")
    assert server.identity is not None and server.identity.timeline == 2
    assert server.identity_problem is None


def test_streaming_confirmed_at_start_is_what_the_probes_show(world: World) -> None:
    world.barman.receive_wal_running = True

    assert handler(world).confirm_started(world.server)

    assert world.state.server("pg").receive_wal_running is True
    assert "cron" not in world.barman.commands()  # an earlier cron started this receiver


def test_start_up_runs_cron_when_the_receiver_is_not_running_yet(world: World) -> None:
    world.barman.receive_wal_running = False

    handler(world).confirm_started(world.server)

    assert world.barman.commands()[0] == "cron"


def test_a_recreated_slot_past_barmans_wal_is_a_gap_and_owes_a_backup(world: World) -> None:
    running(world)
    world.state.postgres_reached("pg", world.postgres.facts_answer)
    world.barman.receive_wal_running = True
    streaming_dir = world.settings.barman_home / "pg" / "streaming"
    streaming_dir.mkdir(parents=True)
    (streaming_dir / "000000010000000000000003.partial").write_bytes(b"")
    # a new slot starts in segment 6: segments 4 and 5 were never streamed
    world.postgres.slot_state = dataclasses.replace(
        world.postgres.slot_state, restart_lsn="0/6000148"
    )

    handler(world).monitor(world.server)
    handler(world).monitor(world.server)

    gap = world.state.server("pg").wal_gap
    assert gap is not None
    assert (gap.first_missing, gap.last_missing) == (
        "000000010000000000000004",
        "000000010000000000000005",
    )
    assert world.owed == ["pg"]  # once per gap


def test_a_slot_in_barmans_newest_segment_is_no_gap(world: World) -> None:
    running(world)
    world.state.postgres_reached("pg", world.postgres.facts_answer)
    streaming_dir = world.settings.barman_home / "pg" / "streaming"
    streaming_dir.mkdir(parents=True)
    (streaming_dir / "000000010000000000000003.partial").write_bytes(b"")
    world.postgres.slot_state = dataclasses.replace(
        world.postgres.slot_state, restart_lsn="0/3000148"
    )

    handler(world).monitor(world.server)

    assert world.state.server("pg").wal_gap is None and world.owed == []


def test_a_refused_login_is_recorded_while_the_kept_connection_answers_and_cleared_at_once(
    world: World,
) -> None:
    running(world)
    world.barman.receive_wal_running = True  # no restart in the way
    refused = 'new login refused: password authentication failed for user "barman"; ...'
    world.postgres.login_refused = refused
    streaming = handler(world)

    streaming.monitor(world.server)
    server = world.state.server("pg")
    assert server.login_problem == refused and server.postgres_error is None

    world.postgres.login_refused = None
    streaming.monitor(world.server)
    assert world.state.server("pg").login_problem is None


def test_no_login_is_tried_while_postgres_is_unreachable(world: World) -> None:
    running(world)
    world.postgres.login_refused = "new login refused: whatever"
    world.postgres.down = True

    handler(world).monitor(world.server)

    server = world.state.server("pg")
    assert server.login_problem is None and server.postgres_error == "connection refused"


def test_a_server_that_takes_no_connection_just_now_is_unreachable_not_a_refused_login(
    world: World,
) -> None:
    """A restart between the kept connection's answer and the new login: the postgres
    condition (with its grace), not an immediate login alert."""
    running(world)
    world.barman.receive_wal_running = True
    world.postgres.login_refused = "new login refused: the database system is shutting down; x"

    handler(world).monitor(world.server)

    server = world.state.server("pg")
    assert server.login_problem is None
    assert server.postgres_error == world.postgres.login_refused
