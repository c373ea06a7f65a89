"""Readiness and liveness verdicts over plain state: which conditions make a server unready."""

from __future__ import annotations

from dataclasses import replace

import pytest

from barman_supervisor.barman.commands import Check
from barman_supervisor.barman.records import Backup
from barman_supervisor.postgres.connection import SlotState
from barman_supervisor.postgres.wal import WalGap
from barman_supervisor.status.health import Limits, liveness_problems, server_problems
from barman_supervisor.status.state import JobRun, ServerState

NOW = 1_800_000_000.0
LIMITS = Limits(
    postgres_max_silence=35, backup_max_age=36 * 3600, wal_max_lag_bytes=256 << 20, wal_max_age=None
)


def protected() -> ServerState:
    return ServerState(
        phase="running",
        postgres_reached_at=NOW - 5,
        slot=SlotState(exists=True, active=True, active_pid=42, lag_bytes=1024),
        receive_wal_running=True,
        wal_received_at=NOW - 10,
        checks=[Check("postgresql", True, ""), Check("replication_slot", True, "")],
        backups=[Backup("20261123T030000", "DONE", NOW - 3600, 10 << 20)],
        runs={"backup": JobRun("backup", NOW - 3700, 100, True)},
    )


def conditions(state: ServerState, limits: Limits = LIMITS) -> list[str]:
    return [problem.condition for problem in server_problems(state, NOW, limits)]


def test_a_protected_server_has_no_problem() -> None:
    assert server_problems(protected(), NOW, LIMITS) == []


@pytest.mark.parametrize(
    ("change", "condition", "words"),
    [
        ({"postgres_error": "connection refused"}, "postgres", "unreachable"),
        (
            {"login_problem": 'new login refused: password authentication failed for user "b"'},
            "postgres_login",
            "password authentication failed",
        ),
        ({"postgres_reached_at": NOW - 600}, "postgres", "not reached for 10 min"),
        ({"receive_wal_running": False}, "streaming", "receive-wal is not running"),
        ({"slot": SlotState(exists=True, active=False)}, "streaming", "not active"),
        ({"slot": SlotState(exists=False, active=False)}, "streaming", "does not exist"),
        ({"checks": []}, "check", "no barman check"),
        ({"checks": [Check("wal_archive", False, "")]}, "check", "wal_archive"),
        ({"backups": []}, "backup", "no DONE backup"),
        ({"backups": [Backup("b", "FAILED", NOW - 10, None)]}, "backup", "no DONE backup"),
        ({"backups": [Backup("b", "DONE", NOW - 40 * 3600, 1)]}, "backup", "40.0 h old"),
        (
            {"runs": {"backup": JobRun("backup", NOW, 1, False, "disk full")}},
            "backup_job",
            "disk full",
        ),
        (
            {"slot": SlotState(exists=True, active=True, lag_bytes=300 << 20)},
            "wal",
            "300 MiB",
        ),
    ],
)
def test_each_condition_makes_the_server_unready_with_its_reason(
    change: dict[str, object], condition: str, words: str
) -> None:
    problems = server_problems(replace(protected(), **change), NOW, LIMITS)  # type: ignore[arg-type]

    assert [p.condition for p in problems] == [condition]
    assert words in problems[0].reason


def test_wal_age_counts_only_when_a_limit_is_set() -> None:
    stale = replace(protected(), wal_received_at=NOW - 7200)

    assert conditions(stale) == []
    assert conditions(stale, replace(LIMITS, wal_max_age=3600)) == ["wal"]


def test_a_starting_server_says_which_step_it_waits_in() -> None:
    problems = server_problems(ServerState(phase="waiting_for_postgres"), NOW, LIMITS)

    assert problems[0].condition == "startup"
    assert "waiting_for_postgres" in problems[0].reason


def test_a_failed_start_names_the_reason() -> None:
    state = ServerState(phase="failed", problems=["wal_level is minimal"])

    (problem,) = server_problems(state, NOW, LIMITS)
    assert (problem.condition, problem.reason) == (
        "startup_failed",
        "start-up failed: wal_level is minimal",
    )


def test_an_older_failed_backup_does_not_hide_a_newer_done_one() -> None:
    state = replace(
        protected(),
        backups=[
            Backup("new", "DONE", NOW - 60, 1),
            Backup("old", "FAILED", NOW - 7200, None),
        ],
    )

    assert conditions(state) == []


def test_liveness_ignores_postgres_and_backups() -> None:
    assert liveness_problems(NOW - 1, True, NOW, LIMITS) == []
    assert liveness_problems(NOW - 120, True, NOW, LIMITS) == ["main loop stalled for 2 min"]
    assert liveness_problems(NOW, False, NOW, LIMITS) == ["scheduler is not running"]


def test_a_wal_gap_is_red_until_a_later_backup_is_done() -> None:
    gap = WalGap("000000010000000000000004", "000000010000000000000005")
    state = replace(protected(), wal_gap=gap, wal_gap_at=NOW - 60)

    (problem,) = server_problems(state, NOW, LIMITS)
    assert problem.condition == "wal_gap"
    assert "000000010000000000000004 to 000000010000000000000005" in problem.reason

    later = Backup("20261123T040000", "DONE", NOW - 30, 1)
    assert server_problems(replace(state, backups=[later, *state.backups]), NOW, LIMITS) == []


def test_an_unreachable_server_is_not_also_a_refused_login() -> None:
    state = replace(protected(), postgres_error="connection refused", login_problem="refused")
    assert conditions(state) == ["postgres"]


def test_minimum_redundancy_is_judged_by_the_backups_listed_now_not_a_stale_check() -> None:
    """The check beside the first backup says "no backup" until the next check; the backup
    condition says what is true now."""
    stale = [Check("postgresql", True, ""), Check("minimum_redundancy_requirements", False, "")]
    assert conditions(replace(protected(), checks=stale)) == []
    assert conditions(replace(protected(), checks=stale, backups=[])) == ["backup"]


@pytest.mark.parametrize(
    ("slot", "words"),
    [
        (SlotState(exists=True, active=False, wal_status="lost"), "removed WAL"),
        (SlotState(exists=True, active=False, wal_status="unreserved"), "next checkpoint"),
        (
            SlotState(exists=True, active=True, wal_status="extended", safe_wal_size=100 << 20),
            "100 MiB more WAL",
        ),
    ],
)
def test_a_slot_whose_wal_the_primary_removes_is_red(slot: SlotState, words: str) -> None:
    problems = [
        p
        for p in server_problems(replace(protected(), slot=slot), NOW, LIMITS)
        if p.condition == "slot"
    ]
    assert len(problems) == 1 and words in problems[0].reason


def test_a_slot_with_room_left_or_no_limit_is_green() -> None:
    room = SlotState(exists=True, active=True, wal_status="reserved", safe_wal_size=1 << 30)
    unlimited = SlotState(exists=True, active=True, wal_status="reserved")
    for slot in (room, unlimited):
        assert "slot" not in conditions(replace(protected(), slot=slot))


def test_a_server_another_replica_holds_is_not_this_replicas_problem() -> None:
    """Phase handover: a red /readyz would stop the rollout that makes the holder let go."""
    waiting = replace(protected(), phase="handover", receive_wal_running=False, backups=[])
    assert conditions(waiting) == []
