"""``barman-supervisor restore-offsite``: which of the store's backups it may start from, given
the verdicts kept beside Barman's copies on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.verdicts import BackupVerdict, Verdict, VerdictFiles
from barman_supervisor.config import Settings, load_settings
from barman_supervisor.errors import ConfigError
from barman_supervisor.offsite.plan import StoreBackup
from barman_supervisor.restore.store import without_failed

LISTED = [StoreBackup("A", "DONE", 100.0), StoreBackup("B", "DONE", 200.0)]


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    settings = load_settings(environ)
    home = BarmanHome(settings.barman_home)
    home.backup_dir("pg", "B").mkdir(parents=True)
    VerdictFiles(home).write("pg", BackupVerdict("B", Verdict.FAILED, "checksum mismatch"))
    return settings


def args(backup_id: str | None = None, allow: bool = False) -> argparse.Namespace:
    return argparse.Namespace(backup_id=backup_id, allow_unverified=allow)


def test_a_backup_that_failed_here_is_not_taken_from_the_store(settings: Settings) -> None:
    assert without_failed(settings, "pg", LISTED, args()) == LISTED[:1]


def test_a_named_failed_backup_is_refused_unless_allowed(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"^backup B failed verification \(checksum mismatch\)"):
        without_failed(settings, "pg", LISTED, args("B"))
    assert without_failed(settings, "pg", LISTED, args("B", allow=True)) == LISTED
    assert without_failed(settings, "pg", LISTED, args("A")) == LISTED


def test_without_barmans_home_every_store_backup_counts(
    environ: dict[str, str], tmp_path: Path
) -> None:
    """The day the Barman host is gone: no verdict to read, none refused."""
    settings = load_settings({**environ, "BARMAN_HOME": str(tmp_path / "gone")})
    assert without_failed(settings, "pg", LISTED, args()) == LISTED
