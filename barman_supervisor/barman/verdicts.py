"""Whether each backup can be trusted, kept on disk with the backup, and what follows from it.

``barman verify-backup`` (pg_verifybackup) and the restore drill both prove or disprove a backup.
Their verdict must outlive the daemon: a backup that failed verification must never become the
default of ``restore``, the drill's choice or the backup Barman's retention keeps in place of the
last good one, also after a restart. So it is written as a small JSON file in the backup's own
directory (``base/<backup id>/``, the one atomic write): it lives exactly as long as the backup,
since ``barman delete`` and Barman's retention remove that directory whole (``shutil.rmtree``),
and Barman ignores a file it does not know there (it finds backups by their ``backup.info``, and
``recover`` copies ``data/`` only). No ledger to prune, no entry left behind by a deleted backup.

A backup has one of three verdicts: ``verified`` (pg_verifybackup accepted it, or a drill
restored it and read its data), ``failed`` (either rejected it; the reason says why) or
``pending`` (not checked yet, or it could not be: a compressed backup and no pg_verifybackup 18).

The pure decisions live here too, so that restore, the drill and retention decide alike:
``usable`` (newest backup not failed), ``named_refusal`` (a named failed backup) and ``hold_plan``
(which backup the daemon keeps with ``barman keep`` so retention never removes the newest
verified one, and which of its own keeps it releases).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from barman_supervisor.barman.chains import chain_of
from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.records import Backup, BackupStatus, newest_backup
from barman_supervisor.files import write_atomically

# The file beside Barman's data/ in a backup's directory; a name Barman never uses there.
VERDICT_FILE = "barman-supervisor-verdict.json"
ALLOW_UNVERIFIED = "--allow-unverified"


class Verdict(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"
    PENDING = "pending"


# What proved or disproved a backup.
BY_VERIFICATION = "verification"
BY_DRILL = "drill"


@dataclass(frozen=True)
class BackupVerdict:
    """One backup's verdict. ``held``: the daemon set ``barman keep`` on it (for the retention
    hold); only such keeps are ever released by the daemon."""

    backup_id: str
    verdict: Verdict
    reason: str = ""
    by: str = BY_VERIFICATION
    at: float = 0.0
    held: bool = False

    @property
    def failed(self) -> bool:
        return self.verdict == Verdict.FAILED

    @property
    def attempted(self) -> bool:
        """A check was made: a verdict, or why none could be reached (a pending one with a
        reason). A file that only records the daemon's keep was never checked."""
        return self.verdict != Verdict.PENDING or bool(self.reason)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackupVerdict | None:
        """None for a file that is not one of ours (or from a future version it cannot read)."""
        try:
            return cls(
                backup_id=str(data["backup_id"]),
                verdict=Verdict(data["verdict"]),
                reason=str(data.get("reason") or ""),
                by=str(data.get("by") or BY_VERIFICATION),
                at=float(data.get("at") or 0.0),
                held=bool(data.get("held")),
            )
        except (KeyError, ValueError, TypeError):
            return None


def merged(old: BackupVerdict | None, new: BackupVerdict) -> BackupVerdict:
    """The verdict to keep: the newer one, with the daemon's keep remembered; a check that could
    not be made (pending) never clears what an earlier one proved."""
    if old is None:
        return new
    if new.verdict == Verdict.PENDING and old.verdict != Verdict.PENDING:
        return old
    return replace(new, held=old.held)


class VerdictFiles:
    """The verdict files under ``BARMAN_HOME``; missing or unreadable reads as no verdict."""

    def __init__(self, home: BarmanHome) -> None:
        self._home = home

    def path(self, server: str, backup_id: str) -> Path:
        return self._home.backup_dir(server, backup_id) / VERDICT_FILE

    def read(self, server: str, backup_id: str) -> BackupVerdict | None:
        try:
            data = json.loads(self.path(server, backup_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        verdict = BackupVerdict.from_dict(data) if isinstance(data, dict) else None
        return verdict if verdict is not None and verdict.backup_id == backup_id else None

    def read_all(self, server: str, backup_ids: Iterable[str]) -> dict[str, BackupVerdict]:
        found = {backup_id: self.read(server, backup_id) for backup_id in backup_ids}
        return {backup_id: verdict for backup_id, verdict in found.items() if verdict}

    def write(self, server: str, verdict: BackupVerdict) -> BackupVerdict | None:
        """Merge and write; the verdict kept, or None when the backup's directory is gone (it was
        deleted meanwhile: there is nothing left to judge)."""
        directory = self._home.backup_dir(server, verdict.backup_id)
        if not directory.is_dir():
            return None
        kept = merged(self.read(server, verdict.backup_id), verdict)
        write_atomically(directory / VERDICT_FILE, json.dumps(kept.as_dict()) + "\n")
        return kept

    def set_held(self, server: str, backup_id: str, held: bool) -> BackupVerdict | None:
        """Record that the daemon set (or released) ``barman keep`` on this backup; a backup with
        no verdict yet gets a pending one that says only that."""
        directory = self._home.backup_dir(server, backup_id)
        if not directory.is_dir():
            return None
        old = self.read(server, backup_id) or BackupVerdict(backup_id, Verdict.PENDING)
        kept = replace(old, held=held)
        write_atomically(directory / VERDICT_FILE, json.dumps(kept.as_dict()) + "\n")
        return kept


# Decisions ----------------------------------------------------------------------------------------
def verdict_of(verdicts: Mapping[str, BackupVerdict], backup_id: str) -> Verdict:
    found = verdicts.get(backup_id)
    return found.verdict if found is not None else Verdict.PENDING


def failed_ids(verdicts: Mapping[str, BackupVerdict]) -> frozenset[str]:
    return frozenset(backup_id for backup_id, verdict in verdicts.items() if verdict.failed)


def usable(backups: Iterable[Backup], verdicts: Mapping[str, BackupVerdict]) -> Backup | None:
    """The newest DONE backup that has not failed verification or a drill (verified or pending):
    what ``restore``, ``restore-offsite`` and the drill take when no backup is named."""
    failed = failed_ids(verdicts)
    return newest_backup(
        b for b in backups if b.status == BackupStatus.DONE and b.backup_id not in failed
    )


def named_refusal(backup_id: str, verdicts: Mapping[str, BackupVerdict]) -> str | None:
    """Why a backup named by a person is refused, or None: one that failed is used only when
    they say so (``--allow-unverified``)."""
    found = verdicts.get(backup_id)
    if found is None or not found.failed:
        return None
    what = "a restore drill" if found.by == BY_DRILL else "verification"
    return (
        f"backup {backup_id} failed {what} ({found.reason}); choose another backup, or add "
        f"{ALLOW_UNVERIFIED} to restore it anyway"
    )


def describe(verdict: BackupVerdict | None) -> str:
    """A verdict in a restore's plan."""
    if verdict is None or verdict.verdict == Verdict.PENDING:
        why = f": {verdict.reason}" if verdict is not None and verdict.reason else ""
        return f"not yet (pending{why})"
    when = datetime.fromtimestamp(verdict.at).astimezone().isoformat(timespec="seconds")
    if verdict.failed:
        return f"FAILED {verdict.by} {when}: {verdict.reason} ({ALLOW_UNVERIFIED})"
    return f"yes ({verdict.by}, {when})"


@dataclass(frozen=True)
class HoldPlan:
    """What the retention hold does now: keep ``hold`` (None: nothing new) and release the
    daemon's own keeps in ``release``."""

    hold: str | None
    release: tuple[str, ...]


def hold_target(backups: Iterable[Backup], verdicts: Mapping[str, BackupVerdict]) -> str | None:
    """The backup retention must never remove: the newest DONE backup that is verified, or, for
    an incremental one, the full backup at its chain's root (Barman keeps only full backups;
    ``keep --target full`` on the root keeps every WAL after it, so the point the incremental
    reached stays restorable)."""
    listed = list(backups)
    verified = newest_backup(
        b
        for b in listed
        if b.status == BackupStatus.DONE and verdict_of(verdicts, b.backup_id) == Verdict.VERIFIED
    )
    if verified is None:
        return None
    chain = chain_of(verified, listed)
    if chain.broken is not None:
        return None
    return chain.members[0].backup_id


def hold_plan(backups: Iterable[Backup], verdicts: Mapping[str, BackupVerdict]) -> HoldPlan:
    """Hold the newest verified backup (``hold_target``); release the daemon's other keeps once
    a newer backup verified. With no verified backup at all, the daemon's keeps stay unless
    their backup failed since (a keep on a bad backup protects nothing)."""
    listed = list(backups)
    target = hold_target(listed, verdicts)
    ours = sorted(backup_id for backup_id, verdict in verdicts.items() if verdict.held)
    release = tuple(
        backup_id
        for backup_id in ours
        if backup_id != target and (target is not None or verdicts[backup_id].failed)
    )
    wanted = target if target is not None and target not in ours else None
    return HoldPlan(wanted, release)


def verification_view(
    backups: Iterable[Backup], verdicts: Mapping[str, BackupVerdict]
) -> dict[str, dict[str, Any]]:
    """Per DONE backup, as ``/status`` shows it: ``verified`` / ``failed`` (with the reason and
    what found it) / ``pending``, and whether the daemon holds it against retention."""
    view: dict[str, dict[str, Any]] = {}
    for backup in sorted(backups, key=Backup.order_key, reverse=True):
        if backup.status != BackupStatus.DONE:
            continue
        found = verdicts.get(backup.backup_id)
        entry: dict[str, Any] = {"verdict": verdict_of(verdicts, backup.backup_id).value}
        if found is not None:
            entry.update(by=found.by, at=found.at, held=found.held)
            if found.reason:
                entry["reason"] = found.reason
        view[backup.backup_id] = entry
    return view
