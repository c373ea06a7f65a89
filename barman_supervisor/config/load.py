"""``load_settings``: the environment (and any mounted Barman files) read, checked and frozen
into ``Settings`` once at start, or the first problem as a one-line ``ConfigError``."""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import shutil
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from barman_supervisor.config.checks import absolute_path, usable_path
from barman_supervisor.config.children import child_environment
from barman_supervisor.config.env import Env
from barman_supervisor.config.model import Secret, ServerSettings, Settings
from barman_supervisor.config.mounted import config_mode, mounted_global_options, mounted_servers
from barman_supervisor.config.servers import rendered_servers
from barman_supervisor.config.shard import Ownership, Shard, ownership, shard_from
from barman_supervisor.config.web import probe_uses_tls, web_access
from barman_supervisor.errors import ConfigError

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$", re.ASCII)
# What a probe connects to when the daemon listens on every address.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


@dataclass(frozen=True)
class _BarmanFiles:
    """Where Barman's files are; a mounted ``[barman]`` section wins over the environment."""

    config_file: Path
    config_dir: Path
    mode: Literal["render", "mounted"]
    options: Mapping[str, str]
    home: Path
    user: str
    log_file: Path


def load_settings(environ: Mapping[str, str], sharded: bool = True) -> Settings:
    """Read and validate every setting; raise ConfigError on the first problem. ``sharded``
    False: every configured server, whatever the shard (a restore from the store needs no
    replica's catalogue); the shard settings are still checked.

    Kept long: one keyword per setting of ``Settings``; this is the one place they are put
    together, and splitting it would scatter them.
    """
    env = Env(environ)
    timezone = _timezone(env)
    files = _barman_files(env)
    configured = _servers(env, files, timezone)
    shard, owners = _shard(env, configured)
    if not sharded:
        shard, owners = None, tuple(replace(o, mine=True) for o in owners)
    servers = tuple(s for s, o in zip(configured, owners, strict=True) if o.mine)
    home = _fill(files.home)
    pgpass_file = absolute_path(
        "BARMAN_PGPASS_FILE", env.text("BARMAN_PGPASS_FILE", BARMAN_HOME=home)
    )
    child_env = child_environment(environ, pgpass_file)
    webhook = env.url("ALERT_WEBHOOK_URL")
    return Settings(
        servers=servers,
        config_mode=files.mode,
        barman_config_file=files.config_file,
        barman_config_dir=files.config_dir,
        barman_home=files.home,
        barman_user=files.user,
        barman_log_file=files.log_file,
        barman_bin=_barman_bin(env, child_env.get("PATH")),
        pgpass_file=pgpass_file,
        cron_interval=env.seconds("BARMAN_CRON_INTERVAL"),
        check_interval=env.seconds("BARMAN_CHECK_INTERVAL"),
        wal_archive_interval=env.seconds("WAL_ARCHIVE_INTERVAL"),
        timezone=timezone,
        log_level=env.choice("LOG_LEVEL"),
        log_format=env.choice("LOG_FORMAT"),  # type: ignore[arg-type]
        shutdown_grace=env.seconds("SHUTDOWN_GRACE"),
        pg_wait_timeout=env.seconds("PG_WAIT_TIMEOUT") or None,
        pg_connect_timeout=int(env.seconds("PG_CONNECT_TIMEOUT")),
        backup_wait_timeout=int(env.seconds("BACKUP_WAIT_TIMEOUT")),
        wal_archive_timeout=int(env.seconds("WAL_ARCHIVE_TIMEOUT")),
        http_bind=_http_bind(env),
        http_port=env.integer("HTTP_PORT"),
        http_access=web_access(env),
        health_interval=env.seconds("HEALTH_INTERVAL"),
        wal_max_lag_bytes=env.size("WAL_MAX_LAG"),
        wal_max_age=env.seconds("WAL_MAX_AGE") or None,
        alert_webhook_url=webhook,
        alert_streaming_after=env.seconds("ALERT_STREAMING_AFTER"),
        alert_timeout=env.seconds("ALERT_TIMEOUT"),
        failed_backups=env.choice("FAILED_BACKUPS"),  # type: ignore[arg-type]
        allow_streaming_reset=env.boolean("ALLOW_STREAMING_RESET"),
        backup_concurrency=env.integer("BACKUP_CONCURRENCY"),
        startup_concurrency=env.integer("STARTUP_CONCURRENCY"),
        barman_forkserver=env.boolean("BARMAN_FORKSERVER"),
        disk_min_free_bytes=env.size("DISK_MIN_FREE"),
        drill_scratch_dir=absolute_path(
            "DRILL_SCRATCH_DIR", env.text("DRILL_SCRATCH_DIR", BARMAN_HOME=home)
        ),
        drill_timeout=env.seconds("DRILL_TIMEOUT"),
        drill_space_factor=env.factor("DRILL_SPACE_FACTOR"),
        drill_space_margin_bytes=env.size("DRILL_SPACE_MARGIN"),
        pg_bin_dir=_pg_bin_dir(env),
        offsite_interval=env.seconds("OFFSITE_INTERVAL"),
        offsite_backup_timeout=env.seconds("OFFSITE_BACKUP_TIMEOUT"),
        offsite_wal_jobs=env.integer("OFFSITE_WAL_JOBS"),
        child_env=MappingProxyType(child_env),
        secrets=_secrets(webhook, configured),
        shard=shard,
        ownership=owners if shard is not None else (),
    )


def _shard(
    env: Env, servers: tuple[ServerSettings, ...]
) -> tuple[Shard | None, tuple[Ownership, ...]]:
    """This replica's shard and every configured server's owner; unsharded, it owns all."""
    shard = shard_from(env.text("SHARD_INDEX"), env.text("SHARD_COUNT"), env.text("POD_NAME"))
    names = tuple(server.name for server in servers)
    if shard is None:
        return None, tuple(Ownership(name, 0, True, "no SHARD_COUNT") for name in names)
    return shard, ownership(names, shard)


def _barman_files(env: Env) -> _BarmanFiles:
    config_file = usable_path("BARMAN_CONFIG_FILE", env.text("BARMAN_CONFIG_FILE"))
    config_dir = usable_path("BARMAN_CONFIG_DIR", env.text("BARMAN_CONFIG_DIR"))
    mode = config_mode(env, config_file, config_dir)
    options = mounted_global_options(config_file) if mode == "mounted" else {}
    home = Path(options.get("barman_home") or env.text("BARMAN_HOME"))
    user = options.get("barman_user") or env.text("BARMAN_USER") or _current_user()
    log_file = Path(options.get("log_file") or env.text("BARMAN_LOG_FILE", BARMAN_HOME=_fill(home)))
    for var, path in (("BARMAN_HOME", home), ("BARMAN_LOG_FILE", log_file)):
        absolute_path(var, str(path))
    return _BarmanFiles(config_file, config_dir, mode, options, home, user, log_file)


def _fill(directory: Path) -> str:
    """A directory for a ``$NAME/...`` default: ``/`` as the empty string, so that
    ``$BARMAN_HOME/drill`` is ``/drill`` and not ``//drill`` (a different path to POSIX)."""
    return str(directory).rstrip("/")


def _servers(env: Env, files: _BarmanFiles, timezone: ZoneInfo) -> tuple[ServerSettings, ...]:
    if files.mode == "mounted":
        servers = mounted_servers(env, files.config_file, files.config_dir, files.options, timezone)
    else:
        servers = rendered_servers(env, timezone)
    _check_overrides(env, servers)
    return servers


def _check_overrides(env: Env, servers: tuple[ServerSettings, ...]) -> None:
    """``PG_HOST__REPORT`` for a server named ``reports`` would be ignored silently."""
    unknown = env.unknown_overrides(tuple(server.name for server in servers))
    if unknown:
        names = ", ".join(server.name for server in servers)
        raise ConfigError(
            f"{unknown[0]}: no configured server has the suffix of this override (servers: "
            f"{names}); fix the suffix or remove the variable"
        )


def _secrets(webhook: Secret | None, servers: tuple[ServerSettings, ...]) -> tuple[Secret, ...]:
    """Every secret the settings hold, for masking in foreign text (Barman's log lines)."""
    urls = [url for url in (webhook, *(s.deadman_url for s in servers)) if url is not None]
    return tuple(
        secret
        for secret in (
            *urls,
            *(_url_password(url) for url in urls),
            *(s for server in servers for s in (server.password, server.streaming_password)),
            *(s for server in servers if server.offsite for s in server.offsite.secrets()),
        )
        if secret is not None
    )


def _url_password(url: Secret) -> Secret | None:
    """The password of ``https://user:password@host``, masked in foreign text on its own."""
    password = urllib.parse.urlsplit(url.reveal()).password
    return Secret(urllib.parse.unquote(password)) if password else None


def _barman_bin(env: Env, path: str | None) -> str:
    """Barman's program, checked now: a missing one would fail every job and the shutdown."""
    value = env.text("BARMAN_BIN") or _default_barman_bin()
    found = shutil.which(value, path=path or os.defpath) if os.sep not in value else None
    candidate = Path(found or value)
    if not (candidate.is_absolute() or found) or not _executable(candidate):
        raise ConfigError(
            f"BARMAN_BIN: {value!r} is not an executable program; install Barman or set "
            "BARMAN_BIN to its absolute path"
        )
    return str(candidate)


def _executable(path: Path) -> bool:
    try:
        return path.is_file() and os.access(path, os.X_OK)
    except (OSError, ValueError):
        return False


def _default_barman_bin() -> str:
    """Barman installed beside the daemon (same virtualenv) wins over one found on PATH."""
    sibling = Path(sys.executable).parent / "barman"
    return str(sibling) if sibling.is_file() else "barman"


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "barman"


def _http_bind(env: Env) -> str:
    """An address to listen on: an IP literal or a host name (checked again when binding)."""
    value = env.text("HTTP_BIND")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ConfigError(
                f"HTTP_BIND: {value!r} is not an IP address or host name; use e.g. 0.0.0.0, "
                "127.0.0.1 or ::"
            ) from None
    return value


def _pg_bin_dir(env: Env) -> Path | None:
    """PostgreSQL server programs for drills and verification; unset: per backup, Debian's
    /usr/lib/postgresql/<major>/bin."""
    text = env.text("PG_BIN_DIR")
    if not text:
        return None
    path = absolute_path("PG_BIN_DIR", text)
    if not (path / "postgres").is_file():
        raise ConfigError(
            f"PG_BIN_DIR: {path} has no 'postgres' program; point it at the bin directory of "
            "the PostgreSQL server (e.g. /usr/lib/postgresql/17/bin)"
        )
    return path


def _timezone(env: Env) -> ZoneInfo:
    name = env.text("TZ").lstrip(":")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: TZ=America, a directory
        raise ConfigError(
            f"TZ: unknown time zone {name!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def probe_address(environ: Mapping[str, str]) -> tuple[str, int, bool]:
    """Where ``barman-supervisor healthcheck`` finds the daemon, and whether over HTTPS: only
    the HTTP settings, so a probe never fails on a setting it does not need."""
    env = Env(environ)
    bind = env.text("HTTP_BIND")
    return _LOOPBACK.get(bind, bind), env.integer("HTTP_PORT"), probe_uses_tls(env)
