"""A server's start-up, from "PostgreSQL may not even be up" to "streaming and backed up".

Only what can never work as configured stops the start (``StartupFailed``): preflight problems,
missing grants, a refused replication connection, client tools older than the server. A step
that fails otherwise (slot, streaming, first WAL, first backup) is logged; the schedule retries
it and the probes tell the truth meanwhile.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import psycopg

from barman_supervisor import retry
from barman_supervisor.barman.chains import incremental_problems
from barman_supervisor.barman.commands import Barman
from barman_supervisor.barman.compression import compression_problems
from barman_supervisor.barman.records import Backup
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.errors import StartupFailed, first_line
from barman_supervisor.jobs.backups import Backups, needs_backup_at_start
from barman_supervisor.jobs.checks import Checks
from barman_supervisor.jobs.claims import Claims
from barman_supervisor.jobs.fairness import FairSemaphore
from barman_supervisor.jobs.healing import client_tool_problems, redundancy_check_stale
from barman_supervisor.jobs.recorder import JobRecorder, Run
from barman_supervisor.jobs.streaming import Streaming
from barman_supervisor.log import get_logger
from barman_supervisor.postgres.connection import Postgres, ServerFacts, preflight_problems
from barman_supervisor.postgres.programs import (
    CLIENT_LINKS,
    Clients,
    find_bin_dir,
    link_clients,
    major_of,
    probe_clients,
    survey,
    unwrapped_clients,
)
from barman_supervisor.postgres.tls import tls_refusal, uses_tls_settings
from barman_supervisor.process.runner import Runner
from barman_supervisor.status.state import State

_log = get_logger(__name__)
IDENTIFY_ATTEMPTS = 3
# On an idle primary a WAL switch completes only once the next segment has data: a restore
# point this often while Barman waits brings the first archive from 10-15 s to about a second
# (1.15 s measured with a nudge every second; the first one is what counts, so it comes soon).
NUDGE_INTERVAL = 0.25
NUDGE_JOIN_TIMEOUT = 5.0


class ClientPrograms:
    """The ``pg_basebackup`` on PATH, asked once for every server: PATH does not change while
    they start (fifty servers asked fifty times, through Debian's Perl wrapper)."""

    def __init__(self, runner: Runner, links: Path) -> None:
        self._runner = runner
        self._links = links
        self._clients: Clients | None = None
        self._lock = threading.Lock()

    def get(self) -> Clients:
        with self._lock:
            if self._clients is None:
                self._clients = self._skip_wrapper(probe_clients(self._runner, self._runner.path))
            return self._clients

    def _skip_wrapper(self, clients: Clients) -> Clients:
        """Barman's children run the programs Debian's wrapper picks without the wrapper: links
        to them go first on their PATH. The same programs, without a Perl start per call."""
        direct = unwrapped_clients(clients)
        if direct is None:
            return clients
        try:
            link_clients(direct, self._links)
        except OSError as exc:
            _log.warning("client_links_not_made", dir=str(self._links), error=str(exc))
            return clients
        self._runner.put_first_on_path(self._links)
        _log.info("client_programs", dir=str(direct), major=clients.major, links=str(self._links))
        return Clients(str(direct), clients.major)


class Startup:
    """A server's start-up steps, in order, one method each.

    Kept long: the steps read top to bottom in the order they run; split across classes, the
    order would have to be pieced together.
    """

    def __init__(
        self,
        settings: Settings,
        barman: Barman,
        runner: Runner,
        state: State,
        postgres: Mapping[str, Postgres],
        recorder: JobRecorder,
        stop: threading.Event,
        streaming: Streaming,
        checks: Checks,
        backups: Backups,
        claims: Claims,
        on_fatal: Callable[[str, str], None],
        on_ready: Callable[[ServerSettings], None],
    ) -> None:
        self._settings = settings
        self._barman = barman
        self._state = state
        self._postgres = postgres
        self._recorder = recorder
        self._stop = stop
        self._streaming = streaming
        self._checks = checks
        self._backups = backups
        self._claims = claims
        self._on_fatal = on_fatal
        self._on_ready = on_ready
        # Fifty servers starting at once ran fifty Barman commands at once on two cores: every
        # one came up late. Taking turns (first come, first served) brings them up in order.
        self._turns = FairSemaphore(settings.startup_concurrency)
        self._clients = ClientPrograms(runner, settings.barman_home / CLIENT_LINKS)

    def bootstrap(self, server: ServerSettings) -> None:
        """Every step in order; a refusal ends the daemon (``on_fatal``), anything else hands
        the server to the schedule (``on_ready``)."""
        try:
            with self._recorder.job("bootstrap", server.name) as run:
                self._wait_for_postgres(server)
                self._preflight(server)
                self._identify(server)
                self._claims.acquire(server)
                self._stream(server, run)
                self._take_turn(server)
                try:
                    self._protect(server, run)
                finally:
                    self._turns.release()
        except StartupFailed as exc:
            self._phase(server, "failed")
            self._on_fatal(server.name, str(exc))
            return
        # Also after a step failed or crashed: the schedule retries it, the probes tell the truth.
        if not self._stop.is_set():
            self._phase(server, "running")
            self._on_ready(server)

    def _take_turn(self, server: ServerSettings) -> None:
        """Phase ``queued`` only for a server that has to wait (STARTUP_CONCURRENCY)."""
        if not self._turns.try_acquire():
            self._phase(server, "queued")
            self._turns.acquire()

    def _stream(self, server: ServerSettings, run: Run) -> None:
        """Slot and streaming for every server at once, before the turns: cheap (a query, one
        forked process), and it is what keeps WAL. With one PostgreSQL behind many servers, a
        WAL switch made for one of them then reaches all of them."""
        self._phase(server, "slot")
        self._create_slot(server, run)
        self._phase(server, "streaming")
        if not self._streaming.confirm_started(server):
            run.fail("WAL streaming did not start")

    def _protect(self, server: ServerSettings, run: Run) -> None:
        """Protected (WAL archived, ``barman check`` green), and a restorable point, with as
        few Barman commands (each a fork, or a Python process) as will do: WAL into the archive
        only while it is empty (Barman refuses a first backup until then), the list of backups
        only when Barman's files changed. The check and the first backup then run side by side:
        neither needs the other, and the backup is done sooner by a check's time (the next
        scheduled check sees it; a check that said "no backup" (minimum redundancy) beside it
        runs once more right after, so that ``/status`` and the metrics do not show it)."""
        if self._barman.home.archive_empty(server.name):
            self._phase(server, "first_wal")
            self._archive_first_wal(server, run)
        else:
            _log.info("first_wal_not_needed", reason="Barman's archive already holds WAL")
        self._phase(server, "check")
        backups = self._backups.close_interrupted(server)
        checking = threading.Thread(
            target=self._checks.check, args=(server,), name=f"check-{server.name}"
        )
        checking.start()
        try:
            if backups is not None:
                self._first_backup(server, backups, run)
        finally:
            checking.join()
        state = self._state.server(server.name)
        if redundancy_check_stale(state.checks, state.backups):
            self._checks.check(server)
        self._refuse_old_client_tools(server)

    def _create_slot(self, server: ServerSettings, run: Run) -> None:
        try:
            created = self._postgres[server.name].create_slot(server.slot_name)
        except psycopg.Error as exc:
            run.fail(f"replication slot {server.slot_name} not created: {first_line(exc)}")
            _log.error("slot_failed", slot=server.slot_name, reason=run.reason)
            return
        _log.info("slot_created" if created else "slot_exists", slot=server.slot_name)

    def _phase(self, server: ServerSettings, phase: str) -> None:
        self._state.set_phase(server.name, phase)
        _log.info("startup_step", step=phase, server=server.name)

    def _wait_for_postgres(self, server: ServerSettings) -> None:
        self._phase(server, "waiting_for_postgres")
        policy = retry.until_reachable(
            self._stop,
            max_delay=self._settings.pg_wait_timeout,
            retry_on=(psycopg.OperationalError,),
            describe=lambda _state: {"host": server.host, "port": server.port},
        )
        try:
            facts = policy(lambda: self._facts(server))
        except psycopg.OperationalError as exc:
            raise StartupFailed(
                f"PostgreSQL at {server.host}:{server.port} not reachable within PG_WAIT_TIMEOUT="
                f"{self._settings.pg_wait_timeout:g}s: {first_line(exc)}"
            ) from None
        self._state.postgres_reached(server.name, facts)
        _log.info(
            "postgres_reached",
            host=server.host,
            port=server.port,
            version=facts.version_num,
            wal_level=facts.wal_level,
            max_wal_senders=facts.max_wal_senders,
            max_replication_slots=facts.max_replication_slots,
            archive_mode=facts.archive_mode,
        )

    def _facts(self, server: ServerSettings) -> ServerFacts:
        """The server's facts; with TLS settings, a TLS failure is bad configuration, never
        retried: it stops the start with the setting named (the server came up only after the
        check at start). Without, every failure is waited out as before."""
        try:
            return self._postgres[server.name].facts()
        except psycopg.OperationalError as exc:
            refusal = tls_refusal(server, str(exc)) if uses_tls_settings(server) else None
            if refusal is not None:
                raise StartupFailed(refusal) from None
            raise

    def _preflight(self, server: ServerSettings) -> None:
        self._phase(server, "preflight")
        facts = self._state.server(server.name).facts
        if facts is None:
            raise StartupFailed("PostgreSQL not reached")
        path = self._settings.child_env.get("PATH")
        # A server newer than the client programs here can never be backed up by them.
        unservable, programs = survey(
            facts.version_num, self._clients.get(), self._settings.pg_bin_dir
        )
        combine_dir = find_bin_dir(
            major_of(facts.version_num), self._settings.pg_bin_dir, program="pg_combinebackup"
        )
        problems = (
            preflight_problems(facts)
            + unservable
            + incremental_problems(server.backup_policy, facts, combine_dir)
            + compression_problems(
                server.backup_policy,
                facts.version_num,
                lambda program: shutil.which(program, path=path) is not None,
            )
        )
        self._state.record_programs(server.name, programs)
        self._state.set_problems(server.name, problems)
        if problems:
            raise StartupFailed("; ".join(problems))

    def _identify(self, server: ServerSettings) -> None:
        """A replication connection that fails now fails for every backup: say so at once."""
        self._phase(server, "replication_connection")
        policy = retry.few_times(
            self._stop, attempts=IDENTIFY_ATTEMPTS, retry_on=(psycopg.OperationalError,)
        )
        try:
            identity = policy(self._postgres[server.name].identify)
        except psycopg.OperationalError as exc:
            raise StartupFailed(
                f"replication connection refused ({first_line(exc)}); the streaming user needs "
                "the REPLICATION attribute and a 'host replication' line in pg_hba.conf"
            ) from None
        self._state.set_identity(server.name, identity)
        _log.info(
            "replication_connection_ok", system_id=identity.system_id, timeline=identity.timeline
        )

    def _archive_first_wal(self, server: ServerSettings, run: Run) -> None:
        """A completed segment already streamed (a switch made for another server on the same
        PostgreSQL) is archived as it is; else force a WAL switch and wait until Barman
        archived the segment, nudging an idle primary with restore points meanwhile."""
        streamed, _incoming = self._barman.home.waiting_wal(server.name)
        if any(not name.endswith(".partial") for name in streamed):
            run.take(self._barman.archive_wal(server.name))
            if not self._barman.home.archive_empty(server.name):
                _log.info("first_wal_archived", switched=False)
                return
        done = threading.Event()

        def nudge() -> None:
            while not done.wait(NUDGE_INTERVAL):
                try:
                    self._postgres[server.name].create_restore_point("barman_supervisor_switch")
                except psycopg.Error as exc:
                    _log.debug("restore_point_failed", error=first_line(exc))
                    return

        helper = threading.Thread(target=nudge, name=f"nudge-{server.name}", daemon=True)
        helper.start()
        try:
            outcome = self._barman.switch_wal(server.name, self._settings.wal_archive_timeout)
        finally:
            done.set()
            helper.join(NUDGE_JOIN_TIMEOUT)
        if run.take(outcome):
            _log.info("first_wal_archived", switched=True)
        else:
            _log.error("first_wal_not_archived", reason=outcome.reason())

    def _refuse_old_client_tools(self, server: ServerSettings) -> None:
        state = self._state.server(server.name)
        problems = client_tool_problems(
            state.checks, state.facts.version_num if state.facts else None
        )
        if problems:
            raise StartupFailed("; ".join(problems))

    def _first_backup(self, server: ServerSettings, backups: list[Backup], run: Run) -> None:
        """The backup a server without a DONE one is owed."""
        if not needs_backup_at_start(backups):
            _log.info("first_backup_not_needed", backups=len(backups))
            return
        if not server.backup_on_start:
            _log.warning("no_backup_yet", hint="BACKUP_ON_START is false; waiting for the schedule")
            return
        self._phase(server, "first_backup")
        outcome = self._backups.take(server, immediate=True, trigger="first")
        if outcome is not None:
            run.take(outcome)
