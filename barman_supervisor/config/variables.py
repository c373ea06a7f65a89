"""The one declared table of environment variables: every setting the daemon reads, once.

Each entry says the variable's name, its concern (the section of docs/configuration.md), whether
a server may override it (``NAME__<SERVER>``), its kind (how the reader parses it), its default
as a person would write it, its bounds or choices, and its meaning. The reader (``env.Env``)
takes the default, bounds and choices from here and refuses a name that is not here, so the
table is complete by construction; ``reference`` renders the documentation from it.

A default may name another value as ``$NAME`` (``$BARMAN_HOME/drill``): the caller that knows
that value fills it in. An empty default with ``unset`` text means "computed or off": the text
says what happens then, for the documentation.

Kept long: one row per variable is the point of the module; split, the table would no longer
be one place to read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal[
    "text", "path", "schedule", "seconds", "integer", "size", "factor", "boolean", "choice",
    "secret", "secret_url",
]  # fmt: skip
Scope = Literal["global", "server"]
SECRET_KINDS: tuple[Kind, ...] = ("secret", "secret_url")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("auto", "json", "console")
CONFIG_MODES = ("auto", "render", "mounted")
FAILED_BACKUP_ACTIONS = ("keep", "delete")
OFFSITE_ENCRYPTIONS = ("", "AES256", "aws:kms")
# libpq's sslmode values; empty leaves libpq's own default (prefer, or PGSSLMODE).
PG_SSLMODES = ("", "disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# What barman-cloud-backup and barman-cloud-wal-archive both take (each as --NAME); lz4 and
# zstd come with the lz4 and zstandard extras of Barman, which the package installs.
OFFSITE_COMPRESSIONS = ("", "gzip", "bzip2", "lz4", "zstd")
DRILL_LOCAL, DRILL_OFFSITE = "local", "offsite"
DRILL_SOURCES = (DRILL_LOCAL, DRILL_OFFSITE)
# What Barman's backup_compression takes (pg_basebackup --compress); "none" is the default.
BACKUP_COMPRESSIONS = ("none", "gzip", "lz4", "zstd")
BACKUP_COMPRESSION_LOCATIONS = ("client", "server")
# Barman's WAL compressors that need nothing beyond Python itself (zstd, lz4 and snappy need
# extra Python modules in Barman's environment, pigz a program).
WAL_COMPRESSIONS = ("none", "gzip", "bzip2", "xz")
# A chain longer than this is a restore that combines a month of daily backups: refuse it.
CHAIN_MAX_LIMIT = 30
# pg_basebackup --max-rate takes 32 to 1048576 kB/s.
BANDWIDTH_MIN, BANDWIDTH_MAX = 32, 1048576


@dataclass(frozen=True)
class Variable:
    """One environment variable: what the reader needs to parse it and a person to set it."""

    name: str
    kind: Kind
    default: str
    meaning: str
    unset: str = ""
    scope: Scope = "global"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    fold: Literal["", "upper", "lower"] = ""
    group: str = ""

    @property
    def secret(self) -> bool:
        """Read from ``NAME`` or the file named by ``NAME_FILE``, and never shown."""
        return self.kind in SECRET_KINDS


# The concerns, in the order docs/configuration.md shows them.
SERVERS = "Servers and PostgreSQL"
BARMAN = "Barman and its files"
BACKUPS = "Backups"
WAL = "WAL"
HEALTH = "Health, alerts and HTTP"
DRILLS = "Restore drills"
OFFSITE = "Off-site copies (S3)"
PROCESS = "Logs, start and stop"
SHARDING = "Several replicas (sharding)"
GROUPS = (SERVERS, BARMAN, BACKUPS, WAL, HEALTH, DRILLS, OFFSITE, PROCESS, SHARDING)


def _in(group: str, *rows: Variable) -> tuple[Variable, ...]:
    return tuple(replace(row, group=group) for row in rows)


# One row per variable: name, kind, default, meaning, then what else applies.
_TABLE: tuple[Variable, ...] = (
    *_in(
        SERVERS,
        Variable("BARMAN_SERVERS", "text", "pg",
            "comma-separated server names to render (letters, digits, `_-.`; not `all`/`barman`)"),
        Variable("PG_HOST", "text", "localhost",
            "PostgreSQL host, or the hosts of a highly available cluster (`db1,db2,db3`): the "
            "daemon and Barman connect to whichever answers as the primary "
            "(`target_session_attrs=read-write`)",
            scope="server",
        ),
        Variable("PG_PORT", "text", "5432",
            "PostgreSQL port, or one port per `PG_HOST` host (`5432,5433`)",
            scope="server",
        ),
        Variable("FAILOVER_BACKUP", "boolean", "true",
            "after a promotion was followed (a new timeline of the same cluster), take a full "
            "backup on the new timeline at once",
            scope="server",
        ),
        Variable("PG_USER", "text", "barman",
            "role for backups and checks (needs no superuser: see "
            "`docker/postgres/initdb.d/10-barman-roles.sh`)",
            scope="server",
        ),
        Variable("PG_DATABASE", "text", "postgres",
            "database for that role",
            scope="server",
        ),
        Variable("PG_PASSWORD", "secret", "",
            "its password",
            unset="required (render mode)", scope="server",
        ),
        Variable("PG_STREAMING_USER", "text", "streaming_barman",
            "role with REPLICATION for WAL streaming and `pg_basebackup`",
            scope="server",
        ),
        Variable("PG_STREAMING_PASSWORD", "secret", "",
            "its password",
            unset="`PG_PASSWORD`", scope="server",
        ),
        Variable("BARMAN_SLOT_NAME", "text", "barman",
            "physical replication slot (lower-case letters, digits and `_`)",
            scope="server",
        ),
        Variable("PG_WAIT_TIMEOUT", "seconds", "0",
            "give up waiting for PostgreSQL at start after this long (exit 1); 0 waits for ever",
            minimum=0,
        ),
        Variable("PG_CONNECT_TIMEOUT", "seconds", "5",
            "seconds per connection attempt",
            minimum=1, maximum=300,
        ),
        Variable("PG_SSLMODE", "choice", "",
            "libpq's `sslmode` for the daemon's connections and Barman's `conninfo` and "
            "`streaming_conninfo` (`pg_basebackup`, `pg_receivewal`): `verify-full` checks the "
            "CA and the host name (see [TLS](postgresql.md#tls))",
            unset="libpq's default (`prefer`)", scope="server", choices=PG_SSLMODES, fold="lower",
        ),
        Variable("PG_SSLROOTCERT", "path", "",
            "the CA certificate(s) the server's certificate must be signed by (libpq's "
            "`sslrootcert`; `system` for the system's trusted roots); an absolute path",
            unset="libpq's default (`~/.postgresql/root.crt`)", scope="server",
        ),
        Variable("PG_SSLCERT", "path", "",
            "client certificate (libpq's `sslcert`), with `PG_SSLKEY`; an absolute path",
            unset="none", scope="server",
        ),
        Variable("PG_SSLKEY", "path", "",
            "its private key (libpq's `sslkey`): mode 0600 owned by the daemon's user, or 0640 "
            "owned by root; an absolute path",
            unset="none", scope="server",
        ),
    ),
    *_in(
        BARMAN,
        Variable("BARMAN_CONFIG_MODE", "choice", "auto",
            "`render`, `mounted`, or `auto` ([which wins]"
            "(operations.md#rendered-or-mounted-barman-configuration-which-wins))",
            choices=CONFIG_MODES,
        ),
        Variable("BARMAN_CONFIG_FILE", "path", "/etc/barman.conf",
            "Barman's main file"),
        Variable("BARMAN_CONFIG_DIR", "path", "/etc/barman.d",
            "one `<server>.conf` per PostgreSQL server"),
        Variable("BARMAN_HOME", "path", "/var/lib/barman",
            "backups and WAL (the volume)"),
        Variable("BARMAN_USER", "text", "",
            "Barman's `barman_user`",
            unset="the user running the daemon",
        ),
        Variable("BARMAN_LOG_FILE", "path", "$BARMAN_HOME/log/barman.log",
            "Barman's log file; followed and re-emitted as `barman_log` events"),
        Variable("BARMAN_BIN", "path", "",
            "the Barman command (must exist and be executable)",
            unset="`barman` beside the daemon's Python, else on `PATH`",
        ),
        Variable("BARMAN_PGPASS_FILE", "path", "$BARMAN_HOME/.pgpass",
            "password file written for Barman and its children (`PGPASSFILE`); an absolute path"),
        Variable("BARMAN_CRON_INTERVAL", "seconds", "600",
            "seconds between `barman cron` runs: retention, `check-backup`; WAL archiving and "
            "streaming restarts do not wait for it",
            minimum=1, maximum=3600,
        ),
        Variable("BARMAN_CHECK_INTERVAL", "seconds", "300",
            "seconds between `barman check` runs",
            minimum=5, maximum=86400,
        ),
        Variable("BARMAN_FORKSERVER", "boolean", "true",
            "Barman's commands start as forks of one process that imported Barman once (each still"
            " enters through Barman's CLI entry point with its arguments, so output and exit codes"
            " are Barman's own): about 0.3 s of CPU less per command, and their memory is shared. "
            "With `OFFSITE_URL` the `barman-cloud-*` programs fork from it too, the cloud clients "
            "and boto3 imported once (a store listing 0.15 s of CPU instead of 0.43 s). "
            "Used when `BARMAN_BIN` is a Python script; `false` starts every command as its own "
            "process"),
    ),
    *_in(
        BACKUPS,
        Variable("BACKUP_SCHEDULE", "schedule", "0 3 * * *",
            "full backups, crontab in `TZ`",
            scope="server",
        ),
        Variable("BACKUP_INCREMENTAL_SCHEDULE", "schedule", "",
            "block-level incremental backups (PostgreSQL ≥ 17, `summarize_wal = on`), crontab in "
            "`TZ`; see [incremental backups](backups.md#incremental-backups)",
            unset="empty (off)", scope="server",
        ),
        Variable("BACKUP_CHAIN_MAX", "integer", "6",
            "incrementals stacked on one full; the next scheduled incremental after that is taken "
            "as a full",
            scope="server", minimum=1, maximum=CHAIN_MAX_LIMIT,
        ),
        Variable("BACKUP_COMPRESSION", "choice", "none",
            "Barman's `backup_compression` (`pg_basebackup --compress`, stored as compressed tar "
            "files); `lz4`/`zstd` need PostgreSQL ≥ 15, and the program of that name beside Barman"
            " (the image has all three); refused at start otherwise, and with `OFFSITE_URL` or a "
            "mounted Barman configuration",
            scope="server", choices=BACKUP_COMPRESSIONS, fold="lower",
        ),
        Variable("BACKUP_COMPRESSION_LOCATION", "choice", "client",
            "where backups are compressed: `client` (Barman's host) or `server` (PostgreSQL ≥ 15, "
            "refused at start on older servers; less network, more CPU on PostgreSQL); only with "
            "`BACKUP_COMPRESSION`",
            scope="server", choices=BACKUP_COMPRESSION_LOCATIONS, fold="lower",
        ),
        Variable("BACKUP_ON_START", "boolean", "true",
            "take a first backup at start when the server has none",
            scope="server",
        ),
        Variable("BACKUP_IMMEDIATE_CHECKPOINT", "boolean", "false",
            "scheduled backups start with an immediate checkpoint (faster, more I/O at once)",
            scope="server",
        ),
        Variable("BACKUP_BANDWIDTH_LIMIT", "integer", "0",
            f"kB/s cap for backups (`pg_basebackup --max-rate`, at least {BANDWIDTH_MIN}); 0 is "
            f"none",
            scope="server", minimum=0, maximum=BANDWIDTH_MAX,
        ),
        Variable("RETENTION_POLICY", "text", "RECOVERY WINDOW OF 7 DAYS",
            "Barman retention policy (`REDUNDANCY n` or `RECOVERY WINDOW OF n DAYS/WEEKS/MONTHS`),"
            " applied by `barman cron`",
            scope="server",
        ),
        Variable("MINIMUM_REDUNDANCY", "integer", "1",
            "Barman's `minimum_redundancy` (rendered configuration): retention and `barman delete` "
            "never leave fewer DONE full backups than this; `/readyz` asks for one DONE backup "
            "whatever this says",
            scope="server", minimum=0, maximum=1000,
        ),
        Variable("BACKUP_WAIT_TIMEOUT", "seconds", "600",
            "`barman backup --wait-timeout`: how long a backup waits for its WAL",
            minimum=1, maximum=86400,
        ),
        Variable("BACKUP_CONCURRENCY", "integer", "2",
            "at most this many backups copy at once across all servers; a due backup waits for a "
            "slot (`backup_waiting`)",
            minimum=1, maximum=1000,
        ),
        Variable("FAILED_BACKUPS", "choice", "delete",
            "`delete`: a FAILED backup is deleted once a newer backup is DONE (it keeps `barman "
            "check` red for ever otherwise); `keep`: never. DONE backups are never touched",
            choices=FAILED_BACKUP_ACTIONS,
        ),
        Variable("DEADMAN_URL", "secret_url", "",
            "dead-man's switch (healthchecks.io style): `URL/start` before each backup, `URL` "
            "after success, `URL/fail` after failure",
            unset="none", scope="server",
        ),
        Variable("TZ", "text", "UTC",
            "time zone of the backup schedules (IANA name)"),
    ),
    *_in(
        WAL,
        Variable("WAL_COMPRESSION", "choice", "none",
            "Barman's WAL `compression` (archived segments compressed in Barman's Python; restores"
            " decompress them); refused with `OFFSITE_URL` or a mounted Barman configuration",
            scope="server", choices=WAL_COMPRESSIONS, fold="lower",
        ),
        Variable("WAL_ARCHIVE_INTERVAL", "seconds", "60",
            "seconds between the looks for WAL to archive per server: `barman archive-wal "
            "<server>` runs only when `streaming/` holds a completed segment or `incoming/` a file",
            minimum=1, maximum=3600,
        ),
        Variable("WAL_ARCHIVE_TIMEOUT", "seconds", "60",
            "how long start-up waits for the first WAL segment to be archived",
            minimum=5, maximum=3600,
        ),
        Variable("ALLOW_STREAMING_RESET", "boolean", "false",
            "after a timeline change, a lost slot or a WAL gap the server can no longer stream, "
            "run `barman receive-wal --reset` (drops the `.partial` WAL file) and resume streaming"
            " by itself"),
    ),
    *_in(
        HEALTH,
        Variable("HTTP_BIND", "text", "0.0.0.0",  # noqa: S104 - a container's probe port
            "address of the health and metrics server (an IP address, `::` for IPv6, or a host "
            "name)"),
        Variable("HTTP_PORT", "integer", "9798",
            "its port",
            minimum=1, maximum=65535,
        ),
        Variable("HTTP_WEB_CONFIG_FILE", "path", "",
            "a web configuration file in the Prometheus exporter-toolkit format: "
            "`tls_server_config` (`cert_file`, `key_file`, optional `client_ca_file` with "
            "`client_auth_type: RequireAndVerifyClientCert`, `min_version`) serves HTTPS; "
            "`basic_auth_users` (user: bcrypt hash) makes `/`, `/status` and `/metrics` ask for a "
            "login while `/healthz` and `/readyz` answer strangers with the verdict only "
            "([security.md](security.md#the-http-port))",
            unset="plain HTTP, no login"),
        Variable("HTTP_ALLOWED_HOSTS", "text", "",
            "comma-separated host names the `Host` header may carry (`.example.com` also allows "
            "its subdomains); any other name is refused with 421 (DNS rebinding). IP addresses "
            "and `localhost` are always accepted",
            unset="any Host"),
        Variable("HEALTH_INTERVAL", "seconds", "10",
            "seconds between the cheap probes of each server (one query, a process and file "
            "look-up; no Barman command)",
            minimum=1, maximum=3600,
        ),
        Variable("WAL_MAX_LAG", "size", "256M",
            "`/readyz` turns red when the primary holds more WAL than this that Barman has not "
            "received"),
        Variable("WAL_MAX_AGE", "seconds", "0",
            "`/readyz` turns red when Barman received no WAL for this long; set it only when the "
            "primary always writes (an idle primary writes no WAL)",
            unset="off", minimum=0,
        ),
        Variable("BACKUP_MAX_AGE", "seconds", "0",
            "`/readyz` turns red when the newest DONE backup is older (36 h for a daily schedule)",
            unset="1.5 × the longest gap of `BACKUP_SCHEDULE` and `BACKUP_INCREMENTAL_SCHEDULE` "  # noqa: RUF001
            "together",
            scope="server", minimum=0,
        ),
        Variable("DISK_MIN_FREE", "size", "512M",
            "`/readyz` turns red (and alerts) when the Barman volume has less free space"),
        Variable("ALERT_WEBHOOK_URL", "secret_url", "",
            "a JSON POST when a server stops being protected and when it is again; "
            "`https://user:password@host/…` is sent as HTTP Basic authentication",
            unset="none",
        ),
        Variable("ALERT_WEBHOOK_ALLOW_HTTP", "boolean", "false",
            "allow an `http://` `ALERT_WEBHOOK_URL` or `DEADMAN_URL` to a host other than the "
            "loopback (the body and any credentials then cross the network in plaintext)"),
        Variable("ALERT_STREAMING_AFTER", "seconds", "300",
            "seconds PostgreSQL or streaming may be down before that alerts (a start-up still "
            "waiting alerts after 10 min); other problems alert at once",
            minimum=0,
        ),
        Variable("ALERT_TIMEOUT", "seconds", "5",
            "seconds per webhook or ping attempt (3 attempts, then the failure is logged)",
            minimum=0.5, maximum=120,
        ),
    ),
    *_in(
        DRILLS,
        Variable("DRILL_SCHEDULE", "schedule", "",
            "restore drills, crontab in `TZ` (see [restore drills](restore.md#restore-drills))",
            unset="empty (off)", scope="server",
        ),
        Variable("DRILL_QUERY", "text", "",
            "the drill's verification query; must return one number",
            unset="`count(*)` of every user table", scope="server",
        ),
        Variable("DRILL_SOURCE", "choice", "local",
            "where drills restore from: `local` (Barman's catalogue, `barman recover`) or "
            "`offsite` (the `OFFSITE_URL` store, as `restore-offsite` does; needs `OFFSITE_URL`)",
            scope="server", choices=DRILL_SOURCES,
        ),
        Variable("DRILL_SCRATCH_DIR", "path", "$BARMAN_HOME/drill",
            "where drills restore to (deleted after each drill); an absolute path"),
        Variable("DRILL_TIMEOUT", "seconds", "2h",
            "a drill taking longer is stopped and failed",
            minimum=60, maximum=172800,
        ),
        Variable("DRILL_SPACE_FACTOR", "factor", "1.2",
            "a drill refuses to start unless free space ≥ (backup + WAL) × this factor + "  # noqa: RUF001
            "`DRILL_SPACE_MARGIN`",
            minimum=1, maximum=100,
        ),
        Variable("DRILL_SPACE_MARGIN", "size", "1G",
            "the margin of that rule"),
        Variable("PG_BIN_DIR", "path", "",
            "PostgreSQL server programs for drills and `pg_verifybackup` (the image has 18 and 17:"
            " see [majors](postgresql.md#majors))",
            unset="`/usr/lib/postgresql/<major>/bin` of each backup",
        ),
    ),
    *_in(
        OFFSITE,
        Variable("OFFSITE_URL", "text", "",
            "off-site copy of backups and WAL: `s3://BUCKET/PREFIX` (see "
            "[off-site copies](offsite.md))",
            unset="empty (off)", scope="server",
        ),
        Variable("OFFSITE_ENDPOINT_URL", "text", "",
            "S3 API endpoint of a non-AWS store, e.g. `https://minio.example:9000`",
            unset="AWS", scope="server",
        ),
        Variable("OFFSITE_REGION", "text", "",
            "region (`AWS_DEFAULT_REGION` of the `barman-cloud-*` children)",
            unset="boto3's default", scope="server",
        ),
        Variable("OFFSITE_ENCRYPTION", "choice", "",
            "server-side encryption",
            unset="none", scope="server", choices=OFFSITE_ENCRYPTIONS,
        ),
        Variable("OFFSITE_SSE_KMS_KEY_ID", "text", "",
            "customer-managed KMS key (id or ARN) for `OFFSITE_ENCRYPTION=aws:kms` (the uploaders' "
            "`--sse-kms-key-id`)",
            unset="the bucket's AWS-managed key", scope="server",
        ),
        Variable("OFFSITE_COMPRESSION", "choice", "",
            "compress what is copied to the store (backups as `data.tar.<ext>`, WAL as "
            "`<segment>.<ext>`; restores decompress by themselves). See "
            "[compression on the way](offsite.md#compression-on-the-way) for the cost of each",
            unset="none", scope="server", choices=OFFSITE_COMPRESSIONS,
        ),
        Variable("OFFSITE_RETENTION_POLICY", "text", "$RETENTION_POLICY",
            "retention on the store (`barman-cloud-backup-delete --retention-policy`); its own, "
            "e.g. `REDUNDANCY 8`",
            scope="server",
        ),
        Variable("OFFSITE_BACKUP_MAX_DELAY", "seconds", "1h",
            "`/readyz` turns red when a DONE backup is not in the store this long after it ended",
            scope="server", minimum=60,
        ),
        Variable("OFFSITE_WAL_MAX_LAG", "seconds", "10m",
            "`/readyz` turns red when the oldest WAL file not yet in the store waits longer",
            scope="server", minimum=10,
        ),
        Variable("AWS_ACCESS_KEY_ID", "secret", "",
            "the store's key id",
            unset="none (boto3's own chain: `AWS_PROFILE`, instance role)", scope="server",
        ),
        Variable("AWS_SECRET_ACCESS_KEY", "secret", "",
            "its secret; required when the key id is set",
            unset="none", scope="server",
        ),
        Variable("AWS_SESSION_TOKEN", "secret", "",
            "temporary credentials' token",
            unset="none", scope="server",
        ),
        Variable("OFFSITE_INTERVAL", "seconds", "60",
            "seconds between off-site copy rounds",
            minimum=5, maximum=3600,
        ),
        Variable("OFFSITE_BACKUP_TIMEOUT", "seconds", "6h",
            "one backup's upload is stopped and retried after this",
            minimum=60, maximum=604800,
        ),
        Variable("OFFSITE_WAL_JOBS", "integer", "4",
            "WAL files copied to (and, by `restore-offsite`, fetched from) the store at once",
            minimum=1, maximum=32,
        ),
    ),
    *_in(
        PROCESS,
        Variable("LOG_LEVEL", "choice", "INFO",
            "log events below this level are not written",
            choices=LOG_LEVELS, fold="upper",
        ),
        Variable("LOG_FORMAT", "choice", "auto",
            "`json`, `console`, or `auto`: JSON unless stdout is a terminal",
            choices=LOG_FORMATS,
        ),
        Variable("SHUTDOWN_GRACE", "seconds", "300",
            "seconds a running backup may take to finish after SIGTERM",
            minimum=0, maximum=86400,
        ),
        Variable("STARTUP_CONCURRENCY", "integer", "4",
            "at most this many servers run the start-up steps that run Barman commands (`slot` … "
            "`first_backup`) at once; the others wait in phase `queued`, first come first served",
            minimum=1, maximum=1000,
        ),
    ),
    *_in(
        SHARDING,
        Variable("SHARD_COUNT", "text", "",
            "the number of replicas sharing `BARMAN_SERVERS` (every replica is given the full "
            "list and protects the servers rendezvous hashing gives its shard; "
            "[kubernetes.md](kubernetes.md#sharding-which-replica-protects-which-server)); "
            "change it together with the replica count",
            unset="no sharding: this daemon protects every server"),
        Variable("SHARD_INDEX", "text", "",
            "this replica's shard, 0 to `SHARD_COUNT`-1",
            unset="the ordinal ending `POD_NAME` (`barman-2` is shard 2)"),
        Variable("POD_NAME", "text", "",
            "the StatefulSet pod's name, from the downward API (`metadata.name`); read only "
            "with `SHARD_COUNT` set and `SHARD_INDEX` unset"),
    ),

)  # fmt: skip

VARIABLES: dict[str, Variable] = {variable.name: variable for variable in _TABLE}


def variable(name: str) -> Variable:
    """The entry of ``name``; a name outside the table is a mistake in the code, not the input."""
    try:
        return VARIABLES[name]
    except KeyError:
        raise LookupError(
            f"{name} is not in the table of variables; declare it in config/variables.py"
        ) from None
