"""A backup that fails verification has consequences, against real PostgreSQL 15 and Barman:
its verdict is kept beside it (``/status`` says so, also after a restart), ``restore`` and the
drill pass over it, a restore that names it is refused, retention with ``REDUNDANCY 1`` keeps
the good backup before it, and one alert is sent.

The bad backup is taken by hand (``barman backup``) while a first daemon runs, so that no daemon
verifies it before one of its data files is damaged; the next daemon finds it unverified and
verifies it.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from barman_supervisor.barman.commands import Barman
from barman_supervisor.barman.verdicts import VERDICT_FILE
from barman_supervisor.cli import EXIT_BAD_INPUT
from barman_supervisor.config import load_settings
from barman_supervisor.drill import DrillConfig, run_drill
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from tests.support.daemon import READY, Daemon, running_daemon
from tests.support.paths import SUPERVISOR
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.protected import FIRST_BACKUP, RESTORE_TIMEOUT_S
from tests.support.restored import restore_dir, started_copy
from tests.support.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.integration
ROWS = 3000
LATER_ROWS = 400
# Seconds for events of a start-up, a backup and a verification on this machine.
STEP_TIMEOUT_S = 180
# Barman cron runs this many times after the bad backup, each applying REDUNDANCY 1.
RETENTION_RUNS = 3
# Bytes overwritten in the middle of the damaged file (a checksum mismatch, same size).
DAMAGE = b"\xde\xad\xbe\xef" * 64


@dataclass
class Scene:
    pg: Cluster
    hook: WebhookReceiver
    workdir: Path
    env: dict[str, str]
    good: str
    bad: str
    relation: str


def verification(daemon: Daemon) -> dict[str, Any]:
    code, document = daemon.probe.json("/status")
    assert code == 200, document
    return dict(document["servers"]["pg"]["backups"]["verification"])


def unusable_alerts(hook: WebhookReceiver) -> list[dict[str, Any]]:
    return [body for body in hook.received if body.get("state") == "backup_unusable"]


def damage(datafile: Path) -> None:
    """Same size, other bytes, as a new file (a hard link to another backup stays intact)."""
    content = bytearray(datafile.read_bytes())
    middle = len(content) // 2
    content[middle : middle + len(DAMAGE)] = DAMAGE
    replacement = datafile.with_name(datafile.name + ".damaged")
    replacement.write_bytes(bytes(content))
    replacement.replace(datafile)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """A good backup verified and held, a second one taken by hand and damaged while no daemon
    ran, then verified (and rejected) by a second daemon."""
    workdir = tmp_path_factory.mktemp("verdicts")
    with webhook_receiver() as hook, cluster() as pg:
        pg.init()
        pg.sql(f"CREATE TABLE important AS SELECT g AS id FROM generate_series(1, {ROWS}) g")
        env = {
            "BARMAN_CRON_INTERVAL": "2",
            "BACKUP_IMMEDIATE_CHECKPOINT": "true",
            "RETENTION_POLICY": "REDUNDANCY 1",
            # No scheduled check (each verifies one unverified backup) while the test runs.
            "BARMAN_CHECK_INTERVAL": "86400",
            "ALERT_WEBHOOK_URL": hook.url,
        }
        with running_daemon(workdir, pg, until=FIRST_BACKUP, output="first", **env) as first:
            good = first.wait_for("backup_verdict", STEP_TIMEOUT_S, verdict="verified")
            first.wait_for("verified_hold", STEP_TIMEOUT_S, backup_id=good["backup_id"])
            taken = first.barman_command(
                "backup", "pg", "--immediate-checkpoint", "--wait", "--wait-timeout", "120"
            )
            assert taken.returncode == 0, taken.stdout + taken.stderr
            done = [b["backup_id"] for b in first.backups() if b["status"] == "DONE"]
            assert len(done) == 2 and good["backup_id"] in done, done
        bad = next(backup_id for backup_id in done if backup_id != good["backup_id"])
        relation = pg.sql("SELECT pg_relation_filepath('important')")
        damage(workdir / "barman" / "pg" / "base" / bad / "data" / relation)
        with running_daemon(workdir, pg, until=READY, output="second", **env) as second:
            second.wait_for("backup_verdict", STEP_TIMEOUT_S, backup_id=bad, verdict="failed")
            wait_until(lambda: unusable_alerts(hook), 30, what="the backup_unusable alert")
        yield Scene(pg, hook, workdir, env, good["backup_id"], bad, relation)


@pytest.fixture(scope="module")
def restarted(scene: Scene) -> Iterator[Daemon]:
    """A third daemon on the same files: what it knows of the verdicts it read from disk."""
    with running_daemon(
        scene.workdir, scene.pg, until=READY, output="third", **scene.env
    ) as daemon:
        yield daemon


def test_the_damaged_backup_is_failed_on_status_and_the_good_one_verified_and_held(
    scene: Scene, restarted: Daemon
) -> None:
    shown = verification(restarted)
    assert shown[scene.bad]["verdict"] == "failed"
    assert shown[scene.bad]["by"] == "verification"
    assert scene.relation in shown[scene.bad]["reason"]
    assert shown[scene.good]["verdict"] == "verified" and shown[scene.good]["held"] is True


def test_after_a_restart_the_verdict_is_read_not_checked_again(
    scene: Scene, restarted: Daemon
) -> None:
    # READY comes after the start-up's check, which is where an unverified backup is verified
    assert restarted.find("job_finished", job="check", server="pg")
    assert restarted.find("pending_backup_verifying") == []
    assert restarted.find("backup_verdict") == []


def test_one_alert_names_the_bad_backup_and_why(scene: Scene, restarted: Daemon) -> None:
    alerts = unusable_alerts(scene.hook)
    assert len(alerts) == 1, alerts
    assert alerts[0]["backup_id"] == scene.bad and alerts[0]["server"] == "pg"
    assert alerts[0]["problems"][0]["condition"] == "verification"
    assert scene.relation in alerts[0]["summary"]


def test_retention_with_redundancy_1_keeps_the_good_backup(scene: Scene, restarted: Daemon) -> None:
    seen = len(restarted.find("job_finished", job="cron"))
    wait_until(
        lambda: len(restarted.find("job_finished", job="cron")) >= seen + RETENTION_RUNS,
        60,
        what=f"{RETENTION_RUNS} more barman cron runs (retention)",
    )
    listed = {b["backup_id"]: b for b in restarted.backups()}
    assert {scene.good, scene.bad} <= set(listed)
    # REDUNDANCY 1 makes the newer (bad) backup the one VALID one (list-backups prints VALID as
    # "-"); only the keep saves the good one from OBSOLETE, which cron deletes
    assert listed[scene.bad]["retention_status"] == "-"
    assert listed[scene.good]["retention_status"] == "KEEP:FULL"
    kept = restarted.barman_command("keep", "--status", "pg", scene.good)
    assert kept.returncode == 0 and "full" in kept.stdout, kept.stdout + kept.stderr


def test_restore_passes_over_the_bad_backup_and_holds_every_row(
    scene: Scene, restarted: Daemon
) -> None:
    scene.pg.sql(f"INSERT INTO important SELECT g FROM generate_series(1, {LATER_ROWS}) g")
    segment = scene.pg.sql("SELECT pg_walfile_name(pg_switch_wal())")
    archived = restarted.home / "pg" / "wals" / segment[:16] / segment
    wait_until(archived.exists, 60, what=f"WAL {segment} archived")
    with restore_dir() as base:
        done = subprocess.run(
            [SUPERVISOR, "restore", "pg", str(base / "data")],
            capture_output=True,
            text=True,
            timeout=RESTORE_TIMEOUT_S,
            env=restarted.env,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"backup       {scene.good} " in done.stdout
        with started_copy(base / "data") as copy:
            assert copy.sql("SELECT count(*) FROM important") == str(ROWS + LATER_ROWS)


def test_a_restore_naming_the_bad_backup_is_refused_in_one_line(
    scene: Scene, restarted: Daemon
) -> None:
    with restore_dir() as base:
        done = subprocess.run(
            [SUPERVISOR, "restore", "pg", str(base / "data"), "--backup-id", scene.bad],
            capture_output=True,
            text=True,
            timeout=RESTORE_TIMEOUT_S,
            env=restarted.env,
            check=False,
        )
        assert done.returncode == EXIT_BAD_INPUT
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"backup {scene.bad} failed verification" in lines[0]
        assert "--allow-unverified" in lines[0]
        assert not (base / "data").exists()


def test_the_drill_skips_the_bad_backup(scene: Scene, restarted: Daemon) -> None:
    settings = load_settings(restarted.env)
    server = settings.servers[0]
    runner = Runner(Pid1(), settings.child_env)
    with restore_dir("bs-drill-") as scratch:
        result = run_drill(
            settings,
            server,
            Barman(settings, runner),
            runner,
            replace(DrillConfig.from_settings(settings, server), scratch_root=scratch),
            threading.Event(),
        )
    assert result.ok, result.reason
    assert result.backup_id == scene.good


def test_barman_tolerates_the_verdict_file_and_deletes_it_with_its_backup(
    scene: Scene, restarted: Daemon
) -> None:
    """Last: it deletes the bad backup. Barman finds backups by their backup.info, so the file
    beside ``data/`` is no backup to it; ``barman delete`` removes the directory whole."""
    directory = restarted.home / "pg" / "base" / scene.bad
    assert (directory / VERDICT_FILE).is_file()
    checked = restarted.barman_command("check-backup", "pg", scene.bad)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    deleted = restarted.barman_command("delete", "pg", scene.bad)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert not directory.exists()
    assert scene.bad not in {b["backup_id"] for b in restarted.backups()}
    wait_until(
        lambda: scene.bad not in verification(restarted),
        60,
        what="the deleted backup gone from /status",
    )
