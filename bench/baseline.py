"""The baseline without barman-supervisor: Barman configured by hand, ``barman cron`` from a
system-cron style loop (at the start of every wall-clock minute, as ``* * * * *`` fires), and the
manual commands of Barman's documentation typed by an operator.

Same PostgreSQL, same roles and passwords as the daemon; its own home, configuration and slot.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import drop_slots, kill_leftovers
from tests.support.paths import BARMAN
from tests.support.postgres import BARMAN_PASSWORD, STREAMING_PASSWORD, Cluster

SERVER = "pg"


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    started: float
    ended: float
    returncode: int
    stdout: str

    @property
    def seconds(self) -> float:
        return round(self.ended - self.started, 3)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def seconds_to_next_minute(now: float) -> float:
    return 60 - now % 60


class Baseline:
    """Hand-written Barman configuration in ``root`` and the cron loop that drives it."""

    def __init__(self, root: Path, pg: Cluster, slot: str = "bench_baseline") -> None:
        self.root = root
        self.pg = pg
        self.slot = slot
        self.home = root / "home"
        self.config = root / "barman.conf"
        self.pgpass = root / ".pgpass"
        self.cron_ticks: list[float] = []
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._write_files()

    def _write_files(self) -> None:
        """The streaming-only set-up of Barman's documentation, as an operator writes it."""
        (self.root / "barman.d").mkdir(parents=True, exist_ok=True)
        (self.home / "log").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "[barman]\n"
            "barman_user = root\n"
            f"barman_home = {self.home}\n"
            f"log_file = {self.home / 'log' / 'barman.log'}\n"
            "log_level = INFO\n"
            f"configuration_files_directory = {self.root / 'barman.d'}\n"
        )
        (self.root / "barman.d" / f"{SERVER}.conf").write_text(
            f"[{SERVER}]\n"
            "description = baseline, configured by hand\n"
            f"conninfo = host=127.0.0.1 port={self.pg.port} user=barman dbname=postgres\n"
            f"streaming_conninfo = host=127.0.0.1 port={self.pg.port} user=streaming_barman\n"
            "backup_method = postgres\n"
            "streaming_archiver = on\n"
            f"slot_name = {self.slot}\n"
        )
        self.pgpass.write_text(
            f"127.0.0.1:{self.pg.port}:*:barman:{BARMAN_PASSWORD}\n"
            f"127.0.0.1:{self.pg.port}:*:streaming_barman:{STREAMING_PASSWORD}\n"
        )
        self.pgpass.chmod(0o600)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSFILE": str(self.pgpass), "LANG": "C.UTF-8"}

    def barman(self, *args: str, timeout: float = 300, json_output: bool = False) -> Command:
        argv = [BARMAN, "-c", str(self.config), *(["-f", "json"] if json_output else []), *args]
        started = time.time()
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=self.env(), check=False
            )
            code, out = result.returncode, result.stdout
        except subprocess.TimeoutExpired:
            code, out = -1, ""
        return Command(tuple(argv), started, time.time(), code, out)

    def backups(self) -> list[dict[str, Any]]:
        out = self.barman("list-backups", SERVER, json_output=True, timeout=60).stdout
        return list(json.loads(out).get(SERVER, [])) if out.strip() else []

    # The cron loop ---------------------------------------------------------------------------
    def start_cron(self) -> None:
        self._loop = threading.Thread(target=self._cron_loop, name="baseline-cron", daemon=True)
        self._loop.start()

    def _cron_loop(self) -> None:
        while not self._stop.wait(seconds_to_next_minute(time.time())):
            self.cron_ticks.append(time.time())
            self.barman("cron", timeout=120)

    def first_tick_after(self, moment: float) -> float | None:
        return next((tick for tick in self.cron_ticks if tick >= moment), None)

    def stop(self) -> None:
        """Stop the loop and streaming, leave nothing running and no slot behind."""
        self._stop.set()
        if self._loop is not None:
            self._loop.join(130)
        if self.pg.running():
            self.barman("terminate-process", SERVER, "receive-wal", timeout=30)
        kill_leftovers(str(self.config))
        if self.pg.running():
            drop_slots(self.pg, [self.slot])
