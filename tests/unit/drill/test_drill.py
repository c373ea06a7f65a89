"""The pure parts of the restore drill and of backup verification."""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from barman_supervisor.barman.commands import parse_backups, parse_show_backup
from barman_supervisor.barman.records import Backup, BackupFacts
from barman_supervisor.barman.verify import verification_reason
from barman_supervisor.config import Settings, load_settings
from barman_supervisor.drill import (
    DEFAULT_QUERY,
    DrillConfig,
    DrillResult,
    newest_done,
    restored_age,
    server_options,
    space_problem,
    unreachable_ancestor,
)
from barman_supervisor.drill.drill import Drill
from barman_supervisor.drill.source import LocalSource, StoreSource, source_for
from barman_supervisor.errors import ConfigError, DrillFailed
from barman_supervisor.postgres.programs import (
    find_bin_dir,
    find_tool_dir,
    major_of,
    server_user,
)
from barman_supervisor.process.runner import path_with
from barman_supervisor.status.health import drill_reason

GIB = 1024**3


def test_newest_done_skips_failed_and_running() -> None:
    data = {
        "pg": [
            {"backup_id": "3", "status": "STARTED"},
            {"backup_id": "2", "status": "FAILED"},
            {
                "backup_id": "1",
                "status": "DONE",
                "size_bytes": 100,
                "wal_size_bytes": 20,
                "end_time_timestamp": "1795478625",
            },
        ]
    }
    found = newest_done(parse_backups(data, "pg"))
    assert found is not None
    assert (found.backup_id, found.size_bytes, found.wal_size_bytes) == ("1", 100, 20)
    assert found.end_time == 1795478625.0
    assert (
        newest_done(parse_backups({"pg": [{"backup_id": "9", "status": "FAILED"}]}, "pg")) is None
    )
    assert newest_done(parse_backups(None, "pg")) is None


def test_space_is_backup_times_factor_plus_margin() -> None:
    assert space_problem(free_bytes=3 * GIB, needed_bytes=GIB, factor=2, margin=GIB) is None
    reason = space_problem(free_bytes=3 * GIB - 1, needed_bytes=GIB, factor=2, margin=GIB)
    assert reason is not None
    assert "3072 MiB needed" in reason and "DRILL_SCRATCH_DIR" in reason


def test_unreachable_ancestor_names_the_closed_directory() -> None:
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="bs-unit-"))  # pytest's tmp tree is closed to others
    try:
        base.chmod(0o755)
        outer = base / "outer"
        inner = outer / "inner"
        inner.mkdir(parents=True)
        outer.chmod(0o700)
        assert unreachable_ancestor(inner, nobody.pw_uid, nobody.pw_gid, set()) == outer
        outer.chmod(0o711)
        assert unreachable_ancestor(inner, nobody.pw_uid, nobody.pw_gid, set()) is None
        outer.chmod(0o710)
        assert unreachable_ancestor(inner, nobody.pw_uid, nobody.pw_gid, set()) == outer
        group = outer.stat().st_gid
        assert unreachable_ancestor(inner, nobody.pw_uid, nobody.pw_gid, {group}) is None
        assert unreachable_ancestor(inner, 0, 0, set()) is None
    finally:
        shutil.rmtree(base)


def test_server_options_keep_the_drill_private_and_harmless(tmp_path: Path) -> None:
    argv = server_options(5999, tmp_path, tmp_path / "hba", tmp_path / "ident", tmp_path / "pid")
    options = dict(arg.split("=", 1) for arg in argv[1::2])
    assert all(flag == "-c" for flag in argv[0::2])
    assert options["listen_addresses"] == ""
    assert options["unix_socket_directories"] == str(tmp_path)
    assert options["archive_mode"] == "off" and options["external_pid_file"] == str(
        tmp_path / "pid"
    )
    assert options["hba_file"] == str(tmp_path / "hba")
    assert options["primary_conninfo"] == "" and options["restore_command"] == "false"
    assert options["port"] == "5999"


def test_restored_age_takes_the_later_of_commit_and_backup_end() -> None:
    assert restored_age(100.0, 90.0, 130.0) == (100.0, 30.0)
    assert restored_age(None, 90.0, 130.0) == (90.0, 40.0)
    assert restored_age(80.0, 90.0, 130.0) == (90.0, 40.0)
    assert restored_age(None, None, 130.0) == (None, None)


def test_default_query_reads_user_tables_only() -> None:
    assert "count(*)" in DEFAULT_QUERY and "pg_catalog" in DEFAULT_QUERY


def _fake_bin(root: Path, major: int, *programs: str) -> Path:
    directory = root / str(major) / "bin"
    directory.mkdir(parents=True)
    for program in programs:
        path = directory / program
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return directory


def test_bin_dirs_by_major(tmp_path: Path) -> None:
    fifteen = _fake_bin(tmp_path, 15, "postgres", "pg_verifybackup")
    seventeen = _fake_bin(tmp_path, 17, "pg_verifybackup")
    assert major_of(150018) == 15 and major_of(170002) == 17
    assert find_bin_dir(15, root=tmp_path) == fifteen
    assert find_bin_dir(17, root=tmp_path) is None  # no server binaries for 17
    assert find_bin_dir(16, configured=fifteen) == fifteen
    assert find_tool_dir(16, root=tmp_path) == seventeen  # a newer pg_verifybackup reads it
    assert find_tool_dir(18, root=tmp_path) is None  # never an older one
    assert find_tool_dir(15, root=tmp_path) == fifteen
    assert path_with(fifteen, "/usr/bin:/bin") == f"{fifteen}:/usr/bin:/bin"


def test_server_user() -> None:
    me = server_user(1, "root") if os.geteuid() == 0 else server_user(os.geteuid(), "x")
    assert me.uid != 0
    if os.geteuid() == 0:
        as_postgres = server_user(0, "root")
        assert as_postgres.user == "postgres"
        assert as_postgres.prefix[0] == "setpriv" and as_postgres.prefix[-1] == "--"
        with pytest.raises(LookupError, match="no system user"):
            server_user(0, "no-such-user-here")
    else:
        assert me.prefix == ()


def test_drill_reason() -> None:
    assert drill_reason(None, 100.0) is None
    assert drill_reason({}, 100.0) is None
    failed = {"ok": False, "reason": "boom", "backup_id": "B1"}
    assert drill_reason(failed, 100.0) == "last restore drill failed (backup B1): boom"
    interrupted = {"ok": False, "reason": "interrupted by shutdown", "interrupted": True}
    assert drill_reason(interrupted, 100.0) is None
    ok = {"ok": True, "started_at": 0.0}
    assert drill_reason(ok, 100.0) is None
    assert drill_reason(ok, 100.0, max_age=50) == "last successful restore drill is 100 s old"


def test_show_backup_and_verification_reason() -> None:
    data = {
        "pg": {
            "backup_id": "B1",
            "status": "DONE",
            "postgresql_version": 150018,
            "base_backup_information": {
                "backup_size_with_wals_bytes": 40,
                "end_time_timestamp": "17",
            },
        }
    }
    facts = parse_show_backup(data, "pg")
    assert facts is not None
    assert (facts.version_num, facts.size_bytes, facts.end_time) == (150018, 40, 17.0)
    assert facts.compression is None
    base = {"backup_size_with_wals_bytes": 40, "compression": "zstd"}
    compressed = parse_show_backup(
        {"pg": {"backup_id": "B2", "base_backup_information": base}}, "pg"
    )
    assert compressed is not None and compressed.compression == "zstd"
    assert parse_show_backup({"_ERROR": ["x"]}, "pg") is None
    messages = (
        ("info", "Calling pg_verifybackup"),
        ("error", "verify backup failure on directory '/x'"),
        ("error", 'pg_verifybackup: error: "base/5/1" has size 100 on disk but size 8192\n'),
    )
    assert verification_reason(messages, "", 1) == (
        'pg_verifybackup: error: "base/5/1" has size 100 on disk but size 8192'
    )
    assert verification_reason((("error", "pg_verifybackup not found"),), "", 1) == (
        "pg_verifybackup not found"
    )
    assert verification_reason((), "boom\n", 3) == "boom"


def test_newest_done_by_end_time_not_by_list_position() -> None:
    data = {
        "pg": [
            {"backup_id": "20261124T170000", "status": "DONE", "end_time_timestamp": "1000"},
            {"backup_id": "20261124T040000", "status": "DONE", "end_time_timestamp": "5000"},
        ]
    }
    found = newest_done(parse_backups(data, "pg"))
    assert found is not None and found.backup_id == "20261124T040000"


# Where the drill restores from (DRILL_SOURCE) ---------------------------------------------------


def test_drill_source_is_local_by_default_and_offsite_per_server(environ: dict[str, str]) -> None:
    settings = load_settings(
        {
            **environ,
            "BARMAN_SERVERS": "pg,reports",
            "OFFSITE_URL": "s3://backups/barman",
            "DRILL_SOURCE__REPORTS": "offsite",
        }
    )
    assert [s.drill_source for s in settings.servers] == ["local", "offsite"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"DRILL_SOURCE": "bucket"}, "DRILL_SOURCE: 'bucket' is not one of local, offsite"),
        ({"DRILL_SOURCE": "offsite"}, "DRILL_SOURCE: offsite drills restore from the off-site"),
    ],
)
def test_a_bad_drill_source_is_one_line_naming_it(
    environ: dict[str, str], changes: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**environ, **changes})
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_the_drill_takes_its_source_from_the_setting(environ: dict[str, str]) -> None:
    def budget() -> float:
        return 60.0

    kinds = {"verify": "v", "recover": "r"}
    for source, kind in (("local", LocalSource), ("offsite", StoreSource)):
        settings = load_settings(
            {**environ, "OFFSITE_URL": "s3://backups/barman", "DRILL_SOURCE": source}
        )
        server = settings.servers[0]
        picked = source_for(settings, server, None, None, kinds, budget, None)  # type: ignore[arg-type]
        assert isinstance(picked, kind)
        assert picked.name == source


# Whose fault a failed drill is -------------------------------------------------------------------
class FakeSource:
    """A source whose verification and restore fail as told; never touches Barman."""

    name = "local"

    def __init__(self, damaged: str | None = None, recover_fails: bool = False) -> None:
        self.damaged = damaged
        self.recover_fails = recover_fails

    def choose(self) -> tuple[Backup, BackupFacts]:
        return Backup("B1", "DONE", 100.0, 1), BackupFacts("B1", "DONE", 150010, 1, 100.0)

    def verify(self, backup: Backup, facts: BackupFacts, timeout: float) -> str | None:
        if self.damaged == "inconclusive":
            raise DrillFailed("backup not verified: no pg_verifybackup")
        return self.damaged

    def recover(self, backup: Backup, data: Path, bin_dir: Path, timeout: float) -> None:
        if self.recover_fails:
            raise DrillFailed("barman recover failed: boom")


@pytest.fixture
def drill_world(environ: dict[str, str]) -> Iterator[tuple[Settings, DrillConfig]]:
    """Settings whose server programs exist (never run) and a scratch root ``nobody`` reaches."""
    root = Path(tempfile.mkdtemp(prefix="bs-unit-drill-"))
    try:
        root.chmod(0o755)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        (bin_dir / "postgres").write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / "postgres").chmod(0o755)
        settings = load_settings({**environ, "BARMAN_USER": "nobody"})
        config = DrillConfig(root / "scratch", "SELECT 1", 60.0, bin_dir, 1.0, 0)
        yield settings, config
    finally:
        shutil.rmtree(root, ignore_errors=True)


def drill_with(
    drill_world: tuple[Settings, DrillConfig], source: FakeSource, **config: Any
) -> DrillResult:
    settings, base = drill_world
    drill = Drill(
        settings,
        settings.servers[0],
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        dataclasses.replace(base, **config),
        threading.Event(),
    )
    drill.source = source
    return drill.run()


def test_a_damaged_backup_or_a_failed_restore_is_the_backups_fault(
    drill_world: tuple[Settings, DrillConfig],
) -> None:
    damaged = drill_with(drill_world, FakeSource(damaged='checksum mismatch for "base/5/1"'))
    assert not damaged.ok and damaged.backup_fault
    assert damaged.reason == 'backup verification failed: checksum mismatch for "base/5/1"'
    restore = drill_with(drill_world, FakeSource(recover_fails=True))
    assert not restore.ok and restore.backup_fault


def test_a_drill_that_could_not_judge_the_backup_does_not_blame_it(
    drill_world: tuple[Settings, DrillConfig],
) -> None:
    no_tool = drill_with(drill_world, FakeSource(damaged="inconclusive"))
    assert not no_tool.ok and not no_tool.backup_fault
    no_space = drill_with(drill_world, FakeSource(damaged="bad"), space_factor=1e12)
    assert no_space.reason.startswith("not enough free space") and not no_space.backup_fault
    out_of_time = drill_with(drill_world, FakeSource(recover_fails=True), timeout=1e-9)
    assert "DRILL_TIMEOUT" in out_of_time.reason and not out_of_time.backup_fault
