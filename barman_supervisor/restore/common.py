"""What both restore commands share: their target arguments, the destination's check, the
target's parsing, the steps printed at the end and the exit codes.

``restore`` (``local``) and ``restore-offsite`` (``store``) are two ways to the same result, a
directory that starts as a PostgreSQL server at the target; a person who learned one knows the
other's arguments and output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from barman_supervisor.barman.space import space_problem
from barman_supervisor.config import Settings
from barman_supervisor.errors import ConfigError
from barman_supervisor.offsite.plan import forkserver_preload
from barman_supervisor.process.forkserver import ForkServer
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner

EXIT_OK, EXIT_FAILED = 0, 1
TARGET_ACTIONS = ("pause", "promote", "shutdown")
# A restore is refused for space only when it surely cannot fit: the backup and the WAL it needs,
# as Barman counts them, is the least a restored copy takes (a compressed or incremental backup,
# and WAL replayed past it, take more), so no factor or margin is added and no restore that would
# fit is refused. The drill, which starts the copy, adds its own (DRILL_SPACE_FACTOR, _MARGIN).
RESTORE_SPACE_FACTOR, RESTORE_SPACE_MARGIN = 1.0, 0


def elsewhere(settings: Settings, server: str) -> str:
    """For a refusal: where a server another replica of a sharded set owns is restored from."""
    owner = next((o.owner for o in settings.ownership if o.server == server and not o.mine), None)
    if owner is None or settings.shard is None:
        return ""
    return (
        f"; it is protected by shard {owner} of {settings.shard.count}: run the restore on that "
        f"replica (pod ordinal {owner}), or restore-offsite here"
    )


def recover_jobs(cores: int) -> int:
    """``barman recover --jobs``: one rsync per core the restore may use.

    Barman copies an uncompressed backup with one rsync by default (``parallel_jobs = 1``).
    Measured on a 750 MB backup on 2 cores (bench/peer.py, docs/restore.md): 2.7 s with one job,
    2.2 s with two, 2.4 s with four; more jobs than cores only add processes. A compressed
    backup is extracted by one ``tar`` whatever the jobs."""
    return max(1, cores)


@contextlib.contextmanager
def barman_runner(settings: Settings) -> Iterator[Runner]:
    """The runner of a restore command, its Barman commands forked from one process that
    imported Barman once (``BARMAN_FORKSERVER``, as in the daemon): ``restore`` runs three
    (``list-backups``, ``show-backup``, ``recover``), each paying Barman's import otherwise."""
    supervisor = Pid1()
    runner = Runner(supervisor, settings.child_env)
    if settings.barman_forkserver:
        preload = forkserver_preload(settings.servers)
        runner.serve_from(
            ForkServer.start(settings.barman_bin, settings.child_env, supervisor, preload)
        )
    try:
        yield runner
    finally:
        runner.close_forkserver()


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the host's."""
    return len(os.sched_getaffinity(0))


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
        help="the base backup to start from (default: the newest DONE backup that has not failed "
        "verification and ended before --target-time, else the newest)",
    )
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="restore the --backup-id named even though it failed verification or a drill",
    )
    parser.add_argument(
        "--target-action",
        choices=TARGET_ACTIONS,
        default="pause",
        help="what PostgreSQL does at the target (default pause: check, then resume)",
    )


def destination_problem(destination: Path, barman_home: Path) -> str | None:
    """A restore never writes into something that holds data, nor into Barman's home: a copy
    there can overwrite the backups and WAL it is made from, and fills the volume they need."""
    if not destination.is_absolute():
        return f"{destination}: use an absolute path"
    home_problem = home_overlap(destination.resolve(), barman_home.resolve())
    if home_problem is not None:
        return (
            f"{destination} {home_problem} BARMAN_HOME ({barman_home}); restore into a directory "
            "outside it, e.g. a volume mounted at /restore (nothing was changed)"
        )
    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        return f"{destination} exists and is not a directory; choose an empty or new directory"
    if destination.is_dir() and any(destination.iterdir()):
        return (
            f"{destination} is not empty; restore into an empty or new directory (nothing was "
            "changed)"
        )
    return None


def room_problem(destination: Path, free_bytes: int, needed_bytes: int | None) -> str | None:
    """Why the destination's disk cannot hold the restore (``space.space_problem``, the drill's
    rule), or None; None too when the backup's size is not known."""
    if not needed_bytes:
        return None
    return space_problem(
        free_bytes,
        needed_bytes,
        RESTORE_SPACE_FACTOR,
        RESTORE_SPACE_MARGIN,
        what=f"the restore in {destination}",
        needed_label="backup and its WAL",
        hint="restore onto a larger disk or free space there (nothing was changed)",
    )


def free_space(destination: Path) -> int:
    """Free bytes on the disk that will hold ``destination``."""
    return shutil.disk_usage(existing_ancestor(destination)).free


def existing_ancestor(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing parent: where a new directory
    will be made, on that disk."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def home_overlap(destination: Path, barman_home: Path) -> str | None:
    """How a destination meets Barman's home (both resolved): "is", "is inside" or "holds";
    None when they are apart."""
    if destination == barman_home:
        return "is"
    if barman_home in destination.parents:
        return "is inside"
    if destination in barman_home.parents:
        return "holds"
    return None


def parse_target_time(text: str) -> datetime | None:
    """ISO-like times as Barman reads them; a time without offset is in local time."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.astimezone()


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


def checked_target(args: argparse.Namespace) -> tuple[tuple[str, str] | None, datetime | None]:
    """The target asked for and, for ``--target-time``, the moment; ConfigError if that is not
    a time."""
    target = requested_target(args)
    if target is None or target[0] != "time":
        return target, None
    target_time = parse_target_time(target[1])
    if target_time is None:
        raise ConfigError(
            f"--target-time {target[1]!r} is not a time; use e.g. '2026-11-23 14:05:00+00'"
        )
    return target, target_time
