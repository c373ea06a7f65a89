"""The fork server's own process: Barman's interpreter imports Barman's CLI once, then forks one
child per command, and each child enters Barman through its CLI entry point with its arguments.

Every Barman command used to be a fresh Python that spent about 0.3 s of CPU importing Barman
before doing anything; fifty servers pay that hundreds of times an hour. A fork pays it never,
and its pages stay shared with this process. What the command does, prints and exits with is
Barman's own: the child runs ``barman.cli.main()`` exactly as the ``barman`` script does.

This file runs under the interpreter that has Barman installed (read from ``BARMAN_BIN``'s
``#!`` line), which need not have this package: it uses the standard library only, and the
daemon starts it by path. Protocol, one datagram each way on an ``AF_UNIX``/``SOCK_SEQPACKET``
socket inherited as file descriptor ``argv[1]``:

* from the daemon: ``{"id", "argv", "env"}`` with three descriptors (stdin, stdout, stderr);
* to the daemon: ``{"ready": true}`` once Barman is imported; ``{"id", "pid"}`` after each fork;
  ``{"id", "exit"}`` with the exit code (negative: the signal) when that child ends.

End of file on the socket (the daemon closed it or died) ends this process; children that still
run go on, reparented to the daemon, which stops them in its shutdown as before.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback

MESSAGE_BYTES = 1 << 20
STDIO = 3


def main() -> None:
    # Started by path, Python puts this file's directory first on sys.path: its ``barman.py``
    # would shadow Barman's package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    channel = socket.socket(fileno=int(sys.argv[1]))
    barman_bin = sys.argv[2]
    sys.argv = [barman_bin]  # Barman's parser takes its name (``prog``) from it at import
    importlib.import_module("barman.cli")  # the cost paid once

    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    children: dict[int, int] = {}
    send(channel, {"ready": True})
    while True:
        for key, _events in selector.select():
            if key.fileobj is wake_read:
                os.read(wake_read, 4096)
            elif not serve(channel, barman_bin, children, (wake_read, wake_write)):
                return
        reap(channel, children)


def serve(
    channel: socket.socket, barman_bin: str, children: dict[int, int], own: tuple[int, int]
) -> bool:
    """One request: fork its child; False at end of file."""
    message, fds, _flags, _address = socket.recv_fds(channel, MESSAGE_BYTES, STDIO)
    if not message:
        return False
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        os._exit(
            run_child(request["argv"], request["env"], fds, [channel.fileno(), *own], barman_bin)
        )
    for fd in fds:
        os.close(fd)
    children[pid] = request["id"]
    send(channel, {"id": request["id"], "pid": pid})
    return True


def reap(channel: socket.socket, children: dict[int, int]) -> None:
    """Every child that ended, reported with its exit code (as ``subprocess`` gives it)."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        request_id = children.pop(pid, None)
        if request_id is not None:
            send(channel, {"id": request_id, "exit": os.waitstatus_to_exitcode(status)})


def send(channel: socket.socket, message: dict[str, object]) -> None:
    channel.send(json.dumps(message).encode())


def run_child(
    argv: list[str], env: dict[str, str], fds: list[int], inherited: list[int], barman_bin: str
) -> int:
    """In the forked child: a session of its own, the given stdio, the command's environment,
    then Barman's CLI entry point. Returns the exit code for ``os._exit``."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in {*fds, *inherited} - {0, 1, 2}:
        os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()  # backup IDs are local time: TZ is the command's
    sys.argv = [barman_bin, *argv]
    code = 0
    try:
        importlib.import_module("barman.cli").main()
    except SystemExit as exc:
        code = exit_code(exc.code)
    except BaseException:  # what an uncaught exception does to a fresh interpreter
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code


def exit_code(code: object) -> int:
    """``sys.exit``'s argument as the process's exit code, the interpreter's way."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
