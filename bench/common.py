"""What every benchmark scenario shares: statistics, the daemon's events, daemons and slots.

Daemons come from the integration harness (same environment, same PostgreSQL roles), with two
differences that matter when several run at once on one machine: each gets its own slot and its
own health port on 127.0.0.1, and their event streams are read incrementally (a 50-server daemon
writes megabytes of events; re-parsing them on every poll would load the CPU being measured).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from tests.support.daemon import Daemon
from tests.support.poll import wait_until
from tests.support.ports import free_port
from tests.support.postgres import Cluster
from tests.support.processes import processes_using

Event = dict[str, Any]
# Seconds between two reads of a daemon's new events at most: often enough for the timings,
# which come from the events' own timestamps, and rare enough to cost no measured CPU.
POLL_S = 0.2
Summary = dict[str, float | int | None]


# Statistics ---------------------------------------------------------------------------------
def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear interpolation between closest ranks: stable for the small samples taken here."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Iterable[float], digits: int = 4) -> Summary:
    """n, median, p95, p99, min, max, mean: one shape for every distribution in latest.json."""
    data = list(values)
    if not data:
        return {"n": 0, "median": None, "p95": None, "p99": None, "min": None, "max": None}

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "n": len(data),
        "median": rounded(percentile(data, 50)),
        "p95": rounded(percentile(data, 95)),
        "p99": rounded(percentile(data, 99)),
        "min": rounded(min(data)),
        "max": rounded(max(data)),
        "mean": rounded(sum(data) / len(data)),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


# Events -------------------------------------------------------------------------------------
def event_time(event: Event) -> float:
    """Epoch seconds of an event; the daemon stamps ISO-8601 UTC from the same wall clock."""
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


class Events:
    """The daemon's JSON events, read incrementally from its stdout file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.items: list[Event] = []

    def poll(self) -> list[Event]:
        if not self._path.exists():
            return self.items
        with self._path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    self.items.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a stray non-JSON line (e.g. a traceback) is not an event
        return self.items

    def find(self, event: str, **fields: Any) -> list[Event]:
        return [
            e
            for e in self.poll()
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        ]

    def first(self, event: str, **fields: Any) -> Event | None:
        found = self.find(event, **fields)
        return found[0] if found else None


class BenchDaemon:
    """A harness daemon plus its incremental events and the slots it owns."""

    def __init__(self, daemon: Daemon, slots: list[str]) -> None:
        self.daemon = daemon
        self.events = Events(daemon.stdout)
        self.slots = slots
        self.http_port = int(daemon.env["HTTP_PORT"])

    @property
    def pid(self) -> int:
        return self.daemon.pid

    @property
    def home(self) -> Path:
        return self.daemon.home

    def alive(self) -> bool:
        return self.daemon.process is not None and self.daemon.process.poll() is None

    def wait(self, event: str, timeout: float, **fields: Any) -> Event:
        """The first matching event; fails fast when the daemon died, bounded by ``timeout``."""

        def seen() -> Event | None:
            found = self.events.first(event, **fields)
            if found is None and not self.alive():
                raise RuntimeError(f"daemon exited before {event}: {self.daemon.tail()}")
            return found

        return wait_until(seen, timeout, what=f"event {event} {fields}", interval=POLL_S)


def start_daemon(root: Path, name: str, pg: Cluster, slots: list[str], **env: str) -> BenchDaemon:
    """Defaults that keep concurrent daemons apart and keep ``barman check`` out of the CPU
    figures (it runs every 300 s by default; the footprint runs are shorter than that)."""
    workdir = root / name
    workdir.mkdir(parents=True, exist_ok=True)
    defaults = {
        "HTTP_BIND": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
        "BARMAN_CHECK_INTERVAL": "3600",
        "SHUTDOWN_GRACE": "60",
    }
    daemon = Daemon(workdir, pg, **{**defaults, **env}).start()
    return BenchDaemon(daemon, slots)


def stop_daemon(bench: BenchDaemon, pg: Cluster | None, timeout: float = 180) -> float:
    """SIGTERM, bounded wait, then kill whatever is left of it; drops its slots. Returns the
    shutdown time in seconds."""
    started = time.monotonic()
    if bench.alive():
        bench.daemon.signal(signal.SIGTERM)
        try:
            bench.daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            bench.daemon.kill()
    kill_leftovers(str(bench.daemon.workdir))
    if pg is not None and pg.running():
        drop_slots(pg, bench.slots)
    return round(time.monotonic() - started, 3)


def kill_leftovers(marker: str) -> None:
    """Processes this run started (their command line names its directory), one pid at a time."""
    for pid, _ppid, _state, _cmd in processes_using(marker):
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def drop_slots(pg: Cluster, slots: Iterable[str]) -> None:
    """Inactive slots of stopped daemons would keep every later WAL segment on the primary."""
    names = ",".join(f"'{slot}'" for slot in slots)
    if names:
        pg.sql(
            "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots "
            f"WHERE slot_name IN ({names}) AND NOT active"
        )


def connect(pg: Cluster) -> psycopg.Connection[tuple[Any, ...]]:
    """The superuser over the cluster's Unix socket (trust), for load and WAL positions."""
    return psycopg.connect(
        host=str(pg.base), port=pg.port, user="postgres", dbname="postgres", autocommit=True
    )


def slot_active(pg: Cluster, slot: str) -> bool:
    return pg.sql(f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'") == "t"
