"""Archiving on demand: archive-wal runs only when a directory read finds WAL to move."""

from __future__ import annotations

import pytest

from barman_supervisor.config import ServerSettings
from barman_supervisor.jobs.archiving import Archiving, resume_file, wal_waiting
from tests.unit.jobs.conftest import World
from tests.unit.jobs.fakes import Answer

SEGMENT = "000000010000000000000003"


@pytest.mark.parametrize(
    ("streaming", "incoming", "waiting"),
    [
        ([], [], False),
        ([f"{SEGMENT}.partial"], [], False),
        ([f"{SEGMENT}.partial", ".tmp-file"], [], False),
        (["000000010000000000000002", f"{SEGMENT}.partial"], [], True),
        (["00000002.history", f"{SEGMENT}.partial"], [], True),
        # Barman holds the newest completed segment back until a .partial follows it.
        (["000000010000000000000002"], [], False),
        (["000000010000000000000001", "000000010000000000000002"], [], True),
        (["000000010000000000000002", "00000002.history.tmp"], [], False),
        ([f"{SEGMENT}.partial"], [SEGMENT], True),
        ([], [f"{SEGMENT}.partial"], True),
        ([], [".hidden"], False),
    ],
)
def test_only_completed_wal_or_delivered_files_wait(
    streaming: list[str], incoming: list[str], waiting: bool
) -> None:
    assert wal_waiting(streaming, incoming) is waiting


def make(world: World, probed: list[str]) -> Archiving:
    def record(server: ServerSettings) -> None:
        probed.append(server.name)

    return Archiving(world.barman, world.state, world.recorder, on_archived=record)


def streaming_dir(world: World) -> None:
    directory = world.settings.barman_home / "pg" / "streaming"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{SEGMENT}.partial").write_bytes(b"")


def test_nothing_runs_while_only_the_partial_segment_is_there(world: World) -> None:
    streaming_dir(world)
    world.state.set_phase("pg", "running")
    probed: list[str] = []
    make(world, probed).archive_if_waiting(world.server)
    assert world.barman.calls == [] and probed == []


def test_a_completed_segment_is_archived_and_probed(world: World) -> None:
    """Archived once the next segment's .partial exists."""
    streaming_dir(world)
    (world.settings.barman_home / "pg" / "streaming" / "000000010000000000000002").write_bytes(b"")
    world.state.set_phase("pg", "running")
    probed: list[str] = []
    make(world, probed).archive_if_waiting(world.server)
    assert world.barman.calls == [("archive-wal", "pg")]
    assert probed == ["pg"]
    assert world.state.server("pg").runs["archive_wal"].ok


def test_a_failed_archive_is_recorded_with_barmans_reason(world: World) -> None:
    streaming_dir(world)
    (world.settings.barman_home / "pg" / "streaming" / "000000010000000000000002").write_bytes(b"")
    world.state.set_phase("pg", "running")
    world.barman.answer("archive-wal", Answer(returncode=1, stderr="disk full"))
    make(world, []).archive_if_waiting(world.server)
    run = world.state.server("pg").runs["archive_wal"]
    assert not run.ok and run.reason == "disk full"


def test_nothing_runs_during_start_up(world: World) -> None:
    streaming_dir(world)
    (world.settings.barman_home / "pg" / "streaming" / "000000010000000000000002").write_bytes(b"")
    world.state.set_phase("pg", "first_wal")
    make(world, []).archive_if_waiting(world.server)
    assert world.barman.calls == []


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        # Barman holds the newest completed segment back without a .partial: one is added.
        (["000000010000000000000001", "000000010000000000000002"], "000000010000000000000003"),
        (["000000010000000000000001", ".tmpfile", "x.tmp"], "000000010000000000000002"),
        # A .partial already frees every completed segment; nothing completed, nothing to free.
        (["000000010000000000000001", "000000010000000000000002.partial"], None),
        ([], None),
        (["00000002.history"], None),
    ],
)
def test_the_shutdown_frees_the_newest_completed_segment(
    names: list[str], expected: str | None
) -> None:
    segment_size = 16 * 2**20
    assert resume_file(names, segment_size) == (None if expected is None else f"{expected}.partial")


def test_the_shutdown_flush_archives_the_held_back_segment(world: World) -> None:
    """After receive-wal stopped on a segment boundary: archived, the resume point kept."""
    directory = world.settings.barman_home / "pg" / "streaming"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SEGMENT).write_bytes(b"")
    world.state.set_phase("pg", "running")
    make(world, []).flush(world.server)
    assert world.barman.calls == [("archive-wal", "pg")]
    assert (directory / "000000010000000000000004.partial").exists()
