"""Timelines for a restore from WAL alone: which base backup can reach a timeline, and which
WAL files, on which timelines, recovery reads on its way there.

PostgreSQL starts a new timeline when a server is promoted (a failover, or the end of a
point-in-time recovery). The new timeline's history file (``00000002.history``) lists every
ancestor and the WAL position where it ended: ``<parent timeline> <switch LSN> <reason>``.
A recovery aimed at timeline N replays a base backup taken on N or on an ancestor that ended
*after* the backup was consistent, and reads each WAL segment from the newest timeline that
already existed at that segment: the segment holding a switch point is read from the child
(which starts with a copy of the parent's WAL up to the switch), so the parent's last,
incomplete segment is never needed.

Pure functions over names and positions, for ``offsite_restore`` and the off-site drill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_HALF = 32
# WAL segments per "log" (the middle eight hex digits of a segment name) are 4 GiB / size.
_LOG_SPAN = 1 << _HALF
FIRST_TIMELINE = 1


def history_name(timeline: int) -> str:
    return f"{timeline:08X}.history"


def timeline_of(wal_name: str) -> int:
    """The timeline in a WAL segment or history file name."""
    return int(wal_name[:8], 16)


def parse_lsn(text: str) -> int | None:
    """``0/5000060`` as a byte position; None for anything else."""
    match = _LSN.match(text.strip())
    if match is None:
        return None
    return (int(match.group(1), 16) << _HALF) | int(match.group(2), 16)


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    """The name of the segment of ``timeline`` that holds byte ``lsn``."""
    number = lsn // segment_size
    per_log = _LOG_SPAN // segment_size
    return f"{timeline:08X}{number // per_log:08X}{number % per_log:08X}"


def segment_number(wal_name: str, segment_size: int) -> int:
    """A segment's position in the WAL, whatever its timeline (comparable across timelines)."""
    per_log = _LOG_SPAN // segment_size
    return int(wal_name[8:16], 16) * per_log + int(wal_name[16:24], 16)


def parse_history(text: str) -> dict[int, int]:
    """A history file: each ancestor timeline and the position where it ended (its child
    starts there). Comments, blank and malformed lines are ignored."""
    ends = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or not fields[0].isdigit():
            continue
        lsn = parse_lsn(fields[1])
        if lsn is not None:
            ends[int(fields[0])] = lsn
    return ends


@dataclass(frozen=True)
class Stretch:
    """WAL to fetch on one timeline: segments ``first`` to ``last`` (both included); ``last``
    None on the target timeline, which is read until the store has no next segment."""

    timeline: int
    first: str
    last: str | None


def reaches(
    backup_timeline: int, backup_end_lsn: int, target: int, ancestors: dict[int, int]
) -> bool:
    """Whether a backup can be recovered onto timeline ``target``: it was taken on ``target``,
    or on an ancestor that ended after the backup was consistent. ``ancestors`` is the
    target's history (``parse_history``)."""
    if backup_timeline == target:
        return True
    end = ancestors.get(backup_timeline)
    return end is not None and backup_end_lsn <= end


def wal_plan(
    begin_wal: str, target: int, ancestors: dict[int, int], segment_size: int
) -> list[Stretch]:
    """The stretches of WAL that take a backup starting at ``begin_wal`` to timeline
    ``target``, in replay order; the backup must reach it (``reaches``)."""
    timeline = timeline_of(begin_wal)
    chain = sorted(t for t in ancestors if timeline <= t < target)
    stretches = []
    first = begin_wal
    for ancestor, child in zip(chain, [*chain[1:], target], strict=False):
        end = ancestors[ancestor]
        # The segment holding the switch is read from the child; the parent stops before it.
        if end // segment_size > segment_number(first, segment_size):
            last = segment_name(ancestor, (end // segment_size - 1) * segment_size, segment_size)
            stretches.append(Stretch(ancestor, first, last))
        first = segment_name(child, end, segment_size)
    stretches.append(Stretch(target, first, None))
    return stretches


@dataclass(frozen=True)
class WalGap:
    """WAL segments that no slot kept for Barman: the archive cannot replay across them."""

    first_missing: str
    last_missing: str

    def describe(self) -> str:
        return (
            f"WAL segments {self.first_missing} to {self.last_missing} never reached the archive "
            "(the replication slot was dropped and recreated?): no point in time between them "
            "and the next backup can be restored"
        )
