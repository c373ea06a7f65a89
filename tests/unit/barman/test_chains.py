"""Choosing the parent of the next incremental backup, and reading chains (issue 13)."""

from __future__ import annotations

from pathlib import Path

from barman_supervisor.barman.chains import (
    chain_of,
    combine_missing,
    incremental_problems,
    next_backup,
)
from barman_supervisor.barman.commands import parse_show_backup
from barman_supervisor.barman.records import Backup, parse_backup_info
from barman_supervisor.config import BackupPolicy
from barman_supervisor.jobs.healing import failed_to_delete
from barman_supervisor.postgres.connection import ServerFacts


def backup(
    backup_id: str,
    moment: float,
    parent: str | None = None,
    status: str = "DONE",
    size: int = 100,
    summarize_wal: bool | None = True,
) -> Backup:
    return Backup(
        backup_id,
        status,
        moment + 1,
        size,
        begin_time=moment,
        parent_id=parent,
        summarize_wal=summarize_wal,
    )


FULL = backup("F", 10.0, size=1000)
INC1 = backup("I1", 20.0, parent="F", size=50)
INC2 = backup("I2", 30.0, parent="I1", size=70)


def test_no_backup_means_a_full() -> None:
    decision = next_backup([], chain_max=6)
    assert decision.parent is None
    assert "no DONE backup" in decision.reason


def test_parent_is_the_newest_done_backup() -> None:
    assert next_backup([FULL], chain_max=6).parent == "F"
    assert next_backup([INC2, FULL, INC1], chain_max=6).parent == "I2"


def test_a_failed_newest_backup_is_passed_over_for_the_newest_done() -> None:
    failed = backup("X", 40.0, parent="I2", status="FAILED")
    assert next_backup([FULL, INC1, INC2, failed], chain_max=6).parent == "I2"


def test_a_missing_parent_means_a_full() -> None:
    decision = next_backup([INC2, FULL], chain_max=6)
    assert decision.parent is None
    assert "parent I1 is missing" in decision.reason


def test_a_failed_link_in_the_chain_means_a_full() -> None:
    broken = backup("I1", 20.0, parent="F", status="FAILED")
    decision = next_backup([FULL, broken, INC2], chain_max=6)
    assert decision.parent is None
    assert "I1" in decision.reason


def test_a_chain_at_its_bound_means_a_full() -> None:
    assert next_backup([FULL, INC1, INC2], chain_max=3).parent == "I2"
    decision = next_backup([FULL, INC1, INC2], chain_max=2)
    assert decision.parent is None
    assert "2 incrementals" in decision.reason


def test_a_parent_without_wal_summaries_means_a_full() -> None:
    old = backup("F", 10.0, summarize_wal=False)
    assert next_backup([old], chain_max=6).parent is None
    unknown = backup("F", 10.0, summarize_wal=None)
    assert next_backup([unknown], chain_max=6).parent == "F"


def test_ordering_follows_timestamps_not_ids() -> None:
    """TZ moved: the newer backup got the smaller ID."""
    older = backup("20261124T170000", 10.0)
    newer = backup("20261124T040000", 50.0, parent="20261124T170000")
    assert next_backup([older, newer], chain_max=6).parent == "20261124T040000"


def test_chain_length_and_size() -> None:
    chain = chain_of(INC2, [FULL, INC1, INC2])
    assert [m.backup_id for m in chain.members] == ["F", "I1", "I2"]
    assert (chain.length, chain.incrementals, chain.size_bytes) == (3, 2, 1120)
    assert chain.broken is None
    assert chain_of(FULL, [FULL]).length == 1


def test_a_parent_loop_is_a_broken_chain() -> None:
    a = backup("A", 1.0, parent="B")
    b = backup("B", 2.0, parent="A")
    assert chain_of(a, [a, b]).broken == "backup A is its own ancestor"


def test_chain_fields_come_from_backup_info() -> None:
    info = "backup_id=I1\nparent_backup_id=F\nsummarize_wal=on\nstatus=DONE\n"
    assert parse_backup_info(info).chain_fields() == {"parent_id": "F", "summarize_wal": True}
    full = "parent_backup_id=None\nsummarize_wal=off\n"
    assert parse_backup_info(full).chain_fields() == {"parent_id": None, "summarize_wal": False}
    assert parse_backup_info("").chain_fields() == {"parent_id": None, "summarize_wal": None}


def test_failed_clean_up_never_deletes_a_parent() -> None:
    failed_parent = backup("P", 5.0, status="FAILED")
    child = backup("C", 6.0, parent="P", status="FAILED")
    lone = backup("L", 7.0, status="FAILED")
    done = backup("D", 50.0)
    assert failed_to_delete([failed_parent, child, lone, done], "delete") == ["C", "L"]


def facts(version_num: int, summarize_wal: str) -> ServerFacts:
    return ServerFacts(
        version_num=version_num,
        wal_level="replica",
        max_wal_senders=10,
        max_replication_slots=10,
        archive_mode="off",
        archive_command="",
        archive_library="",
        in_recovery=False,
        summarize_wal=summarize_wal,
    )


INCREMENTAL = BackupPolicy(incremental_schedule="0 3 * * 1-6")
COMBINE = Path("/usr/lib/postgresql/18/bin")


def test_incremental_start_up_checks_pass_when_all_is_there() -> None:
    assert incremental_problems(INCREMENTAL, facts(180001, "on"), COMBINE) == []
    assert incremental_problems(BackupPolicy(), facts(150010, ""), None) == []


def test_incremental_on_postgresql_15_is_refused() -> None:
    (problem,) = incremental_problems(INCREMENTAL, facts(150010, ""), COMBINE)
    assert problem.startswith("BACKUP_INCREMENTAL_SCHEDULE asks for incremental backups")
    assert "PostgreSQL 17 or newer and the server is 15" in problem


def test_summarize_wal_off_is_refused_with_the_fix() -> None:
    (problem,) = incremental_problems(INCREMENTAL, facts(170004, "off"), COMBINE)
    assert "ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf();" in problem


def test_missing_pg_combinebackup_is_refused() -> None:
    (problem,) = incremental_problems(INCREMENTAL, facts(180001, "on"), None)
    assert "pg_combinebackup 18" in problem
    assert "/usr/lib/postgresql/18/bin" in problem


def test_show_backup_says_whether_a_backup_is_incremental() -> None:
    document = {
        "pg": {
            "backup_id": "I1",
            "status": "DONE",
            "backup_type": "incremental",
            "postgresql_version": 180001,
            "base_backup_information": {"backup_size_bytes": 10},
        }
    }
    facts = parse_show_backup(document, "pg")
    assert facts is not None and facts.incremental
    document["pg"]["backup_type"] = "full"
    full = parse_show_backup(document, "pg")
    assert full is not None and not full.incremental


def test_a_missing_pg_combinebackup_is_named_with_where_it_was_looked_for() -> None:
    message = combine_missing(17)
    assert message.startswith("pg_combinebackup 17, which restores incremental backups")
    assert "/usr/lib/postgresql/17/bin" in message and "PG_BIN_DIR" in message
