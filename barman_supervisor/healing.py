"""Decisions for self-healing, as pure functions over plain data.

Barman alone does not heal: after an outage nothing restarts streaming until the next cron, a
killed ``receive-wal`` leaves ``pg_receivewal`` holding the slot, an interrupted backup stays
STARTED for ever and a FAILED one keeps ``barman check`` red. The jobs act on what these
functions decide; the functions never touch a process or a file.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from barman_supervisor.barman import Backup, Check, newest_backup
from barman_supervisor.pid1 import ProcInfo
from barman_supervisor.postgres import Identity

INCOMPATIBLE_CLIENT_CHECKS = ("pg_basebackup_compatible", "pg_receivexlog_compatible")


def restart_delay(attempt: int, initial: float = 1.0, ceiling: float = 60.0) -> float:
    """Exponential backoff with jitter between streaming restarts: 1, 2, 4 … 60 s."""
    return min(ceiling, initial * 2.0 ** max(0, attempt - 1)) + random.uniform(0, initial)


def orphaned_receivers(table: Iterable[ProcInfo], streaming_dir: str) -> list[ProcInfo]:
    """``pg_receivewal`` processes for this server whose ``receive-wal`` parent is gone.

    Such an orphan keeps the slot busy, and every new ``receive-wal`` then fails with
    "replication slot is already in use" until it is stopped.
    """
    procs = list(table)
    by_pid = {proc.pid: proc for proc in procs}
    orphans = []
    for proc in procs:
        if proc.name != "pg_receivewal" or proc.state == "Z":
            continue
        if not any(arg == f"--directory={streaming_dir}" for arg in proc.cmdline):
            continue
        parent = by_pid.get(proc.ppid)
        if parent is None or "receive-wal" not in parent.cmdline:
            orphans.append(proc)
    return orphans


@dataclass(frozen=True)
class IdentityChange:
    kind: str  # "system_id", "timeline" or "slot_missing"
    reason: str
    resettable: bool


def identity_change(
    known: Identity | None, current: Identity, slot_exists: bool | None
) -> IdentityChange | None:
    """Failover, point-in-time restore or a lost slot, seen from what start-up recorded.

    A different system identifier is a different cluster: never resettable automatically.
    """
    if known is None:
        return None
    if current.system_id != known.system_id:
        return IdentityChange(
            "system_id",
            f"system identifier changed from {known.system_id} to {current.system_id}: a "
            "different cluster answers; check PG_HOST, then move the old backups away or "
            "configure a new server",
            resettable=False,
        )
    if current.timeline != known.timeline:
        return IdentityChange(
            "timeline",
            f"timeline changed from {known.timeline} to {current.timeline} (a replica was "
            "promoted or the server restored to a point in time)",
            resettable=True,
        )
    if slot_exists is False:
        return IdentityChange("slot_missing", "the replication slot disappeared", resettable=True)
    return None


def client_tool_problems(checks: Iterable[Check], version_num: int | None) -> list[str]:
    """``pg_basebackup``/``pg_receivewal`` older than the server refuse to work with it."""
    failed = [c.name for c in checks if c.name in INCOMPATIBLE_CLIENT_CHECKS and not c.ok]
    if not failed:
        return []
    package = (
        f"postgresql-client-{version_num // 10000}"
        if version_num
        else "the postgresql-client package of the server's major version"
    )
    return [
        f"the PostgreSQL client tools are older than the server ({', '.join(failed)} failed); "
        f"install {package} beside Barman"
    ]


def stale_started(backups: Iterable[Backup]) -> list[str]:
    """Backups left STARTED by a run that died; only call this when no backup can be running."""
    return [backup.backup_id for backup in backups if backup.status == "STARTED"]


def failed_to_delete(backups: Iterable[Backup], policy: str) -> list[str]:
    """FAILED backups superseded by a newer DONE one, under the ``delete`` policy; "newer" by
    Barman's timestamps, never by the ID (IDs follow the ``TZ`` of the Barman process).

    They keep ``barman check`` red for ever; once a newer backup is DONE they are only clutter.
    DONE backups are never in the result.
    """
    if policy != "delete":
        return []
    backups = list(backups)
    newest_done = newest_backup(backup for backup in backups if backup.status == "DONE")
    if newest_done is None:
        return []
    return [
        backup.backup_id
        for backup in sorted(backups, key=Backup.order_key)
        if backup.status == "FAILED"
        and backup.begin_time is not None  # a backup of unknown age is never deleted
        and backup.order_key() < newest_done.order_key()
    ]
