"""The drill's pure parts: its settings and result, and the decisions it makes from plain data."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from barman_supervisor.barman.space import space_problem as barman_space_problem
from barman_supervisor.config import ServerSettings, Settings

# Reads every user table (count(*) has to visit each heap page or its visibility map), so a
# restored but unreadable table fails the drill. One number per database: the rows counted.
DEFAULT_QUERY = (
    "SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format("
    "'SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]"
    "::text::bigint), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'm') AND (c.relkind = 'r' OR c.relispopulated) "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%'"
)


@dataclass(frozen=True)
class DrillConfig:
    """The drill's settings; their defaults are the settings' (see the README table)."""

    scratch_root: Path
    query: str
    timeout: float
    pg_bin_dir: Path | None
    space_factor: float
    space_margin_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, server: ServerSettings) -> DrillConfig:
        return cls(
            scratch_root=settings.drill_scratch_dir,
            query=server.drill_query or DEFAULT_QUERY,
            timeout=settings.drill_timeout,
            pg_bin_dir=settings.pg_bin_dir,
            space_factor=settings.drill_space_factor,
            space_margin_bytes=settings.drill_space_margin_bytes,
        )


def space_problem(free_bytes: int, needed_bytes: int, factor: float, margin: int) -> str | None:
    """Why the scratch disk is too small, or None. The restored copy is about the backup plus
    the WAL after it; ``factor`` covers what PostgreSQL writes while it recovers."""
    return barman_space_problem(
        free_bytes,
        needed_bytes,
        factor,
        margin,
        what="the drill",
        needed_label="backup and WAL",
        hint="free space or point DRILL_SCRATCH_DIR at a larger disk",
    )


def unreachable_ancestor(path: Path, uid: int, gid: int, groups: set[int]) -> Path | None:
    """The first directory on the way to ``path`` that user ``uid`` cannot traverse, if any."""
    if uid == 0:
        return None
    current = Path(path.anchor)
    for part in path.parts[1:]:
        current = current / part
        try:
            info = current.stat()
        except FileNotFoundError:
            return None
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid or info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return current
    return None


def server_options(
    port: int, socket_dir: Path, hba_file: Path, ident_file: Path, pid_file: Path
) -> list[str]:
    """``-c`` options that win over anything in the restored configuration files.

    They keep the temporary server private (no TCP, trust only on its own socket), harmless
    (no archiving into the real archive, its own external pid file, no replication to a primary,
    no synchronous standby to wait for) and small (its own memory, no huge pages, no fsync
    for a copy that is deleted minutes later). ``hot_standby`` is off: nothing connects before
    the end of recovery, and the primary's ``max_connections`` & co. then need not be matched.
    """
    options = {
        "listen_addresses": "",
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        "unix_socket_permissions": "0700",
        "hba_file": str(hba_file),
        "ident_file": str(ident_file),
        # the restored configuration may name the real server's pid file
        "external_pid_file": str(pid_file),
        "archive_mode": "off",
        "archive_command": "",
        "restore_command": "false",
        "primary_conninfo": "",
        "primary_slot_name": "",
        "hot_standby": "off",
        "synchronous_standby_names": "",
        "logging_collector": "off",
        "log_destination": "stderr",
        "shared_buffers": "128MB",
        "huge_pages": "off",
        "ssl": "off",
        "fsync": "off",
    }
    return [arg for key, value in options.items() for arg in ("-c", f"{key}={value}")]


def restored_age(
    newest_commit_at: float | None, backup_end: float | None, now: float
) -> tuple[float | None, float | None]:
    """(as of, age): the restored data is at least as recent as the backup's end and as its
    newest replayed commit, whichever is later (an idle primary commits nothing after a backup)."""
    stamps = [stamp for stamp in (newest_commit_at, backup_end) if stamp is not None]
    if not stamps:
        return None, None
    as_of = max(stamps)
    return as_of, round(max(0.0, now - as_of), 3)
