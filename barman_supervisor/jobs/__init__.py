"""The work the daemon does for each server, as small handlers behind one front.

``Jobs`` is what the scheduler calls; it builds one handler per concern and gives each only the
collaborators it uses:

- ``claims``: sharded, the advisory lock that keeps two replicas from protecting one server at
  once; every per-server job below runs only while this replica holds it;
- ``recorder``: the job wrapper (log context, timing, outcome in the state) and per-server locks;
- ``startup``: wait for PostgreSQL, preflight, replication connection, slot, streaming, first
  WAL, first check, first backup;
- ``streaming``: ``barman cron`` shared between callers, the monitor and its watchdog, identity;
- ``failover``: a promotion of the cluster followed (new timeline, WAL past the fork set aside);
- ``backups``: scheduled and start-up backups, verification, concurrency, dead-man's pings,
  interrupted and superseded FAILED backups;
- ``verdicts``: each backup's verdict kept beside it, its alert, the hold on the newest verified
  backup against retention;
- ``checks``: ``barman check`` and the backup list it depends on;
- ``archiving``: ``barman archive-wal`` for one server when WAL waits to be archived;
- ``walwatch`` and ``coalesce``: a completed segment seen in ``streaming/`` runs ``archive-wal``
  at once, and newly archived WAL goes off-site at once, bursts coalesced (the interval jobs
  stay as the safety net);
- ``drills``: scheduled restore drills;
- off-site copies: the ``offsite`` subpackage's copier, reached only through ``Jobs`` so the
  scheduler and the daemon have one front to call.

May import: every subpackage below it (``drill`` included), never ``daemon``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.errors import ConfigError
from barman_supervisor.jobs.archiving import Archiving
from barman_supervisor.jobs.backups import Backups
from barman_supervisor.jobs.checks import Checks
from barman_supervisor.jobs.claims import Claims
from barman_supervisor.jobs.coalesce import Coalesced
from barman_supervisor.jobs.drills import Drills
from barman_supervisor.jobs.failover import Failover
from barman_supervisor.jobs.recorder import JobRecorder
from barman_supervisor.jobs.startup import Startup
from barman_supervisor.jobs.streaming import Streaming
from barman_supervisor.jobs.walwatch import WalWatcher
from barman_supervisor.log import get_logger
from barman_supervisor.offsite.copier import OffsiteCopier
from barman_supervisor.postgres.connection import APPLICATION_NAME, Postgres
from barman_supervisor.process.runner import Runner
from barman_supervisor.status.alerts import Notifier
from barman_supervisor.status.state import State

__all__ = ["Jobs"]
_log = get_logger(__name__)
# Servers whose TLS settings are tried at once at start (each try waits PG_CONNECT_TIMEOUT at
# most for a server that does not answer).
TLS_CHECKS_AT_ONCE = 16
# The shutdown's last WAL round: servers flushed side by side (each a Barman command and a
# store upload, mostly waiting).
FLUSH_AT_ONCE = 8
# The commands that round runs: archive-wal, and the store's listing and upload of WAL.
FLUSH_KINDS = ("archive-wal", "offsite-list", "offsite-wal")
# The round is seconds (a few segments); a store that does not answer must not hold the
# shutdown: after FLUSH_TIMEOUT its commands are stopped, and get FLUSH_STOP_GRACE to end. Both
# count in the margin over SHUTDOWN_GRACE the container's stop timeout needs (docs/operations.md).
FLUSH_TIMEOUT = 20.0
FLUSH_STOP_GRACE = 5.0


def _connections(settings: Settings) -> dict[str, Postgres]:
    """One ``Postgres`` per owned server; a sharded replica names its shard in its sessions."""
    shard = settings.shard
    application = shard.application_name(APPLICATION_NAME) if shard else APPLICATION_NAME
    return {
        server.name: Postgres(
            server, settings.pgpass_file, settings.pg_connect_timeout, application
        )
        for server in settings.servers
    }


class Jobs:
    def __init__(
        self,
        settings: Settings,
        barman: Barman,
        runner: Runner,
        state: State,
        stop: threading.Event,
        on_fatal: Callable[[str, str], None],
        on_ready: Callable[[ServerSettings], None],
        on_backup_owed: Callable[[ServerSettings], None],
        notifier: Notifier | None = None,
    ) -> None:
        """``on_fatal``: a server can never be protected; ``on_ready``: its start-up is through
        (schedule its jobs); ``on_backup_owed``: run ``owed_backup`` for it soon."""
        postgres = _connections(settings)
        self._postgres = postgres
        self._claims = Claims(settings, state, postgres, stop)
        self._settings = settings
        self._state = state
        recorder = JobRecorder(state, stop)
        # Why each owed backup is owed, for its trigger: a WAL gap unless a failover said so.
        self._owed_trigger: dict[str, str] = {}
        self._on_backup_owed = on_backup_owed
        failover = Failover(
            settings, barman, state, postgres, notifier, self._failover_backup,
            self._confirm_streaming, recheck=self.check,
        )  # fmt: skip
        self._streaming = Streaming(
            settings, barman, state, postgres, recorder, stop, on_backup_owed, failover
        )
        self._backups = Backups(
            settings, barman, state, recorder, stop, notifier, postgres, self._recheck_if_failed
        )
        self._checks = Checks(barman, state, recorder, self._backups)
        self._archiving = Archiving(barman, state, recorder, on_archived=self._archived)
        self._drills = Drills(
            settings, barman, runner, state, recorder, stop, self._backups.verdicts
        )
        self._offsite = OffsiteCopier(settings, runner, barman, state)
        self._watch(settings, barman, stop)
        self._startup = Startup(
            settings,
            barman,
            runner,
            state,
            postgres,
            recorder,
            stop,
            streaming=self._streaming,
            checks=self._checks,
            backups=self._backups,
            claims=self._claims,
            on_fatal=on_fatal,
            on_ready=lambda server: self._ready(server, on_ready),
        )

    def _watch(self, settings: Settings, barman: Barman, stop: threading.Event) -> None:
        """The WAL watcher, and per server the runs it starts: ``archive-wal`` at once, and the
        off-site WAL copy at once after it (``_archived``)."""
        self._archive_now = {
            server.name: Coalesced(
                f"archive-now-{server.name}",
                partial(self._if_held, server, self._archiving.archive_if_waiting, "segment"),
            )
            for server in settings.servers
        }
        self._offsite_now = {
            server.name: Coalesced(
                f"offsite-wal-now-{server.name}",
                partial(self._if_held, server, self._offsite.run_wal, True),
            )
            for server in settings.servers
            if server.offsite is not None
        }
        self._watcher = WalWatcher(
            {server.name: barman.home.streaming_dir(server.name) for server in settings.servers},
            on_completed=lambda name: self._archive_now[name].trigger(),
            stop=stop,
        )

    def _ready(self, server: ServerSettings, on_ready: Callable[[ServerSettings], None]) -> None:
        """Start-up is through: its jobs, and what completed while it ran archived now."""
        on_ready(server)
        self._archive_now[server.name].trigger()

    def _archived(self, server: ServerSettings) -> None:
        """WAL moved to ``wals/``: the probes see it, and it goes off-site at once."""
        self._streaming.probe(server)
        if server.name in self._offsite_now:
            self._offsite_now[server.name].trigger()

    def _if_held(self, server: ServerSettings, job: Callable[..., object], *args: object) -> None:
        """A per-server job, run only while this replica holds the server (``claims``)."""
        if self._claims.held(server):
            job(server, *args)

    # What the scheduler calls -------------------------------------------------------------------
    def bootstrap(self, server: ServerSettings) -> None:
        self._startup.bootstrap(server)

    def cron(self) -> None:
        self._streaming.cron()

    def check_identities(self) -> None:
        self._streaming.check_identities()

    def monitor(self, server: ServerSettings) -> None:
        """The probes run whoever holds the server (they are how a lost claim is noticed)."""
        self._streaming.monitor(server)
        self._if_held(server, self._backups.refresh_if_changed)

    def archive_wal(self, server: ServerSettings) -> None:
        self._if_held(server, self._archiving.archive_if_waiting)

    def backup(self, server: ServerSettings) -> None:
        self._if_held(server, self._backups.scheduled)

    def incremental_backup(self, server: ServerSettings) -> None:
        self._if_held(server, self._backups.scheduled_incremental)

    def owed_backup(self, server: ServerSettings) -> None:
        trigger = self._owed_trigger.pop(server.name, "wal_gap")
        self._if_held(server, partial(self._backups.owed, trigger=trigger))

    def _confirm_streaming(self, server: ServerSettings) -> bool:
        """For the failover handler, built before the streaming one it waits on."""
        return self._streaming.confirm_started(server)

    def _failover_backup(self, server: ServerSettings) -> None:
        """FAILOVER_BACKUP: a full backup on the new timeline, run as an owed backup."""
        self._owed_trigger[server.name] = "failover"
        self._on_backup_owed(server)

    def check(self, server: ServerSettings) -> None:
        self._if_held(server, self._checks.check)

    def _recheck_if_failed(self, server: ServerSettings) -> None:
        """For the backups handler, built before the checks handler it calls."""
        self._if_held(server, self._checks.recheck_if_failed)

    def drill(self, server: ServerSettings) -> None:
        self._if_held(server, self._drills.drill)

    def offsite_backups(self, server: ServerSettings) -> None:
        self._if_held(server, self._offsite.run_backups)

    def offsite_wal(self, server: ServerSettings) -> None:
        self._if_held(server, self._offsite.run_wal)

    # What the daemon calls before its first write ------------------------------------------------
    def offsite_connectivity_check(self) -> None:
        """Every configured store answers with these credentials (a refusal names the fix)."""
        self._offsite.connectivity_check()

    def tls_check(self) -> None:
        """Every server's TLS settings connect (a refusal names the setting and the fix); the
        servers are tried side by side, so that one that does not answer delays none of the
        others by PG_CONNECT_TIMEOUT."""
        with ThreadPoolExecutor(max_workers=TLS_CHECKS_AT_ONCE) as pool:
            refusals = list(pool.map(Postgres.tls_refusal, self._postgres.values()))
        refusal = next((r for r in refusals if r is not None), None)
        if refusal is not None:
            raise ConfigError(refusal)

    def start_watching(self) -> None:
        """Completed WAL segments archived (and copied off-site) as they appear."""
        self._watcher.start()

    # What the shutdown calls ---------------------------------------------------------------------
    def stop_watching(self) -> None:
        """No triggered run starts any more; the watcher's thread has ended."""
        self._watcher.close()
        for coalesced in (*self._archive_now.values(), *self._offsite_now.values()):
            coalesced.close()

    def wait_for_drills(self, timeout: float) -> bool:
        return self._drills.wait(timeout)

    def flush_wal(self, runner: Runner) -> None:
        """The shutdown's last WAL round, once streaming stopped: every completed segment
        archived and copied off-site, so that what this replica received survives it (the next
        owner of a moved server streams from the slot's position, after what it received).
        Only for servers it holds; the claims are let go after it, in ``close``."""
        runner.reopen_for(FLUSH_KINDS)
        held = [s for s in self._settings.servers if self._state.server(s.name).phase == "running"]
        held = [s for s in held if self._claims.held(s)]
        if not held:
            return
        pool = ThreadPoolExecutor(max_workers=min(FLUSH_AT_ONCE, len(held)))
        futures = [pool.submit(self._flush_one, server) for server in held]
        _, late = wait(futures, timeout=FLUSH_TIMEOUT)
        if late:
            _log.warning("wal_flush_late", timeout_s=FLUSH_TIMEOUT, action="stopping its commands")
            runner.reopen_for(())
            runner.signal(list(FLUSH_KINDS), signal.SIGTERM)
            wait(late, timeout=FLUSH_STOP_GRACE)
        pool.shutdown(wait=False, cancel_futures=True)

    def _flush_one(self, server: ServerSettings) -> None:
        self._archiving.flush(server)
        self._offsite.run_wal(server, True)

    def close(self) -> None:
        """The kept PostgreSQL connections, once no job runs any more."""
        for postgres in self._postgres.values():
            postgres.close()
