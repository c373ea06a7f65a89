"""Scenario 9, failover followed: from the promoted standby accepting writes to protected again.

An HA pair (``tests/support/ha``: a primary and its streaming standby on 127.0.0.1) and the
daemon with its default intervals, both nodes in a multi-host ``PG_HOST``, its first backup DONE.
Each sample is one failover: the standby caught up, the primary stopped, the standby promoted. The
clock starts when the promoted node leaves recovery (``pg_is_in_recovery()`` false: it accepts
writes). Between two samples the old primary is rewound (``pg_rewind``) and rejoined as the
standby, so each sample promotes the other node onto the next timeline.

Milestones, seconds from that moment, looked at every ``POLL_S``:
  noticed: ``/status`` shows the new timeline;
  streaming: a ``.partial`` of the new timeline in Barman's ``streaming/``;
  history_archived: the new timeline's ``.history`` file in ``wals/``;
  wal_archived: a completed WAL segment of the new timeline in ``wals/``;
  ready: ``/readyz`` 200 with ``/status`` on the new timeline (``barman check`` among its inputs);
  protected: the later of wal_archived and ready (target: at most ``TARGET_S``);
  backup_done: the failover's full backup DONE (FAILOVER_BACKUP, on by default).

Standalone (no other scenario): ``python -m bench.failover``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import POLL_S, BenchDaemon, event_time, stop_daemon, summary
from tests.support.daemon import Daemon
from tests.support.ha import HaPair, ha_pair
from tests.support.poll import TimedOut, wait_until

SERVER = "pg"
MILESTONES = (
    "noticed",
    "streaming",
    "history_archived",
    "wal_archived",
    "ready",
    "protected",
    "backup_done",
)
TARGET_S = 30
# Seconds a sample may take before its missing milestones are recorded as not reached.
SAMPLE_TIMEOUT_S = 300
# Seconds for the daemon's first backup (default intervals: immediate checkpoint at start).
FIRST_BACKUP_TIMEOUT_S = 300
ROWS = 1000
# A completed WAL segment's file name: timeline, log and segment, 8 hex digits each.
SEGMENT_NAME_CHARS = 24

Milestones = dict[str, float | None]


class Watch:
    """The milestones of one failover, each recorded the first time it is seen."""

    def __init__(self, bench: BenchDaemon, timeline: int, origin: float) -> None:
        self.bench = bench
        self.prefix = f"{timeline:08X}"
        self.timeline = timeline
        self.origin = origin
        self.seen: Milestones = dict.fromkeys(MILESTONES)
        self.home = bench.home / SERVER

    def _status_timeline(self) -> int | None:
        code, document = self.bench.daemon.probe.json("/status")
        if code != 200 or not document:
            return None
        timeline = document["servers"][SERVER]["postgres"].get("timeline")
        return int(timeline) if timeline is not None else None

    def _backup_done(self) -> float | None:
        done = [
            event_time(e)
            for e in self.bench.events.find("backup_finished", server=SERVER, ok=True)
            if event_time(e) > self.origin
        ]
        return min(done) if done else None

    def look(self) -> bool:
        """One look at everything not seen yet; True once every milestone was seen."""
        now = time.time() - self.origin
        checks: dict[str, Callable[[], bool]] = {
            "noticed": lambda: self._status_timeline() == self.timeline,
            "streaming": lambda: any((self.home / "streaming").glob(f"{self.prefix}*.partial")),
            "history_archived": (self.home / "wals" / f"{self.prefix}.history").exists,
            "wal_archived": lambda: any(
                len(path.name) == SEGMENT_NAME_CHARS
                for path in (self.home / "wals").glob(f"{self.prefix}*/{self.prefix}*")
            ),
            "ready": lambda: (
                self.bench.daemon.probe.get("/readyz")[0] == 200
                and self._status_timeline() == self.timeline
            ),
        }
        for name, check in checks.items():
            if self.seen[name] is None and check():
                self.seen[name] = round(now, 3)
        archived, ready = self.seen["wal_archived"], self.seen["ready"]
        if archived is not None and ready is not None:
            self.seen["protected"] = max(archived, ready)
        if self.seen["backup_done"] is None and (done := self._backup_done()) is not None:
            self.seen["backup_done"] = round(done - self.origin, 3)
        return None not in self.seen.values()


def one_failover(pair: HaPair, bench: BenchDaemon) -> Milestones:
    """Promote the standby (caught up) and watch the daemon follow; the old primary rejoined."""
    pair.wait_replayed()
    timeline = pair.timeline() + 1
    pair.promote()
    assert pair.promoted_at is not None
    watch = Watch(bench, timeline, pair.promoted_at)
    # what is not reached in time stays None in the results
    with contextlib.suppress(TimedOut):
        wait_until(watch.look, SAMPLE_TIMEOUT_S, what=f"timeline {timeline}", interval=POLL_S)
    pair.rejoin()
    return watch.seen


def reached(runs: list[Milestones], name: str) -> list[float]:
    """The times of milestone ``name`` over the samples that reached it."""
    return [value for sample in runs if (value := sample[name]) is not None]


def run(root: Path, samples: int) -> dict[str, object]:
    with ha_pair() as pair:
        first, second = pair.primary, pair.standby
        assert second is not None
        first.sql(f"CREATE TABLE load AS SELECT g FROM generate_series(1, {ROWS}) g")
        workdir = root / "failover"
        workdir.mkdir(parents=True, exist_ok=True)
        daemon = Daemon(
            workdir,
            first,
            PG_HOST="127.0.0.1,127.0.0.1",
            PG_PORT=f"{first.port},{second.port}",
        ).start()
        bench = BenchDaemon(daemon, [])
        try:
            bench.wait("backup_finished", FIRST_BACKUP_TIMEOUT_S, server=SERVER, ok=True)
            runs = [one_failover(pair, bench) for _ in range(samples)]
        finally:
            stop_daemon(bench, None)
    protected = reached(runs, "protected")
    return {
        "intervals": "defaults",
        "samples": runs,
        "milestones_s": {name: summary(reached(runs, name)) for name in MILESTONES},
        "target_s": TARGET_S,
        "within_target": len(protected) == samples and max(protected) <= TARGET_S,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def main() -> None:
    """Only this scenario; prints the results as JSON."""
    root = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    root.chmod(0o755)
    try:
        print(json.dumps(run(root, samples=1), indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
