"""Failover and switchover of an HA pair followed with no person (issue 23), against a real
primary, a real streaming standby (``tests/support/ha``), a real daemon and real Barman.

Two stories, each one pair and one daemon shared by the tests of its class, which run in order:

- ``TestSynchronousPair``: both nodes in a multi-host ``PG_HOST``, synchronous replication. The
  standby is promoted after it replayed everything; then the old primary is rewound
  (``pg_rewind``), rejoined and switched back to; then two failovers in a row, the second
  before the daemon followed the first.
- ``TestAsynchronousPairBehindAVip``: one address, a TCP forwarder playing the VIP, asynchronous
  replication. The standby is promoted while behind, with rows committed only on the old primary
  and their WAL in Barman's home; then a different cluster answers behind the same address.

After each failover the newest point is restored (``barman-supervisor restore`` with no target,
as a person runs it) and compared row by row with the primary of the day.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from barman_supervisor.barman.home import BarmanHome
from tests.support.daemon import Daemon, running_daemon
from tests.support.forwarder import Forwarder, forwarder
from tests.support.ha import HaPair, ha_pair
from tests.support.paths import SUPERVISOR
from tests.support.poll import TimedOut, wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.protected import FIRST_BACKUP
from tests.support.restored import restore_dir, started_copy
from tests.support.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.integration

SERVER = "pg"
FAILOVER_ALERT = "failover_followed"
# Seconds the daemon gets to be protected again after a promotion (a new full backup included):
# bounds a daemon that never follows; the bench measures how fast it does.
FOLLOW_TIMEOUT_S = 120
# Seconds for a WAL segment to reach Barman's wals/ (streamed, then archive-wal at each cron).
ARCHIVE_TIMEOUT_S = 60
RESTORE_TIMEOUT_S = 300
WAL_NAME = re.compile(r"^[0-9A-F]{24}")
# Quick rounds: cron and health every second or two, backups without a spread checkpoint.
QUICK = {
    "BARMAN_CRON_INTERVAL": "2",
    "HEALTH_INTERVAL": "1",
    "BACKUP_IMMEDIATE_CHECKPOINT": "true",
}


# --- what the tests read and do -------------------------------------------------------------


def server_status(daemon: Daemon) -> dict[str, Any]:
    code, document = daemon.probe.json("/status")
    assert code == 200, document
    return dict(document["servers"][SERVER])


def followed(daemon: Daemon, timeline: int, port: int) -> dict[str, Any]:
    """Until ``/readyz`` is 200 with the server on ``timeline`` and ``port`` answering as its
    primary: its ``/status``. A timeout names what was seen last."""
    seen: dict[str, Any] = {}

    def ready() -> dict[str, Any] | None:
        code = daemon.probe.get("/readyz")[0]
        status = server_status(daemon)
        postgres = status["postgres"]
        primary = postgres.get("primary") or {}
        seen.update(
            readyz=code,
            timeline=postgres.get("timeline"),
            primary=primary,
            problems=status.get("problems"),
        )
        on_timeline = postgres.get("timeline") == timeline
        return status if code == 200 and on_timeline and primary.get("port") == port else None

    try:
        return wait_until(
            ready, FOLLOW_TIMEOUT_S, what=f"/readyz 200 on timeline {timeline}, primary {port}"
        )
    except TimedOut as exc:
        raise TimedOut(f"{exc}; last seen {seen}; daemon: {daemon.tail(5)}") from None


def failover_alerts(webhook: WebhookReceiver) -> list[dict[str, Any]]:
    return [body for body in webhook.received if FAILOVER_ALERT in (body or {}).values()]


def backup_timelines(daemon: Daemon) -> list[int]:
    """The timelines of the DONE backups, oldest first."""
    timelines = []
    for backup in daemon.backups():
        if backup["status"] != "DONE":
            continue
        info = BarmanHome(daemon.home).backup_info(SERVER, backup["backup_id"])
        timeline = info.get("timeline")
        timelines.append(int(timeline or 0))
    return timelines


def commit(pg: Cluster, tag: str, rows: int) -> None:
    pg.sql(f"INSERT INTO t (tag) SELECT '{tag}' FROM generate_series(1, {rows})")


def contents(pg: Cluster) -> tuple[int, str]:
    """Rows of ``t`` and a digest of all of them: two clusters hold the same rows or not."""
    return (
        int(pg.sql("SELECT count(*) FROM t")),
        pg.sql("SELECT md5(coalesce(string_agg(id || ':' || tag, ',' ORDER BY id), '')) FROM t"),
    )


def archived(daemon: Daemon, pg: Cluster) -> str:
    """Close the primary's WAL segment and wait until Barman archived it: its name."""
    segment = pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
    # a restore point right after the switch completes it at once on an idle primary
    pg.sql("SELECT pg_create_restore_point('failover-test')")
    path = daemon.home / SERVER / "wals" / segment[:16] / segment
    wait_until(path.exists, ARCHIVE_TIMEOUT_S, what=f"WAL {segment} archived")
    return segment


def restored_contents(daemon: Daemon, primary: Cluster, *backup_id: str) -> tuple[int, str]:
    """The newest point restored with ``barman-supervisor restore`` (no target: everything
    Barman has, once the primary's current segment is archived), from the newest backup or
    ``--backup-id``, and started: its ``t``."""
    archived(daemon, primary)
    chosen = ["--backup-id", *backup_id] if backup_id else []
    with restore_dir("bs-failover-") as base:
        done = subprocess.run(
            [SUPERVISOR, "restore", SERVER, str(base / "data"), *chosen],
            capture_output=True,
            text=True,
            timeout=RESTORE_TIMEOUT_S,
            env=daemon.env,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with started_copy(base / "data") as copy:
            wait_until(
                lambda: copy.sql("SELECT pg_is_in_recovery()") == "f",
                RESTORE_TIMEOUT_S,
                what="the restored copy open",
            )
            return contents(copy)


def wal_files(home: Path) -> dict[str, str]:
    """Every WAL file under Barman's home (archived, streamed, set aside): path -> digest of a
    completed segment, "" for a ``.partial`` (it may still grow)."""
    return {
        str(path.relative_to(home)): ""
        if path.name.endswith(".partial")
        else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in home.rglob("*")
        if path.is_file() and WAL_NAME.match(path.name)
    }


def missing_wal(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The WAL files of ``before`` found nowhere in ``after`` (by name and content, wherever
    they moved: a file set aside keeps its name, maybe with a suffix; a ``.partial`` may have
    grown or been completed)."""
    present = {(Path(path).name[:24], digest) for path, digest in after.items()}
    names = {name for name, _digest in present}
    return [
        path
        for path, digest in before.items()
        if (Path(path).name[:24], digest) not in present
        and not (digest == "" and Path(path).name[:24] in names)
    ]


def history_switch_point(pg: Cluster, timeline: int) -> str:
    """Where ``timeline`` forked from its parent, as its ``.history`` file says."""
    text = pg.sql(f"SELECT pg_read_file('pg_wal/{timeline:08X}.history')")
    return text.strip().splitlines()[-1].split()[1]


def lsn_value(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class Story:
    """One pair, its daemon and what the tests of a class share."""

    pair: HaPair
    daemon: Daemon
    webhook: WebhookReceiver
    first_backup: str  # taken on timeline 1, before any failover
    vip: Forwarder | None = None


def first_backup_id(daemon: Daemon) -> str:
    (backup,) = daemon.backups()
    return str(backup["backup_id"])


# --- story 1: synchronous, multi-host PG_HOST -----------------------------------------------


@pytest.fixture(scope="class")
def sync_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    with ha_pair(synchronous=True) as pair, webhook_receiver() as webhook:
        first, second = pair.primary, pair.standby
        assert second is not None
        first.sql("CREATE TABLE t (id bigserial PRIMARY KEY, tag text)")
        commit(first, "before the first backup", 100)
        with running_daemon(
            tmp_path_factory.mktemp("failover-sync"),
            first,
            until=FIRST_BACKUP,
            PG_HOST="127.0.0.1,127.0.0.1",
            PG_PORT=f"{first.port},{second.port}",
            ALERT_WEBHOOK_URL=webhook.url,
            **QUICK,
        ) as daemon:
            yield Story(pair, daemon, webhook, first_backup_id(daemon))


class TestSynchronousPair:
    def test_a_promotion_after_a_full_replay_is_followed_with_no_person(
        self, sync_story: Story
    ) -> None:
        pair, daemon, webhook = sync_story.pair, sync_story.daemon, sync_story.webhook
        old = pair.primary
        followed(daemon, 1, old.port)
        commit(old, "timeline 1, after the backup", 50)
        pair.wait_replayed()
        new = pair.promote()
        commit(new, "timeline 2", 30)

        status = followed(daemon, 2, new.port)
        failover = status["failover"]
        assert (failover["from_timeline"], failover["to_timeline"]) == (1, 2), failover
        assert lsn_value(failover["fork_lsn"]) == lsn_value(history_switch_point(new, 2))
        assert failover["old_timeline_only"] is None, failover  # nothing lost
        assert failover["primary"]["port"] == new.port
        alerts = failover_alerts(webhook)
        assert len(alerts) == 1, webhook.received
        assert "timeline 1 → 2" in str(alerts[0]), alerts
        assert status["streaming"]["receive_wal_running"] is True
        wait_until(
            lambda: 2 in backup_timelines(daemon),
            FOLLOW_TIMEOUT_S,
            what="a full backup on timeline 2",
        )
        commit(new, "timeline 2, after its backup", 20)
        expected = contents(new)
        assert expected[0] == 200  # every row of both timelines
        # from the backup of timeline 1: its WAL, then timeline 2's from the fork on
        assert restored_contents(daemon, new, sync_story.first_backup) == expected

    def test_a_switchover_back_to_the_rewound_old_primary_is_followed(
        self, sync_story: Story
    ) -> None:
        pair, daemon, webhook = sync_story.pair, sync_story.daemon, sync_story.webhook
        back = pair.rejoin()  # pg_rewind, then streaming from the new primary
        pair.set_synchronous(True)
        commit(pair.primary, "timeline 2, standby rejoined", 10)
        assert pair.switchover() is back
        commit(back, "timeline 3", 10)

        status = followed(daemon, 3, back.port)
        assert (status["failover"]["from_timeline"], status["failover"]["to_timeline"]) == (2, 3)
        assert len(failover_alerts(webhook)) == 2, webhook.received

    def test_two_failovers_in_a_row_are_followed(self, sync_story: Story) -> None:
        pair, daemon = sync_story.pair, sync_story.daemon
        pair.set_synchronous(True)
        first = pair.switchover()  # timeline 4
        commit(first, "timeline 4", 10)
        pair.set_synchronous(True)
        second = pair.switchover()  # timeline 5, before the daemon need have followed 4
        commit(second, "timeline 5", 10)

        status = followed(daemon, 5, second.port)
        assert status["failover"]["to_timeline"] == 5
        wait_until(
            lambda: 5 in backup_timelines(daemon),
            FOLLOW_TIMEOUT_S,
            what="a full backup on timeline 5",
        )
        expected = contents(second)
        assert expected[0] == 240
        assert restored_contents(daemon, second) == expected


# --- story 2: asynchronous, one address (the VIP) -------------------------------------------


@pytest.fixture(scope="class")
def async_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    with ha_pair(synchronous=False) as pair, webhook_receiver() as webhook:
        first = pair.primary
        first.sql("CREATE TABLE t (id bigserial PRIMARY KEY, tag text)")
        commit(first, "before the first backup", 100)
        with (
            forwarder(first.port) as vip,
            running_daemon(
                tmp_path_factory.mktemp("failover-async"),
                first,
                until=FIRST_BACKUP,
                PG_PORT=str(vip.port),
                ALERT_WEBHOOK_URL=webhook.url,
                **QUICK,
            ) as daemon,
        ):
            yield Story(pair, daemon, webhook, first_backup_id(daemon), vip)


class TestAsynchronousPairBehindAVip:
    def test_rows_lost_with_the_old_primary_are_reported_and_their_wal_kept(
        self, async_story: Story
    ) -> None:
        pair, daemon, webhook, vip = (
            async_story.pair,
            async_story.daemon,
            async_story.webhook,
            async_story.vip,
        )
        assert vip is not None
        old = pair.primary
        followed(daemon, 1, vip.port)
        commit(old, "replicated", 50)
        pair.wait_replayed()
        pair.cut_standby()
        commit(old, "lost", 7)  # only on the old primary, and streamed to Barman
        lost_end = old.sql("SELECT pg_current_wal_lsn()")
        lost_segment = archived(daemon, old)
        # the old primary crashes, its standby (behind) is promoted, then the VIP moves
        new = pair.promote("immediate")
        before = wal_files(daemon.home)
        assert any(lost_segment in path for path in before), before
        vip.retarget(new.port)
        commit(new, "timeline 2", 30)

        status = followed(daemon, 2, vip.port)
        lost = status["failover"]["old_timeline_only"]
        assert lost is not None, status["failover"]
        fork = lsn_value(history_switch_point(new, 2))
        assert lsn_value(lost["start_lsn"]) == lsn_value(status["failover"]["fork_lsn"]) == fork
        assert lsn_value(lost["end_lsn"]) >= lsn_value(lost_end), (lost, lost_end)
        assert lost["kept_in"], lost  # where that WAL was set aside (or left)
        alerts = failover_alerts(webhook)
        assert len(alerts) == 1, webhook.received
        assert lost["start_lsn"] in str(alerts[0]) and lost["end_lsn"] in str(alerts[0])
        assert missing_wal(before, wal_files(daemon.home)) == []
        # the newest point is the new primary's: the lost rows are not in it
        wait_until(
            lambda: 2 in backup_timelines(daemon),
            FOLLOW_TIMEOUT_S,
            what="a full backup on timeline 2",
        )
        expected = contents(new)
        assert expected[0] == 180  # 100 + 50 replicated + 30 on timeline 2, not the 7 lost
        assert restored_contents(daemon, new) == expected
        # from the backup of timeline 1 too: the old timeline's WAL past the fork is not replayed
        assert restored_contents(daemon, new, async_story.first_backup) == expected

    def test_a_different_cluster_behind_the_same_address_is_refused(
        self, async_story: Story
    ) -> None:
        pair, daemon, vip = async_story.pair, async_story.daemon, async_story.vip
        assert vip is not None
        backups = len(daemon.backups())
        with cluster() as other:
            other.init()
            vip.retarget(other.port)
            refusal = daemon.wait_for("identity_changed", FOLLOW_TIMEOUT_S, kind="system_id")
            assert "system identifier changed" in refusal["reason"]
            wait_until(
                lambda: "failover" in daemon.probe.problems(),
                FOLLOW_TIMEOUT_S,
                what="/readyz naming the changed cluster",
            )
            assert daemon.probe.get("/readyz")[0] == 503
            # nothing of the other cluster: no slot made there, no backup of it
            assert other.sql("SELECT count(*) FROM pg_replication_slots") == "0"
            assert len(daemon.backups()) == backups
            vip.retarget(pair.primary.port)
        # the right cluster back behind the address: the refusal is lifted by itself
        wait_until(
            lambda: daemon.probe.get("/readyz")[0] == 200,
            FOLLOW_TIMEOUT_S,
            what="/readyz 200 with the pair's primary back",
        )
