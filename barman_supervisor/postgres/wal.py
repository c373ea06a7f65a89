"""WAL names, positions, segments and timelines: the one place that computes them.

A WAL segment is named by three 8-digit hex numbers: its timeline, its "log" (4 GiB of WAL) and
its segment within that log, so the name depends on the segment size (16 MiB by default,
``wal_segment_size``). A position (LSN) is written ``high/low`` in hex. Barman's archive keeps a
segment under ``wals/<timeline+log>/`` (``archive_directory``), beside backup labels
(``<segment>.<offset>.backup``) and timeline history files (``<timeline>.history``).

PostgreSQL starts a new timeline when a server is promoted (a failover, or the end of a
point-in-time recovery). The new timeline's history file (``00000002.history``) lists every
ancestor and the WAL position where it ended: ``<parent timeline> <switch LSN> <reason>``.
A recovery aimed at timeline N replays a base backup taken on N or on an ancestor that ended
*after* the backup was consistent, and reads each WAL segment from the newest timeline that
already existed at that segment: the segment holding a switch point is read from the child
(which starts with a copy of the parent's WAL up to the switch), so the parent's last,
incomplete segment is never needed.

Pure functions over names and positions (Barman's own ``barman/xlog.py`` is the model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every file name a WAL archive holds: a segment, maybe still being written (``.partial``) or
# with a compression suffix; a backup label; a timeline history file.
_WAL_FILE = re.compile(
    r"^(?:(?P<segment>[0-9A-F]{24})(?P<label>\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)"
    r"(?P<suffix>(?:\.partial)?(?:\.\w+)?)$"
)
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_HEX = 16
_UPPER_HEX = frozenset("0123456789ABCDEF")
_HALF = 32
# WAL segments per "log" (the middle eight hex digits of a segment name) are 4 GiB / size.
_LOG_SPAN = 1 << _HALF
_TIMELINE_DIGITS = 8
# A segment name's timeline and log: the name of its directory in Barman's archive.
_DIRECTORY_DIGITS = 16
FIRST_TIMELINE = 1
# PostgreSQL's segment size unless initdb was told otherwise (``wal_segment_size``).
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024


def is_wal_name(name: str) -> bool:
    """A complete WAL file as PostgreSQL archives it: a segment, a timeline history file or a
    backup label; never ``.partial`` (not yet complete) nor a compressed name."""
    match = _WAL_FILE.match(name)
    return match is not None and not match["suffix"]


def is_segment_name(name: str) -> bool:
    """A plain segment name (no label, history, ``.partial`` or suffix)."""
    match = _WAL_FILE.match(name)
    return match is not None and match["segment"] == name


def segment_of_file(name: str) -> str | None:
    """The segment a file of a WAL directory holds (``.partial`` and compression suffixes
    dropped); None for a backup label, a history file or anything else."""
    match = _WAL_FILE.match(name)
    return match["segment"] if match is not None and not match["label"] else None


def archive_directory(segment: str) -> str:
    """The directory of Barman's archive that holds a segment: its timeline and log."""
    return segment[:_DIRECTORY_DIGITS]


def is_archive_directory(name: str) -> bool:
    """A directory of Barman's archive (``wals/<timeline+log>``), by its name."""
    return len(name) == _DIRECTORY_DIGITS and set(name) <= _UPPER_HEX


def history_name(timeline: int) -> str:
    return f"{timeline:08X}.history"


def timeline_of(wal_name: str) -> int:
    """The timeline in a WAL segment or history file name."""
    return int(wal_name[:_TIMELINE_DIGITS], _HEX)


def parse_lsn(text: str) -> int | None:
    """``0/5000060`` as a byte position; None for anything else."""
    match = _LSN.match(text.strip())
    if match is None:
        return None
    return (int(match.group(1), _HEX) << _HALF) | int(match.group(2), _HEX)


def segment_name(timeline: int, lsn: int, segment_size: int) -> str:
    """The name of the segment of ``timeline`` that holds byte ``lsn``."""
    return segment_from_number(timeline, lsn // segment_size, segment_size)


def segment_number(wal_name: str, segment_size: int) -> int:
    """A segment's position in the WAL, whatever its timeline (comparable across timelines)."""
    per_log = _LOG_SPAN // segment_size
    return int(wal_name[8:16], _HEX) * per_log + int(wal_name[16:24], _HEX)


def segment_from_number(timeline: int, number: int, segment_size: int) -> str:
    """The name of segment ``number`` (``segment_number``) on ``timeline``."""
    per_log = _LOG_SPAN // segment_size
    return f"{timeline:08X}{number // per_log:08X}{number % per_log:08X}"


def next_segment_name(name: str, segment_size: int) -> str:
    """The segment PostgreSQL writes after ``name`` on the same timeline."""
    return segment_from_number(
        timeline_of(name), segment_number(name, segment_size) + 1, segment_size
    )


def segment_names_from(first: str, segment_size: int, count: int) -> list[str]:
    """``count`` consecutive segment names from ``first`` on."""
    names = [first]
    while len(names) < count:
        names.append(next_segment_name(names[-1], segment_size))
    return names


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
            "(the replication slot was dropped and recreated, or the primary removed its WAL "
            "past max_slot_wal_keep_size?): no point in time between them and the next backup "
            "can be restored"
        )


# PostgreSQL aligns every WAL record on 8 bytes (MAXALIGN).
_RECORD_ALIGN = 8
PARTIAL_SUFFIX = ".partial"


def format_lsn(position: int) -> str:
    """A byte position as PostgreSQL writes it: ``0/5000060``."""
    return f"{position >> _HALF:X}/{position & (_LOG_SPAN - 1):X}"


def on_lineage(name: str, timeline: int, ancestors: dict[int, int], segment_size: int) -> bool:
    """Whether a segment file belongs to the history of ``timeline``: on it, or on an ancestor
    at or before the segment where that ancestor ended. Anything else exists only on a timeline
    the cluster left (WAL an old primary wrote after its standby was promoted)."""
    tli = timeline_of(name)
    if tli == timeline:
        return True
    end = ancestors.get(tli)
    return end is not None and segment_number(name, segment_size) <= end // segment_size


@dataclass(frozen=True)
class FollowPlan:
    """How streaming continues after a promotion (``follow_plan``).

    ``fork_lsn``: where the timeline Barman streamed ended in the new primary's history;
    ``set_aside``: files of ``streaming/`` that lie past it (only the old timeline has them;
    ``pg_receivewal`` would ask the new primary for them and be refused); ``resume``: the empty
    ``.partial`` that makes ``pg_receivewal`` start at the fork's segment on the timeline that
    follows, so no WAL between the fork and now is missed; None when a file already does."""

    fork_lsn: int
    next_timeline: int
    set_aside: tuple[str, ...]
    resume: str | None


def follow_plan(
    known: int, current: int, ancestors: dict[int, int], streaming: list[str], segment_size: int
) -> FollowPlan | None:
    """The plan to follow a promotion from timeline ``known`` to ``current`` (whose history is
    ``ancestors``); None when ``known`` is not in that history (not a promotion of the
    timeline Barman streamed: a person decides).

    ``pg_receivewal`` starts from the newest file in its directory, on that file's timeline:
    when it lies at or before the fork, the server streams the old timeline up to the switch
    and then the new one, and nothing is lost; when it lies past the fork (an asynchronous
    standby was promoted behind), the server answers "requested starting point ... is not in
    this server's history" for ever. Files are only moved, never deleted."""
    fork = ancestors.get(known)
    if fork is None:
        return None
    next_timeline = min([t for t in ancestors if t > known] + [current])
    segments = [name for name in streaming if is_segment_name(name[:24])]
    set_aside = tuple(
        sorted(n for n in segments if not on_lineage(n[:24], current, ancestors, segment_size))
    )
    kept = [n for n in segments if n not in set_aside]
    start = segment_name(next_timeline, fork, segment_size)
    newest = max(((segment_number(n, segment_size), timeline_of(n)) for n in kept), default=(-1, 0))
    resume = None if newest >= (fork // segment_size, next_timeline) else start + PARTIAL_SUFFIX
    return FollowPlan(fork, next_timeline, set_aside, resume)


def written_end(start: int, data: bytes) -> int:
    """The WAL position after the last byte written into a segment that begins at ``start``:
    ``pg_receivewal`` zero-fills a segment before writing into it, so the written part ends at
    its last non-zero byte (rounded up to a record's alignment); ``start`` for an empty one."""
    used = len(data.rstrip(b"\0"))
    if used == 0:
        return start
    return start + -(-used // _RECORD_ALIGN) * _RECORD_ALIGN
