"""Real PostgreSQL clusters and real daemons for the integration tests, on 127.0.0.1 only.

Clusters run as the ``postgres`` system user when the tests run as root (PostgreSQL refuses
root), in a throwaway directory outside pytest's root-only tmp tree, on a free port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ROLES_SCRIPT = REPO / "docker" / "postgres" / "initdb.d" / "10-barman-roles.sh"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
VENV_BIN = Path(sys.executable).parent
BARMAN = str(VENV_BIN / "barman")
SUPERVISOR = str(VENV_BIN / "barman-supervisor")
BARMAN_PASSWORD = "Bk-s3cret-Pw-71"
STREAMING_PASSWORD = "St-s3cret-Pw-93"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Poll with a deadline; every wait in these tests is bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class Cluster:
    """A PostgreSQL cluster for one test: initdb, Barman's roles, start and stop."""

    def __init__(self, base: Path, port: int | None = None, **settings: str) -> None:
        self.base = base
        self.datadir = base / "data"
        self.port = port or free_port()
        self.settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{base}'",
            "wal_level": "replica",
            "archive_mode": "off",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "fsync": "off",
            **settings,
        }

    def _run(self, *argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_as_postgres(), *argv],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            **kwargs,
        )

    def init(self) -> Cluster:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust")
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in self.settings.items())
        (self.datadir / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n"
        )
        self.start()
        secrets = self.base / "secrets"
        secrets.mkdir(exist_ok=True)
        (secrets / "barman").write_text(BARMAN_PASSWORD + "\n")
        (secrets / "streaming").write_text(STREAMING_PASSWORD + "\n")
        subprocess.run(
            ["sh", str(ROLES_SCRIPT)],
            check=True,
            capture_output=True,
            timeout=60,
            env={
                **os.environ,
                "PATH": f"{PG_BIN}:{os.environ['PATH']}",
                "PGHOST": str(self.base),
                "PGPORT": str(self.port),
                "BARMAN_DB_PASSWORD_FILE": str(secrets / "barman"),
                "BARMAN_STREAMING_PASSWORD_FILE": str(secrets / "streaming"),
            },
        )
        return self

    def clone(self, base: Path) -> Cluster:
        """A copy of this stopped cluster (same roles, passwords and data) in ``base``, which
        the caller made for the ``postgres`` user, on its own port: many servers at the cost
        of one initdb."""
        copy = Cluster(base)
        self._run("cp", "-a", str(self.datadir), str(copy.datadir))
        shutil.copytree(self.base / "secrets", base / "secrets")
        with (copy.datadir / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {copy.port}\nunix_socket_directories = '{base}'\n")
        return copy

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.base / "pg.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def start_as_standby(self) -> None:
        """Restarts as a standby of nothing: in recovery, with no source."""
        self.stop()
        (self.datadir / "standby.signal").touch()
        shutil.chown(self.datadir / "standby.signal", "postgres", "postgres")
        self.start()
        assert self.sql("SELECT pg_is_in_recovery()") == "t"

    def promote(self) -> None:
        """A real timeline switch on the same cluster, as a failover leaves it."""
        self.start_as_standby()
        self.sql("SELECT pg_promote(true, 60)")
        wait_until(
            lambda: self.sql("SELECT pg_is_in_recovery()") == "f", timeout=60, what="promoted"
        )

    def reload(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "reload")

    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def sql(self, query: str) -> str:
        result = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                str(self.base),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-AtX",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                query,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip()


@contextmanager
def cluster(**settings: str) -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="bs-pg-"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    pg = Cluster(base, None, **settings)
    try:
        yield pg
    finally:
        if pg.running():
            subprocess.run(
                [
                    *_as_postgres(),
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(pg.datadir),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


class Daemon:
    """``barman-supervisor run`` as a child process, its stdout kept as JSON events."""

    def __init__(self, workdir: Path, pg: Cluster, **env: str) -> None:
        self.workdir = workdir
        self.home = workdir / "barman"
        self.config_file = workdir / "barman.conf"
        self.stdout = workdir / "daemon.out"
        self.stderr = workdir / "daemon.err"
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


def process_table() -> list[tuple[int, int, str, str]]:
    """(pid, ppid, state, cmdline) for every process."""
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        table.append((int(entry.name), int(ppid), state, cmdline.strip()))
    return table


def processes_using(marker: str) -> list[tuple[int, int, str, str]]:
    """Live processes whose command line mentions ``marker`` (a test's own path or slot)."""
    return [proc for proc in process_table() if marker in proc[3] and proc[2] != "Z"]
