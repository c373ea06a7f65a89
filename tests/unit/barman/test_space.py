"""The space rule and the estimate of the next backup's size."""

from __future__ import annotations

from barman_supervisor.barman.records import Backup
from barman_supervisor.barman.space import (
    BACKUP_SPACE_FACTOR,
    BACKUP_SPACE_MARGIN,
    Estimate,
    backup_estimate,
    backup_space_problem,
    space_problem,
)

MIB = 1048576


def full(backup_id: str, size: int | None, begin: float, status: str = "DONE") -> Backup:
    return Backup(backup_id, status, begin + 10, size, begin_time=begin)


def incremental(backup_id: str, size: int, begin: float) -> Backup:
    return Backup(backup_id, "DONE", begin + 10, size, begin_time=begin, parent_id="F")


def test_space_is_needed_times_factor_plus_margin() -> None:
    kwargs = {"what": "x", "needed_label": "y", "hint": "z"}
    assert space_problem(300 * MIB, 100 * MIB, 2, 100 * MIB, **kwargs) is None
    reason = space_problem(300 * MIB - 1, 100 * MIB, 2, 100 * MIB, **kwargs)
    assert reason == (
        "not enough free space for x: 300 MiB free, 300 MiB needed (y 100 MiB x 2 + 100 MiB "
        "margin); z"
    )


def test_the_newest_done_backup_of_the_same_kind_is_the_estimate() -> None:
    backups = [
        full("F1", 500 * MIB, 1000.0),
        full("F2", 700 * MIB, 3000.0),
        full("F3", 9000 * MIB, 4000.0, status="FAILED"),
        incremental("I1", 20 * MIB, 3500.0),
        full("F0", 100 * MIB, 500.0),
    ]
    assert backup_estimate(backups, False, 10 * MIB) == Estimate(700 * MIB, "previous full backup")
    assert backup_estimate(backups, True, 10 * MIB) == Estimate(
        20 * MIB, "previous incremental backup"
    )


def test_without_a_backup_of_the_kind_the_database_size_is_the_estimate() -> None:
    """The first incremental after fulls only: no size of its kind, so the database's (its
    upper bound); a backup with no recorded size tells nothing."""
    backups = [full("F1", 500 * MIB, 1000.0), full("F2", None, 2000.0)]
    assert backup_estimate(backups, True, 80 * MIB) == Estimate(80 * MIB, "database size")
    assert backup_estimate([], False, None) is None


def test_a_backup_is_refused_only_below_the_estimate_with_its_margin() -> None:
    estimate = Estimate(100 * MIB, "database size")
    needed = int(100 * MIB * BACKUP_SPACE_FACTOR) + BACKUP_SPACE_MARGIN
    assert backup_space_problem(needed, estimate) is None
    reason = backup_space_problem(needed - 1, estimate)
    assert reason is not None and "BARMAN_HOME" in reason and "database size 100 MiB" in reason
    assert backup_space_problem(0, None) is None
