"""Scenario 5, scale: N servers on one daemon, each its own PostgreSQL.

The realistic fleet: default intervals (``barman cron`` every 600 s, WAL archiving every 60 s,
``barman check`` every 300 s, probes every 10 s), a start-up backup of a small database for
every server, one daily schedule. Each server is its own cluster (copies of one loaded
template, so N servers cost one initdb): N slots on one PostgreSQL would stream every WAL
segment N times, and a backup of each server would then write N segments to every receiver, a
cost of that bench layout (50 servers: 40 GB of WAL) that no real fleet of N servers pays.
Measured per N:

* seconds from the daemon's start until every server reached ``running`` (start-up through,
  first backup included), and how many servers ``/readyz`` still calls ready at the end of the
  idle window (a fleet that came up must stay up);
* the idle cost once all are running, over a window: CPU of the daemon, of the short-lived
  children it reaped (``barman cron``, ``archive-wal``, ``check`` … when they are not forked)
  and of the long-running ones (``receive-wal``, ``pg_receivewal``, the fork server with the
  commands it forked and reaped) per kind, as CPU seconds per minute;
* which Barman commands the daemon ran in that window, per minute (cron's own detached
  ``archive-wal`` children are not the daemon's commands: cron starts one per server per run);
* RSS and PSS (shared pages counted once, from ``/proc/PID/smaps_rollup``) of the whole tree;
* the shared backup minute: the daemon restarted with one daily schedule due for all servers
  a minute later; how late each backup started and when the last was DONE
  (BACKUP_CONCURRENCY at its default).

Standalone for one N: ``python -m bench.scale --servers 10 [--idle 120]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.backups import load
from bench.common import BenchDaemon, event_time, start_daemon, stop_daemon, summary
from bench.procs import (
    MB,
    TreeSampler,
    barman_subcommand,
    command_name,
    descendants,
    read_proc,
    tree_memory,
)
from tests.support.postgres import Cluster, cluster

PGBENCH_SCALE = 2  # about 30 MB: "a small database"
DEFAULT_IDLE_S = 120.0
MINUTE = 60.0
# A hundred clusters on one machine: small shared memory each; the rest PostgreSQL's defaults.
FLEET_SETTINGS = {"shared_buffers": "16MB", "max_connections": "30"}
FLEET_STARTERS = 4
# The shared backup minute is the first whole minute at least this far after the restart.
SHARED_MINUTE_LEAD_S = 75.0


@contextmanager
def fleet(template: Cluster, count: int, root: Path) -> Iterator[list[Cluster]]:
    """``count`` running copies of the stopped ``template``, each on its own port."""
    home = root / f"fleet-{count}"
    home.mkdir()
    members: list[Cluster] = []

    def clone(index: int) -> Cluster:
        base = home / f"s{index}"
        base.mkdir()
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
        member = template.clone(base)
        member.start()
        return member

    try:
        with ThreadPoolExecutor(FLEET_STARTERS) as pool:
            members.extend(pool.map(clone, range(1, count + 1)))
        yield members
    finally:
        for member in members:
            if member.running():
                member.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)


def server_env(members: list[Cluster]) -> dict[str, str]:
    names = [f"s{i}" for i in range(1, len(members) + 1)]
    return {
        "BARMAN_SERVERS": ",".join(names),
        "BACKUP_SCHEDULE": "0 3 * * *",
        "BARMAN_CHECK_INTERVAL": "300",  # the default (start_daemon sets 3600 for other runs)
        **{
            f"PG_PORT__{name.upper()}": str(pg.port)
            for name, pg in zip(names, members, strict=True)
        },
    }


def ready_times(bench: BenchDaemon) -> dict[str, float]:
    return {
        str(e["server"]): event_time(e) for e in bench.events.find("startup_step", step="running")
    }


def ready_now(bench: BenchDaemon) -> int | None:
    """How many servers ``/readyz`` calls ready (no reason listed), or None when it did not
    answer: the daemon's own verdict, not the start-up log."""
    url = f"http://127.0.0.1:{bench.http_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as error:  # 503 while some server is not ready
        body = error.read()
    except OSError:
        return None
    servers = json.loads(body).get("servers", {})
    return sum(1 for reasons in servers.values() if not reasons)


def wait_all_ready(bench: BenchDaemon, count: int, deadline: float) -> dict[str, float]:
    while time.time() < deadline and len(ready_times(bench)) < count and bench.alive():
        time.sleep(0.5)
    return ready_times(bench)


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
    root: Path, template: Cluster, count: int, ready_budget: float, idle_s: float
) -> dict[str, object]:
    with fleet(template, count, root) as members:
        env = server_env(members)
        load_before = os.getloadavg()
        started = time.time()
        bench = start_daemon(root, f"scale-{count}", template, [], **env)
        try:
            with TreeSampler(bench.pid, interval=2.0) as sampler:
                ready = wait_all_ready(bench, count, started + ready_budget)
                all_ready_at = time.time()
                before = cpu_snapshot(bench.pid)
                while time.time() < all_ready_at + idle_s and bench.alive():
                    time.sleep(1)
                after = cpu_snapshot(bench.pid)
                memory = tree_memory(bench.pid)
                still_ready = ready_now(bench)
        finally:
            shutdown_s = stop_daemon(bench, None, timeout=240)
        backups = bench.events.find("backup_finished")
        result = {
            "servers": count,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "servers_ready": len(ready),
            "all_ready": len(ready) == count,
            "startup_all_ready_s": round(max(ready.values()) - started, 1) if ready else None,
            "ready_after_idle": still_ready,
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
        result["shared_backup_minute"] = shared_backup_minute(root, template, env, count)
        return result


def shared_backup_minute(
    root: Path, template: Cluster, env: dict[str, str], count: int
) -> dict[str, object]:
    """The same daemon restarted with one daily schedule due for every server at the same
    minute: how late each scheduled backup started, and when the last one was DONE."""
    restarted = time.time()
    due = datetime.fromtimestamp(restarted + SHARED_MINUTE_LEAD_S, UTC).replace(
        second=0, microsecond=0
    ) + timedelta(minutes=1)
    schedule = f"{due.minute} {due.hour} * * *"
    first_run = root / f"scale-{count}" / "daemon.out"
    first_run.rename(first_run.with_name("daemon.startup.out"))  # the restart writes its own
    bench = start_daemon(
        root, f"scale-{count}", template, [], **{**env, "BACKUP_SCHEDULE": schedule}
    )
    try:
        ready = wait_all_ready(bench, count, due.timestamp())
        deadline = due.timestamp() + MINUTE * max(5, count)
        while time.time() < deadline and bench.alive():
            finished = bench.events.find("backup_finished", trigger="schedule")
            if len(finished) >= count:
                break
            time.sleep(1)
    finally:
        stop_daemon(bench, None, timeout=240)
    starts = [
        event_time(e) - due.timestamp()
        for e in bench.events.find("backup_starting", trigger="schedule")
    ]
    finished = bench.events.find("backup_finished", trigger="schedule")
    done = [event_time(e) - due.timestamp() for e in finished if e.get("ok")]
    return {
        "restart_all_ready_s": round(max(ready.values()) - restarted, 1)
        if len(ready) == count
        else None,
        "backups_done": len(done),
        "backups_failed": len(finished) - len(done),
        "start_delay_s": summary(starts, 1),
        "all_done_s": round(max(done), 1) if len(done) == count else None,
    }


def run(root: Path, runs: Iterable[tuple[int, float, float]]) -> dict[str, object]:
    """``runs``: server count, seconds allowed until all are ready, idle window in seconds."""
    with cluster(**FLEET_SETTINGS) as template:
        template.init()
        loaded = load(template, PGBENCH_SCALE)
        template.stop()
        return {
            "database": loaded,
            **{
                f"servers_{n}": run_one(root, template, n, budget, idle_s)
                for n, budget, idle_s in runs
            },
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
        result = run(root, [(args.servers, args.budget, args.idle)])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
