"""Chains of block-level incremental backups (issue 13): pure decisions over ``list-backups``.

An incremental backup (PostgreSQL >= 17, ``barman backup --incremental PARENT``) holds only the
blocks changed since its parent; restoring it needs every backup from the full at the root of its
chain down to it, combined by ``pg_combinebackup``. So the parent is chosen here deliberately:
the newest DONE backup, and only when every link up to its full is present and DONE, was taken
with WAL summaries, and the chain is still shorter than the policy's bound. Anything else means
the next backup is a full, with the reason said.

``list-backups`` does not print a backup's parent; ``backup.info`` does (``parent_backup_id=``),
and so it is read from there beside the start time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from barman_supervisor.barman.records import Backup, BackupStatus, newest_done
from barman_supervisor.config import BackupPolicy
from barman_supervisor.postgres.connection import ServerFacts
from barman_supervisor.postgres.programs import major_of

INCREMENTAL_MIN_VERSION = 170000


@dataclass(frozen=True)
class NextBackup:
    """The next scheduled backup: a full when ``parent`` is None, with why."""

    parent: str | None
    reason: str


@dataclass(frozen=True)
class Chain:
    """A backup's chain from its full (first) down to it (last); ``broken`` names a lost link."""

    members: tuple[Backup, ...]
    broken: str | None = None

    @property
    def length(self) -> int:
        """Backups a restore combines: the full plus its incrementals."""
        return len(self.members)

    @property
    def incrementals(self) -> int:
        return max(len(self.members) - 1, 0)

    @property
    def size_bytes(self) -> int:
        return sum(member.size_bytes or 0 for member in self.members)


def chain_of(backup: Backup, backups: Iterable[Backup]) -> Chain:
    """Walk ``parent_id`` links up to the full; a missing parent or a loop breaks the chain."""
    by_id: Mapping[str, Backup] = {b.backup_id: b for b in backups}
    members = [backup]
    seen = {backup.backup_id}
    current = backup
    while current.parent_id is not None:
        parent = by_id.get(current.parent_id)
        if parent is None:
            return Chain(tuple(reversed(members)), f"parent {current.parent_id} is missing")
        if parent.backup_id in seen:
            return Chain(tuple(reversed(members)), f"backup {parent.backup_id} is its own ancestor")
        seen.add(parent.backup_id)
        members.append(parent)
        current = parent
    return Chain(tuple(reversed(members)))


def newest_chain(backups: Iterable[Backup]) -> Chain | None:
    """The chain of the newest DONE backup (the one a restore of "latest" uses); None if none."""
    backups = list(backups)
    newest = newest_done(backups)
    return None if newest is None else chain_of(newest, backups)


def next_backup(backups: Iterable[Backup], chain_max: int) -> NextBackup:
    """The parent for the next incremental, or a full and why (see the module docstring)."""
    backups = list(backups)
    parent = newest_done(backups)
    if parent is None:
        return NextBackup(None, "no DONE backup to build on")
    chain = chain_of(parent, backups)
    if chain.broken is not None:
        return NextBackup(None, f"the chain of {parent.backup_id} is broken: {chain.broken}")
    failed = [m.backup_id for m in chain.members if m.status != BackupStatus.DONE]
    if failed:
        reason = f"backup {failed[0]} of the chain of {parent.backup_id} is not DONE"
        return NextBackup(None, reason)
    if parent.summarize_wal is False:
        return NextBackup(None, f"backup {parent.backup_id} was taken without WAL summaries")
    if chain.incrementals >= chain_max:
        return NextBackup(
            None, f"the chain of {parent.backup_id} holds {chain.incrementals} incrementals already"
        )
    return NextBackup(parent.backup_id, f"newest DONE backup, chain of {chain.length}")


def incremental_problems(
    policy: BackupPolicy, facts: ServerFacts, combine_dir: Path | None
) -> list[str]:
    """Why incremental backups cannot work on this server, each with its fix; empty when they
    can or the policy asks for none. ``combine_dir`` holds the server major's
    ``pg_combinebackup`` (None: not installed), without which no incremental is restorable."""
    if not policy.incremental:
        return []
    var = "BACKUP_INCREMENTAL_SCHEDULE"
    major = major_of(facts.version_num)
    if facts.version_num < INCREMENTAL_MIN_VERSION:
        return [
            f"{var} asks for incremental backups, which need PostgreSQL 17 or newer and the "
            f"server is {major}; upgrade it or unset {var}"
        ]
    problems = []
    if facts.summarize_wal != "on":
        problems.append(
            f"{var} asks for incremental backups and summarize_wal is off on the server; run "
            "ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf(); as a superuser, or "
            f"unset {var}"
        )
    if combine_dir is None:
        problems.append(f"{var} asks for incremental backups and {combine_missing(major)}")
    return problems


def combine_missing(major: int) -> str:
    """Barman itself only says "expected str, bytes or os.PathLike object, not NoneType" when
    pg_combinebackup is missing (EnterpriseDB/barman#1096): the daemon says it first."""
    return (
        f"pg_combinebackup {major}, which restores incremental backups, is not installed "
        f"(PG_BIN_DIR or /usr/lib/postgresql/{major}/bin); install PostgreSQL {major}'s client "
        "programs or set PG_BIN_DIR"
    )
