"""Decisions for self-healing, as pure functions over plain data.

Barman alone does not heal: after an outage nothing restarts streaming until the next cron, a
killed ``receive-wal`` leaves ``pg_receivewal`` holding the slot, an interrupted backup stays
STARTED for ever and a FAILED one keeps ``barman check`` red. The jobs act on what these
functions decide; the functions never touch a process or a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from barman_supervisor.barman.commands import Check
from barman_supervisor.barman.config_files import MINIMUM_REDUNDANCY_CHECK
from barman_supervisor.barman.home import WalHoldings
from barman_supervisor.barman.records import Backup, BackupInfo, BackupStatus, newest_done
from barman_supervisor.postgres.connection import Identity, SlotState
from barman_supervisor.postgres.wal import (
    WalGap,
    parse_lsn,
    segment_from_number,
    segment_number,
    timeline_of,
)
from barman_supervisor.process.proctable import ProcInfo

# pg_replication_slots.wal_status of a slot whose WAL the primary removed.
LOST = "lost"
# How ENOSPC reads in Barman's errors and log (``logtail`` names it as a failure's cause).
NO_SPACE = "no space left on device"
INCOMPATIBLE_CLIENT_CHECKS = ("pg_basebackup_compatible", "pg_receivexlog_compatible")
# Barman's checks that it reached PostgreSQL, on the normal and on the streaming connection.
# Either failed, it reports the compatibility checks failed too ("PostgreSQL version: None":
# Barman reads the server's version over the streaming connection), which then says nothing
# about the client tools.
POSTGRESQL_CHECK = "postgresql"
STREAMING_CHECK = "postgresql_streaming"
REACHED_CHECKS = (POSTGRESQL_CHECK, STREAMING_CHECK)


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
    """``pg_basebackup``/``pg_receivewal`` older than the server refuse to work with it. Only
    when Barman reached the server on both connections: a check that ran while it was down (a
    failover, a restart during the start-up) once stopped the daemon for "client tools older
    than the server", and so did one that ran as the primary was shutting down, after the
    normal connection answered and before the streaming one did (the failover bench)."""
    checks = list(checks)
    if any(c.name in REACHED_CHECKS and not c.ok for c in checks):
        return []
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


def redundancy_check_stale(checks: Iterable[Check], backups: Iterable[Backup]) -> bool:
    """``barman check`` said "no backup" (minimum redundancy) but a backup is DONE now: the
    check ran beside the first backup. Checked again, ``/status`` and the metrics stop showing
    a failure that is over instead of waiting BARMAN_CHECK_INTERVAL for the next check."""
    failed = any(check.name == MINIMUM_REDUNDANCY_CHECK and not check.ok for check in checks)
    return failed and newest_done(backups) is not None


# Barman counts WAL for a backup in these (``STATUS_COPY_DONE``), from its begin to its end WAL.
_COPY_DONE = (BackupStatus.WAITING_FOR_WALS, BackupStatus.DONE)
UNFINISHED_REASON = (
    "Barman stopped before recording where the backup ended (no end_wal): the primary went away "
    "as it finished; not restorable"
)


def unfinished_copies(infos: Mapping[str, BackupInfo]) -> list[str]:
    """Backups recorded as copied (WAITING_FOR_WALS, DONE) with no ``end_wal``.

    Barman 3.20 leaves one when the primary goes away (a switchover) as its backup stops: it
    saves WAITING_FOR_WALS, then crashes printing the end position it never got; every
    ``barman list-backups``, ``backup`` and ``check`` of the server then fails on that file
    ("'<=' not supported between instances of 'str' and 'NoneType'"), so no backup is taken
    again until someone edits it. Recorded FAILED, Barman skips its WAL and works again."""
    return [
        backup_id
        for backup_id, info in infos.items()
        if info.status in _COPY_DONE and info.end_wal is None
    ]


def stale_started(backups: Iterable[Backup]) -> list[str]:
    """Backups left STARTED by a run that died; only call this when no backup can be running."""
    return [backup.backup_id for backup in backups if backup.status == BackupStatus.STARTED]


def failed_to_delete(backups: Iterable[Backup], policy: str) -> list[str]:
    """FAILED backups superseded by a newer DONE one, under the ``delete`` policy; "newer" by
    Barman's timestamps, never by the ID (IDs follow the ``TZ`` of the Barman process).

    They keep ``barman check`` red for ever; once a newer backup is DONE they are only clutter.
    DONE backups are never in the result, nor a backup another one names as its parent (issue 13:
    ``barman delete`` removes a parent's incremental children with it).
    """
    if policy != "delete":
        return []
    backups = list(backups)
    newest = newest_done(backups)
    if newest is None:
        return []
    parents = {b.parent_id for b in backups if b.parent_id is not None}
    return [
        backup.backup_id
        for backup in sorted(backups, key=Backup.order_key)
        if backup.status == BackupStatus.FAILED
        and backup.backup_id not in parents
        and backup.known_time is not None  # a backup of unknown age is never deleted
        and backup.order_key() < newest.order_key()
    ]


def out_of_space_failures(
    before: Iterable[Backup], after: Iterable[Backup], reason: str, policy: str
) -> list[str]:
    """The FAILED backups an attempt that ran out of space (``reason``) left: those listed
    ``after`` it and not ``before`` (no clock compared), under the ``delete`` policy, at once
    rather than once a newer backup is DONE. Such a backup can never be used, and the files it
    copied hold the very space the next attempt needs (on a full volume that attempt is refused
    or fails the same way). Never a DONE backup."""
    if policy != "delete" or NO_SPACE not in reason.lower():
        return []
    known = {backup.backup_id for backup in before}
    return [
        backup.backup_id
        for backup in sorted(after, key=Backup.order_key)
        if backup.status == BackupStatus.FAILED and backup.backup_id not in known
    ]


def slot_start(slot: SlotState) -> str | None:
    """Where WAL is kept for Barman from: the slot's restart position; for a slot no receiver
    has used yet (created without reserving WAL), the server's current position. A slot whose
    WAL the primary removed (``wal_status`` lost, past ``max_slot_wal_keep_size``) keeps
    nothing: what Barman lacks up to the current position is a gap (``wal_gap``)."""
    if slot.wal_status == LOST or slot.restart_lsn is None:
        return slot.current_lsn
    return slot.restart_lsn


def wal_gap(holdings: WalHoldings, slot_start_lsn: str | None, segment_size: int) -> WalGap | None:
    """WAL missing at the head of Barman's archive, or about to be.

    Two ways it shows: streaming resumed further on than the newest archived segment (the
    streaming directory starts after a hole), or the slot starts past the newest segment Barman
    holds (a slot only moves past WAL its receiver confirmed, so normally it lies in that segment
    or the next; one further on was created afresh, e.g. by ``create_slot = auto`` after a DBA
    dropped it, and nothing kept the WAL in between for Barman).
    """
    archived, oldest = holdings.archived_newest, holdings.streaming_oldest
    if archived is not None and oldest is not None:
        after_archived = segment_number(archived, segment_size) + 1
        if segment_number(oldest, segment_size) > after_archived:
            return _gap(
                oldest, after_archived, segment_number(oldest, segment_size) - 1, segment_size
            )
    held = holdings.streaming_newest or archived
    start = parse_lsn(slot_start_lsn) if slot_start_lsn is not None else None
    if held is None or start is None:
        return None
    needed = start // segment_size
    after_held = segment_number(held, segment_size) + 1
    if needed <= after_held:
        return None
    return _gap(held, after_held, needed - 1, segment_size)


def _gap(on: str, first: int, last: int, segment_size: int) -> WalGap:
    """Segments ``first`` to ``last`` (numbers) on the timeline of segment ``on``."""
    timeline = timeline_of(on)
    return WalGap(
        segment_from_number(timeline, first, segment_size),
        segment_from_number(timeline, last, segment_size),
    )
