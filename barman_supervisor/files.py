"""Files the daemon writes whole, replaced in one step.

A crash or a power cut must leave the old content or the new one, never a mix, a truncated
file or none: Barman reads ``backup.info`` and its configuration on every command, and the
off-site ledger remembers what the store holds. So the text goes to a temporary file beside
the target, is synced to disk, renamed over the target, and the directory is synced so that
the rename itself survives.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# What open(2) asks for when no mode is given; the process umask narrows it, as for any file.
_DEFAULT_MODE = 0o666
_SUFFIX_BYTES = 4


def write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` (UTF-8). ``mode``: the file's permissions, exactly (the
    umask does not apply); None: the umask's default. On any failure the target is untouched
    and no temporary file is left behind."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(_SUFFIX_BYTES)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _DEFAULT_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            if mode is not None:
                os.fchmod(stream.fileno(), mode)
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
