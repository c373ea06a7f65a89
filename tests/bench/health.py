"""Scenario 6, health endpoint latency under concurrent requests while a backup runs.

The daemon reads HTTP_BIND/HTTP_PORT but does not serve HTTP yet. This scenario starts a daemon
whose first backup copies the loaded cluster, and measures only when ``/healthz`` answers; it
reports "not available" otherwise, so the same code measures once the server lands.
"""

from __future__ import annotations

import http.client
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench.common import BenchDaemon, start_daemon, stop_daemon, summary, wait_for
from tests.integration.harness import Cluster

PATHS = ("/healthz", "/readyz")


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
    port: int, workers: int, keep_going: Callable[[], bool], max_seconds: float
) -> dict[str, object]:
    """``workers`` clients in a loop over every path until ``keep_going()`` turns false."""
    samples: dict[str, list[float]] = {path: [] for path in PATHS}
    statuses: dict[str, dict[int, int]] = {path: {} for path in PATHS}
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client(offset: int) -> None:
        turn = offset
        while keep_going() and time.monotonic() < deadline:
            path = PATHS[turn % len(PATHS)]
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
        for path in PATHS
    }


def run(root: Path, pg: Cluster, workers: int = 8) -> dict[str, object]:
    slot = "bench_health"
    bench = start_daemon(root, "health", pg, [slot], BARMAN_SLOT_NAME=slot)
    try:
        bench.wait("daemon_starting", 30)
        if not wait_for(lambda: answers(bench.http_port), timeout=10, interval=0.25):
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
    return {"workers": workers, "during_backup": during, "idle": idle}
