"""Trust at the edges, against real PostgreSQL and Barman: the password ``barman`` (the seed's
own) mangles nothing, children inherit no secret, a second daemon on the same home is refused
without touching the first one's streaming, and SIGHUP is logged instead of killing the daemon.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from barman_supervisor.process.proctable import ProcInfo, processes
from tests.support.daemon import Await, Daemon, running_daemon
from tests.support.paths import SUPERVISOR
from tests.support.poll import wait_until
from tests.support.ports import free_port
from tests.support.postgres import Cluster, cluster

pytestmark = pytest.mark.integration
DEADMAN_TOKEN = "dm-7f3a9c2e1b"


@dataclass
class Running:
    pg: Cluster
    daemon: Daemon
    workdir: Path

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.daemon.env['HTTP_PORT']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def receivers(self) -> list[int]:
        """pg_receivewal processes streaming into this daemon's Barman home."""
        return [
            proc.pid
            for proc in _table()
            if proc.name == "pg_receivewal" and str(self.daemon.home) in " ".join(proc.cmdline)
        ]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with cluster() as pg:
        pg.init()
        for role in ("barman", "streaming_barman"):
            pg.sql(f"ALTER ROLE {role} PASSWORD 'barman'")
        workdir = tmp_path_factory.mktemp("instance")
        with running_daemon(
            workdir,
            pg,
            until=Await("backup_finished", 240, {"server": "pg"}),
            PG_PASSWORD="barman",
            PG_PASSWORD_FILE="",
            PG_STREAMING_PASSWORD_FILE="",
            DEADMAN_URL=f"http://127.0.0.1:{free_port()}/ping/{DEADMAN_TOKEN}",
            ALERT_WEBHOOK_URL=f"http://ops:barman@127.0.0.1:{free_port()}/hook",
            BACKUP_IMMEDIATE_CHECKPOINT="true",
            BARMAN_CRON_INTERVAL="5",
        ) as daemon:
            running = Running(pg, daemon, workdir)
            wait_until(running.receivers, timeout=60, what="pg_receivewal running")
            yield running


def test_password_barman_mangles_no_event_and_no_answer(running: Running) -> None:
    events = running.daemon.events()  # every line parses as JSON
    names = {event["event"] for event in events}
    assert "barman_log" in names and not any("***" in name for name in names)
    commands = [e["command"] for e in events if e.get("event") == "command_finished"]
    # Barman's own commands name its configuration; the others are PostgreSQL's programs.
    barman_commands = [c for c in commands if " -c " in c]
    assert barman_commands and all(c.split()[0].endswith("barman") for c in barman_commands)
    assert not any("***" in command for command in commands)

    for path in ("/healthz", "/readyz", "/status"):
        code, body = running.get(path)
        assert code in (200, 503) and isinstance(json.loads(body), dict), body
    assert "postgres" in json.loads(running.get("/status")[1])["servers"]["pg"]
    assert b"barman_supervisor_up" in running.get("/metrics")[1]

    probe = subprocess.run(
        [SUPERVISOR, "healthcheck", "--live"],
        env={"HTTP_BIND": "127.0.0.1", "HTTP_PORT": running.daemon.env["HTTP_PORT"]},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (probe.returncode, probe.stdout.strip()) == (0, "alive"), probe.stderr


def test_streaming_children_inherit_no_secret(running: Running) -> None:
    streaming = [
        proc
        for proc in _table()
        if str(running.daemon.home) in " ".join(proc.cmdline)
        or str(running.daemon.config_file) in " ".join(proc.cmdline)
    ]
    assert any(proc.name == "pg_receivewal" for proc in streaming)
    for proc in streaming:
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
        assert not names & {"DEADMAN_URL", "ALERT_WEBHOOK_URL", "PG_PASSWORD", "PGPASSWORD"}
        assert DEADMAN_TOKEN.encode() not in b"\0".join(environ), proc.cmdline


def test_a_second_daemon_on_the_same_home_is_refused_and_touches_nothing(
    running: Running,
) -> None:
    before = running.receivers()
    second = Daemon(running.workdir, running.pg, output="second", **_same_settings(running.daemon))

    assert second.run(60) == 2
    lines = second.stderr.read_text().strip().splitlines()
    assert len(lines) == 1 and f"PID {running.daemon.pid}" in lines[0], lines
    assert not second.find("previous_run_leftovers")
    assert running.receivers() == before
    assert running.daemon.process is not None and running.daemon.process.poll() is None


def test_sighup_is_logged_and_changes_nothing(running: Running) -> None:
    before = running.receivers()

    running.daemon.signal(signal.SIGHUP)

    event = running.daemon.wait_for("signal_ignored", timeout=30, signal="SIGHUP")
    assert "restart" in event["hint"]
    assert running.daemon.process is not None and running.daemon.process.poll() is None
    assert running.receivers() == before
    assert running.get("/healthz")[0] == 200


def _same_settings(daemon: Daemon) -> dict[str, str]:
    """The first daemon's settings, on another HTTP port so the lock is what refuses it."""
    keep = ("PG_PASSWORD", "PG_PASSWORD_FILE", "PG_STREAMING_PASSWORD_FILE")
    return {**{name: daemon.env[name] for name in keep}, "HTTP_PORT": str(free_port())}


def _table() -> list[ProcInfo]:
    return [proc for proc in processes() if proc.state != "Z"]
