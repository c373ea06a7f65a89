"""What cannot work stops the start with a clear reason, and never with a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import SUPERVISOR, Daemon, cluster

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PG_PORT", "abc"),
        ("TZ", "Mars/Olympus_Mons"),
        ("BACKUP_SCHEDULE", "0 3 * *"),
        ("BARMAN_SERVERS", "bad name"),
    ],
)
def test_bad_setting_exits_2_with_one_line_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "BARMAN_CONFIG_FILE": str(tmp_path / "barman.conf"),
        "BARMAN_CONFIG_DIR": str(tmp_path / "barman.d"),
        "BARMAN_HOME": str(tmp_path / "home"),
        "PG_PASSWORD": "Sup3r-secret",
        variable: value,
    }
    result = subprocess.run(
        [SUPERVISOR, "run"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "Sup3r-secret" not in result.stderr + result.stdout
    assert not (tmp_path / "barman.conf").exists(), "bad input must change nothing"


def test_missing_password_exits_2(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "BARMAN_HOME": str(tmp_path)}
    result = subprocess.run(
        [SUPERVISOR, "check-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "PG_PASSWORD" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_wal_level_minimal_is_refused_with_the_fix(tmp_path: Path) -> None:
    with cluster(wal_level="minimal", max_wal_senders="0") as pg:
        pg.init()
        daemon = Daemon(tmp_path, pg).start()
        try:
            assert daemon.wait(120) == 1
        finally:
            daemon.kill()
        failed = daemon.find("startup_failed", server="pg")
        assert failed and "wal_level is minimal" in failed[0]["reason"]
        assert "set wal_level = replica" in failed[0]["reason"]
        assert "Traceback" not in daemon.stdout.read_text() + daemon.stderr.read_text()


def test_archive_mode_on_without_command_is_refused(tmp_path: Path) -> None:
    with cluster(archive_mode="on", archive_command="''") as pg:
        pg.init()
        daemon = Daemon(tmp_path, pg).start()
        try:
            assert daemon.wait(120) == 1
        finally:
            daemon.kill()
        failed = daemon.find("startup_failed", server="pg")
        assert failed and "hang" in failed[0]["reason"]
