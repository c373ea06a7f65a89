"""Where the programs the tests run are: PostgreSQL's (``PG_BIN``, as ``make`` sets it), and
Barman and the supervisor from this virtualenv."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
VENV_BIN = Path(sys.executable).parent
BARMAN = str(VENV_BIN / "barman")
SUPERVISOR = str(VENV_BIN / "barman-supervisor")
