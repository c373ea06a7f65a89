"""``barman-supervisor restore-offsite SERVER DEST``: disaster recovery from the S3 store alone.

For the day the Barman host and its volume are gone: it needs only the settings (OFFSITE_URL,
the endpoint and the keys), not Barman's catalogue. Same care as ``restore``: it refuses a
destination that is not empty, prints the plan first and the commands that start the copy last.

``barman-cloud-restore`` brings the base backup; ``barman-cloud-wal-restore`` then fetches the
timeline history files and the WAL from the backup's first segment on (OFFSITE_WAL_JOBS at a
time), into ``DEST/barman_wal`` (as ``barman recover`` does without ``--get-wal``). The restore
follows timeline switches (a promotion after the backup): it aims at the newest timeline the
store has a history file for (or ``--target-tli``), picks a backup that leads there, reads each
timeline up to its switch and the target timeline until the store has no next segment, and
writes that timeline as ``recovery_target_timeline``. The restored copy is self-contained: it
needs neither the store nor its keys to start, and the keys never reach PostgreSQL's
environment or a file.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.records import BackupStatus
from barman_supervisor.barman.verdicts import VerdictFiles, failed_ids, named_refusal
from barman_supervisor.config import Offsite, Settings
from barman_supervisor.errors import ConfigError
from barman_supervisor.offsite.holes import restore_hole
from barman_supervisor.offsite.plan import (
    StoreBackup,
    StoreListing,
    choose_store_backup,
    cloud_env,
    cloud_options,
    cloud_program,
    contiguous_prefix,
    first_error_line,
    parse_store_backups,
    parse_store_listing,
    store_listing_argv,
)
from barman_supervisor.postgres.wal import (
    FIRST_TIMELINE,
    Stretch,
    history_name,
    next_segment_name,
    parse_history,
    parse_lsn,
    reaches,
    segment_names_from,
    segment_number,
    wal_plan,
)
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Completed, Runner
from barman_supervisor.restore.common import (
    EXIT_FAILED,
    EXIT_OK,
    checked_target,
    destination_problem,
    free_space,
    next_steps,
    room_problem,
)
from barman_supervisor.restore.common import (
    add_arguments as add_restore_arguments,
)

LIST_TIMEOUT = 300.0
WAL_TIMEOUT = 600.0
# barman-cloud-wal-restore's exit code for "no such WAL file in the store".
WAL_NOT_FOUND = 1
WAL_MISSING = "not in the store"
WAL_DIR = "barman_wal"


def recovery_settings(
    restore_command: str, target: tuple[str, str] | None, action: str, timeline: int
) -> list[str]:
    """Lines for postgresql.auto.conf: where WAL comes from, the timeline recovery follows
    (the plan's, not ``latest``: the WAL fetched leads there) and where recovery stops."""

    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    lines = [
        "# Added by barman-supervisor restore-offsite: WAL fetched from the off-site store",
        f"restore_command = {quoted(restore_command)}",
        f"recovery_target_timeline = {quoted(str(timeline))}",
    ]
    if target is not None:
        lines.append(f"recovery_target_{target[0]} = {quoted(target[1])}")
        lines.append(f"recovery_target_action = {quoted(action)}")
    return lines


@dataclass(frozen=True)
class StorePlan:
    """What a restore from the store will do: the base backup, the timeline it ends on, and
    the WAL it reads there (``timelines.wal_plan``)."""

    backup: StoreBackup
    timeline: int
    histories: dict[int, str]
    stretches: list[Stretch]

    def describe_wal(self) -> str:
        parts = [
            f"timeline {s.timeline} from {s.first} "
            + (f"to {s.last}" if s.last else "to the newest in the store")
            for s in self.stretches
        ]
        return ", then ".join(parts)


def plan_restore(
    backups: list[StoreBackup],
    histories: dict[int, str],
    target_time: datetime | None,
    backup_id: str | None,
    target_timeline: int | None,
) -> StorePlan | str:
    """The backup and WAL for a restore onto ``target_timeline`` (default: the newest timeline
    the store has a history file for, as PostgreSQL's ``latest``); or why there is none."""
    timeline = target_timeline or max(histories, default=FIRST_TIMELINE)
    if timeline != FIRST_TIMELINE and timeline not in histories:
        return f"the store has no history file for timeline {timeline} ({history_name(timeline)})"
    ancestors = parse_history(histories.get(timeline, ""))
    if backup_id:
        chosen = next((b for b in backups if b.backup_id == backup_id), None)
        if chosen is None or chosen.status != BackupStatus.DONE or chosen.begin_wal is None:
            return f"the store has no DONE backup {backup_id!r}"
        if not reaches(chosen.timeline or FIRST_TIMELINE, chosen.end_lsn or 0, timeline, ancestors):
            return (
                f"backup {backup_id} (timeline {chosen.timeline}) cannot be recovered onto "
                f"timeline {timeline}: its timeline ended before the backup did"
            )
    else:
        chosen = choose_store_backup(backups, target_time, timeline, ancestors)
        if chosen is None or chosen.begin_wal is None:
            after = f" that ended before {target_time.isoformat()}" if target_time else ""
            return f"the store has no DONE backup{after} that leads to timeline {timeline}"
    return StorePlan(
        chosen,
        timeline,
        {t: text for t, text in histories.items() if t <= timeline},
        wal_plan(chosen.begin_wal, timeline, ancestors, chosen.segment_size),
    )


class StoreRestore:
    """Restores from the store: the ``barman-cloud-*`` runs with the keys in their environment
    only. Used by ``restore-offsite`` and by the drill from the store (``DRILL_SOURCE``), which
    gives its own runner, kind (so that its stop reaches them) and time budget."""

    def __init__(
        self,
        settings: Settings,
        server: str,
        offsite: Offsite,
        runner: Runner,
        kind: str = "restore",
        budget: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings
        self._server = server
        self._offsite = offsite
        self._runner = runner
        self._kind = kind
        self._budget = budget

    def program(self, name: str) -> str:
        return cloud_program(self._settings.barman_bin, name)

    def cloud(self, name: str, *args: str, timeout: float | None = None) -> Completed:
        if self._budget is not None:
            left = self._budget()
            timeout = left if timeout is None else min(timeout, left)
        argv = [self.program(name), *cloud_options(self._offsite), *args]
        return self._runner.run(
            argv, kind=self._kind, timeout=timeout, env=cloud_env(self._offsite)
        )

    def backups(self) -> list[StoreBackup] | str:
        listed = self.cloud(
            "barman-cloud-backup-list",
            "--format",
            "json",
            self._offsite.url,
            self._server,
            timeout=LIST_TIMEOUT,
        )
        if not listed.ok:
            return first_error_line(listed.stderr, f"exit code {listed.returncode}")
        return parse_store_backups(listed.stdout)

    def listing(self) -> StoreListing | str:
        """The store's backups and WAL names in one run, or why they cannot be listed."""
        argv = store_listing_argv(self._settings.barman_bin, self._offsite, self._server)
        env = cloud_env(self._offsite)
        listed = self._runner.run(argv, kind=self._kind, timeout=LIST_TIMEOUT, env=env)
        listing = parse_store_listing(listed.stdout) if listed.ok else None
        if listing is None:
            return first_error_line(listed.stderr, f"exit code {listed.returncode}")
        return listing

    def histories(self) -> dict[int, str] | str:
        """Every timeline history file in the store, from timeline 2 up to the first missing
        (PostgreSQL numbers a new timeline one past the newest history file it finds)."""
        found: dict[int, str] = {}
        with tempfile.TemporaryDirectory(prefix="bs-history-") as scratch:
            timeline = FIRST_TIMELINE + 1
            while True:
                name = history_name(timeline)
                outcome = self._fetch(name, Path(scratch))
                if outcome == WAL_MISSING:
                    return found
                if outcome is not None:
                    return f"history file {name}: {outcome}"
                found[timeline] = (Path(scratch) / name).read_text()
                timeline += 1

    def restore(self, plan: StorePlan, destination: Path, wal_dir: Path) -> int | str:
        """The base backup into ``destination``, the history files and the WAL of the plan into
        ``wal_dir``; the number of WAL files, or why it failed."""
        restored = self.cloud(
            "barman-cloud-restore", *self.restore_args(plan, destination), timeout=None
        )
        if not restored.ok:
            return first_error_line(restored.stderr, f"exit code {restored.returncode}")
        wal_dir.mkdir(mode=0o700, exist_ok=True)
        for timeline, text in plan.histories.items():
            (wal_dir / history_name(timeline)).write_text(text)
        count, reached = 0, None
        for stretch in plan.stretches:
            fetched = self._fetch_stretch(stretch, plan.backup.segment_size, wal_dir)
            if isinstance(fetched, str):
                return fetched
            count += len(fetched)
            reached = fetched[-1] if fetched else reached
        needed = plan.backup.end_wal or plan.backup.begin_wal or ""
        size = plan.backup.segment_size
        if reached is None or segment_number(reached, size) < segment_number(needed, size):
            return (
                f"the store has the WAL of backup {plan.backup.backup_id} only up to "
                f"{reached or 'none'}; it needs up to {needed} to be consistent (was its WAL "
                "copied? see /status offsite)"
            )
        return count

    def restore_args(self, plan: StorePlan, destination: Path) -> list[str]:
        return [self._offsite.url, self._server, plan.backup.backup_id, str(destination)]

    def _fetch_stretch(self, stretch: Stretch, segment_size: int, wal_dir: Path) -> list[str] | str:
        """The segments of one timeline, OFFSITE_WAL_JOBS at a time: all of them up to its
        switch, or (the target timeline) until the store has no next one."""
        jobs = self._settings.offsite_wal_jobs
        fetched: list[str] = []
        name = stretch.first
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="wal-fetch") as pool:
            while True:
                batch = segment_names_from(name, segment_size, jobs)
                if stretch.last is not None:
                    batch = [n for n in batch if n <= stretch.last]
                results = dict(
                    zip(batch, pool.map(lambda n: self._fetch(n, wal_dir), batch), strict=True)
                )
                done = contiguous_prefix(batch, {n for n, r in results.items() if r is None})
                fetched += done
                if len(done) < len(batch):
                    gap = batch[len(done)]
                    if results[gap] != WAL_MISSING:
                        return f"WAL {gap}: {results[gap]}"
                    if stretch.last is not None:
                        return (
                            f"the store lacks WAL {gap} of timeline {stretch.timeline}, which "
                            f"recovery reads up to {stretch.last} before the switch"
                        )
                    for beyond in batch[len(done) :]:  # after the end: never replayed
                        (wal_dir / beyond).unlink(missing_ok=True)
                    return fetched
                if stretch.last is not None and batch[-1] == stretch.last:
                    return fetched
                name = next_segment_name(batch[-1], segment_size)

    def _fetch(self, name: str, wal_dir: Path) -> str | None:
        """One WAL file from the store: None, WAL_MISSING, or why it failed."""
        fetched = self.cloud(
            "barman-cloud-wal-restore",
            self._offsite.url,
            self._server,
            name,
            str(wal_dir / name),
            timeout=WAL_TIMEOUT,
        )
        if fetched.returncode == WAL_NOT_FOUND and not fetched.timed_out:
            return WAL_MISSING
        if not fetched.ok:
            return first_error_line(fetched.stderr, f"exit code {fetched.returncode}")
        return None


def recovery_config(
    destination: Path, plan: StorePlan, target: tuple[str, str] | None, action: str
) -> None:
    """Append where WAL comes from and where recovery stops; ``recovery.signal``."""
    command = f"cp {shlex.quote(str(destination / WAL_DIR))}/%f %p"
    lines = recovery_settings(command, target, action, plan.timeline)
    with (destination / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n" + "\n".join(lines) + "\n")
    (destination / "recovery.signal").touch()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``restore``'s arguments, and the timeline to recover onto."""
    add_restore_arguments(parser)
    parser.add_argument(
        "--target-tli",
        type=int,
        help="the timeline to recover onto (default: the newest one the store has a history "
        "file for, as PostgreSQL's 'latest')",
    )


def main(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Plan, refuse or run, then print the next steps. Exit 0, or 1 (restore failed); bad input
    (nothing changed) raises ConfigError."""
    server = next((s for s in settings.servers if s.name == args.server), None)
    if server is None or server.offsite is None:
        names = ", ".join(s.name for s in settings.servers if s.offsite is not None) or "none"
        raise ConfigError(
            f"no server {args.server!r} with OFFSITE_URL is configured (servers with an "
            f"off-site store: {names})"
        )
    destination = Path(args.destination)
    problem = destination_problem(destination, settings.barman_home)
    if problem is not None:
        raise ConfigError(problem)
    target, target_time = checked_target(args)
    if args.target_tli is not None and args.target_tli < FIRST_TIMELINE:
        raise ConfigError(f"--target-tli {args.target_tli} is not a timeline; use 1 or more")

    run = StoreRestore(settings, server.name, server.offsite, Runner(Pid1(), settings.child_env))
    # One listing gives the backups to choose from and the WAL the hole check reads.
    listing = run.listing()
    histories = run.histories() if not isinstance(listing, str) else listing
    if isinstance(listing, str) or isinstance(histories, str):
        reason = listing if isinstance(listing, str) else histories
        raise ConfigError(f"cannot read the off-site store {server.offsite.url}: {reason}")
    listed = without_failed(settings, server.name, listing.backups, args)
    plan = plan_restore(listed, histories, target_time, args.backup_id, args.target_tli)
    if isinstance(plan, str):
        raise ConfigError(f"{plan} ({server.offsite.url}, server {server.name})")
    refuse_a_hole(listing.wal_names, plan, target)
    room = room_problem(destination, free_space(destination), plan.backup.size_bytes)
    if room is not None:
        raise ConfigError(room)
    out = out or sys.stdout
    return _restore(run, out, server.name, server.offsite, plan, destination, target, args)


def refuse_a_hole(names: list[str], plan: StorePlan, target: tuple[str, str] | None) -> None:
    """Issue 24: recovery stops at the first segment missing and PostgreSQL opens there as if it
    were the newest point; a hole in the WAL the restore needs (up to the newest segment, or an
    LSN target) in the store's WAL ``names`` is refused in one line, before anything is
    written."""
    lsn = parse_lsn(target[1]) if target is not None and target[0] == "lsn" else None
    if target is not None and lsn is None:
        return  # a time, xid or name: PostgreSQL refuses to end short of it
    hole = restore_hole(names, plan.backup, plan.histories, plan.timeline, lsn)
    if hole is not None:
        raise ConfigError(
            f"{hole.describe()}: backup {plan.backup.backup_id} cannot be restored "
            f"{'to ' + target[1] if target else 'to the newest point'} from it; recovery "
            f"would stop before {hole.first_missing} (nothing was changed; copy the range "
            "again from Barman's archive, or choose an earlier target)"
        )


def without_failed(
    settings: Settings, server: str, listed: list[StoreBackup], args: argparse.Namespace
) -> list[StoreBackup]:
    """The store's backups a restore may start from: a backup that failed verification or a
    drill here (its verdict beside Barman's copy, when this machine has it) is the same backup
    in the store. A named one is refused unless ``--allow-unverified``; unnamed ones are passed
    over."""
    verdicts = VerdictFiles(BarmanHome(settings.barman_home)).read_all(
        server, (backup.backup_id for backup in listed)
    )
    if args.backup_id:
        refused = named_refusal(args.backup_id, verdicts)
        if refused is not None and not getattr(args, "allow_unverified", False):
            raise ConfigError(f"{refused} (nothing was changed)")
        return listed
    failed = failed_ids(verdicts)
    return [backup for backup in listed if backup.backup_id not in failed]


def say(out: TextIO, text: str = "") -> None:
    print(text, file=out, flush=True)


def _restore(
    run: StoreRestore,
    out: TextIO,
    server: str,
    offsite: Offsite,
    plan: StorePlan,
    destination: Path,
    target: tuple[str, str] | None,
    args: argparse.Namespace,
) -> int:
    ended = (
        datetime.fromtimestamp(plan.backup.end_time).astimezone().isoformat(timespec="seconds")
        if plan.backup.end_time
        else "unknown"
    )
    what = (
        "the newest WAL in the store"
        if target is None
        else f"{target[0]} {target[1]}, then {args.target_action}"
    )
    command = shlex.join(
        [run.program("barman-cloud-restore"), *run.restore_args(plan, destination)]
    )
    say(out, "Restore plan (from the off-site store)")
    say(out, f"  server       {server}")
    say(out, f"  store        {offsite.url}")
    say(
        out,
        f"  backup       {plan.backup.backup_id} (timeline {plan.backup.timeline}, ended {ended})",
    )
    say(out, f"  up to        {what}")
    say(out, f"  timeline     {plan.timeline} (recovery_target_timeline)")
    say(out, f"  destination  {destination} (empty)")
    say(out, f"  command      {command}")
    say(out, f"  WAL          {plan.describe_wal()}, into {destination / WAL_DIR}")

    started = time.monotonic()
    fetched = run.restore(plan, destination, destination / WAL_DIR)
    if isinstance(fetched, str):
        say(out, f"\nrestore FAILED: {fetched}")
        say(out, f"Nothing to start; {destination} may hold a partial copy: delete it first.")
        return EXIT_FAILED
    recovery_config(destination, plan, target, args.target_action)
    say(
        out,
        f"\nRestored into {destination} in {time.monotonic() - started:.1f} s "
        f"(base backup and {fetched} WAL file(s)).",
    )
    say(out, "Next steps:")
    as_root = os.geteuid() == 0
    steps = next_steps(destination, _bin_dir(destination), target, args.target_action, as_root)
    for number, step in enumerate(steps, 1):
        say(out, f"  {number}. {step}")
    return EXIT_OK


def _bin_dir(destination: Path) -> str:
    """Debian's directory of the restored cluster's major version (from PG_VERSION)."""
    try:
        major = (destination / "PG_VERSION").read_text().strip()
    except OSError:
        return "<PostgreSQL bin>"
    return f"/usr/lib/postgresql/{major}/bin"
