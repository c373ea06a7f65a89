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

from barman_supervisor import __version__, barman_config
from barman_supervisor.barman import Barman
from barman_supervisor.jobs import Jobs
from barman_supervisor.log import MASKER, RepeatFilter, get_logger
from barman_supervisor.logtail import LogTail
from barman_supervisor.pid1 import ProcInfo, Supervisor
from barman_supervisor.proc import Runner
from barman_supervisor.scheduler import Scheduler
from barman_supervisor.settings import ConfigError, ServerSettings, Settings
from barman_supervisor.state import State

_log = get_logger(__name__)
BACKUP_STOP_GRACE = 60.0
LEFTOVER_GRACE = 10.0


def is_streaming_process(proc: ProcInfo) -> bool:
    return proc.name == "pg_receivewal" or "receive-wal" in proc.cmdline


class Daemon:
    def __init__(self, settings: Settings, supervisor: Supervisor | None = None) -> None:
        self.settings = settings
        self.supervisor = supervisor or Supervisor()
        self.state = State([server.name for server in settings.servers])
        repeats = RepeatFilter()
        self.runner = Runner(self.supervisor, settings.child_env, repeats)
        self.barman = Barman(settings, self.runner)
        self.jobs = Jobs(
            settings,
            self.barman,
            self.state,
            self.supervisor.stop_requested,
            on_fatal=self._fatal,
            on_ready=self._server_ready,
        )
        self.scheduler = Scheduler(settings, self.jobs)
        self._tail_stop = threading.Event()
        self._tail = LogTail(settings.barman_log_file, self._tail_stop, repeats)
        self.fatal_reason: str | None = None

    def _fatal(self, server: str, reason: str) -> None:
        self.fatal_reason = f"{server}: {reason}"
        _log.critical("startup_failed", server=server, reason=reason)
        self.supervisor.stop_requested.set()

    def _server_ready(self, server: ServerSettings) -> None:
        self.scheduler.add_server_jobs(server)

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
            self.scheduler.start()
            while not self.supervisor.stop_requested.wait(1.0):
                self.state.beat()
        finally:
            self._shutdown()
        return 1 if self.fatal_reason else 0

    def _prepare(self) -> None:
        try:
            barman_config.prepare_directories(self.settings)
            written = barman_config.write_configuration(self.settings)
            pgpass = barman_config.write_pgpass(self.settings)
        except OSError as exc:
            raise ConfigError(
                f"{exc.filename}: cannot write ({exc.strerror}); make it writable for "
                f"user {self.settings.barman_user} or mount a volume there"
            ) from None
        if written:
            _log.info("config_rendered", files=[str(path) for path in written])
        else:
            _log.info("config_read", file=str(self.settings.barman_config_file))
        if pgpass:
            _log.info("pgpass_written", file=str(self.settings.pgpass_file), mode="0600")
        for server in self.settings.servers:
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
        self.scheduler.shutdown()
        self.runner.close()
        self.runner.signal(
            [k for k in self.runner.running_kinds() if k != "backup"], signal.SIGTERM
        )
        self._let_backups_finish()
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
        self._tail_stop.set()
        self._tail.join(5)
        _log.info("daemon_stopped", orphans_reaped=self.supervisor.reaped)

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
