"""The off-site record's typed writers (offsite_copy.Records): each fact one method, the State
sees the whole record after every change, and /readyz, /status, /metrics read it unchanged."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from barman_supervisor.barman.records import Backup
from barman_supervisor.config import ServerSettings, load_settings
from barman_supervisor.offsite.copier import Records
from barman_supervisor.status.health import server_problems
from barman_supervisor.status.state import State
from tests.unit.offsite.test_plan import OFFSITE_LIMITS as LIMITS
from tests.unit.status.test_health import NOW, protected

URL = "s3://backups/barman"
# A WAL file's time in Barman's archive: what the store's recovery point is read from.
WRITTEN_AT = 1_700_000_000.0


@pytest.fixture
def server(environ: dict[str, str]) -> ServerSettings:
    return load_settings({**environ, "OFFSITE_URL": URL}).servers[0]


def backup(backup_id: str, end: float, size: int) -> Backup:
    return Backup(backup_id=backup_id, status="DONE", end_time=end, size_bytes=size)


def test_a_first_write_publishes_the_whole_record_with_the_url(server: ServerSettings) -> None:
    state = State([server.name])
    records = Records(state)
    assert records.get(server.name) is None
    records.wal_backlog(server, 3, "000000010000000000000004", 1000.0)
    published = state.server(server.name).offsite
    assert published["url"] == URL
    assert published["wal_owed"] == 3
    assert published["oldest_owed_wal"] == "000000010000000000000004"
    assert published["last_error"] is None
    assert published["backups_owed"] == []


def test_a_backup_copy_moves_owed_to_copied_and_adds_its_bytes(
    server: ServerSettings, tmp_path: Path
) -> None:
    state = State([server.name])
    records = Records(state)
    first, second = backup("20261101T000000", 100.0, 10), backup("20261102T000000", 200.0, 20)
    records.store_listed(server, set(), [first.backup_id, second.backup_id], {})
    records.backup_copying(server, first)
    assert state.server(server.name).offsite["oldest_owed_backup_end"] == 100.0
    records.backup_copied(server, first, {first.backup_id}, [second.backup_id])
    records.backup_copied(server, second, {first.backup_id, second.backup_id}, [])
    record = records.get(server.name)
    assert record is not None
    assert record.store_backups == [first.backup_id, second.backup_id]
    assert record.backups_owed == []
    assert record.newest_copied_backup == second.backup_id
    assert record.oldest_owed_backup is None
    assert record.bytes_copied == 30
    segment = tmp_path / "000000010000000000000009"
    segment.write_bytes(b"")
    os.utime(segment, (WRITTEN_AT, WRITTEN_AT))
    records.wal_copied(server, segment, 2, 5)
    assert state.server(server.name).offsite["bytes_copied"] == 35
    assert state.server(server.name).offsite["wal_copied"] == segment.name
    assert state.server(server.name).offsite["newest_wal_at"] == WRITTEN_AT
    assert state.server(server.name).offsite["wal_files_copied"] == 2


def test_each_job_keeps_its_own_error_and_the_server_is_unready_until_both_recover(
    server: ServerSettings,
) -> None:
    state = State([server.name])
    records = Records(state)
    records.round_failed(server, "backup", "listing the store: Access Denied")
    records.round_failed(server, "wal", "copying WAL 0000000100000000000000A1: timed out")
    published = state.server(server.name).offsite
    assert published["failures"] == 2
    assert published["last_error"] == (
        "listing the store: Access Denied; copying WAL 0000000100000000000000A1: timed out"
    )
    problems = server_problems(
        replace(protected(), offsite=state.server(server.name).offsite), NOW, LIMITS
    )
    assert any("Access Denied" in p.reason for p in problems)
    records.round_succeeded(server, "backup")
    assert state.server(server.name).offsite["last_error"].startswith("copying WAL")
    records.round_succeeded(server, "wal")
    published = state.server(server.name).offsite
    assert published["last_error"] is None
    assert published["last_ok_at"] is not None
    assert not [
        p
        for p in server_problems(
            replace(protected(), offsite=state.server(server.name).offsite), NOW, LIMITS
        )
        if p.condition == "offsite"
    ]


def test_a_read_is_a_copy_the_caller_cannot_change_the_record_through(
    server: ServerSettings,
) -> None:
    records = Records(State([server.name]))
    records.store_listed(server, {"a"}, ["b"], {"c": "it is incremental"})
    copy = records.get(server.name)
    assert copy is not None
    copy.retention_hold = "a"
    records.retention_applied(server)
    record = records.get(server.name)
    assert record is not None
    assert record.retention_hold is None
    assert record.retention_at is not None
    assert record.refused_backups == {"c": "it is incremental"}
