"""APScheduler in place of system cron.

Job defaults that a backup daemon needs, and which are not APScheduler's: one instance of a job
at a time, missed runs coalesced into one, and no misfire grace limit (the default of 1 s drops
a backup that started a second late, e.g. behind a long ``barman check``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from barman_supervisor.config import ServerSettings, Settings
from barman_supervisor.crontab import parse_crontab
from barman_supervisor.jobs import Jobs
from barman_supervisor.log import get_logger

_log = get_logger(__name__)
# Failover, point-in-time restore or a dropped slot is looked for this often (it used to ride on
# every ``barman cron``, which now runs far less often).
IDENTITY_CHECK_INTERVAL = 60.0
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


@dataclass(frozen=True)
class JobSpec:
    """A recurring job as plain data: what to run, when, and under which id."""

    job_id: str
    trigger: BaseTrigger
    func: Any
    args: tuple[Any, ...] = ()
    first_run: datetime | None = None
    quiet: bool = False


def server_jobs(
    server: ServerSettings,
    settings: Settings,
    jobs: Jobs,
    now: datetime,
) -> list[JobSpec]:
    """A server's recurring jobs once its start-up is through: backups and checks always, and
    the ones its settings ask for (``_jobs_asked_for``)."""
    return [
        JobSpec(
            f"backup:{server.name}",
            parse_crontab(server.backup_schedule, settings.timezone),
            jobs.backup,
            (server,),
        ),
        JobSpec(
            f"check:{server.name}",
            IntervalTrigger(seconds=settings.check_interval, timezone=settings.timezone),
            jobs.check,
            (server,),
            first_run=now + timedelta(seconds=settings.check_interval),
        ),
        *_jobs_asked_for(server, settings, jobs, now),
    ]


def _jobs_asked_for(
    server: ServerSettings,
    settings: Settings,
    jobs: Jobs,
    now: datetime,
) -> list[JobSpec]:
    """The jobs a server has only when a setting asks for them: incremental backups
    (BACKUP_INCREMENTAL_SCHEDULE), restore drills (DRILL_SCHEDULE) and off-site copies
    (OFFSITE_URL), in that order."""
    asked: list[JobSpec] = []
    if server.backup_policy.incremental:
        asked.append(
            JobSpec(
                f"incremental-backup:{server.name}",
                parse_crontab(server.backup_policy.incremental_schedule, settings.timezone),
                jobs.incremental_backup,
                (server,),
            )
        )
    if server.drill_schedule:
        asked.append(
            JobSpec(
                f"drill:{server.name}",
                parse_crontab(server.drill_schedule, settings.timezone),
                jobs.drill,
                (server,),
            )
        )
    if server.offsite is not None:
        every = IntervalTrigger(seconds=settings.offsite_interval, timezone=settings.timezone)
        asked += [
            JobSpec(
                f"offsite-{kind}:{server.name}", every, func, (server,), first_run=now, quiet=True
            )
            for kind, func in (("backup", jobs.offsite_backups), ("wal", jobs.offsite_wal))
        ]
    return asked


def global_jobs(settings: Settings, jobs: Jobs, now: datetime) -> list[JobSpec]:
    """``barman cron`` is global in Barman: one job serves every server. The monitors feed the
    probes from the first second on, also while a server's start-up still waits; the archivers
    run ``archive-wal`` for a server every WAL_ARCHIVE_INTERVAL, and only when a directory read
    finds WAL waiting."""
    every = IntervalTrigger(seconds=settings.health_interval, timezone=settings.timezone)
    archive_every = IntervalTrigger(
        seconds=settings.wal_archive_interval, timezone=settings.timezone
    )
    return [
        JobSpec(
            "cron",
            IntervalTrigger(seconds=settings.cron_interval, timezone=settings.timezone),
            jobs.cron,
            first_run=now + timedelta(seconds=settings.cron_interval),
        ),
        JobSpec(
            "identity",
            IntervalTrigger(seconds=IDENTITY_CHECK_INTERVAL, timezone=settings.timezone),
            jobs.check_identities,
            quiet=True,
        ),
        *(
            JobSpec(
                f"monitor:{server.name}", every, jobs.monitor, (server,), first_run=now, quiet=True
            )
            for server in settings.servers
        ),
        *(
            JobSpec(
                f"archive:{server.name}", archive_every, jobs.archive_wal, (server,), quiet=True
            )
            for server in settings.servers
        ),
    ]


class Scheduler:
    def __init__(self, settings: Settings, jobs: Jobs) -> None:
        self._settings = settings
        self._jobs = jobs
        # The two off-site jobs of a server may both run for long (a backup upload): their own.
        offsite_jobs = 2 * sum(1 for server in settings.servers if server.offsite is not None)
        workers = 5 * len(settings.servers) + offsite_jobs + 3
        self._quiet: set[str] = set()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults=JOB_DEFAULTS,
            timezone=settings.timezone,
        )
        self._scheduler.add_listener(
            self._after_run,
            EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES,
        )

    def now(self) -> datetime:
        return datetime.now(self._settings.timezone)

    def start(self, extra: list[JobSpec]) -> None:
        """Global jobs now; each server's start-up at once, its own jobs when that is through."""
        self._scheduler.start()
        for spec in [*global_jobs(self._settings, self._jobs, self.now()), *extra]:
            self.add(spec)
        for server in self._settings.servers:
            self._scheduler.add_job(
                self._jobs.bootstrap,
                args=(server,),
                id=f"bootstrap:{server.name}",
                next_run_time=self.now(),
            )

    def run_now(
        self, job_id: str, func: Callable[[ServerSettings], None], server: ServerSettings
    ) -> None:
        """A one-off job at once; one with this id already waiting or running is enough."""
        if self._scheduler.get_job(job_id) is not None:
            return
        self._scheduler.add_job(func, args=(server,), id=job_id, next_run_time=self.now())
        _log.info("job_scheduled", job_id=job_id, trigger="once")

    def add_server_jobs(self, server: ServerSettings) -> None:
        for spec in server_jobs(server, self._settings, self._jobs, self.now()):
            self.add(spec)

    def add(self, spec: JobSpec) -> None:
        kwargs: dict[str, Any] = {"id": spec.job_id, "replace_existing": True}
        if spec.first_run is not None:
            kwargs["next_run_time"] = spec.first_run
        job = self._scheduler.add_job(spec.func, spec.trigger, args=spec.args, **kwargs)
        if spec.quiet:
            self._quiet.add(spec.job_id)
        _log.info(
            "job_scheduled",
            job_id=spec.job_id,
            trigger=str(spec.trigger),
            next_run=_iso(job.next_run_time),
        )

    def next_runs(self) -> dict[str, str | None]:
        return {job.id: _iso(job.next_run_time) for job in self._scheduler.get_jobs()}

    def _after_run(self, event: JobEvent) -> None:
        job = self._scheduler.get_job(event.job_id)
        if event.code == EVENT_JOB_MAX_INSTANCES:
            # A monitor tick behind a slow probe is routine; a backup still running when the
            # next one is due is worth a line.
            if event.job_id not in self._quiet:
                _log.warning("job_skipped_still_running", job_id=event.job_id)
            return
        if event.code == EVENT_JOB_MISSED:
            _log.warning("job_missed", job_id=event.job_id)
        if isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_ERROR:
            _log.error("job_error", job_id=event.job_id, error=str(event.exception))
        if job is not None and event.job_id not in self._quiet:
            _log.info("job_next_run", job_id=event.job_id, next_run=_iso(job.next_run_time))

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def shutdown(self) -> None:
        """Stop starting jobs; running ones finish or are stopped by the daemon's shutdown."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
