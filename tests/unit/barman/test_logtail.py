"""Barman log lines re-emitted as events."""

from __future__ import annotations

import logging

import pytest

from barman_supervisor.barman.logtail import LogLine, parse_line


def test_barman_line() -> None:
    line = "2026-11-23 23:32:51,861 [3263] barman.server INFO: Starting receive-wal for server pg"

    assert parse_line(line) == LogLine(
        logging.INFO, "Starting receive-wal for server pg", 3263, "barman.server"
    )


@pytest.mark.parametrize(
    ("level", "number"),
    [("DEBUG", 10), ("WARNING", 30), ("ERROR", 40), ("CRITICAL", 50), ("NOTICE", 20)],
)
def test_levels(level: str, number: int) -> None:
    line = f"2026-11-23 23:32:51,861 [7] barman.wal_archiver {level}: msg: with colon"

    parsed = parse_line(line)

    assert (parsed.level, parsed.message) == (number, "msg: with colon")


@pytest.mark.parametrize(
    "text",
    [
        "Traceback (most recent call last):",
        '  File "/opt/venv/lib/python3.13/site-packages/barman/cli.py", line 3340, in main',
        "psycopg2.OperationalError: connection to server failed",
    ],
)
def test_lines_outside_the_format_stay_whole_at_info(text: str) -> None:
    assert parse_line(text) == LogLine(logging.INFO, text, None, None)
