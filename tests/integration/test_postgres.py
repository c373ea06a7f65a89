"""The daemon's own PostgreSQL connections, against a real server: the probe's kept connection
is one session, and it outlives a restart of PostgreSQL without a failed probe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from barman_supervisor.barman_config import write_pgpass
from barman_supervisor.postgres import Postgres
from barman_supervisor.settings import load_settings
from tests.integration.harness import Cluster, Daemon, cluster

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
