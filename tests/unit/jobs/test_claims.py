"""The claim a sharded replica waits for and holds (jobs/claims), over a fake PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

from barman_supervisor.config.shard import advisory_lock_key
from barman_supervisor.errors import Interrupted
from barman_supervisor.jobs.claims import Claims
from barman_supervisor.postgres.claim import Claim
from tests.unit.jobs.conftest import World, make_world

HOLDER = (
    "backend 4242 from 127.0.0.1 (barman_supervisor shard 1 of 3) since 2026-12-04T10:00:00+0000"
)


def sharded(environ: dict[str, str], tmp_path: Path) -> World:
    return make_world(environ, tmp_path, SHARD_COUNT="1", SHARD_INDEX="0")


def claims(world: World) -> Claims:
    return Claims(world.settings, world.state, {world.server.name: world.postgres}, world.stop)


def test_unsharded_nothing_is_asked(world: World) -> None:
    handler = claims(world)
    handler.acquire(world.server)
    assert handler.held(world.server)
    assert world.postgres.claim_keys == [] and world.state.server("pg").claim is None


def test_a_held_claim_waits_in_handover_then_is_taken(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = sharded(environ, tmp_path)
    world.postgres.claim_answers = [Claim(False, HOLDER), Claim(True, None)]
    phases: list[str] = []
    original = world.state.set_phase

    def record(server: str, phase: str) -> None:
        phases.append(phase)
        original(server, phase)

    world.state.set_phase = record  # type: ignore[method-assign]
    claims(world).acquire(world.server)
    assert phases == ["handover"]
    assert world.postgres.claim_keys == [advisory_lock_key(world.server.slot_name)] * 2
    claim = world.state.server("pg").claim
    assert claim is not None and claim["held"] and claim["holder"] is None


def test_the_wait_ends_with_the_stop(environ: dict[str, str], tmp_path: Path) -> None:
    world = sharded(environ, tmp_path)
    world.postgres.claim_answers = [Claim(False, HOLDER)]
    threading.Timer(0.05, world.stop.set).start()
    try:
        claims(world).acquire(world.server)
    except Interrupted:
        pass
    else:
        raise AssertionError("acquire returned while another replica held the claim")
    claim = world.state.server("pg").claim
    assert claim is not None and not claim["held"] and claim["holder"] == HOLDER


def test_jobs_wait_while_the_claim_is_lost_or_postgres_is_down(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = sharded(environ, tmp_path)
    handler = claims(world)
    assert not handler.held(world.server), "nothing to hold before the start-up took it"
    assert world.postgres.claim_keys == []
    handler.acquire(world.server)
    assert handler.held(world.server)
    world.postgres.claim_answers = [Claim(False, HOLDER)]
    assert not handler.held(world.server)
    world.postgres.down = True
    assert not handler.held(world.server)
