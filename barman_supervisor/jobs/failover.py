"""Following a promotion of the cluster Barman streams from: a failover or a switchover.

A promotion gives the cluster a new timeline (same system identifier). Streaming stops, and
``barman receive-wal`` cannot resume by itself when it holds WAL the new primary never had (an
asynchronous standby promoted behind): the server refuses a start "not in this server's history"
for ever. Barman's ``receive-wal --reset`` would resume, but it deletes the ``.partial`` WAL,
which is why its maintainers refused to run it automatically. This handler decides from the
new timeline's history instead: files that lie past the fork are moved aside (never deleted),
``pg_receivewal`` is pointed at the fork on the new timeline, the slot is made on the new
primary, and the range that exists only on the old timeline is reported. A different system
identifier is another cluster and stays a refusal (``healing.identity_change``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psycopg

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.errors import first_line
from barman_supervisor.log import get_logger
from barman_supervisor.postgres.connection import Identity, Postgres
from barman_supervisor.postgres.wal import (
    PARTIAL_SUFFIX,
    follow_plan,
    format_lsn,
    parse_history,
    segment_number,
    timeline_of,
    written_end,
)
from barman_supervisor.status.alerts import Notifier, alert_failover_followed
from barman_supervisor.status.state import FailoverRecord, State

_log = get_logger(__name__)


class Failover:
    def __init__(
        self,
        settings: Settings,
        barman: Barman,
        state: State,
        postgres: Mapping[str, Postgres],
        notifier: Notifier | None,
        on_backup_owed: Callable[[ServerSettings], None],
        confirm_streaming: Callable[[ServerSettings], bool],
        recheck: Callable[[ServerSettings], None],
    ) -> None:
        """``on_backup_owed``: a full backup on the new timeline (FAILOVER_BACKUP);
        ``confirm_streaming``: start receive-wal if needed and wait until the slot is active
        (``Streaming.confirm_started``), since ``barman backup`` refuses to start before;
        ``recheck``: ``barman check`` again once streaming runs on the new primary (the last
        one ran during the switch and failed; it would keep ``/readyz`` red until the next
        BARMAN_CHECK_INTERVAL, five minutes by default, on a server protected again)."""
        self._confirm_streaming = confirm_streaming
        self._recheck = recheck
        # Reentrant: waiting for streaming runs the identity check, which may find the next
        # promotion (two in a row) and follow it from inside this one.
        self._locks = {server.name: threading.RLock() for server in settings.servers}
        self._settings = settings
        self._barman = barman
        self._state = state
        self._postgres = postgres
        self._notifier = notifier
        self._on_backup_owed = on_backup_owed

    def follow(self, server: ServerSettings, known: Identity, current: Identity) -> bool:
        """Follow the promotion from ``known`` to ``current``; False when it cannot be (the
        timeline Barman streamed is not in the new one's history, or the server went away
        meanwhile): the caller keeps the refusal then. The monitor and cron may both see the
        same promotion: one follows it, the other finds it followed."""
        with self._locks[server.name]:
            recorded = self._state.server(server.name).identity
            if recorded == current:
                return True
            return self._follow(server, recorded or known, current)

    def _follow(self, server: ServerSettings, known: Identity, current: Identity) -> bool:
        """``follow``, under the server's lock. Kept long: the order of its steps is the
        point (archive before planning, plan before moving, slot before streaming, state
        before the alert, streaming before the backup), and split it would hide that."""
        postgres = self._postgres[server.name]
        facts = self._state.server(server.name).facts
        segment_size = facts.wal_segment_size if facts else 0
        try:
            ancestors = parse_history(postgres.timeline_history(current.timeline))
        except psycopg.Error as exc:
            _log.warning("failover_not_followed", reason=first_line(exc))
            return False
        if not segment_size or known.timeline not in ancestors:
            return False
        # Complete segments go to Barman's archive first, where its tools see them.
        self._barman.terminate_receive_wal(server.name)
        self._barman.archive_wal(server.name)
        home = self._barman.home
        plan = follow_plan(
            known.timeline,
            current.timeline,
            ancestors,
            sorted(home.waiting_wal(server.name)[0]),
            segment_size,
        )
        if plan is None:
            return False
        lost = self._old_timeline_only(server, known.timeline, plan.fork_lsn, segment_size)
        aside = home.set_aside(server.name, plan.set_aside) if plan.set_aside else None
        if plan.resume is not None:
            home.add_resume_file(server.name, plan.resume)
        postgres.reconnect()
        with contextlib.suppress(psycopg.Error):  # a new kept connection names who answered
            postgres.identity()
        kept_in = sorted(
            {
                str(aside if aside and path.name in plan.set_aside else path.parent)
                for path in lost[1]
            }
        )
        record = FailoverRecord(
            from_timeline=known.timeline,
            to_timeline=current.timeline,
            fork_lsn=format_lsn(plan.fork_lsn),
            primary=postgres.primary(),
            at=time.time(),
            old_timeline_only=(format_lsn(plan.fork_lsn), format_lsn(lost[0]), ", ".join(kept_in))
            if lost[1]
            else None,
        )
        self._resume_streaming(server)
        self._state.record_failover(server.name, record, current)
        _log.warning("failover_followed", **record.as_dict(), set_aside=list(plan.set_aside))
        alert_failover_followed(self._settings, self._notifier, server.name, record)
        if not self._confirm_streaming(server):
            _log.warning("failover_backup_deferred", reason="streaming not running yet")
            return True
        if server.failover_backup:
            self._on_backup_owed(server)
        self._recheck(server)
        return True

    def _old_timeline_only(
        self, server: ServerSettings, timeline: int, fork_lsn: int, segment_size: int
    ) -> tuple[int, list[Path]]:
        """Where the WAL Barman holds of ``timeline`` past the fork ends, and its files: the
        transactions an asynchronous standby never received (no file when it was in sync). A
        ``.partial`` ends where its written bytes end; a complete segment at its end."""
        end, files = fork_lsn, []
        for path in self._barman.home.wal_files(server.name):
            name = path.name[:24]
            if timeline_of(name) != timeline:
                continue
            start = segment_number(name, segment_size) * segment_size
            if path.name.endswith(PARTIAL_SUFFIX):
                reach = written_end(start, path.read_bytes())
            else:
                reach = start + segment_size
            if reach > fork_lsn:
                end = max(end, reach)
                files.append(path)
        return end, files

    def _resume_streaming(self, server: ServerSettings) -> None:
        """The slot on the new primary (a standby had none unless Patroni keeps it there);
        ``receive-wal`` is started by ``confirm_streaming`` once the state is recorded."""
        try:
            if self._postgres[server.name].create_slot(server.slot_name):
                _log.warning("slot_created", slot=server.slot_name, reason="new primary")
        except psycopg.Error as exc:  # the next cron makes it (create_slot = auto)
            _log.warning("slot_not_created", slot=server.slot_name, error=first_line(exc))
