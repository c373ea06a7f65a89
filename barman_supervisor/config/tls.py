"""TLS to PostgreSQL: ``PG_SSLMODE``, ``PG_SSLROOTCERT``, ``PG_SSLCERT`` and ``PG_SSLKEY`` as
libpq's connection keywords, and the checks of their files at start.

They go into the server's conninfo and streaming conninfo, so the daemon's own connections,
Barman's and its children's (``pg_basebackup``, ``pg_receivewal``) all use them; they are paths
and a mode, never a secret, so the conninfo stays fit for Barman's file and ``ps``. A file libpq
would refuse (missing, unreadable, a key others may read) is refused here first, in one line
naming the variable, before anything is written: libpq's own refusal would come only once
PostgreSQL answers, and read as a server that is not there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping

from barman_supervisor.config.checks import absolute_path
from barman_supervisor.config.env import Env
from barman_supervisor.errors import ConfigError

# Each variable and the libpq keyword it sets.
TLS_VARIABLES = {
    "PG_SSLMODE": "sslmode",
    "PG_SSLROOTCERT": "sslrootcert",
    "PG_SSLCERT": "sslcert",
    "PG_SSLKEY": "sslkey",
}
TLS_KEYWORDS = tuple(TLS_VARIABLES.values())
# libpq (>= 16) takes sslrootcert=system for the system's trusted roots: no file to check.
SYSTEM_ROOTS = "system"
_WHAT = {
    "sslrootcert": "the CA certificate",
    "sslcert": "the client certificate",
    "sslkey": "the client certificate's key",
}
# libpq's rule for a key file (fe-secure-openssl.c): owned by root, at most u=rw,g=r (0640);
# owned by anyone else, no access for group or others (0600).
_ROOT_KEY_FORBIDDEN = stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO
_USER_KEY_FORBIDDEN = stat.S_IRWXG | stat.S_IRWXO


def tls_parameters(env: Env, server: str) -> dict[str, str]:
    """The libpq keywords the environment sets for ``server`` (none: libpq's own defaults)."""
    params = {}
    mode = env.choice("PG_SSLMODE", server)
    if mode:
        params["sslmode"] = mode
    for var, keyword in TLS_VARIABLES.items():
        if keyword == "sslmode":
            continue
        value = env.text(var, server)
        if value and not (keyword == "sslrootcert" and value == SYSTEM_ROOTS):
            absolute_path(env.name_of(var, server), value)
        if value:
            params[keyword] = value
    return params


def tls_names(env: Env, server: str) -> dict[str, str]:
    """The variable that applies for each keyword (``PG_SSLKEY__REPORTS`` when set), and for
    ``host``: what a one-line refusal about this server's TLS names."""
    names = {keyword: env.name_of(var, server) for var, keyword in TLS_VARIABLES.items()}
    names["host"] = env.name_of("PG_HOST", server)
    return names


def mounted_tls_names(server: str) -> dict[str, str]:
    """For a mounted Barman file: the keyword in that server's conninfo."""
    return {keyword: f"{keyword} in [{server}]'s conninfo" for keyword in (*TLS_KEYWORDS, "host")}


def refuse_tls_variables(env: Env, server: str) -> None:
    """The daemon does not write a mounted Barman file, so PG_SSL* would reach its own
    connections but not Barman's: refused, the conninfo is where they go."""
    for var, keyword in TLS_VARIABLES.items():
        name, value = env.raw(var, server)
        if value and value.strip():
            raise ConfigError(
                f"{name}: the Barman configuration is mounted, not rendered; set {keyword}= in "
                f"the conninfo and streaming_conninfo of [{server}] and unset {name}"
            )


def key_access_refused(owner_uid: int, mode: int) -> bool:
    """Whether libpq refuses a private key file with this owner and mode."""
    forbidden = _ROOT_KEY_FORBIDDEN if owner_uid == 0 else _USER_KEY_FORBIDDEN
    return bool(mode & forbidden)


def tls_file_problem(
    params: Mapping[str, str],
    names: Mapping[str, str],
    stat_of: Callable[[str], os.stat_result] = os.stat,
    readable: Callable[[str], bool] = lambda path: os.access(path, os.R_OK),
) -> str | None:
    """The first TLS file of a conninfo that libpq would refuse, as one line; None when all
    will do. A certificate without its key (or the reverse) is refused too: libpq would look
    for the other one in ``~/.postgresql`` and fail at the first connection."""
    cert, key = params.get("sslcert"), params.get("sslkey")
    if bool(cert) != bool(key):
        given, missing = ("sslcert", "sslkey") if cert else ("sslkey", "sslcert")
        return (
            f"{names[given]}: set without {names[missing]}; a client certificate needs its key: "
            f"set both or neither"
        )
    for keyword in ("sslrootcert", "sslcert", "sslkey"):
        path = params.get(keyword)
        if not path or (keyword == "sslrootcert" and path == SYSTEM_ROOTS):
            continue
        name, what = names[keyword], _WHAT[keyword]
        try:
            facts = stat_of(path)
        except OSError:
            return f"{name}: {path!r} does not exist; mount {what} there or fix the path"
        if not stat.S_ISREG(facts.st_mode):
            return f"{name}: {path!r} is not a file; point it at {what}"
        if not readable(path):
            return (
                f"{name}: {path!r} is not readable by the daemon's user (uid {os.geteuid()}); "
                "make it readable by that user"
            )
        if keyword == "sslkey" and key_access_refused(facts.st_uid, facts.st_mode):
            return (
                f"{name}: {path!r} has mode {stat.S_IMODE(facts.st_mode):04o} (owner uid "
                f"{facts.st_uid}), which libpq refuses for a private key; chmod 0600 it owned by "
                "the daemon's user, or 0640 owned by root"
            )
    return None


def check_tls_files(params: Mapping[str, str], names: Mapping[str, str]) -> None:
    problem = tls_file_problem(params, names)
    if problem is not None:
        raise ConfigError(problem)
