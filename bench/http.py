"""Scenario 9, the HTTP port under strangers: ``/healthz`` and ``/readyz`` latency while 2,000
idle connections and 64 clients trickling a byte a second hold on (``tests/support/slowclients``).

Each variant is a real daemon beside a small cluster, probed one request at a time (as Docker and
kubelet do) for ``WINDOW_S``; a probe that gets no answer within ``PROBE_TIMEOUT_S`` counts as
status 0 and that many milliseconds. Variants: ``after``, this tree's event-driven server over
plain HTTP; ``after_tls``, the same with a web configuration (TLS, a basic-auth user; the probes
unauthenticated, the trickling clients over TLS); and with ``--before REF`` (standalone only),
``before``: the daemon of git revision REF (e.g. ``main``), extracted from git and run from there.

Standalone: ``python -m bench.http [--before main]`` writes ``bench/results/http.json`` and
``http.md``; ``make bench`` runs the ``after`` variants as phase ``http``.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.common import start_daemon, stop_daemon, summary
from tests.support.paths import REPO
from tests.support.postgres import Cluster, cluster
from tests.support.slowclients import SlowClients
from tests.support.webconfig import get, write_web_config

IDLE_CONNECTIONS = 2000
TRICKLING_CLIENTS = 64
WINDOW_S = 20.0
# Long enough to see how late the threaded server answered (the issue measured 9 s).
PROBE_TIMEOUT_S = 10.0
TARGET_P99_MS = 50.0
PATHS = report.HTTP_PATHS
RESULTS = REPO / "bench" / "results"


def probe_under_load(port: int, context: ssl.SSLContext | None, window_s: float) -> dict[str, Any]:
    """Each path in turn for ``window_s`` while the slow clients hold on."""
    samples: dict[str, list[float]] = {path: [] for path in PATHS}
    statuses: dict[str, dict[int, int]] = {path: {} for path in PATHS}
    with SlowClients(port, IDLE_CONNECTIONS, TRICKLING_CLIENTS, context) as load:
        deadline = time.monotonic() + window_s
        while time.monotonic() < deadline:
            for path in PATHS:
                started = time.perf_counter()
                try:
                    code = get(port, path, context=context, timeout=PROBE_TIMEOUT_S)[0]
                except OSError:
                    code = 0
                samples[path].append((time.perf_counter() - started) * 1000)
                statuses[path][code] = statuses[path].get(code, 0) + 1
        reopened = load.reopened
    return {
        **{
            path: {"latency_ms": summary(samples[path], 2), "statuses": statuses[path]}
            for path in PATHS
        },
        "slow_clients_reopened": reopened,
    }


def run_variant(root: Path, pg: Cluster, name: str, **env: str) -> dict[str, Any]:
    """One daemon started (only its HTTP port is needed), measured, stopped."""
    slot = f"bench_{name}"
    # No backup at start: the CPU measured beside the probes is the HTTP port's.
    bench = start_daemon(
        root, name, pg, [slot], BARMAN_SLOT_NAME=slot, BACKUP_ON_START="false", **env
    )
    try:
        bench.wait("http_listening", 120)
        context = None
        if "HTTP_WEB_CONFIG_FILE" in env:
            web = json.loads((root / name / "web.json").read_text())
            context = ssl.create_default_context(cafile=web["ca"])
        return {
            "loadavg_at_start": _loadavg(),
            **probe_under_load(bench.http_port, context, WINDOW_S),
        }
    finally:
        stop_daemon(bench, pg)


def _tls_env(root: Path, name: str) -> dict[str, str]:
    """A web configuration with TLS and a user, and where its CA is for the client."""
    web = write_web_config(root / name)
    assert web.ca is not None
    ca = root / name / "ca.pem"
    web.ca.cert_pem.write_to_path(str(ca))
    (root / name / "web.json").write_text(json.dumps({"ca": str(ca)}))
    return {"HTTP_WEB_CONFIG_FILE": str(web.path)}


def _source_of(ref: str, into: Path) -> Path:
    """The package as of git revision ``ref``, extracted under ``into`` (for PYTHONPATH)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "barman_supervisor"],
        capture_output=True,
        check=True,
    )
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def run(root: Path, before: str | None = None) -> dict[str, Any]:
    """The variants on one small cluster; ``before`` first when asked for."""
    results: dict[str, Any] = {
        "idle_connections": IDLE_CONNECTIONS,
        "trickling_clients": TRICKLING_CLIENTS,
        "window_s": WINDOW_S,
        "probe_timeout_s": PROBE_TIMEOUT_S,
        "target_p99_ms": TARGET_P99_MS,
    }
    with cluster() as pg:
        pg.init()
        if before is not None:
            source = _source_of(before, root / "before-source")
            results["before"] = {"ref": before} | run_variant(
                root, pg, "before", PYTHONPATH=str(source)
            )
        results["after"] = run_variant(root, pg, "after")
        results["after_tls"] = run_variant(root, pg, "after_tls", **_tls_env(root, "after_tls"))
    return results


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--before", help="git revision to measure as 'before' (e.g. main)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="output directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bs-bench-http-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        results = run(root, args.before)
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "http.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report.http_section(results)
    (args.results / "http.md").write_text(f"# HTTP port under idle and slow clients\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
