"""The HTTP side: ``/healthz``, ``/readyz``, ``/status`` and ``/metrics``.

Every answer is computed from the state the jobs keep; no request runs SQL or Barman, so the
probes stay fast while a backup or a slow ``barman check`` runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from barman_supervisor import __version__
from barman_supervisor.health import Limits, liveness_problems, server_problems
from barman_supervisor.log import MASKER, get_logger
from barman_supervisor.state import ServerState, State

_log = get_logger(__name__)


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def server_status(
    name: str, server: ServerState, now: float, limits: Limits, next_runs: Mapping[str, str | None]
) -> dict[str, Any]:
    """One server for ``/status``: plain JSON values, no secret (conninfo is never included)."""
    done = [b for b in server.backups if b.status == "DONE" and b.end_time is not None]
    newest = max(done, key=lambda b: b.end_time or 0.0) if done else None
    problems = server_problems(server, now, limits)
    return {
        "phase": server.phase,
        "ready": not problems,
        "problems": [asdict(problem) for problem in problems],
        "postgres": {
            "reached_at": _iso(server.postgres_reached_at),
            "error": server.postgres_error,
            "version": server.facts.version_num if server.facts else None,
            "system_id": server.identity.system_id if server.identity else None,
            "timeline": server.identity.timeline if server.identity else None,
        },
        "streaming": {
            "receive_wal_running": server.receive_wal_running,
            "slot": asdict(server.slot) if server.slot else None,
            "wal_lag_bytes": server.slot.lag_bytes if server.slot else None,
            "wal_last_received_at": _iso(server.wal_received_at),
            "wal_last_archived_at": _iso(server.wal_archived_at),
            "wal_archive_age_s": round(now - server.wal_archived_at, 1)
            if server.wal_archived_at
            else None,
        },
        "backups": {
            "count": len(server.backups),
            "done": len(done),
            "newest": {
                "id": newest.backup_id,
                "status": newest.status,
                "end_time": _iso(newest.end_time),
                "age_s": round(now - (newest.end_time or now), 1),
                "size_bytes": newest.size_bytes,
            }
            if newest
            else None,
            "max_age_s": limits.backup_max_age,
            "last_attempt": server.last_backup or None,
            "last_verification": server.last_verify or None,
        },
        "drill": server.last_drill or None,
        # PostgreSQL programs: the clients backups use, the server programs drills start.
        "programs": server.programs or None,
        "checks": {
            "at": _iso(server.checks_at),
            "ok": bool(server.checks) and all(check.ok for check in server.checks),
            "results": {
                check.name: {"ok": check.ok, "hint": check.hint} for check in server.checks
            },
        },
        "jobs": {
            job: {
                "last_start": _iso(run.started_at),
                "duration_s": run.duration_s,
                "ok": run.ok,
                "exit_code": run.exit_code,
                "reason": run.reason or None,
            }
            for job, run in sorted(server.runs.items())
        },
        "next_runs": {
            job_id.split(":", 1)[0]: when
            for job_id, when in next_runs.items()
            if job_id.endswith(f":{name}")
        },
    }


class Probes:
    """The answers, as (HTTP status, JSON document) pairs; the server only transports them."""

    def __init__(
        self,
        state: State,
        limits: Callable[[str], Limits],
        scheduler_running: Callable[[], bool],
        next_runs: Callable[[], Mapping[str, str | None]],
        registry: CollectorRegistry,
    ) -> None:
        self._state = state
        self._limits = limits
        self._scheduler_running = scheduler_running
        self._next_runs = next_runs
        self.registry = registry

    def healthz(self) -> tuple[int, dict[str, Any]]:
        problems = liveness_problems(
            self._state.heartbeat_at, self._scheduler_running(), time.time(), self._limits("")
        )
        return (503 if problems else 200), {"alive": not problems, "problems": problems}

    def readyz(self) -> tuple[int, dict[str, Any]]:
        now = time.time()
        servers = {
            name: [asdict(p) for p in server_problems(server, now, self._limits(name))]
            for name, server in self._state.servers().items()
        }
        ready = not any(servers.values())
        return (200 if ready else 503), {"ready": ready, "servers": servers}

    def status(self) -> tuple[int, dict[str, Any]]:
        now = time.time()
        next_runs = self._next_runs()
        runs, _ = self._state.global_runs()
        return 200, {
            "version": __version__,
            "started_at": _iso(self._state.started_at),
            "now": _iso(now),
            "jobs": {job: asdict(run) for job, run in runs.items()},
            "next_runs": {k: v for k, v in next_runs.items() if ":" not in k},
            "servers": {
                name: server_status(name, server, now, self._limits(name), next_runs)
                for name, server in self._state.servers().items()
            },
        }


class _Handler(BaseHTTPRequestHandler):
    probes: Probes
    server_version = "barman-supervisor"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes: dict[str, Callable[[], tuple[int, dict[str, Any]]]] = {
            "/healthz": self.probes.healthz,
            "/readyz": self.probes.readyz,
            "/status": self.probes.status,
        }
        if path == "/metrics":
            self._send(200, generate_latest(self.probes.registry), CONTENT_TYPE_LATEST)
        elif path in routes:
            code, document = routes[path]()
            body = MASKER.mask(json.dumps(document, default=str, indent=1)).encode()
            self._send(code, body + b"\n", "application/json")
        else:
            self._send(404, b'{"error": "not found"}\n', "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds; logging each would bury the events that matter."""


class HttpServer:
    def __init__(self, bind: str, port: int, probes: Probes) -> None:
        handler = type("Handler", (_Handler,), {"probes": probes})
        self._server = ThreadingHTTPServer((bind, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        _log.info("http_listening", port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
