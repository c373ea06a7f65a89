"""The HTTP side: the page for people at ``/``, ``/healthz``, ``/readyz``, ``/status`` and
``/metrics``.

Every answer is computed from the state the jobs keep; no request runs SQL or Barman, so the
probes stay fast while a backup or a slow ``barman check`` runs. Answers are built from data that
holds no secret; only the fields that carry foreign text (Barman's messages and hints, exception
messages) are masked, value by value, before the document is encoded, so keys, event names and
the JSON itself never change with the password.

The server is bounded: a listen backlog for bursts of probes, a time limit on idle connections and
a fixed number of handler threads (further connections wait in the backlog).
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from barman_supervisor import __version__
from barman_supervisor.barman.chains import chain_of
from barman_supervisor.barman.records import Backup, BackupStatus
from barman_supervisor.barman.verdicts import verification_view
from barman_supervisor.log import MASKER, get_logger
from barman_supervisor.status import page
from barman_supervisor.status.health import (
    Limits,
    liveness_problems,
    server_problems,
    wal_lag_seconds,
)
from barman_supervisor.status.state import ServerState, State

_log = get_logger(__name__)
# Probes from Docker, Kubernetes and Prometheus arrive together; 5 (the default) makes them wait
# for SYN retransmits (~1 s).
LISTEN_BACKLOG = 128
# A connection that sends no complete request in this time is closed and frees its thread.
IDLE_TIMEOUT = 10.0
HANDLER_THREADS = 32
JSON = "application/json"
# The page runs no script and loads nothing from elsewhere; a browser is told so.
PAGE_HEADERS = {
    "Content-Security-Policy": page.CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
}


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _offsite_status(server: ServerState, now: float) -> dict[str, Any] | None:
    """The off-site copy beside the local catalogue: the store's URL (never a key), what is
    there, what is owed, and the last error."""
    record = server.offsite
    if not record:
        return None
    return {
        "url": record.get("url"),
        "backups": record.get("store_backups", []),
        "backups_owed": record.get("backups_owed", []),
        "newest_copied_backup": record.get("newest_copied_backup"),
        "newest_copied_backup_end": _iso(record.get("newest_copied_backup_end")),
        "wal_copied": record.get("wal_copied"),
        "wal_copied_at": _iso(record.get("wal_copied_at")),
        "wal_files_owed": record.get("wal_owed", 0),
        "wal_lag_s": round(wal_lag_seconds(record, now), 1),
        "wal_holes": record.get("wal_holes", []),
        "wal_missing": record.get("wal_missing", 0),
        # The backup kept with `barman keep` so that retention deletes nothing the store lacks.
        "retention_hold": record.get("retention_hold"),
        "bytes_copied": record.get("bytes_copied", 0),
        "failures": record.get("failures", 0),
        "last_ok_at": _iso(record.get("last_ok_at")),
        "last_error": record.get("last_error"),
        "last_error_at": _iso(record.get("last_error_at")),
    }


def _chain_status(backup: Backup, backups: list[Backup]) -> dict[str, Any]:
    """Type, parent and chain of a backup (issue 13): restoring an incremental needs them all."""
    chain = chain_of(backup, backups)
    return {
        "type": "incremental" if backup.incremental else "full",
        "parent": backup.parent_id,
        "chain_length": chain.length,
        "chain_size_bytes": chain.size_bytes,
        "chain_broken": chain.broken,
    }


def server_status(
    name: str, server: ServerState, now: float, limits: Limits, next_runs: Mapping[str, str | None]
) -> dict[str, Any]:
    """One server for ``/status``: plain JSON values, no secret (conninfo is never included);
    foreign text (Barman's and PostgreSQL's messages) masked by pattern."""
    problems = server_problems(server, now, limits)
    return {
        "phase": server.phase,
        "ready": not problems,
        "problems": MASKER.mask_values([asdict(problem) for problem in problems]),
        "postgres": {
            "reached_at": _iso(server.postgres_reached_at),
            "error": MASKER.mask_values(server.postgres_error),
            "version": server.facts.version_num if server.facts else None,
            "system_id": server.identity.system_id if server.identity else None,
            "timeline": server.identity.timeline if server.identity else None,
        },
        "streaming": _streaming_status(server, now),
        "backups": _backups_status(server, now, limits),
        "drill": MASKER.mask_values(server.last_drill or None),
        "offsite": _offsite_status(server, now),
        # PostgreSQL programs: the clients backups use, the server programs drills start.
        "programs": server.programs or None,
        "checks": {
            "at": _iso(server.checks_at),
            "ok": bool(server.checks) and all(check.ok for check in server.checks),
            "results": {
                check.name: {"ok": check.ok, "hint": MASKER.mask(check.hint)}
                for check in server.checks
            },
        },
        "jobs": {
            job: {
                "last_start": _iso(run.started_at),
                "duration_s": run.duration_s,
                "ok": run.ok,
                "exit_code": run.exit_code,
                "reason": MASKER.mask(run.reason) or None,
            }
            for job, run in sorted(server.runs.items())
        },
        "next_runs": {
            job_id.split(":", 1)[0]: when
            for job_id, when in next_runs.items()
            if job_id.endswith(f":{name}")
        },
    }


def _streaming_status(server: ServerState, now: float) -> dict[str, Any]:
    return {
        "receive_wal_running": server.receive_wal_running,
        "slot": asdict(server.slot) if server.slot else None,
        "wal_lag_bytes": server.slot.lag_bytes if server.slot else None,
        "wal_last_received_at": _iso(server.wal_received_at),
        "wal_last_archived_at": _iso(server.wal_archived_at),
        "wal_archive_age_s": round(now - server.wal_archived_at, 1)
        if server.wal_archived_at
        else None,
        # Seconds since the newest WAL in wals/ and in the off-site store was written.
        "wal_newest_age_s": {
            where: round(now - at, 1) if at is not None else None
            for where, at in server.recovery_points().items()
        },
        "wal_gap": {**asdict(server.wal_gap), "detected_at": _iso(server.wal_gap_at)}
        if server.wal_gap
        else None,
    }


def _backups_status(server: ServerState, now: float, limits: Limits) -> dict[str, Any]:
    done = [b for b in server.backups if b.status == BackupStatus.DONE and b.end_time is not None]
    newest = max(done, key=lambda b: b.end_time or 0.0) if done else None
    return {
        "count": len(server.backups),
        "done": len(done),
        "newest": {
            "id": newest.backup_id,
            "status": newest.status,
            "end_time": _iso(newest.end_time),
            "age_s": round(now - (newest.end_time or now), 1),
            "size_bytes": newest.size_bytes,
            **_chain_status(newest, server.backups),
        }
        if newest
        else None,
        "max_age_s": limits.backup_max_age,
        "last_attempt": MASKER.mask_values(server.last_backup or None),
        "last_verification": MASKER.mask_values(server.last_verify or None),
        # Per DONE backup: verified / failed (reason) / pending, kept on disk (barman/verdicts).
        "verification": MASKER.mask_values(verification_view(server.backups, server.verdicts)),
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._state = state
        self._limits = limits
        self._scheduler_running = scheduler_running
        self._next_runs = next_runs
        self.registry = registry

    def healthz(self) -> tuple[int, dict[str, Any]]:
        problems = liveness_problems(
            self._state.heartbeat_at, self._scheduler_running(), self._clock(), self._limits("")
        )
        return (503 if problems else 200), {"alive": not problems, "problems": problems}

    def readyz(self) -> tuple[int, dict[str, Any]]:
        now = self._clock()
        servers = {
            name: MASKER.mask_values(
                [asdict(p) for p in server_problems(server, now, self._limits(name))]
            )
            for name, server in self._state.servers().items()
        }
        ready = not any(servers.values())
        return (200 if ready else 503), {"ready": ready, "servers": servers}

    def status(self) -> tuple[int, dict[str, Any]]:
        now = self._clock()
        next_runs = self._next_runs()
        runs, _ = self._state.global_runs()
        return 200, {
            "version": __version__,
            "started_at": _iso(self._state.started_at),
            "now": _iso(now),
            "jobs": {job: MASKER.mask_values(asdict(run)) for job, run in runs.items()},
            "next_runs": {k: v for k, v in next_runs.items() if ":" not in k},
            "servers": {
                name: server_status(name, server, now, self._limits(name), next_runs)
                for name, server in self._state.servers().items()
            },
        }

    def page(self) -> tuple[int, str]:
        """The page at ``/``: the ``/status`` document itself, rendered for people."""
        _, document = self.status()
        return 200, page.render(document)

    def routes(self) -> dict[str, Callable[[], tuple[int, dict[str, Any]]]]:
        return {"/healthz": self.healthz, "/readyz": self.readyz, "/status": self.status}

    def answer(self, path: str) -> Answer:
        """Every route in one place (and so, later, the one place a login is asked for)."""
        routes = self.routes()
        if path == "/":
            code, html = self.page()
            return Answer(code, html.encode(), page.CONTENT_TYPE, PAGE_HEADERS)
        if path == "/metrics":
            return Answer(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path in routes:
            code, document = routes[path]()
            return Answer(code, encode(document), JSON)
        return Answer(404, b'{"error": "not found"}\n', JSON)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as plain data: what ``Probes.answer`` decides, the handler only sends."""

    code: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


def encode(document: Mapping[str, Any]) -> bytes:
    """The wire form of an answer; the document is sent as built, never rewritten as text."""
    return json.dumps(document, default=str, indent=1).encode() + b"\n"


class _Handler(BaseHTTPRequestHandler):
    probes: Probes
    server_version = "barman-supervisor"
    timeout = IDLE_TIMEOUT

    def do_GET(self) -> None:
        answer = self.probes.answer(self.path.split("?", 1)[0].rstrip("/") or "/")
        self.send_response(answer.code)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds; logging each would bury the events that matter."""


class _BoundedServer(ThreadingHTTPServer):
    """At most ``HANDLER_THREADS`` connections are served at once; the accept loop waits for a
    free thread, and further clients wait in the listen backlog."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(HANDLER_THREADS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def bind_problem(bind: str, port: int, exc: OSError) -> str:
    """The one-line refusal for a failed bind, naming the variable that is wrong."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EADDRINUSE, errno.EACCES):
        return f"HTTP_PORT: cannot listen on {bind}:{port} ({reason}); pick a free port"
    return (
        f"HTTP_BIND: cannot listen on {bind}:{port} ({reason}); use an address of this "
        "machine, e.g. 0.0.0.0 or 127.0.0.1"
    )


class HttpServer:
    """Binds in the constructor (so a busy port is found before anything is written) and
    serves from ``start``."""

    def __init__(self, bind: str, port: int, probes: Probes) -> None:
        handler = type("Handler", (_Handler,), {"probes": probes})
        self._server = _BoundedServer((bind, port), handler)
        self._serving = False
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        self._serving = True
        _log.info("http_listening", port=self.port)

    def stop(self) -> None:
        if self._serving:  # shutdown() waits for a serve loop that was never started otherwise
            self._server.shutdown()
        self._server.server_close()
