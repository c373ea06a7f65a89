"""A web configuration file for the HTTP port (``HTTP_WEB_CONFIG_FILE``), with a throwaway CA
(trustme) for its certificate and bcrypt hashes of known passwords, and clients that use it."""

from __future__ import annotations

import base64
import http.client
import ssl
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import trustme
import yaml

USER, PASSWORD = "prometheus", "scrape-Pa55word"
# bcrypt's lowest cost: the tests check logins, not the cost of guessing.
TEST_COST = 4
# The names the server certificate is valid for.
CERT_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class WebConfig:
    """The file, and how a client trusts its certificate and logs in."""

    path: Path
    ca: trustme.CA | None

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        assert self.ca is not None
        self.ca.configure_trust(context)
        return context


def write_web_config(
    directory: Path, *, tls: bool = True, users: dict[str, str] | None = None
) -> WebConfig:
    """``web.yml`` in ``directory``: a certificate for ``CERT_NAMES`` (when ``tls``) and
    ``users`` (default: ``USER`` with ``PASSWORD``) as bcrypt hashes."""
    directory.mkdir(parents=True, exist_ok=True)
    document: dict[str, object] = {}
    ca = None
    if tls:
        ca = trustme.CA()
        issued = ca.issue_cert(*CERT_NAMES)
        issued.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
        issued.private_key_pem.write_to_path(str(directory / "server.key"))
        document["tls_server_config"] = {"cert_file": "server.crt", "key_file": "server.key"}
    logins = {USER: PASSWORD} if users is None else users
    if logins:
        document["basic_auth_users"] = {
            user: bcrypt.hashpw(password.encode(), bcrypt.gensalt(TEST_COST)).decode()
            for user, password in logins.items()
        }
    path = directory / "web.yml"
    path.write_text(yaml.safe_dump(document))
    return WebConfig(path, ca)


def basic(user: str = USER, password: str = PASSWORD) -> str:
    """The ``Authorization`` header for a login."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(
    port: int,
    path: str,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, dict[str, str], bytes]:
    """One GET over HTTP or (with ``context``) HTTPS: status, headers, body."""
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection("localhost", port, timeout=timeout, context=context)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()
