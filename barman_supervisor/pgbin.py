"""Which PostgreSQL programs to use for a backup, and as which system user to run the server.

A backup can only be started by the server binaries of its own major version, and Debian puts
each major in ``/usr/lib/postgresql/<major>/bin`` without putting ``pg_verifybackup`` or
``postgres`` on ``PATH`` (``/usr/bin`` only holds the client wrappers). So the programs are found
from the version recorded in the backup, unless ``PG_BIN_DIR`` names a directory.

PostgreSQL refuses to run as root; a daemon running as root starts it as an unprivileged user
through ``setpriv``, which ``exec``s the server in place: the pid the daemon waits for and signals
is the postmaster itself (``runuser``/``su`` would sit in between and turn a SIGTERM into a
SIGKILL two seconds later).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

DEBIAN_ROOT = Path("/usr/lib/postgresql")


def major_of(version_num: int) -> int:
    """``150018`` → 15; ``90624`` → 9 (9.6 and older are not restorable by this tool anyway)."""
    return version_num // 10000


def debian_bin_dir(major: int, root: Path = DEBIAN_ROOT) -> Path:
    """Where Debian installs one major's programs."""
    return root / str(major) / "bin"


def find_bin_dir(
    major: int, configured: Path | None = None, root: Path = DEBIAN_ROOT, program: str = "postgres"
) -> Path | None:
    """The directory holding ``program`` for this major: the configured one, else Debian's."""
    candidates = [configured] if configured is not None else [debian_bin_dir(major, root)]
    for candidate in candidates:
        if (candidate / program).is_file() and os.access(candidate / program, os.X_OK):
            return candidate
    return None


def find_tool_dir(
    major: int, configured: Path | None = None, root: Path = DEBIAN_ROOT
) -> Path | None:
    """A directory with ``pg_verifybackup`` able to read this backup: its own major if installed,
    else the newest installed (manifests are read by any newer version), never an older one."""
    exact = find_bin_dir(major, configured, root, "pg_verifybackup")
    if exact is not None or configured is not None:
        return exact
    try:
        majors = sorted(
            (int(entry.name) for entry in root.iterdir() if entry.name.isdigit()), reverse=True
        )
    except OSError:
        return None
    for candidate in majors:
        if candidate >= major:
            found = find_bin_dir(candidate, None, root, "pg_verifybackup")
            if found is not None:
                return found
    return None


def path_with(directory: Path, path: str | None) -> str:
    """``PATH`` with ``directory`` first, so Barman finds that major's programs before others."""
    return os.pathsep.join([str(directory), *(p for p in (path or os.defpath).split(os.pathsep))])


@dataclass(frozen=True)
class RunAs:
    """The system user a temporary PostgreSQL runs as; ``prefix`` is empty when no switch."""

    user: str
    uid: int
    gid: int
    prefix: tuple[str, ...]


def server_user(euid: int, barman_user: str) -> RunAs:
    """Root runs the server as ``barman_user`` (unless that is root too), else as ``postgres``;
    anyone else runs it as themselves. Raises ``LookupError`` when the user does not exist."""
    if euid != 0:
        entry = pwd.getpwuid(euid)
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, ())
    name = barman_user if barman_user not in ("root", "") else "postgres"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise LookupError(
            f"no system user {name!r} to run PostgreSQL as (it refuses root); create it or set "
            "BARMAN_USER to an unprivileged user"
        ) from None
    if entry.pw_uid == 0:
        raise LookupError(f"user {name!r} has uid 0; PostgreSQL refuses to run as root")
    prefix = (
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--init-groups",
        "--",
    )
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, prefix)
