"""The shared process table: one scan serves callers within its age, a command forces a new one."""

from __future__ import annotations

from barman_supervisor.process.proctable import ProcessTable, ProcInfo


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting_scan(calls: list[int]) -> tuple[ProcessTable, Clock]:
    clock = Clock()

    def scan() -> list[ProcInfo]:
        calls.append(1)
        return [ProcInfo(len(calls), 1, "S", ("barman", "receive-wal", "pg"))]

    return ProcessTable(max_age=1.0, scan=scan, clock=clock), clock


def test_callers_within_the_age_share_one_scan() -> None:
    calls: list[int] = []
    table, clock = counting_scan(calls)
    first = table.snapshot()
    clock.now += 0.9
    assert table.snapshot() == first
    assert len(calls) == 1


def test_an_older_table_is_scanned_again() -> None:
    calls: list[int] = []
    table, clock = counting_scan(calls)
    table.snapshot()
    clock.now += 1.5
    assert table.snapshot()[0].pid == 2
    assert len(calls) == 2


def test_invalidate_makes_the_next_caller_scan() -> None:
    calls: list[int] = []
    table, _clock = counting_scan(calls)
    table.snapshot()
    table.invalidate()
    table.snapshot()
    assert len(calls) == 2
