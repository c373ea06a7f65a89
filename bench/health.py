"""Scenario 6, health endpoint latency under concurrent requests while a backup runs.

A daemon whose first backup copies the loaded cluster; ``/healthz`` and ``/readyz`` are hammered
while it runs and when idle. Then, for each of ``READYZ_CLIENTS`` (16 and 64: more than the listen
backlog of 5 the server once had, and more than its handler threads), a backup is started by
hand and only ``/readyz`` is hammered while it runs (p50/p99 in latest.json and the report).

Standalone (no other scenario): ``python -m bench.health``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import BenchDaemon, start_daemon, stop_daemon, summary
from tests.support.poll import TimedOut, wait_until
from tests.support.postgres import Cluster, cluster

PATHS = ("/healthz", "/readyz")
READYZ_CLIENTS = (16, 64)
# Rows loaded by the standalone run, so that a backup lasts long enough to measure during it.
STANDALONE_ROWS = 3_000_000


def request(port: int, path: str, timeout: float = 5) -> tuple[int, float]:
    """(status, milliseconds); status 0 when nothing answered."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        status = conn.getresponse().status
    except OSError:
        status = 0
    finally:
        conn.close()
    return status, (time.perf_counter() - started) * 1000


def answers(port: int) -> bool:
    return request(port, PATHS[0], timeout=1)[0] != 0


def hammer(
    port: int,
    workers: int,
    keep_going: Callable[[], bool],
    max_seconds: float,
    paths: tuple[str, ...] = PATHS,
) -> dict[str, object]:
    """``workers`` clients in a loop over the paths until ``keep_going()`` turns false."""
    samples: dict[str, list[float]] = {path: [] for path in paths}
    statuses: dict[str, dict[int, int]] = {path: {} for path in paths}
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client(offset: int) -> None:
        turn = offset
        while keep_going() and time.monotonic() < deadline:
            path = paths[turn % len(paths)]
            status, ms = request(port, path)
            turn += 1
            with lock:
                samples[path].append(ms)
                statuses[path][status] = statuses[path].get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + 10)
    return {
        path: {"latency_ms": summary(samples[path], 2), "statuses": statuses[path]}
        for path in paths
    }


def run(root: Path, pg: Cluster, workers: int = 8) -> dict[str, object]:
    slot = "bench_health"
    bench = start_daemon(root, "health", pg, [slot], BARMAN_SLOT_NAME=slot)
    try:
        bench.wait("daemon_starting", 30)
        try:
            wait_until(lambda: answers(bench.http_port), 10, what="/healthz", interval=0.25)
        except TimedOut:
            return {"available": False, "reason": "/healthz does not answer (no HTTP server yet)"}
        return {"available": True, **_measure(bench, workers)}
    finally:
        stop_daemon(bench, pg)
        shutil.rmtree(bench.daemon.workdir, ignore_errors=True)


def _measure(bench: BenchDaemon, workers: int) -> dict[str, object]:
    bench.wait("backup_starting", 300)

    def backup_running() -> bool:
        return bench.events.first("backup_finished") is None

    during = hammer(bench.http_port, workers, backup_running, max_seconds=120)
    idle_until = time.monotonic() + 3
    idle = hammer(bench.http_port, workers, lambda: time.monotonic() < idle_until, 10)
    bench.wait("backup_finished", 300)
    by_clients = {str(clients): _readyz_during_backup(bench, clients) for clients in READYZ_CLIENTS}
    return {
        "workers": workers,
        "during_backup": during,
        "idle": idle,
        "readyz_during_backup_by_clients": by_clients,
    }


def _readyz_during_backup(bench: BenchDaemon, clients: int) -> dict[str, object]:
    """A backup by hand (as the README suggests) and ``clients`` probes of /readyz meanwhile."""
    outcome: dict[str, int] = {}

    def backup() -> None:
        done = bench.daemon.barman_command("backup", "--immediate-checkpoint", "--wait", "pg")
        outcome["exit_code"] = done.returncode

    thread = threading.Thread(target=backup, daemon=True)
    started = time.monotonic()
    thread.start()
    result = hammer(bench.http_port, clients, thread.is_alive, 300, paths=("/readyz",))
    thread.join(300)
    return {
        **result,
        "backup_s": round(time.monotonic() - started, 2),
        "backup_exit_code": outcome.get("exit_code"),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def main() -> None:
    """Only this scenario, on a cluster of its own; prints the results as JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-health-") as directory, cluster() as pg:
        pg.init()
        pg.sql(
            f"CREATE TABLE load AS SELECT g, md5(g::text) h FROM generate_series(1, "
            f"{STANDALONE_ROWS}) g"
        )
        print(json.dumps(run(Path(directory), pg, workers=8), indent=1))


if __name__ == "__main__":
    main()
