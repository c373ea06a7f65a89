"""What Barman and the PostgreSQL tools inherit from the daemon's environment: an allow-list.

``/proc/PID/environ`` is readable by the user, and a child needs none of the daemon's URLs or
passwords: only the locale, the time zone (Barman's backup IDs follow it), where programs and the
home are, and libpq's TLS and service settings. PGPASSFILE is set to the daemon's .pgpass;
PGPASSWORD is never passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

CHILD_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "PGSSLMODE",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGSSLROOTCERT",
        "PGSSLCRL",
        "PGSSLCRLDIR",
        "PGSSLSNI",
        "PGGSSENCMODE",
        "PGREQUIRESSL",
        "PGSERVICEFILE",
        "PGSYSCONFDIR",
        "PGCONNECT_TIMEOUT",
        "PGCLIENTENCODING",
    }
)
CHILD_ENV_PREFIXES = ("LC_",)


def child_environment(environ: Mapping[str, str], pgpass_file: Path) -> dict[str, str]:
    """What Barman and the PostgreSQL tools inherit: the allow-list, nothing else."""
    env = {
        name: value
        for name, value in environ.items()
        if (name in CHILD_ENV_NAMES or name.startswith(CHILD_ENV_PREFIXES))
        and _encodable(name + value)
    }
    env["PGPASSFILE"] = str(pgpass_file)
    return env


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
