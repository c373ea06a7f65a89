"""A highly available PostgreSQL pair for the failover tests: a primary and a real streaming
standby (``pg_basebackup``) on 127.0.0.1, each on its own port, and what an HA manager (Patroni,
repmgr) does to them: synchronous or asynchronous replication, a standby left behind, a
promotion, the old primary rejoined as a standby with ``pg_rewind``, a switchover.

The standby streams as Barman's replication role (its password read from a ``passfile``, never
on a command line). Node-specific settings (port, socket, upstream) live in each node's
``postgresql.auto.conf``, rewritten after ``pg_basebackup`` and ``pg_rewind`` (both copy the
source's configuration files). Every wait is on an event (``pg_is_in_recovery()``,
``pg_stat_replication``, replay positions), never a fixed pause.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.paths import PG_BIN
from tests.support.poll import wait_until
from tests.support.postgres import STREAMING_PASSWORD, Cluster

STREAMING_USER = "streaming_barman"
NODE_NAMES = ("node_a", "node_b")
# pg_rewind needs hint bits WAL-logged; WAL kept for a rejoined node that catches up by
# streaming instead of an archive the pair does not have.
HA_SETTINGS = {"wal_log_hints": "on", "wal_keep_size": "'64MB'", "hot_standby": "on"}
# Either node may be the synchronous standby: names, so that Barman's pg_receivewal (also a
# WAL sender) is never chosen as one.
SYNC_NAMES = f"FIRST 1 ({', '.join(NODE_NAMES)})"
# Seconds a standby gets to connect, catch up or be promoted; only bounds a hung one.
REPLICATION_TIMEOUT_S = 60


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _owned(path: Path) -> Path:
    """``path`` handed to the ``postgres`` user when the tests run as root."""
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    return path


class HaPair:
    """Two nodes of one cluster (same system identifier): ``primary``, ``standby`` (None while
    the pair has one node up) and ``down`` (the old primary after a failover, until rejoined)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.passfile = root / "pgpass"
        self.primary = Cluster(self._base(NODE_NAMES[0]), None, **HA_SETTINGS)
        self.names = {self.primary.port: NODE_NAMES[0]}  # port -> node name
        self.standby: Cluster | None = None
        self.down: Cluster | None = None
        # Epoch seconds when the last promoted node left recovery (accepts writes).
        self.promoted_at: float | None = None

    @property
    def nodes(self) -> list[Cluster]:
        return [n for n in (self.primary, self.standby, self.down) if n is not None]

    def name(self, node: Cluster) -> str:
        return self.names[node.port]

    def build(self, synchronous: bool) -> HaPair:
        """``node_a`` initialised as the primary, ``node_b`` its streaming standby."""
        self.passfile.write_text(f"127.0.0.1:*:*:{STREAMING_USER}:{STREAMING_PASSWORD}\n")
        self.passfile.chmod(0o600)
        _owned(self.passfile)
        first = self.primary.init()
        second = Cluster(self._base(NODE_NAMES[1]))
        self.names[second.port] = NODE_NAMES[1]
        second._run(
            str(PG_BIN / "pg_basebackup"),
            "-D",
            str(second.datadir),
            "-d",
            self._conninfo(first, NODE_NAMES[1]),
            "-X",
            "stream",
            "-c",
            "fast",
        )
        shutil.copytree(first.base / "secrets", second.base / "secrets")
        self._follow(second, first)
        if synchronous:
            self.set_synchronous(True)
        return self

    def set_synchronous(self, on: bool) -> None:
        """Commits on the primary wait for the standby's flush (on) or not (off). On needs a
        standby streaming: commits would hang without one."""
        value = f"'{SYNC_NAMES}'" if on else "''"
        self.primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = {value}")
        self.primary.sql("SELECT pg_reload_conf()")
        if on:
            assert self.standby is not None, "synchronous replication needs a standby"
            name = self.name(self.standby)
            state = f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}'"
            wait_until(
                lambda: self.primary.sql(state) == "sync",
                REPLICATION_TIMEOUT_S,
                what=f"{name} synchronous",
            )

    def wait_replayed(self) -> str:
        """Until the standby replayed everything the primary wrote so far: that position."""
        standby = self.standby
        assert standby is not None
        lsn = self.primary.sql("SELECT pg_current_wal_lsn()")
        wait_until(
            lambda: standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t",
            REPLICATION_TIMEOUT_S,
            what=f"standby replayed up to {lsn}",
        )
        return lsn

    def cut_standby(self) -> str:
        """The standby stops receiving (its ``primary_conninfo`` cleared and reloaded), so what
        the primary commits next exists there only: the position the standby replayed up to.
        Only with asynchronous replication (a synchronous primary would wait for ever)."""
        standby = self.standby
        assert standby is not None
        name = self.name(standby)
        standby.sql("ALTER SYSTEM SET primary_conninfo = ''")
        standby.sql("SELECT pg_reload_conf()")
        wait_until(
            lambda: (
                standby.sql("SELECT count(*) FROM pg_stat_wal_receiver") == "0"
                and self.primary.sql(
                    f"SELECT count(*) FROM pg_stat_replication WHERE application_name = '{name}'"
                )
                == "0"
            ),
            REPLICATION_TIMEOUT_S,
            what=f"{name} disconnected",
        )
        return standby.sql("SELECT pg_last_wal_replay_lsn()")

    def promote(self, stop_mode: str = "fast") -> Cluster:
        """A failover: the primary stopped (``fast``, or ``immediate`` as a crash) unless it is
        down already, the standby
        promoted and checkpointed (so that its control file, which ``pg_rewind`` reads, names
        the new timeline). The new primary, asynchronous until ``set_synchronous``."""
        new = self.standby
        assert new is not None, "no standby to promote"
        old = self.primary
        if old.running():
            old.stop(stop_mode)
        new.sql(f"SELECT pg_promote(true, {REPLICATION_TIMEOUT_S})")
        wait_until(
            lambda: new.sql("SELECT pg_is_in_recovery()") == "f",
            REPLICATION_TIMEOUT_S,
            what=f"{self.name(new)} promoted",
        )
        self.promoted_at = time.time()
        new.sql("CHECKPOINT")
        self.primary, self.standby, self.down = new, None, old
        return new

    def rejoin(self) -> Cluster:
        """The old primary rewound onto the new primary's timeline (``pg_rewind``; a crashed one
        is recovered first by ``pg_rewind`` itself) and started as its streaming standby."""
        old = self.down
        assert old is not None, "no stopped node to rejoin"
        source = f"host={self.primary.base} port={self.primary.port} user=postgres dbname=postgres"
        old._run(str(PG_BIN / "pg_rewind"), "-D", str(old.datadir), "--source-server", source)
        self.down = None
        self._follow(old, self.primary)
        return old

    def switchover(self) -> Cluster:
        """A planned switch: the standby caught up, promoted, the old primary rejoined as its
        standby. The new primary."""
        self.wait_replayed()
        new = self.promote()
        self.rejoin()
        return new

    def timeline(self) -> int:
        """The primary's current timeline."""
        wal_file = self.primary.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        return int(wal_file[:8], 16)

    def close(self) -> None:
        for node in self.nodes:
            if node.running():
                subprocess.run(
                    [
                        *_as_postgres(),
                        str(PG_BIN / "pg_ctl"),
                        "-D",
                        str(node.datadir),
                        "-m",
                        "immediate",
                        "stop",
                    ],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )

    def _base(self, name: str) -> Path:
        base = self.root / name
        base.mkdir()
        return _owned(base)

    def _conninfo(self, upstream: Cluster, application_name: str) -> str:
        return (
            f"host=127.0.0.1 port={upstream.port} user={STREAMING_USER} "
            f"passfile={self.passfile} application_name={application_name}"
        )

    def _follow(self, node: Cluster, upstream: Cluster) -> None:
        """``node`` (stopped) started as a streaming standby of ``upstream``, with its own
        port and socket; returns once ``upstream`` sees it streaming."""
        name = self.name(node)
        (node.datadir / "postgresql.auto.conf").write_text(
            f"port = {node.port}\n"
            f"unix_socket_directories = '{node.base}'\n"
            f"primary_conninfo = '{self._conninfo(upstream, name)}'\n"
        )
        _owned(node.datadir / "postgresql.auto.conf")
        (node.datadir / "standby.signal").touch()
        _owned(node.datadir / "standby.signal")
        node.start()
        self.standby = node
        wait_until(
            lambda: (
                upstream.sql(
                    "SELECT count(*) FROM pg_stat_replication "
                    f"WHERE application_name = '{name}' AND state = 'streaming'"
                )
                == "1"
            ),
            REPLICATION_TIMEOUT_S,
            what=f"{name} streaming from {self.name(upstream)}",
        )


@contextmanager
def ha_pair(synchronous: bool = False) -> Iterator[HaPair]:
    """A primary and its streaming standby, synchronous or not; every node stopped (immediate)
    and everything removed on the way out."""
    root = Path(tempfile.mkdtemp(prefix="bs-ha-"))
    root.chmod(0o755)
    _owned(root)
    pair = HaPair(root)
    try:
        yield pair.build(synchronous)
    finally:
        pair.close()
        shutil.rmtree(root, ignore_errors=True)
