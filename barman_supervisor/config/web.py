"""Who may reach the HTTP port: the web configuration file and the Host allow-list.

The file (``HTTP_WEB_CONFIG_FILE``) follows the Prometheus exporter-toolkit convention
(``--web.config.file``), so one file and one set of tools (``htpasswd -nBC 10 "" | tr -d ':\\n'``)
serve the exporters and this daemon alike: ``tls_server_config`` and ``basic_auth_users``. Keys
of that format this daemon does not implement are refused by name rather than ignored, so a
setting someone relies on (a cipher list, a rate limit) never silently does nothing.

Everything is checked at start (files readable, the key matching the certificate, every hash a
bcrypt hash): a mistake is one line naming the file and the fix, before anything is written.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from barman_supervisor.config.checks import absolute_path
from barman_supervisor.config.env import Env
from barman_supervisor.config.model import TlsServer, WebAccess
from barman_supervisor.errors import ConfigError

FILE_VAR = "HTTP_WEB_CONFIG_FILE"
HOSTS_VAR = "HTTP_ALLOWED_HOSTS"
_TOP_KEYS = ("tls_server_config", "basic_auth_users")
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version")
# The exporter-toolkit's client_auth_type values this daemon implements: none, or a client
# certificate verified against client_ca_file (the toolkit calls the others insecure).
_NO_CLIENT_CERT, _VERIFY_CLIENT_CERT = "NoClientCert", "RequireAndVerifyClientCert"
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# $2a$, $2b$ or $2y$ (htpasswd writes 2y), a two-digit cost, 22 characters of salt, 31 of hash.
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$")
_HOST_NAME = re.compile(r"^\.?[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*$", re.ASCII)
_LOOPBACK_NAMES = ("localhost",)


def web_access(env: Env) -> WebAccess:
    """The HTTP port's access settings from ``HTTP_WEB_CONFIG_FILE`` and ``HTTP_ALLOWED_HOSTS``."""
    hosts = allowed_hosts(env.text(HOSTS_VAR))
    text = env.text(FILE_VAR)
    if not text:
        return WebAccess(allowed_hosts=hosts)
    path = absolute_path(FILE_VAR, text)
    tls, users = read_web_config(path)
    return WebAccess(tls=tls, users=users, allowed_hosts=hosts, source=path)


def allowed_hosts(text: str) -> tuple[str, ...]:
    """The Host allow-list: lower-case names, ``.example.com`` for a domain and its subdomains."""
    names = tuple(name.strip().lower().rstrip(".") for name in text.split(",") if name.strip())
    for name in names:
        if not _HOST_NAME.match(name):
            raise ConfigError(
                f"{HOSTS_VAR}: {name!r} is not a host name; list names separated by commas, "
                "e.g. barman.example.com,.internal.example (IP addresses are always accepted)"
            )
    return names


def host_allowed(host_header: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a request's ``Host`` passes the allow-list.

    DNS rebinding puts an attacker's *name* in front of this address, so names are what the list
    checks; an IP address (how kubelet and Docker probe) and ``localhost`` cannot be rebound and
    always pass. No list: every Host passes, as before the list existed.
    """
    if not allowed:
        return True
    if not host_header:
        return False
    host = _host_part(host_header.strip().lower()).rstrip(".")
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if host in _LOOPBACK_NAMES:
        return True
    return any(
        host == name or (name.startswith(".") and (host.endswith(name) or host == name[1:]))
        for name in allowed
    )


def _host_part(host: str) -> str:
    """``name``, ``name:port``, ``[v6]:port``, ``v6``: the host without its port."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def read_web_config(path: Path) -> tuple[TlsServer | None, MappingProxyType[str, bytes]]:
    """The file's TLS settings and users, checked; ConfigError names the file and the fix."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise _problem(path, f"cannot read it ({exc.strerror})", "make it readable") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise _problem(path, f"not valid YAML{line}", "fix its syntax") from None
    mapping = _mapping(path, document, "the file")
    _known_keys(path, mapping, _TOP_KEYS, "")
    tls = _tls(path, mapping["tls_server_config"]) if "tls_server_config" in mapping else None
    users = _users(path, mapping.get("basic_auth_users") or {})
    return tls, users


def _tls(path: Path, section: Any) -> TlsServer:
    values = _mapping(path, section, "tls_server_config")
    _known_keys(path, values, _TLS_KEYS, "tls_server_config.")
    for key in ("cert_file", "key_file"):
        if not values.get(key):
            raise _problem(path, f"tls_server_config.{key} is missing", "name a PEM file")
    auth_type = values.get("client_auth_type") or _NO_CLIENT_CERT
    if auth_type not in (_NO_CLIENT_CERT, _VERIFY_CLIENT_CERT):
        raise _problem(
            path,
            f"tls_server_config.client_auth_type {auth_type!r} is not supported",
            f"use {_NO_CLIENT_CERT} or {_VERIFY_CLIENT_CERT}",
        )
    client_ca = values.get("client_ca_file")
    if (auth_type == _VERIFY_CLIENT_CERT) != bool(client_ca):
        raise _problem(
            path,
            "client_auth_type RequireAndVerifyClientCert and client_ca_file go together",
            "set both, or neither",
        )
    min_version = values.get("min_version") or "TLS12"
    if min_version not in _TLS_VERSIONS:
        raise _problem(path, f"tls_server_config.min_version {min_version!r}", "use TLS12 or TLS13")
    tls = TlsServer(
        cert_file=_relative_to(path, values["cert_file"]),
        key_file=_relative_to(path, values["key_file"]),
        client_ca_file=_relative_to(path, client_ca) if client_ca else None,
        min_version="TLS13" if min_version == "TLS13" else "TLS12",
    )
    try:
        server_context(tls)
    except (OSError, ssl.SSLError) as exc:
        raise _problem(
            path,
            f"cannot load the certificate, key or client CA ({_reason(exc)})",
            "point cert_file and key_file at a matching PEM certificate and unencrypted key "
            "readable by the daemon",
        ) from None
    return tls


def server_context(tls: TlsServer) -> ssl.SSLContext:
    """The TLS context of the HTTP port (also how ``read_web_config`` proves the files load)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.load_cert_chain(tls.cert_file, tls.key_file)
    # No TLS 1.3 session tickets: sent after the handshake, they cost each probe a delayed ACK
    # (44 ms instead of 3 ms measured on the loopback), and probes never resume a session.
    context.num_tickets = 0
    if tls.client_ca_file is not None:
        context.load_verify_locations(cafile=tls.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _users(path: Path, section: Any) -> MappingProxyType[str, bytes]:
    users = _mapping(path, section, "basic_auth_users")
    for user, hashed in users.items():
        if not isinstance(user, str) or ":" in user or not user:
            raise _problem(path, f"user {user!r}", "use a name without ':'")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            raise _problem(
                path,
                f"basic_auth_users.{user} is not a bcrypt hash",
                """write one with: htpasswd -nBC 10 "" | tr -d ':\\n'""",
            )
    return MappingProxyType({str(user): str(h).encode() for user, h in users.items()})


def _mapping(path: Path, value: Any, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _problem(path, f"{what} is not a mapping", "see the exporter-toolkit format")
    return value


def _known_keys(path: Path, mapping: dict[Any, Any], known: tuple[str, ...], prefix: str) -> None:
    for key in mapping:
        if key not in known:
            raise _problem(
                path,
                f"{prefix}{key} is not supported",
                f"remove it (supported: {', '.join(prefix + k for k in known)})",
            )


def _relative_to(config: Path, name: Any) -> Path:
    """A file named in the web configuration; relative names are relative to the file."""
    return config.parent / str(name)


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc)


def _problem(path: Path, what: str, fix: str) -> ConfigError:
    return ConfigError(f"{FILE_VAR}: {path}: {what}; {fix}")


def probe_uses_tls(env: Env) -> bool:
    """Whether ``barman-supervisor healthcheck`` must speak HTTPS to the daemon."""
    text = env.text(FILE_VAR)
    return bool(text) and read_web_config(absolute_path(FILE_VAR, text))[0] is not None
