"""Reading /proc/PID/stat and walking a process table."""

from __future__ import annotations

import pytest

from barman_supervisor.pid1 import ProcInfo, descendants, parse_stat


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("4242 (barman) S 1 4242 4242 0 -1 4194560 1433", ("S", 1)),
        ("77 (pg_receivewal) Z 13 77 77 0 -1", ("Z", 13)),
        ("99 (evil) R 1 (x) S 7 99 99 0 -1 4194560", ("S", 7)),
        ("12 (a b ) c) D 3 12 12 0 -1", ("D", 3)),
    ],
    ids=["plain", "zombie", "name-with-paren-space", "name-with-spaces"],
)
def test_parse_stat(stat: str, expected: tuple[str, int]) -> None:
    assert parse_stat(stat) == expected


def proc(pid: int, ppid: int, *cmdline: str) -> ProcInfo:
    return ProcInfo(pid, ppid, "S", cmdline)


def test_descendants_parents_before_children() -> None:
    table = [
        proc(30, 20, "pg_receivewal"),  # grandchild listed before its parent
        proc(20, 1, "/opt/venv/bin/barman", "receive-wal", "pg"),
        proc(21, 1, "barman", "backup"),
        proc(40, 21, "pg_basebackup"),
        proc(50, 30, "sh"),
        proc(60, 2, "unrelated"),
        proc(1, 0, "barman-supervisor"),
    ]

    found = descendants(1, table)

    assert [p.pid for p in found] == [20, 21, 30, 40, 50]
    assert descendants(40, table) == []
    assert [p.pid for p in descendants(2, table)] == [60]


def test_proc_name_is_the_program_base_name() -> None:
    assert proc(20, 1, "/opt/venv/bin/barman", "cron").name == "barman"
    assert proc(21, 1).name == ""
