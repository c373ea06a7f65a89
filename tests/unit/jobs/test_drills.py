"""The drill handler: a drill's result reaches the state; shutdown waits for a running one."""

from __future__ import annotations

import threading

from barman_supervisor.jobs.drills import Drills
from barman_supervisor.process.runner import Runner
from tests.unit.jobs.conftest import World
from tests.unit.jobs.fakes import backup_list


def handler(world: World) -> Drills:
    runner = Runner.__new__(Runner)  # never asked to run: the fake Barman answers everything
    return Drills(world.settings, world.barman, runner, world.state, world.recorder, world.stop)


def test_a_drill_without_a_done_backup_is_a_failed_drill(world: World) -> None:
    world.barman.answer("list-backups", backup_list(("B1", "FAILED")))

    handler(world).drill(world.server)

    server = world.state.server("pg")
    assert server.last_drill["ok"] is False
    assert server.last_drill["reason"] == "no DONE backup to restore"
    assert server.runs["drill"].reason == "no DONE backup to restore"


def test_shutdown_waits_for_a_running_drill(world: World) -> None:
    world.barman.hold["list-backups"] = release = threading.Event()
    drills = handler(world)
    running = threading.Thread(target=drills.drill, args=(world.server,))
    running.start()
    try:
        assert drills.wait(timeout=0.2) is False
    finally:
        release.set()
        running.join(10)
    assert drills.wait(timeout=1.0) is True
