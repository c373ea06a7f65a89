"""Scenario 3, backup cost: one full backup of the same cluster three ways, at two data sizes.

* daemon: a fresh daemon's first backup (``BACKUP_ON_START``); the ``backup_finished`` event's
  ``duration_s`` is the wall time of the ``barman backup`` it ran.
* barman: ``barman backup --immediate-checkpoint --wait`` with the hand-written configuration.
* pg_basebackup: with the flags Barman passes (``-X none -c fast``, plain format).

All three use an immediate checkpoint, each preceded by a CHECKPOINT so none pays for another's
dirty buffers. Rounds alternate the order, so a drift in machine load does not favour one side.
Every copy is deleted right after it is timed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from bench.baseline import SERVER, Baseline
from bench.common import ratio, start_daemon, stop_daemon, summary
from tests.support.paths import PG_BIN
from tests.support.postgres import Cluster

METHODS = ("daemon", "barman", "pg_basebackup")


def load(pg: Cluster, scale: int) -> dict[str, float]:
    """``pgbench -i -s scale``: 10 is about 160 MB, 50 about 750 MB."""
    started = time.monotonic()
    subprocess.run(
        [
            str(PG_BIN / "pgbench"),
            *("-i", "-q", "-s", str(scale)),
            *("-h", str(pg.base), "-p", str(pg.port), "-U", "postgres", "postgres"),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    pg.sql("CHECKPOINT")
    size = int(pg.sql("SELECT sum(pg_database_size(oid)) FROM pg_database"))
    return {"load_s": round(time.monotonic() - started, 1), "cluster_mb": round(size / 2**20, 1)}


def via_daemon(root: Path, pg: Cluster, tag: str) -> float:
    slot = f"bench_cost_{tag}"
    bench = start_daemon(root, f"cost-{tag}", pg, [slot], BARMAN_SLOT_NAME=slot)
    try:
        finished = bench.wait("backup_finished", 900)
    finally:
        stop_daemon(bench, pg)
        shutil.rmtree(bench.daemon.workdir, ignore_errors=True)
    if not finished.get("ok"):
        raise RuntimeError(f"daemon backup failed: {finished.get('reason')}")
    return float(finished["duration_s"])


def via_barman(baseline: Baseline) -> float:
    result = baseline.barman("backup", "--immediate-checkpoint", "--wait", SERVER, timeout=900)
    if not result.ok:
        raise RuntimeError(f"barman backup exited {result.returncode}")
    baseline.barman("delete", SERVER, "latest", timeout=300)
    return result.seconds


def via_pg_basebackup(root: Path, pg: Cluster, baseline: Baseline) -> float:
    target = root / "pg_basebackup"
    shutil.rmtree(target, ignore_errors=True)
    started = time.monotonic()
    subprocess.run(
        [
            str(PG_BIN / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(pg.port), "-U", "streaming_barman", "--no-password"),
            *("-D", str(target), "-X", "none", "-c", "fast"),
        ],
        check=True,
        capture_output=True,
        timeout=900,
        env=baseline.env(),
    )
    seconds = time.monotonic() - started
    shutil.rmtree(target, ignore_errors=True)
    return round(seconds, 3)


def one_backup(method: str, root: Path, pg: Cluster, baseline: Baseline, tag: str) -> float:
    """Wall seconds of one backup by ``method``, after a CHECKPOINT."""
    pg.sql("CHECKPOINT")
    if method == "daemon":
        return via_daemon(root, pg, tag)
    if method == "barman":
        return via_barman(baseline)
    return via_pg_basebackup(root, pg, baseline)


def run(
    root: Path, pg: Cluster, baseline: Baseline, scales: tuple[int, ...], rounds: int
) -> dict[str, object]:
    results: dict[str, object] = {}
    for scale in scales:
        loaded = load(pg, scale)
        times: dict[str, list[float]] = {name: [] for name in METHODS}
        for round_ in range(rounds):
            order = METHODS if round_ % 2 == 0 else tuple(reversed(METHODS))
            for name in order:
                times[name].append(one_backup(name, root, pg, baseline, f"s{scale}_r{round_}"))
        medians = {name: summary(values, 3)["median"] for name, values in times.items()}
        results[f"scale_{scale}"] = {
            **loaded,
            "seconds": {name: summary(values, 3) for name, values in times.items()},
            "daemon_over_barman": ratio(medians["daemon"], medians["barman"]),
            "daemon_over_pg_basebackup": ratio(medians["daemon"], medians["pg_basebackup"]),
            "barman_over_pg_basebackup": ratio(medians["barman"], medians["pg_basebackup"]),
        }
    return results
