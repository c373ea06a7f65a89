"""Is a finished backup intact? ``barman verify-backup`` (pg_verifybackup against the manifest).

A backup that Barman calls DONE can still be unusable (a file truncated or changed on disk after
the copy); pg_verifybackup checks every file's size and checksum against ``backup_manifest``. The
daemon counts a failed verification as a failed backup.

Barman looks for ``pg_verifybackup`` on ``PATH``, where Debian does not put it, so the command
runs through ``env PATH=<bin dir of the backup's major>:…`` — still one child of the ``Runner``,
signalled and logged like every other command.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from barman_supervisor.barman.commands import Barman
from barman_supervisor.barman.compression import TAR_VERIFY_MIN_MAJOR, unverifiable
from barman_supervisor.barman.records import BackupFacts
from barman_supervisor.log import get_logger
from barman_supervisor.postgres.programs import debian_bin_dir, find_tool_dir, major_of

_log = get_logger(__name__)
VERIFY_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str
    duration_s: float
    backup_id: str
    at: float
    # Barman could not check it (a compressed backup and no pg_verifybackup 18): not a bad
    # backup, so ``ok`` stays True and ``reason`` says why and what to install.
    skipped: bool = False
    # The check could not be made (no pg_verifybackup, no backup.info, out of time): ``ok`` is
    # False for the backup job, yet it says nothing against the backup itself.
    inconclusive: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verification_reason(messages: tuple[tuple[str, str], ...], stderr: str, code: int) -> str:
    """The useful line: pg_verifybackup's complaint (Barman's last error), not its preamble."""
    errors = [text for level, text in messages if level == "error"]
    detail = [
        line.strip()
        for text in errors[1:] or errors
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("verify backup failure")
    ]
    if detail:
        return "; ".join(detail[:3])[:500]
    if errors:
        return errors[-1].splitlines()[0][:500]
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1][:500] if lines else f"barman verify-backup exit code {code}"


def verify_backup(
    barman: Barman,
    server: str,
    backup_id: str,
    *,
    pg_bin_dir: Path | None = None,
    facts: BackupFacts | None = None,
    timeout: float = VERIFY_TIMEOUT,
    kind: str = "verify",
) -> Verification:
    """Verify one backup; never raises for a bad backup, returns why instead."""
    started_wall, started = time.time(), time.monotonic()

    def result(
        ok: bool, reason: str = "", skipped: bool = False, inconclusive: bool = False
    ) -> Verification:
        duration = round(time.monotonic() - started, 3)
        _log_verification(server, backup_id, duration, ok, reason, skipped)
        return Verification(ok, reason, duration, backup_id, started_wall, skipped, inconclusive)

    version: int | None
    if facts is not None:
        version, compression = facts.version_num, facts.compression
    else:
        info = barman.home.backup_info(server, backup_id)
        version, compression = info.version, info.compression
    if version is None:
        return result(
            False, f"no readable backup.info for backup {backup_id} of {server}", inconclusive=True
        )
    tools = verifier_dir(major_of(version), bool(compression), pg_bin_dir)
    if isinstance(tools, str):
        return result(False, tools, inconclusive=True)
    outcome = barman.run(
        "verify-backup",
        server,
        backup_id,
        kind=kind,
        server=server,
        timeout=timeout,
        tools_dir=tools,
    )
    completed, messages = outcome.completed, outcome.messages
    if completed.timed_out:
        return result(False, f"verification timed out after {timeout:g}s", inconclusive=True)
    skipped = unverifiable(messages) if compression else ""
    if skipped:
        return result(True, skipped, skipped=True)
    if not completed.ok or any(level == "error" for level, _ in messages):
        return result(False, verification_reason(messages, completed.stderr, completed.returncode))
    return result(True)


def verifier_dir(major: int, compressed: bool, pg_bin_dir: Path | None) -> Path | str:
    """The directory of a ``pg_verifybackup`` that can read this backup, or why there is none.

    Only pg_verifybackup 18 or newer reads a compressed (tar) backup: one is preferred when
    installed; without it Barman says the backup cannot be checked (``unverifiable``).
    """
    preferred = find_tool_dir(max(major, TAR_VERIFY_MIN_MAJOR), pg_bin_dir) if compressed else None
    tools = preferred or find_tool_dir(major, pg_bin_dir)
    if tools is not None:
        return tools
    where = pg_bin_dir or debian_bin_dir(major)
    return (
        f"no pg_verifybackup for PostgreSQL {major} in {where}; install postgresql-client-"
        f"{major} (or newer) or set PG_BIN_DIR"
    )


def _log_verification(
    server: str, backup_id: str, duration: float, ok: bool, reason: str, skipped: bool
) -> None:
    """One event per verification: verified, failed, or skipped (a warning: not checked)."""
    if skipped:
        level, event = logging.WARNING, "backup_verification_skipped"
    else:
        level = logging.INFO if ok else logging.ERROR
        event = "backup_verified" if ok else "backup_verification_failed"
    _log.log(
        level,
        event,
        server=server,
        backup_id=backup_id,
        duration_s=duration,
        **({"reason": reason} if reason else {}),
    )
