"""The daemon's own PostgreSQL connections, against a real server: the probe's kept connection
is one session, it outlives a restart of PostgreSQL without a failed probe, and the identity it
reads is the one a replication connection reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from barman_supervisor.barman.config_files import write_pgpass
from barman_supervisor.config import load_settings
from barman_supervisor.postgres.connection import Postgres
from tests.support.daemon import Daemon
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster

SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barman_supervisor'"


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    with cluster() as running:
        yield running.init()


@pytest.fixture
def postgres(pg: Cluster, tmp_path: Path) -> Iterator[Postgres]:
    settings = load_settings(Daemon(tmp_path, pg).env)
    write_pgpass(settings)
    connection = Postgres(settings.servers[0], settings.pgpass_file, settings.pg_connect_timeout)
    try:
        yield connection
    finally:
        connection.close()


def test_probes_share_one_session(pg: Cluster, postgres: Postgres) -> None:
    for _ in range(5):
        assert not postgres.slot("no_such_slot").exists
    postgres.create_restore_point("test")
    assert pg.sql(SESSIONS) == "1"
    postgres.close()
    assert pg.sql(SESSIONS) == "0"


def test_a_restart_of_postgres_costs_no_failed_probe(pg: Cluster, postgres: Postgres) -> None:
    postgres.slot("no_such_slot")
    pg.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            postgres.slot("no_such_slot")
    finally:
        pg.start()
    assert not postgres.slot("no_such_slot").exists
    pg.stop()
    pg.start()
    # The kept session died with the old postmaster: the probe reconnects instead of failing.
    assert not postgres.slot("no_such_slot").exists
    assert pg.sql(SESSIONS) == "1"


def test_the_minutely_identity_is_what_streaming_sees_over_the_kept_session(
    pg: Cluster, postgres: Postgres
) -> None:
    assert postgres.identity() == postgres.identify()
    postgres.identity()
    assert pg.sql(SESSIONS) == "1"


def test_a_promotion_shows_at_once_and_a_standby_is_asked_over_replication(
    pg: Cluster, postgres: Postgres
) -> None:
    before = postgres.identity()
    pg.start_as_standby()
    assert postgres.identity() == before
    pg.sql("SELECT pg_promote(true, 60)")
    wait_until(lambda: pg.sql("SELECT pg_is_in_recovery()") == "f", timeout=60, what="promoted")
    # No checkpoint has run on the new timeline yet; the WAL being written is on it already.
    after = postgres.identity()
    assert (after.system_id, after.timeline) == (before.system_id, before.timeline + 1)
    assert after == postgres.identify()
