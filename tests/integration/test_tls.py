"""TLS to a real PostgreSQL 15 that admits Barman's roles over TLS only (``ssl = on``,
``hostssl`` lines), with a throwaway CA: the daemon protects it with ``verify-full``, its own
connection and ``pg_receivewal``'s are encrypted and carry the client certificate, and a wrong
CA, a wrong host name or a missing key file is one line naming the setting, exit 2, nothing
written."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.daemon import READY, Daemon, running_daemon
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster

pytestmark = pytest.mark.integration

# The server's certificate names 127.0.0.1 only (an IP address SAN), so "localhost" is wrong.
SERVER_NAME = "127.0.0.1"
# Short: pg_stat_ssl.client_dn keeps 63 bytes, and trustme's O and OU come first.
CLIENT_NAME = "bs"


@dataclass(frozen=True)
class Tls:
    """The cluster and the client's files: the CA, another CA, a client certificate and key."""

    pg: Cluster
    ca: Path
    other_ca: Path
    cert: Path
    key: Path

    def env(self, **changes: str) -> dict[str, str]:
        return {
            "PG_SSLMODE": "verify-full",
            "PG_SSLROOTCERT": str(self.ca),
            "PG_SSLCERT": str(self.cert),
            "PG_SSLKEY": str(self.key),
            **changes,
        }


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    ca, other = trustme.CA(), trustme.CA()
    client = tmp_path_factory.mktemp("client")
    ca.cert_pem.write_to_path(str(client / "ca.crt"))
    other.cert_pem.write_to_path(str(client / "other-ca.crt"))
    issued = ca.issue_cert(CLIENT_NAME, common_name=CLIENT_NAME)
    issued.cert_chain_pems[0].write_to_path(str(client / "client.crt"))
    issued.private_key_pem.write_to_path(str(client / "client.key"))
    (client / "client.key").chmod(0o600)
    with cluster(hba_type="hostssl") as pg:
        server = pg.base / "tls"
        server.mkdir()
        ca.issue_cert(SERVER_NAME).private_key_and_cert_chain_pem.write_to_path(
            str(server / "server.pem")
        )
        ca.cert_pem.write_to_path(str(server / "ca.crt"))
        (server / "server.pem").chmod(0o600)
        if os.geteuid() == 0:
            for path in (server, server / "server.pem", server / "ca.crt"):
                shutil.chown(path, "postgres", "postgres")
        pg.settings |= {
            "ssl": "on",
            "ssl_cert_file": f"'{server}/server.pem'",
            "ssl_key_file": f"'{server}/server.pem'",
            # The server asks for a client certificate (not required): pg_stat_ssl shows it.
            "ssl_ca_file": f"'{server}/ca.crt'",
        }
        pg.init()
        yield Tls(pg, client / "ca.crt", client / "other-ca.crt", client / "client.crt",
                  client / "client.key")  # fmt: skip


def _ssl_rows(pg: Cluster, view: str, application: str) -> list[str]:
    return pg.sql(
        f"SELECT s.ssl, s.client_dn FROM pg_stat_ssl s JOIN {view} v USING (pid) "
        f"WHERE v.application_name = '{application}'"
    ).splitlines()


def test_the_daemon_protects_a_hostssl_only_server_with_verify_full(
    tmp_path: Path, tls: Tls
) -> None:
    with running_daemon(tmp_path, tls.pg, until=READY, **tls.env(HEALTH_INTERVAL="1")) as daemon:
        assert [b["status"] for b in daemon.backups()] == ["DONE"]
        rendered = (tmp_path / "barman.d" / "pg.conf").read_text()
        assert rendered.count("sslmode=verify-full") == 2  # conninfo and streaming_conninfo
        own = wait_until(
            lambda: _ssl_rows(tls.pg, "pg_stat_activity", "barman_supervisor"),
            timeout=30,
            what="the daemon's kept connection in pg_stat_ssl",
        )
        receiver = _ssl_rows(tls.pg, "pg_stat_replication", "barman_receive_wal")
    for rows in (own, receiver):
        assert rows and all(
            row.startswith("t|") and row.endswith(f"/CN={CLIENT_NAME}") for row in rows
        ), rows


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"PG_SSLROOTCERT": "other_ca"},
            "PG_SSLROOTCERT: SSL error: certificate verify failed (pg); set it to the CA "
            "certificate that signed the server's certificate",
        ),
        (
            {"PG_HOST": "localhost"},
            f'PG_HOST: server certificate for "{SERVER_NAME}" does not match host name '
            '"localhost" (pg); ',
        ),
        (
            {"PG_SSLKEY": "/nonexistent/client.key"},
            "PG_SSLKEY: '/nonexistent/client.key' does not exist; mount the client "
            "certificate's key there or fix the path",
        ),
    ],
    ids=["wrong-ca", "wrong-host-name", "missing-key"],
)
def test_a_tls_setting_that_cannot_work_is_one_line_and_nothing_written(
    tmp_path: Path, tls: Tls, changes: dict[str, str], line: str
) -> None:
    env = tls.env(**{k: str(tls.other_ca) if v == "other_ca" else v for k, v in changes.items()})
    daemon = Daemon(tmp_path, tls.pg, **env)

    assert daemon.run() == 2
    errors = daemon.stderr.read_text().strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"barman-supervisor: error: {line}"), errors
    assert not daemon.home.exists() and not daemon.config_file.exists()
    assert "Traceback" not in daemon.stdout.read_text()
