"""Which PostgreSQL programs to use for a backup, and as which system user to run the server.

A backup can only be started by the server binaries of its own major version, and Debian puts
each major in ``/usr/lib/postgresql/<major>/bin`` without putting ``pg_verifybackup`` or
``postgres`` on ``PATH`` (``/usr/bin`` only holds the client wrappers). So the programs are found
from the version recorded in the backup, unless ``PG_BIN_DIR`` names a directory.

Backups and WAL streaming use the client programs on ``PATH`` instead (Barman runs
``pg_basebackup`` and ``pg_receivewal`` from there): they work against servers of their own major
and older ones, never newer, so one set of the newest clients serves every supported major. A
server newer than them is refused at start-up (``major_problem``), before anything is written.

PostgreSQL refuses to run as root; a daemon running as root starts it as an unprivileged user
through ``setpriv``, which ``exec``s the server in place: the pid the daemon waits for and signals
is the postmaster itself (``runuser``/``su`` would sit in between and turn a SIGTERM into a
SIGKILL two seconds later).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from barman_supervisor.process.runner import Runner

DEBIAN_ROOT = Path("/usr/lib/postgresql")
# Debian's ``/usr/bin`` client programs are links to postgresql-common's wrapper, a Perl program
# that picks a major and runs that major's program: ~30 ms of CPU per call, several calls per
# ``barman check`` and backup. These are the wrapped programs Barman runs.
WRAPPER = "pg_wrapper"
WRAPPED_CLIENTS = ("pg_basebackup", "pg_receivewal")
# Under BARMAN_HOME: links to the programs the wrapper runs (``link_clients``).
CLIENT_LINKS = ".clients"
# The client program whose version stands for all of them (one package ships them together).
CLIENT_PROGRAM = "pg_basebackup"
CLIENT_VERSION_TIMEOUT = 30.0
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


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


def installed_majors(root: Path = DEBIAN_ROOT, program: str = "postgres") -> list[int]:
    """Majors under Debian's layout that have ``program``, oldest first."""
    try:
        names = [entry.name for entry in root.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
    return sorted(int(name) for name in names if find_bin_dir(int(name), None, root, program))


def missing_server_programs(
    major: int, configured: Path | None = None, root: Path = DEBIAN_ROOT
) -> str:
    """The one line a drill (or /status) gives when no server programs of ``major`` are here."""
    where = configured or root / str(major) / "bin"
    available = ", ".join(str(m) for m in installed_majors(root)) or "none"
    return (
        f"no PostgreSQL {major} server programs in {where} (the backup is from PostgreSQL "
        f"{major}; server programs here: {available}); restore drills of PostgreSQL {major} need "
        f"them: install postgresql-{major} and set PG_BIN_DIR to its bin directory, or leave "
        "DRILL_SCHEDULE empty for this server"
    )


@dataclass(frozen=True)
class Clients:
    """The client programs on ``PATH`` Barman runs: their directory and major (None: none)."""

    directory: str | None
    major: int | None


def client_major(version_output: str) -> int | None:
    """``pg_basebackup (PostgreSQL) 18.1 (Debian 18.1-1)`` → 18; ``… 9.6.24`` → 9."""
    match = _VERSION.search(version_output)
    return int(match.group(1)) if match else None


def find_client(path: str | None) -> str | None:
    """Where ``pg_basebackup`` is on this ``PATH`` (what Barman will run), or None."""
    return shutil.which(CLIENT_PROGRAM, path=path)


def major_problem(server_version_num: int, clients: Clients) -> str | None:
    """Why the client programs cannot serve this server, or None.

    ``pg_basebackup`` and ``pg_receivewal`` refuse a server of a newer major than their own, and
    ``barman check`` only says "incompatible": refuse the server at start-up instead, naming the
    major and the fix, so that nothing half-works.
    """
    server = major_of(server_version_num)
    if clients.directory is None:
        return (
            f"no {CLIENT_PROGRAM} on PATH; install postgresql-client-{server} (or newer) beside "
            "Barman"
        )
    if clients.major is None:
        return f"{clients.directory}: cannot tell its version; check {CLIENT_PROGRAM} --version"
    if server > clients.major:
        return (
            f"PostgreSQL {server} is newer than the client programs here (PostgreSQL "
            f"{clients.major}, {clients.directory}), which refuse a newer server; use an image "
            f"with PostgreSQL {server} client programs (or newer), or put postgresql-client-"
            f"{server} first on PATH"
        )
    return None


def programs_status(
    server_version_num: int, clients: Clients, configured: Path | None, root: Path = DEBIAN_ROOT
) -> dict[str, Any]:
    """For /status: which programs back up this server and which ones its drills start."""
    major = major_of(server_version_num)
    server_dir = find_bin_dir(major, configured, root)
    return {
        "client": {"major": clients.major, "dir": clients.directory},
        "server": {
            "major": major,
            "dir": str(server_dir) if server_dir else None,
            "drill": None if server_dir else missing_server_programs(major, configured, root),
        },
    }


def probe_clients(runner: Runner, path: str | None) -> Clients:
    """The client programs Barman will run, with the major ``pg_basebackup --version`` names."""
    found = find_client(path)
    if found is None:
        return Clients(None, None)
    completed = runner.run(
        [found, "--version"], kind="client-version", timeout=CLIENT_VERSION_TIMEOUT
    )
    major = client_major(completed.stdout) if completed.ok else None
    return Clients(str(Path(found).parent), major)


def unwrapped_clients(clients: Clients, root: Path = DEBIAN_ROOT) -> Path | None:
    """Where the programs Debian's wrapper runs are (those of the major it reported), when the
    ``pg_basebackup`` on PATH is that wrapper and the directory holds every program Barman runs
    through it; None when there is no wrapper to skip."""
    if clients.directory is None or clients.major is None:
        return None
    if (Path(clients.directory) / CLIENT_PROGRAM).resolve().name != WRAPPER:
        return None
    directory = debian_bin_dir(clients.major, root)
    if all(os.access(directory / name, os.X_OK) for name in WRAPPED_CLIENTS):
        return directory
    return None


def link_clients(source: Path, links: Path) -> None:
    """``links`` holds links to ``source``'s WRAPPED_CLIENTS and nothing else: first on the
    children's PATH it skips the wrapper for exactly those. The whole directory first on PATH
    would also put its major's ``pg_verifybackup`` and ``pg_combinebackup`` ahead of others, and
    a newer major's ``pg_verifybackup`` rejects an older backup's ``pg_control``."""
    links.mkdir(mode=0o755, exist_ok=True)
    for name in WRAPPED_CLIENTS:
        staging = links / f".{name}.new"
        staging.unlink(missing_ok=True)
        staging.symlink_to(source / name)
        os.replace(staging, links / name)


def survey(
    server_version_num: int, clients: Clients, configured: Path | None
) -> tuple[list[str], dict[str, Any]]:
    """At start-up: why this server cannot be served (empty when it can) and the /status field."""
    problem = major_problem(server_version_num, clients)
    return ([problem] if problem else []), programs_status(server_version_num, clients, configured)


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
