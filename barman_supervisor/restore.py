"""``barman-supervisor restore SERVER DEST``: a careful front over ``barman recover`` for people.

In an incident someone types one command under stress. This one refuses what would destroy
something (a destination that is not empty, a server that is not configured), says what it is
going to do before doing it, runs the restore through the same Barman configuration as the
daemon, and ends with the exact commands that start the restored copy.

The restore is self-contained: no ``--get-wal``, so Barman copies the WAL the copy needs into it
(``pg_wal``, or ``barman_wal`` for a point-in-time target) and the restored server needs neither
Barman nor SSH. With a target, PostgreSQL stops there and (by default) pauses, so the data can be
checked before the copy leaves recovery; a wrong target is then fixed by restoring again.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from barman_supervisor import log as logging_setup
from barman_supervisor.barman import Barman, Outcome
from barman_supervisor.pgbin import major_of
from barman_supervisor.pid1 import Supervisor
from barman_supervisor.proc import Runner
from barman_supervisor.settings import Settings
from barman_supervisor.verify import BackupFacts, show_backup

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
TARGET_ACTIONS = ("pause", "promote", "shutdown")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", help="the Barman server to restore")
    parser.add_argument("destination", type=Path, help="an empty or missing directory")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--target-time",
        help="restore up to this time, e.g. '2026-11-23 14:05:00+00' (no offset: this "
        "machine's time zone)",
    )
    target.add_argument("--target-lsn", help="restore up to this WAL position, e.g. 0/5000028")
    target.add_argument(
        "--target-name", help="restore up to this restore point (pg_create_restore_point)"
    )
    parser.add_argument(
        "--backup-id",
        help="the base backup to start from (default: the newest DONE backup that ended before "
        "--target-time, else the newest)",
    )
    parser.add_argument(
        "--target-action",
        choices=TARGET_ACTIONS,
        default="pause",
        help="what PostgreSQL does at the target (default pause: check, then resume)",
    )


@dataclass(frozen=True)
class Plan:
    server: str
    backup_id: str
    destination: Path
    target: tuple[str, str] | None
    target_action: str

    def recover_args(self) -> list[str]:
        args = ["recover"]
        if self.target is not None:
            args += [f"--target-{self.target[0]}", self.target[1]]
            args += ["--target-action", self.target_action]
        return [*args, self.server, self.backup_id, str(self.destination)]


def destination_problem(destination: Path) -> str | None:
    """A restore never writes into something that holds data."""
    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        return f"{destination} exists and is not a directory; choose an empty or new directory"
    if destination.is_dir() and any(destination.iterdir()):
        return (
            f"{destination} is not empty; restore into an empty or new directory (nothing was "
            "changed)"
        )
    if not destination.is_absolute():
        return f"{destination}: use an absolute path"
    return None


def parse_target_time(text: str) -> datetime | None:
    """ISO-like times as Barman reads them; a time without offset is in local time."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.astimezone()


def choose_backup(rows: list[dict[str, Any]], target_time: datetime | None) -> str | None:
    """The newest DONE backup that ended before the target time (or at all, without one)."""
    for row in rows:  # list-backups is newest first
        if row.get("status") != "DONE":
            continue
        if target_time is None:
            return str(row["backup_id"])
        stamp = row.get("end_time_timestamp")
        if stamp not in (None, "", "None") and float(stamp) < target_time.timestamp():
            return str(row["backup_id"])
    return None


def next_steps(
    destination: Path, bin_dir: str, target: tuple[str, str] | None, action: str, as_root: bool
) -> list[str]:
    """The commands that start the restored copy, in order, ready to paste."""
    dest = shlex.quote(str(destination))
    run_as = "runuser -u postgres -- " if as_root else ""
    steps = []
    if as_root:
        steps.append(
            f"Give it to the PostgreSQL user: chown -R postgres:postgres {dest} && chmod 700 {dest}"
        )
    steps.append(
        f"Check {dest}/postgresql.conf and {dest}/postgresql.auto.conf: they are the original "
        "server's. Set a free port (and listen_addresses) if the original runs on this machine, "
        "and make sure archive_command does not write into the live archive."
    )
    steps.append(
        f"Start it: {run_as}{bin_dir}/pg_ctl -D {dest} -o '-p 5433' -l {dest}/restore.log start"
    )
    if target is None:
        steps.append(
            "It replays every WAL segment Barman had and opens for writes; check the data "
            "with: psql -p 5433"
        )
    elif action == "pause":
        steps.append(
            f"It replays up to {target[0]} {target[1]} and pauses, read-only. Check the data "
            "(psql -p 5433), then end recovery with: SELECT pg_wal_replay_resume(); — or, if the "
            "target is wrong, stop it and restore again with another target."
        )
    elif action == "promote":
        steps.append(
            f"It replays up to {target[0]} {target[1]} and opens for writes on a new timeline."
        )
    else:
        steps.append(
            f"It replays up to {target[0]} {target[1]} and shuts down; remove the recovery "
            "settings from postgresql.auto.conf and recovery.signal before starting it for use."
        )
    return steps


def requested_target(args: argparse.Namespace) -> tuple[str, str] | None:
    for name in ("time", "lsn", "name"):
        value = getattr(args, f"target_{name}", None)
        if value:
            return name, str(value)
    return None


def main(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Plan, refuse or run, then print the next steps. Exit 0, 1 (restore failed), 2 (refused)."""

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    if args.server not in {server.name for server in settings.servers}:
        names = ", ".join(server.name for server in settings.servers)
        say(f"refused: no server {args.server!r} is configured (servers: {names})")
        return EXIT_BAD_INPUT
    destination = Path(args.destination)
    problem = destination_problem(destination)
    if problem is not None:
        say(f"refused: {problem}")
        return EXIT_BAD_INPUT
    target = requested_target(args)
    target_time = parse_target_time(target[1]) if target and target[0] == "time" else None
    if target is not None and target[0] == "time" and target_time is None:
        say(
            f"refused: --target-time {target[1]!r} is not a time; use e.g. '2026-11-23 14:05:00+00'"
        )
        return EXIT_BAD_INPUT

    # Barman's messages go to stderr as readable lines; stdout is the plan and the next steps.
    logging_setup.configure("WARNING", "console", stream=sys.stderr)
    barman = Barman(settings, Runner(Supervisor(), settings.child_env))
    backup_id = args.backup_id
    if backup_id is None:
        listed = barman.run("list-backups", args.server, kind="list", timeout=60)
        rows = listed.data.get(args.server, []) if isinstance(listed.data, dict) else []
        backup_id = choose_backup(rows, target_time) if listed.ok else None
        if backup_id is None:
            after = f" that ended before {target_time.isoformat()}" if target_time else ""
            say(f"refused: server {args.server} has no DONE backup{after}")
            return EXIT_BAD_INPUT
    facts = show_backup(barman, args.server, backup_id)
    if facts is None:
        say(f"refused: server {args.server} has no backup {backup_id!r} (barman list-backups)")
        return EXIT_BAD_INPUT
    plan = Plan(args.server, facts.backup_id, destination, target, args.target_action)
    _print_plan(say, plan, facts, settings, target_time)

    started = time.monotonic()
    outcome = barman.run(*plan.recover_args(), kind="restore")
    if not outcome.ok:
        say(f"\nrestore FAILED: {outcome.reason()}")
        say(f"Nothing to start; {destination} may hold a partial copy — delete it before retrying.")
        return EXIT_FAILED
    say(f"\nRestored into {destination} in {time.monotonic() - started:.1f} s.")
    _print_warnings(say, outcome)
    bin_dir = f"/usr/lib/postgresql/{major_of(facts.version_num)}/bin"
    say("Next steps:")
    for number, step in enumerate(
        next_steps(destination, bin_dir, target, plan.target_action, os.geteuid() == 0), 1
    ):
        say(f"  {number}. {step}")
    return EXIT_OK


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
