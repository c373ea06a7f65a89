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
# GNU tar's record size when Barman extracts a compressed backup (``tar --use-compress-program
# zstd -xf``: a restore, a drill): tar reads the decompressor's pipe one record at a time, 10 KiB
# by default. Measured on a 770 MB zstd backup on 2 cores (bench/peer.py): extraction 2.0 s with
# 10 KiB records, 1.7 s with 256 KiB, 1.7 s with 1 MiB, 2.1 s with 4 MiB (best of three); the
# whole `barman recover` 2.45 -> 2.0 s (median of four). Barman gives tar no options of its own,
# and TAR_OPTIONS is how GNU tar takes them.
TAR_OPTIONS = "--record-size=262144"


def child_environment(environ: Mapping[str, str], pgpass_file: Path) -> dict[str, str]:
    """What Barman and the PostgreSQL tools inherit: the allow-list, nothing else."""
    env = {
        name: value
        for name, value in environ.items()
        if (name in CHILD_ENV_NAMES or name.startswith(CHILD_ENV_PREFIXES))
        and _encodable(name + value)
    }
    env["PGPASSFILE"] = str(pgpass_file)
    env["TAR_OPTIONS"] = TAR_OPTIONS
    return env


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
