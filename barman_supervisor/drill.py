"""Restore drill: prove, on a schedule, that the newest backup really restores and holds data.

A backup nobody has restored is a hope. The drill does what a person would do in an incident,
in a scratch directory, and measures it:

1. pick the newest DONE backup and refuse (with the numbers) when the scratch disk is too small;
2. ``barman verify-backup`` — a file damaged after the copy can restore "fine" and read as empty;
3. ``barman recover`` (plain, no ``--get-wal``: Barman copies the base backup and every archived
   WAL after it into the scratch copy, so the temporary server needs neither SSH nor Barman's
   configuration; ``--get-wal`` writes ``restore_command = barman get-wal …``, which has to run
   as the Barman user with its configuration and was slower: 2.0 s against 1.6 s for 38 MB);
4. start a temporary PostgreSQL of the backup's major version on it: unix socket in the scratch
   directory only (``listen_addresses = ''``), its own trust-only ``hba_file``, ``archive_mode``
   off and no external pid file, so it can never be reached from outside, archive into the real
   archive or touch the real server's files. ``recovery.signal`` with ``restore_command = false``
   makes it an archive recovery from the WAL in ``pg_wal``: PostgreSQL then tracks the newest
   replayed commit and promotes itself at the end of the WAL;
5. once it accepts connections and is out of recovery, run the verification query in every
   database (default: ``count(*)`` over every user table, so every heap is actually read);
6. stop it and delete the scratch directory — also when a step fails, times out, or the daemon
   is asked to stop (``stop`` event): nothing of a drill survives it.

Everything returned is plain data (``DrillResult.as_dict()``) for the state, ``/status``,
``/metrics`` and alerts. The drill never raises for a failed step; the reason says what failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from barman_supervisor.barman import Barman
from barman_supervisor.log import get_logger
from barman_supervisor.pgbin import (
    RunAs,
    find_bin_dir,
    major_of,
    missing_server_programs,
    server_user,
)
from barman_supervisor.proc import Completed, Runner, RunnerClosed
from barman_supervisor.settings import ServerSettings, Settings
from barman_supervisor.verify import BackupFacts, parse_show_backup, verify_backup

_log = get_logger(__name__)

# Reads every user table (count(*) has to visit each heap page or its visibility map), so a
# restored but unreadable table fails the drill. One number per database: the rows counted.
DEFAULT_QUERY = (
    "SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format("
    "'SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]"
    "::text::bigint), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'm') AND (c.relkind = 'r' OR c.relispopulated) "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%'"
)
DEFAULT_TIMEOUT = 7200.0
DEFAULT_SPACE_FACTOR = 1.2
DEFAULT_SPACE_MARGIN = 1024**3
# Unix socket paths are limited to 107 bytes (sun_path); a longer scratch path moves the socket.
_SOCKET_PATH_MAX = 100
_STOP_STEPS = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0))


@dataclass(frozen=True)
class DrillConfig:
    """The drill's settings; the daemon builds it from ``Settings`` (see the README table)."""

    scratch_root: Path
    query: str = DEFAULT_QUERY
    timeout: float = DEFAULT_TIMEOUT
    pg_bin_dir: Path | None = None
    space_factor: float = DEFAULT_SPACE_FACTOR
    space_margin_bytes: int = DEFAULT_SPACE_MARGIN


@dataclass
class DrillResult:
    ok: bool
    reason: str
    server: str
    started_at: float
    duration_s: float = 0.0
    backup_id: str | None = None
    pg_version: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # recover + start + query: what a person waits for in an incident
    restore_s: float | None = None
    rows: int | None = None
    databases: int | None = None
    newest_commit_at: float | None = None
    restored_as_of: float | None = None
    restored_age_s: float | None = None
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DrillFailed(Exception):
    """A step failed; the message is the reason the result carries."""


class Interrupted(DrillFailed):
    def __init__(self) -> None:
        super().__init__("interrupted by shutdown")


# Pure parts ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    backup_id: str
    size_bytes: int
    wal_bytes: int
    end_time: float | None


def newest_done(data: Any, server: str) -> Candidate | None:
    """The newest DONE backup in ``barman -f json list-backups`` (newest first)."""
    rows = data.get(server, []) if isinstance(data, dict) else []
    for row in rows:
        if isinstance(row, dict) and row.get("status") == "DONE":
            stamp = row.get("end_time_timestamp")
            return Candidate(
                backup_id=str(row["backup_id"]),
                size_bytes=int(row.get("size_bytes") or 0),
                wal_bytes=int(row.get("wal_size_bytes") or 0),
                end_time=float(stamp) if stamp not in (None, "", "None") else None,
            )
    return None


def space_problem(free_bytes: int, needed_bytes: int, factor: float, margin: int) -> str | None:
    """Why the scratch disk is too small, or None. The restored copy is about the backup plus
    the WAL after it; ``factor`` covers what PostgreSQL writes while it recovers."""
    required = int(needed_bytes * factor) + margin
    if free_bytes >= required:
        return None
    return (
        f"not enough free space for the drill: {_mib(free_bytes)} free, {_mib(required)} needed "
        f"(backup and WAL {_mib(needed_bytes)} x {factor:g} + {_mib(margin)} margin); free space "
        "or point DRILL_SCRATCH_DIR at a larger disk"
    )


def _mib(value: int) -> str:
    return f"{value / 1048576:.0f} MiB"


def unreachable_ancestor(path: Path, uid: int, gid: int, groups: set[int]) -> Path | None:
    """The first directory on the way to ``path`` that user ``uid`` cannot traverse, if any."""
    if uid == 0:
        return None
    current = Path(path.anchor)
    for part in path.parts[1:]:
        current = current / part
        try:
            info = current.stat()
        except FileNotFoundError:
            return None
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid or info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return current
    return None


def server_options(
    port: int, socket_dir: Path, hba_file: Path, ident_file: Path, pid_file: Path
) -> list[str]:
    """``-c`` options that win over anything in the restored configuration files.

    They keep the temporary server private (no TCP, trust only on its own socket), harmless
    (no archiving into the real archive, its own external pid file, no replication to a primary,
    no synchronous standby to wait for) and small (its own memory, no huge pages, no fsync
    for a copy that is deleted minutes later). ``hot_standby`` is off: nothing connects before
    the end of recovery, and the primary's ``max_connections`` & co. then need not be matched.
    """
    options = {
        "listen_addresses": "",
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        "unix_socket_permissions": "0700",
        "hba_file": str(hba_file),
        "ident_file": str(ident_file),
        # the restored configuration may name the real server's pid file
        "external_pid_file": str(pid_file),
        "archive_mode": "off",
        "archive_command": "",
        "restore_command": "false",
        "primary_conninfo": "",
        "primary_slot_name": "",
        "hot_standby": "off",
        "synchronous_standby_names": "",
        "logging_collector": "off",
        "log_destination": "stderr",
        "shared_buffers": "128MB",
        "huge_pages": "off",
        "ssl": "off",
        "fsync": "off",
    }
    return [arg for key, value in options.items() for arg in ("-c", f"{key}={value}")]


def restored_age(
    newest_commit_at: float | None, backup_end: float | None, now: float
) -> tuple[float | None, float | None]:
    """(as of, age): the restored data is at least as recent as the backup's end and as its
    newest replayed commit, whichever is later (an idle primary commits nothing after a backup)."""
    stamps = [stamp for stamp in (newest_commit_at, backup_end) if stamp is not None]
    if not stamps:
        return None, None
    as_of = max(stamps)
    return as_of, round(max(0.0, now - as_of), 3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The drill ----------------------------------------------------------------------------------
class _Server:
    """The temporary PostgreSQL: a ``Runner`` child on a thread of its own, so that the drill
    can poll it, and so that the daemon's shutdown (which signals every running command) and the
    drill's own stop both reach the postmaster."""

    def __init__(self, runner: Runner, argv: list[str], kind: str, timeout: float) -> None:
        self._runner = runner
        self.kind = kind
        self.last_error = ""
        self.completed: Completed | None = None
        self.failure: str | None = None
        self._thread = threading.Thread(
            target=self._serve, args=(argv, timeout), name=kind, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _serve(self, argv: list[str], timeout: float) -> None:
        try:
            self.completed = self._runner.run(
                argv, kind=self.kind, timeout=timeout, on_line=self._line
            )
        except RunnerClosed:
            self.failure = "interrupted by shutdown"
        except Exception as exc:  # reported as the drill's reason, never lost
            self.failure = f"{type(exc).__name__}: {exc}"

    def _line(self, _stream: str, text: str) -> None:
        for marker in ("FATAL:", "PANIC:"):
            if marker in text:
                self.last_error = text.split(marker, 1)[1].strip()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def why_gone(self) -> str:
        if self.failure:
            return self.failure
        code = self.completed.returncode if self.completed is not None else None
        return f"PostgreSQL exited ({self.last_error or f'exit code {code}'})"

    def stop(self) -> bool:
        """Fast shutdown, then immediate, then SIGKILL; True once the postmaster is gone."""
        for sig, grace in _STOP_STEPS:
            deadline = time.monotonic() + grace
            while self._thread.is_alive() and time.monotonic() < deadline:
                self._runner.signal([self.kind], sig)
                self._thread.join(1.0)
            if not self._thread.is_alive():
                return True
        return not self._thread.is_alive()


class Drill:
    def __init__(
        self,
        settings: Settings,
        server: ServerSettings,
        barman: Barman,
        runner: Runner,
        config: DrillConfig,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.server = server
        self.barman = barman
        self.runner = runner
        self.config = config
        self.stop = stop
        self.clock = clock
        self.kinds = {
            step: f"drill-{step}:{server.name}" for step in ("verify", "recover", "postgres")
        }
        self._deadline = 0.0
        self._cleanup: list[Path] = []

    # Public -------------------------------------------------------------------------------------
    def run(self) -> DrillResult:
        result = DrillResult(False, "", self.server.name, self.clock())
        started = time.monotonic()
        self._deadline = started + self.config.timeout
        watcher_done = threading.Event()
        watcher = threading.Thread(
            target=self._watch_stop, args=(watcher_done,), name=f"drill-stop-{self.server.name}"
        )
        watcher.start()
        _log.info(
            "drill_started", server=self.server.name, scratch_root=str(self.config.scratch_root)
        )
        try:
            self._run(result)
            result.ok = True
        except DrillFailed as exc:
            result.reason = str(exc)
            result.interrupted = isinstance(exc, Interrupted) or self.stop.is_set()
        except RunnerClosed:
            result.reason, result.interrupted = "interrupted by shutdown", True
        except Exception as exc:  # a drill must report, never take the job down
            _log.exception("drill_crashed", server=self.server.name)
            result.reason = f"{type(exc).__name__}: {exc}"
        finally:
            watcher_done.set()
            cleanup_started = time.monotonic()
            leftover = self._remove_scratch()
            result.timings["cleanup_s"] = round(time.monotonic() - cleanup_started, 3)
            if leftover:
                result.ok = False
                result.reason = "; ".join(filter(None, [result.reason, leftover]))
            watcher.join(5)
        if result.interrupted and result.reason and "shutdown" not in result.reason:
            result.reason = f"interrupted by shutdown ({result.reason})"
        result.duration_s = round(time.monotonic() - started, 3)
        _log.log(
            20 if result.ok else 30 if result.interrupted else 40,
            "drill_finished",
            **{k: v for k, v in result.as_dict().items() if v not in (None, "", {})},
        )
        return result

    # Steps --------------------------------------------------------------------------------------
    def _run(self, result: DrillResult) -> None:
        candidate = self._candidate()
        result.backup_id = candidate.backup_id
        facts = self._timed(result, "show_s", lambda: self._facts(candidate))
        result.pg_version = facts.version_num
        major = major_of(facts.version_num)
        bin_dir = find_bin_dir(major, self.config.pg_bin_dir)
        if bin_dir is None:
            raise DrillFailed(missing_server_programs(major, self.config.pg_bin_dir))
        try:
            run_as = server_user(os.geteuid(), self.settings.barman_user)
        except LookupError as exc:
            raise DrillFailed(str(exc)) from None
        self._check_space(candidate)
        self._check_reachable(run_as)
        self._check_stop()

        verification = self._timed(
            result,
            "verify_s",
            lambda: verify_backup(
                self.barman,
                self.server.name,
                candidate.backup_id,
                pg_bin_dir=self.config.pg_bin_dir,
                facts=facts,
                timeout=self._remaining(),
                kind=self.kinds["verify"],
            ),
        )
        self._check_stop()
        if not verification.ok:
            raise DrillFailed(f"backup verification failed: {verification.reason}")

        scratch = self._make_scratch(run_as)
        data = scratch / "data"
        restore_started = time.monotonic()
        self._timed(result, "recover_s", lambda: self._recover(candidate.backup_id, data))
        port = free_port()
        socket_dir = self._socket_dir(scratch, port, run_as)
        hba, ident = self._prepare(scratch, data, run_as)
        argv = [
            *run_as.prefix,
            "env",
            "-C",
            str(scratch),
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            *server_options(port, socket_dir, hba, ident, scratch / "external.pid"),
        ]
        postgres = _Server(self.runner, argv, self.kinds["postgres"], self._remaining())
        self._check_stop()
        start_started = time.monotonic()
        postgres.start()
        try:
            superuser = self._wait_until_promoted(postgres, socket_dir, port)
            result.timings["start_s"] = round(time.monotonic() - start_started, 3)
            query_started = time.monotonic()
            rows, databases, newest_commit = self._verify_data(socket_dir, port, superuser)
            result.timings["query_s"] = round(time.monotonic() - query_started, 3)
            result.restore_s = round(time.monotonic() - restore_started, 3)
            result.rows, result.databases = rows, databases
            result.newest_commit_at = newest_commit
            result.restored_as_of, result.restored_age_s = restored_age(
                newest_commit, candidate.end_time, self.clock()
            )
        finally:
            stop_started = time.monotonic()
            if not postgres.stop():
                _log.error("drill_postgres_not_stopped", server=self.server.name)
            result.timings["stop_s"] = round(time.monotonic() - stop_started, 3)

    def _candidate(self) -> Candidate:
        outcome = self.barman.run(
            "list-backups", self.server.name, kind=f"drill-list:{self.server.name}", timeout=60
        )
        if not outcome.ok:
            raise DrillFailed(f"barman list-backups failed: {outcome.reason()}")
        candidate = newest_done(outcome.data, self.server.name)
        if candidate is None:
            raise DrillFailed("no DONE backup to restore")
        return candidate

    def _facts(self, candidate: Candidate) -> BackupFacts:
        outcome = self.barman.run(
            "show-backup",
            self.server.name,
            candidate.backup_id,
            kind=f"drill-show:{self.server.name}",
            timeout=60,
        )
        facts = parse_show_backup(outcome.data, self.server.name) if outcome.ok else None
        if facts is None or not facts.version_num:
            raise DrillFailed(
                f"barman show-backup {candidate.backup_id} failed: {outcome.reason()}"
            )
        return facts

    def _check_space(self, candidate: Candidate) -> None:
        root = self.config.scratch_root
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o711)
            free = shutil.disk_usage(root).free
        except OSError as exc:
            raise DrillFailed(
                f"DRILL_SCRATCH_DIR {root}: {exc.strerror}; make it a writable directory"
            ) from None
        problem = space_problem(
            free,
            candidate.size_bytes + candidate.wal_bytes,
            self.config.space_factor,
            self.config.space_margin_bytes,
        )
        if problem is not None:
            raise DrillFailed(problem)

    def _check_reachable(self, run_as: RunAs) -> None:
        groups = set(os.getgrouplist(run_as.user, run_as.gid))
        blocked = unreachable_ancestor(self.config.scratch_root, run_as.uid, run_as.gid, groups)
        if blocked is not None:
            raise DrillFailed(
                f"user {run_as.user} (who runs the drill's PostgreSQL) cannot enter {blocked}; "
                "set DRILL_SCRATCH_DIR to a directory it can reach"
            )

    def _make_scratch(self, run_as: RunAs) -> Path:
        scratch = Path(
            tempfile.mkdtemp(prefix=f"{self.server.name}-", dir=self.config.scratch_root)
        )
        self._cleanup.append(scratch)
        if os.geteuid() == 0:
            os.chown(scratch, run_as.uid, run_as.gid)
        return scratch

    def _recover(self, backup_id: str, data: Path) -> None:
        outcome = self.barman.run(
            "recover",
            self.server.name,
            backup_id,
            str(data),
            kind=self.kinds["recover"],
            timeout=self._remaining(),
        )
        self._check_stop()
        if not outcome.ok:
            raise DrillFailed(f"barman recover failed: {outcome.reason()}")

    def _socket_dir(self, scratch: Path, port: int, run_as: RunAs) -> Path:
        if len(f"{scratch}/.s.PGSQL.{port}") <= _SOCKET_PATH_MAX:
            return scratch
        short = Path(tempfile.mkdtemp(prefix="bs-drill-"))
        self._cleanup.append(short)
        if os.geteuid() == 0:
            os.chown(short, run_as.uid, run_as.gid)
        return short

    def _prepare(self, scratch: Path, data: Path, run_as: RunAs) -> tuple[Path, Path]:
        """Make the copy startable as an archive recovery, owned by the server's user."""
        hba, ident = scratch / "drill_hba.conf", scratch / "drill_ident.conf"
        hba.write_text("local all all trust\n")
        ident.write_text("")
        (data / "standby.signal").unlink(missing_ok=True)
        (data / "recovery.signal").write_text("")
        # A Debian-style cluster keeps postgresql.conf in /etc: the backup then has none.
        (data / "postgresql.conf").touch()
        data.chmod(0o700)
        if os.geteuid() == 0 and run_as.uid != 0:
            for path in (scratch, hba, ident, *_tree(data)):
                os.lchown(path, run_as.uid, run_as.gid)
        return hba, ident

    def _wait_until_promoted(self, postgres: _Server, socket_dir: Path, port: int) -> str:
        """Poll the socket until the server accepts connections and is out of recovery; the
        name of the bootstrap superuser (OID 10) is read from ``pg_roles`` once in."""
        user = _conninfo_user(self.server) or "postgres"
        last = "no answer yet"
        while True:
            self._check_stop()
            if not postgres.running:
                raise DrillFailed(postgres.why_gone())
            if time.monotonic() > self._deadline:
                raise DrillFailed(
                    "PostgreSQL did not finish recovery within "
                    f"DRILL_TIMEOUT={self.config.timeout:g}s ({last})"
                )
            try:
                with _connect(socket_dir, port, user, "template1") as conn:
                    row = conn.execute(
                        "SELECT pg_is_in_recovery(), (SELECT rolname FROM pg_roles WHERE oid = 10)"
                    ).fetchone()
                    if row is not None and not row[0]:
                        return str(row[1])
                    last = "still in recovery"
            except psycopg.OperationalError as exc:
                last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no answer"
            self.stop.wait(0.2)

    def _verify_data(self, socket_dir: Path, port: int, user: str) -> tuple[int, int, float | None]:
        """Run the query in every database that accepts connections; sum what it returns."""
        with _connect(socket_dir, port, user, "template1") as conn:
            names = [
                str(row[0])
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
                    "ORDER BY datname"
                )
            ]
            stamp = conn.execute(
                "SELECT extract(epoch FROM pg_last_xact_replay_timestamp())::float8"
            ).fetchone()
        newest_commit = float(stamp[0]) if stamp is not None and stamp[0] is not None else None
        total = 0
        for name in names:
            self._check_stop()
            try:
                with _connect(socket_dir, port, user, name) as conn:
                    conn.execute(f"SET statement_timeout = {int(self._remaining() * 1000)}")
                    row = conn.execute(self.config.query).fetchone()
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DrillFailed(
                    f"verification query failed in database {name}: {first}"
                ) from None
            value = row[0] if row else None
            try:
                total += int(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise DrillFailed(
                    f"verification query returned {value!r} in database {name}; DRILL_QUERY must "
                    "return a number (e.g. a row count)"
                ) from None
        _log.info("drill_data_verified", server=self.server.name, rows=total, databases=len(names))
        return total, len(names), newest_commit

    # Helpers ------------------------------------------------------------------------------------
    def _timed(self, result: DrillResult, name: str, step: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return step()
        finally:
            result.timings[name] = round(time.monotonic() - started, 3)

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DrillFailed(f"DRILL_TIMEOUT={self.config.timeout:g}s reached")
        return remaining

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted()

    def _watch_stop(self, done: threading.Event) -> None:
        """A stop request ends whatever the drill thread is waiting for: ``verify`` and
        ``recover`` get SIGTERM, the temporary PostgreSQL a fast shutdown (SIGINT), which also
        cancels a running verification query. The drill thread then cleans up."""
        while not done.is_set():
            if self.stop.wait(0.2) and not done.is_set():
                self.runner.signal([self.kinds["verify"], self.kinds["recover"]], signal.SIGTERM)
                self.runner.signal([self.kinds["postgres"]], signal.SIGINT)
                done.wait(1.0)

    def _remove_scratch(self) -> str:
        problems = []
        for path in reversed(self._cleanup):
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                problems.append(f"could not delete scratch directory {path}")
                _log.error("drill_scratch_left", path=str(path))
        self._cleanup.clear()
        return "; ".join(problems)


def run_drill(
    settings: Settings,
    server: ServerSettings,
    barman: Barman,
    runner: Runner,
    config: DrillConfig,
    stop: threading.Event,
) -> DrillResult:
    """One restore drill of ``server``'s newest DONE backup; see the module docstring."""
    return Drill(settings, server, barman, runner, config, stop).run()


def _tree(root: Path) -> Iterator[Path]:
    yield root
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            yield Path(directory) / name


def _conninfo_user(server: ServerSettings) -> str | None:
    """The Barman role exists in every restored copy (Barman logged in with it)."""
    user = conninfo_to_dict(server.conninfo).get("user")
    return str(user) if user else None


@contextlib.contextmanager
def _connect(
    socket_dir: Path, port: int, user: str, dbname: str
) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(
        host=str(socket_dir),
        port=port,
        user=user,
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()
