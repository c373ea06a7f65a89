"""The job wrapper: outcomes recorded, crashes contained, shutdown told apart by type."""

from __future__ import annotations

import pytest

from barman_supervisor.errors import Interrupted, RunnerClosed, StartupFailed
from tests.unit.jobs.conftest import World


def test_a_crash_is_a_failed_run_not_a_dead_scheduler(world: World) -> None:
    with world.recorder.job("check", "pg"):
        raise KeyError("boom")
    run = world.state.server("pg").runs["check"]
    assert not run.ok and run.reason == "KeyError: 'boom'"


def test_shutdown_is_recognised_by_type(world: World) -> None:
    with world.recorder.job("backup", "pg"):
        raise RunnerClosed("backup")
    assert world.state.server("pg").runs["backup"].reason == "interrupted by shutdown"


def test_a_failure_during_shutdown_says_so(world: World) -> None:
    world.stop.set()
    with world.recorder.job("cron", None) as run:
        run.fail("exit code 1", 1)
    runs, _ = world.state.global_runs()
    assert runs["cron"].reason == "interrupted by shutdown (exit code 1)"


def test_a_refusal_goes_up_to_the_start_up(world: World) -> None:
    with pytest.raises(StartupFailed), world.recorder.job("bootstrap", "pg"):
        raise StartupFailed("wal_level is minimal")
    assert world.state.server("pg").runs["bootstrap"].reason == "wal_level is minimal"


def test_interrupted_is_a_supervisor_error_with_one_message() -> None:
    assert str(Interrupted()) == str(RunnerClosed("backup")) == "interrupted by shutdown"
