"""One daemon per Barman home and per configuration file.

A second daemon on the same home would stop the first one's streaming as "leftovers", take its
own backups beside it and stop its streaming again when it exits. So the daemon takes two
exclusive ``flock`` locks before it touches anything: one on the Barman home directory itself
(an open directory can be locked; nothing is written into it) and one on a lock file in
``/run/lock`` (else ``/tmp``) whose name is derived from the configuration file's absolute path.

``flock`` locks belong to an open file: the kernel drops them when the process dies, even with
``kill -9``, so a crash never leaves a stale lock behind. The holder's PID is read back from
``/proc/locks`` for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

from barman_supervisor.errors import ConfigError

# Fixed places (not $TMPDIR) so that every daemon on the machine looks in the same one.
LOCK_DIRECTORIES = (Path("/run/lock"), Path("/tmp"))  # noqa: S108 - a lock, not data


def lock_directory() -> Path:
    for directory in LOCK_DIRECTORIES:
        if directory.is_dir() and os.access(directory, os.W_OK | os.X_OK):
            return directory
    return LOCK_DIRECTORIES[-1]


class AlreadyRunning(ConfigError):
    """Another daemon holds the lock; the message names its PID."""


def config_lock_path(config_file: Path, directory: Path | None = None) -> Path:
    """The lock file for a configuration file: the same path always gives the same lock."""
    digest = hashlib.sha256(str(config_file.absolute()).encode()).hexdigest()[:16]
    return (directory or lock_directory()) / f"barman-supervisor-{digest}.lock"


def lock_holder(device: int, inode: int, locks_text: str) -> int | None:
    """The PID holding a FLOCK on a file, from the text of ``/proc/locks``.

    A line reads ``1: FLOCK  ADVISORY  WRITE 4242 fe:01:131 0 EOF`` (device major:minor in
    hexadecimal, inode in decimal); waiting requests (``1: -> FLOCK ...``) are not holders.
    """
    wanted = f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"
    for line in locks_text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            return int(fields[4]) if fields[4].isdigit() else None
    return None


class InstanceLock:
    """Holds the locks for the life of the process; ``release`` is for tests and shutdown."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._homes: set[Path] = set()

    def hold_config(self, config_file: Path) -> None:
        self.acquire(config_lock_path(config_file), "BARMAN_CONFIG_FILE", shown=config_file)

    def hold_home(self, home: Path) -> bool:
        """Lock the Barman home if it exists (creating it is a write: callers lock it again
        once they may write); True once it is held. Idempotent."""
        if home in self._homes:
            return True
        if not home.is_dir():
            return False
        self.acquire(home, "BARMAN_HOME", directory=True)
        self._homes.add(home)
        return True

    def acquire(
        self, path: Path, what: str, *, directory: bool = False, shown: Path | None = None
    ) -> None:
        """Lock ``path`` (a directory, or a file created if missing) or raise AlreadyRunning
        naming ``what`` and ``shown`` (the path an operator knows; default ``path``)."""
        flags = os.O_RDONLY | (os.O_DIRECTORY if directory else os.O_CREAT)
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot open to lock ({exc.strerror}); make it accessible"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = f"PID {holder}" if holder is not None else "another process"
            raise AlreadyRunning(
                f"{what} {shown or path} is in use by another barman-supervisor ({who}); stop it "
                "first or point this one at another home and configuration"
            ) from None
        self._fds.append(fd)

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._homes.clear()


def _holder(fd: int) -> int | None:
    try:
        stat = os.fstat(fd)
        return lock_holder(stat.st_dev, stat.st_ino, Path("/proc/locks").read_text())
    except OSError:
        return None
