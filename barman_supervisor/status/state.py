"""What the jobs learned, kept for the probes: health answers from here, never by running Barman.

Jobs write through the named methods below, one per fact, so that each field has writers one can
find and mypy catches a misspelt one; readers get a deep copy, so a probe never sees a
half-updated server and never waits for a job.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from barman_supervisor.barman.commands import Check
from barman_supervisor.barman.records import Backup
from barman_supervisor.barman.verdicts import BackupVerdict
from barman_supervisor.postgres.connection import Identity, ServerFacts, SlotState
from barman_supervisor.postgres.wal import WalGap

if TYPE_CHECKING:
    from barman_supervisor.barman.verify import Verification


@dataclass
class DrillResult:
    ok: bool
    reason: str
    server: str
    started_at: float
    duration_s: float = 0.0
    backup_id: str | None = None
    pg_version: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # recover + start + query: what a person waits for in an incident
    restore_s: float | None = None
    rows: int | None = None
    databases: int | None = None
    newest_commit_at: float | None = None
    restored_as_of: float | None = None
    restored_age_s: float | None = None
    interrupted: bool = False
    # DRILL_SOURCE: restored from Barman's catalogue ("local") or the off-site store.
    source: str = "local"
    # The failure is the backup's (its verification, recovery, start or data), not the drill's
    # surroundings (space, programs, time, a stop): only then is the backup judged failed.
    backup_fault: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FailoverRecord:
    """A promotion the daemon followed: from which timeline to which, where they forked, the
    new primary, and the WAL that exists only on the old timeline (lost with it) when any."""

    from_timeline: int
    to_timeline: int
    fork_lsn: str
    primary: tuple[str, int] | None
    at: float
    # (start LSN, end LSN, where its files were kept) or None when nothing was lost.
    old_timeline_only: tuple[str, str, str] | None = None

    def summary(self) -> str:
        where = f"{self.primary[0]}:{self.primary[1]}" if self.primary else "unknown"
        text = (
            f"failover followed: timeline {self.from_timeline} → {self.to_timeline} at "
            f"{self.fork_lsn}, primary now {where}"
        )
        if self.old_timeline_only is not None:
            start, end, kept = self.old_timeline_only
            text += (
                f"; WAL {start} to {end} exists only on timeline {self.from_timeline} (lost "
                f"with the old primary), kept in {kept}"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        lost = self.old_timeline_only
        return {
            "from_timeline": self.from_timeline,
            "to_timeline": self.to_timeline,
            "fork_lsn": self.fork_lsn,
            "primary": {"host": self.primary[0], "port": self.primary[1]} if self.primary else None,
            "at": self.at,
            "old_timeline_only": {"start_lsn": lost[0], "end_lsn": lost[1], "kept_in": lost[2]}
            if lost
            else None,
        }


@dataclass(frozen=True)
class JobRun:
    job: str
    started_at: float
    duration_s: float
    ok: bool
    reason: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class BackupSummary:
    """The last backup attempt as ``/status`` shows it (``last_attempt``)."""

    ok: bool
    trigger: str
    backup_id: str | None
    status: str | None
    size_bytes: int | None
    duration_s: float
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        summary = asdict(self)
        if not self.reason:
            del summary["reason"]
        return summary


@dataclass
class ServerState:
    phase: str = "starting"
    postgres_reached_at: float | None = None
    postgres_error: str | None = None
    # Why a new login fails while the kept connection still answers (a changed password).
    login_problem: str | None = None
    facts: ServerFacts | None = None
    identity: Identity | None = None
    slot: SlotState | None = None
    receive_wal_running: bool | None = None
    wal_received_at: float | None = None
    wal_archived_at: float | None = None
    # When the newest segment in wals/ was written: the local recovery point.
    wal_newest_at: float | None = None
    disk_free_bytes: int | None = None
    identity_problem: str | None = None
    # The host that answered as the primary, and the last promotion followed (FailoverRecord).
    primary: tuple[str, int] | None = None
    failover: FailoverRecord | None = None
    wal_gap: WalGap | None = None
    wal_gap_at: float | None = None
    checks: list[Check] = field(default_factory=list)
    checks_at: float | None = None
    backups: list[Backup] = field(default_factory=list)
    last_backup: dict[str, Any] = field(default_factory=dict)
    last_verify: dict[str, Any] = field(default_factory=dict)
    # Each listed backup's verdict as kept on disk (barman/verdicts), by backup ID.
    verdicts: dict[str, BackupVerdict] = field(default_factory=dict)
    last_drill: dict[str, Any] = field(default_factory=dict)
    # The off-site copy's record (offsite_copy.OffsiteCopier); empty without OFFSITE_URL.
    offsite: dict[str, Any] = field(default_factory=dict)
    programs: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, JobRun] = field(default_factory=dict)
    run_counts: Counter[tuple[str, bool]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    # Sharded: this replica's claim on the server (held, or who holds it, since when).
    claim: dict[str, Any] | None = None

    def recovery_points(self) -> dict[str, float | None]:
        """When the newest WAL was written, in ``wals/`` (``local``) and, with OFFSITE_URL, in
        the store (``offsite``): how much a loss of the host (or of both) would lose."""
        points: dict[str, float | None] = {"local": self.wal_newest_at}
        if self.offsite:
            points["offsite"] = self.offsite.get("newest_wal_at")
        return points


class State:
    def __init__(self, servers: list[str], clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._servers = {name: ServerState() for name in servers}
        self._runs: dict[str, JobRun] = {}
        self._run_counts: Counter[tuple[str, bool]] = Counter()
        self.started_at = clock()
        self.heartbeat_at = clock()
        # Sharded: this replica's shard and every configured server's owner (/status).
        self.shard: dict[str, Any] | None = None

    # Writers: one per fact -------------------------------------------------------------------
    def set_phase(self, server: str, phase: str) -> None:
        with self._lock:
            self._servers[server].phase = phase

    def record_programs(self, server: str, programs: Mapping[str, Any]) -> None:
        """Which PostgreSQL client and server programs serve this server (``/status``)."""
        with self._lock:
            self._servers[server].programs = dict(programs)

    def set_shard(self, document: Mapping[str, Any]) -> None:
        """Once at start: which shard this replica is, which servers it owns and why."""
        with self._lock:
            self.shard = dict(document)

    def record_claim(self, server: str, held: bool, holder: str | None) -> bool:
        """This replica's claim on the server, as just asked; True when that changed."""
        with self._lock:
            target = self._servers[server]
            previous = target.claim
            if previous is not None and previous["held"] == held and previous["holder"] == holder:
                return False
            target.claim = {"held": held, "holder": holder, "since": self._clock()}
            return True

    def set_problems(self, server: str, problems: list[str]) -> None:
        """Why the start-up refused the server (preflight, grants, client tools)."""
        with self._lock:
            self._servers[server].problems = list(problems)

    def postgres_reached(self, server: str, facts: ServerFacts) -> None:
        with self._lock:
            target = self._servers[server]
            target.facts, target.postgres_reached_at, target.postgres_error = (
                facts,
                self._clock(),
                None,
            )

    def postgres_seen(
        self, server: str, slot: SlotState, primary: tuple[str, int] | None = None
    ) -> None:
        """PostgreSQL answered the slot query: it is reachable, this is the slot now, and
        ``primary`` the host and port that answered (None keeps the last one known)."""
        with self._lock:
            target = self._servers[server]
            target.slot, target.postgres_reached_at, target.postgres_error = (
                slot,
                self._clock(),
                None,
            )
            target.primary = primary or target.primary

    def postgres_unreachable(self, server: str, error: str) -> None:
        with self._lock:
            self._servers[server].postgres_error = error

    def record_login(self, server: str, problem: str | None) -> None:
        """The probe's proof that a new login works (None), or why it fails."""
        with self._lock:
            self._servers[server].login_problem = problem

    def set_identity(self, server: str, identity: Identity) -> None:
        """What start-up (or an allowed streaming reset) recorded as the server's identity."""
        with self._lock:
            target = self._servers[server]
            target.identity, target.identity_problem = identity, None

    def record_primary(self, server: str, address: tuple[str, int] | None) -> None:
        with self._lock:
            self._servers[server].primary = address

    def record_failover(self, server: str, record: FailoverRecord, identity: Identity) -> None:
        """A promotion followed: the new identity is known and nothing waits for a person."""
        with self._lock:
            target = self._servers[server]
            target.failover, target.identity, target.identity_problem = record, identity, None
            target.primary = record.primary

    def set_identity_problem(self, server: str, problem: str | None) -> None:
        with self._lock:
            self._servers[server].identity_problem = problem

    def record_wal_gap(self, server: str, gap: WalGap) -> None:
        """WAL that did not reach the archive when the slot was recreated."""
        with self._lock:
            target = self._servers[server]
            target.wal_gap, target.wal_gap_at = gap, self._clock()

    def wal_gap_closed(self, server: str) -> None:
        with self._lock:
            target = self._servers[server]
            target.wal_gap, target.wal_gap_at = None, None

    def record_probe(
        self,
        server: str,
        *,
        receive_wal_running: bool,
        wal_received_at: float | None,
        wal_archived_at: float | None,
        disk_free_bytes: int,
        wal_newest_at: float | None = None,
    ) -> None:
        """The monitor's cheap facts: streaming process, WAL file times, free disk."""
        with self._lock:
            target = self._servers[server]
            target.receive_wal_running = receive_wal_running
            target.wal_received_at, target.wal_archived_at = wal_received_at, wal_archived_at
            target.wal_newest_at = wal_newest_at
            target.disk_free_bytes = disk_free_bytes

    def record_checks(self, server: str, checks: list[Check]) -> None:
        with self._lock:
            target = self._servers[server]
            target.checks, target.checks_at = list(checks), self._clock()

    def record_backups(self, server: str, backups: list[Backup]) -> None:
        with self._lock:
            target = self._servers[server]
            target.backups = list(backups)

    def record_backup(self, server: str, summary: BackupSummary) -> None:
        with self._lock:
            self._servers[server].last_backup = summary.as_dict()

    def record_verification(self, server: str, verification: Verification) -> None:
        with self._lock:
            self._servers[server].last_verify = verification.as_dict()

    def record_verdicts(self, server: str, verdicts: Mapping[str, BackupVerdict]) -> None:
        """The verdicts of the backups listed now, read from their files (all of them)."""
        with self._lock:
            self._servers[server].verdicts = dict(verdicts)

    def record_verdict(self, server: str, verdict: BackupVerdict) -> None:
        """One backup's verdict, just written."""
        with self._lock:
            self._servers[server].verdicts[verdict.backup_id] = verdict

    def record_offsite(self, server: str, record: Mapping[str, Any]) -> None:
        """The off-site copy's record (``offsite_copy.Records``), published whole."""
        with self._lock:
            self._servers[server].offsite = dict(record)

    def record_drill(self, server: str, result: DrillResult) -> None:
        with self._lock:
            self._servers[server].last_drill = result.as_dict()

    def record_run(self, server: str | None, run: JobRun) -> None:
        with self._lock:
            if server is None:
                self._runs[run.job] = run
                self._run_counts[(run.job, run.ok)] += 1
            else:
                self._servers[server].runs[run.job] = run
                self._servers[server].run_counts[(run.job, run.ok)] += 1

    def beat(self) -> None:
        self.heartbeat_at = self._clock()

    # Readers: copies ---------------------------------------------------------------------------
    def server(self, name: str) -> ServerState:
        with self._lock:
            return copy.deepcopy(self._servers[name])

    def servers(self) -> dict[str, ServerState]:
        with self._lock:
            return copy.deepcopy(self._servers)

    def global_runs(self) -> tuple[dict[str, JobRun], Counter[tuple[str, bool]]]:
        with self._lock:
            return dict(self._runs), Counter(self._run_counts)
