"""Scenario 5, scale: N servers on one daemon, every one a slot on the same PostgreSQL.

The realistic fleet: default intervals (``barman cron`` every 600 s, WAL archiving every 60 s,
``barman check`` every 300 s, probes every 10 s), a start-up backup of a small database for
every server, one daily schedule. Measured per N:

* seconds from the daemon's start until every server reached ``running`` (start-up through,
  first backup included);
* the idle cost once all are running, over a window: CPU of the daemon, of the short-lived
  children it reaped (``barman cron``, ``archive-wal``, ``check`` … when they are not forked)
  and of the long-running ones (``receive-wal``, ``pg_receivewal``, the fork server with the
  commands it forked and reaped) per kind, as CPU seconds per minute;
* which Barman commands the daemon ran in that window, per minute (cron's own detached
  ``archive-wal`` children are not the daemon's commands: cron starts one per server per run);
* RSS and PSS (shared pages counted once, from ``/proc/PID/smaps_rollup``) of the whole tree.

Standalone for one N: ``python -m tests.bench.scale --servers 10 [--idle 120]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.bench.backups import load
from tests.bench.common import BenchDaemon, event_time, start_daemon, stop_daemon
from tests.bench.procs import (
    MB,
    TreeSampler,
    barman_subcommand,
    command_name,
    descendants,
    read_proc,
    tree_memory,
)
from tests.integration.harness import Cluster, cluster

PGBENCH_SCALE = 2  # about 30 MB: "a small database"
DEFAULT_IDLE_S = 120.0
MINUTE = 60.0


def server_env(count: int, run: str) -> tuple[dict[str, str], list[str]]:
    names = [f"s{i}" for i in range(1, count + 1)]
    slots = [f"{run}_{name}" for name in names]
    env = {
        "BARMAN_SERVERS": ",".join(names),
        "BACKUP_SCHEDULE": "0 3 * * *",
        "BARMAN_CHECK_INTERVAL": "300",  # the default (start_daemon sets 3600 for other runs)
        **{
            f"BARMAN_SLOT_NAME__{name.upper()}": slot
            for name, slot in zip(names, slots, strict=True)
        },
    }
    return env, slots


def ready_times(bench: BenchDaemon) -> dict[str, float]:
    return {
        str(e["server"]): event_time(e) for e in bench.events.find("startup_step", step="running")
    }


@dataclass(frozen=True)
class CpuSnapshot:
    """The daemon's own and reaped CPU, and every live descendant's own CPU by pid."""

    at: float
    own_s: float
    reaped_s: float
    live: dict[int, tuple[str, float]]


def cpu_snapshot(root: int) -> CpuSnapshot | None:
    me = read_proc(root)
    if me is None:
        return None
    live = {p.pid: (command_name(p.pid), p.cpu_s + p.reaped_cpu_s) for p in descendants(root)}
    return CpuSnapshot(time.time(), me.cpu_s, me.reaped_cpu_s, live)


def idle_cpu(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, object]:
    """CPU seconds per minute between two snapshots: the daemon, what it reaped, and the
    long-running children alive at both ends, per kind. A child that started and ended inside
    the window is in ``reaped`` (the daemon is their subreaper)."""
    minutes = (after.at - before.at) / MINUTE
    by_kind: dict[str, float] = {}
    for pid, (kind, cpu) in after.live.items():
        by_kind[kind] = (
            by_kind.get(kind, 0.0) + cpu - (before.live[pid][1] if pid in before.live else 0.0)
        )
    own = after.own_s - before.own_s
    reaped = after.reaped_s - before.reaped_s
    live = sum(by_kind.values())
    return {
        "window_s": round(after.at - before.at, 1),
        "tree_cpu_s_per_min": round((own + reaped + live) / minutes, 2),
        "daemon_cpu_s_per_min": round(own / minutes, 2),
        "reaped_children_cpu_s_per_min": round(reaped / minutes, 2),
        "live_children_cpu_s_per_min": {k: round(v / minutes, 2) for k, v in by_kind.items()},
        "tree_cpu_s_per_hour": round(60 * (own + reaped + live) / minutes, 0),
    }


def commands_per_minute(bench: BenchDaemon, start: float, end: float) -> dict[str, float]:
    """Barman commands the daemon ran (``command_finished``) between two moments, per minute."""
    counts: Counter[str] = Counter()
    for e in bench.events.find("command_finished"):
        if start <= event_time(e) <= end:
            counts[barman_subcommand(str(e.get("command", "")).split()[1:])] += 1
    minutes = (end - start) / MINUTE
    return {k: round(v / minutes, 2) for k, v in sorted(counts.items())}


def run_one(
    root: Path, pg: Cluster, count: int, ready_budget: float, idle_s: float
) -> dict[str, object]:
    env, slots = server_env(count, f"scale{count}")
    load_before = os.getloadavg()
    started = time.time()
    bench = start_daemon(root, f"scale-{count}", pg, slots, **env)
    try:
        with TreeSampler(bench.pid, interval=2.0) as sampler:
            while (
                time.time() < started + ready_budget
                and len(ready_times(bench)) < count
                and bench.alive()
            ):
                time.sleep(0.5)
            ready = ready_times(bench)
            all_ready_at = time.time()
            before = cpu_snapshot(bench.pid)
            while time.time() < all_ready_at + idle_s and bench.alive():
                time.sleep(1)
            after = cpu_snapshot(bench.pid)
            memory = tree_memory(bench.pid)
    finally:
        shutdown_s = stop_daemon(bench, pg, timeout=240)
    backups = bench.events.find("backup_finished")
    return {
        "servers": count,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "servers_ready": len(ready),
        "all_ready": len(ready) == count,
        "startup_all_ready_s": round(max(ready.values()) - started, 1) if ready else None,
        "first_backups_done": sum(1 for e in backups if e.get("ok")),
        "backups_failed": sum(1 for e in backups if not e.get("ok")),
        "idle": idle_cpu(before, after) if before and after else None,
        "idle_commands_per_min": commands_per_minute(
            bench, all_ready_at, after.at if after else all_ready_at
        ),
        "memory_idle": memory,
        "tree_rss_max_mb": round(max(s.tree_rss for s in sampler.samples) / MB, 1)
        if sampler.samples
        else None,
        "processes_max": max((s.processes for s in sampler.samples), default=None),
        "shutdown_s": shutdown_s,
    }


# Up to 100 slots and their walsenders on one cluster.
CLUSTER_SETTINGS = {
    "max_wal_senders": "120",
    "max_replication_slots": "120",
    "max_connections": "400",
}


def run(
    root: Path, pg: Cluster, budgets: dict[int, float], idle_s: float = DEFAULT_IDLE_S
) -> dict[str, object]:
    """``budgets``: server count -> seconds allowed until all are ready."""
    loaded = load(pg, PGBENCH_SCALE)
    return {
        "database": loaded,
        **{f"servers_{n}": run_one(root, pg, n, budget, idle_s) for n, budget in budgets.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the realistic scale scenario for one N")
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--idle", type=float, default=DEFAULT_IDLE_S, help="idle window, s")
    parser.add_argument("--budget", type=float, default=900, help="seconds until all ready")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bs-scale-"))
    root.chmod(0o755)
    try:
        with cluster(**CLUSTER_SETTINGS) as pg:
            pg.init()
            result = run(root, pg, {args.servers: args.budget}, args.idle)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
