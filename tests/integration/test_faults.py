"""Fault injection against real PostgreSQL and Barman: outages, kills, crashes, bad credentials,
a full disk. Each scenario waits with a deadline and prints the time it took to recover
(run with -s to see them)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.daemon import READY, Await, Daemon, running_daemon
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.processes import processes_using
from tests.support.restored import started_copy

pytestmark = pytest.mark.integration
# Seconds PostgreSQL stays down in the restart scenario: an outage, not a blink.
OUTAGE_S = 3
# Seconds PostgreSQL stays down while the writer writes on.
WRITE_OUTAGE_S = 2
# Seconds the writer waits before it tries again while PostgreSQL refuses it.
RETRY_PAUSE_S = 0.2


def _slot(pg: Cluster) -> tuple[bool, int | None]:
    row = pg.sql("SELECT active, coalesce(active_pid, 0) FROM pg_replication_slots")
    active, pid = row.split("|") if row else ("f", "0")
    return active == "t", int(pid) or None


def _streaming_pids(daemon: Daemon) -> tuple[list[int], list[int]]:
    ours = processes_using(str(daemon.workdir))
    receive = [p[0] for p in ours if "receive-wal" in p[3].split()]
    pg_receivewal = [p[0] for p in ours if "pg_receivewal" in p[3]]
    return receive, pg_receivewal


def _report(scenario: str, seconds: float) -> None:
    print(f"\nrecovery time: {scenario}: {seconds:.1f} s")


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[tuple[Cluster, Daemon]]:
    """A running, protected server whose cron runs only hourly: healing must not wait for it."""
    with cluster() as pg:
        pg.init()
        with running_daemon(
            tmp_path,
            pg,
            BARMAN_CRON_INTERVAL="3600",
            HEALTH_INTERVAL="1",
            BARMAN_CHECK_INTERVAL="5",
        ) as daemon:
            wait_until(lambda: _slot(pg)[0], timeout=60, what="streaming")
            yield pg, daemon


def test_postgres_restart_streaming_resumes_within_seconds(
    protected: tuple[Cluster, Daemon],
) -> None:
    pg, daemon = protected
    pg.stop()
    wait_until(lambda: not _streaming_pids(daemon)[0], timeout=30, what="receive-wal to exit")
    time.sleep(OUTAGE_S)  # the outage lasts this long: part of the fault, not a wait
    pg.start()
    back = time.monotonic()
    wait_until(lambda: _slot(pg)[0], timeout=45, what="streaming after PostgreSQL returned")
    _report("PostgreSQL restart -> streaming", time.monotonic() - back)
    assert daemon.find("streaming_restart", server="pg")


@pytest.mark.parametrize("victims", ["receive-wal", "receive-wal+pg_receivewal"])
def test_killed_streaming_comes_back_and_the_slot_is_not_left_busy(
    protected: tuple[Cluster, Daemon], victims: str
) -> None:
    pg, daemon = protected
    receive, pg_receivewal = _streaming_pids(daemon)
    _, old_walsender = _slot(pg)
    targets = receive + (pg_receivewal if "+" in victims else [])
    for pid in targets:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    def streaming_again() -> bool:
        active, walsender = _slot(pg)
        receivers = _streaming_pids(daemon)
        return (
            active
            and walsender != old_walsender
            and len(receivers[0]) == 1
            and len(receivers[1]) == 1
            and receivers[1][0] not in pg_receivewal
        )

    wait_until(streaming_again, timeout=60, what="a fresh receive-wal holding the slot")
    _report(f"SIGKILL {victims} -> streaming", time.monotonic() - killed)
    if "+" not in victims:
        assert daemon.find("orphan_pg_receivewal_stopped", server="pg")


def test_postgres_down_during_a_backup_then_the_next_backup_is_done(tmp_path: Path) -> None:
    with cluster() as pg:
        pg.init()
        pg.sql("CREATE TABLE bulk AS SELECT g, md5(g::text) h FROM generate_series(1, 200000) g")
        with running_daemon(
            tmp_path,
            pg,
            until=Await("backup_starting", 120, {"server": "pg"}),
            BACKUP_BANDWIDTH_LIMIT="500",
            BACKUP_SCHEDULE="* * * * *",
            HEALTH_INTERVAL="1",
            BARMAN_CHECK_INTERVAL="5",
        ) as daemon:
            wait_until(
                lambda: any("pg_basebackup" in p[3] for p in processes_using(str(tmp_path))),
                timeout=30,
                what="pg_basebackup",
            )
            pg.stop()
            daemon.wait_for("backup_finished", timeout=120, server="pg", ok=False)
            pg.start()
            back = time.monotonic()
            wait_until(lambda: _slot(pg)[0], timeout=60, what="streaming after the outage")
            _report("PostgreSQL down mid-backup -> streaming", time.monotonic() - back)
            daemon.wait_for("backup_finished", timeout=240, server="pg", ok=True)
            wait_until(
                lambda: [b["status"] for b in daemon.backups()] == ["DONE"],
                timeout=60,
                what="the superseded FAILED backup to be deleted",
            )
            assert daemon.find("failed_backup_deleted", server="pg")


def test_daemon_killed_mid_backup_then_restarted_ends_it_failed_and_backs_up(
    tmp_path: Path,
) -> None:
    with cluster() as pg:
        pg.init()
        pg.sql("CREATE TABLE bulk AS SELECT g, md5(g::text) h FROM generate_series(1, 200000) g")
        first = Daemon(tmp_path, pg, BACKUP_BANDWIDTH_LIMIT="500").start()
        try:
            first.wait_for("backup_starting", timeout=120, server="pg")
            wait_until(
                lambda: any("pg_basebackup" in p[3] for p in processes_using(str(tmp_path))),
                timeout=30,
                what="pg_basebackup",
            )
        finally:
            first.kill()
        assert processes_using(str(tmp_path)), "SIGKILL of the daemon left nothing to clean up"
        restarted = time.monotonic()
        with running_daemon(
            tmp_path, pg, until=Await("previous_run_leftovers", 60), output="second"
        ) as second:
            second.wait_for("backup_finished", timeout=180, server="pg", ok=True)
            _report("daemon SIGKILL mid-backup -> next backup DONE", time.monotonic() - restarted)
            statuses = [b["status"] for b in second.backups()]
            assert "DONE" in statuses and "STARTED" not in statuses
            assert statuses.count("FAILED") <= 1
        assert not processes_using(str(tmp_path))


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("wrong_password", "password authentication failed for user"),
        ("no_hba_replication", "no pg_hba.conf entry for replication connection"),
        ("missing_grant", "lacks EXECUTE on pg_backup_start(text, boolean) in database postgres"),
    ],
)
def test_the_event_names_the_real_cause(tmp_path: Path, fault: str, cause: str) -> None:
    with cluster() as pg:
        pg.init()
        env = {"PG_WAIT_TIMEOUT": "5"}
        if fault == "wrong_password":
            env["PG_PASSWORD"] = "not-the-password"
            env["PG_PASSWORD_FILE"] = ""
            env["PG_STREAMING_PASSWORD_FILE"] = ""
        elif fault == "no_hba_replication":
            hba = pg.datadir / "pg_hba.conf"
            hba.write_text(
                "\n".join(
                    line for line in hba.read_text().splitlines() if "replication" not in line
                )
                + "\n"
            )
            pg.reload()
        else:
            pg.sql("REVOKE EXECUTE ON FUNCTION pg_backup_start(text, boolean) FROM barman")
        daemon = Daemon(tmp_path, pg, **env)
        assert daemon.run() == 1
        (failed,) = daemon.find("startup_failed", server="pg")
        assert cause in failed["reason"]


def test_full_barman_volume_alerts_and_recovers(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160M", "tmpfs", str(volume)], check=True)
    try:
        with cluster() as pg:
            pg.init()
            with running_daemon(
                tmp_path,
                pg,
                BARMAN_HOME=str(volume / "barman"),
                DISK_MIN_FREE="48M",
                HEALTH_INTERVAL="1",
                ALERT_STREAMING_AFTER="0",
            ) as daemon:
                free = os.statvfs(volume).f_bavail * os.statvfs(volume).f_frsize
                ballast = volume / "ballast"
                ballast.write_bytes(b"\0" * max(0, free - 16 * 1048576))
                alert = daemon.wait_for("alert", timeout=60, server="pg", state="failing")
                assert any(p.startswith("disk:") for p in alert["problems"])
                ballast.unlink()
                freed = time.monotonic()
                daemon.wait_for("alert", timeout=60, server="pg", state="recovered")
                _report("disk freed -> ready", time.monotonic() - freed)
                assert daemon.process is not None and daemon.process.poll() is None
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)


class _Writer:
    """A client inserting into ``ledger`` one row at a time until stopped; it retries while
    PostgreSQL refuses it and remembers every id it saw committed."""

    def __init__(self, pg: Cluster) -> None:
        self.pg = pg
        self.committed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _write(self) -> None:
        next_id = 1
        while not self._stop.is_set():
            try:
                # A retried insert whose first try committed unseen is a no-op, not an error.
                self.pg.sql(f"INSERT INTO ledger (id) VALUES ({next_id}) ON CONFLICT DO NOTHING")
                self.committed.append(next_id)
                next_id += 1
            except subprocess.CalledProcessError:
                time.sleep(RETRY_PAUSE_S)  # paces the retries of a refused client; not a wait

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@contextmanager
def _writing(pg: Cluster) -> Iterator[_Writer]:
    writer = _Writer(pg)
    writer.start()
    try:
        yield writer
    finally:
        writer.stop()


def test_no_committed_transaction_is_lost(tmp_path: Path) -> None:
    """Writes go on through a PostgreSQL restart and a daemon restart; the restored copy has
    every transaction the client saw committed."""
    with cluster() as pg:
        pg.init()
        pg.sql("CREATE TABLE ledger (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        env = {"HEALTH_INTERVAL": "1", "BARMAN_CRON_INTERVAL": "5"}
        with running_daemon(tmp_path, pg, until=READY, **env) as first, _writing(pg) as writer:
            wait_until(lambda: len(writer.committed) > 50, timeout=60, what="writes")
            pg.stop()
            time.sleep(WRITE_OUTAGE_S)  # the outage lasts this long: part of the fault
            pg.start()
            wait_until(lambda: _slot(pg)[0], timeout=60, what="streaming after restart")
            first.signal(signal.SIGTERM)
            assert first.wait(120) == 0
            with running_daemon(tmp_path, pg, until=READY, output="second", **env) as daemon:
                wait_until(lambda: len(writer.committed) > 300, timeout=120, what="more writes")
                writer.stop()
                switched = daemon.barman_command(
                    "switch-wal", "--force", "--archive", "--archive-timeout", "60", "pg"
                )
                assert switched.returncode == 0, switched.stderr
                daemon.signal(signal.SIGTERM)
                assert daemon.wait(120) == 0
        pg.stop()
        restored = pg.base / "restored"
        result = daemon.barman_command("recover", "pg", "latest", str(restored))
        assert result.returncode == 0, result.stderr
        with started_copy(restored) as copy:
            ids = {int(x) for x in copy.sql("SELECT id FROM ledger").split()}
        missing = sorted(set(writer.committed) - ids)
        assert not missing, f"{len(missing)} committed transactions lost, first {missing[:5]}"
        print(f"\nno data lost: {len(writer.committed)} committed transactions all restored")


def test_a_dropped_slot_is_told_as_a_wal_gap_and_a_fresh_backup_is_taken(tmp_path: Path) -> None:
    """A DBA drops the slot and WAL moves on past a checkpoint: the server no longer has what
    Barman did not stream. The daemon says which segments are missing, resumes streaming
    (ALLOW_STREAMING_RESET) and takes a backup, so that a restorable point exists again."""
    with cluster() as pg:
        pg.init()
        with running_daemon(
            tmp_path,
            pg,
            HEALTH_INTERVAL="5",
            BARMAN_CRON_INTERVAL="3600",
            ALLOW_STREAMING_RESET="true",
        ) as daemon:
            wait_until(lambda: _slot(pg)[0], timeout=60, what="streaming")

            def dropped() -> bool:
                pg.sql(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE active_pid IS NOT NULL"
                )
                try:
                    pg.sql("SELECT pg_drop_replication_slot('barman')")
                except subprocess.CalledProcessError:
                    return False
                return True

            wait_until(dropped, timeout=30, interval=0.05, what="the slot dropped")
            pg.sql("CREATE TABLE moved_on (g int)")
            for _ in range(3):
                pg.sql(
                    "INSERT INTO moved_on SELECT generate_series(1, 1000); SELECT pg_switch_wal()"
                )
            pg.sql("CHECKPOINT")
            gap = daemon.wait_for("wal_gap_detected", timeout=120, server="pg")
            assert gap["first_missing"] <= gap["last_missing"]
            daemon.wait_for("backup_finished", timeout=240, server="pg", trigger="wal_gap", ok=True)


def _unfinish(daemon: Daemon, backup_id: str) -> None:
    """The ``backup.info`` Barman 3.20 leaves when the primary goes away as its backup stops
    (seen in the failover test's two switchovers in a row): WAITING_FOR_WALS, no end_wal."""
    info = daemon.home / "pg" / "meta" / f"{backup_id}-backup.info"
    lines = info.read_text().splitlines()
    kept = [line for line in lines if not line.startswith(("status=", "end_wal="))]
    info.write_text("\n".join([*kept, "status=WAITING_FOR_WALS"]) + "\n")


def test_a_backup_barman_left_without_its_end_is_failed_and_backups_go_on(
    tmp_path: Path,
) -> None:
    with cluster() as pg:
        pg.init()
        with running_daemon(tmp_path, pg, HEALTH_INTERVAL="1", BARMAN_CHECK_INTERVAL="5") as daemon:
            (first,) = daemon.backups()
        _unfinish(daemon, first["backup_id"])
        listed = daemon.barman_command("list-backups", "pg")
        assert listed.returncode != 0 and "'<=' not supported" in listed.stderr, listed
        with running_daemon(
            tmp_path, pg, output="second", HEALTH_INTERVAL="1", BARMAN_CHECK_INTERVAL="5"
        ) as second:
            marked = second.find("unfinished_backup_marked_failed", backup_id=first["backup_id"])
            assert marked, second.tail()
            # Its newest backup FAILED: a new one at start, then the failure it supersedes goes.
            wait_until(
                lambda: [b["status"] for b in second.backups()] == ["DONE"],
                timeout=120,
                what="one DONE backup, the unfinished one deleted",
            )
            wait_until(
                lambda: second.probe.get("/readyz")[0] == 200, timeout=60, what="/readyz 200"
            )
