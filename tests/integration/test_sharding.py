"""Sharding with real processes (issue 28): replicas of one StatefulSet, each its own Barman home
(its volume), all given the same twelve servers (one PostgreSQL, a slot each) and a real S3 API
server as the store.

Three replicas protect every server exactly once. Going to four rolls the set as a StatefulSet
does (the new replica first, then the old ones restarted from the highest ordinal down, each
with the new count): the new replica waits in phase ``handover`` while a server's old owner
still holds its claim, and takes it when that owner restarts without it; only the servers the
hash moves change owner, no claim or slot is ever held twice, the store's WAL of every server
stays gapless, and a moved server's backup taken by its old owner restores from the store (on
another replica, as on a new host) to data written after the move. A replica killed leaves its
servers unprotected until it is back (as the StatefulSet restarts it): nobody else takes them.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from barman_supervisor.config.shard import advisory_lock_key, moved, owner
from barman_supervisor.postgres.wal import segment_number
from tests.support.daemon import Daemon
from tests.support.offsite import PREFIX, RESTORE_TIMEOUT_S, offsite_env, uncompressed_name
from tests.support.paths import SUPERVISOR
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.restored import restore_dir, started_copy
from tests.support.s3 import S3, s3_server

pytestmark = pytest.mark.integration
SERVERS = [f"pg{n}" for n in range(1, 13)]
SEGMENT_SIZE = 16 * 2**20
# Start-up of a replica's servers (slot, streaming, first WAL, check; no first backup).
START_TIMEOUT_S = 180
# A handover is a restart and a claim: seconds; this bounds a hung one.
HANDOVER_TIMEOUT_S = 120
# The servers going from 3 to 4 replicas moves (to the new shard).
MOVING = moved(SERVERS, 3, 4)
# What every replica shares: the full list, a slot per server, the store, fast probes; a first
# backup only for the servers that will move (the history the store carries across the move).
COMMON = {
    "BARMAN_SERVERS": ",".join(SERVERS),
    "BACKUP_ON_START": "false",
    **{f"BACKUP_ON_START__{name.upper()}": "true" for name in MOVING},
    "OFFSITE_INTERVAL": "5",
    "HEALTH_INTERVAL": "1",
    "SHUTDOWN_GRACE": "30",
    **{f"BARMAN_SLOT_NAME__{name.upper()}": f"slot_{name}" for name in SERVERS},
}


class Replicas:
    """The set: replica ``index`` runs in ``root/r<index>`` (its volume, kept across restarts)."""

    def __init__(self, root: Path, pg: Cluster, s3: S3) -> None:
        self.root = root
        self.pg = pg
        self.s3 = s3
        self.env = {**COMMON, **offsite_env(s3, root)}
        self.running: dict[int, Daemon] = {}
        self.runs = 0

    def start(self, index: int, count: int) -> Daemon:
        self.runs += 1
        workdir = self.root / f"r{index}"
        workdir.mkdir(exist_ok=True)
        daemon = Daemon(
            workdir,
            self.pg,
            output=f"run{self.runs}",
            SHARD_COUNT=str(count),
            POD_NAME=f"barman-{index}",
            **self.env,
        ).start()
        self.running[index] = daemon
        return daemon

    def stop(self, index: int) -> Daemon:
        daemon = self.running.pop(index)
        daemon.stop()
        return daemon

    def close(self) -> None:
        for index in list(self.running):
            self.stop(index)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("sharding")
    with ExitStack() as stack:
        s3 = stack.enter_context(s3_server(root))
        pg = stack.enter_context(cluster(max_wal_senders="40", max_replication_slots="20"))
        pg.init()
        replicas = Replicas(root, pg, s3)
        stack.callback(replicas.close)
        yield replicas


def owned(count: int, index: int) -> list[str]:
    return [name for name in SERVERS if owner(name, count) == index]


def wait_running(daemon: Daemon, servers: list[str]) -> None:
    for name in servers:
        daemon.wait_for("startup_step", START_TIMEOUT_S, server=name, step="running")


def lock_holders(pg: Cluster) -> dict[str, int]:
    """Per server, how many sessions hold its claim (advisory lock)."""
    rows = pg.sql(
        "SELECT (classid::bigint << 32 | objid::bigint)::text FROM pg_locks"
        " WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    ).split()
    keys = {advisory_lock_key(f"slot_{name}") & (2**64 - 1): name for name in SERVERS}
    held = [keys[int(text) & (2**64 - 1)] for text in rows if int(text) & (2**64 - 1) in keys]
    return {name: held.count(name) for name in SERVERS}


def active_slots(pg: Cluster) -> set[str]:
    names = pg.sql("SELECT slot_name FROM pg_replication_slots WHERE active").split()
    return {name.removeprefix("slot_") for name in names}


def store_backups(s3: S3, server: str) -> set[str]:
    return {key.split("/")[3] for key in s3.keys(f"{PREFIX}/{server}/base/")}


def store_segments(s3: S3, server: str) -> list[str]:
    names = {uncompressed_name(k.rsplit("/", 1)[1]) for k in s3.keys(f"{PREFIX}/{server}/wals/")}
    return sorted(name for name in names if len(name) == 24)


def gaps(segments: list[str]) -> list[str]:
    return [
        f"{a} -> {b}"
        for a, b in itertools.pairwise(segments)
        if segment_number(b, SEGMENT_SIZE) - segment_number(a, SEGMENT_SIZE) != 1
    ]


def complete_a_segment(pg: Cluster, servers: list[str]) -> None:
    """A WAL switch the old owner has received in full and confirmed to the slot, with no WAL
    after it: Barman holds that segment back in ``streaming/``, and only the shutdown's last
    round archives and copies it; the next owner starts after it (the slot's position)."""
    switched = pg.sql("SELECT pg_switch_wal()")
    slots = ",".join(f"'slot_{name}'" for name in servers)
    wait_until(
        lambda: (
            pg.sql(
                f"SELECT bool_and(restart_lsn > '{switched}') FROM pg_replication_slots"
                f" WHERE slot_name IN ({slots})"
            )
            == "t"
        ),
        HANDOVER_TIMEOUT_S,
        what=f"the segment ending after {switched} confirmed by {servers}",
    )


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["timestamp"]))


def status(daemon: Daemon) -> dict[str, Any]:
    code, document = daemon.probe.json("/status")
    assert code in (200, 503), code
    return dict(document)


def test_three_replicas_protect_every_server_exactly_once(replicas: Replicas) -> None:
    for index in range(3):
        replicas.start(index, 3)
    for index in range(3):
        wait_running(replicas.running[index], owned(3, index))
    assert sorted(name for i in range(3) for name in owned(3, i)) == sorted(SERVERS)
    for index, daemon in replicas.running.items():
        shard = status(daemon)["shard"]
        assert shard["index"] == index and shard["count"] == 3
        assert shard["owns"] == owned(3, index)
        assert set(shard["servers"]) == set(SERVERS)
        assert set(status(daemon)["servers"]) == set(owned(3, index))
    wait_until(lambda: active_slots(replicas.pg) == set(SERVERS), 60, what="every slot active")
    assert lock_holders(replicas.pg) == dict.fromkeys(SERVERS, 1)
    for name in MOVING:
        wait_until(
            lambda name=name: store_backups(replicas.s3, name),  # type: ignore[misc]
            HANDOVER_TIMEOUT_S,
            what=f"{name}'s first backup in the store",
        )


def test_going_to_four_moves_only_what_the_hash_moves_with_no_overlap_and_no_gap(
    replicas: Replicas,
) -> None:
    pg, s3 = replicas.pg, replicas.s3
    moving = MOVING
    before = {name: store_backups(s3, name) for name in moving}
    assert moving and all(new == 3 for _, new in moving.values()), moving
    new = replicas.start(3, 4)
    for name in moving:
        new.wait_for("claim_waiting", HANDOVER_TIMEOUT_S, server=name)
    claims = status(new)["servers"]
    for name in moving:
        old_shard = moving[name][0]
        assert claims[name]["phase"] == "handover"
        assert claims[name]["ready"], "a server another replica holds must not hold the rollout"
        assert not claims[name]["claim"]["held"]
        assert f"shard {old_shard} of 3" in claims[name]["claim"]["holder"]
    assert lock_holders(pg) == dict.fromkeys(SERVERS, 1)
    stopped_at: dict[int, datetime] = {}
    last_job: dict[str, datetime] = {}
    for index in (2, 1, 0):  # a StatefulSet rolls from the highest ordinal down
        leaving = [name for name, (old_shard, _) in moving.items() if old_shard == index]
        if leaving:
            complete_a_segment(pg, leaving)
        old = replicas.stop(index)
        stopped_at[index] = at(old.find("daemon_stopping")[-1])
        for name in leaving:
            last_job[name] = max(at(e) for e in old.find("job_finished", server=name))
        replicas.start(index, 4)
        wait_running(replicas.running[index], owned(4, index))
    wait_running(new, list(moving))
    handovers = {
        name: (at(new.find("claim_held", server=name)[-1]) - stopped_at[old]).total_seconds()
        for name, (old, _) in moving.items()
    }
    print(f"\nmoved {len(moving)} of {len(SERVERS)}: {moving}; handover seconds {handovers}")
    for name in moving:  # the old owner's last job on it (its last WAL round) came first
        first_job = min(
            at(e) for e in new.find("job_started", server=name) if e["job"] != "bootstrap"
        )
        assert last_job[name] <= at(new.find("claim_held", server=name)[-1]) <= first_job, name
    assert all(0 <= seconds < HANDOVER_TIMEOUT_S for seconds in handovers.values()), handovers
    for index in range(4):
        assert set(status(replicas.running[index])["servers"]) == set(owned(4, index))
    assert lock_holders(pg) == dict.fromkeys(SERVERS, 1)
    # The store's WAL of every server, moved or not, has no hole across the handover.
    segment = pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
    pg.sql("SELECT txid_current()")
    for name in SERVERS:
        wait_until(
            lambda name=name: segment in store_segments(s3, name),  # type: ignore[misc]
            HANDOVER_TIMEOUT_S,
            what=f"{segment} of {name} in the store",
        )
        assert gaps(store_segments(s3, name)) == [], (name, store_segments(s3, name))
    # The store is a moved server's history: its old owner's backup, restored from the store by
    # another replica (restore-offsite needs no catalogue), replays past the move.
    name = sorted(moving)[0]
    elsewhere = next(i for i in range(4) if i != owner(name, 4))
    assert_restored_past_the_move(replicas, name, sorted(before[name])[0], elsewhere)


def assert_restored_past_the_move(replicas: Replicas, name: str, backup: str, via: int) -> None:
    pg, s3 = replicas.pg, replicas.s3
    pg.sql("CREATE TABLE after_the_move AS SELECT 1 AS marker")
    segment = pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
    pg.sql("SELECT txid_current()")
    wait_until(
        lambda: segment in store_segments(s3, name),
        HANDOVER_TIMEOUT_S,
        what=f"{segment} of {name} in the store",
    )
    env = {**replicas.running[via].env, "BARMAN_HOME": str(replicas.root / f"fresh-{via}")}
    with restore_dir("bs-shard-restore-") as base:
        destination = base / "data"
        done = subprocess.run(
            [SUPERVISOR, "restore-offsite", name, str(destination), "--backup-id", backup],
            capture_output=True,
            text=True,
            timeout=RESTORE_TIMEOUT_S,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with started_copy(destination) as copy:
            wait_until(
                lambda: copy.sql("SELECT pg_is_in_recovery()") == "f",
                RESTORE_TIMEOUT_S,
                what="the copy replayed the store's WAL and opened",
            )
            assert copy.sql("SELECT marker FROM after_the_move") == "1"


def test_a_killed_replicas_servers_wait_for_it_and_nobody_else_takes_them(
    replicas: Replicas,
) -> None:
    victim = 3
    servers = owned(4, victim)
    daemon = replicas.running.pop(victim)
    daemon.signal(signal.SIGKILL)
    daemon.wait(30)
    others = [replicas.running[i] for i in range(3)]
    wait_until(
        lambda: all(
            count == 0 for name, count in lock_holders(replicas.pg).items() if name in servers
        ),
        30,
        what="the killed replica's claims released by PostgreSQL",
    )
    for other in others:
        listed = status(other)["shard"]["servers"]
        assert all(listed[name]["owner"] == victim and not listed[name]["mine"] for name in servers)
        assert not set(status(other)["servers"]) & set(servers)
    back = replicas.start(victim, 4)
    wait_running(back, servers)
    assert lock_holders(replicas.pg) == dict.fromkeys(SERVERS, 1)
    for name in servers:
        assert back.find("claim_held", server=name)[-1]["waited_s"] < HANDOVER_TIMEOUT_S
