"""Off-site copy decisions: what the store is owed, which backups cannot go, the settings,
the readiness verdict and where the keys may go."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from barman_supervisor.barman.records import Backup, parse_backup_info
from barman_supervisor.config import Offsite, Secret, load_settings
from barman_supervisor.errors import ConfigError
from barman_supervisor.offsite.plan import (
    LocalBackup,
    StoreListing,
    backup_to_protect,
    backups_owed,
    choose_store_backup,
    cloud_env,
    cloud_options,
    cloud_program,
    cloud_python,
    contiguous_prefix,
    first_error_line,
    parse_store_backups,
    parse_store_listing,
    refusals_that_matter,
    uncopyable_reason,
    upload_options,
    wal_owed,
)
from barman_supervisor.restore.store import recovery_settings
from barman_supervisor.status.health import server_problems, wal_lag_seconds
from tests.unit.conftest import Ran
from tests.unit.status.test_health import LIMITS, NOW, protected

OFFSITE_LIMITS = replace(LIMITS, offsite_backup_max_delay=3600, offsite_wal_max_lag=600)


def backup(backup_id: str, end: float, status: str = "DONE") -> Backup:
    return Backup(backup_id, status, end, 100)


# What is owed ---------------------------------------------------------------------------------


def test_with_nothing_in_the_store_only_the_newest_done_backup_is_owed() -> None:
    local = [backup("b1", 1), backup("b3", 3), backup("b2", 2), backup("b4", 4, "FAILED")]
    assert [b.backup_id for b in backups_owed(local, set())] == ["b3"]


def test_backups_newer_than_the_newest_copied_are_owed_oldest_first() -> None:
    local = [backup("b1", 1), backup("b2", 2), backup("b3", 3), backup("b4", 4)]
    assert [b.backup_id for b in backups_owed(local, {"b2"})] == ["b3", "b4"]


def test_an_old_backup_the_store_deleted_is_not_copied_again() -> None:
    local = [backup("b1", 1), backup("b2", 2)]
    assert backups_owed(local, {"b2"}) == []


def test_no_done_backup_owes_nothing() -> None:
    assert backups_owed([backup("b1", 1, "FAILED")], set()) == []


def test_wal_after_the_watermark_is_owed_in_archive_order() -> None:
    names = [
        "000000010000000000000003",
        "000000010000000000000001",
        "000000010000000000000002.00000028.backup",
        "000000010000000000000002",
        "00000002.history",
        "000000020000000000000003",
        "000000010000000000000004.partial",
        "xlog.db",
    ]
    assert wal_owed(names, "000000010000000000000001") == [
        "000000010000000000000002",
        "000000010000000000000002.00000028.backup",
        "000000010000000000000003",
        "00000002.history",
        "000000020000000000000003",
    ]
    assert len(wal_owed(names, None)) == 6
    assert wal_owed(names, "000000020000000000000003") == []


# Which backups cannot go ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "refused"),
    [
        ("backup_id=x\nparent_backup_id=None\ncompression=None\n", False),
        ("backup_id=x\n", False),
        ("backup_id=x\nparent_backup_id=20261101T000000\n", True),
        ("backup_id=x\ncompression=gzip\n", True),
    ],
)
def test_incremental_and_compressed_backups_are_refused(info: str, refused: bool) -> None:
    assert (uncopyable_reason(parse_backup_info(info)) is not None) is refused


# Parsing and messages -------------------------------------------------------------------------


def test_store_listing_is_parsed_and_garbage_is_empty() -> None:
    listing = '{"backups_list": [{"backup_id": "20261130T010203", "status": "DONE"}]}'
    assert [b.backup_id for b in parse_store_backups(listing)] == ["20261130T010203"]
    assert parse_store_backups("not json") == []
    assert parse_store_backups("") == []


def test_the_error_line_is_barman_clouds_last_error() -> None:
    stderr = (
        "2026-11-30 23:20:46,340 [8977] INFO: starting\n"
        "2026-11-30 23:20:46,340 [8977] ERROR: Bucket nobucket does not exist\n"
    )
    assert first_error_line(stderr, "exit 1") == "Bucket nobucket does not exist"
    assert first_error_line("", "exit code 4") == "exit code 4"


# Keys and programs ----------------------------------------------------------------------------


def offsite(**changes: object) -> Offsite:
    base = Offsite(
        url="s3://bucket/prefix",
        endpoint_url="http://127.0.0.1:9000",
        region="eu-west-1",
        encryption="",
        compression="",
        retention_policy="REDUNDANCY 2",
        backup_max_delay=3600,
        wal_max_lag=600,
        access_key_id=Secret("AKIAEXAMPLE"),
        secret_access_key=Secret("s3cr3t"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_keys_go_to_the_child_environment_and_never_on_the_command_line() -> None:
    target = offsite()
    assert cloud_env(target) == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    options = " ".join(cloud_options(target))
    assert "s3cr3t" not in options
    assert "AKIAEXAMPLE" not in options
    assert "--endpoint-url http://127.0.0.1:9000" in options
    assert "AKIAEXAMPLE" not in repr(target)


@pytest.mark.parametrize(
    ("encryption", "compression", "expected"),
    [
        ("", "", []),
        ("AES256", "", ["-e", "AES256"]),
        ("", "lz4", ["--lz4"]),
        ("aws:kms", "zstd", ["-e", "aws:kms", "--zstd"]),
        ("", "bzip2", ["--bzip2"]),
    ],
)
def test_both_uploaders_get_the_encryption_and_the_compression(
    encryption: str, compression: str, expected: list[str]
) -> None:
    assert upload_options(offsite(encryption=encryption, compression=compression)) == expected


def test_a_customer_kms_key_reaches_both_uploaders() -> None:
    """barman-cloud-backup and barman-cloud-wal-archive (3.20) both take --sse-kms-key-id with
    -e aws:kms."""
    key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd"
    options = upload_options(offsite(encryption="aws:kms", sse_kms_key_id=key))

    assert options == ["-e", "aws:kms", "--sse-kms-key-id", key]


def test_without_keys_boto3s_own_chain_applies() -> None:
    assert cloud_env(offsite(access_key_id=None, secret_access_key=None, region="")) == {}


def test_cloud_programs_are_found_beside_barman(tmp_path: Path) -> None:
    (tmp_path / "barman-cloud-backup").write_text("")
    assert cloud_program(str(tmp_path / "barman"), "barman-cloud-backup") == str(
        tmp_path / "barman-cloud-backup"
    )
    assert cloud_program("barman", "barman-cloud-backup") == "barman-cloud-backup"


# Settings -------------------------------------------------------------------------------------


def test_offsite_is_off_by_default(environ: dict[str, str]) -> None:
    assert load_settings(environ).servers[0].offsite is None


def test_offsite_settings_with_file_secrets_and_per_server_override(
    environ: dict[str, str], tmp_path: Path
) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("from-file\n")
    settings = load_settings(
        {
            **environ,
            "BARMAN_SERVERS": "pg,reports",
            "OFFSITE_URL": "s3://backups/barman/",
            "OFFSITE_URL__PG": "s3://other-bucket/pg",
            "OFFSITE_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "AWS_ACCESS_KEY_ID__REPORTS": "AKIAREPORTS",
            "AWS_SECRET_ACCESS_KEY_FILE": str(key_file),
            "OFFSITE_WAL_MAX_LAG": "15m",
            "OFFSITE_COMPRESSION__REPORTS": "zstd",
        }
    )
    target, reports = (server.offsite for server in settings.servers)
    assert target is not None and reports is not None
    assert (target.compression, reports.compression) == ("", "zstd")
    assert target.url == "s3://other-bucket/pg"
    assert target.secret_access_key == Secret("from-file")
    assert target.wal_max_lag == 900
    assert target.retention_policy == settings.servers[0].retention_policy
    assert Secret("from-file") in settings.secrets
    assert Secret("AKIAEXAMPLE") in settings.secrets
    assert not [name for name in settings.child_env if name.startswith("AWS_ACCESS_KEY_ID")]


def _empty_key_files(environ: dict[str, str], directory: Path) -> dict[str, str]:
    """What the compose stack passes before anyone wrote a key: both key files, empty."""
    env = dict(environ)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        path = directory / name.lower()
        path.write_text("")
        env[f"{name}_FILE"] = str(path)
    return env


def test_empty_key_files_are_accepted_while_offsite_is_off(
    environ: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings({**_empty_key_files(environ, tmp_path), "OFFSITE_URL": ""})
    assert settings.servers[0].offsite is None


def test_an_empty_key_file_is_refused_in_one_line_when_offsite_is_on(
    environ: dict[str, str], tmp_path: Path
) -> None:
    """Not read as "no key, use boto3's own chain": a key someone forgot to write would
    otherwise surface as a vague refusal from the store, or quietly use other credentials."""
    env = {**_empty_key_files(environ, tmp_path), "OFFSITE_URL": "s3://bucket/prefix"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value) == (
        f"AWS_ACCESS_KEY_ID_FILE: {str(tmp_path / 'aws_access_key_id')!r} is empty and "
        "OFFSITE_URL is set; write the secret into it, or unset OFFSITE_URL"
    )
    (tmp_path / "aws_access_key_id").write_text("AKIAEXAMPLE\n")
    with pytest.raises(ConfigError, match=r"^AWS_SECRET_ACCESS_KEY_FILE: .* is empty"):
        load_settings(env)
    (tmp_path / "aws_secret_access_key").write_text("s3cr3t\n")
    target = load_settings(env).servers[0].offsite
    assert target is not None and target.secret_access_key == Secret("s3cr3t")


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"OFFSITE_URL": "https://bucket/prefix"}, "OFFSITE_URL"),
        ({"OFFSITE_URL": "s3://B_ad/prefix"}, "OFFSITE_URL"),
        ({"OFFSITE_ENDPOINT_URL": "127.0.0.1:9000"}, "OFFSITE_ENDPOINT_URL"),
        ({"OFFSITE_ENCRYPTION": "rot13"}, "OFFSITE_ENCRYPTION"),
        ({"OFFSITE_COMPRESSION": "snappy"}, "OFFSITE_COMPRESSION"),
        ({"OFFSITE_COMPRESSION": "LZ4"}, "OFFSITE_COMPRESSION"),
        ({"OFFSITE_RETENTION_POLICY": "forever"}, "OFFSITE_RETENTION_POLICY"),
        ({"AWS_SECRET_ACCESS_KEY": None}, "AWS_SECRET_ACCESS_KEY"),
    ],
)
def test_bad_offsite_settings_are_one_line_naming_the_variable(
    environ: dict[str, str], changes: dict[str, str | None], named: str
) -> None:
    env = {
        **environ,
        "OFFSITE_URL": "s3://bucket/prefix",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-value",
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(named)
    assert "\n" not in message
    assert "secret-value" not in message


def test_compressed_backups_with_offsite_are_refused_at_start(
    environ: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "barman.conf"
    config.write_text(
        f"[barman]\nbarman_home = {tmp_path}\n\n[pg]\nconninfo = host=db user=barman\n"
        "backup_method = postgres\nbackup_compression = gzip\n"
    )
    env = {
        **environ,
        "BARMAN_CONFIG_FILE": str(config),
        "BARMAN_CONFIG_DIR": str(tmp_path / "none"),
        "OFFSITE_URL": "s3://bucket/prefix",
    }
    with pytest.raises(ConfigError, match="backup_compression"):
        load_settings(env)
    env.pop("OFFSITE_URL")
    assert load_settings(env).servers[0].offsite is None


# Readiness ------------------------------------------------------------------------------------


def test_offsite_that_keeps_up_is_no_problem() -> None:
    state = replace(
        protected(), offsite={"last_error": None, "wal_owed": 1, "oldest_owed_wal_at": NOW - 30}
    )
    assert server_problems(state, NOW, OFFSITE_LIMITS) == []


def test_a_failed_copy_makes_the_server_unready_with_the_reason() -> None:
    state = replace(
        protected(), offsite={"last_error": "listing the store: Bucket x does not exist"}
    )
    problems = server_problems(state, NOW, OFFSITE_LIMITS)
    assert [p.condition for p in problems] == ["offsite"]
    assert "Bucket x does not exist" in problems[0].reason


def test_a_backup_waiting_too_long_and_wal_lagging_are_reported() -> None:
    state = replace(
        protected(),
        offsite={
            "oldest_owed_backup": "20261130T030000",
            "oldest_owed_backup_end": NOW - 7200,
            "wal_owed": 12,
            "oldest_owed_wal_at": NOW - 900,
        },
    )
    reasons = [p.reason for p in server_problems(state, NOW, OFFSITE_LIMITS)]
    assert any("20261130T030000" in reason for reason in reasons)
    assert any("12 WAL file(s)" in reason for reason in reasons)
    assert wal_lag_seconds(state.offsite, NOW) == 900
    # A server without an off-site store never has this condition.
    assert server_problems(state, NOW, LIMITS) == []


# Holding local retention while the store is behind -------------------------------------------

LOCAL = [
    LocalBackup("b1", "000000010000000000000002", 100.0),
    LocalBackup("b2", "000000010000000000000008", 200.0),
    LocalBackup("b3", "000000010000000000000010", 300.0),
]


def test_nothing_owed_holds_the_newest_backup_for_the_wal_still_to_come() -> None:
    assert backup_to_protect(LOCAL, [], None) == "b3"
    assert backup_to_protect([], [], None) is None


def test_the_backup_where_the_oldest_owed_wal_starts_is_held() -> None:
    assert backup_to_protect(LOCAL, [], "000000010000000000000009") == "b2"
    assert backup_to_protect(LOCAL, [], "000000010000000000000010") == "b3"
    # WAL owed from before every local backup: the oldest one is the best hold there is.
    assert backup_to_protect(LOCAL, [], "000000010000000000000001") == "b1"


def test_an_owed_backup_older_than_the_owed_wal_wins() -> None:
    assert backup_to_protect(LOCAL, ["b2", "b3"], "000000010000000000000011") == "b2"
    assert backup_to_protect(LOCAL, ["b3"], None) == "b3"


# Restore from the store -----------------------------------------------------------------------


def test_the_newest_store_backup_before_the_target_is_chosen() -> None:
    wal = {"timeline": 1, "begin_wal": "000000010000000000000002", "end_xlog": "0/3000100"}
    rows = [
        {"backup_id": "a", "status": "DONE", "end_time_iso": "2026-11-30T10:00:00+00:00"},
        {"backup_id": "b", "status": "DONE", "end_time_iso": "2026-11-30T12:00:00+00:00"},
        {"backup_id": "c", "status": "FAILED", "end_time_iso": "2026-11-30T11:00:00+00:00"},
    ]
    listing = json.dumps({"backups_list": [{**row, **wal} for row in rows]})
    backups = parse_store_backups(listing)
    newest = choose_store_backup(backups, None, 1, {})
    assert newest is not None and newest.backup_id == "b"
    target = datetime(2026, 11, 30, 11, 30, tzinfo=UTC)
    before = choose_store_backup(backups, target, 1, {})
    assert before is not None and before.backup_id == "a"
    assert choose_store_backup(backups, datetime(2026, 11, 30, 9, tzinfo=UTC), 1, {}) is None


def test_recovery_settings_quote_and_stop_at_the_target() -> None:
    lines = recovery_settings("cp '/x y'/%f %p", ("time", "2026-11-30 10:00:00+00"), "pause", 2)
    assert "restore_command = 'cp ''/x y''/%f %p'" in lines
    assert "recovery_target_time = '2026-11-30 10:00:00+00'" in lines
    assert "recovery_target_action = 'pause'" in lines
    assert "recovery_target_timeline = '2'" in lines
    plain = recovery_settings("cp a b", None, "pause", 1)
    assert [line for line in plain if "target" in line] == ["recovery_target_timeline = '1'"]


def test_restore_offsite_refuses_a_server_without_a_store(
    run_cli: Callable[..., Ran], tmp_path: Path
) -> None:
    refused = run_cli("restore-offsite", "pg", str(tmp_path / "new"))
    assert refused.code == 2 and refused.out == ""
    assert len(refused.error_lines) == 1
    assert refused.error_lines[0].startswith(
        "barman-supervisor: error: no server 'pg' with OFFSITE_URL"
    )
    assert not (tmp_path / "new").exists()


def test_restore_offsite_refuses_a_non_empty_destination_before_touching_the_store(
    run_cli: Callable[..., Ran], tmp_path: Path
) -> None:
    destination = tmp_path / "old"
    destination.mkdir()
    (destination / "PG_VERSION").write_text("15\n")
    refused = run_cli("restore-offsite", "pg", str(destination), OFFSITE_URL="s3://bucket/x")
    assert refused.code == 2 and refused.out == ""
    assert len(refused.error_lines) == 1 and "not empty" in refused.error_lines[0]
    assert refused.error_lines[0].startswith("barman-supervisor: error: ")
    assert sorted(p.name for p in destination.iterdir()) == ["PG_VERSION"]
    bad_time = run_cli(
        "restore-offsite",
        "pg",
        str(tmp_path / "new"),
        "--target-time",
        "yesterday",
        OFFSITE_URL="s3://bucket/x",
    )
    assert bad_time.code == 2
    assert bad_time.error_lines == [
        "barman-supervisor: error: --target-time 'yesterday' is not a time; use e.g. "
        "'2026-11-23 14:05:00+00'"
    ]


def test_an_uncopyable_backup_matters_only_until_a_newer_one_is_in_the_store() -> None:
    local = [backup("full", 1), backup("incr", 2), backup("full2", 3)]
    refused = {"incr": "it is a block-level incremental backup"}
    assert refusals_that_matter(local, {"full"}, refused) == refused
    assert refusals_that_matter(local, {"full", "full2"}, refused) == {}
    assert refusals_that_matter(local, set(), refused) == refused


def test_a_refused_backup_makes_the_server_unready_with_the_reason() -> None:
    state = replace(protected(), offsite={"refused_backups": {"incr": "it is incremental"}})
    problems = server_problems(state, NOW, OFFSITE_LIMITS)
    assert [p.reason for p in problems] == [
        "backup incr cannot be copied off-site: it is incremental"
    ]


def test_a_parallel_batch_counts_only_up_to_its_first_failure() -> None:
    batch = ["A", "B", "C", "D"]
    assert contiguous_prefix(batch, {"A", "B", "C", "D"}) == batch
    assert contiguous_prefix(batch, {"A", "B", "D"}) == ["A", "B"]
    assert contiguous_prefix(batch, {"B", "C"}) == []


def test_the_store_listing_is_backups_and_wal_names_or_nothing() -> None:
    row = {
        "backup_id": "20261130T010203",
        "status": "DONE",
        "begin_wal": "000000010000000000000003",
    }
    listing = parse_store_listing(
        json.dumps(
            {
                "backups_list": [row, {"no": "id"}],
                "wal_names": ["000000010000000000000003", "00000002.history"],
            }
        )
    )
    assert listing is not None
    assert [b.backup_id for b in listing.backups] == ["20261130T010203"]
    assert listing.backups[0].begin_wal == "000000010000000000000003"
    assert listing.wal_names == ["000000010000000000000003", "00000002.history"]
    assert parse_store_listing('{"backups_list": [], "wal_names": []}') == StoreListing([], [])
    for bad in ("", "Traceback", "[]", '{"wal_names": []}', '{"backups_list": []}'):
        assert parse_store_listing(bad) is None, bad
    assert parse_store_listing('{"backups_list": [], "wal_names": [1]}') is None


def test_the_wal_listing_runs_on_the_python_of_barmans_cloud_programs(tmp_path: Path) -> None:
    (tmp_path / "barman").write_text("#!/bin/sh\n")
    (tmp_path / "barman-cloud-backup-list").write_text("#!/opt/venv/bin/python3 -I\nimport x\n")
    assert cloud_python(str(tmp_path / "barman")) == "/opt/venv/bin/python3"
    (tmp_path / "barman-cloud-backup-list").unlink()
    assert cloud_python(str(tmp_path / "barman")) == sys.executable
