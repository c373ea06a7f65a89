"""Whether Barman can protect a server, judged from the facts start-up read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from barman_supervisor.postgres.connection import (
    ServerFacts,
    login_failure,
    preflight_problems,
    server_unavailable,
)

GOOD = ServerFacts(
    version_num=170002,
    wal_level="replica",
    max_wal_senders=10,
    max_replication_slots=10,
    archive_mode="off",
    archive_command="",
    archive_library="",
    in_recovery=False,
)


@pytest.mark.parametrize(
    "facts",
    [
        GOOD,
        replace(GOOD, wal_level="logical"),
        replace(GOOD, max_wal_senders=2, max_replication_slots=1),
        replace(GOOD, archive_mode="on", archive_library="basic_archive"),
        replace(GOOD, archive_mode="always", archive_command="cp %p /archive/%f"),
        replace(GOOD, version_num=100000),
    ],
    ids=["replica", "logical", "minimum-senders", "archive-library", "archive-command", "pg10"],
)
def test_workable_servers_have_no_problem(facts: ServerFacts) -> None:
    assert preflight_problems(facts) == []


@pytest.mark.parametrize(
    ("facts", "mentions"),
    [
        (replace(GOOD, wal_level="minimal"), "wal_level"),
        (replace(GOOD, max_wal_senders=1), "max_wal_senders"),
        (replace(GOOD, max_replication_slots=0), "max_replication_slots"),
        (replace(GOOD, archive_mode="on"), "hang"),
        (replace(GOOD, archive_mode="always", archive_command="  "), "hang"),
        (replace(GOOD, version_num=90624), "PostgreSQL 9 "),
        (replace(GOOD, in_recovery=True), "standby"),
    ],
    ids=["wal-level", "senders", "slots", "empty-archive-command", "blank", "pg9", "standby"],
)
def test_each_problem_is_reported_with_its_cause(facts: ServerFacts, mentions: str) -> None:
    problems = preflight_problems(facts)

    assert len(problems) == 1
    assert mentions in problems[0]


def test_all_problems_are_reported_together() -> None:
    facts = replace(GOOD, wal_level="minimal", max_wal_senders=0, in_recovery=True)

    assert len(preflight_problems(facts)) == 3


def test_missing_grants_name_the_database_they_were_checked_in() -> None:
    facts = replace(
        GOOD,
        user="barman",
        database="bd-p2",
        missing_privileges=("EXECUTE on pg_backup_start(text, boolean)",),
    )

    (problem,) = preflight_problems(facts)

    assert "lacks EXECUTE on pg_backup_start(text, boolean) in database bd-p2" in problem
    assert "per database" in problem


@pytest.mark.parametrize(
    ("message", "replication", "reason", "variable", "unavailable"),
    [
        (
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
            'password authentication failed for user "barman"',
            False,
            'new login refused: password authentication failed for user "barman";',
            "PG_PASSWORD,",
            False,
        ),
        (
            'connection failed: connection to server at "::1", port 5432 failed: FATAL:  no '
            'pg_hba.conf entry for replication connection from host "::1", user "s", no encryption',
            True,
            "new replication login refused: no pg_hba.conf entry for replication connection",
            "PG_STREAMING_PASSWORD,",
            False,
        ),
        (
            'connection failed: connection to server at "h", port 5432 failed: FATAL:  role '
            '"barman" is not permitted to log in',
            False,
            'new login refused: role "barman" is not permitted to log in;',
            "PG_PASSWORD,",
            False,
        ),
        (
            'connection to server at "h", port 5432 failed: FATAL:  the database system is '
            "shutting down",
            False,
            "new login refused: the database system is shutting down;",
            "PG_PASSWORD,",
            True,
        ),
        (
            'connection to server at "h", port 5432 failed: Connection refused\n\tIs the server '
            "running on that host and accepting TCP/IP connections?",
            True,
            "new replication login refused: Connection refused;",
            "PG_STREAMING_PASSWORD,",
            True,
        ),
        ("", False, "new login refused: no reason given;", "PG_PASSWORD,", False),
    ],
)
def test_a_failed_login_is_named_by_the_servers_reason(
    message: str, replication: bool, reason: str, variable: str, unavailable: bool
) -> None:
    """What /readyz and the alert say: which login, the reason without libpq's prefix, one
    line; and whether the server takes no connection at all (then it is unreachable, not a
    refused login)."""
    problem = login_failure(message, replication)
    assert problem.startswith(reason) and variable in problem and "\n" not in problem
    assert "connection to server" not in problem
    assert server_unavailable(problem) is unavailable
