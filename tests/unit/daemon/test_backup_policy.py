"""BACKUP_INCREMENTAL_SCHEDULE, BACKUP_CHAIN_MAX and the compressions (issue 13): read, refused
where they cannot work, and rendered into Barman's configuration."""

from __future__ import annotations

import configparser
from datetime import UTC, datetime
from pathlib import Path

import pytest

from barman_supervisor.barman.config_files import render_global, render_server
from barman_supervisor.config import BackupPolicy, load_settings
from barman_supervisor.errors import ConfigError
from barman_supervisor.status.health import server_limits


def policy(environ: dict[str, str], **changes: str) -> BackupPolicy:
    return load_settings({**environ, **changes}).server("pg").backup_policy


def server_options(environ: dict[str, str], **changes: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read_string(render_server(load_settings({**environ, **changes}).server("pg")))
    return dict(parser.items("pg"))


def test_defaults_are_full_backups_uncompressed(environ: dict[str, str]) -> None:
    read = policy(environ)
    assert read == BackupPolicy()
    assert not read.incremental
    options = server_options(environ)
    assert "backup_compression" not in options
    assert "compression" not in options


def test_weekly_full_daily_incremental_with_per_server_override(environ: dict[str, str]) -> None:
    read = policy(
        environ,
        BACKUP_SCHEDULE="0 3 * * 0",
        BACKUP_INCREMENTAL_SCHEDULE="0 3 * * 1-6",
        BACKUP_CHAIN_MAX="6",
        BACKUP_CHAIN_MAX__PG="3",
    )
    assert read.incremental
    assert read.incremental_schedule == "0 3 * * 1-6"
    assert read.chain_max == 3


def test_wal_compression_is_rendered(environ: dict[str, str]) -> None:
    options = server_options(environ, WAL_COMPRESSION="xz")
    assert options["compression"] == "xz"
    assert "compression" not in server_options(environ, WAL_COMPRESSION="none")


@pytest.mark.parametrize("location", ["client", "server"])
@pytest.mark.parametrize("compression", ["gzip", "lz4", "zstd"])
def test_base_backup_compression_is_rendered_as_tar(
    environ: dict[str, str], compression: str, location: str
) -> None:
    options = server_options(
        environ, BACKUP_COMPRESSION=compression.upper(), BACKUP_COMPRESSION_LOCATION=location
    )
    assert options["backup_compression"] == compression
    assert options["backup_compression_location"] == location
    # Barman's default (tar): the backup is stored compressed, and restored through staging_path.
    assert "backup_compression_format" not in options


def test_staging_path_is_under_the_barman_home(environ: dict[str, str]) -> None:
    settings = load_settings(environ)
    parser = configparser.ConfigParser()
    parser.read_string(render_global(settings))
    assert Path(parser.get("barman", "staging_path")) == settings.barman_home / "staging"
    assert parser.get("barman", "staging_location") == "local"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"BACKUP_COMPRESSION": "bzip2"}, "BACKUP_COMPRESSION: 'bzip2' is not one of none, gzip"),
        ({"WAL_COMPRESSION": "snappy"}, "WAL_COMPRESSION: 'snappy' is not one of none, gzip"),
        (
            {"BACKUP_COMPRESSION": "gzip", "BACKUP_COMPRESSION_LOCATION": "cloud"},
            "BACKUP_COMPRESSION_LOCATION: 'cloud' is not one of client, server",
        ),
        (
            {"BACKUP_COMPRESSION_LOCATION": "server"},
            "BACKUP_COMPRESSION_LOCATION: set without a compression",
        ),
        ({"BACKUP_CHAIN_MAX": "0"}, "BACKUP_CHAIN_MAX: 0 is out of range"),
        ({"BACKUP_INCREMENTAL_SCHEDULE": "daily"}, "BACKUP_INCREMENTAL_SCHEDULE: "),
        (
            {"BACKUP_COMPRESSION": "zstd", "OFFSITE_URL": "s3://bucket/x"},
            "BACKUP_COMPRESSION: OFFSITE_URL copies backups and WAL with barman-cloud",
        ),
        (
            {"WAL_COMPRESSION": "gzip", "OFFSITE_URL__PG": "s3://bucket/x"},
            "WAL_COMPRESSION: OFFSITE_URL__PG copies",
        ),
        (
            {"BACKUP_INCREMENTAL_SCHEDULE": "0 3 * * 1-6", "OFFSITE_URL": "s3://bucket/x"},
            "BACKUP_INCREMENTAL_SCHEDULE: OFFSITE_URL copies each backup's data directory alone",
        ),
    ],
)
def test_refusals_name_the_variable(
    environ: dict[str, str], changes: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**environ, **changes})
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_compression_variables_refused_for_a_mounted_configuration(
    environ: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "mounted.conf"
    config.write_text("[barman]\nbarman_home = /tmp/x\n[pg]\nconninfo = host=h user=barman\n")
    mounted = {**environ, "BARMAN_CONFIG_FILE": str(config)}
    assert load_settings(mounted).server("pg").backup_policy == BackupPolicy()
    with pytest.raises(ConfigError, match=r"^BACKUP_COMPRESSION: the Barman configuration is"):
        load_settings({**mounted, "BACKUP_COMPRESSION": "gzip"})


def test_backup_age_limit_counts_incremental_backups_too(environ: dict[str, str]) -> None:
    now = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    weekly = load_settings({**environ, "TZ": "UTC", "BACKUP_SCHEDULE": "0 3 * * 0"})
    both = load_settings(
        {
            **environ,
            "TZ": "UTC",
            "BACKUP_SCHEDULE": "0 3 * * 0",
            "BACKUP_INCREMENTAL_SCHEDULE": "0 3 * * 1-6",
        }
    )
    week, day = 7 * 86400, 86400
    assert server_limits(weekly, weekly.server("pg"), now).backup_max_age == 1.5 * week
    assert server_limits(both, both.server("pg"), now).backup_max_age == 1.5 * day
