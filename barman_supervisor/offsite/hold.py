"""What the off-site copy must remember across restarts, and the hold on local retention.

``Ledger`` keeps, per server, the newest WAL file copied (and the store it went to: a new
OFFSITE_URL starts over) and the backup the daemon holds with ``barman keep``, in
``BARMAN_HOME/.offsite/<server>.json`` (a name no Barman server can have).

``RetentionHold`` makes sure Barman's own retention (run by ``barman cron``) deletes nothing the
store still lacks, whether the copy fails or is only behind (a backup upload taking hours, a WAL
backlog): it marks the oldest backup still needed with
``barman keep --target full`` (Barman then keeps it and every WAL file after its start); once
the store caught up, the mark moves to the newest backup, which covers the WAL archived before
the next round (it is never let go while a backup exists: a release would open that window).
Incremental backups are never held (Barman refuses ``keep`` on them); the full before them
covers their WAL. A keep someone else set is never released; one the
daemon set for its newest verified backup (``jobs/verdicts``) is shared with that hold.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from barman_supervisor.barman.commands import NO_KEEP, Barman
from barman_supervisor.barman.records import BackupStatus
from barman_supervisor.barman.verdicts import VerdictFiles
from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.files import write_atomically
from barman_supervisor.log import get_logger
from barman_supervisor.offsite.plan import (
    LocalBackup,
    OffsiteRecord,
    backup_to_protect,
)
from barman_supervisor.status.state import State

_log = get_logger(__name__)
_HOLD_REASON = "the off-site store lacks it or WAL after it; Barman's retention keeps it"


class Ledger:
    def __init__(self, barman_home: Path) -> None:
        self._dir = barman_home / ".offsite"

    def read(self, server: str) -> dict[str, Any]:
        try:
            data = json.loads((self._dir / f"{server}.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, server: str, **changes: Any) -> None:
        data = {**self.read(server), **changes}
        self._dir.mkdir(mode=0o700, exist_ok=True)
        write_atomically(self._dir / f"{server}.json", json.dumps(data))


class RetentionHold:
    def __init__(self, settings: Settings, barman: Barman, state: State, ledger: Ledger) -> None:
        self._settings = settings
        self._barman = barman
        self._state = state
        self._ledger = ledger

    def apply(self, server: ServerSettings, record: OffsiteRecord | None) -> str | None:
        """Hold the backup the store still needs while anything is owed, failing or not (issue
        24: a copy merely behind must not lose what it has yet to copy), the newest backup once
        the store has everything (``backup_to_protect``). The backup held now, if any."""
        held = self._ledger.read(server.name).get("kept")
        wanted = None
        if record is not None:
            wanted = backup_to_protect(
                self._local(server), record.backups_owed, record.oldest_owed_wal
            )
        if wanted == held:
            return str(held) if held else None
        if held and (
            self._verified_hold(server.name, held)  # still kept, for the verified hold
            or self._barman.release_keep(server.name, held).ok
        ):
            _log.info("offsite_hold_released", backup_id=held)
            held = None
        if wanted and self._hold(server.name, wanted):
            held = wanted
        self._ledger.write(server.name, kept=held)
        return str(held) if held else None

    def _hold(self, server: str, backup_id: str) -> bool:
        """Keep it, unless someone else already did (then it is protected, and not ours). A keep
        the daemon set for the newest verified backup (``jobs/verdicts``) is shared: both holds
        count it as theirs, and the one that lets go last releases it."""
        if self._verified_hold(server, backup_id):
            _log.info("offsite_hold", backup_id=backup_id, reason=_HOLD_REASON)
            return True
        status = self._barman.keep_status(server, backup_id)
        if status.ok and NO_KEEP not in status.completed.stdout:
            return False
        kept = self._barman.keep_full(server, backup_id)
        _log.log(
            logging.INFO if kept.ok else logging.ERROR,
            "offsite_hold" if kept.ok else "offsite_hold_failed",
            backup_id=backup_id,
            reason=_HOLD_REASON,
        )
        return kept.ok

    def _verified_hold(self, server: str, backup_id: str) -> bool:
        verdict = VerdictFiles(self._barman.home).read(server, backup_id)
        return verdict is not None and verdict.held

    def _local(self, server: ServerSettings) -> list[LocalBackup]:
        backups = []
        for backup in self._state.server(server.name).backups:
            if backup.status != BackupStatus.DONE or backup.end_time is None:
                continue
            info = self._barman.home.backup_info(server.name, backup.backup_id)
            # no backup.info: deleted since the listing; an incremental: not keepable
            if info.fields and not info.parent_id:
                begin = info.begin_wal or ""
                backups.append(LocalBackup(backup.backup_id, begin, backup.end_time))
        return backups
