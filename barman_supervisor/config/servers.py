"""One server's settings: its connection (rendered from ``PG_*`` or from a mounted file), then
what the environment adds for it (schedules, retention, backups, drills, off-site), each variable
read with its ``__<SERVER>`` override first."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from barman_supervisor.config.checks import (
    RETENTION,
    check_hosts_and_ports,
    check_schedule,
    check_server_name,
)
from barman_supervisor.config.env import Env, server_suffix
from barman_supervisor.config.model import BackupPolicy, Offsite, Secret, ServerSettings
from barman_supervisor.config.offsite import read_offsite
from barman_supervisor.config.tls import (
    check_tls_files,
    mounted_tls_names,
    refuse_tls_variables,
    tls_names,
    tls_parameters,
)
from barman_supervisor.config.variables import BANDWIDTH_MAX, BANDWIDTH_MIN, DRILL_OFFSITE
from barman_supervisor.errors import ConfigError

_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


@dataclass(frozen=True)
class ServerSource:
    """Where a server's connection comes from: the environment, or a mounted Barman file.

    ``retention_policy`` None means RETENTION_POLICY; ``barman_options`` None means rendered
    (the daemon writes the server's Barman file, so a password is required).
    """

    name: str
    conninfo: str
    streaming_conninfo: str
    slot_name: str
    retention_policy: str | None = None
    file_passwords: tuple[Secret | None, Secret | None] = (None, None)
    barman_options: Mapping[str, str] | None = None


def rendered_servers(env: Env, timezone: ZoneInfo) -> tuple[ServerSettings, ...]:
    names = [name.strip() for name in env.text("BARMAN_SERVERS").split(",") if name.strip()]
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
    return tuple(server_settings(env, _rendered_source(env, name), timezone) for name in names)


def _rendered_source(env: Env, name: str) -> ServerSource:
    hosts, ports = check_hosts_and_ports(
        env.text("PG_HOST", name),
        env.text("PG_PORT", name),
        env.raw("PG_HOST", name)[0],
        env.raw("PG_PORT", name)[0],
    )
    place = {"host": ",".join(hosts), "port": ",".join(ports)}
    if len(hosts) > 1:
        # Several hosts: the daemon, Barman and pg_receivewal all keep to the primary.
        place["target_session_attrs"] = "read-write"
    user = env.text("PG_USER", name)
    database = env.text("PG_DATABASE", name)
    streaming_user = env.text("PG_STREAMING_USER", name)
    tls = tls_parameters(env, name)
    return ServerSource(
        name=name,
        conninfo=make_conninfo(**place, user=user, dbname=database, **tls),
        streaming_conninfo=make_conninfo(**place, user=streaming_user, **tls),
        slot_name=env.text("BARMAN_SLOT_NAME", name),
    )


def server_settings(env: Env, source: ServerSource, timezone: ZoneInfo) -> ServerSettings:
    """One server's settings, checked in the order a person would fix them."""
    name = source.name
    names = _tls(env, source)
    password, streaming_password = _passwords(env, source)
    _check_slot_name(env, source)
    schedule, drill_schedule = _schedules(env, name, timezone)
    retention = _retention(env, source)
    offsite = read_offsite(env, name, retention, source.barman_options or {})
    drill_source = _drill_source(env, name, offsite)
    return ServerSettings(
        name=name,
        conninfo=source.conninfo,
        streaming_conninfo=source.streaming_conninfo,
        password=password,
        streaming_password=streaming_password,
        slot_name=source.slot_name,
        backup_schedule=schedule,
        backup_on_start=env.boolean("BACKUP_ON_START", name),
        failover_backup=env.boolean("FAILOVER_BACKUP", name),
        backup_immediate_checkpoint=env.boolean("BACKUP_IMMEDIATE_CHECKPOINT", name),
        retention_policy=retention,
        minimum_redundancy=env.integer("MINIMUM_REDUNDANCY", name),
        bandwidth_limit_kbps=_bandwidth_limit(env, name),
        backup_max_age=env.seconds("BACKUP_MAX_AGE", name) or None,
        deadman_url=env.url("DEADMAN_URL", name),
        drill_schedule=drill_schedule,
        drill_query=env.text("DRILL_QUERY", name),
        drill_source=drill_source,
        password_in_mounted_file=any(p is not None for p in source.file_passwords),
        offsite=offsite,
        backup_policy=_backup_policy(
            env, name, timezone, mounted=source.barman_options is not None
        ),
        tls_names=tuple(names.items()),
    )


def _tls(env: Env, source: ServerSource) -> dict[str, str]:
    """The TLS files of both conninfos checked (PG_SSL* already in them when rendered), and
    what a refusal about this server's TLS names."""
    if source.barman_options is None:
        names = tls_names(env, source.name)
    else:
        refuse_tls_variables(env, source.name)
        names = mounted_tls_names(source.name)
    for conninfo in (source.conninfo, source.streaming_conninfo):
        params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items()}
        check_tls_files(params, names)
    return names


def _passwords(env: Env, source: ServerSource) -> tuple[Secret | None, Secret | None]:
    """PG_PASSWORD and PG_STREAMING_PASSWORD (which defaults to the first); a password in a
    mounted conninfo serves when the environment gives none."""
    from_file, streaming_from_file = source.file_passwords
    password = env.secret("PG_PASSWORD", source.name) or from_file
    streaming = env.secret("PG_STREAMING_PASSWORD", source.name) or streaming_from_file or password
    if source.barman_options is None and password is None:
        var = env.name_of("PG_PASSWORD", source.name)
        raise ConfigError(
            f"{var}: no password for the Barman PostgreSQL user; set {var} or {var}_FILE"
        )
    return password, streaming


def _check_slot_name(env: Env, source: ServerSource) -> None:
    if not _SLOT_NAME.match(source.slot_name):
        var = env.name_of("BARMAN_SLOT_NAME", source.name)
        raise ConfigError(
            f"{var}: slot name {source.slot_name!r} is invalid; use lower-case letters, digits "
            "and '_'"
        )


def _schedules(env: Env, name: str, timezone: ZoneInfo) -> tuple[str, str]:
    """BACKUP_SCHEDULE and DRILL_SCHEDULE (empty: no drill), each checked to fire some day."""
    schedule = env.text("BACKUP_SCHEDULE", name)
    check_schedule(
        env.name_of("BACKUP_SCHEDULE", name),
        schedule,
        timezone,
        "use 5 crontab fields, e.g. '0 3 * * 0' (Sundays at 03:00)",
    )
    drill_schedule = env.text("DRILL_SCHEDULE", name)
    if drill_schedule:
        check_schedule(
            env.name_of("DRILL_SCHEDULE", name),
            drill_schedule,
            timezone,
            "use 5 crontab fields, e.g. '0 5 * * 6' (Saturdays at 05:00), or leave it empty for "
            "no drill",
        )
    return schedule, drill_schedule


def _retention(env: Env, source: ServerSource) -> str:
    """A mounted file's retention_policy as Barman reads it, else RETENTION_POLICY checked."""
    var = env.name_of("RETENTION_POLICY", source.name)
    if source.retention_policy is not None:
        return source.retention_policy.upper()
    retention = env.text("RETENTION_POLICY", source.name)
    if not RETENTION.match(retention):
        raise ConfigError(
            f"{var}: {retention!r} is not a Barman retention policy; use e.g. "
            "'RECOVERY WINDOW OF 7 DAYS' or 'REDUNDANCY 3'"
        )
    return retention.upper()


def _backup_policy(env: Env, name: str, timezone: ZoneInfo, *, mounted: bool) -> BackupPolicy:
    """BACKUP_INCREMENTAL_SCHEDULE, BACKUP_CHAIN_MAX and the compressions for one server.

    Refuses what cannot work whatever the server: compression variables for a Barman file the
    daemon does not write, a location without a compression, and anything an off-site copy
    cannot carry (barman-cloud-backup uploads one backup's ``data`` directory: an incremental's
    holds only changed blocks, a compressed one holds tar files).
    """
    incremental = env.text("BACKUP_INCREMENTAL_SCHEDULE", name)
    if incremental:
        check_schedule(
            env.name_of("BACKUP_INCREMENTAL_SCHEDULE", name),
            incremental,
            timezone,
            "use 5 crontab fields, e.g. '0 3 * * 1-6' (Monday to Saturday at 03:00), or leave it "
            "empty for full backups only",
        )
    policy = BackupPolicy(
        incremental_schedule=incremental,
        chain_max=env.integer("BACKUP_CHAIN_MAX", name),
        compression=_none_as_empty(env.choice("BACKUP_COMPRESSION", name)),
        wal_compression=_none_as_empty(env.choice("WAL_COMPRESSION", name)),
        compression_location=env.choice("BACKUP_COMPRESSION_LOCATION", name),
    )
    location_var, location = env.raw("BACKUP_COMPRESSION_LOCATION", name)
    if location and location.strip() and not policy.compression:
        raise ConfigError(
            f"{location_var}: set without a compression; set BACKUP_COMPRESSION (gzip, lz4 or "
            f"zstd) or unset {location_var}"
        )
    _refuse_policy_combinations(env, name, policy, mounted=mounted)
    return policy


def _none_as_empty(compression: str) -> str:
    """Barman takes no compression as an unset option, written here as the empty string."""
    return "" if compression == "none" else compression


def _refuse_policy_combinations(
    env: Env, name: str, policy: BackupPolicy, *, mounted: bool
) -> None:
    compressions = {
        "BACKUP_COMPRESSION": policy.compression,
        "WAL_COMPRESSION": policy.wal_compression,
    }
    offsite_var, offsite_url = env.raw("OFFSITE_URL", name)
    offsite = bool(offsite_url and offsite_url.strip())
    for variable, value in compressions.items():
        var = env.name_of(variable, name)
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
        var = env.name_of("BACKUP_INCREMENTAL_SCHEDULE", name)
        raise ConfigError(
            f"{var}: {offsite_var} copies each backup's data directory alone, and an incremental "
            f"one holds only the changed blocks; unset {var} or {offsite_var}"
        )


def _drill_source(env: Env, server: str, offsite: Offsite | None) -> str:
    """DRILL_SOURCE: ``offsite`` drills from the store, so it needs one."""
    source = env.choice("DRILL_SOURCE", server)
    if source == DRILL_OFFSITE and offsite is None:
        var = env.name_of("DRILL_SOURCE", server)
        url_var = env.name_of("OFFSITE_URL", server)
        raise ConfigError(
            f"{var}: offsite drills restore from the off-site store, and {url_var} is not set; "
            f"set {url_var} or DRILL_SOURCE=local"
        )
    return source


def _bandwidth_limit(env: Env, server: str) -> int:
    """kB/s for pg_basebackup --max-rate, which has a minimum; 0 means unlimited."""
    limit = env.integer("BACKUP_BANDWIDTH_LIMIT", server)
    if 0 < limit < BANDWIDTH_MIN:
        raise ConfigError(
            f"{env.name_of('BACKUP_BANDWIDTH_LIMIT', server)}: {limit} kB/s is below "
            f"pg_basebackup's minimum; use 0 or {BANDWIDTH_MIN}-{BANDWIDTH_MAX}"
        )
    return limit
