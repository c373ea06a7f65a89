"""``barman-supervisor run`` as a child process of a test, and what a test asks of it.

``running_daemon(...)`` is how a test gets one: started, waited for until an event (by default
its server's start-up ran through), and stopped afterwards whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.paths import BARMAN, SUPERVISOR
from tests.support.poll import SHOWN_CHARS, wait_until
from tests.support.ports import free_port
from tests.support.postgres import Cluster

# Seconds a refused daemon gets to exit by itself.
EXIT_TIMEOUT_S = 120
# Seconds an HTTP request to the daemon may take.
HTTP_TIMEOUT_S = 5


class Daemon:
    """``barman-supervisor run`` as a child process, its stdout kept as JSON events in
    ``<output>.out`` (a second daemon on the same ``workdir`` gets an ``output`` of its own)."""

    def __init__(self, workdir: Path, pg: Cluster, output: str = "daemon", **env: str) -> None:
        self.workdir = workdir
        self.home = workdir / "barman"
        self.config_file = workdir / "barman.conf"
        self.stdout = workdir / f"{output}.out"
        self.stderr = workdir / f"{output}.err"
        self.env = {
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "BARMAN_CONFIG_FILE": str(self.config_file),
            "BARMAN_CONFIG_DIR": str(workdir / "barman.d"),
            "BARMAN_HOME": str(self.home),
            "BARMAN_BIN": BARMAN,
            "PG_HOST": "127.0.0.1",
            "PG_PORT": str(pg.port),
            "PG_PASSWORD_FILE": str(pg.base / "secrets" / "barman"),
            "PG_STREAMING_PASSWORD_FILE": str(pg.base / "secrets" / "streaming"),
            "LOG_FORMAT": "json",
            # Each daemon its own port: tests (and other runs on this machine) never collide.
            "HTTP_BIND": "127.0.0.1",
            "HTTP_PORT": str(free_port()),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [SUPERVISOR, "run"], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env
            )
        return self

    def run(self, timeout: float = EXIT_TIMEOUT_S) -> int:
        """Start and wait for it to exit by itself (a refused start): its exit code. Killed
        when it does not exit within ``timeout``."""
        self.start()
        try:
            return self.wait(timeout)
        finally:
            self.kill()

    @property
    def probe(self) -> Probe:
        """Its HTTP endpoints, on the port it was given."""
        return Probe(int(self.env["HTTP_PORT"]))

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def events(self) -> list[dict[str, Any]]:
        text = self.stdout.read_text(errors="replace")
        # The daemon may be writing its last line while we read: only complete lines count.
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def find(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events()
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        ]

    def wait_for(self, event: str, timeout: float, **fields: Any) -> dict[str, Any]:
        def seen() -> dict[str, Any] | None:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited {self.process.returncode} before {event}: {self.tail()}"
                    f"\nstderr: {self.stderr.read_text(errors='replace')[-SHOWN_CHARS:]}"
                )
            found = self.find(event, **fields)
            return found[0] if found else None

        return dict(wait_until(seen, timeout, what=f"event {event} {fields}"))

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.stdout.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 120) -> None:
        """SIGTERM and wait, as a fixture's clean-up; SIGKILL when it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def barman_command(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A Barman command with this daemon's configuration and password file."""
        return subprocess.run(
            [BARMAN, "-c", str(self.config_file), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**self.env, "PGPASSFILE": str(self.home / ".pgpass")},
        )

    def barman(self, *args: str) -> Any:
        """Barman's JSON answer for this daemon's configuration."""
        result = self.barman_command("-f", "json", *args, timeout=120)
        return json.loads(result.stdout) if result.stdout.strip() else None

    def backups(self, server: str = "pg") -> list[dict[str, Any]]:
        return list((self.barman("list-backups", server) or {}).get(server, []))


@dataclass(frozen=True)
class Await:
    """An event ``running_daemon`` waits for before handing the daemon to the test."""

    event: str
    timeout: float
    fields: dict[str, Any] = field(default_factory=dict)


# Server ``pg`` through its start-up: streaming, checked, first backup DONE.
READY = Await("startup_step", 180, {"server": "pg", "step": "running"})


@contextmanager
def running_daemon(
    workdir: Path,
    pg: Cluster,
    *,
    until: Await | None = READY,
    output: str = "daemon",
    **env: str,
) -> Iterator[Daemon]:
    """A started daemon (``env`` on top of ``Daemon``'s), once ``until`` was logged (None: at
    once); stopped (SIGTERM, then SIGKILL) on the way out, pass or fail."""
    daemon = Daemon(workdir, pg, output=output, **env).start()
    try:
        if until is not None:
            daemon.wait_for(until.event, until.timeout, **until.fields)
        yield daemon
    finally:
        daemon.stop()


class Probe:
    """The daemon's HTTP endpoints: status code and body, 0 and "" when nothing answers."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def json(self, path: str) -> tuple[int, Any]:
        code, text = self.get(path)
        return code, (json.loads(text) if text else None)

    def problems(self, server: str = "pg") -> list[str]:
        """The conditions /readyz names for ``server``; ["no answer"] when it does not answer."""
        code, document = self.json("/readyz")
        if code == 0 or document is None:
            return ["no answer"]
        return [p["condition"] for p in document["servers"][server]]
