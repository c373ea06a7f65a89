"""Shared fixtures: an environment for ``load_settings`` that points every path into tmp_path,
logging put back as it was, and the command line run in this process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from barman_supervisor.cli import main
from barman_supervisor.log import MASKER

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


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Whatever a test configures (``log.configure``, the masker) is undone after it."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, threading.excepthook
    yield
    threading.excepthook = hook
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    MASKER.register([])


@dataclass(frozen=True)
class Ran:
    """What one ``barman-supervisor ...`` did: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return self.err.strip().splitlines()


@pytest.fixture
def run_cli(
    environ: dict[str, str], capsys: pytest.CaptureFixture[str], restore_logging: None
) -> Callable[..., Ran]:
    """``run_cli("restore", "pg", "/x", OFFSITE_URL="s3://b/p")``: the command line in this
    process, with ``environ`` plus the given variables."""

    def run(*argv: str, **variables: str) -> Ran:
        capsys.readouterr()
        try:
            code = main(list(argv), {**environ, **variables})
        except SystemExit as exit_:  # argparse: --help, --version and bad arguments
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run
