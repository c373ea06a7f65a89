"""When start-up must take a backup: none DONE yet, or the newest one failed."""

from __future__ import annotations

import pytest

from barman_supervisor.barman import Backup
from barman_supervisor.jobs.backups import needs_backup_at_start


def backups(*statuses: str) -> list[Backup]:
    return [Backup(f"2026112{n}T030000", status, None, None) for n, status in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "needed"),
    [
        ((), True),
        (("FAILED",), True),
        (("FAILED", "EMPTY", "SYNCING"), True),
        (("DONE",), False),
        (("FAILED", "DONE"), False),
        (("DONE", "FAILED"), True),
        (("STARTED",), False),
        (("WAITING_FOR_WALS",), False),
    ],
)
def test_needs_backup_at_start(statuses: tuple[str, ...], needed: bool) -> None:
    assert needs_backup_at_start(backups(*statuses)) is needed
