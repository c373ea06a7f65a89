"""Bad input given to the real ``barman-supervisor run``: what a refusal must look like (one
line naming the variable or file, exit 2, no traceback, no secret), with nothing else set up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.paths import SUPERVISOR

SECRET = "Sup3r-secret-pw"
# Seconds a refusal may take: it happens before anything starts.
REFUSAL_TIMEOUT_S = 60


def run_supervisor(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``barman-supervisor run``, or the command ``argv`` names, with ``env`` on top."""
    base = {
        "PATH": os.environ["PATH"],
        "BARMAN_CONFIG_FILE": str(tmp_path / "barman.conf"),
        "BARMAN_CONFIG_DIR": str(tmp_path / "barman.d"),
        "BARMAN_HOME": str(tmp_path / "home"),
        "PG_PASSWORD": SECRET,
    }
    return subprocess.run(
        [SUPERVISOR, *(argv or ("run",))],
        env={k: v for k, v in {**base, **env}.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT_S,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], names: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout
