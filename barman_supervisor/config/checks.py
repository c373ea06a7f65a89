"""Checks of single values that no table entry can express: names, paths, URLs, schedules.

Pure functions of the value and the variable to name; each failure is a one-line ``ConfigError``.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from barman_supervisor.crontab import CrontabError, parse_crontab
from barman_supervisor.errors import ConfigError

SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Barman refuses 'all'; 'barman' is its global section.
RESERVED_SERVER_NAMES = frozenset({"all", "barman"})
RETENTION = re.compile(
    r"^(REDUNDANCY\s+[1-9]\d*|RECOVERY\s+WINDOW\s+OF\s+[1-9]\d*\s+(DAYS?|WEEKS?|MONTHS?))$",
    re.IGNORECASE,
)
# Linux limits: a longer path fails every file operation with ENAMETOOLONG.
NAME_MAX, PATH_MAX = 255, 4096
# A schedule must fire within this many years (29 February fires every 4 years; 8 covers 2100).
SCHEDULE_HORIZON_YEARS = 8


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


def plaintext_host(text: str) -> str | None:
    """The host an ``http://`` URL sends to in plaintext across the network; None for https
    and for the loopback (``localhost``, 127.0.0.0/8, ::1), where nothing leaves the host."""
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme != "http" or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return host


def check_server_name(name: str, source: str) -> str:
    if not SERVER_NAME.match(name) or name.lower() in RESERVED_SERVER_NAMES:
        raise ConfigError(
            f"{source}: server name {name!r} is not usable by Barman; use letters, digits, "
            "'_', '-', '.' (max 63, not 'all' or 'barman')"
        )
    return name


def check_schedule(var: str, schedule: str, timezone: ZoneInfo, fix: str) -> None:
    """A schedule that parses but never fires (``0 3 31 2 *``) would silently take no backup."""
    try:
        trigger = parse_crontab(schedule, timezone)
    except CrontabError as exc:
        raise ConfigError(f"{var}: {exc}; {fix}") from None
    now = datetime.now(timezone)
    fire = trigger.get_next_fire_time(None, now)
    if fire is None or (fire - now).days > SCHEDULE_HORIZON_YEARS * 366:
        raise ConfigError(f"{var}: {schedule!r} never fires (no such date); {fix}")


def absolute_path(var: str, value: str) -> Path:
    path = usable_path(var, value)
    if not path.is_absolute():
        raise ConfigError(f"{var}: {value!r} must be an absolute path")
    return path


def usable_path(var: str, value: str) -> Path:
    """A path the system can open: names of at most NAME_MAX bytes, in all PATH_MAX."""
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) >= PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise ConfigError(
            f"{var}: the path is too long (at most {NAME_MAX} bytes per name, {PATH_MAX} in "
            "all); use a shorter one"
        )
    return Path(value)


PORT_RANGE = (1, 65535)


def check_hosts_and_ports(
    hosts_text: str, ports_text: str, host_var: str = "PG_HOST", port_var: str = "PG_PORT"
) -> tuple[list[str], list[str]]:
    """``PG_HOST`` and ``PG_PORT`` as libpq reads them: a host list, and one port for all or one
    per host. A multi-host list is how a cluster that fails over is named (libpq tries each and
    keeps the one that answers read-write). The variables are named as the environment set them
    (``PG_PORT__REPORTS``)."""
    hosts = [host.strip() for host in hosts_text.split(",")]
    if not all(hosts):
        raise ConfigError(
            f"{host_var}: {hosts_text!r} has an empty host; set e.g. {host_var}=db1,db2"
        )
    ports = [port.strip() for port in ports_text.split(",")]
    low, high = PORT_RANGE
    for port in ports:
        if not (port.isascii() and port.isdigit()):
            raise ConfigError(
                f"{port_var}: {port!r} is not a whole number; set e.g. {port_var}=5432"
            )
        if not low <= int(port) <= high:
            raise ConfigError(f"{port_var}: {port} is out of range; use {low}-{high}")
    if len(ports) not in (1, len(hosts)):
        raise ConfigError(
            f"{port_var}: {len(ports)} ports for {len(hosts)} hosts in {host_var}; give one "
            "port, or one per host in the same order"
        )
    return hosts, ports
