"""Scenario 5, scale: 1, 10 and 50 servers on one daemon, every one a slot on the same cluster.

Each server gets ``BACKUP_SCHEDULE='* * * * *'`` (immediate checkpoint, so what is measured is
scheduling, not checkpoint pacing), no start-up backup, and ``barman cron`` every 10 s. A run
lasts until every server has finished start-up and the first scheduled minute after that has
fired and its backups finished, or until its time budget is spent (the result says which).

* on time: a scheduled backup's ``backup_starting`` minus the run time the scheduler announced
  for that job (``job_scheduled`` / ``job_next_run``).
* CPU per cron cycle: the tree's CPU rate over the seconds when no start-up and no backup was
  running, times the cron interval (so it includes the daemon's own idle share).
"""

from __future__ import annotations

import itertools
import math
import time
from datetime import datetime
from pathlib import Path

from tests.bench.common import BenchDaemon, event_time, start_daemon, stop_daemon, summary
from tests.bench.procs import MB, TreeSample, TreeSampler, footprint
from tests.integration.harness import Cluster

CRON_INTERVAL = 10
LATE_AFTER_S = 5.0  # a backup starting later than this after its minute is "late"


def server_env(count: int, run: str) -> tuple[dict[str, str], list[str]]:
    names = [f"s{i}" for i in range(1, count + 1)]
    slots = [f"{run}_{name}" for name in names]
    env = {
        "BARMAN_SERVERS": ",".join(names),
        "BACKUP_SCHEDULE": "* * * * *",
        "BACKUP_ON_START": "false",
        "BACKUP_IMMEDIATE_CHECKPOINT": "true",
        "BARMAN_CRON_INTERVAL": str(CRON_INTERVAL),
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


def announced_runs(bench: BenchDaemon) -> dict[str, list[float]]:
    """Server -> every run time the scheduler announced for its backup job."""
    runs: dict[str, list[float]] = {}
    for kind in ("job_scheduled", "job_next_run"):
        for e in bench.events.find(kind):
            job = str(e.get("job_id", ""))
            if job.startswith("backup:") and e.get("next_run"):
                moment = datetime.fromisoformat(str(e["next_run"])).timestamp()
                runs.setdefault(job.split(":", 1)[1], []).append(moment)
    return runs


def lateness(bench: BenchDaemon) -> list[float]:
    """Seconds between each scheduled backup's announced run time and its start."""
    runs = announced_runs(bench)
    late = []
    for e in bench.events.find("backup_starting", trigger="schedule"):
        started = event_time(e)
        due = [t for t in runs.get(str(e["server"]), []) if t <= started + 0.5]
        if due:
            late.append(started - max(due))
    return late


def busy_intervals(bench: BenchDaemon, started: float) -> list[tuple[float, float]]:
    """Start-up and backups: what is not idle."""
    ready = ready_times(bench)
    spans = [(started, max(ready.values()) if ready else math.inf)]
    finished = {str(e["server"]): event_time(e) for e in bench.events.find("backup_finished")}
    for e in bench.events.find("backup_starting"):
        spans.append((event_time(e), finished.get(str(e["server"]), math.inf)))
    return spans


def idle_cpu_rate(
    samples: list[TreeSample], busy: list[tuple[float, float]]
) -> tuple[float, float]:
    """(CPU seconds per second, idle seconds seen) over sample pairs clear of every busy span."""
    cpu = seconds = 0.0
    for before, after in itertools.pairwise(samples):
        if all(after.at + 1 < start or before.at - 1 > end for start, end in busy):
            cpu += after.tree_cpu_s - before.tree_cpu_s
            seconds += after.at - before.at
    return (cpu / seconds if seconds else 0.0), seconds


def observe_until(bench: BenchDaemon, count: int, deadline: float) -> dict[str, object]:
    """Wait for all servers ready, then for the next scheduled minute's backups to finish."""
    while time.time() < deadline and len(ready_times(bench)) < count and bench.alive():
        time.sleep(0.5)
    ready = ready_times(bench)
    all_ready = len(ready) == count
    minute = (math.floor(max(ready.values()) / 60) + 1) * 60 if ready else math.inf
    while time.time() < deadline and bench.alive():
        started = [e for e in bench.events.find("backup_starting") if event_time(e) >= minute]
        done = [e for e in bench.events.find("backup_finished") if event_time(e) >= minute]
        if len(started) >= len(ready) and len(done) >= len(started):
            break
        time.sleep(0.5)
    return {"all_ready": all_ready, "observed_minute": minute, "complete": time.time() < deadline}


def run_one(root: Path, pg: Cluster, count: int, budget: float) -> dict[str, object]:
    env, slots = server_env(count, f"scale{count}")
    started = time.time()
    bench = start_daemon(root, f"scale-{count}", pg, slots, **env)
    with TreeSampler(bench.pid) as sampler:
        progress = observe_until(bench, count, started + budget)
    shutdown_s = stop_daemon(bench, pg, timeout=240)
    return analyse(bench, sampler.samples, started, count, progress, shutdown_s)


def analyse(
    bench: BenchDaemon,
    samples: list[TreeSample],
    started: float,
    count: int,
    progress: dict[str, object],
    shutdown_s: float,
) -> dict[str, object]:
    ready = ready_times(bench)
    late = lateness(bench)
    rate, idle_seconds = idle_cpu_rate(samples, busy_intervals(bench, started))
    cron_runs = bench.events.find("job_finished", job="cron")
    failed_backups = [e for e in bench.events.find("backup_finished") if not e.get("ok")]
    return {
        "servers": count,
        **progress,
        "servers_ready": len(ready),
        "startup_all_ready_s": round(max(ready.values()) - started, 1) if ready else None,
        "scheduled_backups_started": len(late),
        "scheduled_backups_late": sum(1 for s in late if s > LATE_AFTER_S),
        "schedule_lateness_s": summary(late, 3),
        "backups_failed": len(failed_backups),
        "backups_skipped": len(bench.events.find("backup_skipped")),
        "jobs_missed": len(bench.events.find("job_missed")),
        "backup_duration_s": summary(
            (float(e["duration_s"]) for e in bench.events.find("backup_finished")), 3
        ),
        "cron_job_duration_s": summary((float(e["duration_s"]) for e in cron_runs), 3),
        "idle_seconds_measured": round(idle_seconds, 1),
        "idle_tree_cpu_per_cron_cycle_s": round(rate * CRON_INTERVAL, 3) if idle_seconds else None,
        "whole_run": footprint(samples),
        "daemon_rss_max_mb": round(max(s.self_rss for s in samples) / MB, 1) if samples else None,
        "tree_rss_max_mb": round(max(s.tree_rss for s in samples) / MB, 1) if samples else None,
        "shutdown_s": shutdown_s,
    }


def run(root: Path, pg: Cluster, budgets: dict[int, float]) -> dict[str, object]:
    """``budgets``: server count -> seconds allowed for that run (shutdown not included)."""
    return {f"servers_{n}": run_one(root, pg, n, budget) for n, budget in budgets.items()}
