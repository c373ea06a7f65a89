"""The daemon's life: start everything, wait for a stop, and shut down in ``finally``.

Start-up order: every check, the instance lock and the HTTP port before anything is written.
Shutdown order: stop scheduling first, then ``stopping`` stops Barman's processes in the order
that keeps backups and streaming consistent.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

from apscheduler.triggers.interval import IntervalTrigger

from barman_supervisor import __version__
from barman_supervisor.barman import config_files as barman_config
from barman_supervisor.barman.commands import Barman
from barman_supervisor.barman.logtail import LogTail
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.config.shard import shard_status
from barman_supervisor.daemon.lock import InstanceLock
from barman_supervisor.daemon.scheduler import JobSpec, Scheduler
from barman_supervisor.daemon.shutdown import BarmanStopper
from barman_supervisor.errors import ConfigError
from barman_supervisor.jobs import Jobs
from barman_supervisor.log import MASKER, RepeatFilter, get_logger
from barman_supervisor.offsite.plan import forkserver_preload
from barman_supervisor.process.forkserver import ForkServer
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from barman_supervisor.status import metrics
from barman_supervisor.status.alerts import Alerts, Notifier
from barman_supervisor.status.health import limits_lookup
from barman_supervisor.status.http import HttpServer, Probes, bind_problem
from barman_supervisor.status.state import State

_log = get_logger(__name__)
SIGNAL_HINT = "settings are read at start only; restart the daemon to apply new ones"
# The main loop beats this often; /healthz calls it stalled after LIVENESS_MAX_STALL.
HEARTBEAT_INTERVAL = 1.0


class Daemon:
    def __init__(self, settings: Settings, supervisor: Pid1 | None = None) -> None:
        self.settings = settings
        self.supervisor = supervisor or Pid1()
        self.state = State([server.name for server in settings.servers])
        if settings.shard is not None:
            self.state.set_shard(shard_status(settings.shard, settings.ownership))
        self.limits_for = limits_lookup(settings, datetime.now(settings.timezone))
        self.notifier = Notifier(settings.alert_timeout)
        self.alerts = Alerts(settings, self.state, self.limits_for, self.notifier)
        repeats = RepeatFilter()
        self._tail_stop = threading.Event()
        self._tail = LogTail(settings.barman_log_file, self._tail_stop, repeats)
        self.runner = Runner(self.supervisor, settings.child_env, repeats)
        self.barman = Barman(settings, self.runner, explain=self._tail.cause_since)
        self.jobs = Jobs(
            settings,
            self.barman,
            self.runner,
            self.state,
            self.supervisor.stop_requested,
            on_fatal=self._fatal,
            on_ready=self._server_ready,
            on_backup_owed=self._backup_owed,
            notifier=self.notifier,
        )
        self.scheduler = Scheduler(settings, self.jobs)
        self.stopper = BarmanStopper(
            settings, self.supervisor, self.runner, self.barman, self.jobs.wait_for_drills
        )
        self.http: HttpServer | None = None
        self.instance_lock = InstanceLock()
        self.fatal_reason: str | None = None
        self._started = False

    def _fatal(self, server: str, reason: str) -> None:
        self.fatal_reason = f"{server}: {reason}"
        self.state.set_problems(server, [reason])
        _log.critical("startup_failed", server=server, reason=reason)
        self.alerts.evaluate()
        self.supervisor.request_stop()

    def _server_ready(self, server: ServerSettings) -> None:
        self.scheduler.add_server_jobs(server)

    def _backup_owed(self, server: ServerSettings) -> None:
        self.scheduler.run_now(f"owed_backup:{server.name}", self.jobs.owed_backup, server)

    def run(self) -> int:
        """Exit code: 0 after a requested stop, 1 when a server can never be protected."""
        MASKER.register(secret.reveal() for secret in self.settings.secrets)
        self.supervisor.install_signal_handlers()
        subreaper = self.supervisor.become_subreaper()
        self.supervisor.start_reaper()
        _log.info(
            "daemon_starting",
            version=__version__,
            pid=os.getpid(),
            pid1=os.getpid() == 1,
            subreaper=subreaper,
            servers=[server.name for server in self.settings.servers],
            config_mode=self.settings.config_mode,
            timezone=str(self.settings.timezone),
        )
        try:
            self._prepare()
            self._tail.start()
            self.notifier.start()
            self.scheduler.start(
                [
                    JobSpec(
                        "alerts",
                        IntervalTrigger(seconds=self.settings.health_interval),
                        self.alerts.evaluate,
                        quiet=True,
                    )
                ]
            )
            self.jobs.start_watching()
            self._started = True
            while not self.supervisor.stop_requested.is_set():
                self.supervisor.pause(HEARTBEAT_INTERVAL)
                self.state.beat()
                for name in self.supervisor.take_noted_signals():
                    _log.warning("signal_ignored", signal=name, hint=SIGNAL_HINT)
        finally:
            self._shutdown()
        return 1 if self.fatal_reason else 0

    def _prepare(self) -> None:
        """Checks, locks and the port first; leftovers and writes only once all of them hold."""
        problem = barman_config.write_problem(self.settings)
        if problem is not None:
            raise ConfigError(problem)
        self.jobs.offsite_connectivity_check()
        self.jobs.tls_check()
        self.instance_lock.hold_config(self.settings.barman_config_file)
        self.instance_lock.hold_home(self.settings.barman_home)
        self.http = self._bind()
        try:
            written = barman_config.write_configuration(self.settings)
            barman_config.prepare_directories(self.settings)
            self.instance_lock.hold_home(self.settings.barman_home)
            self.stopper.stop_previous_run()
            pgpass = barman_config.write_pgpass(self.settings)
            if self.settings.barman_forkserver:
                self.runner.serve_from(
                    ForkServer.start(
                        self.settings.barman_bin,
                        self.settings.child_env,
                        self.supervisor,
                        forkserver_preload(self.settings.servers),
                    )
                )
        except OSError as exc:
            raise ConfigError(
                f"{exc.filename}: cannot write ({exc.strerror}); make it writable for "
                f"user {self.settings.barman_user} or mount a volume there"
            ) from None
        self.http.start()
        if written:
            _log.info("config_rendered", files=[str(path) for path in written])
        else:
            _log.info("config_read", file=str(self.settings.barman_config_file))
        if pgpass:
            _log.info("pgpass_written", file=str(self.settings.pgpass_file), mode="0600")
        for server in self.settings.servers:
            if server.password_in_mounted_file:
                _log.warning(
                    "password_in_mounted_conninfo",
                    server=server.name,
                    hint="Barman puts it on pg_receivewal's command line (visible in ps); "
                    "remove password= from the conninfo and set PG_PASSWORD_FILE instead",
                )
            _log.info(
                "server_configured",
                server=server.name,
                host=server.host,
                port=server.port,
                slot=server.slot_name,
                backup_schedule=server.backup_schedule,
                retention_policy=server.retention_policy or None,
            )

    def _bind(self) -> HttpServer:
        probes = Probes(
            self.state,
            self.limits_for,
            lambda: self.scheduler.running,
            self.scheduler.next_runs,
            metrics.registry(self.state, self.limits_for),
        )
        try:
            return HttpServer(
                self.settings.http_bind,
                self.settings.http_port,
                probes,
                self.settings.http_access,
            )
        except OSError as exc:
            raise ConfigError(
                bind_problem(self.settings.http_bind, self.settings.http_port, exc)
            ) from None

    def _shutdown(self) -> None:
        _log.info(
            "daemon_stopping", signal=self.supervisor.signal_received, reason=self.fatal_reason
        )
        if self._started:
            self.jobs.stop_watching()
            self.scheduler.shutdown()
            self.stopper.stop_everything()
            self.jobs.flush_wal(self.runner)
            self.jobs.close()
        self.runner.close_forkserver()
        if self.http is not None:
            self.http.stop()
        self.notifier.close(timeout=3 * self.settings.alert_timeout + 5)
        self._tail_stop.set()
        self._tail.join(5)
        self.instance_lock.release()
        _log.info("daemon_stopped", orphans_reaped=self.supervisor.reaped)
