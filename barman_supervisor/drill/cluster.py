"""The drill's temporary PostgreSQL and its scratch directories.

The server runs as an unprivileged user on a unix socket in the scratch directory only, as a
``Runner`` child on a thread of its own, so that the drill can poll it, and so that the daemon's
shutdown (which signals every running command) and the drill's own stop both reach the
postmaster. Every directory made here is deleted by ``Scratch.remove``, also after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from barman_supervisor.errors import DrillFailed, RunnerClosed, first_line
from barman_supervisor.log import get_logger
from barman_supervisor.postgres.programs import RunAs
from barman_supervisor.process.runner import Completed, Runner

_log = get_logger(__name__)
# Unix socket paths are limited to 107 bytes (sun_path); a longer scratch path moves the socket.
_SOCKET_PATH_MAX = 100
_STOP_STEPS = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0))
_STOP_POLL = 1.0
_CONNECT_TIMEOUT = 5
_PROMOTE_POLL = 0.2
_MS = 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Scratch:
    """Directories for one drill, owned by the user the temporary server runs as."""

    def __init__(self, root: Path, run_as: RunAs) -> None:
        self._root = root
        self._run_as = run_as
        self._made: list[Path] = []

    def make(self, prefix: str) -> Path:
        return self._own(Path(tempfile.mkdtemp(prefix=prefix, dir=self._root)))

    def socket_dir(self, scratch: Path, port: int) -> Path:
        if len(f"{scratch}/.s.PGSQL.{port}") <= _SOCKET_PATH_MAX:
            return scratch
        return self._own(Path(tempfile.mkdtemp(prefix="bs-drill-")))

    def _own(self, path: Path) -> Path:
        self._made.append(path)
        if os.geteuid() == 0:
            os.chown(path, self._run_as.uid, self._run_as.gid)
        return path

    def prepare(self, scratch: Path, data: Path) -> tuple[Path, Path]:
        """Make the copy startable as an archive recovery, owned by the server's user."""
        hba, ident = scratch / "drill_hba.conf", scratch / "drill_ident.conf"
        hba.write_text("local all all trust\n")
        ident.write_text("")
        (data / "standby.signal").unlink(missing_ok=True)
        (data / "recovery.signal").write_text("")
        # A Debian-style cluster keeps postgresql.conf in /etc: the backup then has none.
        (data / "postgresql.conf").touch()
        data.chmod(0o700)
        if os.geteuid() == 0 and self._run_as.uid != 0:
            for path in (scratch, hba, ident, *_tree(data)):
                os.lchown(path, self._run_as.uid, self._run_as.gid)
        return hba, ident

    def remove(self) -> str:
        """Delete everything made; what could not be deleted, or empty."""
        problems = []
        for path in reversed(self._made):
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                problems.append(f"could not delete scratch directory {path}")
                _log.error("drill_scratch_left", path=str(path))
        self._made.clear()
        return "; ".join(problems)


class TempServer:
    def __init__(
        self, runner: Runner, argv: list[str], kind: str, socket_dir: Path, port: int
    ) -> None:
        self._runner = runner
        self._argv = argv
        self.kind = kind
        self._socket_dir = socket_dir
        self._port = port
        self.last_error = ""
        self.completed: Completed | None = None
        self.failure: str | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        self._thread = threading.Thread(
            target=self._serve, args=(timeout,), name=self.kind, daemon=True
        )
        self._thread.start()

    def _serve(self, timeout: float) -> None:
        try:
            self.completed = self._runner.run(
                self._argv, kind=self.kind, timeout=timeout, on_line=self._line
            )
        except RunnerClosed as exc:
            self.failure = str(exc)
        except Exception as exc:  # reported as the drill's reason, never lost
            self.failure = f"{type(exc).__name__}: {exc}"

    def _line(self, _stream: str, text: str) -> None:
        for marker in ("FATAL:", "PANIC:"):
            if marker in text:
                self.last_error = text.split(marker, 1)[1].strip()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def why_gone(self) -> str:
        if self.failure:
            return self.failure
        code = self.completed.returncode if self.completed is not None else None
        return f"PostgreSQL exited ({self.last_error or f'exit code {code}'})"

    def stop(self) -> bool:
        """Fast shutdown, then immediate, then SIGKILL; True once the postmaster is gone."""
        for sig, grace in _STOP_STEPS:
            deadline = time.monotonic() + grace
            while self.running and time.monotonic() < deadline:
                self._runner.signal([self.kind], sig)
                if self._thread is not None:
                    self._thread.join(_STOP_POLL)
            if not self.running:
                return True
        return not self.running

    def wait_until_promoted(
        self, user: str, keep_waiting: Callable[[str], None], pause: Callable[[float], object]
    ) -> str:
        """Poll the socket until the server accepts connections and is out of recovery; the
        name of the bootstrap superuser (OID 10) is read from ``pg_roles`` once in.

        ``keep_waiting(last answer)`` raises when the drill must give up (stop, deadline)."""
        last = "no answer yet"
        while True:
            keep_waiting(last)
            if not self.running:
                raise DrillFailed(self.why_gone())
            try:
                with self.connect(user, "template1") as conn:
                    row = conn.execute(
                        "SELECT pg_is_in_recovery(), (SELECT rolname FROM pg_roles WHERE oid = 10)"
                    ).fetchone()
                    if row is not None and not row[0]:
                        return str(row[1])
                    last = "still in recovery"
            except psycopg.OperationalError as exc:
                last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no answer"
            pause(_PROMOTE_POLL)

    def verify_data(
        self, user: str, query: str, remaining: Callable[[], float]
    ) -> tuple[int, int, float | None]:
        """Run the query in every database that accepts connections; sum what it returns.
        (rows, databases, newest replayed commit); ``remaining()`` raises past the deadline."""
        with self.connect(user, "template1") as conn:
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
            try:
                with self.connect(user, name) as conn:
                    conn.execute(f"SET statement_timeout = {int(remaining() * _MS)}")
                    row = conn.execute(query).fetchone()
            except psycopg.Error as exc:
                raise DrillFailed(
                    f"verification query failed in database {name}: {first_line(exc)}"
                ) from None
            value = row[0] if row else None
            try:
                total += int(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise DrillFailed(
                    f"verification query returned {value!r} in database {name}; DRILL_QUERY must "
                    "return a number (e.g. a row count)"
                ) from None
        return total, len(names), newest_commit

    @contextlib.contextmanager
    def connect(self, user: str, dbname: str) -> Iterator[psycopg.Connection[Any]]:
        conn = psycopg.connect(
            host=str(self._socket_dir),
            port=self._port,
            user=user,
            dbname=dbname,
            connect_timeout=_CONNECT_TIMEOUT,
            autocommit=True,
        )
        try:
            yield conn
        finally:
            conn.close()


def _tree(root: Path) -> Iterator[Path]:
    yield root
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            yield Path(directory) / name
