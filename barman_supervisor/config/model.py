"""The typed settings: frozen records built once by ``load_settings``, read by everyone else.

A password or a URL that may carry a token is a ``Secret`` from the moment it is read, so that a
log line, an error or ``/status`` that prints a record by accident shows ``***``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from psycopg.conninfo import conninfo_to_dict

from barman_supervisor.config.shard import Ownership, Shard
from barman_supervisor.config.variables import DRILL_LOCAL, VARIABLES

# libpq's TLS keywords that are paths or a mode: shown by check-config.
TLS_SHOWN = ("sslmode", "sslrootcert", "sslcert", "sslkey")


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
    # A customer-managed KMS key (id or ARN) for aws:kms; empty: the bucket's AWS-managed key.
    sse_kms_key_id: str = ""
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
    """Full and incremental backups and their compression (issue 13); defaults from the table.

    ``incremental_schedule`` empty means full backups only. ``chain_max`` incrementals stack on
    one full before the next scheduled incremental is taken as a full instead (a long chain is
    slow to restore and one broken link loses all that follow). Empty compressions mean none.
    """

    incremental_schedule: str = ""
    chain_max: int = int(VARIABLES["BACKUP_CHAIN_MAX"].default)
    compression: str = ""
    compression_location: str = VARIABLES["BACKUP_COMPRESSION_LOCATION"].default
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
    # Barman's floor under retention: never fewer DONE full backups than this.
    minimum_redundancy: int
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
    # What a refusal about TLS names for each libpq keyword (and ``host``): the variable that
    # set it (``PG_SSLKEY__REPORTS``), or the keyword in a mounted conninfo.
    tls_names: tuple[tuple[str, str], ...] = ()

    def tls_name(self, keyword: str) -> str:
        return dict(self.tls_names).get(keyword, keyword)

    @property
    def tls(self) -> dict[str, str]:
        """The conninfo's mode and TLS files (from PG_SSL* or a mounted file), never a secret
        (``sslpassword`` is left out): what ``check-config`` shows."""
        params = conninfo_to_dict(self.conninfo)
        return {key: str(params[key]) for key in TLS_SHOWN if params.get(key)}

    # After a followed promotion, a full backup on the new timeline (FAILOVER_BACKUP).
    failover_backup: bool = True

    @property
    def host(self) -> str:
        """The host, or the comma-separated hosts of a cluster that fails over."""
        return str(conninfo_to_dict(self.conninfo).get("host") or "localhost")

    @property
    def port(self) -> int:
        """The port of the first host (what a log line or a reachability probe names)."""
        return self.addresses[0][1]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) the conninfo names, in libpq's order: one port may serve all."""
        return conninfo_addresses(self.conninfo)


def conninfo_addresses(conninfo: str) -> list[tuple[str, int]]:
    """Every (host, port) a conninfo names, in libpq's order: one port may serve all hosts."""
    params = conninfo_to_dict(conninfo)
    hosts = str(params.get("host") or "localhost").split(",")
    ports = [int(port) for port in str(params.get("port") or "5432").split(",")]
    return [(host, ports[min(i, len(ports) - 1)]) for i, host in enumerate(hosts)]


@dataclass(frozen=True)
class TlsServer:
    """HTTPS for the HTTP port: the ``tls_server_config`` of the web configuration file."""

    cert_file: Path
    key_file: Path
    # Set: only clients with a certificate signed by this CA connect (RequireAndVerifyClientCert).
    client_ca_file: Path | None = None
    min_version: Literal["TLS12", "TLS13"] = "TLS12"


@dataclass(frozen=True)
class WebAccess:
    """Who may reach the HTTP port and how: TLS, basic-auth users (bcrypt hashes, never a
    password) and the Host allow-list. The default is plain HTTP open to all, as before."""

    tls: TlsServer | None = None
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    allowed_hosts: tuple[str, ...] = ()
    # The file they came from, for the log line at start.
    source: Path | None = None

    @property
    def login_required(self) -> bool:
        return bool(self.users)


@dataclass(frozen=True)
class Settings:
    """Every setting, built once by ``load_settings`` from the table of variables."""

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
    http_access: WebAccess = field(default_factory=WebAccess)
    # With SHARD_COUNT: this replica's shard, and every configured server's owner (``servers``
    # holds only the ones this replica owns).
    shard: Shard | None = None
    ownership: tuple[Ownership, ...] = ()

    def server(self, name: str) -> ServerSettings:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)
