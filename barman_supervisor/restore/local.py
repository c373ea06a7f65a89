"""``barman-supervisor restore SERVER DEST``: a careful front over ``barman recover`` for people.

In an incident someone types one command under stress. This one refuses what would destroy
something (a destination that is not empty, a server that is not configured), says what it is
going to do before doing it, runs the restore through the same Barman configuration as the
daemon, and ends with the exact commands that start the restored copy.

The restore is self-contained: no ``--get-wal``, so Barman copies the WAL the copy needs into it
(``pg_wal``, or ``barman_wal`` for a point-in-time target) and the restored server needs neither
Barman nor SSH. After a failover the archive holds a newer timeline than the backup's; a restore
with no target then follows it (``--target-tli N``) so the copy ends where the new primary
is, not where the old one stopped: without it PostgreSQL replays the backup's timeline only, and
that timeline's last segment often exists only as the new timeline's first one. With a target,
PostgreSQL stops there and (by default) pauses, so the data can be checked before the copy leaves
recovery; a wrong target is then fixed by restoring again.
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import gzip
import lzma
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import psycopg

from barman_supervisor.barman.chains import combine_missing
from barman_supervisor.barman.commands import Barman, Outcome
from barman_supervisor.barman.home import BarmanHome
from barman_supervisor.barman.records import BackupFacts, BackupStatus
from barman_supervisor.barman.verdicts import (
    ALLOW_UNVERIFIED,
    VerdictFiles,
    describe,
    failed_ids,
    named_refusal,
)
from barman_supervisor.config import Settings
from barman_supervisor.errors import ConfigError
from barman_supervisor.log import MASKER
from barman_supervisor.postgres.connection import Postgres
from barman_supervisor.postgres.programs import debian_bin_dir, find_bin_dir, major_of
from barman_supervisor.postgres.wal import (
    history_name,
    is_wal_name,
    parse_history,
    parse_lsn,
    reaches,
    timeline_of,
)
from barman_supervisor.process.runner import Runner
from barman_supervisor.restore import pitr
from barman_supervisor.restore.common import (
    EXIT_FAILED,
    EXIT_OK,
    barman_runner,
    checked_target,
    destination_problem,
    elsewhere,
    free_space,
    next_steps,
    recover_jobs,
    room_problem,
    usable_cores,
)


@dataclass(frozen=True)
class Plan:
    server: str
    backup_id: str
    destination: Path
    target: tuple[str, str] | None
    target_action: str
    # A newer timeline the backup leads to, to replay onto when there is no target
    # (``newer_timeline``); None: the backup's own.
    timeline: int | None = None
    jobs: int = 1

    def recover_args(self) -> list[str]:
        args = ["recover", "--jobs", str(self.jobs)]
        if self.target is not None:
            args += [f"--target-{self.target[0]}", self.target[1]]
            args += ["--target-action", self.target_action]
        elif self.timeline is not None:
            # Barman turns this into recovery_target_timeline and lays the WAL out for a
            # restore_command (barman_wal/), so PostgreSQL finds the history files it follows.
            args += ["--target-tli", str(self.timeline)]
        return [*args, self.server, self.backup_id, str(self.destination)]


def newer_timeline(
    backup_timeline: int, backup_end_lsn: int, histories: Mapping[int, Mapping[int, int]]
) -> int | None:
    """The newest timeline newer than the backup's that the backup leads to, or None.

    ``histories``: each timeline the archive has a history file for, with its ancestors
    (``parse_history``). A promotion after the backup is followed (else the copy stops at the
    old primary's end); a timeline that forked from the backup's before the backup ended, or
    from another branch (a point-in-time restore put back in production), is not: PostgreSQL
    would refuse to replay onto it.
    """
    leads = [
        timeline
        for timeline, ancestors in histories.items()
        if timeline > backup_timeline
        and reaches(backup_timeline, backup_end_lsn, timeline, dict(ancestors))
    ]
    return max(leads, default=None)


def choose_backup(
    rows: list[dict[str, Any]], target_time: datetime | None, failed: Set[str] = frozenset()
) -> str | None:
    """The DONE backup that ended last before the target time (or at all, without one), passing
    over those in ``failed`` (they failed verification or a drill: ``barman/verdicts``).

    Ordered by Barman's end time, not by ID or list position: IDs follow the ``TZ`` of the
    Barman process that took the backup.
    """
    limit = target_time.timestamp() if target_time is not None else float("inf")
    ended: list[tuple[float, int, str]] = []
    for position, row in enumerate(rows):  # list-backups is newest first: wins a tie
        stamp = str(row.get("end_time_timestamp"))
        done = row.get("status") == BackupStatus.DONE and stamp not in ("", "None")
        if done and str(row.get("backup_id")) in failed:
            continue
        if done and float(stamp) < limit:
            ended.append((float(stamp), -position, str(row["backup_id"])))
    return max(ended)[2] if ended else None


def main(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Plan, refuse or run, then print the next steps. Exit 0, or 1 (restore failed); bad input
    (nothing changed) raises ConfigError."""

    def say(text: str = "") -> None:
        print(text, file=out or sys.stdout, flush=True)

    if args.server not in {server.name for server in settings.servers}:
        names = ", ".join(server.name for server in settings.servers)
        raise ConfigError(
            f"no server {args.server!r} is configured (servers: {names})"
            + elsewhere(settings, args.server)
        )
    destination = Path(args.destination)
    problem = destination_problem(destination, settings.barman_home)
    if problem is not None:
        raise ConfigError(problem)
    target, target_time = checked_target(args)
    with barman_runner(settings) as runner:
        return _plan_and_recover(args, settings, runner, say, target, target_time)


def _plan_and_recover(
    args: argparse.Namespace,
    settings: Settings,
    runner: Runner,
    say: Any,
    target: tuple[str, str] | None,
    target_time: datetime | None,
) -> int:
    """Choose and check the backup, print the plan, run ``barman recover``."""
    destination = Path(args.destination)
    barman = Barman(settings, runner)
    backup_id = args.backup_id or _choose(barman, args.server, target_time)
    verdict = VerdictFiles(barman.home).read(args.server, backup_id)
    refused = named_refusal(backup_id, {backup_id: verdict} if verdict is not None else {})
    if refused is not None and not getattr(args, "allow_unverified", False):
        raise ConfigError(f"{refused} (nothing was changed)")
    _, facts = barman.show_backup(args.server, backup_id)
    if facts is None:
        raise ConfigError(f"server {args.server} has no backup {backup_id!r} (barman list-backups)")
    room = room_problem(destination, free_space(destination), facts.size_bytes)
    if room is not None:
        raise ConfigError(room)
    plan = Plan(
        args.server,
        facts.backup_id,
        destination,
        target,
        args.target_action,
        timeline=_followed_timeline(barman.home, args.server, facts.backup_id),
        jobs=recover_jobs(usable_cores()),
    )
    _print_plan(say, plan, facts, settings, target_time)
    say(f"  verified     {describe(verdict)}")
    if target is not None and target_time is not None:
        refusal = _target_problem(settings, barman, runner, args.server, target_time, facts, say)
        if refusal is not None:
            raise ConfigError(f"--target-time {target[1]!r}: {refusal} (nothing was changed)")
    tools = None
    if facts.incremental:
        # Barman finds pg_combinebackup on PATH only; Debian keeps it in the major's bin dir.
        major = major_of(facts.version_num)
        tools = find_bin_dir(major, settings.pg_bin_dir, program="pg_combinebackup")
        if tools is None:
            raise ConfigError(
                f"backup {facts.backup_id} is incremental and {combine_missing(major)}"
            )
    return _recover(say, barman, plan, facts, tools)


def _followed_timeline(home: BarmanHome, server: str, backup_id: str) -> int | None:
    """``newer_timeline`` over ``backup.info`` and the history files Barman archived (listed in
    ``xlog.db``; they sit at the top of ``wals/``). None when ``backup.info`` does not say."""
    info = home.backup_info(server, backup_id)
    timeline, end = info.get("timeline"), parse_lsn(info.get("end_xlog") or "")
    if timeline is None or not timeline.isdigit() or end is None:
        return None
    histories = {}
    for line in home.xlog_db(server).splitlines():
        name = line.split("\t", 1)[0]
        if is_wal_name(name) and name == history_name(timeline_of(name)):
            with contextlib.suppress(OSError, EOFError, ValueError):
                text = archived_text((home.wals_dir(server) / name).read_bytes())
                histories[timeline_of(name)] = parse_history(text)
    return newer_timeline(int(timeline), end, histories)


# How each WAL_COMPRESSION begins on disk: Barman compresses history files too, keeping the name.
_DECOMPRESS: dict[bytes, Callable[[bytes], bytes]] = {
    b"\x1f\x8b": gzip.decompress,
    b"BZh": bz2.decompress,
    b"\xfd7zXZ\x00": lzma.decompress,
}


def archived_text(data: bytes) -> str:
    """A small text file of Barman's archive (a history file), decompressed when
    ``WAL_COMPRESSION`` compressed it."""
    for magic, decompress in _DECOMPRESS.items():
        if data.startswith(magic):
            data = decompress(data)
            break
    return data.decode("utf-8", errors="replace")


def _choose(barman: Barman, server: str, target_time: datetime | None) -> str:
    """The backup a restore starts from when none is named: never one that failed."""
    listed = barman.run("list-backups", server, kind="list", server=server, timeout=60)
    rows = listed.data.get(server, []) if isinstance(listed.data, dict) else []
    ids = [str(row.get("backup_id")) for row in rows]
    failed = failed_ids(VerdictFiles(barman.home).read_all(server, ids))
    backup_id = choose_backup(rows, target_time, failed) if listed.ok else None
    if backup_id is None:
        after = f" that ended before {target_time.isoformat()}" if target_time else ""
        skipped = (
            f" ({len(failed)} failed verification: name one with --backup-id and "
            f"{ALLOW_UNVERIFIED} to use it anyway)"
            if failed
            else ""
        )
        raise ConfigError(f"server {server} has no DONE backup{after}{skipped}")
    return backup_id


def _recover(
    say: Any, barman: Barman, plan: Plan, facts: BackupFacts, tools: Path | None = None
) -> int:
    """Run ``barman recover`` and print the steps that start the copy."""
    started = time.monotonic()
    outcome = barman.run(*plan.recover_args(), kind="restore", server=plan.server, tools_dir=tools)
    if not outcome.ok:
        say(f"\nrestore FAILED: {MASKER.mask(outcome.reason())}")
        say(
            f"Nothing to start; {plan.destination} may hold a partial copy — delete it before "
            "retrying."
        )
        return EXIT_FAILED
    say(f"\nRestored into {plan.destination} in {time.monotonic() - started:.1f} s.")
    _print_warnings(say, outcome)
    bin_dir = str(debian_bin_dir(major_of(facts.version_num)))
    say("Next steps:")
    steps = next_steps(
        plan.destination, bin_dir, plan.target, plan.target_action, os.geteuid() == 0
    )
    for number, step in enumerate(steps, 1):
        say(f"  {number}. {step}")
    return EXIT_OK


def _target_problem(
    settings: Settings,
    barman: Barman,
    runner: Runner,
    server: str,
    target_time: datetime,
    facts: BackupFacts,
    say: Any,
) -> str | None:
    """Make the WAL up to now reach the archive when the server answers, then check that the
    archive holds a commit after the target (see ``pitr``)."""
    target, now = target_time.timestamp(), time.time()
    if target >= now:
        return pitr.target_problem(target, None, now)
    postgres = Postgres(settings.server(server), settings.pgpass_file, settings.pg_connect_timeout)
    archived = False
    try:
        postgres.commit_marker()
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        say(f"PostgreSQL does not answer ({first}); checking the archive as it is.")
    else:
        say("Archiving the WAL up to now first (barman switch-wal), so the target is in it.")
        outcome = barman.switch_wal(server, settings.wal_archive_timeout)
        archived = outcome.ok
        if not archived:
            say(f"barman switch-wal failed: {MASKER.mask(outcome.reason())}")
    newest = _newest_commit(settings, runner, server, facts.version_num)
    if archived and newest is None:
        return None  # a commit after the target is archived; pg_waldump could not show it
    return pitr.target_problem(target, newest, time.time())


def _newest_commit(
    settings: Settings, runner: Runner, server: str, version_num: int
) -> float | None:
    """The time of the last commit in the newest archived WAL segments (``pg_waldump``)."""
    bin_dir = find_bin_dir(major_of(version_num), settings.pg_bin_dir, program="pg_waldump")
    home = BarmanHome(settings.barman_home)
    xlog_db = home.xlog_db(server)
    if bin_dir is None or not xlog_db:
        return None
    for segment in pitr.newest_segments(xlog_db):
        path = home.archived_segment(server, segment)
        if not path.is_file():
            continue
        completed = runner.run(
            [str(bin_dir / "pg_waldump"), str(path)],
            kind="waldump",
            timeout=120,
            echo_stdout=False,
            env={"TZ": "UTC"},
        )
        found = pitr.last_commit_time(completed.stdout)
        if found is not None:
            return found
    return None


def _print_plan(
    say: Any, plan: Plan, facts: BackupFacts, settings: Settings, target_time: datetime | None
) -> None:
    ended = (
        datetime.fromtimestamp(facts.end_time).astimezone().isoformat(timespec="seconds")
        if facts.end_time
        else "unknown"
    )
    if plan.target is None:
        what = "everything Barman has (the newest WAL it received)"
        if plan.timeline is not None:
            what += f", following the failover(s) since the backup onto timeline {plan.timeline}"
    elif target_time is not None:
        what = f"time {target_time.isoformat()}, then {plan.target_action}"
    else:
        what = f"{plan.target[0]} {plan.target[1]}, then {plan.target_action}"
    command = [settings.barman_bin, "-c", str(settings.barman_config_file), *plan.recover_args()]
    say("Restore plan")
    say(f"  server       {plan.server}")
    say(
        f"  backup       {plan.backup_id} (ended {ended}, PostgreSQL {major_of(facts.version_num)})"
    )
    say(f"  up to        {what}")
    say(f"  destination  {plan.destination} (empty)")
    say(f"  size         about {facts.size_bytes / 1048576:.0f} MiB plus WAL")
    say(f"  command      {shlex.join(command)}")


def _print_warnings(say: Any, outcome: Outcome) -> None:
    data = outcome.data if isinstance(outcome.data, dict) else {}
    for warning in data.get("warnings") or []:
        if isinstance(warning, list) and len(warning) == 4:
            path, line, name, value = warning
            say(f"Barman flags {name} = {value} ({path}, line {line}): review it before starting.")
