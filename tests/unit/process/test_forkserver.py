"""The fork server's mechanics: output, exit codes, signals, environment, and falling back to
plain processes. A stand-in ``barman`` package plays the CLI here (the fork server only needs
``barman.cli.main``); tests/integration/test_forkserver.py runs real Barman through it."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from barman_supervisor.process.forkserver import ForkServer, interpreter_of
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from tests.support.poll import wait_until

CLI = textwrap.dedent(
    """
    import os, sys, time

    def main():
        command, *rest = sys.argv[1:]
        if command == "echo":
            print(" ".join(rest), os.environ.get("SAID", "-"), os.path.basename(sys.argv[0]))
            print("to stderr", file=sys.stderr)
        elif command == "exit":
            sys.exit(int(rest[0]))
        elif command == "sleep":  # a long command to signal or time out, not a wait
            time.sleep(float(rest[0]))
        elif command == "raise":
            raise RuntimeError("boom")
        elif command == "pid":
            print(os.getpid(), os.getsid(0))
    """
)
DEADLINE = 10.0


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """A ``barman`` script with a Python ``#!`` line, its stand-in package beside it."""
    package = tmp_path / "lib" / "barman"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text(CLI)
    script = tmp_path / "bin" / "barman"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nfrom barman.cli import main\nmain()\n")
    script.chmod(0o755)
    return script


@pytest.fixture
def env(program: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(program.parent.parent / "lib")}


@pytest.fixture
def served(program: Path, env: dict[str, str]) -> Iterator[tuple[Runner, ForkServer]]:
    supervisor = Pid1()
    forkserver = ForkServer.start(str(program), env, supervisor)
    assert forkserver is not None
    runner = Runner(supervisor, env)
    runner.serve_from(forkserver)
    try:
        yield runner, forkserver
    finally:
        runner.close_forkserver()


def test_the_interpreter_is_read_from_the_scripts_first_line(tmp_path: Path, program: Path) -> None:
    shell = tmp_path / "shell"
    shell.write_text("#!/bin/sh\nexec true\n")
    assert interpreter_of(program) == sys.executable
    assert interpreter_of(shell) is None
    assert interpreter_of(tmp_path / "missing") is None


def test_a_forked_command_prints_and_exits_as_its_own_process_would(
    served: tuple[Runner, ForkServer], program: Path
) -> None:
    runner, _ = served
    forked = [runner.run([str(program), *argv], kind="t") for argv in COMMANDS]
    runner.serve_from(None)
    plain = [runner.run([str(program), *argv], kind="t") for argv in COMMANDS]

    assert [(c.returncode, c.stdout) for c in forked] == [(c.returncode, c.stdout) for c in plain]
    assert forked[0].stdout == "a b - barman\n" and forked[0].stderr == "to stderr\n"
    assert [c.returncode for c in forked] == [0, 3, 1]
    assert "RuntimeError: boom" in forked[2].stderr


COMMANDS = (["echo", "a", "b"], ["exit", "3"], ["raise"])


def test_each_command_gets_its_own_environment_and_session(
    served: tuple[Runner, ForkServer], program: Path
) -> None:
    runner, _ = served
    said = runner.run([str(program), "echo", "x"], kind="t", env={"SAID": "hello"})
    again = runner.run([str(program), "echo", "x"], kind="t")
    pid, session = runner.run([str(program), "pid"], kind="t").stdout.split()

    assert said.stdout.split()[1] == "hello" and again.stdout.split()[1] == "-"
    assert pid == session  # a session of its own: a signal to the daemon's group misses it


def test_a_forked_command_is_signalled_and_timed_out_like_any_other(
    served: tuple[Runner, ForkServer], program: Path
) -> None:
    runner, _ = served
    result: list[int] = []
    sleeper = threading.Thread(
        target=lambda: result.append(runner.run([str(program), "sleep", "30"], kind="s").returncode)
    )
    sleeper.start()
    wait_until(lambda: runner.running_kinds() == ["s"], DEADLINE, what="the forked sleep")
    assert runner.signal(["s"], signal.SIGTERM) == 1
    sleeper.join(DEADLINE)
    timed_out = runner.run([str(program), "sleep", "30"], kind="t", timeout=0.2)

    assert result == [-signal.SIGTERM]
    assert timed_out.timed_out and timed_out.returncode == -signal.SIGTERM


def test_when_the_server_dies_commands_start_as_their_own_processes_again(
    served: tuple[Runner, ForkServer], program: Path
) -> None:
    runner, forkserver = served
    os.kill(forkserver.pid, signal.SIGKILL)
    wait_until(lambda: not forkserver.alive, DEADLINE, what="the fork server's death")

    completed = runner.run([str(program), "echo", "after"], kind="t")

    assert not forkserver.alive
    assert completed.ok and completed.stdout.startswith("after - barman")


def test_a_program_that_is_no_python_script_gets_no_server(tmp_path: Path) -> None:
    shell = tmp_path / "barman"
    shell.write_text("#!/bin/sh\nexec true\n")
    shell.chmod(0o755)

    assert ForkServer.start(str(shell), {"PATH": os.environ["PATH"]}, Pid1()) is None


def test_an_interpreter_that_cannot_import_barman_gets_no_server(tmp_path: Path) -> None:
    broken = tmp_path / "lib" / "barman"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('no Barman here')\n")
    script = tmp_path / "barman"
    script.write_text(f"#!{sys.executable}\n")
    script.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "lib")}

    assert ForkServer.start(str(script), env, Pid1()) is None


def test_a_detached_command_runs_on_in_a_session_of_its_own(
    served: tuple[Runner, ForkServer], program: Path
) -> None:
    runner, _ = served
    pid = runner.start_detached([str(program), "sleep", "30"], kind="receive-wal")
    assert pid is not None
    try:
        assert os.getsid(pid) == pid
        assert runner.running_kinds() == []  # nobody waits for it
        # seen as Barman's process by its command line, as if started on its own
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        assert cmdline == [sys.executable.encode(), str(program).encode(), b"sleep", b"30"]
    finally:
        os.kill(pid, signal.SIGKILL)


def test_without_a_fork_server_nothing_is_started_detached(program: Path) -> None:
    runner = Runner(Pid1(), {"PATH": os.environ["PATH"]})

    assert runner.start_detached([str(program), "sleep", "30"], kind="receive-wal") is None


SCRIPT = textwrap.dedent(
    """
    import os, sys
    preloaded = "barman.preloaded" in sys.modules
    print(os.getppid(), os.path.basename(sys.argv[0]), *sys.argv[1:], preloaded)
    sys.exit(4)
    """
)


def test_other_scripts_of_barmans_interpreter_are_forked_with_the_modules_preloaded(
    program: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """``barman-cloud-*`` beside ``barman`` and ``python script.py`` fork from the server (their
    parent is the server), with the modules asked for imported once there; a module that does
    not import is left for the child; a script of another interpreter starts on its own."""
    (program.parent.parent / "lib" / "barman" / "preloaded.py").write_text("")
    cloud = program.parent / "barman-cloud-thing"
    cloud.write_text(f"#!{sys.executable}\n{SCRIPT}")
    listing = tmp_path / "listing.py"
    listing.write_text(SCRIPT)
    other = tmp_path / "other"
    other.write_text(f"#!/usr/bin/python3.99\n{SCRIPT}")
    supervisor = Pid1()
    forkserver = ForkServer.start(
        str(program), env, supervisor, ("barman.preloaded", "barman.does_not_exist")
    )
    assert forkserver is not None
    runner = Runner(supervisor, env)
    runner.serve_from(forkserver)
    try:
        by_name = runner.run([str(cloud), "a"], kind="t")
        by_path = runner.run([sys.executable, str(listing), "b"], kind="t")
        assert not forkserver.serves([str(other)]) and not forkserver.serves(["relative"])
        assert not forkserver.serves([sys.executable, "-c", "pass"])
    finally:
        runner.close_forkserver()

    assert by_name.returncode == 4 and by_path.returncode == 4
    assert by_name.stdout.split() == [str(forkserver.pid), "barman-cloud-thing", "a", "True"]
    assert by_path.stdout.split() == [str(forkserver.pid), "listing.py", "b", "True"]
