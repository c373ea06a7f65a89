"""Following a promotion: the handler over fake Barman and PostgreSQL, real files in a home."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.unit.jobs.conftest import World, make_world
from tests.unit.jobs.fakes import FACTS

SEGMENT = 16 * 1024 * 1024
# Timeline 1 ended at 0/3000100: timeline 2 starts inside segment 3.
HISTORY = "1\t0/3000100\tno recovery target specified\n"
WEBHOOK = "http://127.0.0.1:9/hook"


def promoted(tmp_path: Path, environ: dict[str, str], **extra: str) -> World:
    """A running server on timeline 1 whose primary now answers on timeline 2."""
    world = make_world(environ, tmp_path, ALERT_WEBHOOK_URL=WEBHOOK, **extra)
    world.state.set_phase("pg", "running")
    world.state.postgres_reached("pg", FACTS)
    world.state.set_identity("pg", world.postgres.identity_answer)
    world.postgres.identity_answer = dataclasses.replace(world.postgres.identity_answer, timeline=2)
    world.postgres.history_answer = HISTORY
    return world


def streaming_file(world: World, name: str, written: int) -> Path:
    """A file ``pg_receivewal`` left: ``written`` bytes of WAL, zeros after (it pre-fills)."""
    directory = world.barman.home.streaming_dir("pg")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(b"\x01" * written + b"\0" * (SEGMENT - written))
    return path


def cron(world: World) -> None:
    world.streaming().cron()


def test_a_promotion_after_full_replay_is_followed_with_nothing_moved(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = promoted(tmp_path, environ)
    partial = streaming_file(world, "000000010000000000000003.partial", 0x100)

    cron(world)

    server = world.state.server("pg")
    assert server.identity_problem is None
    assert server.identity is not None and server.identity.timeline == 2
    assert server.failover is not None
    assert (server.failover.from_timeline, server.failover.fork_lsn) == (1, "0/3000100")
    assert server.failover.old_timeline_only is None
    assert server.primary == ("db2", 5432)
    assert partial.exists()  # never moved nor deleted
    # pg_receivewal resumes at the fork's segment on timeline 2
    assert (partial.parent / "000000020000000000000003.partial").stat().st_size == 0
    assert world.postgres.slots_created == [world.server.slot_name]
    assert ("terminate-process", "pg", "receive-wal") in world.barman.calls
    assert world.owed == ["pg"]  # FAILOVER_BACKUP
    assert world.rechecked == ["pg"]  # the check of the switch is stale: asked again
    assert [payload["state"] for payload in world.notifier.posts] == ["failover_followed"]
    assert "timeline 1 → 2 at 0/3000100, primary now db2:5432" in world.notifier.posts[0]["summary"]


def test_wal_past_the_fork_is_set_aside_and_its_range_reported(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = promoted(tmp_path, environ, FAILOVER_BACKUP="false")
    streaming_file(world, "000000010000000000000003.partial", SEGMENT)  # the fork's, complete
    lost = streaming_file(world, "000000010000000000000004.partial", 0x2001)

    cron(world)

    record = world.state.server("pg").failover
    assert record is not None and record.old_timeline_only is not None
    start, end, kept_in = record.old_timeline_only
    assert (start, end) == ("0/3000100", "0/4002008")
    aside = world.barman.home.old_timeline_dir("pg")
    # the fork's segment holds old-timeline WAL past the fork too; it stays where it was
    assert kept_in == f"{world.barman.home.streaming_dir('pg')}, {aside}"
    assert not lost.exists() and (aside / lost.name).read_bytes()[:1] == b"\x01"
    assert world.owed == []
    assert "exists only on timeline 1" in world.notifier.posts[0]["summary"]


def test_a_timeline_not_descended_from_the_streamed_one_waits_for_a_person(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = promoted(tmp_path, environ)
    world.postgres.history_answer = "3\t0/9000000\tno recovery target specified\n"

    cron(world)

    server = world.state.server("pg")
    assert "timeline changed from 1 to 2" in (server.identity_problem or "")
    assert server.failover is None
    assert world.notifier.posts == []


def test_the_failover_backup_waits_for_streaming_on_the_new_timeline(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = promoted(tmp_path, environ)
    world.streaming_confirmed = False  # barman backup would refuse: receive-wal not running
    streaming_file(world, "000000010000000000000003.partial", 0x100)

    cron(world)

    assert world.state.server("pg").failover is not None
    assert world.owed == [] and world.rechecked == []


def test_a_promotion_seen_twice_is_followed_once(environ: dict[str, str], tmp_path: Path) -> None:
    world = promoted(tmp_path, environ)
    streaming_file(world, "000000010000000000000003.partial", 0x100)
    known = world.state.server("pg").identity
    assert known is not None
    failover = world.failover()

    # the monitor and cron both saw timeline 1 before either followed
    assert failover.follow(world.server, known, world.postgres.identity_answer)
    assert failover.follow(world.server, known, world.postgres.identity_answer)

    assert len(world.notifier.posts) == 1
    assert world.owed == ["pg"]


def test_a_second_promotion_seen_while_following_the_first_is_followed_too(
    environ: dict[str, str], tmp_path: Path
) -> None:
    world = promoted(tmp_path, environ)
    streaming_file(world, "000000010000000000000003.partial", 0x100)
    known = world.state.server("pg").identity
    assert known is not None
    third = dataclasses.replace(world.postgres.identity_answer, timeline=3)
    failover = world.failover()
    asked: list[int] = []

    def confirm(server: object) -> bool:
        """Waiting for streaming runs the identity check: timeline 3 is there already."""
        asked.append(len(asked))
        if len(asked) == 1:
            world.postgres.history_answer = HISTORY + "2\t0/4000000\tno recovery target\n"
            assert failover.follow(world.server, world.postgres.identity_answer, third)
        return True

    failover._confirm_streaming = confirm
    assert failover.follow(world.server, known, world.postgres.identity_answer)

    assert len(asked) == 2  # the second followed from inside the first, no deadlock
    record = world.state.server("pg").failover
    assert record is not None and (record.from_timeline, record.to_timeline) == (2, 3)
