"""``barman check``: the verdict the probes show, refreshed with the backup list it depends on."""

from __future__ import annotations

import logging

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import ServerSettings
from barman_supervisor.jobs.backups import Backups
from barman_supervisor.jobs.recorder import JobRecorder, ServerLocks
from barman_supervisor.log import get_logger
from barman_supervisor.status.state import State

_log = get_logger(__name__)


class Checks:
    def __init__(
        self, barman: Barman, state: State, recorder: JobRecorder, backups: Backups
    ) -> None:
        self._barman = barman
        self._state = state
        self._recorder = recorder
        self._backups = backups
        self._running = ServerLocks()

    def check(self, server: ServerSettings) -> None:
        """Refresh backups (when Barman's files changed) and clear superseded failures first
        (a FAILED backup keeps the check red: cleared after it, the check just recorded would
        stay red until the next one), run ``barman check`` and log each result, then verify
        the newest backup that has no verdict yet."""
        with self._running(server.name), self._recorder.job("check", server.name) as run:
            self._backups.refresh_if_files_changed(server)
            self._backups.delete_superseded_failures(server)
            outcome, checks = self._barman.check(server.name)
            for check in checks:
                _log.log(
                    logging.INFO if check.ok else logging.WARNING,
                    "check_result",
                    check=check.name,
                    ok=check.ok,
                    **({"hint": check.hint} if check.hint else {}),
                )
            self._state.record_checks(server.name, checks)
            if not checks:
                run.take(outcome)
            elif not outcome.ok:
                failed = [check.name for check in checks if not check.ok]
                run.fail(f"failed checks: {', '.join(failed)}", outcome.completed.returncode)
            self._backups.verify_pending(server)

    def recheck_if_failed(self, server: ServerSettings) -> None:
        """After a backup is DONE: a red check it may have cleared (minimum redundancy, a
        failed backup it superseded) is asked again now, not at the next BARMAN_CHECK_INTERVAL
        (five minutes by default) with ``/readyz`` red meanwhile. A green one stands."""
        if any(not check.ok for check in self._state.server(server.name).checks):
            self.check(server)
