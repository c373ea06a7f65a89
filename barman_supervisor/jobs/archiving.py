"""WAL archiving on demand: ``barman archive-wal SERVER`` when there is WAL to archive.

``barman cron`` starts an ``archive-wal`` Python process for every server on every run, whether
or not a segment waits; with many servers that was most of an idle daemon's CPU. A completed
segment in ``streaming/`` (or a file in ``incoming/``) is what ``archive-wal`` would move, and a
directory read finds it: the command runs only then (at most once per WAL_ARCHIVE_INTERVAL per
server, the cadence cron used to give it: on one PostgreSQL with many slots every WAL switch
completes a segment for every server). The global ``barman cron`` still runs
(BARMAN_CRON_INTERVAL) for retention, ``check-backup`` and everything else it does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import ServerSettings
from barman_supervisor.jobs.recorder import JobRecorder
from barman_supervisor.status.state import State

PARTIAL_SUFFIX = ".partial"


def wal_waiting(streaming: Iterable[str], incoming: Iterable[str]) -> bool:
    """Whether ``archive-wal`` has something to move: in ``streaming/`` anything but the
    segment pg_receivewal is still writing (``.partial``) and hidden files; in ``incoming/``
    (``archive_command`` delivers there) any visible file."""
    completed = (n for n in streaming if not n.startswith(".") and not n.endswith(PARTIAL_SUFFIX))
    delivered = (n for n in incoming if not n.startswith("."))
    return any(completed) or any(delivered)


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

    def archive_if_waiting(self, server: ServerSettings) -> None:
        """Only once start-up is through: until then ``switch-wal --archive`` archives the
        first segment itself, and two archivers would compete for Barman's lock."""
        if self._state.server(server.name).phase != "running":
            return
        if not wal_waiting(*self._barman.home.waiting_wal(server.name)):
            return
        with self._recorder.job("archive_wal", server.name) as run:
            run.take(self._barman.archive_wal(server.name))
        self._on_archived(server)
