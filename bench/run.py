"""``python -m bench.run``: the benchmark suite against real PostgreSQL 15 and Barman.

Writes ``bench/results/latest.json``, ``latest.md`` and ``performance.md``. Everything runs on
127.0.0.1 in throwaway directories; every wait is bounded; a scenario that fails records its
error and the others still run. ``--quick`` is a smoke run with tiny samples (not for numbers).

Order matters for the numbers: the small cluster serves time-to-protected, freshness and the
idle footprint before pgbench data is loaded for the backup cost; the scale runs get a fresh
cluster of their own (with 120 WAL senders and slots) so 50 servers do not back up that data.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from barman_supervisor import __version__
from bench import (
    backups,
    drill,
    failover,
    footprint,
    freshness,
    health,
    http,
    offsite,
    peer,
    protect,
    report,
    rpo,
    scale,
)
from bench.baseline import Baseline
from bench.common import BenchDaemon, slot_active, start_daemon, stop_daemon
from bench.freshness import Target
from tests.support.paths import BARMAN, PG_BIN, REPO
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster

RESULTS = REPO / "bench" / "results"
# The quick run's peer cluster: pgbench -s 2 (about 40 MB) proves the scenario runs.
PEER_QUICK_SCALE = 2


@dataclass(frozen=True)
class Parameters:
    commit_samples: int = 30
    switch_samples: int = 16
    switch_period_s: float = 4.5
    switch_tail_s: float = 70
    footprint_s: float = 90
    pgbench_scales: tuple[int, ...] = (10, 50)
    backup_rounds: int = 2
    failover_samples: int = 3
    # servers, seconds allowed until all are ready, idle window: 660 s holds one barman cron
    # (every 600 s) and two rounds of checks where the target is (50 servers).
    scale_runs: tuple[tuple[int, float, float], ...] = (
        (1, 120, 330),
        (10, 300, 330),
        (50, 600, 660),
        (100, 900, 330),
    )


QUICK = Parameters(
    commit_samples=5,
    switch_samples=3,
    switch_period_s=3,
    footprint_s=20,
    pgbench_scales=(1,),
    backup_rounds=1,
    failover_samples=1,
    scale_runs=((1, 90, 20), (3, 90, 20)),
)


def _command_output(*argv: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    except OSError:
        return ""


def machine() -> dict[str, object]:
    """What the numbers were measured on; the load average shows a busy shared machine."""
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line]
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
        "cpu": cpu[0].split(":", 1)[1].strip() if cpu else platform.processor(),
        "kernel": platform.release(),
        "os": _command_output("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "python": platform.python_version(),
        "postgresql": _command_output(str(PG_BIN / "postgres"), "--version"),
        "barman": _command_output(BARMAN, "--version"),
        "barman_supervisor": __version__,
        "commit": _command_output("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
        + (
            "+uncommitted"
            if _command_output("git", "-C", str(REPO), "status", "--porcelain")
            else ""
        ),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


class Bench:
    """One run: the main cluster, the baseline beside the daemons, and the results so far."""

    def __init__(self, root: Path, params: Parameters) -> None:
        self.root = root
        self.params = params
        self.results: dict[str, Any] = {"meta": machine(), "parameters": asdict(params)}
        self.phase_seconds: dict[str, float] = {}
        self.daemons: dict[str, BenchDaemon] = {}

    def phase(self, name: str, body: Callable[[], object]) -> None:
        """Run one scenario; a failure is recorded in the results, not raised."""
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            self.results[name] = body()
        except Exception as exc:
            traceback.print_exc()
            self.results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        self.phase_seconds[name] = round(time.monotonic() - started, 1)
        print(f"[bench] {name} took {self.phase_seconds[name]} s", file=sys.stderr, flush=True)

    # Scenarios on the main cluster -----------------------------------------------------------
    def protect(self, pg: Cluster, baseline: Baseline) -> dict[str, object]:
        d60, ours = protect.run_daemon(self.root, pg)
        self.daemons["daemon_60"] = d60
        theirs = protect.run_baseline(baseline, pg)
        return {"daemon": ours, "baseline": theirs, **protect.compare(ours, theirs)}

    def freshness(self, pg: Cluster, baseline: Baseline) -> dict[str, object]:
        d60 = self.daemons["daemon_60"]
        d5 = start_daemon(
            self.root,
            "daemon5",
            pg,
            ["bench_d5"],
            BARMAN_SLOT_NAME="bench_d5",
            BARMAN_CRON_INTERVAL="5",
            BACKUP_ON_START="false",
        )
        self.daemons["daemon_5"] = d5
        d5.wait("job_finished", 180, job="bootstrap")
        # PostgreSQL restarted for the baseline; the 60-s daemon resumes on its next cron.
        for slot in ("bench_d60", "bench_d5", baseline.slot):
            wait_until(
                functools.partial(slot_active, pg, slot),
                75,
                what=f"slot {slot} streaming",
                interval=1,
            )
        targets = [
            Target("daemon_60", d60.home / "pg"),
            Target("daemon_5", d5.home / "pg"),
            Target("baseline", baseline.home / "pg"),
        ]
        p = self.params
        return freshness.run(
            pg, targets, p.commit_samples, p.switch_samples, p.switch_period_s, p.switch_tail_s
        )

    def footprint(self, pg: Cluster) -> dict[str, object]:
        time.sleep(2)  # let the last writes of the previous scenario settle
        chosen = ("daemon_5", "daemon_60")
        daemons = {name: self.daemons[name] for name in chosen}
        try:
            return footprint.measure(daemons, self.params.footprint_s)
        finally:
            for name in chosen:
                stop_daemon(self.daemons.pop(name), pg)

    def backups(self, pg: Cluster, baseline: Baseline) -> dict[str, object]:
        p = self.params
        return backups.run(self.root, pg, baseline, p.pgbench_scales, p.backup_rounds)

    def run(self) -> None:
        with cluster(max_wal_senders="40", max_replication_slots="40") as pg:
            pg.init()
            baseline = Baseline(self.root / "baseline", pg)
            try:
                self.phase("protect", lambda: self.protect(pg, baseline))
                if "daemon_60" in self.daemons:
                    self.phase("freshness", lambda: self.freshness(pg, baseline))
                    self.phase("footprint", lambda: self.footprint(pg))
                self.phase("backup_cost", lambda: self.backups(pg, baseline))
                self.phase("health", lambda: health.run(self.root, pg))
            finally:
                for bench in self.daemons.values():
                    stop_daemon(bench, pg)
                baseline.stop()
        self.phase("scale", lambda: scale.run(self.root, self.params.scale_runs))
        quick = self.params is QUICK
        self.phase("drill", lambda: drill.measure_drill(1 if quick else 10, 1 if quick else 2))
        sizes = (1, 5, 1) if quick else (10, 30, 3)
        self.phase("offsite", lambda: offsite.run(self.root, *sizes))
        self.phase("http", lambda: http.run(self.root))
        self.phase("failover", lambda: failover.run(self.root, self.params.failover_samples))
        self.phase("rpo", lambda: rpo.run(self.root, *((5, 10) if quick else (60, 200))))
        scale_, rounds = (PEER_QUICK_SCALE, 1) if quick else (peer.SCALE, peer.RESTORE_ROUNDS)
        self.phase("peer", lambda: peer.measure(self.root, scale_, rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny samples: a smoke run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="output directory")
    args = parser.parse_args(argv)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bs-bench-"))
    root.chmod(0o755)
    bench = Bench(root, QUICK if args.quick else Parameters())
    try:
        bench.run()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    meta = bench.results["meta"]
    meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["runtime_s"] = round(time.monotonic() - started, 1)
    meta["phase_seconds"] = bench.phase_seconds
    meta["quick"] = args.quick
    meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "latest.json").write_text(json.dumps(bench.results, indent=2) + "\n")
    section = report.write_reports(bench.results, args.results)
    print(section)
    errors = [
        name
        for name, value in bench.results.items()
        if isinstance(value, dict) and "error" in value
    ]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
