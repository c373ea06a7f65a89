"""Scenario 1, time to protected: from PostgreSQL accepting connections to a first DONE backup.

Both sides are started before PostgreSQL (the daemon retries; the baseline's cron loop is just
there, as system cron is), and the clock starts when ``pg_ctl start -w`` returns.

Milestones, all relative to that moment:
  slot_created, streaming_running, first_wal_archived, check_ok, backup_done.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.baseline import SERVER, Baseline, Command
from bench.common import BenchDaemon, Event, event_time, slot_active, start_daemon
from tests.support.postgres import Cluster

MILESTONES = ("slot_created", "streaming_running", "first_wal_archived", "check_ok", "backup_done")
Milestones = dict[str, float | None]


def relative(times: dict[str, float | None], origin: float) -> Milestones:
    return {name: None if t is None else round(t - origin, 3) for name, t in times.items()}


def _at(event: Event | None) -> float | None:
    return None if event is None else event_time(event)


def daemon_milestones(bench: BenchDaemon) -> dict[str, float | None]:
    """From the daemon's events: the 'streaming' step starts right after the slot exists."""
    events = bench.events
    return {
        "slot_created": _at(events.first("startup_step", step="streaming")),
        "streaming_running": _at(events.first("streaming_running")),
        "first_wal_archived": _at(events.first("first_wal_archived")),
        "check_ok": _at(events.first("job_finished", job="check", ok=True)),
        "backup_done": _at(events.first("backup_finished", ok=True)),
    }


def run_daemon(root: Path, pg: Cluster) -> tuple[BenchDaemon, dict[str, object]]:
    """The daemon with its defaults (cron every 60 s, first backup on start).

    It keeps running afterwards: the freshness scenario uses it as the 60-s daemon.
    """
    if pg.running():
        pg.stop()
    bench = start_daemon(root, "daemon60", pg, ["bench_d60"], BARMAN_SLOT_NAME="bench_d60")
    bench.wait("retrying", 60, server="pg")
    pg.start()
    ready = time.time()
    bench.wait("job_finished", 300, job="bootstrap", server="pg")
    times = daemon_milestones(bench)
    reached = _at(bench.events.first("postgres_reached"))
    return bench, {
        "milestones_s": relative(times, ready),
        "noticed_postgres_s": None if reached is None else round(reached - ready, 3),
        "bootstrap_ok": bool(bench.events.first("job_finished", job="bootstrap", ok=True)),
    }


class SlotWatcher:
    """When the baseline's slot first turns active (streaming running), polled every 0.2 s."""

    def __init__(self, pg: Cluster, slot: str, timeout: float) -> None:
        self.seen: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, args=(pg, slot, timeout), name="slot-watch", daemon=True
        )
        self._thread.start()

    def _watch(self, pg: Cluster, slot: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if slot_active(pg, slot):
                    self.seen = time.time()
                    return
            except subprocess.CalledProcessError:
                self.seen = None  # PostgreSQL briefly refusing is "not yet"
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def until_ok(command: Callable[[], Command], budget: float) -> tuple[Command, int]:
    """An operator re-running a command that failed (switch-wal times out after 30 s while
    streaming has not started yet), until it succeeds or ``budget`` seconds are spent."""
    deadline = time.monotonic() + budget
    attempts = 1
    result = command()
    while not result.ok and time.monotonic() < deadline:
        time.sleep(1)
        attempts += 1
        result = command()
    return result, attempts


def run_baseline(baseline: Baseline, pg: Cluster) -> dict[str, object]:
    """Cron loop + the documented manual steps, each typed the moment the previous returns."""
    if pg.running():
        pg.stop()
    baseline.start_cron()
    pg.start()
    ready = time.time()
    watcher = SlotWatcher(pg, baseline.slot, timeout=240)
    slot = baseline.barman("receive-wal", "--create-slot", SERVER, timeout=60)
    switch, switch_attempts = until_ok(
        lambda: baseline.barman("switch-wal", "--force", "--archive", SERVER, timeout=90), 150
    )
    check, check_attempts = until_ok(lambda: baseline.barman("check", SERVER, timeout=90), 60)
    backup = baseline.barman("backup", "--wait", SERVER, timeout=400)
    watcher.stop()
    done = backup.ok and any(b.get("status") == "DONE" for b in baseline.backups())
    times = {
        "slot_created": slot.ended if slot.ok else None,
        "streaming_running": watcher.seen,
        "first_wal_archived": switch.ended if switch.ok else None,
        "check_ok": check.ended if check.ok else None,
        "backup_done": backup.ended if done else None,
    }
    first_tick = baseline.first_tick_after(ready)
    return {
        "milestones_s": relative(times, ready),
        "cron_wait_s": None if first_tick is None else round(first_tick - ready, 3),
        "switch_wal_attempts": switch_attempts,
        "check_attempts": check_attempts,
        "backup_command_s": backup.seconds,
        "commands": [
            "barman receive-wal --create-slot pg",
            "barman switch-wal --force --archive pg  (re-run until exit 0)",
            "barman check pg  (re-run until exit 0)",
            "barman backup --wait pg",
        ],
    }


def compare(daemon: dict[str, object], baseline: dict[str, object]) -> dict[str, object]:
    """Baseline / daemon per milestone; the baseline's share spent waiting for cron is given
    separately because it is uniform in 0-60 s depending on when PostgreSQL came up."""
    ours = daemon["milestones_s"]
    theirs = baseline["milestones_s"]
    assert isinstance(ours, dict) and isinstance(theirs, dict)
    ratios: dict[str, float | None] = {}
    for name in MILESTONES:
        a, b = ours.get(name), theirs.get(name)
        ratios[name] = round(b / a, 2) if a and b else None
    return {"baseline_over_daemon": ratios}
