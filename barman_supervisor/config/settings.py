"""The daemon's settings: built once from the environment at start, validated there, then frozen.

Nothing else in the package reads ``os.environ``. Every problem found here is a ``ConfigError``
whose message is one line naming the variable (or file) and the fix, so that the CLI can print it
and exit 2 before anything is touched.

Per-server variables take an optional ``__<SERVER>`` suffix (server name upper-cased, ``-`` and
``.`` as ``_``): ``PG_HOST__REPORTS=db2`` overrides ``PG_HOST`` for the server ``reports`` only.
"""

from __future__ import annotations

import configparser
import getpass
import ipaddress
import math
import os
import re
import shutil
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from barman_supervisor.crontab import CrontabError, parse_crontab
from barman_supervisor.errors import ConfigError

RENDERED_MARKER = "# Rendered by barman-supervisor"
SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Barman refuses 'all'; 'barman' is its global section.
RESERVED_SERVER_NAMES = frozenset({"all", "barman"})
RETENTION = re.compile(
    r"^(REDUNDANCY\s+[1-9]\d*|RECOVERY\s+WINDOW\s+OF\s+[1-9]\d*\s+(DAYS?|WEEKS?|MONTHS?))$",
    re.IGNORECASE,
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The only variables Barman and the PostgreSQL tools inherit (/proc/PID/environ is readable by
# the user, and a child needs none of the daemon's URLs or passwords): the locale, the time zone
# (Barman's backup IDs follow it), where programs and the home are, and libpq's TLS and service
# settings. PGPASSFILE is set to the daemon's .pgpass; PGPASSWORD is never passed.
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
# Linux limits: a longer path fails every file operation with ENAMETOOLONG.
NAME_MAX, PATH_MAX = 255, 4096
# A schedule must fire within this many years (29 February fires every 4 years; 8 covers 2100).
SCHEDULE_HORIZON_YEARS = 8
# Sizes are byte counts for disk and lag comparisons; anything above an exabyte is a typo.
MAX_SIZE = 2**60
# s3://bucket[/prefix]: bucket names as S3 allows them (3-63 of a-z 0-9 . -).
OFFSITE_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")
OFFSITE_ENCRYPTIONS = ("", "AES256", "aws:kms")
# What barman-cloud-backup and barman-cloud-wal-archive both take (each as --NAME); lz4 and
# zstd come with the lz4 and zstandard extras of Barman, which the package installs.
OFFSITE_COMPRESSIONS = ("", "gzip", "bzip2", "lz4", "zstd")
DRILL_LOCAL, DRILL_OFFSITE = "local", "offsite"
DRILL_SOURCES = ("", DRILL_LOCAL, DRILL_OFFSITE)
# What Barman's backup_compression takes (pg_basebackup --compress); "none" is the default.
BACKUP_COMPRESSIONS = ("none", "gzip", "lz4", "zstd")
BACKUP_COMPRESSION_LOCATIONS = ("client", "server")
# Barman's WAL compressors that need nothing beyond Python itself (zstd, lz4 and snappy need
# extra Python modules in Barman's environment, pigz a program).
WAL_COMPRESSIONS = ("none", "gzip", "bzip2", "xz")
# A chain longer than this is a restore that combines a month of daily backups: refuse it.
CHAIN_MAX_LIMIT = 30
_DURATION = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[smhd])?$", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[kKmMgG])?i?[bB]?$", re.ASCII)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_WHOLE_NUMBER = re.compile(r"^[0-9]+$", re.ASCII)
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$", re.ASCII)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Secret:
    """A password that prints as ``***`` wherever it ends up by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Offsite:
    """Where a server's backups and WAL are copied off the host (OFFSITE_URL, issue 14).

    The keys go only to the environment of the ``barman-cloud-*`` children (``cloud_env``),
    never on a command line; with none set, boto3's own chain (instance role, ~/.aws) applies.
    """

    url: str
    endpoint_url: str
    region: str
    encryption: str
    compression: str
    retention_policy: str
    backup_max_delay: float
    wal_max_lag: float
    access_key_id: Secret | None = field(default=None, repr=False)
    secret_access_key: Secret | None = field(default=None, repr=False)
    session_token: Secret | None = field(default=None, repr=False)

    def secrets(self) -> tuple[Secret, ...]:
        return tuple(
            s
            for s in (self.access_key_id, self.secret_access_key, self.session_token)
            if s is not None
        )


@dataclass(frozen=True)
class BackupPolicy:
    """Full and incremental backups and their compression (issue 13); each default lives here.

    ``incremental_schedule`` empty means full backups only. ``chain_max`` incrementals stack on
    one full before the next scheduled incremental is taken as a full instead (a long chain is
    slow to restore and one broken link loses all that follow). Empty compressions mean none.
    """

    incremental_schedule: str = ""
    chain_max: int = 6
    compression: str = ""
    compression_location: str = "client"
    wal_compression: str = ""

    @property
    def incremental(self) -> bool:
        return bool(self.incremental_schedule)


@dataclass(frozen=True)
class ServerSettings:
    """One PostgreSQL server as Barman sees it, plus the schedules the daemon runs for it.

    ``retention_policy`` is empty for a mounted server whose file sets none: Barman keeps every
    backup then.
    """

    name: str
    conninfo: str
    streaming_conninfo: str
    password: Secret | None
    streaming_password: Secret | None
    slot_name: str
    backup_schedule: str
    backup_on_start: bool
    backup_immediate_checkpoint: bool
    retention_policy: str
    bandwidth_limit_kbps: int = 0
    # A mounted conninfo with password=: Barman passes it on pg_receivewal's command line.
    password_in_mounted_file: bool = False
    backup_max_age: float | None = None
    deadman_url: Secret | None = None
    # Restore drill (issue 6): off while empty; an empty query means drill.DEFAULT_QUERY.
    drill_schedule: str = ""
    drill_query: str = ""
    # Where the drill restores from (issue 14): Barman's local catalogue, or the off-site store.
    drill_source: str = DRILL_LOCAL
    offsite: Offsite | None = None
    backup_policy: BackupPolicy = field(default_factory=BackupPolicy)

    @property
    def host(self) -> str:
        return str(conninfo_to_dict(self.conninfo).get("host") or "localhost")

    @property
    def port(self) -> int:
        return int(conninfo_to_dict(self.conninfo).get("port") or 5432)


@dataclass(frozen=True)
class Settings:
    """Every setting, built once by ``load_settings``, which holds each default."""

    servers: tuple[ServerSettings, ...]
    config_mode: Literal["render", "mounted"]
    barman_config_file: Path
    barman_config_dir: Path
    barman_home: Path
    barman_user: str
    barman_log_file: Path
    barman_bin: str
    pgpass_file: Path
    cron_interval: float
    wal_archive_interval: float
    check_interval: float
    timezone: ZoneInfo
    log_level: str
    log_format: Literal["auto", "json", "console"]
    shutdown_grace: float
    pg_wait_timeout: float | None
    pg_connect_timeout: int
    backup_wait_timeout: int
    wal_archive_timeout: int
    http_bind: str
    http_port: int
    health_interval: float
    wal_max_lag_bytes: int
    wal_max_age: float | None
    alert_webhook_url: Secret | None = field(repr=False)
    alert_streaming_after: float
    alert_timeout: float
    failed_backups: Literal["keep", "delete"]
    backup_concurrency: int
    startup_concurrency: int
    barman_forkserver: bool
    allow_streaming_reset: bool
    disk_min_free_bytes: int
    drill_scratch_dir: Path
    drill_timeout: float
    drill_space_factor: float
    drill_space_margin_bytes: int
    pg_bin_dir: Path | None
    offsite_interval: float
    offsite_backup_timeout: float
    offsite_wal_jobs: int
    child_env: Mapping[str, str] = field(repr=False)
    secrets: tuple[Secret, ...] = field(repr=False)

    def server(self, name: str) -> ServerSettings:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)


class _Env:
    """Typed reads of the environment that fail with the variable's name and the fix."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        # Variables read with a per-server override: an override for an unknown server is an
        # error (a typo in the suffix would otherwise be ignored silently).
        self.per_server: set[str] = set()

    def raw(self, name: str, server: str | None = None) -> tuple[str, str | None]:
        """The variable that applies (per-server override first) and its value."""
        if server is not None:
            self.per_server.add(name)
            scoped = f"{name}__{server_suffix(server)}"
            if scoped in self._environ:
                return scoped, _decodable(scoped, self._environ[scoped])
        value = self._environ.get(name)
        return name, None if value is None else _decodable(name, value)

    def unknown_overrides(self, servers: tuple[str, ...]) -> list[str]:
        """Per-server variables whose ``__<SERVER>`` suffix names no configured server."""
        known = {server_suffix(server) for server in servers}
        unknown = []
        for variable in sorted(self._environ):
            base, separator, suffix = variable.partition("__")
            if separator and base in self.per_server and suffix not in known:
                unknown.append(variable)
        return unknown

    def text(self, name: str, default: str, server: str | None = None) -> str:
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return default
        if "\n" in value or "\r" in value:
            raise ConfigError(f"{var}: must be a single line")
        return value.strip()

    def seconds(
        self,
        name: str,
        default: float,
        minimum: float,
        maximum: float | None = None,
        server: str | None = None,
    ) -> float:
        """A duration: plain seconds, or a number with s, m, h or d (``90``, ``15m``, ``36h``)."""
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return default
        match = _DURATION.match(value.strip().lower())
        if match is None:
            raise ConfigError(
                f"{var}: {value!r} is not a duration; use seconds or a number with s/m/h/d, "
                f"e.g. {var}={default:g}"
            )
        number = float(match["number"]) * _UNITS[match["unit"] or "s"]
        if (
            not math.isfinite(number)
            or number < minimum
            or (maximum is not None and number > maximum)
        ):
            bounds = (
                f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
            )
            raise ConfigError(f"{var}: {value!r} is out of range; use {bounds} seconds")
        return number

    def integer(
        self, name: str, default: int, minimum: int, maximum: int, server: str | None = None
    ) -> int:
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return default
        if not _WHOLE_NUMBER.match(value.strip()):
            raise ConfigError(f"{var}: {value!r} is not a whole number; set e.g. {var}={default}")
        number = int(value.strip())
        if not minimum <= number <= maximum:
            raise ConfigError(f"{var}: {number} is out of range; use {minimum}-{maximum}")
        return number

    def size(self, name: str, default: int, server: str | None = None) -> int:
        """Bytes, or a number with k, M or G (binary multiples): ``268435456``, ``256M``."""
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return default
        match = _SIZE.match(value.strip())
        if match is None:
            raise ConfigError(f"{var}: {value!r} is not a size; use bytes or e.g. 256M, 2G")
        number = float(match["number"]) * _SIZE_UNITS[(match["unit"] or "").upper()]
        if not number <= MAX_SIZE:  # also inf and nan
            raise ConfigError(f"{var}: {value!r} is too large; use at most 1024P, e.g. 256M")
        return int(number)

    def url(self, name: str, server: str | None = None) -> Secret | None:
        """A URL that may carry a token, so it is kept like a password (``NAME_FILE`` too)."""
        secret = self.secret(name, server)
        if secret is not None and not usable_url(secret.reveal()):
            var, _ = self.raw(name, server)
            raise ConfigError(
                f"{var}: not a usable http(s) URL (scheme, host, numeric port); use e.g. "
                "https://hooks.example/alert"
            )
        return secret

    def boolean(self, name: str, default: bool, server: str | None = None) -> bool:
        var, value = self.raw(name, server)
        if value is None or value.strip() == "":
            return default
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise ConfigError(f"{var}: {value!r} is not a boolean; use true or false")

    def choice(self, name: str, default: str, choices: tuple[str, ...], upper: bool = False) -> str:
        var, value = self.raw(name)
        if value is None or value.strip() == "":
            return default
        picked = value.strip().upper() if upper else value.strip()
        if picked not in choices:
            raise ConfigError(f"{var}: {value!r} is not one of {', '.join(choices)}")
        return picked

    def secret(self, name: str, server: str | None = None) -> Secret | None:
        """``NAME`` or the contents of the file named by ``NAME_FILE`` (Docker secrets).

        A per-server pair (``NAME__S``, ``NAME_FILE__S``) replaces the global pair as a whole.
        """
        suffix = f"__{server_suffix(server)}" if server is not None else ""
        if server is not None:
            self.per_server |= {name, f"{name}_FILE"}
        if not any(f"{n}{suffix}" in self._environ for n in (name, f"{name}_FILE")):
            suffix = ""
        var, file_var = f"{name}{suffix}", f"{name}_FILE{suffix}"
        value, path = self._environ.get(var), self._environ.get(file_var)
        if value and path:
            raise ConfigError(f"{var} and {file_var} are both set; keep only one of them")
        if path:
            value = _read_secret_file(file_var, _decodable(file_var, path))
            var = file_var
        if not value:
            return None
        _decodable(var, value)
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            raise ConfigError(
                f"{var}: the password must be a single line without control characters"
            )
        return Secret(value)


def _decodable(var: str, value: str) -> str:
    """An environment value that was not valid UTF-8 (Python keeps the bytes as surrogates)
    cannot be written to a file or passed on; say so instead of failing later."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{var}: not valid UTF-8; set it again in UTF-8") from None
    return value


def _read_secret_file(var: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{var}: {path!r} is not UTF-8 text; write the secret as UTF-8") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{var}: cannot read {path!r} ({reason}); mount the secret file there"
        ) from None
    return text.rstrip("\r\n")


def _url_password(url: Secret) -> Secret | None:
    """The password of ``https://user:password@host``, masked in foreign text on its own."""
    password = urllib.parse.urlsplit(url.reveal()).password
    return Secret(urllib.parse.unquote(password)) if password else None


def usable_url(text: str) -> bool:
    """An http(s) URL urllib can send to: scheme, host and (if any) a numeric port."""
    if not re.match(r"^https?://[^\s/]+", text) or any(c.isspace() for c in text):
        return False
    try:
        parts = urllib.parse.urlsplit(text)
        _port = parts.port
    except ValueError:
        return False
    return bool(parts.hostname)


def server_suffix(server: str) -> str:
    """The ``__<SERVER>`` suffix of per-server variables for this server."""
    return re.sub(r"[-.]", "_", server).upper()


def check_server_name(name: str, source: str) -> str:
    if not SERVER_NAME.match(name) or name.lower() in RESERVED_SERVER_NAMES:
        raise ConfigError(
            f"{source}: server name {name!r} is not usable by Barman; use letters, digits, "
            "'_', '-', '.' (max 63, not 'all' or 'barman')"
        )
    return name


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every setting; raise ConfigError on the first problem.

    Longer than 60 lines on purpose: the one place that maps each global variable to its field
    and its default, one line each, so that a default is written once and found at once."""
    env = _Env(environ)
    timezone = _timezone(env)
    config_file = _usable_path(
        "BARMAN_CONFIG_FILE", env.text("BARMAN_CONFIG_FILE", "/etc/barman.conf")
    )
    config_dir = _usable_path("BARMAN_CONFIG_DIR", env.text("BARMAN_CONFIG_DIR", "/etc/barman.d"))
    mode = _config_mode(env, config_file, config_dir)
    global_options = _mounted_global_options(config_file) if mode == "mounted" else {}

    barman_home = Path(
        global_options.get("barman_home") or env.text("BARMAN_HOME", "/var/lib/barman")
    )
    barman_user = global_options.get("barman_user") or env.text("BARMAN_USER", _current_user())
    log_file = Path(
        global_options.get("log_file")
        or env.text("BARMAN_LOG_FILE", str(barman_home / "log" / "barman.log"))
    )
    for var, path in (("BARMAN_HOME", barman_home), ("BARMAN_LOG_FILE", log_file)):
        _absolute(var, str(path))

    if mode == "mounted":
        servers = _mounted_servers(env, config_file, config_dir, global_options, timezone)
    else:
        servers = _rendered_servers(env, timezone)

    _check_overrides(env, servers)
    wait_timeout = env.seconds("PG_WAIT_TIMEOUT", 0, minimum=0)
    pgpass_file = _absolute(
        "BARMAN_PGPASS_FILE", env.text("BARMAN_PGPASS_FILE", str(barman_home / ".pgpass"))
    )
    child_env = child_environment(environ, pgpass_file)
    webhook = env.url("ALERT_WEBHOOK_URL")
    urls = [url for url in (webhook, *(s.deadman_url for s in servers)) if url is not None]
    secrets = tuple(
        secret
        for secret in (
            *urls,
            *(_url_password(url) for url in urls),
            *(s for server in servers for s in (server.password, server.streaming_password)),
            *(s for server in servers if server.offsite for s in server.offsite.secrets()),
        )
        if secret is not None
    )
    return Settings(
        servers=servers,
        config_mode=mode,
        barman_config_file=config_file,
        barman_config_dir=config_dir,
        barman_home=barman_home,
        barman_user=barman_user,
        barman_log_file=log_file,
        barman_bin=_barman_bin(env, child_env.get("PATH")),
        pgpass_file=pgpass_file,
        cron_interval=env.seconds("BARMAN_CRON_INTERVAL", 600, minimum=1, maximum=3600),
        check_interval=env.seconds("BARMAN_CHECK_INTERVAL", 300, minimum=5, maximum=86400),
        wal_archive_interval=env.seconds("WAL_ARCHIVE_INTERVAL", 60, minimum=1, maximum=3600),
        timezone=timezone,
        log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        log_format=env.choice("LOG_FORMAT", "auto", ("auto", "json", "console")),  # type: ignore[arg-type]
        shutdown_grace=env.seconds("SHUTDOWN_GRACE", 300, minimum=0, maximum=86400),
        pg_wait_timeout=wait_timeout or None,
        pg_connect_timeout=int(env.seconds("PG_CONNECT_TIMEOUT", 5, 1, 300)),
        backup_wait_timeout=int(env.seconds("BACKUP_WAIT_TIMEOUT", 600, 1, 86400)),
        wal_archive_timeout=int(env.seconds("WAL_ARCHIVE_TIMEOUT", 60, 5, 3600)),
        http_bind=_http_bind(env),
        http_port=env.integer("HTTP_PORT", 9798, 1, 65535),
        health_interval=env.seconds("HEALTH_INTERVAL", 10, minimum=1, maximum=3600),
        wal_max_lag_bytes=env.size("WAL_MAX_LAG", 256 * 1048576),
        wal_max_age=env.seconds("WAL_MAX_AGE", 0, minimum=0) or None,
        alert_webhook_url=webhook,
        alert_streaming_after=env.seconds("ALERT_STREAMING_AFTER", 300, minimum=0),
        alert_timeout=env.seconds("ALERT_TIMEOUT", 5, minimum=0.5, maximum=120),
        failed_backups=env.choice("FAILED_BACKUPS", "delete", ("keep", "delete")),  # type: ignore[arg-type]
        allow_streaming_reset=env.boolean("ALLOW_STREAMING_RESET", False),
        backup_concurrency=env.integer("BACKUP_CONCURRENCY", 2, 1, 1000),
        startup_concurrency=env.integer("STARTUP_CONCURRENCY", 4, 1, 1000),
        barman_forkserver=env.boolean("BARMAN_FORKSERVER", True),
        disk_min_free_bytes=env.size("DISK_MIN_FREE", 512 * 1048576),
        drill_scratch_dir=_absolute(
            "DRILL_SCRATCH_DIR", env.text("DRILL_SCRATCH_DIR", str(barman_home / "drill"))
        ),
        drill_timeout=env.seconds("DRILL_TIMEOUT", 7200, minimum=60, maximum=172800),
        drill_space_factor=_factor(env, "DRILL_SPACE_FACTOR", 1.2),
        drill_space_margin_bytes=env.size("DRILL_SPACE_MARGIN", 1024**3),
        pg_bin_dir=_pg_bin_dir(env),
        offsite_interval=env.seconds("OFFSITE_INTERVAL", 60, minimum=5, maximum=3600),
        offsite_backup_timeout=env.seconds("OFFSITE_BACKUP_TIMEOUT", 21600, 60, 604800),
        offsite_wal_jobs=env.integer("OFFSITE_WAL_JOBS", 4, 1, 32),
        child_env=MappingProxyType(child_env),
        secrets=secrets,
    )


def _check_overrides(env: _Env, servers: tuple[ServerSettings, ...]) -> None:
    """``PG_HOST__REPORT`` for a server named ``reports`` would be ignored silently."""
    unknown = env.unknown_overrides(tuple(server.name for server in servers))
    if unknown:
        names = ", ".join(server.name for server in servers)
        raise ConfigError(
            f"{unknown[0]}: no configured server has the suffix of this override (servers: "
            f"{names}); fix the suffix or remove the variable"
        )


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


def _barman_bin(env: _Env, path: str | None) -> str:
    """Barman's program, checked now: a missing one would fail every job and the shutdown."""
    value = env.text("BARMAN_BIN", _default_barman_bin())
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


def _http_bind(env: _Env) -> str:
    """An address to listen on: an IP literal or a host name (checked again when binding)."""
    value = env.text("HTTP_BIND", "0.0.0.0")  # noqa: S104 - a container's probe port
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ConfigError(
                f"HTTP_BIND: {value!r} is not an IP address or host name; use e.g. 0.0.0.0, "
                "127.0.0.1 or ::"
            ) from None
    return value


def _absolute(var: str, value: str) -> Path:
    path = _usable_path(var, value)
    if not path.is_absolute():
        raise ConfigError(f"{var}: {value!r} must be an absolute path")
    return path


def _usable_path(var: str, value: str) -> Path:
    """A path the system can open: names of at most NAME_MAX bytes, in all PATH_MAX."""
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) >= PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise ConfigError(
            f"{var}: the path is too long (at most {NAME_MAX} bytes per name, {PATH_MAX} in "
            "all); use a shorter one"
        )
    return Path(value)


def _factor(env: _Env, var: str, default: float) -> float:
    """A multiplier such as 1.2; at least 1 (a restored copy is never smaller than the backup)."""
    text = env.text(var, str(default))
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{var}: {text!r} is not a number; set e.g. {var}={default}") from None
    if not 1 <= value <= 100:  # also nan
        raise ConfigError(f"{var}: {text} is out of range; use 1-100")
    return value


def _pg_bin_dir(env: _Env) -> Path | None:
    """PostgreSQL server programs for drills and verification; unset: per backup, Debian's
    /usr/lib/postgresql/<major>/bin."""
    text = env.text("PG_BIN_DIR", "")
    if not text:
        return None
    path = _absolute("PG_BIN_DIR", text)
    if not (path / "postgres").is_file():
        raise ConfigError(
            f"PG_BIN_DIR: {path} has no 'postgres' program; point it at the bin directory of "
            "the PostgreSQL server (e.g. /usr/lib/postgresql/17/bin)"
        )
    return path


def probe_address(environ: Mapping[str, str]) -> tuple[str, int]:
    """Where ``barman-supervisor healthcheck`` finds the daemon: only the HTTP settings, so a
    probe never fails on a setting it does not need."""
    env = _Env(environ)
    bind = env.text("HTTP_BIND", "0.0.0.0")  # noqa: S104 - read, not bound
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)  # noqa: S104
    return host, env.integer("HTTP_PORT", 9798, 1, 65535)


def _default_barman_bin() -> str:
    """Barman installed beside the daemon (same virtualenv) wins over one found on PATH."""
    sibling = Path(sys.executable).parent / "barman"
    return str(sibling) if sibling.is_file() else "barman"


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "barman"


def _timezone(env: _Env) -> ZoneInfo:
    name = env.text("TZ", "UTC").lstrip(":")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: TZ=America, a directory
        raise ConfigError(
            f"TZ: unknown time zone {name!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def _is_rendered(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith(RENDERED_MARKER)
    except OSError:
        return False


def foreign_config_files(config_file: Path, config_dir: Path) -> list[Path]:
    """Configuration files that a person (not this daemon) put in place."""
    candidates = (
        [config_file, *sorted(config_dir.glob("*.conf"))] if config_dir.is_dir() else [config_file]
    )
    return [path for path in candidates if path.is_file() and not _is_rendered(path)]


def _config_mode(env: _Env, config_file: Path, config_dir: Path) -> Literal["render", "mounted"]:
    mode = env.choice("BARMAN_CONFIG_MODE", "auto", ("auto", "render", "mounted"))
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


def _mounted_global_options(config_file: Path) -> dict[str, str]:
    parser = _read_ini(config_file)
    if not parser.has_section("barman"):
        raise ConfigError(f"{config_file}: has no [barman] section; add one with barman_home")
    return dict(parser.items("barman"))


def _mounted_servers(
    env: _Env, config_file: Path, config_dir: Path, options: Mapping[str, str], timezone: ZoneInfo
) -> tuple[ServerSettings, ...]:
    """Servers from the files a person mounted; the environment adds schedules and passwords."""
    directory = _usable_path(
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
            conninfo = parser.get(section, "conninfo", fallback="")
            streaming = parser.get(section, "streaming_conninfo", fallback="") or conninfo
            if not conninfo:
                raise ConfigError(f"{path}: server [{section}] has no conninfo; add one")
            conninfo, password = _split_password(conninfo, f"{path} [{section}] conninfo")
            streaming, streaming_password = _split_password(
                streaming, f"{path} [{section}] streaming_conninfo"
            )
            servers[section] = _server(
                env,
                section,
                conninfo=conninfo,
                streaming_conninfo=streaming,
                file_passwords=(password, streaming_password),
                slot_name=parser.get(section, "slot_name", fallback="barman"),
                retention_policy=parser.get(section, "retention_policy", fallback=""),
                timezone=timezone,
                require_password=False,
                barman_options=dict(parser.items(section)),
            )
    if not servers:
        raise ConfigError(
            f"{config_file}: not written by barman-supervisor and no server section in it or in "
            f"{directory}; add one, or remove the file to render servers from the environment"
        )
    return tuple(servers.values())


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


def _rendered_servers(env: _Env, timezone: ZoneInfo) -> tuple[ServerSettings, ...]:
    names = [name.strip() for name in env.text("BARMAN_SERVERS", "pg").split(",") if name.strip()]
    if not names:
        raise ConfigError("BARMAN_SERVERS: no server named; set e.g. BARMAN_SERVERS=pg")
    suffixes: dict[str, str] = {}
    for name in names:
        check_server_name(name, "BARMAN_SERVERS")
        suffix = server_suffix(name)
        if suffix in suffixes:
            raise ConfigError(
                f"BARMAN_SERVERS: {suffixes[suffix]!r} and {name!r} share the variable suffix "
                f"__{suffix}; rename one"
            )
        suffixes[suffix] = name
    return tuple(_rendered_server(env, name, timezone) for name in names)


def _rendered_server(env: _Env, name: str, timezone: ZoneInfo) -> ServerSettings:
    host = env.text("PG_HOST", "localhost", name)
    port = env.integer("PG_PORT", 5432, 1, 65535, name)
    user = env.text("PG_USER", "barman", name)
    database = env.text("PG_DATABASE", "postgres", name)
    streaming_user = env.text("PG_STREAMING_USER", "streaming_barman", name)
    conninfo = make_conninfo(host=host, port=str(port), user=user, dbname=database)
    streaming = make_conninfo(host=host, port=str(port), user=streaming_user)
    return _server(
        env,
        name,
        conninfo=conninfo,
        streaming_conninfo=streaming,
        slot_name=env.text("BARMAN_SLOT_NAME", "barman", name),
        retention_policy=None,
        timezone=timezone,
        require_password=True,
    )


def _server(
    env: _Env,
    name: str,
    *,
    conninfo: str,
    streaming_conninfo: str,
    slot_name: str,
    retention_policy: str | None,
    timezone: ZoneInfo,
    require_password: bool,
    file_passwords: tuple[Secret | None, Secret | None] = (None, None),
    barman_options: Mapping[str, str] | None = None,
) -> ServerSettings:
    """One server's settings, ``__<SERVER>`` overrides first. Longer than 60 lines on purpose:
    every per-server variable and its default, one line each, in one place."""
    password = env.secret("PG_PASSWORD", name) or file_passwords[0]
    streaming_password = env.secret("PG_STREAMING_PASSWORD", name) or file_passwords[1] or password
    if require_password and password is None:
        var, _ = env.raw("PG_PASSWORD", name)
        raise ConfigError(
            f"{var}: no password for the Barman PostgreSQL user; set {var} or {var}_FILE"
        )
    if not re.match(r"^[a-z0-9_]{1,63}$", slot_name):
        var, _ = env.raw("BARMAN_SLOT_NAME", name)
        raise ConfigError(
            f"{var}: slot name {slot_name!r} is invalid; use lower-case letters, digits and '_'"
        )
    schedule_var, _ = env.raw("BACKUP_SCHEDULE", name)
    schedule = env.text("BACKUP_SCHEDULE", "0 3 * * *", name)
    _check_schedule(
        schedule_var,
        schedule,
        timezone,
        "use 5 crontab fields, e.g. '0 3 * * 0' (Sundays at 03:00)",
    )
    drill_var, _ = env.raw("DRILL_SCHEDULE", name)
    drill_schedule = env.text("DRILL_SCHEDULE", "", name)
    if drill_schedule:
        _check_schedule(
            drill_var,
            drill_schedule,
            timezone,
            "use 5 crontab fields, e.g. '0 5 * * 6' (Saturdays at 05:00), or leave it empty for "
            "no drill",
        )
    if retention_policy is not None:
        retention = retention_policy
    else:
        retention = env.text("RETENTION_POLICY", "RECOVERY WINDOW OF 7 DAYS", name)
    retention_var, _ = env.raw("RETENTION_POLICY", name)
    if retention_policy is None and not RETENTION.match(retention):
        raise ConfigError(
            f"{retention_var}: {retention!r} is not a Barman retention policy; use e.g. "
            "'RECOVERY WINDOW OF 7 DAYS' or 'REDUNDANCY 3'"
        )
    offsite = _offsite(env, name, retention.upper(), barman_options or {})
    drill_source = _drill_source(env, name, offsite)
    return ServerSettings(
        name=name,
        conninfo=conninfo,
        streaming_conninfo=streaming_conninfo,
        password=password,
        streaming_password=streaming_password,
        slot_name=slot_name,
        backup_schedule=schedule,
        backup_on_start=env.boolean("BACKUP_ON_START", True, name),
        backup_immediate_checkpoint=env.boolean("BACKUP_IMMEDIATE_CHECKPOINT", False, name),
        retention_policy=retention.upper(),
        bandwidth_limit_kbps=_bandwidth_limit(env, name),
        backup_max_age=env.seconds("BACKUP_MAX_AGE", 0, minimum=0, server=name) or None,
        deadman_url=env.url("DEADMAN_URL", name),
        drill_schedule=drill_schedule,
        drill_query=env.text("DRILL_QUERY", "", name),
        drill_source=drill_source,
        password_in_mounted_file=any(p is not None for p in file_passwords),
        offsite=offsite,
        backup_policy=_backup_policy(env, name, timezone, mounted=barman_options is not None),
    )


def _backup_policy(env: _Env, name: str, timezone: ZoneInfo, *, mounted: bool) -> BackupPolicy:
    """BACKUP_INCREMENTAL_SCHEDULE, BACKUP_CHAIN_MAX and the compressions for one server.

    Refuses what cannot work whatever the server: compression variables for a Barman file the
    daemon does not write, a location without a compression, and anything an off-site copy
    cannot carry (barman-cloud-backup uploads one backup's ``data`` directory: an incremental's
    holds only changed blocks, a compressed one holds tar files).
    """
    default = BackupPolicy()
    incremental_var, _ = env.raw("BACKUP_INCREMENTAL_SCHEDULE", name)
    incremental = env.text("BACKUP_INCREMENTAL_SCHEDULE", default.incremental_schedule, name)
    if incremental:
        _check_schedule(
            incremental_var,
            incremental,
            timezone,
            "use 5 crontab fields, e.g. '0 3 * * 1-6' (Monday to Saturday at 03:00), or leave it "
            "empty for full backups only",
        )
    policy = BackupPolicy(
        incremental_schedule=incremental,
        chain_max=env.integer("BACKUP_CHAIN_MAX", default.chain_max, 1, CHAIN_MAX_LIMIT, name),
        compression=_compression(env, "BACKUP_COMPRESSION", BACKUP_COMPRESSIONS, name),
        compression_location=env.text(
            "BACKUP_COMPRESSION_LOCATION", default.compression_location, name
        ).lower(),
        wal_compression=_compression(env, "WAL_COMPRESSION", WAL_COMPRESSIONS, name),
    )
    location_var, location = env.raw("BACKUP_COMPRESSION_LOCATION", name)
    if policy.compression_location not in BACKUP_COMPRESSION_LOCATIONS:
        raise ConfigError(
            f"{location_var}: {location!r} is not one of {', '.join(BACKUP_COMPRESSION_LOCATIONS)}"
        )
    if location and location.strip() and not policy.compression:
        raise ConfigError(
            f"{location_var}: set without a compression; set BACKUP_COMPRESSION (gzip, lz4 or "
            f"zstd) or unset {location_var}"
        )
    _refuse_policy_combinations(env, name, policy, mounted=mounted)
    return policy


def _compression(env: _Env, name: str, choices: tuple[str, ...], server: str) -> str:
    """One of ``choices``, ``none`` (the default) read as the empty string Barman takes."""
    var, value = env.raw(name, server)
    picked = (value or "none").strip().lower() or "none"
    if picked not in choices:
        raise ConfigError(f"{var}: {value!r} is not one of {', '.join(choices)}")
    return "" if picked == "none" else picked


def _refuse_policy_combinations(
    env: _Env, name: str, policy: BackupPolicy, *, mounted: bool
) -> None:
    compressions = {
        "BACKUP_COMPRESSION": policy.compression,
        "WAL_COMPRESSION": policy.wal_compression,
    }
    offsite_var, offsite_url = env.raw("OFFSITE_URL", name)
    offsite = bool(offsite_url and offsite_url.strip())
    for variable, value in compressions.items():
        var, _ = env.raw(variable, name)
        if value and mounted:
            raise ConfigError(
                f"{var}: the Barman configuration is mounted, not rendered; set the compression "
                f"in the mounted file for [{name}] and unset {var}"
            )
        if value and offsite:
            raise ConfigError(
                f"{var}: {offsite_var} copies backups and WAL with barman-cloud, which cannot "
                f"carry what Barman compressed; set {var}=none or unset {offsite_var}"
            )
    if policy.incremental and offsite:
        var, _ = env.raw("BACKUP_INCREMENTAL_SCHEDULE", name)
        raise ConfigError(
            f"{var}: {offsite_var} copies each backup's data directory alone, and an incremental "
            f"one holds only the changed blocks; unset {var} or {offsite_var}"
        )


def _check_schedule(var: str, schedule: str, timezone: ZoneInfo, fix: str) -> None:
    """A schedule that parses but never fires (``0 3 31 2 *``) would silently take no backup."""
    try:
        trigger = parse_crontab(schedule, timezone)
    except CrontabError as exc:
        raise ConfigError(f"{var}: {exc}; {fix}") from None
    now = datetime.now(timezone)
    fire = trigger.get_next_fire_time(None, now)
    if fire is None or (fire - now).days > SCHEDULE_HORIZON_YEARS * 366:
        raise ConfigError(f"{var}: {schedule!r} never fires (no such date); {fix}")


def _offsite(
    env: _Env, server: str, retention: str, barman_options: Mapping[str, str]
) -> Offsite | None:
    """OFFSITE_* for one server; None while OFFSITE_URL is empty (no off-site copy)."""
    url_var, _ = env.raw("OFFSITE_URL", server)
    url = env.text("OFFSITE_URL", "", server)
    if not url:
        return None
    if not OFFSITE_URL.match(url):
        raise ConfigError(
            f"{url_var}: {url!r} is not an S3 URL; use s3://BUCKET/PREFIX (bucket: 3-63 of "
            "a-z 0-9 . -)"
        )
    refusal = offsite_refusal(barman_options)
    if refusal is not None:
        raise ConfigError(f"{url_var}: {refusal}")
    endpoint_var, _ = env.raw("OFFSITE_ENDPOINT_URL", server)
    endpoint = env.text("OFFSITE_ENDPOINT_URL", "", server)
    if endpoint and not re.match(r"^https?://[^\s/]+(/\S*)?$", endpoint):
        raise ConfigError(
            f"{endpoint_var}: {endpoint!r} is not an http(s) URL; use e.g. https://s3.example.com"
        )
    policy_var, _ = env.raw("OFFSITE_RETENTION_POLICY", server)
    policy = env.text("OFFSITE_RETENTION_POLICY", retention, server).upper()
    if policy and not RETENTION.match(policy):
        raise ConfigError(
            f"{policy_var}: {policy!r} is not a retention policy; use e.g. 'REDUNDANCY 3' or "
            "'RECOVERY WINDOW OF 30 DAYS'"
        )
    access_key = env.secret("AWS_ACCESS_KEY_ID", server)
    secret_key = env.secret("AWS_SECRET_ACCESS_KEY", server)
    if (access_key is None) != (secret_key is None):
        missing = "AWS_SECRET_ACCESS_KEY" if secret_key is None else "AWS_ACCESS_KEY_ID"
        raise ConfigError(
            f"{missing}: the off-site store needs both AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY (or their _FILE variants); set {missing} or {missing}_FILE"
        )
    return Offsite(
        url=url.rstrip("/"),
        endpoint_url=endpoint,
        region=env.text("OFFSITE_REGION", "", server),
        encryption=_choice_of(env, "OFFSITE_ENCRYPTION", OFFSITE_ENCRYPTIONS, server),
        compression=_choice_of(env, "OFFSITE_COMPRESSION", OFFSITE_COMPRESSIONS, server),
        retention_policy=policy,
        backup_max_delay=env.seconds("OFFSITE_BACKUP_MAX_DELAY", 3600, 60, server=server),
        wal_max_lag=env.seconds("OFFSITE_WAL_MAX_LAG", 600, 10, server=server),
        access_key_id=access_key,
        secret_access_key=secret_key,
        session_token=env.secret("AWS_SESSION_TOKEN", server),
    )


def offsite_refusal(barman_options: Mapping[str, str]) -> str | None:
    """Barman settings whose backups or WAL ``barman-cloud-*`` cannot copy off-site.

    barman-cloud-backup, run on a Barman backup, uploads its ``data`` directory: a backup
    Barman compressed into tar files (``backup_compression``) has none, and a backup or WAL
    directory already in the cloud (``basebackups_directory = s3://``) needs no copy. WAL that
    Barman compressed would reach the store compressed under the plain segment name, which
    barman-cloud-wal-restore then hands to PostgreSQL as is.
    """
    options = {key.lower(): value.strip() for key, value in barman_options.items()}
    if options.get("backup_compression"):
        return (
            "backup_compression is set in the Barman configuration; barman-cloud-backup cannot "
            "copy compressed backups: remove backup_compression or OFFSITE_URL"
        )
    if options.get("compression"):
        return (
            "compression (WAL) is set in the Barman configuration; off-site WAL must be stored "
            "uncompressed by Barman: remove compression or OFFSITE_URL"
        )
    for key in ("basebackups_directory", "wals_directory"):
        if "://" in options.get(key, ""):
            return f"{key} is already a cloud URL; unset OFFSITE_URL for this server"
    return None


def _drill_source(env: _Env, server: str, offsite: Offsite | None) -> str:
    """DRILL_SOURCE: ``offsite`` drills from the store, so it needs one."""
    source = _choice_of(env, "DRILL_SOURCE", DRILL_SOURCES, server) or DRILL_LOCAL
    if source == DRILL_OFFSITE and offsite is None:
        var, _ = env.raw("DRILL_SOURCE", server)
        url_var, _ = env.raw("OFFSITE_URL", server)
        raise ConfigError(
            f"{var}: offsite drills restore from the off-site store, and {url_var} is not set; "
            f"set {url_var} or DRILL_SOURCE=local"
        )
    return source


def _choice_of(env: _Env, name: str, choices: tuple[str, ...], server: str) -> str:
    var, _ = env.raw(name, server)
    value = env.text(name, "", server)
    if value not in choices:
        raise ConfigError(f"{var}: {value!r} is not one of {', '.join(c for c in choices if c)}")
    return value


def _bandwidth_limit(env: _Env, server: str) -> int:
    """kB/s for pg_basebackup --max-rate, which takes 32 to 1048576; 0 means unlimited."""
    limit = env.integer("BACKUP_BANDWIDTH_LIMIT", 0, 0, 1048576, server)
    if 0 < limit < 32:
        var, _ = env.raw("BACKUP_BANDWIDTH_LIMIT", server)
        raise ConfigError(
            f"{var}: {limit} kB/s is below pg_basebackup's minimum; use 0 or 32-1048576"
        )
    return limit
