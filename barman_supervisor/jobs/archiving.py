"""WAL archiving on demand: ``barman archive-wal SERVER`` when there is WAL to archive.

``barman cron`` starts an ``archive-wal`` Python process for every server on every run, whether
or not a segment waits; with many servers that was most of an idle daemon's CPU. A completed
segment in ``streaming/`` (or a file in ``incoming/``) is what ``archive-wal`` would move, and a
directory read finds it: the command runs only then (at most once per WAL_ARCHIVE_INTERVAL per
server, the cadence cron used to give it: on one PostgreSQL with many slots every WAL switch
completes a segment for every server). The global ``barman cron`` still runs
(BARMAN_CRON_INTERVAL) for retention, ``check-backup`` and everything else it does.

The same run is also started at once when the WAL watcher (``walwatch``) sees a segment
complete; that interval job is then the safety net. A per-server lock keeps the two from ever
running ``archive-wal`` side by side (the second waits, then finds what the first left).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Literal

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import ServerSettings
from barman_supervisor.jobs.recorder import JobRecorder, ServerLocks
from barman_supervisor.log import bind
from barman_supervisor.postgres.wal import (
    DEFAULT_SEGMENT_SIZE,
    is_segment_name,
    next_segment_name,
)
from barman_supervisor.status.state import State

PARTIAL_SUFFIX = ".partial"
TEMP_SUFFIX = ".tmp"
# What started a run, in its log lines: the WAL watcher or the WAL_ARCHIVE_INTERVAL job.
Trigger = Literal["segment", "interval", "shutdown"]


def _visible(streaming: Iterable[str]) -> list[str]:
    """The files of ``streaming/`` Barman looks at: no hidden file, no ``.tmp``."""
    return [n for n in streaming if not n.startswith(".") and not n.endswith(TEMP_SUFFIX)]


def wal_waiting(streaming: Iterable[str], incoming: Iterable[str]) -> bool:
    """Whether ``archive-wal`` has something to move: in ``streaming/`` a completed file (not
    the ``.partial`` segment pg_receivewal is writing, not a ``.tmp`` or hidden file) that
    Barman would take; in ``incoming/`` (``archive_command`` delivers there) any visible file.

    Barman keeps the newest completed file back while no ``.partial`` follows it (measured: a
    switched segment stays in ``streaming/`` until the next WAL is written, and ``archive-wal``
    says "no file found"): it counts only then."""
    visible = _visible(streaming)
    completed = sorted(n for n in visible if not n.endswith(PARTIAL_SUFFIX))
    if len(completed) == len(visible):  # no .partial: the newest completed one is held back
        completed = completed[:-1]
    delivered = (n for n in incoming if not n.startswith("."))
    return bool(completed) or any(delivered)


def resume_file(streaming: Iterable[str], segment_size: int) -> str | None:
    """The empty ``.partial`` that lets the shutdown archive the newest completed segment:
    with no ``.partial`` in ``streaming/`` Barman holds that segment back (``wal_waiting``),
    so that ``pg_receivewal`` resumes after it; an empty ``.partial`` of the next segment keeps
    that resume point (``pg_receivewal`` starts from its newest file) and frees the segment.
    None when a ``.partial`` is there already, or nothing completed."""
    visible = _visible(streaming)
    if any(n.endswith(PARTIAL_SUFFIX) for n in visible):
        return None
    completed = sorted(n for n in visible if is_segment_name(n))
    if not completed:
        return None
    return next_segment_name(completed[-1], segment_size) + PARTIAL_SUFFIX


class Archiving:
    def __init__(
        self,
        barman: Barman,
        state: State,
        recorder: JobRecorder,
        on_archived: Callable[[ServerSettings], object],
    ) -> None:
        """``on_archived`` refreshes what the probes show once WAL moved."""
        self._barman = barman
        self._state = state
        self._recorder = recorder
        self._on_archived = on_archived
        self._locks = ServerLocks()

    def archive_if_waiting(self, server: ServerSettings, trigger: Trigger = "interval") -> None:
        """Only once start-up is through: until then ``switch-wal --archive`` archives the
        first segment itself, and two archivers would compete for Barman's lock."""
        if self._state.server(server.name).phase != "running":
            return
        lock: threading.Lock = self._locks(server.name)
        with lock:
            if not wal_waiting(*self._barman.home.waiting_wal(server.name)):
                return
            with bind(trigger=trigger), self._recorder.job("archive_wal", server.name) as run:
                run.take(self._barman.archive_wal(server.name))
        self._on_archived(server)

    def flush(self, server: ServerSettings) -> None:
        """At shutdown, once ``receive-wal`` stopped: every completed segment into ``wals/``,
        the newest included (``resume_file``)."""
        home = self._barman.home
        streaming, _ = home.waiting_wal(server.name)
        facts = self._state.server(server.name).facts
        resume = resume_file(streaming, facts.wal_segment_size if facts else DEFAULT_SEGMENT_SIZE)
        if resume is not None:
            home.add_resume_file(server.name, resume)
        lock: threading.Lock = self._locks(server.name)
        with lock:
            if not wal_waiting(*home.waiting_wal(server.name)):
                return
            with bind(trigger="shutdown"), self._recorder.job("archive_wal", server.name) as run:
                run.take(self._barman.archive_wal(server.name))
