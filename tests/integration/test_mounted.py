"""Barman's seed layout written by a person (mounted mode), two servers: the daemon reads the
servers from the files, never rewrites them, adds the schedules and protects both."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from tests.support.daemon import running_daemon
from tests.support.postgres import BARMAN_PASSWORD, STREAMING_PASSWORD, cluster

pytestmark = pytest.mark.integration


def test_mounted_files_with_two_servers_are_read_not_rewritten(tmp_path: Path) -> None:
    with cluster() as pg:
        pg.init()
        home, config_dir = tmp_path / "barman", tmp_path / "barman.d"
        config_dir.mkdir()
        files = {
            tmp_path / "barman.conf": (
                f"[barman]\nbarman_user = {getpass.getuser()}\nbarman_home = {home}\n"
                f"log_file = {home}/barman.log\nconfiguration_files_directory = {config_dir}\n"
            ),
        }
        for name in ("main", "reports"):
            files[config_dir / f"{name}.conf"] = (
                f"[{name}]\ndescription = mounted by a person\n"
                f"conninfo = host=127.0.0.1 port={pg.port} user=barman dbname=postgres\n"
                f"streaming_conninfo = host=127.0.0.1 port={pg.port} user=streaming_barman "
                f"password={STREAMING_PASSWORD}\n"
                "backup_method = postgres\nstreaming_archiver = on\n"
                f"slot_name = slot_{name}\ncreate_slot = auto\n"
            )
        for path, text in files.items():
            path.write_text(text)
        home.mkdir()
        with running_daemon(
            tmp_path,
            pg,
            until=None,
            BARMAN_HOME=str(home),
            PG_PASSWORD_FILE="",
            PG_STREAMING_PASSWORD_FILE="",
            PG_PASSWORD=BARMAN_PASSWORD,
            BACKUP_SCHEDULE__REPORTS="30 4 * * 0",
        ) as daemon:
            for name in ("main", "reports"):
                daemon.wait_for("startup_step", timeout=240, server=name, step="running")
            schedules = {e["job_id"]: e["trigger"] for e in daemon.find("job_scheduled")}
            assert "day_of_week='sun'" in schedules["backup:reports"]
            assert "hour='3'" in schedules["backup:main"]
            for name in ("main", "reports"):
                assert [b["status"] for b in daemon.backups(name)] == ["DONE"]
            assert daemon.find("config_read")
            assert daemon.find("password_in_mounted_conninfo", server="main")
            assert {path: path.read_text() for path in files} == files, "mounted files changed"
            printed = daemon.stdout.read_text() + daemon.stderr.read_text()
            assert STREAMING_PASSWORD not in printed and BARMAN_PASSWORD not in printed
