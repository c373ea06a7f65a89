"""The daemon against real PostgreSQL 15 and real Barman: from 'not up yet' to recoverable backups.

One daemon serves the tests of this module, in order: it is started before PostgreSQL, reaches it
by retrying, and runs with a one-minute backup schedule and a 2-second ``barman cron``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.support.daemon import Await, Daemon, running_daemon
from tests.support.paths import PG_BIN
from tests.support.poll import wait_until
from tests.support.postgres import BARMAN_PASSWORD, STREAMING_PASSWORD, Cluster, cluster
from tests.support.processes import process_table, processes_using
from tests.support.restored import restore_dir, started_copy

pytestmark = pytest.mark.integration
ROWS = 4321


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    with cluster() as server:
        server.init()
        server.sql(f"CREATE TABLE important AS SELECT g AS id FROM generate_series(1, {ROWS}) g")
        server.stop()
        yield server


@pytest.fixture(scope="module")
def daemon(pg: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(
        tmp_path_factory.mktemp("daemon"),
        pg,
        until=Await("retrying", 60, {"server": "pg"}),
        BARMAN_CRON_INTERVAL="2",
        BACKUP_SCHEDULE="* * * * *",
        BACKUP_IMMEDIATE_CHECKPOINT="true",
    ) as supervisor:
        pg.start()
        yield supervisor


def test_reaches_postgres_started_after_it_by_retrying(daemon: Daemon) -> None:
    retries = daemon.find("retrying", server="pg")
    assert retries, "the daemon never had to wait"
    assert retries[0]["attempt"] == 1 and retries[0]["host"] == "127.0.0.1"
    assert retries[0]["next_wait_s"] > 0
    reached = daemon.wait_for("postgres_reached", timeout=90, server="pg")
    assert reached["wal_level"] == "replica"


def test_startup_steps_run_in_order(daemon: Daemon) -> None:
    daemon.wait_for("startup_step", timeout=180, server="pg", step="running")
    steps = [e["step"] for e in daemon.find("startup_step", server="pg")]
    assert steps == [
        "waiting_for_postgres",
        "preflight",
        "replication_connection",
        "slot",
        "streaming",
        "first_wal",  # Barman refuses a first backup until WAL reached its archive
        "check",
        "first_backup",
        "running",
    ]
    assert daemon.find("job_finished", server="pg", job="bootstrap")[0]["ok"] is True
    assert daemon.find("slot_created", server="pg", slot="barman")
    assert daemon.find("first_wal_archived", server="pg")
    assert daemon.find("backup_finished", server="pg", trigger="first")[0]["ok"] is True


def test_slot_exists_and_wal_streams(daemon: Daemon, pg: Cluster) -> None:
    active = wait_until(
        lambda: pg.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'barman'") == "t",
        timeout=60,
        what="active slot",
    )
    assert active
    # Started through the links to the programs Debian's wrapper would run, not the wrapper.
    receivers = [p for p in processes_using(str(daemon.home)) if "pg_receivewal" in p[3]]
    assert receivers and all(
        p[3].startswith(str(daemon.home / ".clients" / "pg_receivewal")) for p in receivers
    )
    assert daemon.find("client_programs", dir=str(PG_BIN))
    pg.sql("CREATE TABLE streamed AS SELECT 1 AS x; SELECT pg_switch_wal()")
    wals = daemon.home / "pg" / "wals"
    assert wait_until(lambda: len(list(wals.glob("*/0*"))) >= 2, timeout=60, what="archived WAL")


def test_each_check_is_its_own_event(daemon: Daemon) -> None:
    checks = {e["check"]: e["ok"] for e in daemon.find("check_result", server="pg")}
    assert checks.get("postgresql") is True
    assert checks.get("replication_slot") is True
    assert len(checks) > 10


def test_first_backup_is_done_and_restores_the_rows(daemon: Daemon) -> None:
    backups = daemon.backups()
    assert backups and backups[-1]["status"] == "DONE"
    first = backups[-1]["backup_id"]
    with restore_dir("bs-recover-") as target:
        restored = target / "data"
        result = daemon.barman_command("recover", "pg", first, str(restored))
        assert result.returncode == 0, result.stderr
        with started_copy(restored) as copy:
            assert int(copy.sql("SELECT count(*) FROM important")) == ROWS


def test_every_minute_schedule_makes_a_second_backup(daemon: Daemon) -> None:
    done = wait_until(
        lambda: len([b for b in daemon.backups() if b["status"] == "DONE"]) >= 2,
        timeout=150,
        interval=2,
        what="a second DONE backup from the schedule",
    )
    assert done
    assert daemon.find("backup_starting", server="pg", trigger="schedule")
    daemon.wait_for("job_next_run", timeout=60, job_id="backup:pg")


def test_no_zombie_and_no_orphan_after_many_cron_cycles(daemon: Daemon) -> None:
    wait_until(
        lambda: len(daemon.find("job_finished", job="cron")) >= 15, timeout=120, what="15 cron runs"
    )
    table = process_table()
    zombies = [p for p in table if p[1] == daemon.pid and p[2] == "Z"]
    # Give a just-exited child one reaper round before calling it a leak.
    if zombies:
        wait_until(
            lambda: not [p for p in process_table() if p[1] == daemon.pid and p[2] == "Z"],
            timeout=10,
            what="zombies to be reaped",
        )
    ours = processes_using(str(daemon.workdir))
    orphans = [p for p in ours if p[1] == 1]
    assert not orphans, orphans
    assert any("receive-wal" in p[3] for p in ours)
    assert len([p for p in ours if "pg_receivewal" in p[3]]) == 1


def test_password_never_printed(daemon: Daemon) -> None:
    printed = daemon.stdout.read_text() + daemon.stderr.read_text()
    for secret in (BARMAN_PASSWORD, STREAMING_PASSWORD):
        assert secret not in printed
        assert not [p for p in process_table() if secret in p[3]], "a password is on a command line"
    for path in (daemon.config_file, *daemon.config_file.parent.glob("barman.d/*.conf")):
        assert BARMAN_PASSWORD not in path.read_text()
    assert (daemon.home / ".pgpass").stat().st_mode & 0o777 == 0o600


def test_sigterm_stops_cleanly_and_leaves_nothing(daemon: Daemon, pg: Cluster) -> None:
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(120) == 0
    assert not processes_using(str(daemon.workdir))
    assert pg.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'barman'") == "f"
    assert daemon.find("daemon_stopped")
