"""What PostgreSQL configuration cannot work stops the start with the fix, never a traceback.

Bad settings of the daemon itself are covered case by case in test_bad_input.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.postgres import cluster

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("postgres_settings", "words"),
    [
        ({"wal_level": "minimal", "max_wal_senders": "0"}, "set wal_level = replica"),
        ({"archive_mode": "on", "archive_command": "''"}, "makes every backup hang"),
    ],
)
def test_postgres_that_cannot_work_is_refused_with_the_fix(
    tmp_path: Path, postgres_settings: dict[str, str], words: str
) -> None:
    with cluster(**postgres_settings) as pg:
        pg.init()
        daemon = Daemon(tmp_path, pg)
        assert daemon.run() == 1
        (failed,) = daemon.find("startup_failed", server="pg")
        assert words in failed["reason"]
        assert "Traceback" not in daemon.stdout.read_text() + daemon.stderr.read_text()
        # nothing was streaming: the shutdown has nothing to stop and nothing to complain about
        after = daemon.events()[daemon.events().index(failed) + 1 :]
        assert [e["event"] for e in after if e.get("level") in ("error", "critical")] == []
