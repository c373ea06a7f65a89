"""Restore drill cost: how much longer than copying the files is "restored and proven readable"?

One cluster loaded with ``pgbench -i -s scale``, protected by the real daemon (first backup at
start). Then, alternating so that a drift in machine load favours neither side:

* drill: ``run_drill`` on the newest backup; ``restore_s`` is recover + start (archive recovery to
  the end of the WAL, promotion) + the default query (``count(*)`` of every user table), which is
  what a person waits for in an incident; ``duration_s`` adds verification, stop and clean-up;
* copy: ``cp -a`` of the same backup's data directory into the same scratch disk, the floor any
  restore has to pay.

``ratio`` is median drill ``restore_s`` / median copy time. Every copy is deleted after timing.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from barman_supervisor import log as logging_setup
from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import load_settings
from barman_supervisor.drill import DrillConfig, run_drill
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from bench.common import ratio, summary
from tests.support.daemon import Daemon
from tests.support.paths import PG_BIN
from tests.support.ports import free_port
from tests.support.postgres import cluster


def measure_drill(scale: int = 10, rounds: int = 3) -> dict[str, Any]:
    """Drill time vs plain copy time of the same backup (seconds, medians, and their ratio)."""
    logging_setup.configure("WARNING", "console", stream=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="bs-bench-drill-"))
    root.chmod(0o755)
    try:
        with cluster() as pg:
            pg.init()
            subprocess.run(
                [
                    str(PG_BIN / "pgbench"),
                    *("-i", "-q", "-s", str(scale)),
                    *("-h", str(pg.base), "-p", str(pg.port), "-U", "postgres", "postgres"),
                ],
                check=True,
                capture_output=True,
                timeout=900,
            )
            pg.sql("CHECKPOINT")
            workdir = root / "daemon"
            workdir.mkdir()
            daemon = Daemon(
                workdir,
                pg,
                BACKUP_IMMEDIATE_CHECKPOINT="true",
                HTTP_BIND="127.0.0.1",
                HTTP_PORT=str(free_port()),
            ).start()
            try:
                finished = daemon.wait_for("backup_finished", timeout=900, server="pg")
                if not finished.get("ok"):
                    raise RuntimeError(f"backup failed: {finished.get('reason')}")
                return _rounds(daemon, root / "scratch", rounds, scale)
            finally:
                daemon.signal(signal.SIGTERM)
                try:
                    daemon.wait(120)
                except subprocess.TimeoutExpired:
                    daemon.kill()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _rounds(daemon: Daemon, scratch: Path, rounds: int, scale: int) -> dict[str, Any]:
    scratch.mkdir(mode=0o755)
    settings = load_settings(daemon.env)
    runner = Runner(Pid1(), settings.child_env)
    barman = Barman(settings, runner)
    backup_id = str(next(b for b in daemon.backups() if b["status"] == "DONE")["backup_id"])
    source = daemon.home / "pg" / "base" / backup_id / "data"
    drills: list[dict[str, Any]] = []
    copies: list[float] = []

    def drill() -> None:
        result = run_drill(
            settings,
            settings.servers[0],
            barman,
            runner,
            dataclasses.replace(
                DrillConfig.from_settings(settings, settings.servers[0]), scratch_root=scratch
            ),
            threading.Event(),
        )
        if not result.ok:
            raise RuntimeError(f"drill failed: {result.reason}")
        drills.append(result.as_dict())

    def copy() -> None:
        target = scratch / "copy"
        started = time.monotonic()
        subprocess.run(["cp", "-a", str(source), str(target)], check=True, timeout=900)
        copies.append(time.monotonic() - started)
        shutil.rmtree(target)

    for number in range(rounds):
        for step in (drill, copy) if number % 2 == 0 else (copy, drill):
            step()
    restore_s = [float(d["restore_s"]) for d in drills]
    restore_summary = summary(restore_s, 3)
    copy_summary = summary(copies, 3)
    return {
        "pgbench_scale": scale,
        "backup_mb": round(sum(f.stat().st_size for f in source.rglob("*") if f.is_file()) / 2**20),
        "rows": drills[-1]["rows"],
        "drill_restore_s": restore_summary,
        "drill_total_s": summary([float(d["duration_s"]) for d in drills], 3),
        "drill_steps_median_s": {
            step: summary([float(d["timings"].get(step, 0.0)) for d in drills], 3)["median"]
            for step in ("verify_s", "recover_s", "start_s", "query_s", "stop_s", "cleanup_s")
        },
        "copy_s": copy_summary,
        "ratio_drill_to_copy": ratio(restore_summary["median"], copy_summary["median"]),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure_drill(*(int(a) for a in sys.argv[1:3])), indent=2))
