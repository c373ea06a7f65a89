"""Barman configuration files a person mounted: whether there are any (which picks the mode),
and the servers they define, to which the environment adds schedules and passwords.

The daemon marks the files it renders with ``RENDERED_MARKER`` on their first line; any other
``barman.conf`` or ``barman.d/*.conf`` is foreign and is never written over.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from barman_supervisor.config.checks import check_server_name, usable_path
from barman_supervisor.config.env import Env
from barman_supervisor.config.model import Secret, ServerSettings
from barman_supervisor.config.servers import ServerSource, server_settings
from barman_supervisor.config.variables import variable
from barman_supervisor.errors import ConfigError

RENDERED_MARKER = "# Rendered by barman-supervisor"


def foreign_config_files(config_file: Path, config_dir: Path) -> list[Path]:
    """Configuration files that a person (not this daemon) put in place."""
    candidates = (
        [config_file, *sorted(config_dir.glob("*.conf"))] if config_dir.is_dir() else [config_file]
    )
    return [path for path in candidates if path.is_file() and not _is_rendered(path)]


def _is_rendered(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith(RENDERED_MARKER)
    except OSError:
        return False


def config_mode(env: Env, config_file: Path, config_dir: Path) -> Literal["render", "mounted"]:
    """BARMAN_CONFIG_MODE, where ``auto`` means mounted as soon as a foreign file is there."""
    mode = env.choice("BARMAN_CONFIG_MODE")
    try:
        foreign = foreign_config_files(config_file, config_dir)
        config_file.is_file()
    except OSError as exc:
        raise ConfigError(
            f"BARMAN_CONFIG_FILE/BARMAN_CONFIG_DIR: cannot inspect {exc.filename} "
            f"({exc.strerror}); point them at a readable file and directory"
        ) from None
    if mode == "render":
        if foreign:
            raise ConfigError(
                f"BARMAN_CONFIG_MODE: render, but {foreign[0]} was not rendered by "
                "barman-supervisor; remove it or set BARMAN_CONFIG_MODE=mounted"
            )
        return "render"
    if mode == "mounted" or foreign:
        if not config_file.is_file():
            raise ConfigError(
                f"BARMAN_CONFIG_FILE: {config_file} does not exist; mount it or set "
                "BARMAN_CONFIG_MODE=render"
            )
        return "mounted"
    return "render"


def _read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read ({exc.strerror}); check the mount and its permissions"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from None
    except configparser.Error as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not a valid Barman configuration file ({first_line})") from None
    return parser


def mounted_global_options(config_file: Path) -> dict[str, str]:
    parser = _read_ini(config_file)
    if not parser.has_section("barman"):
        raise ConfigError(f"{config_file}: has no [barman] section; add one with barman_home")
    return dict(parser.items("barman"))


def mounted_servers(
    env: Env, config_file: Path, config_dir: Path, options: Mapping[str, str], timezone: ZoneInfo
) -> tuple[ServerSettings, ...]:
    """Servers from the files a person mounted; the environment adds schedules and passwords."""
    directory = usable_path(
        f"{config_file} configuration_files_directory",
        options.get("configuration_files_directory") or str(config_dir),
    )
    files = (
        [config_file, *sorted(directory.glob("*.conf"))] if directory.is_dir() else [config_file]
    )
    servers: dict[str, ServerSettings] = {}
    for path in files:
        parser = _read_ini(path)
        for section in parser.sections():
            if section == "barman" or parser.get(section, "model", fallback="").lower() == "true":
                continue
            if section in servers:
                raise ConfigError(f"{path}: server [{section}] is defined twice; keep one section")
            check_server_name(section, str(path))
            source = _mounted_source(path, section, dict(parser.items(section)))
            servers[section] = server_settings(env, source, timezone)
    if not servers:
        raise ConfigError(
            f"{config_file}: not written by barman-supervisor and no server section in it or in "
            f"{directory}; add one, or remove the file to render servers from the environment"
        )
    return tuple(servers.values())


def _mounted_source(path: Path, section: str, options: Mapping[str, str]) -> ServerSource:
    conninfo = options.get("conninfo", "")
    streaming = options.get("streaming_conninfo", "") or conninfo
    if not conninfo:
        raise ConfigError(f"{path}: server [{section}] has no conninfo; add one")
    conninfo, password = _split_password(conninfo, f"{path} [{section}] conninfo")
    streaming, streaming_password = _split_password(
        streaming, f"{path} [{section}] streaming_conninfo"
    )
    return ServerSource(
        name=section,
        conninfo=conninfo,
        streaming_conninfo=streaming,
        slot_name=options.get("slot_name", variable("BARMAN_SLOT_NAME").default),
        retention_policy=options.get("retention_policy", ""),
        file_passwords=(password, streaming_password),
        barman_options=options,
    )


def _split_password(conninfo: str, source: str) -> tuple[str, Secret | None]:
    """A mounted conninfo may carry ``password=``; keep it out of every string the daemon logs."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:  # psycopg raises ProgrammingError; the message may echo a password
        raise ConfigError(f"{source}: not a valid libpq connection string") from None
    if "password" not in params:
        return conninfo, None
    password = params.pop("password")
    secret = Secret(str(password)) if password else None
    return make_conninfo(**{key: str(value) for key, value in params.items()}), secret
