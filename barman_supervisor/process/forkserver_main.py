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

* from the daemon: ``{"id", "argv", "env"}`` with three descriptors (stdin, stdout, stderr), and
  ``"script"`` when the child runs that Python script (``barman-cloud-*``, the store listing)
  rather than Barman's CLI;
* the third argument is padding: room for the children's command lines (``set_command_line``);
  the fourth, comma-separated modules to import once beside Barman's CLI (may be empty);
* to the daemon: ``{"ready": true}`` once Barman is imported; ``{"id", "pid"}`` after each fork;
  ``{"id", "exit"}`` with the exit code (negative: the signal) when that child ends.

End of file on the socket (the daemon closed it or died) ends this process; children that still
run go on, reparented to the daemon, which stops them in its shutdown as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import Any

MESSAGE_BYTES = 1 << 20
STDIO = 3
# /proc/PID/stat fields 48 and 49 (man 5 proc), counted from the state field (field 3)
ARG_START, ARG_END = 48 - 3, 49 - 3


def main() -> None:
    # Started by path, Python puts this file's directory first on sys.path: its ``barman.py``
    # would shadow Barman's package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    channel = socket.socket(fileno=int(sys.argv[1]))
    barman_bin = sys.argv[2]
    modules = sys.argv[4].split(",") if len(sys.argv) > 4 and sys.argv[4] else []
    set_command_line([sys.executable, barman_bin, "fork-server"])
    sys.argv = [barman_bin]  # Barman's parser takes its name (``prog``) from it at import
    importlib.import_module("barman.cli")  # the cost paid once
    preload(modules)

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


def preload(modules: list[str]) -> None:
    """Import what the children will need (the cloud clients and their provider, boto3 for
    S3) once, here. One that does not import is left for the child, which then fails as it
    would have without this server."""
    for module in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def serve(
    channel: socket.socket, barman_bin: str, children: dict[int, int], own: tuple[int, int]
) -> bool:
    """One request: fork its child; False at end of file."""
    message, fds, _flags, _address = socket.recv_fds(channel, MESSAGE_BYTES, STDIO)
    if not message:
        return False
    request = json.loads(message)
    settled_read, settled_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(settled_read)
        inherited = [channel.fileno(), *own]
        os._exit(run_child(request, fds, inherited, settled_write, barman_bin))
    os.close(settled_write)
    # Reported once the child is in its own session and shows Barman's command line: the
    # daemon may signal its group or look for it among Barman's processes at once.
    os.read(settled_read, 1)
    os.close(settled_read)
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
    request: dict[str, Any], fds: list[int], inherited: list[int], settled: int, barman_bin: str
) -> int:
    """In the forked child: a session of its own, the given stdio, the command's environment
    (``settled`` closed once all that holds), then Barman's CLI entry point. Returns the exit
    code for ``os._exit``."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in {*fds, *inherited} - {0, 1, 2}:
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()  # backup IDs are local time: TZ is the command's
    script = request.get("script")
    sys.argv = [script or barman_bin, *request["argv"]]
    set_command_line([sys.executable, *sys.argv])
    os.close(settled)
    code = 0
    try:
        if script:
            runpy.run_path(script, run_name="__main__")  # as ``python script`` runs it
        else:
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


def set_command_line(words: list[str]) -> None:
    """Show ``words`` as this process's command line, as a script started by its interpreter
    shows it: ``ps``, an operator, and every tool that finds Barman's processes by their
    command line (the daemon's own, ``barman`` itself) see ``… barman -c … receive-wal srv``,
    not the fork server's. The kernel reads /proc/PID/cmdline from the memory that held the
    original arguments (``arg_start``..``arg_end`` in /proc/self/stat); Python copied them at
    start, so they are rewritten in place. The daemon pads the server's arguments to leave
    room; what does not fit is cut."""
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[ARG_START]), int(fields[ARG_END])
    text = b"\0".join(word.encode() for word in words)[: end - start - 1]
    ctypes.memmove(start, text.ljust(end - start, b"\0"), end - start)


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
