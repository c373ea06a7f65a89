"""A TLS failure told apart from a server that is not there, in libpq's words, as one line
naming the setting; the messages are libpq's (17-18, through psycopg and pg_receivewal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from barman_supervisor.config import ServerSettings, load_settings
from barman_supervisor.postgres.tls import tls_failure, tls_refusal, uses_tls_settings

PREFIX = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
NOT_THERE = [
    PREFIX + "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
    "connections?",
    PREFIX + "FATAL:  the database system is starting up",
    PREFIX + 'FATAL:  password authentication failed for user "barman"',
    PREFIX + "fe_sendauth: no password supplied",
    PREFIX + "timeout expired",
]


@pytest.fixture
def server(tmp_path: Path) -> ServerSettings:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    environ = {
        "BARMAN_CONFIG_FILE": str(tmp_path / "barman.conf"),
        "BARMAN_CONFIG_DIR": str(tmp_path / "barman.d"),
        "BARMAN_HOME": str(tmp_path / "home"),
        "BARMAN_SERVERS": "pg,reports",
        "PG_PASSWORD": "pw",
        "PG_SSLMODE": "verify-full",
        "PG_SSLROOTCERT__REPORTS": str(ca),
        "PG_HOST__REPORTS": "localhost",
    }
    return load_settings(environ).server("reports")


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (
            PREFIX + "SSL error: certificate verify failed",
            "PG_SSLROOTCERT__REPORTS: SSL error: certificate verify failed (reports); set it to "
            "the CA certificate that signed the server's certificate",
        ),
        (
            'connection failed: connection to server at "localhost" (127.0.0.1), port 5432 '
            'failed: server certificate for "127.0.0.1" does not match host name "localhost"',
            'PG_HOST__REPORTS: server certificate for "127.0.0.1" does not match host name '
            '"localhost" (reports); connect to a name the server\'s certificate holds (its '
            "subject alternative names), or issue a certificate for this name",
        ),
        (
            PREFIX + 'root certificate file "/root/.postgresql/root.crt" does not exist\n'
            "Either provide the file, use the system's trusted roots with sslrootcert=system, or "
            "change sslmode to disable server certificate verification.",
            'PG_SSLROOTCERT__REPORTS: root certificate file "/root/.postgresql/root.crt" does not '
            "exist (reports); set it to the CA certificate that signed the server's certificate",
        ),
        (
            PREFIX + 'certificate present, but not private key file "/run/secrets/pg.key"',
            'PG_SSLKEY: certificate present, but not private key file "/run/secrets/pg.key" '
            "(reports); point it at the key of the client certificate (mode 0600, or 0640 owned "
            "by root)",
        ),
        (
            PREFIX + "server does not support SSL, but SSL was required",
            "PG_SSLMODE: server does not support SSL, but SSL was required (reports); turn ssl = "
            "on in the server's postgresql.conf, or lower the mode",
        ),
        (
            PREFIX + 'FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "barman", database '
            '"postgres", no encryption',
            'PG_SSLMODE: no pg_hba.conf entry for host "127.0.0.1", user "barman", database '
            '"postgres", no encryption (reports); pg_hba.conf admits this login over TLS only '
            "(hostssl), or not at all: set it to verify-full (or require), or add a pg_hba.conf "
            "line",
        ),
    ],
    ids=["wrong-ca", "wrong-host", "no-ca-file", "no-key", "no-tls-on-server", "hostssl-only"],
)
def test_a_tls_failure_names_the_setting_and_the_fix(
    server: ServerSettings, message: str, line: str
) -> None:
    assert tls_refusal(server, message) == line


@pytest.mark.parametrize("message", NOT_THERE)
def test_a_server_that_is_not_there_or_refuses_the_login_is_not_a_tls_failure(
    message: str,
) -> None:
    assert tls_failure(message) is None


@pytest.mark.parametrize(
    ("phrase", "keyword"),
    [
        ("SSL error: tlsv1 alert unknown ca", "sslcert"),
        ('could not open certificate file "/x/c.crt": No such file or directory', "sslcert"),
        ('private key file "/x/k" has group or world access; file must have …', "sslkey"),
        ("could not get server's host name from server certificate", "host"),
    ],
)
def test_client_files_are_named_by_their_setting(phrase: str, keyword: str) -> None:
    failure = tls_failure(PREFIX + phrase)
    assert failure is not None and failure.keyword == keyword


def test_only_a_server_with_tls_settings_is_probed(server: ServerSettings, tmp_path: Path) -> None:
    plain = load_settings(
        {
            "BARMAN_CONFIG_FILE": str(tmp_path / "barman.conf"),
            "BARMAN_CONFIG_DIR": str(tmp_path / "barman.d"),
            "BARMAN_HOME": str(tmp_path / "home"),
            "PG_PASSWORD": "pw",
        }
    ).servers[0]

    assert uses_tls_settings(server) and not uses_tls_settings(plain)
