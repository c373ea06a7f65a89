"""The one place that runs commands: every line they print becomes a log event.

Children start in a session of their own, so a Ctrl-C in a terminal (SIGINT to the foreground
process group) reaches only the daemon, which then decides what to stop and when: a backup
interrupted by a stray signal is a silent loss.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from barman_supervisor.errors import RunnerClosed
from barman_supervisor.log import RepeatFilter, get_logger
from barman_supervisor.process.forkserver import ForkServer
from barman_supervisor.process.pid1 import Pid1

_log = get_logger(__name__)
_TERM_GRACE = 10.0
# Seconds to wait for a command's output once it ended: a process it left behind may hold its
# pipes open, and the command's result must not wait for that process.
_READERS_GRACE = 5.0


def path_with(directory: Path, path: str | None) -> str:
    """``PATH`` with ``directory`` first, so Barman finds that major's programs before others."""
    return os.pathsep.join([str(directory), *(p for p in (path or os.defpath).split(os.pathsep))])


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class Child(Protocol):
    """What the runner uses of a command's process: a ``subprocess.Popen`` or a command the
    fork server forked (``forkserver.ForkedProcess``)."""

    pid: int

    @property
    def stdout(self) -> IO[str] | None: ...

    @property
    def stderr(self) -> IO[str] | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


@dataclass
class _Running:
    process: Child
    kind: str
    started: float


class Runner:
    def __init__(
        self,
        supervisor: Pid1,
        env: Mapping[str, str],
        repeat_filter: RepeatFilter | None = None,
    ) -> None:
        self._supervisor = supervisor
        self._env = dict(env)
        self._repeats = repeat_filter or RepeatFilter()
        self._lock = threading.Lock()
        self._running: dict[int, _Running] = {}
        self._closed = False
        self._reopened: frozenset[str] = frozenset()
        self._forkserver: ForkServer | None = None

    @property
    def path(self) -> str | None:
        """The children's ``PATH``."""
        return self._env.get("PATH")

    def put_first_on_path(self, directory: Path) -> None:
        """Children started from now on look in ``directory`` before the rest of ``PATH``."""
        self._env = {**self._env, "PATH": path_with(directory, self.path)}

    def serve_from(self, forkserver: ForkServer | None) -> None:
        """Barman's commands from now on start as forks of ``forkserver`` (None: as their own
        processes again, e.g. after ``close_forkserver``)."""
        self._forkserver = forkserver

    def start_detached(self, argv: Sequence[str], kind: str) -> int | None:
        """A long-running Barman command forked from the fork server and not waited for (its
        pid); None without a fork server: the caller then has Barman start it its own way."""
        forkserver = self._forkserver
        if forkserver is None or not argv or argv[0] != forkserver.program:
            return None
        with self._lock:
            if self._closed:
                raise RunnerClosed(kind)
        pid = forkserver.start_detached(argv, self._env)
        if pid is not None:
            _log.info("command_started_detached", command=" ".join(argv), pid=pid)
        return pid

    def close_forkserver(self) -> None:
        """At shutdown, once every command ended."""
        forkserver, self._forkserver = self._forkserver, None
        if forkserver is not None:
            forkserver.close()

    def close(self) -> None:
        """From now on only commands marked ``during_shutdown`` start."""
        with self._lock:
            self._closed = True

    def reopen_for(self, kinds: Iterable[str]) -> None:
        """Once closed, commands of these kinds start again: the last WAL round of a shutdown,
        run after everything else stopped, is made of commands the jobs also run."""
        with self._lock:
            self._reopened = frozenset(kinds)

    def running_kinds(self) -> list[str]:
        with self._lock:
            return [entry.kind for entry in self._running.values()]

    def signal(self, kinds: Sequence[str] | None, sig: int) -> int:
        """Send a signal to running commands of these kinds (all when None); returns how many."""
        with self._lock:
            targets = [e for e in self._running.values() if kinds is None or e.kind in kinds]
        for entry in targets:
            with contextlib.suppress(ProcessLookupError):
                entry.process.send_signal(sig)
        return len(targets)

    def run(
        self,
        argv: Sequence[str],
        *,
        kind: str,
        timeout: float | None = None,
        echo_stdout: bool = True,
        during_shutdown: bool = False,
        on_line: Callable[[str, str], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Completed:
        """Run to completion, logging each output line; on timeout SIGTERM, then SIGKILL.

        ``env`` overrides variables of the daemon's child environment for this command only.
        """
        with self._lock:
            if self._closed and not during_shutdown and kind not in self._reopened:
                raise RunnerClosed(kind)
        command = " ".join(argv)
        started = time.monotonic()
        process = self._spawn(argv, env)
        with self._lock:
            self._running[process.pid] = _Running(process, kind, started)
        _log.debug("command_started", command=command, pid=process.pid)
        output = self._read_output(process, command, echo_stdout, on_line)
        returncode, timed_out = self._wait(process, timeout, command)
        stdout, stderr = output()
        duration = time.monotonic() - started
        result = Completed(tuple(argv), returncode, stdout, stderr, duration, timed_out)
        _log.log(
            logging.INFO if result.ok else logging.WARNING,
            "command_finished",
            command=command,
            exit_code=returncode,
            duration_s=round(duration, 3),
        )
        return result

    def _read_output(
        self,
        process: Child,
        command: str,
        echo_stdout: bool,
        on_line: Callable[[str, str], None] | None,
    ) -> Callable[[], tuple[str, str]]:
        """One reader thread per stream, logging each line as it comes (stdout only when
        ``echo_stdout``); the call returned waits for them and gives (stdout, stderr)."""
        collected: dict[str, list[str]] = {"stdout": [], "stderr": []}
        readers = [
            threading.Thread(
                target=self._pump,
                args=(
                    stream,
                    name,
                    command,
                    collected[name],
                    echo_stdout or name == "stderr",
                    on_line,
                ),
                daemon=True,
            )
            for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
        ]
        for reader in readers:
            reader.start()

        def finished() -> tuple[str, str]:
            for reader in readers:
                reader.join(_READERS_GRACE)
            return "".join(collected["stdout"]), "".join(collected["stderr"])

        return finished

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str] | None) -> Child:
        """In a session of its own (a signal to the daemon's group never reaches it), with the
        child environment; registered with the supervisor so that the reaper leaves it alone.
        Barman's own commands, and the other scripts of its interpreter (``barman-cloud-*``),
        fork from the fork server when there is one."""
        forkserver = self._forkserver
        if forkserver is not None and forkserver.serves(argv):
            forked = forkserver.spawn(argv, {**self._env, **(env or {})})
            if forked is not None:
                return forked
        return self._supervisor.spawn(
            lambda: subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                env={**self._env, **(env or {})},
                start_new_session=True,
            ),
            lambda child: child.pid,
        )

    def _wait(self, process: Child, timeout: float | None, command: str) -> tuple[int, bool]:
        """(exit code, timed out); a command past its timeout is stopped."""
        timed_out = False
        try:
            try:
                returncode = process.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _log.warning("command_timed_out", command=command, timeout_s=timeout)
                returncode = self._stop(process)
        finally:
            with self._lock:
                self._running.pop(process.pid, None)
            self._supervisor.release(process.pid)
        return returncode, timed_out

    def _pump(
        self,
        stream: object,
        name: str,
        command: str,
        sink: list[str],
        echo: bool,
        on_line: Callable[[str, str], None] | None,
    ) -> None:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            sink.append(line)
            text = line.rstrip("\n")
            if on_line is not None:
                on_line(name, text)
            if echo and text.strip():
                self.log_line(text, command=command, stream=name)

    def log_line(self, text: str, level: int = logging.INFO, **fields: object) -> None:
        """Log one line of a child's output unless it is repeated noise."""
        admitted, held_back = self._repeats.admit(text)
        if held_back:
            _log.info("repeated_lines_suppressed", count=held_back, example=text, **fields)
        if admitted:
            _log.log(level, "command_output", line=text, **fields)

    def _stop(self, process: Child) -> int:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(_TERM_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return process.wait()
