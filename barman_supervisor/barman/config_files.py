"""Barman's configuration files and the password file, written from the settings.

Passwords go to a ``.pgpass`` file (mode 0600) that every Barman child finds through
``PGPASSFILE``, never into a conninfo string: conninfo ends up on disk, in ``ps`` output and in
Barman's log file.

Every Barman command builds the configuration of every server it reads, whatever server it
acts on: with 50 servers that was 0.9 s of CPU per command (ConfigParser, 30 ms a server), and
every command of every server paid it. In render mode the daemon's commands for one server
therefore read a file of their own, holding the same global section and that server's section
only (``command_config``); ``barman.conf`` with ``barman.d/`` stays the whole configuration, for
``barman cron`` and for people.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from barman_supervisor.config import (
    RENDERED_MARKER,
    ServerSettings,
    Settings,
    conninfo_addresses,
    foreign_config_files,
)
from barman_supervisor.errors import ConfigError
from barman_supervisor.files import write_atomically

_HEADER = f"{RENDERED_MARKER} from the environment; edits are overwritten at every start.\n"
# The line of ``barman check`` (its JSON key) that compares the DONE full backups with
# ``minimum_redundancy``: it fails until the first backup is DONE. Barman calls it non-critical
# (it does not stop a backup); readiness asks for a DONE backup by itself.
MINIMUM_REDUNDANCY_CHECK = "minimum_redundancy_requirements"


def _ini_value(value: str) -> str:
    """ConfigParser (which Barman uses with interpolation) reads '%' as a reference."""
    return value.replace("%", "%%")


def render_global(settings: Settings, with_servers_directory: bool = True) -> str:
    lines = [
        _HEADER,
        "[barman]",
        f"barman_user = {settings.barman_user}",
        f"barman_home = {_ini_value(str(settings.barman_home))}",
        f"log_file = {_ini_value(str(settings.barman_log_file))}",
        "log_level = INFO",
        *(
            [f"configuration_files_directory = {_ini_value(str(settings.barman_config_dir))}"]
            if with_servers_directory
            else []
        ),
        # Where a restore combines an incremental chain (pg_combinebackup) or unpacks a
        # compressed backup; Barman's own default is /tmp, often a small tmpfs.
        f"staging_path = {_ini_value(str(staging_path(settings)))}",
        "staging_location = local",
        "",
    ]
    return "\n".join(lines)


def render_server(server: ServerSettings) -> str:
    """A streaming-only server: ``backup_method = postgres`` needs no SSH and no archive_command."""
    lines = [
        _HEADER,
        f"[{server.name}]",
        f"description = {server.name} (managed by barman-supervisor)",
        f"conninfo = {_ini_value(server.conninfo)}",
        f"streaming_conninfo = {_ini_value(server.streaming_conninfo)}",
        "backup_method = postgres",
        "streaming_archiver = on",
        "archiver = off",
        f"slot_name = {server.slot_name}",
        # cron recreates a missing slot on its own; start-up also creates it explicitly.
        "create_slot = auto",
        f"retention_policy = {server.retention_policy}",
        "wal_retention_policy = main",
        # The floor under retention: Barman never deletes below it (REDUNDANCY n less than it
        # is raised to it), so a policy or a hand can never remove the last backup.
        f"minimum_redundancy = {server.minimum_redundancy}",
        # Barman's first backup purges the WAL streamed before it; that WAL is what the store's
        # older backups need to be restored past a handover (a server moved between replicas, a
        # volume replaced). Skipping that purge is worm_mode's one effect with a local archive;
        # retention removes the WAL with the first backup.
        "worm_mode = on",
    ]
    if server.bandwidth_limit_kbps:
        # pg_basebackup --max-rate: keeps a backup from saturating the primary's disk or link.
        lines.append(f"bandwidth_limit = {server.bandwidth_limit_kbps}")
    return "\n".join([*lines, *_compression_lines(server), ""])


def has_command_configs(settings: Settings) -> bool:
    """Whether each server has a file of its own: only when the daemon renders the files."""
    return settings.config_mode == "render"


def command_config(settings: Settings, server: str | None) -> Path:
    """The file a Barman command for ``server`` reads: its own when it has one, else (and for
    commands on every server) the whole configuration."""
    if server is None or not has_command_configs(settings):
        return settings.barman_config_file
    return _command_config_dir(settings) / f"{server}.conf"


def reads_this_configuration(settings: Settings, cmdline: Sequence[str]) -> bool:
    """Whether a command line names the whole configuration or a server's own file: how the
    daemon recognises the Barman processes of this configuration, its own or cron's."""
    whole = str(settings.barman_config_file)
    own = f"{_command_config_dir(settings)}/"
    return any(arg == whole or arg.startswith(own) for arg in cmdline)


def _command_config_dir(settings: Settings) -> Path:
    return settings.barman_home / ".server-config"


def _command_configs(settings: Settings) -> list[tuple[Path, str]]:
    """Each server's own file: the global section as in barman.conf, without the directory of
    server files, then the server's section as in barman.d/."""
    header = render_global(settings, with_servers_directory=False)
    return [
        (command_config(settings, server.name), f"{header}\n{render_server(server)}")
        for server in settings.servers
    ]


def _compression_lines(server: ServerSettings) -> list[str]:
    """Barman's options for BACKUP_COMPRESSION and WAL_COMPRESSION; none while they are off."""
    policy = server.backup_policy
    lines = []
    if policy.compression:
        lines.append(f"backup_compression = {policy.compression}")
        lines.append(f"backup_compression_location = {policy.compression_location}")
    if policy.wal_compression:
        lines.append(f"compression = {policy.wal_compression}")
    return lines


def staging_path(settings: Settings) -> Path:
    """Under the Barman home, so that it is on the volume sized for backups."""
    return settings.barman_home / "staging"


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    """Replace the file in one step; an unchanged file is left alone, so that a restart on a
    full disk does not fail on rewriting what is already there."""
    try:
        if path.read_text(encoding="utf-8") == text and path.stat().st_mode & 0o777 == mode:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text, mode)


def write_configuration(settings: Settings) -> list[Path]:
    """Render Barman's files (render mode) and drop rendered files of servers no longer listed."""
    if settings.config_mode != "render":
        return []
    foreign = foreign_config_files(settings.barman_config_file, settings.barman_config_dir)
    if foreign:
        # The settings saw none; someone added one since. Refuse rather than overwrite it.
        raise ConfigError(
            f"{foreign[0]}: appeared during start-up and was not written by barman-supervisor; "
            "remove it or set BARMAN_CONFIG_MODE=mounted"
        )
    written = [settings.barman_config_file]
    _write_if_changed(settings.barman_config_file, render_global(settings), 0o644)
    wanted = {settings.barman_config_dir / f"{server.name}.conf" for server in settings.servers}
    for server in settings.servers:
        path = settings.barman_config_dir / f"{server.name}.conf"
        _write_if_changed(path, render_server(server), 0o644)
        written.append(path)
    for stale in settings.barman_config_dir.glob("*.conf"):
        if stale not in wanted:
            stale.unlink()
    own = dict(_command_configs(settings))
    for path, text in own.items():
        _write_if_changed(path, text, 0o644)
    for stale in _command_config_dir(settings).glob("*.conf"):
        if stale not in own:
            stale.unlink()
    return written


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_lines(settings: Settings) -> list[str]:
    """One line per (host, port, user) with a password; '*' as database covers replication."""
    lines: list[str] = []
    for server in settings.servers:
        for conninfo, secret in (
            (server.conninfo, server.password),
            (server.streaming_conninfo, server.streaming_password),
        ):
            if secret is None:
                continue
            user = conninfo_to_dict(conninfo).get("user") or settings.barman_user
            # libpq looks the password up for the host it is trying: one line per host.
            for host, port in conninfo_addresses(conninfo):
                line = ":".join(
                    _pgpass_field(str(value)) for value in (host, port, "*", user, secret.reveal())
                )
                if line not in lines:
                    lines.append(line)
    return lines


def write_pgpass(settings: Settings) -> bool:
    """Write the password file when the settings carry passwords; keep a mounted one otherwise."""
    lines = pgpass_lines(settings)
    if not lines:
        return False
    _write_if_changed(settings.pgpass_file, "\n".join(lines) + "\n", 0o600)
    return True


def _writable(path: Path) -> bool:
    """Whether ``path`` can be created or replaced: its nearest existing ancestor is a writable
    directory."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def _unchanged(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, ValueError):
        return False


def write_problem(settings: Settings) -> str | None:
    """Why a start would fail half-way through writing, checked before anything is written:
    every file the start writes (unless already as wanted) and directory it creates."""
    files: list[tuple[Path, str]] = []
    if settings.config_mode == "render":
        files.append((settings.barman_config_file, render_global(settings)))
        files += [
            (settings.barman_config_dir / f"{server.name}.conf", render_server(server))
            for server in settings.servers
        ]
        files += _command_configs(settings)
    lines = pgpass_lines(settings)
    if lines:
        files.append((settings.pgpass_file, "\n".join(lines) + "\n"))
    directories = [settings.barman_home, settings.barman_log_file.parent]
    for directory in directories:
        if directory.exists() and not directory.is_dir():
            return f"{directory}: exists and is not a directory; remove it or choose another path"
        if not directory.exists() and not _writable(directory):
            return (
                f"{directory}: cannot be created; make its parent writable for user "
                f"{settings.barman_user} or mount a volume there"
            )
    for path, text in files:
        if path.is_dir() or not (_unchanged(path, text) or _writable(path)):
            return (
                f"{path}: cannot be written; make its directory writable for user "
                f"{settings.barman_user} or mount a volume there"
            )
    return None


def prepare_directories(settings: Settings) -> None:
    """Barman refuses to start when ``barman_home`` or its log directory is missing."""
    settings.barman_home.mkdir(parents=True, exist_ok=True)
    settings.barman_log_file.parent.mkdir(parents=True, exist_ok=True)
    if settings.config_mode == "render":
        staging_path(settings).mkdir(parents=True, exist_ok=True)
