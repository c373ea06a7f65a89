"""Whether the archive can reach a recovery target time, as pure functions over plain text.

PostgreSQL stops a point-in-time recovery at the first commit (or abort) record whose time is
after ``recovery_target_time``. When the archived WAL holds no such record, recovery replays all
of it and then refuses to start ("recovery ended before configured recovery target was
reached"), after ``barman recover`` already said it succeeded. So a target is reachable only
when a commit after it has been archived: the restore command first writes one and archives the
WAL when the server answers, then checks the archive with ``pg_waldump``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from barman_supervisor.postgres.wal import is_segment_name

# pg_waldump (with TZ=UTC): "desc: COMMIT 2026-11-23 14:05:00.123456 UTC; ..."
_COMMIT = re.compile(
    r"desc: (?:COMMIT|ABORT) (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC"
)


def newest_segments(xlog_db: str, count: int = 8) -> list[str]:
    """The names of the newest archived WAL segments in Barman's ``<server>-xlog.db``, newest
    first.

    Each line is ``name<TAB>size<TAB>time<TAB>compression``; history files are skipped.
    """
    names = [line.split("\t", 1)[0] for line in xlog_db.splitlines()]
    segments = sorted({name for name in names if is_segment_name(name)})
    return segments[::-1][:count]


def last_commit_time(waldump_output: str) -> float | None:
    """The time of the last commit or abort record ``pg_waldump`` printed, as a timestamp."""
    stamps = [
        datetime.fromisoformat(match["time"]).replace(tzinfo=UTC).timestamp()
        for match in _COMMIT.finditer(waldump_output)
    ]
    return max(stamps, default=None)


def target_problem(target: float, newest_commit: float | None, now: float) -> str | None:
    """Why recovery to ``target`` cannot succeed with this archive, or None when it can."""
    if target >= now:
        return f"it is in the future; the newest target time is now ({_iso(now)})"
    if newest_commit is None:
        return (
            "no commit after it was found in the archive, so PostgreSQL would refuse to start; "
            "make the server reachable (the restore then archives its WAL) or restore without a "
            "target"
        )
    if target >= newest_commit:
        return (
            f"the newest commit in the archive is at {_iso(newest_commit)}; the newest "
            f"reachable target time is just before it (e.g. --target-time "
            f"'{_iso(newest_commit - 1)}'), or make the server reachable so the restore archives "
            "its WAL first"
        )
    return None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(sep=" ", timespec="seconds")
