from __future__ import annotations

import shutil

import pytest

from tests.support.paths import BARMAN, PG_BIN


@pytest.fixture(scope="session", autouse=True)
def _real_postgres_and_barman() -> None:
    """Fail, not skip, when the real thing is missing: `make install` provides both."""
    assert (PG_BIN / "postgres").exists(), f"no PostgreSQL at {PG_BIN}; run `make install`"
    assert shutil.which(BARMAN), f"no Barman at {BARMAN}; run `make install`"
    assert shutil.which("rsync"), "no rsync (barman recover needs it); run `make install`"
