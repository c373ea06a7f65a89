"""What the jobs learned, kept for the probes: health answers from here, never by running Barman.

Jobs write; readers get a deep copy, so a probe never sees a half-updated server and never
waits for a job.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from barman_supervisor.barman import Backup, Check
from barman_supervisor.postgres import Identity, ServerFacts, SlotState


@dataclass(frozen=True)
class JobRun:
    job: str
    started_at: float
    duration_s: float
    ok: bool
    reason: str = ""
    exit_code: int | None = None


@dataclass
class ServerState:
    phase: str = "starting"
    postgres_reached_at: float | None = None
    postgres_error: str | None = None
    facts: ServerFacts | None = None
    identity: Identity | None = None
    slot: SlotState | None = None
    receive_wal_running: bool | None = None
    wal_received_at: float | None = None
    wal_archived_at: float | None = None
    disk_free_bytes: int | None = None
    identity_problem: str | None = None
    checks: list[Check] = field(default_factory=list)
    checks_at: float | None = None
    backups: list[Backup] = field(default_factory=list)
    backups_at: float | None = None
    last_backup: dict[str, Any] = field(default_factory=dict)
    last_verify: dict[str, Any] = field(default_factory=dict)
    last_drill: dict[str, Any] = field(default_factory=dict)
    programs: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, JobRun] = field(default_factory=dict)
    run_counts: Counter[tuple[str, bool]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


class State:
    def __init__(self, servers: list[str]) -> None:
        self._lock = threading.Lock()
        self._servers = {name: ServerState() for name in servers}
        self._runs: dict[str, JobRun] = {}
        self._run_counts: Counter[tuple[str, bool]] = Counter()
        self.started_at = time.time()
        self.heartbeat_at = time.time()

    def update(self, server: str, **fields: Any) -> None:
        with self._lock:
            target = self._servers[server]
            for key, value in fields.items():
                if not hasattr(target, key):
                    raise AttributeError(key)
                setattr(target, key, value)

    def record_run(self, server: str | None, run: JobRun) -> None:
        with self._lock:
            if server is None:
                self._runs[run.job] = run
                self._run_counts[(run.job, run.ok)] += 1
            else:
                self._servers[server].runs[run.job] = run
                self._servers[server].run_counts[(run.job, run.ok)] += 1

    def beat(self) -> None:
        self.heartbeat_at = time.time()

    def server(self, name: str) -> ServerState:
        with self._lock:
            return copy.deepcopy(self._servers[name])

    def servers(self) -> dict[str, ServerState]:
        with self._lock:
            return copy.deepcopy(self._servers)

    def global_runs(self) -> tuple[dict[str, JobRun], Counter[tuple[str, bool]]]:
        with self._lock:
            return dict(self._runs), Counter(self._run_counts)
