"""Is the daemon alive, and is each PostgreSQL server protected? Pure functions over state.

Liveness never looks at PostgreSQL or backups: restarting the daemon cannot fix those and would
only interrupt a backup. Readiness ("this server is protected") looks at everything a person
would check before trusting the backups: PostgreSQL reached, WAL streaming, Barman's own check,
a recent DONE backup, WAL not piling up on the primary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.triggers.combining import OrTrigger

from barman_supervisor.barman.config_files import MINIMUM_REDUNDANCY_CHECK
from barman_supervisor.barman.records import BackupStatus
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.crontab import longest_gap, parse_crontab
from barman_supervisor.status.state import ServerState


@dataclass(frozen=True)
class Limits:
    postgres_max_silence: float
    backup_max_age: float
    wal_max_lag_bytes: int
    wal_max_age: float | None
    disk_min_free_bytes: int = 0
    liveness_max_stall: float = 30.0
    # Off-site copy (OFFSITE_URL): None while the server has none.
    offsite_backup_max_delay: float | None = None
    offsite_wal_max_lag: float | None = None


@dataclass(frozen=True)
class Problem:
    condition: str
    reason: str


def age_text(seconds: float) -> str:
    """A duration as people read it in a reason or on the page: 45 s, 12 min, 3.2 h."""
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def liveness_problems(
    heartbeat_at: float, scheduler_running: bool, now: float, limits: Limits
) -> list[str]:
    problems = []
    if now - heartbeat_at > limits.liveness_max_stall:
        problems.append(f"main loop stalled for {age_text(now - heartbeat_at)}")
    if not scheduler_running:
        problems.append("scheduler is not running")
    return problems


# The start-up phase of a server another replica still holds (jobs/claims).
HANDOVER = "handover"


def server_problems(state: ServerState, now: float, limits: Limits) -> list[Problem]:
    """Every reason this server is not protected right now; empty when it is."""
    if state.phase == "failed":
        reasons = "; ".join(state.problems or ["see the logs"])
        return [Problem("startup_failed", f"start-up failed: {reasons}")]
    if state.phase == HANDOVER:
        # Another replica holds it and protects it until it lets go (a rolling change of
        # SHARD_COUNT): not this replica's problem, and a red /readyz here would stop the
        # rollout that makes the other let go.
        return []
    problems = _postgres(state, now, limits)
    if state.phase != "running":
        return [Problem("startup", f"starting ({state.phase})"), *problems]
    return [
        *problems,
        *_streaming(state),
        *_check(state),
        *_backup(state, now, limits),
        *_wal(state, now, limits),
        *_slot(state, limits),
        *_failover(state),
        *_wal_gap(state),
        *_disk(state, limits),
        *_drill(state, now),
        *_offsite(state, now, limits),
    ]


def _postgres(state: ServerState, now: float, limits: Limits) -> list[Problem]:
    if state.postgres_error:
        return [Problem("postgres", f"PostgreSQL unreachable: {state.postgres_error}")]
    if state.login_problem:
        # Its own condition: it alerts at once, without the grace a restart gets.
        return [Problem("postgres_login", state.login_problem)]
    if state.postgres_reached_at is None:
        return [Problem("postgres", "PostgreSQL not reached yet")]
    silence = now - state.postgres_reached_at
    if silence > limits.postgres_max_silence:
        return [Problem("postgres", f"PostgreSQL not reached for {age_text(silence)}")]
    return []


def _streaming(state: ServerState) -> list[Problem]:
    problems = []
    if state.receive_wal_running is False:
        problems.append(Problem("streaming", "barman receive-wal is not running"))
    if state.slot is not None and not state.slot.exists:
        problems.append(Problem("streaming", "the replication slot does not exist"))
    elif state.slot is not None and not state.slot.active:
        problems.append(
            Problem("streaming", "the replication slot is not active: WAL is not streaming")
        )
    return problems


def _wal_gap(state: ServerState) -> list[Problem]:
    """Red until a backup that ended after the gap was seen gives a restorable point again."""
    if state.wal_gap is None or state.wal_gap_at is None:
        return []
    after = [
        backup
        for backup in state.backups
        if backup.status == BackupStatus.DONE and (backup.end_time or 0.0) >= state.wal_gap_at
    ]
    if after:
        return []
    return [Problem("wal_gap", f"{state.wal_gap.describe()}; a fresh backup is owed")]


def _check(state: ServerState) -> list[Problem]:
    if not state.checks:
        return [Problem("check", "no barman check result yet")]
    # Minimum redundancy is the backup condition's to judge, from the backups listed now: the
    # check ran beside the first backup and says "none" until the next check.
    failed = [
        check.name
        for check in state.checks
        if not check.ok and check.name != MINIMUM_REDUNDANCY_CHECK
    ]
    if failed:
        return [Problem("check", f"barman check failed: {', '.join(failed)}")]
    return []


def _backup(state: ServerState, now: float, limits: Limits) -> list[Problem]:
    problems = []
    done = [b for b in state.backups if b.status == BackupStatus.DONE and b.end_time]
    if not done:
        problems.append(Problem("backup", "no DONE backup"))
    else:
        newest = max(backup.end_time or 0.0 for backup in done)
        age = now - newest
        if age > limits.backup_max_age:
            problems.append(
                Problem(
                    "backup",
                    f"newest DONE backup is {age_text(age)} old "
                    f"(max {age_text(limits.backup_max_age)})",
                )
            )
    last = state.runs.get("backup")
    if last is not None and not last.ok:
        problems.append(Problem("backup_job", f"last backup failed: {last.reason}"))
    return problems


def _failover(state: ServerState) -> list[Problem]:
    return [Problem("failover", state.identity_problem)] if state.identity_problem else []


def _disk(state: ServerState, limits: Limits) -> list[Problem]:
    free = state.disk_free_bytes
    if free is None or free >= limits.disk_min_free_bytes:
        return []
    return [
        Problem(
            "disk",
            f"the Barman volume has {free // 1048576} MiB free (DISK_MIN_FREE is "
            f"{limits.disk_min_free_bytes // 1048576} MiB): free space or grow it",
        )
    ]


def drill_reason(
    last_drill: Mapping[str, Any] | None, now: float, max_age: float | None = None
) -> str | None:
    """Why the restore drill makes the server unready, or None: a backup that does not restore
    is no protection.

    Red when the last drill failed (one cut short by a shutdown says nothing about the backup
    and is ignored) and, with ``max_age``, when the last success is older than that. No drill
    yet is not a problem: drills are off unless DRILL_SCHEDULE is set.
    """
    if not last_drill:
        return None
    if not last_drill.get("ok"):
        if last_drill.get("interrupted"):
            return None
        backup = last_drill.get("backup_id")
        where = f" (backup {backup})" if backup else ""
        return f"last restore drill failed{where}: {last_drill.get('reason')}"
    if max_age is not None:
        age = now - float(last_drill.get("started_at") or 0.0)
        if age > max_age:
            return f"last successful restore drill is {age_text(age)} old"
    return None


def _drill(state: ServerState, now: float) -> list[Problem]:
    reason = drill_reason(state.last_drill, now)
    return [Problem("drill", reason)] if reason else []


def _wal(state: ServerState, now: float, limits: Limits) -> list[Problem]:
    problems = []
    lag = state.slot.lag_bytes if state.slot is not None else None
    if lag is not None and lag > limits.wal_max_lag_bytes:
        problems.append(
            Problem("wal", f"{lag // 1048576} MiB of WAL on the primary not yet received by Barman")
        )
    if limits.wal_max_age is not None and state.wal_received_at is not None:
        age = now - state.wal_received_at
        if age > limits.wal_max_age:
            problems.append(Problem("wal", f"no WAL received for {age_text(age)}"))
    return problems


def _slot(state: ServerState, limits: Limits) -> list[Problem]:
    """The primary is about to remove, or removed, WAL Barman's slot holds for it
    (``max_slot_wal_keep_size``): ``unreserved`` says the next checkpoint may, ``lost`` that it
    did (the WAL gap this leaves is the ``wal_gap`` condition's; the slot cannot stream again
    until it is recreated), and a ``safe_wal_size`` below WAL_MAX_LAG says little room is left."""
    slot = state.slot
    if slot is None or not slot.exists:
        return []
    if slot.wal_status == "lost":
        return [
            Problem(
                "slot",
                "the primary removed WAL the replication slot held for Barman "
                "(max_slot_wal_keep_size): drop and recreate the slot; a backup is owed",
            )
        ]
    if slot.wal_status == "unreserved":
        return [
            Problem(
                "slot",
                "the primary holds more WAL for Barman's slot than max_slot_wal_keep_size and "
                "removes it at the next checkpoint: get streaming going now",
            )
        ]
    if slot.safe_wal_size is not None and slot.safe_wal_size < limits.wal_max_lag_bytes:
        return [
            Problem(
                "slot",
                f"{slot.safe_wal_size // 1048576} MiB more WAL and the primary removes WAL "
                "Barman's slot holds (max_slot_wal_keep_size)",
            )
        ]
    return []


def _offsite(state: ServerState, now: float, limits: Limits) -> list[Problem]:
    """The off-site copy is behind: its last attempt failed (the reason says why), a backup is
    of a kind it cannot copy, its WAL has a hole (issue 24), the newest backup waits longer
    than OFFSITE_BACKUP_MAX_DELAY, or WAL longer than OFFSITE_WAL_MAX_LAG."""
    record = state.offsite
    if not record or limits.offsite_backup_max_delay is None:
        return []
    problems = []
    if record.get("last_error"):
        problems.append(Problem("offsite", f"last off-site copy failed: {record['last_error']}"))
    problems += [
        Problem("offsite", f"backup {backup_id} cannot be copied off-site: {reason}")
        for backup_id, reason in sorted((record.get("refused_backups") or {}).items())
    ]
    owed_since = record.get("oldest_owed_backup_end")
    if owed_since is not None and now - owed_since > limits.offsite_backup_max_delay:
        problems.append(
            Problem(
                "offsite",
                f"backup {record.get('oldest_owed_backup')} not copied off-site "
                f"{age_text(now - owed_since)} after it ended (max "
                f"{age_text(limits.offsite_backup_max_delay)})",
            )
        )
    problems += [
        Problem("offsite", f"{hole.get('reason')}; a restore from the store stops before it")
        for hole in record.get("wal_holes") or []
    ]
    lag = wal_lag_seconds(record, now)
    if limits.offsite_wal_max_lag is not None and lag > limits.offsite_wal_max_lag:
        problems.append(
            Problem(
                "offsite",
                f"{record.get('wal_owed', 0)} WAL file(s) not copied off-site, the oldest "
                f"waiting {age_text(lag)} (max {age_text(limits.offsite_wal_max_lag)})",
            )
        )
    return problems


def wal_lag_seconds(offsite: Mapping[str, Any], now: float) -> float:
    """How long the oldest WAL file owed to the store has waited; 0 when none is owed."""
    since = offsite.get("oldest_owed_wal_at")
    return max(0.0, now - float(since)) if since is not None else 0.0


def server_limits(settings: Settings, server: ServerSettings, now: datetime) -> Limits:
    """Readiness limits; a backup may be 1.5 gaps of its schedules (full and incremental
    together) old unless BACKUP_MAX_AGE says."""
    schedules = (server.backup_schedule, server.backup_policy.incremental_schedule)
    triggers = [parse_crontab(schedule, settings.timezone) for schedule in schedules if schedule]
    gap = longest_gap(OrTrigger(triggers), now)
    return Limits(
        postgres_max_silence=3 * settings.health_interval + settings.pg_connect_timeout,
        backup_max_age=server.backup_max_age or 1.5 * gap.total_seconds(),
        wal_max_lag_bytes=settings.wal_max_lag_bytes,
        wal_max_age=settings.wal_max_age,
        disk_min_free_bytes=settings.disk_min_free_bytes,
        offsite_backup_max_delay=server.offsite.backup_max_delay if server.offsite else None,
        offsite_wal_max_lag=server.offsite.wal_max_lag if server.offsite else None,
    )


def limits_lookup(settings: Settings, now: datetime) -> Callable[[str], Limits]:
    """Each server's limits, computed once at start; a name no server has (an HTTP caller's)
    gets the first server's."""
    limits = {server.name: server_limits(settings, server, now) for server in settings.servers}
    first = limits[settings.servers[0].name]
    return lambda name: limits.get(name, first)
