"""Holes in the store's WAL: the segments a restore from the store needs and the store lacks,
from each stored backup's first segment to the newest one, across timeline switches."""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from barman_supervisor.offsite.holes import (
    WalHole,
    hole_record,
    restore_hole,
    store_segments,
    wal_holes,
)
from barman_supervisor.offsite.plan import OffsiteRecord, StoreBackup
from barman_supervisor.postgres.wal import segment_names_from
from barman_supervisor.status.health import server_problems
from barman_supervisor.status.metrics import registry
from tests.unit.offsite.test_plan import OFFSITE_LIMITS
from tests.unit.status.test_health import LIMITS
from tests.unit.status.test_http import probes, protected_state

MIB = 1024 * 1024
SIZE = 16 * MIB


def backup(begin: str, timeline: int = 1, status: str = "DONE", size: int = SIZE) -> StoreBackup:
    return StoreBackup(
        "b-" + begin,
        status,
        100.0,
        timeline=timeline,
        begin_wal=begin,
        end_lsn=0,
        segment_size=size,
    )


def tl1(first: str, count: int, size: int = SIZE) -> set[str]:
    return set(segment_names_from(first, size, count))


def test_contiguous_wal_has_no_hole() -> None:
    segments = tl1("000000010000000000000003", 8)
    assert wal_holes(segments, [backup("000000010000000000000003")], {}) == []


def test_a_hole_is_named_by_its_first_and_last_segment() -> None:
    segments = tl1("000000010000000000000003", 10)
    segments -= {"000000010000000000000006", "000000010000000000000007", "00000001000000000000000A"}
    holes = wal_holes(segments, [backup("000000010000000000000003")], {})
    assert holes == [
        WalHole("000000010000000000000006", "000000010000000000000007", 2),
        WalHole("00000001000000000000000A", "00000001000000000000000A", 1),
    ]
    assert "000000010000000000000006 to 000000010000000000000007 (2)" in holes[0].describe()


def test_wal_before_the_oldest_backup_and_failed_backups_do_not_count() -> None:
    segments = tl1("000000010000000000000005", 4)
    backups = [
        backup("000000010000000000000005"),
        backup("000000010000000000000001", status="FAILED"),
    ]
    assert wal_holes(segments, backups, {}) == []


def test_the_first_segment_of_a_backup_missing_is_a_hole() -> None:
    segments = tl1("000000010000000000000006", 3)
    assert wal_holes(segments, [backup("000000010000000000000005")], {}) == [
        WalHole("000000010000000000000005", "000000010000000000000005", 1)
    ]


def test_segment_arithmetic_follows_the_segment_size_across_a_log() -> None:
    """With 64 MiB segments a log holds 0x40 of them: ...00000003F is followed by ...100000000."""
    size = 64 * MIB
    first = "00000001000000000000003E"
    segments = tl1(first, 4, size)
    assert "000000010000000100000000" in segments
    assert wal_holes(segments, [backup(first, size=size)], {}) == []
    segments.discard("000000010000000100000000")
    assert wal_holes(segments, [backup(first, size=size)], {}) == [
        WalHole("000000010000000100000000", "000000010000000100000000", 1)
    ]


HISTORY_2 = "1\t0/5800000\tno recovery target specified\n"  # timeline 1 ended in segment 5


def test_across_a_timeline_switch_the_parent_is_read_up_to_the_switch() -> None:
    segments = tl1("000000010000000000000003", 2)  # 3, 4 on timeline 1 (5 read from timeline 2)
    segments |= set(segment_names_from("000000020000000000000005", SIZE, 3))
    assert wal_holes(segments, [backup("000000010000000000000003")], {2: HISTORY_2}) == []


def test_a_hole_on_the_parent_timeline_is_found() -> None:
    segments = {"000000010000000000000003"}  # 4 missing on timeline 1
    segments |= set(segment_names_from("000000020000000000000005", SIZE, 3))
    assert wal_holes(segments, [backup("000000010000000000000003")], {2: HISTORY_2}) == [
        WalHole("000000010000000000000004", "000000010000000000000004", 1)
    ]


def test_a_target_bounds_the_check() -> None:
    segments = tl1("000000010000000000000003", 10) - {"000000010000000000000009"}
    first = "000000010000000000000003"
    assert wal_holes(segments, [backup(first)], {}, upto="000000010000000000000008") == []
    # A target past the newest segment: what is not in the store yet is missing too.
    assert wal_holes(segments, [backup(first)], {}, upto="00000001000000000000000D") == [
        WalHole("000000010000000000000009", "000000010000000000000009", 1),
        WalHole("00000001000000000000000D", "00000001000000000000000D", 1),
    ]


def test_store_names_become_segments() -> None:
    names = [
        "000000010000000000000003.gz",
        "000000010000000000000004",
        "00000002.history",
        "000000010000000000000003.00000028.backup",
    ]
    assert store_segments(names) == {"000000010000000000000003", "000000010000000000000004"}


def test_an_empty_store_has_no_hole() -> None:
    assert wal_holes(set(), [backup("000000010000000000000003")], {}) == []


def test_a_hole_is_red_in_readyz_named_in_status_and_counted_in_metrics() -> None:
    hole = WalHole("000000010000000000000006", "000000010000000000000007", 2)
    state = protected_state()
    record = OffsiteRecord("s3://bucket/prefix", wal_holes=[hole_record(hole)], wal_missing=2)
    state.record_offsite("pg", record.as_dict())

    problems = server_problems(state.server("pg"), time.time(), OFFSITE_LIMITS)
    assert [(p.condition, p.reason) for p in problems] == [
        (
            "offsite",
            "WAL segments 000000010000000000000006 to 000000010000000000000007 (2) are missing "
            "from the store; a restore from the store stops before it",
        )
    ]
    _, document = probes(state).status()
    shown = document["servers"]["pg"]["offsite"]
    assert shown["wal_missing"] == 2
    assert shown["wal_holes"][0]["first_missing"] == "000000010000000000000006"
    assert shown["wal_holes"][0]["last_missing"] == "000000010000000000000007"
    text = generate_latest(registry(state, lambda _server: LIMITS)).decode()
    samples = {
        (s.name, s.labels.get("server")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("barman_supervisor_offsite_wal_missing_segments", "pg")] == 2
    # Contiguous again: green for this, and the gauge at 0.
    state.record_offsite("pg", OffsiteRecord("s3://bucket/prefix").as_dict())
    assert server_problems(state.server("pg"), time.time(), OFFSITE_LIMITS) == []


def test_a_restore_to_the_newest_point_stops_at_the_first_hole() -> None:
    first = "000000010000000000000003"
    names = sorted(tl1(first, 8) - {"000000010000000000000005", "000000010000000000000008"})
    hole = restore_hole(names, backup(first), {}, 1, None)
    assert hole == WalHole("000000010000000000000005", "000000010000000000000005", 1)
    assert restore_hole(sorted(tl1(first, 8)), backup(first), {}, 1, None) is None


def test_a_restore_to_an_lsn_before_the_hole_is_not_refused() -> None:
    first = "000000010000000000000003"
    names = sorted(tl1(first, 8) - {"000000010000000000000008"})
    assert restore_hole(names, backup(first), {}, 1, 0x7000028) is None  # in segment 7
    assert restore_hole(names, backup(first), {}, 1, 0x8000028) == WalHole(
        "000000010000000000000008", "000000010000000000000008", 1
    )


def test_a_restore_onto_a_new_timeline_checks_its_parent_up_to_the_switch() -> None:
    names = ["000000010000000000000003", *segment_names_from("000000020000000000000005", SIZE, 2)]
    hole = restore_hole(names, backup("000000010000000000000003"), {2: HISTORY_2}, 2, None)
    assert hole == WalHole("000000010000000000000004", "000000010000000000000004", 1)
