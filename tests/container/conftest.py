"""Fixtures of the container tests: an engine, the images, and a compose stack on free ports.

Nothing is skipped: a machine without an engine gets one (``engine.sh`` installs Debian's docker.io
and starts dockerd), and a machine without the images builds them (``base_image.sh``,
``build.sh``). That needs root, as ``make test`` has on a fresh Debian machine. Every wait has a
deadline, and every container and volume a test creates is removed at the end, pass or fail.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import secrets
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.poll import wait_until
from tests.support.ports import free_port

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
PRODUCT_COMPOSE = REPO_ROOT / "compose" / "docker-compose.yml"
HOST_OVERRIDE = HERE / "compose.host.yaml"
BARMAN_IMAGE = os.environ.get("BARMAN_TEST_IMAGE", "barman-supervisor:test")
# The compose file's default PostgreSQL major, and the stand-in image of each major (base_image.sh).
DEFAULT_MAJOR = 18
SECRET_NAMES = (
    "postgres_password",
    "barman_db_password",
    "barman_streaming_password",
    "grafana_admin_password",
)
# Mounted by the product file too; empty (off) until a person writes them, as `make up` makes them.
OPTIONAL_SECRET_NAMES = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "alert_webhook_url",
    "deadman_url",
)
# TLS to PostgreSQL: what compose/make-certs.sh makes (`make up` runs it), by compose secret name.
MAKE_CERTS = REPO_ROOT / "compose" / "make-certs.sh"
TLS_FILES = {
    "postgres_ca_cert": "postgres_ca.crt",
    "postgres_server_cert": "postgres_server.crt",
    "postgres_server_key": "postgres_server.key",
}
BUILD_LOCK = Path("/tmp/barman-supervisor-build.lock")
BUILD_TIMEOUT = 1800  # engine + base images + product image, cold, on 2 cores: ~2 min seen
COMPOSE_TIMEOUT = 300
# One /status read: an answer takes milliseconds, but CI once saw one outlast 10 s on a machine
# the whole suite saturated; a read that never comes still fails at this bound.
STATUS_TIMEOUT = 30


def run(
    argv: list[str], timeout: float, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """A bounded command; on failure the assertion shows its output."""
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{' '.join(argv)}: no end after {timeout:.0f}s\n{exc.stdout!r}\n{exc.stderr!r}"
        )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)}: exit {result.returncode}\n"
            f"stdout: {result.stdout[-4000:]}\nstderr: {result.stderr[-4000:]}"
        )
    return result


def write_secrets(directory: Path) -> None:
    """Random test passwords and empty optional secrets, readable by uid 999 in both containers,
    and the stack's CA and server certificate (the script `make up` runs), in a private
    directory."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in SECRET_NAMES + OPTIONAL_SECRET_NAMES:
        path = directory / name
        path.write_text(secrets.token_urlsafe(24) if name in SECRET_NAMES else "", "utf-8")
        path.chmod(0o644)
    run([str(MAKE_CERTS), str(directory)], 60)


def pg_image(major: int) -> str:
    """The stand-in for the official ``postgres:<major>`` image."""
    return f"barman-supervisor-test/postgres:{major}"


def write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()), "utf-8")


@pytest.fixture(scope="session")
def built_images() -> float:
    """Engine, base images, PostgreSQL stand-ins and the product image, through the scripts beside
    this file."""
    if os.geteuid() != 0:
        pytest.fail("the container tests install and start a Docker engine: run them as root")
    start = time.monotonic()
    # make test runs the suites on several workers (pytest-xdist); each container test file may
    # land on its own, and each asks for the images. One builds while the others wait on the lock,
    # then find every layer cached: one engine start, one build.
    with BUILD_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run([str(HERE / "build.sh")], BUILD_TIMEOUT, env={**os.environ, "IMAGE": BARMAN_IMAGE})
    return time.monotonic() - start


@pytest.fixture(scope="session")
def docker_client(built_images: float) -> Iterator[Any]:
    # By name: for mypy, run from the repository root, `docker` is the folder docker/.
    sdk: Any = importlib.import_module("docker")
    client = sdk.from_env(version="auto", timeout=120)
    client.ping()
    yield client
    client.close()


class Stack:
    """The product compose file with the host-networking override, as one compose project."""

    def __init__(
        self, client: Any, workdir: Path, settings: dict[str, str], major: int = DEFAULT_MAJOR
    ) -> None:
        self.client = client
        self.major = major
        self.project = f"bstest-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir
        self.pg_port = free_port()
        self.http_port = free_port()
        while self.http_port == self.pg_port:
            self.http_port = free_port()
        write_secrets(workdir / "secrets")
        self.settings = {
            "PG_IMAGE": pg_image(major),
            "POSTGRES_MAJOR": str(major),
            "BARMAN_IMAGE": BARMAN_IMAGE,
            "SECRETS_DIR": str(workdir / "secrets"),
            "PG_PORT": str(self.pg_port),
            "HTTP_PORT": str(self.http_port),
            **settings,
        }
        self.env_file = workdir / ".env"
        write_env(self.env_file, self.settings)
        # What one test leaves for a later one (the tests of a stack run in file order).

    def compose(self, *args: str, timeout: float = COMPOSE_TIMEOUT, check: bool = True) -> str:
        argv = [
            "docker", "compose",
            "-f", str(PRODUCT_COMPOSE), "-f", str(HOST_OVERRIDE),
            "--env-file", str(self.env_file), "-p", self.project, *args,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
        return run(argv, timeout, env=env, check=check).stdout

    def container(self, service: str) -> Any:
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        assert len(found) == 1, f"{service}: {len(found)} containers in project {self.project}"
        return found[0]

    def exec(self, service: str, *argv: str, timeout: int = 120, user: str = "") -> str:
        """Run a command in a running service container; fails the test on a non-zero exit."""
        code, text = self.exec_status(service, *argv, timeout=timeout, user=user)
        assert code == 0, f"{' '.join(argv)} in {service}: exit {code}\n{text[-4000:]}"
        return text

    def exec_status(
        self, service: str, *argv: str, timeout: int = 120, user: str = ""
    ) -> tuple[int, str]:
        """Run a command in a running service container: exit code and output."""
        bounded = ["timeout", str(timeout), *argv]
        code, output = self.container(service).exec_run(bounded, demux=False, user=user)
        return int(code), output.decode("utf-8", "replace") if output else ""

    def status(self) -> dict[str, Any]:
        """The daemon's /status document."""
        url = f"http://127.0.0.1:{self.http_port}/status"
        with urllib.request.urlopen(url, timeout=STATUS_TIMEOUT) as page:
            document: dict[str, Any] = json.load(page)
        return document

    def server_status(self, name: str = "pg") -> dict[str, Any] | None:
        """One server's part of /status, or None while the daemon does not answer: not up yet,
        or one answer slower than the read timeout under a loaded run (seen once in CI). For
        polls, which ask again; a daemon that never answers fails the poll's own deadline."""
        try:
            server: dict[str, Any] = self.status()["servers"][name]
        except OSError:
            return None
        return server

    def psql(self, sql: str) -> str:
        """SQL as the superuser over the Unix socket, as OS user postgres (peer in pg_hba.conf)."""
        return self.exec(
            "postgres", "psql", "-X", "-v", "ON_ERROR_STOP=1", "-qAt", "-U", "postgres",
            "-p", str(self.pg_port), "-d", "postgres", "-c", sql, timeout=300, user="postgres",
        ).strip()  # fmt: skip

    def switch_and_archive_wal(self, timeout: float = 120) -> str:
        """Close the current WAL segment and wait until Barman archived it; its name."""
        segment = self.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        self.psql("SELECT pg_switch_wal()")
        wait_until(
            lambda: segment in self.exec_status("barman", "ls", "-R", "/var/lib/barman/pg/wals")[1],
            timeout,
            what=f"WAL segment {segment} archived by Barman",
            interval=2,
        )
        return segment

    def backups(self) -> list[dict[str, Any]]:
        text = self.exec("barman", "barman", "-f", "json", "list-backups", "all")
        document = json.loads(text)
        assert "_ERROR" not in document, document
        return list(document.get("pg", []))

    def health(self) -> str:
        container = self.container("barman")
        container.reload()
        return str(container.attrs["State"].get("Health", {}).get("Status", "none"))

    def processes(self) -> list[dict[str, str]]:
        """``docker top`` of the barman container: host pids, parent, state, age, command."""
        top = self.container("barman").top(
            ps_args="-ww -o pid=PID,ppid=PPID,stat=STAT,etimes=AGE,args=ARGS"
        )
        titles = [title.upper() for title in top["Titles"]]
        return [dict(zip(titles, row, strict=False)) for row in top["Processes"] or []]

    def logs(self) -> list[str]:
        raw = self.container("barman").logs(stdout=True, stderr=True, timestamps=False)
        return [line for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs()]

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "60", check=False)
        # Whatever compose could not remove (e.g. a failed `up`), by the project's label.
        label = f"com.docker.compose.project={self.project}"
        for container in self.client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True, v=True)
        for volume in self.client.volumes.list(filters={"label": label}):
            volume.remove(force=True)
