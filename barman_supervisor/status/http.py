"""The HTTP side: the page for people at ``/``, ``/healthz``, ``/readyz``, ``/status`` and
``/metrics``.

Every answer is computed from the state the jobs keep; no request runs SQL or Barman, so the
probes stay fast while a backup or a slow ``barman check`` runs. Answers are built from data that
holds no secret; only the fields that carry foreign text (Barman's messages and hints, exception
messages) are masked, value by value, before the document is encoded, so keys, event names and
the JSON itself never change with the password.

The transport (``status/server``) reads every request whole on an event loop before a worker
computes its answer here, so idle or slow clients hold no worker. With users in the web
configuration, ``Probes.answer`` asks for a login everywhere but ``/healthz`` and ``/readyz``,
which answer strangers with their verdict only.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from barman_supervisor import __version__
from barman_supervisor.barman.chains import chain_of
from barman_supervisor.barman.records import Backup, BackupStatus
from barman_supervisor.barman.verdicts import verification_view
from barman_supervisor.config import WebAccess, server_context
from barman_supervisor.log import MASKER, get_logger
from barman_supervisor.status import page
from barman_supervisor.status.access import Logins
from barman_supervisor.status.health import (
    Limits,
    liveness_problems,
    server_problems,
    wal_lag_seconds,
)
from barman_supervisor.status.server import LISTEN_BACKLOG, EventServer, Reply
from barman_supervisor.status.state import ServerState, State

_log = get_logger(__name__)
JSON = "application/json"
# What the probes tell a caller without a login (when one is required): the verdict alone.
VERDICT_ONLY = {"/healthz": "alive", "/readyz": "ready"}
LOGIN_HEADERS = {"WWW-Authenticate": 'Basic realm="barman-supervisor", charset="UTF-8"'}
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
        # Foreign text (barman-cloud's and boto3's messages): masked like every other.
        "last_error": MASKER.mask_values(record.get("last_error")),
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


def _claim_status(claim: dict[str, Any] | None) -> dict[str, Any] | None:
    """Sharded: whether this replica holds the server, or who does (``pg_stat_activity``)."""
    if claim is None:
        return None
    return {"held": claim["held"], "holder": claim["holder"], "since": _iso(claim["since"])}


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
            "primary": {"host": server.primary[0], "port": server.primary[1]}
            if server.primary
            else None,
        },
        "failover": server.failover.as_dict() if server.failover else None,
        "claim": _claim_status(server.claim),
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
            "shard": self._state.shard,
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

    def answer(self, path: str, authorized: bool = True) -> Answer:
        """Every route in one place, and so the one place a login is asked for: a caller not
        ``authorized`` (no or a wrong login while the web configuration has users) gets the
        probes' verdict and nothing else."""
        routes = self.routes()
        if not authorized:
            if path in VERDICT_ONLY:
                code, document = routes[path]()
                verdict = VERDICT_ONLY[path]
                return Answer(code, encode({verdict: document[verdict]}), JSON)
            return Answer(401, b'{"error": "unauthorized"}\n', JSON, LOGIN_HEADERS)
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
    serves from ``start``; ``access`` adds TLS, logins and the Host allow-list."""

    def __init__(
        self, bind: str, port: int, probes: Probes, access: WebAccess | None = None
    ) -> None:
        self._access = access or WebAccess()
        self._sock = _listening_socket(bind, port)
        self._probes = probes
        self._server = EventServer(
            self._sock,
            self._respond,
            logins=Logins(self._access.users),
            allowed_hosts=self._access.allowed_hosts,
            tls=server_context(self._access.tls) if self._access.tls else None,
        )
        self._serving = False

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._server.start()
        self._serving = True
        _log.info(
            "http_listening",
            port=self.port,
            tls=self._access.tls is not None,
            login=self._access.login_required,
            allowed_hosts=list(self._access.allowed_hosts) or None,
        )

    def stop(self) -> None:
        self._server.stop()

    def _respond(self, path: str, authorized: bool) -> Reply:
        answer = self._probes.answer(path, authorized)
        return Reply(answer.code, answer.body, answer.content_type, tuple(answer.headers.items()))


def _listening_socket(bind: str, port: int) -> socket.socket:
    """Bound and listening, as the standard library's servers do it (an IPv6 address listens
    on both families where the system allows)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
