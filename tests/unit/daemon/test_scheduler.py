"""The recurring jobs and the job defaults a backup daemon needs."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from barman_supervisor.barman.commands import Barman
from barman_supervisor.config import Settings, load_settings
from barman_supervisor.daemon.scheduler import JOB_DEFAULTS, global_jobs, server_jobs
from barman_supervisor.jobs import Jobs
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from barman_supervisor.status.state import State

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=BERLIN)  # a Wednesday


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    return load_settings(
        {
            **environ,
            "TZ": "Europe/Berlin",
            "BARMAN_SERVERS": "pg,reports",
            "BACKUP_SCHEDULE__REPORTS": "30 1 * * 7",
            "BARMAN_CRON_INTERVAL": "30",
            "BARMAN_CHECK_INTERVAL": "600",
        }
    )


@pytest.fixture
def jobs(settings: Settings) -> Jobs:
    runner = Runner(Pid1(), settings.child_env)
    return Jobs(
        settings,
        Barman(settings, runner),
        runner,
        State([server.name for server in settings.servers]),
        threading.Event(),
        on_fatal=lambda _server, _reason: None,
        on_ready=lambda _server: None,
        on_backup_owed=lambda _server: None,
    )


def test_job_defaults() -> None:
    assert JOB_DEFAULTS == {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


def test_server_jobs(settings: Settings, jobs: Jobs) -> None:
    reports = settings.server("reports")

    backup, check = server_jobs(reports, settings, jobs, NOW)

    assert (backup.job_id, backup.func, backup.args) == ("backup:reports", jobs.backup, (reports,))
    first_backup = backup.trigger.get_next_fire_time(None, NOW)
    assert first_backup == datetime(2026, 11, 22, 1, 30, tzinfo=BERLIN)
    assert backup.first_run is None
    assert (check.job_id, check.func, check.args) == ("check:reports", jobs.check, (reports,))
    assert isinstance(check.trigger, IntervalTrigger)
    assert check.trigger.interval == timedelta(seconds=600)
    assert check.first_run == NOW + timedelta(seconds=600)


def test_global_jobs(settings: Settings, jobs: Jobs) -> None:
    cron, *_monitors = global_jobs(settings, jobs, NOW)

    assert (cron.job_id, cron.func, cron.args) == ("cron", jobs.cron, ())
    assert isinstance(cron.trigger, IntervalTrigger)
    assert cron.trigger.interval == timedelta(seconds=30)
    assert cron.first_run == NOW + timedelta(seconds=30)
    assert not cron.quiet


def test_every_server_is_monitored_quietly_from_the_start(settings: Settings, jobs: Jobs) -> None:
    _cron, *rest = global_jobs(settings, jobs, NOW)
    monitors = [spec for spec in rest if spec.job_id.startswith("monitor:")]

    assert [m.job_id for m in monitors] == [f"monitor:{s.name}" for s in settings.servers]
    assert all(m.quiet and m.first_run == NOW and m.func == jobs.monitor for m in monitors)


def test_offsite_copies_only_for_servers_with_a_store(environ: dict[str, str]) -> None:
    settings = load_settings(
        {
            **environ,
            "BARMAN_SERVERS": "pg,reports",
            "OFFSITE_URL__REPORTS": "s3://bucket/reports",
            "OFFSITE_INTERVAL": "45",
        }
    )
    runner = Runner(Pid1(), settings.child_env)
    barman = Barman(settings, runner)
    state = State([server.name for server in settings.servers])
    jobs = Jobs(
        settings,
        barman,
        runner,
        state,
        threading.Event(),
        on_fatal=lambda _server, _reason: None,
        on_ready=lambda _server: None,
        on_backup_owed=lambda _server: None,
    )
    reports = settings.server("reports")
    specs = {spec.job_id: spec for spec in server_jobs(reports, settings, jobs, NOW)}
    backups, wal = specs["offsite-backup:reports"], specs["offsite-wal:reports"]
    assert (backups.func, backups.args, backups.first_run) == (
        jobs.offsite_backups,
        (reports,),
        NOW,
    )
    assert (wal.func, wal.args, wal.first_run) == (jobs.offsite_wal, (reports,), NOW)
    assert isinstance(wal.trigger, IntervalTrigger)
    assert wal.trigger.interval == timedelta(seconds=45)
    pg_jobs = server_jobs(settings.server("pg"), settings, jobs, NOW)
    assert not [spec for spec in pg_jobs if spec.job_id.startswith("offsite")]


def test_every_server_has_a_quiet_archiver_at_the_archive_interval(
    settings: Settings, jobs: Jobs
) -> None:
    _cron, *rest = global_jobs(settings, jobs, NOW)
    archivers = [spec for spec in rest if spec.job_id.startswith("archive:")]

    assert [a.job_id for a in archivers] == [f"archive:{s.name}" for s in settings.servers]
    assert all(
        a.quiet and a.func == jobs.archive_wal and a.args == (s,)
        for a, s in zip(archivers, settings.servers, strict=True)
    )
    assert all(
        isinstance(a.trigger, IntervalTrigger)
        and a.trigger.interval == timedelta(seconds=settings.wal_archive_interval)
        for a in archivers
    )


def test_identities_are_checked_every_minute_whatever_the_cron_interval(
    settings: Settings, jobs: Jobs
) -> None:
    (identity,) = [s for s in global_jobs(settings, jobs, NOW) if s.job_id == "identity"]

    assert identity.func == jobs.check_identities and identity.quiet
    assert isinstance(identity.trigger, IntervalTrigger)
    assert identity.trigger.interval == timedelta(seconds=60)


def test_incremental_backups_get_their_own_schedule(environ: dict[str, str]) -> None:
    settings = load_settings(
        {
            **environ,
            "TZ": "Europe/Berlin",
            "BACKUP_SCHEDULE": "0 3 * * 0",
            "BACKUP_INCREMENTAL_SCHEDULE": "0 3 * * 1-6",
        }
    )
    runner = Runner(Pid1(), settings.child_env)
    jobs = Jobs(
        settings,
        Barman(settings, runner),
        runner,
        State(["pg"]),
        threading.Event(),
        on_fatal=lambda _server, _reason: None,
        on_ready=lambda _server: None,
        on_backup_owed=lambda _server: None,
    )
    pg = settings.server("pg")

    specs = {spec.job_id: spec for spec in server_jobs(pg, settings, jobs, NOW)}

    incremental = specs["incremental-backup:pg"]
    assert (incremental.func, incremental.args) == (jobs.incremental_backup, (pg,))
    assert incremental.trigger.get_next_fire_time(None, NOW) == datetime(
        2026, 11, 19, 3, 0, tzinfo=BERLIN
    )
    assert specs["backup:pg"].trigger.get_next_fire_time(None, NOW) == datetime(
        2026, 11, 22, 3, 0, tzinfo=BERLIN
    )
    assert "incremental-backup:reports" not in specs
