"""Real PostgreSQL clusters for the tests, on 127.0.0.1 only.

Clusters run as the ``postgres`` system user when the tests run as root (PostgreSQL refuses
root), in a throwaway directory outside pytest's root-only tmp tree, on a free port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.paths import PG_BIN, REPO
from tests.support.poll import wait_until
from tests.support.ports import free_port

ROLES_SCRIPT = REPO / "docker" / "postgres" / "initdb.d" / "10-barman-roles.sh"
BARMAN_PASSWORD = "Bk-s3cret-Pw-71"
STREAMING_PASSWORD = "St-s3cret-Pw-93"


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class Cluster:
    """A PostgreSQL cluster for one test: initdb, Barman's roles, start and stop."""

    def __init__(
        self, base: Path, port: int | None = None, hba_type: str = "host", **settings: str
    ) -> None:
        self.base = base
        # "hostssl": pg_hba.conf admits Barman's roles over TLS only (needs ssl = on).
        self.hba_type = hba_type
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
            f"{self.hba_type} all all 127.0.0.1/32 scram-sha-256\n"
            f"{self.hba_type} replication all 127.0.0.1/32 scram-sha-256\n"
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
def cluster(hba_type: str = "host", **settings: str) -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="bs-pg-"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    pg = Cluster(base, None, hba_type, **settings)
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
