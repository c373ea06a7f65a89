"""TLS failures told apart from a server that is not there, as pure decisions over libpq's text.

A connection that fails because the server's certificate is signed by another CA, names another
host, or a client file is refused, fails the same way at every attempt: it is bad configuration
(one line naming the setting, exit 2), not "PostgreSQL unreachable, retrying". libpq says why
only in words, so the words are matched here, once, for every libpq the daemon meets (its own
through psycopg, and the one ``pg_receivewal`` and ``pg_basebackup`` use).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict

from barman_supervisor.config import ServerSettings


@dataclass(frozen=True)
class TlsFailure:
    """A phrase of libpq's and what it means: the keyword at fault and the fix."""

    phrase: str
    keyword: str
    fix: str


_CA_FIX = "set it to the CA certificate that signed the server's certificate"
_KEY_FIX = "point it at the key of the client certificate (mode 0600, or 0640 owned by root)"
_CERT_FIX = "point it at a client certificate signed by a CA the server trusts (ssl_ca_file)"
# First match wins: the more specific phrases go first.
FAILURES = (
    TlsFailure(
        "does not match host name",
        "host",
        "connect to a name the server's certificate holds (its subject alternative names), or "
        "issue a certificate for this name",
    ),
    TlsFailure(
        "could not get server's host name from server certificate",
        "host",
        "issue the server a certificate with this host name among its subject alternative names",
    ),
    TlsFailure("root certificate file", "sslrootcert", _CA_FIX),
    TlsFailure("certificate verify failed", "sslrootcert", _CA_FIX),
    TlsFailure("private key file", "sslkey", _KEY_FIX),
    TlsFailure("could not load private key", "sslkey", _KEY_FIX),
    TlsFailure("certificate does not match private key", "sslkey", _KEY_FIX),
    TlsFailure("certificate file", "sslcert", _CERT_FIX),
    TlsFailure("alert unknown ca", "sslcert", _CERT_FIX),
    TlsFailure("alert bad certificate", "sslcert", _CERT_FIX),
    TlsFailure("certificate required", "sslcert", _CERT_FIX),
    TlsFailure(
        "server does not support SSL",
        "sslmode",
        "turn ssl = on in the server's postgresql.conf, or lower the mode",
    ),
    TlsFailure(
        "no encryption",
        "sslmode",
        "pg_hba.conf admits this login over TLS only (hostssl), or not at all: set it to "
        "verify-full (or require), or add a pg_hba.conf line",
    ),
)


def tls_failure(message: str) -> TlsFailure | None:
    """What a failed connection's message says about TLS; None for anything else (the server
    is down, a password is wrong: start-up handles those as before)."""
    return next((failure for failure in FAILURES if failure.phrase in message), None)


def tls_refusal(server: ServerSettings, message: str) -> str | None:
    """A TLS failure as the one line a person reads: the setting, libpq's reason, the fix."""
    failure = tls_failure(message)
    if failure is None:
        return None
    reason = _reason(message)
    return f"{server.tls_name(failure.keyword)}: {reason} ({server.name}); {failure.fix}"


def uses_tls_settings(server: ServerSettings) -> bool:
    """Whether either conninfo sets any TLS keyword: only then is the start-up probe worth a
    connection (without, libpq's defaults behave as they always did)."""
    return any(
        key.startswith("ssl")
        for conninfo in (server.conninfo, server.streaming_conninfo)
        for key in conninfo_to_dict(conninfo)
    )


def _reason(message: str) -> str:
    """libpq's reason without its 'connection to server at ... failed:' prefix, on one line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = next((line for line in lines if any(f.phrase in line for f in FAILURES)), "")
    text = text.rpartition(" failed: ")[2] if " failed: " in text else text
    return text.removeprefix("FATAL:").strip()
