"""``barman-supervisor restore-offsite SERVER DEST``: disaster recovery from the S3 store alone.

For the day the Barman host and its volume are gone: it needs only the settings (OFFSITE_URL,
the endpoint and the keys), not Barman's catalogue. Same care as ``restore``: it refuses a
destination that is not empty, prints the plan first and the commands that start the copy last.

``barman-cloud-restore`` brings the base backup; ``barman-cloud-wal-restore`` then fetches the
WAL from the backup's first segment on (OFFSITE_WAL_JOBS at a time), until the store has no next
one, into ``DEST/barman_wal`` (as ``barman recover`` does without ``--get-wal``). The restored
copy is self-contained: it needs neither the store nor its keys to start, and the keys never
reach PostgreSQL's environment or a file. Limit: WAL is followed on the backup's timeline only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TextIO

from barman_supervisor import log as logging_setup
from barman_supervisor.offsite import (
    StoreBackup,
    choose_store_backup,
    cloud_env,
    cloud_options,
    cloud_program,
    contiguous_prefix,
    first_error_line,
    next_wal_name,
    parse_store_backup_show,
    parse_store_backups,
    wal_names_from,
)
from barman_supervisor.pid1 import Supervisor
from barman_supervisor.proc import Completed, Runner
from barman_supervisor.restore import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    destination_problem,
    next_steps,
    parse_target_time,
    requested_target,
)
from barman_supervisor.settings import Offsite, Settings

LIST_TIMEOUT = 300.0
WAL_TIMEOUT = 600.0
# barman-cloud-wal-restore's exit code for "no such WAL file in the store".
WAL_NOT_FOUND = 1
WAL_MISSING = "not in the store"
WAL_DIR = "barman_wal"


def recovery_settings(
    restore_command: str, target: tuple[str, str] | None, action: str
) -> list[str]:
    """Lines for postgresql.auto.conf: where WAL comes from and where recovery stops."""

    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    lines = [
        "# Added by barman-supervisor restore-offsite: WAL fetched from the off-site store",
        f"restore_command = {quoted(restore_command)}",
    ]
    if target is not None:
        lines.append(f"recovery_target_{target[0]} = {quoted(target[1])}")
        lines.append(f"recovery_target_action = {quoted(action)}")
    return lines


class _Restore:
    """One restore from the store: the ``barman-cloud-*`` runs with the keys in their
    environment only."""

    def __init__(self, settings: Settings, server: str, offsite: Offsite, say: TextIO) -> None:
        self._settings = settings
        self._server = server
        self._offsite = offsite
        self._out = say
        self._runner = Runner(Supervisor(), settings.child_env)

    def say(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def program(self, name: str) -> str:
        return cloud_program(self._settings.barman_bin, name)

    def cloud(self, name: str, *args: str, timeout: float | None = None) -> Completed:
        argv = [self.program(name), *cloud_options(self._offsite), *args]
        return self._runner.run(argv, kind="restore", timeout=timeout, env=cloud_env(self._offsite))

    def fetch_wal(self, backup_id: str, wal_dir: Path) -> int | str:
        """Every WAL file from the backup's first on, until the store has no next one; the
        count, or why it failed."""
        shown = self.cloud(
            "barman-cloud-backup-show",
            "--format",
            "json",
            self._offsite.url,
            self._server,
            backup_id,
            timeout=LIST_TIMEOUT,
        )
        start = parse_store_backup_show(shown.stdout, self._server) if shown.ok else None
        if start is None:
            return first_error_line(shown.stderr, "the store's backup.info has no begin_wal")
        name, segment_size = start.begin, start.segment_size
        wal_dir.mkdir(mode=0o700)
        jobs = self._settings.offsite_wal_jobs
        count = 0
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="wal-fetch") as pool:
            while True:
                batch = wal_names_from(name, segment_size, jobs)
                results = dict(
                    zip(batch, pool.map(lambda n: self._fetch(n, wal_dir), batch), strict=True)
                )
                done = contiguous_prefix(batch, {n for n, r in results.items() if r is None})
                count += len(done)
                if len(done) < len(batch):
                    gap = batch[len(done)]
                    if results[gap] != WAL_MISSING:
                        return f"WAL {gap}: {results[gap]}"
                    for beyond in batch[len(done) :]:  # after the end: never replayed
                        (wal_dir / beyond).unlink(missing_ok=True)
                    if gap <= start.end:
                        return (
                            f"the store has the WAL of backup {backup_id} only up to before "
                            f"{gap}; it needs up to {start.end} to be consistent (was its WAL "
                            "copied? see /status offsite)"
                        )
                    return count
                name = next_wal_name(batch[-1], segment_size)

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


def main(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Plan, refuse or run, then print the next steps. Exit 0, 1 (restore failed), 2 (refused)."""
    server = next((s for s in settings.servers if s.name == args.server), None)
    if server is None or server.offsite is None:
        names = ", ".join(s.name for s in settings.servers if s.offsite is not None) or "none"
        print(
            f"refused: no server {args.server!r} with OFFSITE_URL is configured (servers with "
            f"an off-site store: {names})",
            file=out,
        )
        return EXIT_BAD_INPUT
    destination = Path(args.destination)
    problem = destination_problem(destination)
    target = requested_target(args)
    target_time = parse_target_time(target[1]) if target and target[0] == "time" else None
    if problem is None and target is not None and target[0] == "time" and target_time is None:
        problem = f"--target-time {target[1]!r} is not a time; use e.g. '2026-11-23 14:05:00+00'"
    if problem is not None:
        print(f"refused: {problem}", file=out)
        return EXIT_BAD_INPUT

    logging_setup.configure("WARNING", "console", stream=sys.stderr)
    run = _Restore(settings, server.name, server.offsite, out)
    listed = run.backups()
    if isinstance(listed, str):
        run.say(f"refused: cannot list the off-site store {server.offsite.url}: {listed}")
        return EXIT_BAD_INPUT
    if args.backup_id:
        chosen = next((b for b in listed if b.backup_id == args.backup_id), None)
    else:
        chosen = choose_store_backup(listed, target_time)
    if chosen is None:
        what = f"backup {args.backup_id!r}" if args.backup_id else "DONE backup"
        after = f" that ended before {target_time.isoformat()}" if target_time else ""
        run.say(f"refused: the store {server.offsite.url} has no {what}{after} of {server.name}")
        return EXIT_BAD_INPUT
    return _restore(run, server.name, server.offsite, chosen, destination, target, args)


def _restore(
    run: _Restore,
    server: str,
    offsite: Offsite,
    chosen: StoreBackup,
    destination: Path,
    target: tuple[str, str] | None,
    args: argparse.Namespace,
) -> int:
    restore_args = [offsite.url, server, chosen.backup_id, str(destination)]
    ended = (
        datetime.fromtimestamp(chosen.end_time).astimezone().isoformat(timespec="seconds")
        if chosen.end_time
        else "unknown"
    )
    what = (
        "the newest WAL in the store"
        if target is None
        else f"{target[0]} {target[1]}, then {args.target_action}"
    )
    run.say("Restore plan (from the off-site store)")
    run.say(f"  server       {server}")
    run.say(f"  store        {offsite.url}")
    run.say(f"  backup       {chosen.backup_id} (ended {ended})")
    run.say(f"  up to        {what}")
    run.say(f"  destination  {destination} (empty)")
    run.say(f"  command      {shlex.join([run.program('barman-cloud-restore'), *restore_args])}")
    run.say(
        f"  WAL          from the store into {destination / WAL_DIR} (barman-cloud-wal-restore)"
    )

    started = time.monotonic()
    restored = run.cloud("barman-cloud-restore", *restore_args)
    if not restored.ok:
        reason = first_error_line(restored.stderr, f"exit code {restored.returncode}")
        run.say(f"\nrestore FAILED: {reason}")
        run.say(f"Nothing to start; {destination} may hold a partial copy — delete it first.")
        return EXIT_FAILED
    fetched = run.fetch_wal(chosen.backup_id, destination / WAL_DIR)
    if isinstance(fetched, str):
        run.say(f"\nrestore FAILED fetching WAL: {fetched}")
        run.say(f"Nothing to start; delete {destination} before retrying.")
        return EXIT_FAILED
    command = f"cp {shlex.quote(str(destination / WAL_DIR))}/%f %p"
    with (destination / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n" + "\n".join(recovery_settings(command, target, args.target_action)) + "\n")
    (destination / "recovery.signal").touch()
    run.say(
        f"\nRestored into {destination} in {time.monotonic() - started:.1f} s "
        f"(base backup and {fetched} WAL file(s))."
    )
    run.say("Next steps:")
    as_root = os.geteuid() == 0
    steps = next_steps(destination, _bin_dir(destination), target, args.target_action, as_root)
    for number, step in enumerate(steps, 1):
        run.say(f"  {number}. {step}")
    return EXIT_OK


def _bin_dir(destination: Path) -> str:
    """Debian's directory of the restored cluster's major version (from PG_VERSION)."""
    try:
        major = (destination / "PG_VERSION").read_text().strip()
    except OSError:
        return "<PostgreSQL bin>"
    return f"/usr/lib/postgresql/{major}/bin"
