"""Verdicts with consequences: each backup's verification (or drill) verdict written beside it,
published to the state, alerted on when it fails, and the retention hold that keeps the newest
verified backup out of Barman's retention.

The verdicts come from three places: the verification right after each backup the daemon takes
(``backups``), the verification of backups that have none yet (taken by hand, or before this
daemon), one per ``barman check`` run, newest first, and each restore drill (``drills``). What
they decide is in ``barman/verdicts`` as pure functions; here they are carried out.

The hold works as the off-site one does (``offsite/hold.py``): ``barman keep --target full`` on
the backup (Barman then keeps it and every WAL file after it, whatever ``RETENTION_POLICY``
says), released once a newer backup verified. A keep someone else set is never released: the
daemon records its own in the backup's verdict file (``held``). When both holds want the same
backup they share its keep, and the one that lets go last releases it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from barman_supervisor.barman.commands import NO_KEEP, Barman
from barman_supervisor.barman.records import Backup, BackupStatus, newest_backup
from barman_supervisor.barman.verdicts import (
    BY_DRILL,
    BY_VERIFICATION,
    BackupVerdict,
    Verdict,
    VerdictFiles,
    hold_plan,
)
from barman_supervisor.barman.verify import Verification, verify_backup
from barman_supervisor.config import Settings
from barman_supervisor.jobs.recorder import ServerLocks
from barman_supervisor.log import get_logger
from barman_supervisor.offsite.hold import Ledger
from barman_supervisor.status.alerts import Notifier, alert_backup_unusable
from barman_supervisor.status.state import DrillResult, State

_log = get_logger(__name__)
_HOLD_REASON = "the newest verified backup; Barman's retention keeps it"


def verification_verdict(verification: Verification) -> BackupVerdict:
    """pg_verifybackup's answer as a verdict; a backup it could not check stays pending (with
    why, so that it is not tried again at every check)."""
    if verification.skipped or verification.inconclusive:
        verdict = Verdict.PENDING
    else:
        verdict = Verdict.VERIFIED if verification.ok else Verdict.FAILED
    return BackupVerdict(
        verification.backup_id, verdict, verification.reason, BY_VERIFICATION, verification.at
    )


def drill_verdict(result: DrillResult) -> BackupVerdict | None:
    """A drill that restored the backup and read its data verified it; one that failed because
    of the backup (``backup_fault``) failed it; any other end (no space, no programs, time out,
    a stop) says nothing about the backup. Only drills of Barman's own copy count: a drill from
    the store judges the store's copy."""
    if result.backup_id is None or result.source != "local" or result.interrupted:
        return None
    if result.ok:
        return BackupVerdict(result.backup_id, Verdict.VERIFIED, "", BY_DRILL, result.started_at)
    if result.backup_fault:
        return BackupVerdict(
            result.backup_id, Verdict.FAILED, result.reason, BY_DRILL, result.started_at
        )
    return None


def pending_backup(
    backups: Iterable[Backup], verdicts: Mapping[str, BackupVerdict]
) -> Backup | None:
    """The newest DONE backup never checked: the next one to verify."""
    judged = {backup_id for backup_id, verdict in verdicts.items() if verdict.attempted}
    return newest_backup(
        b for b in backups if b.status == BackupStatus.DONE and b.backup_id not in judged
    )


class BackupVerdicts:
    def __init__(
        self, settings: Settings, barman: Barman, state: State, notifier: Notifier | None
    ) -> None:
        self._settings = settings
        self._barman = barman
        self._state = state
        self._notifier = notifier
        self._files = VerdictFiles(barman.home)
        self._offsite_ledger = Ledger(settings.barman_home)
        # One hold decision at a time per server: backups, checks and drills all move it.
        self._holding = ServerLocks()

    def record(self, server: str, verdict: BackupVerdict) -> BackupVerdict | None:
        """Write it beside the backup, publish it, alert on a new failure, move the hold."""
        before = self._files.read(server, verdict.backup_id)
        kept = self._files.write(server, verdict)
        if kept is None:
            _log.warning(
                "backup_verdict_not_kept",
                backup_id=verdict.backup_id,
                reason="the backup's directory is gone (deleted meanwhile)",
            )
            return None
        self._state.record_verdict(server, kept)
        _log.log(
            logging.ERROR if kept.failed else logging.INFO,
            "backup_verdict",
            backup_id=kept.backup_id,
            verdict=kept.verdict.value,
            by=kept.by,
            **({"reason": kept.reason} if kept.reason else {}),
        )
        if kept.failed and (before is None or not before.failed):
            alert_backup_unusable(
                self._settings, self._notifier, server, kept.backup_id, kept.by, kept.reason
            )
        self.hold(server)
        return kept

    def record_verification(self, server: str, verification: Verification) -> None:
        self.record(server, verification_verdict(verification))

    def record_drill(self, server: str, result: DrillResult) -> None:
        verdict = drill_verdict(result)
        if verdict is not None:
            self.record(server, verdict)

    def load(self, server: str, backups: list[Backup]) -> None:
        """The verdicts of the listed backups, from their files, into the state (after each
        ``list-backups``: a restart, or backups deleted or taken beside the daemon)."""
        verdicts = self._files.read_all(server, (b.backup_id for b in backups))
        self._state.record_verdicts(server, verdicts)

    def verify_pending(self, server: str) -> None:
        """Verify the newest backup that has no verdict yet, if any (one per call: each reads
        the whole backup)."""
        current = self._state.server(server)
        backup = pending_backup(current.backups, current.verdicts)
        if backup is None:
            return
        _log.info("pending_backup_verifying", backup_id=backup.backup_id)
        verification = verify_backup(
            self._barman, server, backup.backup_id, pg_bin_dir=self._settings.pg_bin_dir
        )
        self.record_verification(server, verification)

    def hold(self, server: str) -> None:
        """Keep the newest verified backup from retention; release the daemon's older keeps."""
        with self._holding(server):
            current = self._state.server(server)
            plan = hold_plan(current.backups, current.verdicts)
            if plan.hold is not None:
                self._keep(server, plan.hold)
            for backup_id in plan.release:
                self._release(server, current.verdicts[backup_id])

    def _keep(self, server: str, backup_id: str) -> None:
        """``barman keep --target full``, unless someone already keeps it (then it is protected,
        and the keep is not the daemon's to release). The off-site hold's keep is the daemon's
        too: shared, it is released by whichever hold lets go last."""
        if self._offsite_hold(server) == backup_id:
            _log.info("verified_hold", backup_id=backup_id, reason=_HOLD_REASON)
            self._mark(server, backup_id, held=True)
            return
        status = self._barman.keep_status(server, backup_id)
        if not status.ok or NO_KEEP not in status.completed.stdout:
            return
        kept = self._barman.keep_full(server, backup_id)
        _log.log(
            logging.INFO if kept.ok else logging.ERROR,
            "verified_hold" if kept.ok else "verified_hold_failed",
            backup_id=backup_id,
            reason=_HOLD_REASON,
        )
        if kept.ok:
            self._mark(server, backup_id, held=True)

    def _release(self, server: str, verdict: BackupVerdict) -> None:
        """``barman keep --release``, unless the off-site hold still keeps it (then it only
        stops being the verified hold's)."""
        released = (
            self._offsite_hold(server) == verdict.backup_id
            or self._barman.release_keep(server, verdict.backup_id).ok
        )
        _log.log(
            logging.INFO if released else logging.ERROR,
            "verified_hold_released" if released else "verified_hold_not_released",
            backup_id=verdict.backup_id,
            reason="a newer backup verified" if not verdict.failed else "the backup failed",
        )
        if released:
            self._mark(server, verdict.backup_id, held=False)

    def _offsite_hold(self, server: str) -> str | None:
        """The backup the off-site hold keeps for the store, if any (``offsite/hold``)."""
        kept = self._offsite_ledger.read(server).get("kept")
        return str(kept) if kept else None

    def _mark(self, server: str, backup_id: str, *, held: bool) -> None:
        """Remember the daemon's keep (or its release) in the backup's verdict file."""
        kept = self._files.set_held(server, backup_id, held)
        if kept is not None:
            self._state.record_verdict(server, kept)
