"""Shared fixtures: an environment for ``load_settings`` that points every path into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

PASSWORD = "s3cret-Pw!"


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """The smallest valid environment for render mode, with nothing outside tmp_path."""
    return {
        "BARMAN_CONFIG_FILE": str(tmp_path / "barman.conf"),
        "BARMAN_CONFIG_DIR": str(tmp_path / "barman.d"),
        "BARMAN_HOME": str(tmp_path / "home"),
        "BARMAN_USER": "barman",
        "PG_PASSWORD": PASSWORD,
    }
