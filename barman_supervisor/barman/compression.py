"""Compressed base backups (issue 13): what each choice needs, as pure decisions.

Barman hands ``backup_compression`` to ``pg_basebackup --compress`` and stores the backup as
compressed tar files. It then reads those files back with ``tar --use-compress-program
<program>``: the ``backup_label`` at the end of every backup, every file at restore. Without
that program on ``PATH`` every backup ends FAILED ("Backup failed copying files ... zstd: Cannot
exec"), which is what happened in this project's image before it carried ``zstd``.

Everything here that depends on the server (its major) or on this host (the programs on
``PATH``) is decided at start-up, with the variable to change and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from barman_supervisor.config import BackupPolicy
from barman_supervisor.postgres.programs import major_of

# pg_basebackup learned lz4, zstd and compression on the server in PostgreSQL 15.
COMPRESSION_MIN_VERSION = 150000
# What Barman runs (beside tar) to read a backup of each compression; Debian packages the
# programs under the same names.
READ_PROGRAMS = {"gzip": "gzip", "lz4": "lz4", "zstd": "zstd"}
# pg_verifybackup reads tar-format (compressed) backups from PostgreSQL 18 on.
TAR_VERIFY_MIN_MAJOR = 18
TAR_VERIFY_REFUSAL = "Verification of tar format backups requires"


def compression_problems(
    policy: BackupPolicy, server_version_num: int, on_path: Callable[[str], bool]
) -> list[str]:
    """Why this server or host cannot take (or read back) the configured compressed backups,
    each naming the variable and the fix; empty when they can or compression is off.
    ``on_path(program)`` says whether Barman finds ``program`` on its ``PATH``."""
    if not policy.compression:
        return []
    var, location_var = "BACKUP_COMPRESSION", "BACKUP_COMPRESSION_LOCATION"
    major = major_of(server_version_num)
    problems = []
    if server_version_num < COMPRESSION_MIN_VERSION:
        if policy.compression != "gzip":
            problems.append(
                f"{var}={policy.compression} needs PostgreSQL 15 or newer and the server is "
                f"{major}; set {var}=gzip (or none)"
            )
        if policy.compression_location == "server":
            problems.append(
                f"{location_var}=server needs PostgreSQL 15 or newer and the server is {major}; "
                f"set {location_var}=client"
            )
    for program in ("tar", READ_PROGRAMS[policy.compression]):
        if not on_path(program):
            problems.append(
                f"{var}={policy.compression}: Barman reads compressed backups with tar and "
                f"{READ_PROGRAMS[policy.compression]}, and {program} is not on PATH; install "
                f"{program} beside Barman or set {var}=none"
            )
    return problems


def unverifiable(messages: Iterable[tuple[str, str]]) -> str:
    """Why ``barman verify-backup`` left a compressed backup unchecked, or empty.

    Barman refuses to verify a compressed (tar) backup with a ``pg_verifybackup`` older than
    18 and says so as an error. Such a backup is not bad: it stays unverified, and a restore
    drill is what proves it.
    """
    for level, text in messages:
        if level == "error" and TAR_VERIFY_REFUSAL in text:
            return (
                f"not verified: {text.strip()}; install postgresql-client-{TAR_VERIFY_MIN_MAJOR} "
                "(or point PG_BIN_DIR at it) to verify compressed backups, and keep "
                "DRILL_SCHEDULE set to prove them restorable"
            )
    return ""
