"""Restore into a directory and start it: the one way the tests bring a restored copy up.

``restore_dir()`` is a fresh directory the ``postgres`` user can reach (restore into its
``data``); ``started_copy(datadir)`` starts what was restored there as ``postgres`` on a port
and a socket of its own, with no TCP address and no archiving, and stops it afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.poll import wait_until
from tests.support.postgres import Cluster

# Seconds a restored copy gets to replay its WAL up to the target.
PAUSE_TIMEOUT_S = 60


@contextmanager
def restore_dir(prefix: str = "bs-restore-") -> Iterator[Path]:
    """A fresh directory outside pytest's root-only tmp tree, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)  # the restored copy's PostgreSQL runs as postgres and must reach it
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def started_copy(datadir: Path) -> Iterator[Cluster]:
    """The copy restored in ``datadir``, started with its socket in ``datadir``'s parent;
    stopped (immediate) on the way out."""
    base = datadir.parent
    copy = Cluster(base)
    copy.datadir = datadir
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", str(base)], check=True, timeout=60)
    with (datadir / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            f"port = {copy.port}\nunix_socket_directories = '{base}'\n"
            "listen_addresses = ''\narchive_mode = off\n"
        )
    copy.start()
    try:
        yield copy
    finally:
        copy.stop("immediate")


def count_at_target(datadir: Path, table: str) -> int:
    """The rows of ``table`` in the copy restored to a target, once its recovery paused there
    (the default target action)."""
    with started_copy(datadir) as copy:
        wait_until(
            lambda: copy.sql("SELECT pg_get_wal_replay_pause_state()") == "paused",
            PAUSE_TIMEOUT_S,
            what="recovery paused at the target",
        )
        return int(copy.sql(f"SELECT count(*) FROM {table}"))
