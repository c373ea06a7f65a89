"""The daemon's life: start everything, wait for a stop, and shut down in ``finally``.

Shutdown order matters for the data: stop scheduling first, give a running backup the grace
period to finish (a killed backup is a failed backup), then stop it so Barman records it FAILED,
then stop WAL streaming through Barman and make sure no ``pg_receivewal`` keeps the slot busy.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime

from apscheduler.triggers.interval import IntervalTrigger

from barman_supervisor import __version__, barman_config, metrics
from barman_supervisor.alerts import AlertTracker, Notifier, alert_payload, hostname
from barman_supervisor.api import HttpServer, Probes
from barman_supervisor.barman import Barman
from barman_supervisor.crontab import longest_gap, parse_crontab
from barman_supervisor.health import Limits, server_problems
from barman_supervisor.jobs import Jobs
from barman_supervisor.log import MASKER, RepeatFilter, get_logger
from barman_supervisor.logtail import LogTail
from barman_supervisor.offsite_copy import OffsiteCopier
from barman_supervisor.pid1 import ProcInfo, Supervisor
from barman_supervisor.proc import Runner
from barman_supervisor.scheduler import JobSpec, Scheduler
from barman_supervisor.settings import ConfigError, ServerSettings, Settings
from barman_supervisor.state import State

_log = get_logger(__name__)
BACKUP_STOP_GRACE = 60.0
# A drill's PostgreSQL gets a fast shutdown, then immediate, then SIGKILL: at most 50 s.
DRILL_STOP_GRACE = 60.0
LEFTOVER_GRACE = 10.0
# A start-up still waiting (usually for PostgreSQL) after this long is worth telling someone.
STARTUP_ALERT_AFTER = 600.0


def is_streaming_process(proc: ProcInfo) -> bool:
    return proc.name == "pg_receivewal" or "receive-wal" in proc.cmdline


def server_limits(settings: Settings, server: ServerSettings, now: datetime) -> Limits:
    """Readiness limits; a backup may be 1.5 gaps of its schedule old unless BACKUP_MAX_AGE says."""
    gap = longest_gap(parse_crontab(server.backup_schedule, settings.timezone), now)
    return Limits(
        postgres_max_silence=3 * settings.health_interval + settings.pg_connect_timeout,
        backup_max_age=server.backup_max_age or 1.5 * gap.total_seconds(),
        wal_max_lag_bytes=settings.wal_max_lag_bytes,
        wal_max_age=settings.wal_max_age,
        disk_min_free_bytes=settings.disk_min_free_bytes,
        offsite_backup_max_delay=server.offsite.backup_max_delay if server.offsite else None,
        offsite_wal_max_lag=server.offsite.wal_max_lag if server.offsite else None,
    )


class Daemon:
    def __init__(self, settings: Settings, supervisor: Supervisor | None = None) -> None:
        self.settings = settings
        self.supervisor = supervisor or Supervisor()
        self.state = State([server.name for server in settings.servers])
        now = datetime.now(settings.timezone)
        self.limits = {
            server.name: server_limits(settings, server, now) for server in settings.servers
        }
        self._default_limits = server_limits(settings, settings.servers[0], now)
        self.notifier = Notifier(settings.alert_timeout)
        self.tracker = AlertTracker(
            {
                "startup": STARTUP_ALERT_AFTER,
                "postgres": settings.alert_streaming_after,
                "streaming": settings.alert_streaming_after,
            }
        )
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
            notifier=self.notifier,
        )
        self.offsite = OffsiteCopier(settings, self.runner, self.barman, self.state)
        self.scheduler = Scheduler(settings, self.jobs, self.offsite)
        self.http: HttpServer | None = None
        self.fatal_reason: str | None = None
        self._started = False

    def limits_for(self, server: str) -> Limits:
        return self.limits.get(server, self._default_limits)

    def _fatal(self, server: str, reason: str) -> None:
        self.fatal_reason = f"{server}: {reason}"
        self.state.update(server, problems=[reason])
        _log.critical("startup_failed", server=server, reason=reason)
        self.evaluate_alerts()
        self.supervisor.stop_requested.set()

    def _server_ready(self, server: ServerSettings) -> None:
        self.scheduler.add_server_jobs(server)

    def evaluate_alerts(self) -> None:
        """One alert when a server stops being protected and one when it is again."""
        now = time.time()
        for name, server in self.state.servers().items():
            problems = server_problems(server, now, self.limits_for(name))
            change = self.tracker.observe(name, problems, now)
            if change is None:
                continue
            _log.log(
                30 if change.state == "failing" else 20,
                "alert",
                server=change.server,
                state=change.state,
                problems=[f"{p.condition}: {p.reason}" for p in change.problems],
            )
            if self.settings.alert_webhook_url is not None:
                self.notifier.post(
                    self.settings.alert_webhook_url,
                    alert_payload(change, now, hostname()),
                    what=f"alert {change.state} {change.server}",
                )

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
                        self.evaluate_alerts,
                        quiet=True,
                    )
                ]
            )
            self._started = True
            while not self.supervisor.stop_requested.wait(1.0):
                self.state.beat()
        finally:
            self._shutdown()
        return 1 if self.fatal_reason else 0

    def _stop_previous_run(self) -> None:
        """A daemon killed with SIGKILL (outside a container) leaves its Barman processes
        running: a backup, receive-wal, pg_receivewal holding the slot. Stop them before
        anything starts, so that an interrupted backup ends FAILED and the slot is free."""
        config = str(self.settings.barman_config_file)
        home = f"{self.settings.barman_home}/"

        def left_by_previous_run(proc: ProcInfo) -> bool:
            if config in proc.cmdline:
                return True
            postgres_tool = proc.name in ("pg_receivewal", "pg_basebackup")
            return postgres_tool and any(home in arg for arg in proc.cmdline)

        strays = self.supervisor.strays(left_by_previous_run)
        if strays:
            _log.warning(
                "previous_run_leftovers",
                processes=[" ".join(proc.cmdline[:6]) for proc in strays],
                action="stopping them",
            )
            self.supervisor.stop_processes(strays, LEFTOVER_GRACE)

    def _prepare(self) -> None:
        self._stop_previous_run()
        self.offsite.connectivity_check()
        try:
            barman_config.prepare_directories(self.settings)
            written = barman_config.write_configuration(self.settings)
            pgpass = barman_config.write_pgpass(self.settings)
        except OSError as exc:
            raise ConfigError(
                f"{exc.filename}: cannot write ({exc.strerror}); make it writable for "
                f"user {self.settings.barman_user} or mount a volume there"
            ) from None
        probes = Probes(
            self.state,
            self.limits_for,
            lambda: self.scheduler.running,
            self.scheduler.next_runs,
            metrics.registry(self.state, self.limits_for),
        )
        try:
            self.http = HttpServer(self.settings.http_bind, self.settings.http_port, probes)
        except OSError as exc:
            raise ConfigError(
                f"HTTP_PORT: cannot listen on {self.settings.http_bind}:{self.settings.http_port} "
                f"({exc.strerror}); pick a free port"
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

    def _shutdown(self) -> None:
        _log.info(
            "daemon_stopping", signal=self.supervisor.signal_received, reason=self.fatal_reason
        )
        if self._started:
            self._stop_barman()
        if self.http is not None:
            self.http.stop()
        self.notifier.close(timeout=3 * self.settings.alert_timeout + 5)
        self._tail_stop.set()
        self._tail.join(5)
        _log.info("daemon_stopped", orphans_reaped=self.supervisor.reaped)

    def _stop_barman(self) -> None:
        """Backups get their grace; everything else stops now; streaming stops through Barman."""
        self.scheduler.shutdown()
        self.runner.close()
        self.runner.signal(
            [k for k in self.runner.running_kinds() if k != "backup"], signal.SIGTERM
        )
        self._let_backups_finish()
        if not self.jobs.wait_for_drills(DRILL_STOP_GRACE):
            _log.error("drill_not_stopped", grace_s=DRILL_STOP_GRACE)
        for server in self.settings.servers:
            outcome = self.barman.terminate_receive_wal(server.name)
            if not outcome.ok:
                _log.warning(
                    "terminate_receive_wal_failed", server=server.name, reason=outcome.reason()
                )
        stopped = self.supervisor.terminate(is_streaming_process, LEFTOVER_GRACE, signal.SIGINT)
        if stopped:
            _log.info("streaming_stopped", pids=[proc.pid for proc in stopped])
        leftovers = self.supervisor.terminate(lambda _proc: True, LEFTOVER_GRACE)
        if leftovers:
            _log.info("leftovers_stopped", processes=[" ".join(p.cmdline[:4]) for p in leftovers])
        self.supervisor.reap_orphans()

    def _let_backups_finish(self) -> None:
        grace = self.settings.shutdown_grace
        if "backup" not in self.runner.running_kinds():
            return
        _log.warning("waiting_for_backup", grace_s=grace)
        deadline = time.monotonic() + grace
        while "backup" in self.runner.running_kinds() and time.monotonic() < deadline:
            time.sleep(0.2)
        if "backup" not in self.runner.running_kinds():
            _log.info("backup_finished_before_stop")
            return
        _log.error("backup_interrupted", reason=f"still running after SHUTDOWN_GRACE={grace:g}s")
        self.runner.signal(["backup"], signal.SIGTERM)
        deadline = time.monotonic() + BACKUP_STOP_GRACE
        while "backup" in self.runner.running_kinds() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.runner.signal(["backup"], signal.SIGKILL):
            _log.error("backup_killed", reason="ignored SIGTERM")
