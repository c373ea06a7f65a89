"""The command line speaks one way: results on stdout; bad input as one line
``barman-supervisor: error: ...`` on stderr with exit code 2; log lines in ``LOG_FORMAT``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from barman_supervisor.cli import EXIT_BAD_INPUT
from tests.unit.conftest import Ran


def test_check_config_prints_what_would_run(run_cli: Callable[..., Ran]) -> None:
    done = run_cli("check-config")
    assert done.code == 0 and done.err == ""
    assert done.out.startswith("config mode: render")
    assert "server pg: " in done.out
    assert "tls" not in done.out


def test_check_config_shows_the_tls_settings(run_cli: Callable[..., Ran], tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    done = run_cli("check-config", PG_SSLMODE="verify-full", PG_SSLROOTCERT=str(ca))

    assert done.code == 0
    assert f"\n  tls sslmode=verify-full sslrootcert={ca}\n" in done.out


@pytest.mark.parametrize(
    ("argv", "variables", "named"),
    [
        (("check-config",), {"PG_PORT": "abc"}, "PG_PORT: 'abc' is not a whole number"),
        (("run",), {"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        (("restore", "pg", "/nonexistent/x"), {"BACKUP_SCHEDULE": "0 3 * *"}, "BACKUP_SCHEDULE"),
        (("restore-offsite", "pg", "/nonexistent/x"), {"OFFSITE_URL": "s3:/x"}, "is not an S3 URL"),
        (("healthcheck",), {"HTTP_PORT": "http"}, "HTTP_PORT"),
        ((), {}, "the following arguments are required: command; see barman-supervisor --help"),
        (("restore", "pg"), {}, "required: destination; see barman-supervisor restore --help"),
        (("restore-offsite", "pg", "/nonexistent/x", "--target-tli", "two"), {}, "--target-tli"),
    ],
)
def test_every_refusal_is_one_line_on_stderr_and_exit_2(
    run_cli: Callable[..., Ran], argv: tuple[str, ...], variables: dict[str, str], named: str
) -> None:
    refused = run_cli(*argv, **variables)
    assert refused.code == EXIT_BAD_INPUT and refused.out == ""
    assert len(refused.error_lines) == 1, refused.err
    assert refused.error_lines[0].startswith("barman-supervisor: error: ")
    assert named in refused.error_lines[0]
    assert "Traceback" not in refused.err


def test_the_target_timeline_must_be_one_or_more(
    run_cli: Callable[..., Ran], tmp_path: Path
) -> None:
    new = str(tmp_path / "new")
    refused = run_cli(
        "restore-offsite", "pg", new, "--target-tli", "0", OFFSITE_URL="s3://bucket/x"
    )
    assert refused.error_lines == [
        "barman-supervisor: error: --target-tli 0 is not a timeline; use 1 or more"
    ]


@pytest.mark.parametrize(
    ("level", "shown"),
    [("DEBUG", ["warning", "error"]), ("INFO", ["warning", "error"]), ("ERROR", ["error"])],
)
def test_a_command_logs_on_stderr_in_log_format_at_warning_or_above(
    run_cli: Callable[..., Ran], capsys: pytest.CaptureFixture[str], level: str, shown: list[str]
) -> None:
    # check-config passes and sets logging up as every command does; then some library logs.
    done = run_cli("check-config", LOG_FORMAT="json", LOG_LEVEL=level)
    assert done.code == 0
    for name in ("info", "warning", "error"):
        getattr(logging.getLogger("barman"), name)(f"a {name} line for s3cret-Pw!")
    out, err = capsys.readouterr()
    assert out == ""
    records = [json.loads(line) for line in err.splitlines()]
    assert [record["level"] for record in records] == shown
    assert all("s3cret-Pw!" not in record["event"] for record in records)
