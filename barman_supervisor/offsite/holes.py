"""Holes in the store's WAL (issue 24): segments a restore from the store would need but the
store lacks.

``barman-cloud-wal-restore`` fetches one segment after another and recovery stops at the first
one missing, so a hole silently turns "restore to the newest point" into "restore to just before
the hole". The check: from each DONE backup in the store, follow the WAL it replays (its
timeline, then each child timeline from the switch point its history file names, as
``postgres.wal.wal_plan``) up to the newest segment the store has on the newest timeline, and
name every segment missing on the way. Pure over names; the listing is the caller's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from barman_supervisor.barman.records import BackupStatus
from barman_supervisor.offsite.plan import StoreBackup
from barman_supervisor.postgres.wal import (
    DEFAULT_SEGMENT_SIZE,
    FIRST_TIMELINE,
    parse_history,
    reaches,
    segment_from_number,
    segment_name,
    segment_number,
    segment_of_file,
    timeline_of,
    wal_plan,
)


@dataclass(frozen=True)
class WalHole:
    """Consecutive segments of one timeline the store lacks (both ends included)."""

    first_missing: str
    last_missing: str
    count: int

    def describe(self) -> str:
        if self.count == 1:
            return f"WAL segment {self.first_missing} is missing from the store"
        return (
            f"WAL segments {self.first_missing} to {self.last_missing} ({self.count}) are "
            "missing from the store"
        )


def hole_record(hole: WalHole) -> dict[str, Any]:
    """A hole as ``/status`` shows it (``offsite.wal_holes``) and ``/readyz`` words it."""
    return {**asdict(hole), "reason": hole.describe()}


def store_segments(names: Iterable[str]) -> set[str]:
    """The segments among the names of the store's WAL files (compression suffixes dropped;
    history files and backup labels left out)."""
    return {s for s in (segment_of_file(n) for n in names) if s is not None}


def wal_holes(
    segments: Collection[str],
    backups: Iterable[StoreBackup],
    histories: Mapping[int, str],
    upto: str | None = None,
) -> list[WalHole]:
    """The holes between each DONE backup's first segment and ``upto`` (by default the newest
    segment the store has on its newest timeline), in WAL order; empty when the WAL is
    contiguous. ``histories``: timeline -> its history file's text (for timelines > 1).
    A backup that cannot lead to that timeline (taken after its parent's switch) is left out.
    One server has one segment size (``wal_segment_size`` is fixed at initdb)."""
    newest = upto or _newest(segments)
    if newest is None:
        return []
    target = timeline_of(newest)
    ancestors = parse_history(histories.get(target, ""))
    missing: set[str] = set()
    size = DEFAULT_SEGMENT_SIZE
    for backup in backups:
        if backup.status != BackupStatus.DONE or backup.begin_wal is None:
            continue
        tli = backup.timeline or FIRST_TIMELINE
        if not reaches(tli, backup.end_lsn or 0, target, ancestors):
            continue
        size = backup.segment_size
        for stretch in wal_plan(backup.begin_wal, target, ancestors, size):
            last = stretch.last or newest
            for number in range(
                segment_number(stretch.first, size), segment_number(last, size) + 1
            ):
                name = segment_from_number(stretch.timeline, number, size)
                if name not in segments:
                    missing.add(name)
    return _runs(sorted(missing), size)


def restore_hole(
    names: Iterable[str],
    backup: StoreBackup,
    histories: Mapping[int, str],
    timeline: int,
    target_lsn: int | None,
) -> WalHole | None:
    """The first hole a restore of ``backup`` onto ``timeline`` would stop at, up to the target
    position or (none) the newest segment the store has on that timeline; None when the WAL it
    needs is contiguous. A time, xid or name target is not mapped to a segment: PostgreSQL
    itself refuses to end a recovery short of such a target."""
    segments = store_segments(names)
    if target_lsn is not None:
        upto: str | None = segment_name(timeline, target_lsn, backup.segment_size)
    else:
        upto = max((s for s in segments if timeline_of(s) == timeline), default=None)
    if upto is None:
        return None
    holes = wal_holes(segments, [backup], histories, upto)
    return holes[0] if holes else None


def _newest(segments: Collection[str]) -> str | None:
    """The newest segment: names sort by timeline, then position."""
    return max(segments, default=None)


def _runs(missing: list[str], size: int) -> list[WalHole]:
    """Sorted missing names grouped into runs of consecutive segments on one timeline."""
    holes: list[WalHole] = []
    for name in missing:
        if holes:
            last = holes[-1]
            same_timeline = timeline_of(last.last_missing) == timeline_of(name)
            next_one = segment_number(last.last_missing, size) + 1 == segment_number(name, size)
            if same_timeline and next_one:
                holes[-1] = WalHole(last.first_missing, name, last.count + 1)
                continue
        holes.append(WalHole(name, name, 1))
    return holes
