"""Scenario: the recovery point (issue 27), ``pg_switch_wal()`` -> ``wals/`` -> the bucket.

The daemon runs with default settings except the store (moto_server on 127.0.0.1): the WAL
watcher archives a completed segment at once and hands it to the off-site copier at once; the
interval jobs (60 s) are only the safety net, so a latency near them means the watcher missed.

* steady: one switch a second for ``steady_s`` seconds;
* burst: ``burst`` switches back to back; the burst drains when every one of them is in
  ``wals/`` and in the bucket (nothing skipped), bounded by ``DRAIN_TIMEOUT_S``.

A writer commits every 0.2 s meanwhile (a live primary: Barman archives a switched segment only
once the next ``.partial`` exists). Each segment's time is when a poll first saw it (every
``POLL_S`` locally, one bucket listing per round), so the figures carry up to that much.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BenchDaemon, start_daemon, stop_daemon, summary
from bench.freshness import Writer, prepare
from tests.support.postgres import Cluster, cluster
from tests.support.s3 import S3, s3_server

PREFIX = "rpo"
SLOT = "bench_rpo"
POLL_S = 0.05
# The first backup and its copy, then a warm-up segment through the whole path.
WARMUP_TIMEOUT_S = 600
DRAIN_TIMEOUT_S = 600
STEADY_PERIOD_S = 1.0


def _env(s3: S3, workdir: Path) -> dict[str, str]:
    secret = workdir / "aws_secret"
    secret.write_text(s3.secret)
    return {
        "BARMAN_SLOT_NAME": SLOT,
        "OFFSITE_URL": f"s3://{s3.bucket}/{PREFIX}",
        "OFFSITE_ENDPOINT_URL": s3.endpoint,
        "OFFSITE_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY_FILE": str(secret),
    }


class Tracker:
    """When each switched segment was switched, seen in ``wals/`` and seen in the bucket."""

    def __init__(self, bench: BenchDaemon, s3: S3) -> None:
        self._wals = bench.home / "pg" / "wals"
        self._s3 = s3
        self.switched: dict[str, float] = {}
        self.local: dict[str, float] = {}
        self.remote: dict[str, float] = {}
        self._last_listing = 0.0

    def switch(self, pg: Cluster) -> str:
        name = pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
        self.switched.setdefault(name, time.time())
        return name

    def poll(self) -> None:
        now = time.time()
        for name in self.switched.keys() - self.local.keys():
            if (self._wals / name[:16] / name).exists():
                self.local[name] = now
        if now - self._last_listing >= POLL_S * 4 and self.remote.keys() != self.switched.keys():
            self._last_listing = now
            stored = {key.rsplit("/", 1)[1] for key in self._s3.keys(f"{PREFIX}/pg/wals/")}
            for name in (self.switched.keys() & stored) - self.remote.keys():
                self.remote[name] = time.time()

    def poll_for(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.poll()
            time.sleep(POLL_S)

    def drained(self, names: set[str]) -> bool:
        return names <= self.local.keys() and names <= self.remote.keys()

    def drain(self, names: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.drained(names) and time.monotonic() < deadline:
            self.poll_for(POLL_S)
        return self.drained(names)

    def latencies(self, names: set[str], seen: dict[str, float]) -> list[float]:
        return [seen[n] - self.switched[n] for n in names if n in seen]


def measure(pg: Cluster, bench: BenchDaemon, s3: S3, steady_s: int, burst: int) -> dict[str, Any]:
    # Segments switched before the first backup are older than it: Barman drops them.
    bench.wait("offsite_backup_copied", WARMUP_TIMEOUT_S)
    tracker = Tracker(bench, s3)
    warmup = tracker.switch(pg)
    if not tracker.drain({warmup}, WARMUP_TIMEOUT_S):
        raise RuntimeError(f"warm-up segment {warmup} never reached wals/ and the bucket")
    load_before = os.getloadavg()[0]
    steady: set[str] = set()
    for _ in range(steady_s):
        started = time.monotonic()
        steady.add(tracker.switch(pg))
        tracker.poll_for(max(0.0, STEADY_PERIOD_S - (time.monotonic() - started)))
    burst_names: set[str] = set()
    burst_started = time.monotonic()
    for _ in range(burst):
        pg.sql("INSERT INTO bench_activity DEFAULT VALUES")
        burst_names.add(tracker.switch(pg))
    drained = tracker.drain(steady | burst_names, DRAIN_TIMEOUT_S)
    drain_s = time.monotonic() - burst_started
    return {
        "wals": _figures(tracker.latencies(steady, tracker.local)),
        "bucket": _figures(tracker.latencies(steady, tracker.remote)),
        "steady_segments": len(steady),
        "burst": {
            "segments": len(burst_names),
            "in_wals": len(burst_names & tracker.local.keys()),
            "in_bucket": len(burst_names & tracker.remote.keys()),
            "drained": drained,
            "drain_s": round(drain_s, 1),
            "wals": _figures(tracker.latencies(burst_names, tracker.local)),
            "bucket": _figures(tracker.latencies(burst_names, tracker.remote)),
        },
        "archive_runs": len(bench.events.find("job_finished", job="archive_wal")),
        "load1_before": round(load_before, 2),
        "load1_after": round(os.getloadavg()[0], 2),
    }


def _figures(values: list[float]) -> dict[str, Any]:
    """The target's two figures beside the whole distribution."""
    whole = summary(values, 2)
    return {"p50_s": whole["median"], "p95_s": whole["p95"], "summary": whole}


def run(root: Path, steady_s: int = 60, burst: int = 200) -> dict[str, Any]:
    workdir = root / "rpo"
    workdir.mkdir(parents=True, exist_ok=True)
    with s3_server(workdir) as s3, cluster() as pg:
        pg.init()
        prepare(pg)
        bench = start_daemon(root, "rpo-daemon", pg, [SLOT], **_env(s3, workdir))
        try:
            with Writer(pg):
                return measure(pg, bench, s3, steady_s, burst)
        finally:
            stop_daemon(bench, pg)


if __name__ == "__main__":
    bench_root = Path(tempfile.mkdtemp(prefix="bs-bench-rpo-"))
    bench_root.chmod(0o755)
    sizes = (5, 10) if "--quick" in sys.argv else (60, 200)
    try:
        print(json.dumps(run(bench_root, *sizes), indent=2))
    finally:
        shutil.rmtree(bench_root, ignore_errors=True)
