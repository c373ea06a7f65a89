"""Room on a disk before Barman writes to it: the one rule every space check applies (a backup
into BARMAN_HOME, a restore into its destination, a drill into its scratch directory), and the
estimate of how large the next backup will be. Pure functions over plain numbers and records.

Checking first is cheaper than failing late: a backup that runs out of space fails after it has
read the whole database and written most of it, and leaves a FAILED backup that holds that space
until it is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from barman_supervisor.barman.records import Backup, BackupStatus

_MIB = 1048576

# A new backup may be larger than the last one of its kind: the database grows between two
# backups, and a full's size varies with what compression wins. 1.2 allows a fifth more.
BACKUP_SPACE_FACTOR = 1.2
# Written beside the copy while it runs, whatever the database's size: the WAL PostgreSQL writes
# and Barman streams into the same volume meanwhile (at least the backup's own start and end
# segments, 16 MiB each by default), and the backup's label, manifest and log.
BACKUP_SPACE_MARGIN = 64 * _MIB


@dataclass(frozen=True)
class Estimate:
    """How large the next backup is expected to be, and from what (said in a refusal)."""

    size_bytes: int
    basis: str


def space_problem(
    free_bytes: int,
    needed_bytes: int,
    factor: float,
    margin: int,
    *,
    what: str,
    needed_label: str,
    hint: str,
) -> str | None:
    """Why ``free_bytes`` cannot hold ``what``, or None: it needs ``needed_bytes`` x ``factor``
    + ``margin``. The reason names both sizes and how the need was computed, so a person can
    judge the estimate as well as the disk."""
    required = int(needed_bytes * factor) + margin
    if free_bytes >= required:
        return None
    return (
        f"not enough free space for {what}: {mib(free_bytes)} free, {mib(required)} needed "
        f"({needed_label} {mib(needed_bytes)} x {factor:g} + {mib(margin)} margin); {hint}"
    )


def backup_estimate(
    backups: Iterable[Backup], incremental: bool, database_bytes: int | None
) -> Estimate | None:
    """The size of the next backup: the newest DONE backup of the same kind (full or
    incremental; its size is what Barman wrote, so compression counts), else the database's
    size (an uncompressed full is about that; an incremental at most that). None when neither
    is known: nothing to judge from, so no refusal."""
    same_kind = [
        backup
        for backup in backups
        if backup.status == BackupStatus.DONE
        and backup.incremental == incremental
        and backup.size_bytes is not None
    ]
    if same_kind:
        previous = max(same_kind, key=Backup.order_key)
        kind = "incremental" if incremental else "full"
        return Estimate(int(previous.size_bytes or 0), f"previous {kind} backup")
    if database_bytes is not None:
        return Estimate(database_bytes, "database size")
    return None


def backup_space_problem(free_bytes: int, estimate: Estimate | None) -> str | None:
    """Why a backup must not start for lack of room in BARMAN_HOME, or None."""
    if estimate is None:
        return None
    return space_problem(
        free_bytes,
        estimate.size_bytes,
        BACKUP_SPACE_FACTOR,
        BACKUP_SPACE_MARGIN,
        what="the backup in BARMAN_HOME",
        needed_label=estimate.basis,
        hint="free space (delete old backups, lower the retention) or grow the volume",
    )


def mib(value: int) -> str:
    return f"{value / _MIB:.0f} MiB"
