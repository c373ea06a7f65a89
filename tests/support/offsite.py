"""The off-site tests' view of a daemon that copies to a real S3 API server (moto_server):
what the store holds, what Barman archived, and what /status says about the copy."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemon import Daemon, Probe, running_daemon
from tests.support.paths import SUPERVISOR
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.s3 import S3, s3_server

PREFIX = "barman"
# The suffixes barman-cloud-wal-archive gives a WAL file it compressed (OFFSITE_COMPRESSION).
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".lz4", ".zst")
# A restore from the store of the test cluster takes seconds; this only bounds a hung one.
RESTORE_TIMEOUT_S = 600


@dataclass
class Offsite:
    pg: Cluster
    daemon: Daemon
    s3: S3
    probe: Probe
    workdir: Path

    def store_backups(self) -> set[str]:
        return {key.split("/")[3] for key in self.s3.keys(f"{PREFIX}/pg/base/")}

    def store_wal_keys(self) -> list[str]:
        return self.s3.keys(f"{PREFIX}/pg/wals/")

    def store_wal(self) -> set[str]:
        """WAL file names in the store, compressed or not."""
        return {uncompressed_name(key.rsplit("/", 1)[1]) for key in self.store_wal_keys()}

    def local_wal(self) -> set[str]:
        wals = self.daemon.home / "pg" / "wals"
        return {p.name for p in wals.glob("*/*")} | {p.name for p in wals.glob("*.history")}

    def switch_and_archive(self) -> str:
        segment = self.pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
        archived = self.daemon.home / "pg" / "wals" / segment[:16] / segment
        wait_until(archived.exists, timeout=60, what=f"WAL {segment} archived")
        return segment

    def restore_offsite(
        self, destination: Path, *extra: str, timeout: float = RESTORE_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """``barman-supervisor restore-offsite pg DESTINATION ...`` as on a new host: the
        daemon's settings with a Barman home of its own."""
        env = {**self.daemon.env, "BARMAN_HOME": str(self.workdir / "fresh-barman")}
        return subprocess.run(
            [SUPERVISOR, "restore-offsite", "pg", str(destination), *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )

    def offsite_status(self) -> dict[str, object]:
        code, status = self.probe.json("/status")
        assert code in (200, 503), code
        return dict(status["servers"]["pg"]["offsite"] or {})


def uncompressed_name(name: str) -> str:
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def offsite_env(s3: S3, workdir: Path) -> dict[str, str]:
    secret_file = workdir / "aws_secret"
    secret_file.write_text(s3.secret + "\n")
    return {
        "OFFSITE_URL": f"s3://{s3.bucket}/{PREFIX}",
        "OFFSITE_ENDPOINT_URL": s3.endpoint,
        "OFFSITE_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY_FILE": str(secret_file),
    }


@contextmanager
def offsite_daemon(workdir: Path, **env: str) -> Iterator[Offsite]:
    """A store, a cluster and a daemon copying to the store (``env`` on top), not waited for:
    the tests wait for what they need."""
    with s3_server(workdir) as s3, cluster() as pg:
        pg.init()
        with running_daemon(workdir, pg, until=None, **env, **offsite_env(s3, workdir)) as daemon:
            yield Offsite(pg, daemon, s3, daemon.probe, workdir)
