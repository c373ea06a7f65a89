"""An incremental backup policy on a server that cannot take incremental backups (PostgreSQL 15
here) stops the start naming the setting, before any backup is taken (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.postgres import cluster

pytestmark = pytest.mark.integration


def test_incremental_policy_on_postgresql_15_is_refused(tmp_path: Path) -> None:
    with cluster() as pg:
        pg.init()
        daemon = Daemon(tmp_path, pg, BACKUP_INCREMENTAL_SCHEDULE="0 3 * * 1-6")
        assert daemon.run() == 1
        (failed,) = daemon.find("startup_failed", server="pg")
        assert failed["reason"].startswith("BACKUP_INCREMENTAL_SCHEDULE asks for incremental")
        assert "need PostgreSQL 17 or newer and the server is 15" in failed["reason"]
        assert not list((tmp_path).rglob("backup.info"))
        assert "Traceback" not in daemon.stdout.read_text() + daemon.stderr.read_text()
