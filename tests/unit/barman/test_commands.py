"""Barman's JSON output: data, messages, checks, backups, and why a command failed."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from barman_supervisor.barman.commands import (
    COMMAND_NOT_RUN,
    Barman,
    Check,
    Outcome,
    parse_backups,
    parse_checks,
    parse_json_output,
)
from barman_supervisor.barman.config_files import command_config
from barman_supervisor.barman.records import Backup
from barman_supervisor.config import Settings, load_settings
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.proctable import ProcessTable, ProcInfo
from barman_supervisor.process.runner import Completed, Runner


def outcome(
    stdout: str = "", stderr: str = "", returncode: int = 1, timed_out: bool = False
) -> Outcome:
    """An Outcome the way Barman.run builds one from a finished command."""
    completed = Completed(
        ("barman", "-f", "json", "backup", "pg"), returncode, stdout, stderr, 1.5, timed_out
    )
    data, messages = parse_json_output(stdout)
    return Outcome(completed, data, messages)


# parse_json_output ----------------------------------------------------------------------------


def test_messages_are_split_from_the_data() -> None:
    stdout = json.dumps(
        {
            "_INFO": ["Starting backup", "Backup done"],
            "_WARNING": ["slow"],
            "_ERROR": ["first", "second"],
            "backup_id": "20261123T033000",
        },
        indent=4,
    )

    data, messages = parse_json_output(stdout)

    assert data == {"backup_id": "20261123T033000"}
    assert messages == (
        ("info", "Starting backup"),
        ("info", "Backup done"),
        ("warning", "slow"),
        ("error", "first"),
        ("error", "second"),
    )


def test_non_json_output_is_all_messages() -> None:
    assert parse_json_output("ERROR: Unknown server 'x'\n\nhint: check the name\n") == (
        None,
        (("info", "ERROR: Unknown server 'x'"), ("info", "hint: check the name")),
    )


@pytest.mark.parametrize("stdout", ["", "  \n"])
def test_empty_output_is_nothing(stdout: str) -> None:
    assert parse_json_output(stdout) == (None, ())


def test_json_without_messages_and_non_object_json() -> None:
    assert parse_json_output('{"pg": {}}') == ({"pg": {}}, ())
    assert parse_json_output('{"_ERROR": null}') == ({}, ())
    assert parse_json_output("[1, 2]") == ([1, 2], ())


# parse_checks / parse_backups -----------------------------------------------------------------


def test_parse_checks_sorted_with_status_and_hint() -> None:
    data = {
        "pg": {
            "replication slot": {"status": "FAILED", "hint": "slot 'barman' not initialised"},
            "archiver errors": {"status": "OK", "hint": ""},
            "not a check": "ignored",
        },
        "other": {"x": {"status": "FAILED"}},
    }

    assert parse_checks(data, "pg") == [
        Check("archiver errors", True, ""),
        Check("replication slot", False, "slot 'barman' not initialised"),
    ]


@pytest.mark.parametrize("data", [None, {}, {"other": {}}, [1, 2], "text"])
def test_parse_checks_of_nothing(data: Any) -> None:
    assert parse_checks(data, "pg") == []


def test_parse_backups() -> None:
    data = {
        "pg": [
            {
                "backup_id": "20261123T033000",
                "status": "DONE",
                "end_time_timestamp": "1795404671",
                "size_bytes": 123456789,
            },
            {"backup_id": "20261122T033000", "status": "FAILED", "end_time_timestamp": "None"},
            {"backup_id": "20261121T033000", "status": "STARTED", "size_bytes": "12 MiB"},
            {"backup_id": "20261120T033000", "status": "DONE", "end_time_timestamp": 17.5},
        ]
    }

    assert parse_backups(data, "pg") == [
        Backup("20261123T033000", "DONE", 1795404671.0, 123456789),
        Backup("20261122T033000", "FAILED", None, None),
        Backup("20261121T033000", "STARTED", None, None),
        Backup("20261120T033000", "DONE", 17.5, None),
    ]


@pytest.mark.parametrize("data", [None, {}, {"other": [{"backup_id": "x"}]}, [1]])
def test_parse_backups_of_nothing(data: Any) -> None:
    assert parse_backups(data, "pg") == []


# Outcome --------------------------------------------------------------------------------------

ERRORS_JSON = json.dumps({"_ERROR": ["first problem", "last problem"]})


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (outcome(stdout=ERRORS_JSON, timed_out=True, returncode=-15), "timed out"),
        (outcome(stdout=ERRORS_JSON, stderr="noise on stderr\n"), "last problem"),
        (
            outcome(stderr="warning: x\nERROR: pg_basebackup failed\n\n"),
            "ERROR: pg_basebackup failed",
        ),
        (outcome(stdout="plain text\nlast plain line\n"), "last plain line"),
        (outcome(stderr="x" * 500), "x" * 300),
        (outcome(returncode=3), "exit code 3"),
        (outcome(stderr=" \n\n", returncode=4), "exit code 4"),
    ],
    ids=[
        "timeout",
        "last-error",
        "last-stderr-line",
        "last-stdout-line",
        "truncated",
        "exit-code",
        "blank",
    ],
)
def test_reason_precedence(result: Outcome, reason: str) -> None:
    assert result.reason() == reason


def test_barman_exception_messages_are_errors() -> None:
    """Barman's JSON writer files an unexpected exception under _EXCEPTION (barman/cli.py main:
    'output.exception("%s\\nSee log file for more details." % e)'), not under _ERROR."""
    message = "could not connect to server\nSee log file for more details."
    result = outcome(stdout=json.dumps({"_EXCEPTION": [message]}))

    assert result.data == {}
    assert result.errors == [message]
    assert result.reason() == "could not connect to server"


def test_reason_prefers_stderr_to_the_json_document() -> None:
    """Barman prints its JSON on one line; with data but no _ERROR that line is not a reason,
    the message on stderr is."""
    result = outcome(
        stdout=json.dumps({"pg": {"postgresql": {"status": "FAILED"}}}) + "\n",
        stderr="psycopg2.OperationalError: connection to server failed\n",
    )

    assert result.reason() == "psycopg2.OperationalError: connection to server failed"


def test_ok_and_errors() -> None:
    assert outcome(returncode=0).ok is True
    assert outcome(returncode=0, timed_out=True).ok is False
    assert outcome(returncode=2).ok is False
    assert outcome(stdout=ERRORS_JSON).errors == ["first problem", "last problem"]


def settings_in(tmp_path: Path) -> Settings:
    """One server's settings with every path under ``tmp_path`` (Barman home: ``home``)."""
    return load_settings(
        {
            "BARMAN_CONFIG_FILE": str(tmp_path / "barman.conf"),
            "BARMAN_CONFIG_DIR": str(tmp_path / "barman.d"),
            "BARMAN_HOME": str(tmp_path / "home"),
            "PG_PASSWORD": "x",
        }
    )


def test_a_vanished_barman_is_a_failed_command_not_a_crash(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    gone = replace(settings, barman_bin=str(tmp_path / "removed" / "barman"))
    barman = Barman(gone, Runner(Pid1(), gone.child_env))

    outcome = barman.terminate_receive_wal("pg")

    assert not outcome.ok and outcome.completed.returncode == COMMAND_NOT_RUN
    assert "cannot run" in outcome.reason() and "No such file" in outcome.reason()


@pytest.mark.parametrize("mounted", [False, True])
def test_cron_runs_once_per_server_when_each_server_has_a_file(
    tmp_path: Path, mounted: bool
) -> None:
    whole = tmp_path / "barman.conf"
    if mounted:
        whole.write_text(
            "[barman]\nbarman_home = /srv\n[pg]\nconninfo = host=a\n[reports]\nconninfo = host=b\n"
        )
    calls = tmp_path / "calls"
    program = tmp_path / "barman"
    program.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    program.chmod(0o755)
    environ = {
        "BARMAN_CONFIG_FILE": str(whole),
        "BARMAN_CONFIG_DIR": str(tmp_path / "barman.d"),
        "BARMAN_HOME": str(tmp_path / "home"),
        "BARMAN_SERVERS": "pg,reports",
        "PG_PASSWORD": "x",
    }
    settings = replace(load_settings(environ), barman_bin=str(program))

    outcomes = Barman(settings, Runner(Pid1(), settings.child_env)).cron()

    assert outcomes and all(outcome.ok for outcome in outcomes)
    configs = [line.split()[1] for line in calls.read_text().splitlines()]
    assert all(line.endswith(" cron") for line in calls.read_text().splitlines())
    if mounted:
        assert configs == [str(whole)]
    else:
        assert configs == [str(command_config(settings, name)) for name in ("pg", "reports")]


def test_starting_receive_wal_makes_the_next_process_question_scan_afresh(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    scans: list[int] = []

    def scan() -> list[ProcInfo]:
        scans.append(1)
        return []

    table = ProcessTable(max_age=3600, scan=scan)
    barman = Barman(settings, Runner(Pid1(), settings.child_env), table=table)
    barman.processes("receive-wal", "pg")
    barman.processes("receive-wal", "pg")
    assert len(scans) == 1  # shared within its age

    barman.start_receive_wal("pg")  # no fork server in this runner: nothing starts

    barman.processes("receive-wal", "pg")
    assert len(scans) == 2


def test_a_backup_that_failed_at_its_start_carries_its_backup_info_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    meta = home / "pg" / "meta"
    meta.mkdir(parents=True)
    info = meta / "20261202T063322-backup.info"
    info.write_text("begin_time=None\nend_time=None\nstatus=FAILED\n")
    os.utime(info, (1_700_000_000, 1_700_000_000))
    listing = {"pg": [{"backup_id": "20261202T063322", "status": "FAILED"}]}
    program = tmp_path / "barman"
    program.write_text(f"#!/bin/sh\necho '{json.dumps(listing)}'\n")
    program.chmod(0o755)
    settings = replace(settings_in(tmp_path), barman_bin=str(program))

    _outcome, (backup,) = Barman(settings, Runner(Pid1(), settings.child_env)).list_backups("pg")

    assert backup.begin_time is None and backup.end_time is None
    assert backup.recorded_at == 1_700_000_000
