"""Barman commands as forks of one process that imported Barman once (``forkserver_main``).

The ``Runner`` asks ``ForkServer.spawn`` for every command the server can run (``serves``):
``BARMAN_BIN`` itself, and any other Python script of Barman's interpreter (``barman-cloud-*``
beside it, or ``python script.py`` with that interpreter: the store listing), and gets a
``ForkedProcess``: the subset of ``subprocess.Popen`` the runner uses (pid, stdout,
stderr, wait, send_signal), so logging, timeouts, signals and shutdown stay the runner's.

When the fork server cannot start (``BARMAN_BIN`` is not a Python script, its interpreter cannot
import Barman) or dies, commands start as plain processes again: slower, never wrong.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from barman_supervisor.errors import first_line
from barman_supervisor.log import get_logger
from barman_supervisor.process.pid1 import Pid1

_log = get_logger(__name__)
SERVER_SCRIPT = Path(__file__).with_name("forkserver_main.py")
READY_TIMEOUT = 30.0
MESSAGE_BYTES = 1 << 16
# Padding in the server's arguments: the memory each child rewrites into its own command line.
COMMAND_LINE_ROOM = " " * 4096
# What a command gets when the fork server died under it: its exit code is lost with it.
LOST_EXIT_CODE = 255


def interpreter_of(program: Path) -> str | None:
    """The Python of a ``#!/…/python`` script (how pip installs ``barman``); None otherwise."""
    try:
        with program.open("rb") as script:
            first = script.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    command = first[2:].decode(errors="replace").split()
    if not command or "python" not in Path(command[0]).name:
        return None
    return command[0]


class ForkedProcess:
    """One command forked by the server; ``wait`` ends when the server reports its exit."""

    def __init__(self, pid: int, stdout: io.TextIOWrapper, stderr: io.TextIOWrapper) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._ended = threading.Event()

    def ended(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired("barman", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if not self._ended.is_set():
            os.kill(self.pid, sig)


class _Pending:
    """A request between fork and exit: the pid arrives first, then the exit code (which can
    come before ``spawn`` made the ``ForkedProcess``: a fast command)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.forked = threading.Event()
        self.process: ForkedProcess | None = None
        self.code: int | None = None


class ForkServer:
    def __init__(
        self,
        process: subprocess.Popen[bytes],
        channel: socket.socket,
        program: str,
        supervisor: Pid1,
        python: str,
    ) -> None:
        self._process = process
        self._channel = channel
        self.program = program
        self.python = python
        self._interpreters: dict[str, str | None] = {}
        self._supervisor = supervisor
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._alive = True
        self._closing = threading.Event()
        for target, name in ((self._read, "forkserver"), (self._drain, "forkserver-stderr")):
            threading.Thread(target=target, name=name, daemon=True).start()

    @classmethod
    def start(
        cls,
        program: str,
        env: Mapping[str, str],
        supervisor: Pid1,
        preload: Sequence[str] = (),
    ) -> ForkServer | None:
        """The server for ``program`` (``BARMAN_BIN``), ready; None when it cannot serve.

        ``preload``: more modules the server imports once beside Barman's CLI (the
        ``barman-cloud-*`` clients and their provider when a store is configured: about 0.45 s
        of CPU each of those commands would otherwise pay)."""
        path = shutil.which(program, path=env.get("PATH"))
        python = interpreter_of(Path(path)) if path else None
        if path is None or python is None:
            _log.info("forkserver_not_used", reason=f"{program} is not a Python script")
            return None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = supervisor.spawn(
                lambda: subprocess.Popen(
                    [
                        python,
                        str(SERVER_SCRIPT),
                        str(theirs.fileno()),
                        path,
                        COMMAND_LINE_ROOM,
                        ",".join(preload),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=dict(env),
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                ),
                lambda child: child.pid,
            )
        except OSError as exc:
            ours.close()
            _log.warning("forkserver_not_used", reason=first_line(exc))
            return None
        finally:
            theirs.close()
        ours.settimeout(READY_TIMEOUT)
        try:
            ready = json.loads(ours.recv(MESSAGE_BYTES) or b"{}").get("ready") is True
        except (OSError, ValueError):
            ready = False
        if not ready:
            process.kill()
            said = process.communicate()[1].decode(errors="replace").strip().splitlines()
            supervisor.release(process.pid)
            ours.close()
            _log.warning("forkserver_not_used", reason=said[-1] if said else "did not start")
            return None
        ours.settimeout(None)
        _log.info("forkserver_started", pid=process.pid, python=python)
        return cls(process, ours, program, supervisor, python)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        with self._lock:
            return self._alive

    def serves(self, argv: Sequence[str]) -> bool:
        """Whether ``argv`` runs under the server's interpreter, so a fork of it can run it."""
        return bool(argv) and (argv[0] == self.program or self._script(argv) is not None)

    def _script(self, argv: Sequence[str]) -> tuple[str, list[str]] | None:
        """The script a fork runs and its arguments: ``[script, *args]`` for a script of the
        server's interpreter (its ``#!`` line, read once per path), ``[python, script.py,
        *args]`` for that interpreter given a script file; None for anything else (Barman's
        own program is not a script here: its child enters Barman's CLI directly)."""
        first = argv[0]
        if first == self.python:
            rest = list(argv[1:])
            return (rest[0], rest[1:]) if rest and rest[0].endswith(".py") else None
        if not Path(first).is_absolute():
            return None
        if first not in self._interpreters:
            self._interpreters[first] = interpreter_of(Path(first))
        return (first, list(argv[1:])) if self._interpreters[first] == self.python else None

    def spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> ForkedProcess | None:
        """Fork ``argv`` (``argv[0]`` is the program, ``serves(argv)``); None when the server
        is gone."""
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        with open(os.devnull, "rb") as stdin:
            try:
                _request_id, pending = self._request(
                    argv, env, (stdin.fileno(), stdout_write, stderr_write)
                )
            finally:
                os.close(stdout_write)
                os.close(stderr_write)
        if pending.pid is None:
            os.close(stdout_read)
            os.close(stderr_read)
            return None
        process = ForkedProcess(
            pending.pid,
            open(stdout_read, encoding="utf-8", errors="replace"),  # noqa: SIM115 (the runner reads it to the end)
            open(stderr_read, encoding="utf-8", errors="replace"),  # noqa: SIM115
        )
        with self._lock:
            pending.process = process
            code = pending.code
        if code is not None:
            process.ended(code)
        return process

    def start_detached(self, argv: Sequence[str], env: Mapping[str, str]) -> int | None:
        """Fork a long-running command nobody waits for (``receive-wal``), its output to
        /dev/null as ``barman cron`` gives it; its pid, or None when the server is gone."""
        with open(os.devnull, "r+b") as null:
            request_id, pending = self._request(argv, env, (null.fileno(),) * 3)
        with self._lock:
            self._pending.pop(request_id, None)  # its exit is nobody's business here
        return pending.pid

    def _request(
        self, argv: Sequence[str], env: Mapping[str, str], stdio: tuple[int, int, int]
    ) -> tuple[int, _Pending]:
        """Send one fork request and wait for its pid (``pending.pid`` None: not forked)."""
        pending = _Pending()
        request_id = next(self._ids)
        script = None if argv[0] == self.program else self._script(argv)
        request: dict[str, object] = {"id": request_id, "argv": list(argv[1:]), "env": dict(env)}
        if script is not None:
            request["script"], request["argv"] = script
        message = json.dumps(request)
        with self._lock:
            alive = self._alive
            if alive:
                self._pending[request_id] = pending
        if not alive:
            return request_id, pending
        try:
            with self._send_lock:
                socket.send_fds(self._channel, [message.encode()], list(stdio))
        except OSError:
            with self._lock:
                self._pending.pop(request_id, None)
            return request_id, pending
        pending.forked.wait()
        return request_id, pending

    def _drain(self) -> None:
        """What the server itself prints (nothing, unless it breaks) goes to the log."""
        assert self._process.stderr is not None
        for line in self._process.stderr:
            _log.warning("forkserver_output", line=line.decode(errors="replace").rstrip())

    def _read(self) -> None:
        """Dispatch the server's reports; at its end, every command still waiting is told."""
        while True:
            try:
                data = self._channel.recv(MESSAGE_BYTES)
            except OSError:
                data = b""
            if not data:
                break
            self._dispatch(json.loads(data))
        if not self._closing.is_set():
            self._process.poll()  # a server that died is reaped here (the reaper leaves it)
        with self._lock:
            self._alive = False
            left = list(self._pending.values())
            self._pending.clear()
        if left or not self._closing.is_set():
            _log.error("forkserver_died", commands_lost=len(left))
        for pending in left:
            pending.forked.set()
            if pending.process is not None:
                pending.process.ended(LOST_EXIT_CODE)

    def _dispatch(self, report: dict[str, int]) -> None:
        with self._lock:
            pending = self._pending.get(report["id"])
            if pending is None:
                return
            if "pid" in report:
                pending.pid = report["pid"]
                pending.forked.set()
                return
            del self._pending[report["id"]]
            process = pending.process
            if process is None:
                pending.code = report["exit"]
        if process is not None:
            process.ended(report["exit"])

    def close(self) -> None:
        """End the server (end of file on its socket); commands it forked are not touched."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._channel.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(READY_TIMEOUT)
        self._supervisor.release(self._process.pid)
        self._channel.close()
