"""Scenario 2, WAL freshness: how old the newest WAL in Barman is, for each streaming set-up.

All targets stream from the same primary through their own slot, so one commit (or one switch)
is observed by every target at once: the comparison is side by side by construction.

* commit -> bytes in ``streaming/<segment>.partial``: a unique marker is inserted (autocommit),
  and the partial file is read at the commit's offset until the marker is there. pg_receivewal
  pre-allocates partial files to 16 MB, so size and mtime say nothing; content does.
* ``pg_switch_wal()`` -> completed segment in ``streaming/`` -> segment in ``wals/``: the second
  step happens only when ``archive-wal`` runs, i.e. on ``barman cron``. Switches are fired on a
  fixed period unrelated to the cron periods, so they land at every phase of a cron cycle.

A writer commits a row every 0.2 s meanwhile: a live primary, so a switched segment completes
at once (on an idle one it waits for the next WAL record).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Summary, connect, summary
from tests.support.postgres import Cluster

SEGMENT = 16 * 1024 * 1024
WINDOW = 256 * 1024  # bytes read after the commit's start offset


@dataclass(frozen=True)
class Target:
    """One Barman server's directories: ``<home>/<server>/streaming`` and ``.../wals``."""

    name: str
    server_dir: Path

    def partials(self, segment: str) -> list[Path]:
        streaming = self.server_dir / "streaming"
        return [streaming / f"{segment}.partial", streaming / segment]

    def completed(self, segment: str) -> bool:
        return (self.server_dir / "streaming" / segment).exists() or self.archived(segment)

    def archived(self, segment: str) -> bool:
        return (self.server_dir / "wals" / segment[:16] / segment).exists()


class Writer:
    """Background commits every ``period`` seconds: a primary that is not idle."""

    def __init__(self, pg: Cluster, period: float = 0.2) -> None:
        self._pg = pg
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def _run(self) -> None:
        with connect(self._pg) as conn:
            while not self._stop.wait(self._period):
                conn.execute("INSERT INTO bench_activity DEFAULT VALUES")

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def prepare(pg: Cluster) -> None:
    pg.sql(
        "CREATE TABLE IF NOT EXISTS bench_activity (id bigserial, at timestamptz DEFAULT now());"
        "CREATE TABLE IF NOT EXISTS bench_marker (marker text)"
    )


def _has_marker(path: Path, offset: int, marker: bytes) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return marker in handle.read(WINDOW)
    except OSError:
        return False


def commit_delays(pg: Cluster, targets: list[Target], count: int) -> dict[str, list[float]]:
    """Milliseconds from a commit returning to its bytes in each target's partial file."""
    delays: dict[str, list[float]] = {t.name: [] for t in targets}
    with connect(pg) as conn:
        for _ in range(count):
            marker = secrets.token_hex(12)
            row = conn.execute(
                "SELECT file_name, file_offset FROM "
                "pg_walfile_name_offset(pg_current_wal_insert_lsn())"
            ).fetchone()
            assert row is not None
            segment, offset = str(row[0]), int(row[1])
            conn.execute("INSERT INTO bench_marker VALUES (%s)", (marker,))
            committed = time.perf_counter()
            pending = {t.name: t for t in targets}
            while pending and time.perf_counter() - committed < 5:
                for name, target in list(pending.items()):
                    if any(
                        _has_marker(p, offset, marker.encode()) for p in target.partials(segment)
                    ):
                        delays[name].append((time.perf_counter() - committed) * 1000)
                        del pending[name]
                time.sleep(0.0005)
            time.sleep(0.1)
    return delays


@dataclass
class _Switch:
    segment: str
    at: float
    streaming: dict[str, float]
    wals: dict[str, float]


def switch_delays(
    pg: Cluster, targets: list[Target], count: int, period: float, tail: float
) -> list[_Switch]:
    """Fire ``count`` switches ``period`` s apart; wait at most ``tail`` s after the last."""
    switches: list[_Switch] = []
    start = time.monotonic()
    deadline = start + count * period + tail
    with connect(pg) as conn:
        while time.monotonic() < deadline:
            if len(switches) < count and time.monotonic() >= start + len(switches) * period:
                conn.execute("INSERT INTO bench_marker VALUES ('switch')")
                row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
                assert row is not None
                switches.append(_Switch(str(row[0]), time.perf_counter(), {}, {}))
            _observe(switches, targets)
            if len(switches) == count and _all_seen(switches, targets):
                break
            time.sleep(0.01)
    return switches


def _observe(switches: list[_Switch], targets: list[Target]) -> None:
    now = time.perf_counter()
    for switch in switches:
        for target in targets:
            if target.name not in switch.streaming and target.completed(switch.segment):
                switch.streaming[target.name] = now - switch.at
            if target.name not in switch.wals and target.archived(switch.segment):
                switch.wals[target.name] = now - switch.at


def _all_seen(switches: list[_Switch], targets: list[Target]) -> bool:
    return all(len(s.wals) == len(targets) for s in switches)


def run(
    pg: Cluster,
    targets: list[Target],
    commits: int = 30,
    switches: int = 20,
    period: float = 4.5,
    tail: float = 70,
) -> dict[str, object]:
    prepare(pg)
    with Writer(pg):
        commit = commit_delays(pg, targets, commits)
        fired = switch_delays(pg, targets, switches, period, tail)
    result: dict[str, dict[str, Summary | int]] = {}
    for target in targets:
        result[target.name] = {
            "commit_to_partial_ms": summary(commit[target.name], 2),
            "switch_to_streaming_s": summary(
                (s.streaming[target.name] for s in fired if target.name in s.streaming), 3
            ),
            "switch_to_wals_s": summary(
                (s.wals[target.name] for s in fired if target.name in s.wals), 3
            ),
            "switches_not_archived": sum(1 for s in fired if target.name not in s.wals),
        }
    return {
        "targets": result,
        "commit_samples": commits,
        "switch_samples": len(fired),
        "switch_period_s": period,
        "writer_period_s": 0.2,
    }
