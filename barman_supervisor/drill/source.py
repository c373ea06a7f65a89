"""Where a drill restores from (DRILL_SOURCE): Barman's local catalogue, or the off-site store.

The copy that matters in a disaster is the one in the store (issue 14): with ``offsite`` the
drill proves it, through the same plan and steps as ``restore-offsite`` (the newest backup
that leads to the store's newest timeline, ``barman-cloud-restore``, history files and WAL by
``barman-cloud-wal-restore``), into the drill's scratch directory. The temporary server, its
query and the clean-up are the drill's own, whatever the source.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from barman_supervisor.barman.commands import Barman
from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.records import Backup, BackupFacts, newest_done
from barman_supervisor.barman.verdicts import VerdictFiles, failed_ids, usable
from barman_supervisor.barman.verify import verify_backup
from barman_supervisor.config import DRILL_OFFSITE, ServerSettings, Settings
from barman_supervisor.errors import DrillFailed
from barman_supervisor.process.runner import Runner
from barman_supervisor.restore.common import recover_jobs, usable_cores
from barman_supervisor.restore.store import StorePlan, StoreRestore, plan_restore


class Source(Protocol):
    name: str

    def choose(self) -> tuple[Backup, BackupFacts]:
        """The backup to restore and what restoring it needs; DrillFailed when there is none."""

    def verify(self, backup: Backup, facts: BackupFacts, timeout: float) -> str | None:
        """Why the backup is damaged, or None; DrillFailed when it could not be checked."""

    def recover(self, backup: Backup, data: Path, bin_dir: Path, timeout: float) -> None:
        """Restore it with its WAL into ``data``, ready to start; DrillFailed on failure."""


class LocalSource:
    """Barman's catalogue: ``barman verify-backup``, then ``barman recover``."""

    name = "local"

    def __init__(
        self, server: ServerSettings, barman: Barman, pg_bin_dir: Path | None, kinds: dict[str, str]
    ) -> None:
        self._server = server
        self._barman = barman
        self._pg_bin_dir = pg_bin_dir
        self._kinds = kinds

    def choose(self) -> tuple[Backup, BackupFacts]:
        outcome, backups = self._barman.list_backups(self._server.name)
        if not outcome.ok:
            raise DrillFailed(f"barman list-backups failed: {outcome.reason()}")
        verdicts = VerdictFiles(self._barman.home).read_all(
            self._server.name, (b.backup_id for b in backups)
        )
        backup = usable(backups, verdicts)
        if backup is None and newest_done(backups) is not None:
            raise DrillFailed("every DONE backup failed verification or a drill: none to restore")
        if backup is None:
            raise DrillFailed("no DONE backup to restore")
        shown, facts = self._barman.show_backup(self._server.name, backup.backup_id)
        if facts is None or not facts.version_num:
            raise DrillFailed(f"barman show-backup {backup.backup_id} failed: {shown.reason()}")
        return backup, facts

    def verify(self, backup: Backup, facts: BackupFacts, timeout: float) -> str | None:
        verification = verify_backup(
            self._barman,
            self._server.name,
            backup.backup_id,
            pg_bin_dir=self._pg_bin_dir,
            facts=facts,
            timeout=timeout,
            kind=self._kinds["verify"],
        )
        if verification.inconclusive:  # says nothing about the backup: the drill cannot go on
            raise DrillFailed(f"backup not verified: {verification.reason}")
        return None if verification.ok else verification.reason

    def recover(self, backup: Backup, data: Path, bin_dir: Path, timeout: float) -> None:
        """``bin_dir`` first on PATH: Barman runs pg_combinebackup (incremental backups) from
        PATH only, and it must be of the backup's major."""
        outcome = self._barman.run(
            "recover",
            "--jobs",
            str(recover_jobs(usable_cores())),
            self._server.name,
            backup.backup_id,
            str(data),
            kind=self._kinds["recover"],
            server=self._server.name,
            timeout=timeout,
            tools_dir=bin_dir,
        )
        if not outcome.ok:
            raise DrillFailed(f"barman recover failed: {outcome.reason()}")


class StoreSource:
    """The off-site store, planned and restored as ``restore-offsite`` does. There is no
    separate verification step: the restore, the start and the query are the proof."""

    name = DRILL_OFFSITE

    def __init__(
        self,
        settings: Settings,
        server: ServerSettings,
        runner: Runner,
        kind: str,
        budget: Callable[[], float],
    ) -> None:
        assert server.offsite is not None  # settings refuse DRILL_SOURCE=offsite without it
        self._url = server.offsite.url
        self._verdicts = VerdictFiles(BarmanHome(settings.barman_home))
        self._server = server.name
        self._store = StoreRestore(settings, server.name, server.offsite, runner, kind, budget)
        self._plan: StorePlan | None = None

    def choose(self) -> tuple[Backup, BackupFacts]:
        listed = self._store.backups()
        histories = self._store.histories() if not isinstance(listed, str) else listed
        if isinstance(listed, str) or isinstance(histories, str):
            reason = listed if isinstance(listed, str) else histories
            raise DrillFailed(f"cannot read the off-site store {self._url}: {reason}")
        # The store's copy of a backup that failed verification here is the same backup.
        failed = failed_ids(self._verdicts.read_all(self._server, (b.backup_id for b in listed)))
        plan = plan_restore(
            [b for b in listed if b.backup_id not in failed], histories, None, None, None
        )
        if isinstance(plan, str):
            raise DrillFailed(f"off-site store {self._url}: {plan}")
        self._plan = plan
        chosen = plan.backup
        backup = Backup(chosen.backup_id, chosen.status, chosen.end_time, chosen.size_bytes)
        facts = BackupFacts(
            chosen.backup_id,
            chosen.status,
            chosen.version or 0,
            chosen.size_bytes or 0,
            chosen.end_time,
        )
        if not facts.version_num:
            raise DrillFailed(f"the store's backup {chosen.backup_id} names no PostgreSQL version")
        return backup, facts

    def verify(self, backup: Backup, facts: BackupFacts, timeout: float) -> str | None:
        return None

    def recover(self, backup: Backup, data: Path, bin_dir: Path, timeout: float) -> None:
        assert self._plan is not None and self._plan.backup.backup_id == backup.backup_id
        # Into pg_wal: the drill's server recovers with restore_command=false from there, and
        # finds the history files there too (recovery_target_timeline 'latest': the newest
        # fetched is the plan's timeline).
        restored = self._store.restore(self._plan, data, data / "pg_wal")
        if isinstance(restored, str):
            raise DrillFailed(f"restore from the off-site store failed: {restored}")


def source_for(
    settings: Settings,
    server: ServerSettings,
    barman: Barman,
    runner: Runner,
    kinds: dict[str, str],
    budget: Callable[[], float],
    pg_bin_dir: Path | None,
) -> Source:
    """DRILL_SOURCE's source; ``budget`` is the drill's time left (raises once none is)."""
    if server.drill_source == DRILL_OFFSITE:
        return StoreSource(settings, server, runner, kinds["recover"], budget)
    return LocalSource(server, barman, pg_bin_dir, kinds)
