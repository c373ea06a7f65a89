"""Real Barman through the fork server: each command prints and exits exactly as the ``barman``
program started on its own does (what it saves is measured in ``make bench``)."""

from __future__ import annotations

import os
from pathlib import Path

from barman_supervisor.process.forkserver import ForkServer
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Completed, Runner
from tests.support.paths import BARMAN


def commands(tmp_path: Path) -> list[list[str]]:
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "barman.conf"
    config.write_text(
        f"[barman]\nbarman_home = {home}\nbarman_user = {os.environ.get('USER', 'root')}\n"
        f"log_file = {tmp_path / 'barman.log'}\n"
        "[pg]\nconninfo = host=127.0.0.1 port=1 user=nobody dbname=postgres\n"
        "streaming_conninfo = host=127.0.0.1 port=1 user=nobody\nbackup_method = postgres\n"
        "streaming_archiver = on\nslot_name = barman\n"
    )
    base = [BARMAN, "-c", str(config), "-f", "json"]
    return [
        [BARMAN, "-v"],
        [BARMAN, "--no-such-option"],
        [*base, "list-servers"],
        [*base, "list-backups", "pg"],
        [*base, "show-backup", "pg", "20260101T000000"],
        [*base, "show-servers", "nope"],
    ]


def outcome(completed: Completed) -> tuple[int, str, str]:
    return completed.returncode, completed.stdout, completed.stderr


def test_commands_forked_print_and_exit_as_barman_on_its_own(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    supervisor = Pid1()
    forkserver = ForkServer.start(BARMAN, env, supervisor)
    assert forkserver is not None, "the fork server did not start for Barman"
    runner = Runner(supervisor, env)
    argvs = commands(tmp_path)
    plain = [outcome(runner.run(argv, kind="plain")) for argv in argvs]
    runner.serve_from(forkserver)
    try:
        forked = [outcome(runner.run(argv, kind="forked")) for argv in argvs]
    finally:
        runner.close_forkserver()

    assert forked == plain
    assert [code for code, _out, _err in forked] == [0, 2, 0, 0, 1, 1]
    assert forked[0][1].startswith("3.")
