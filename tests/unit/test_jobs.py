"""When start-up must take a backup: none DONE yet, or the newest one failed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from barman_supervisor.barman import Backup
from barman_supervisor.jobs import needs_backup_at_start


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


def test_newest_is_decided_by_timestamps_when_tz_reordered_the_ids() -> None:
    """TZ moved east: the backup taken later got the smaller ID; it FAILED, so one is owed."""
    older_done = Backup("20261124T170000", "DONE", 1100.0, 1, begin_time=1000.0)
    newer_failed = Backup("20261124T040000", "FAILED", None, None, begin_time=5000.0)

    assert needs_backup_at_start([older_done, newer_failed]) is True
    assert needs_backup_at_start([replace(newer_failed, status="DONE", end_time=5100.0)]) is False
