"""The web configuration file and the Host allow-list: what passes, and the one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from barman_supervisor.config.env import Env
from barman_supervisor.config.web import allowed_hosts, host_allowed, read_web_config, web_access
from barman_supervisor.errors import ConfigError
from tests.support.webconfig import USER, write_web_config


def test_the_exporter_toolkit_file_gives_tls_and_users(tmp_path: Path) -> None:
    web = write_web_config(tmp_path)

    tls, users = read_web_config(web.path)

    assert tls is not None and tls.cert_file == tmp_path / "server.crt"
    assert tls.min_version == "TLS12" and tls.client_ca_file is None
    assert list(users) == [USER] and users[USER].startswith(b"$2b$04$")


def test_no_file_and_no_list_is_plain_http_open_to_all() -> None:
    access = web_access(Env({}))

    assert access.tls is None and not access.login_required and access.allowed_hosts == ()


def test_htpasswd_hashes_are_accepted(tmp_path: Path) -> None:
    # htpasswd -nBC 10 "" writes $2y$ hashes (the toolkit's own example).
    hashed = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze"
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: '{hashed}'\n")

    tls, users = read_web_config(path)

    assert tls is None and users["alice"] == hashed.encode()


def _refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        read_web_config(path)
    message = str(refused.value)
    assert message.startswith(f"HTTP_WEB_CONFIG_FILE: {path}: ")
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("basic_auth_users: [", "not valid YAML (line 1)"),
        ("- a list\n", "the file is not a mapping"),
        ("rate_limit: {burst: 2}\n", "rate_limit is not supported"),
        ("basic_auth_users: {alice: secret}\n", "basic_auth_users.alice is not a bcrypt hash"),
        ("tls_server_config: {cert_file: a.crt}\n", "tls_server_config.key_file is missing"),
        (
            "tls_server_config: {cert_file: a.crt, key_file: a.key, cipher_suites: []}\n",
            "tls_server_config.cipher_suites is not supported",
        ),
        (
            "tls_server_config: {cert_file: a.crt, key_file: a.key}\n",
            "cannot load the certificate, key or client CA",
        ),
        (
            "tls_server_config: {cert_file: a.crt, key_file: a.key, min_version: TLS10}\n",
            "use TLS12 or TLS13",
        ),
        (
            "tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAnyClientCert"
            "}",
            "use NoClientCert or RequireAndVerifyClientCert",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_it_and_the_fix(
    tmp_path: Path, text: str, named: str
) -> None:
    assert named in _refusal(tmp_path, text)


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path: Path) -> None:
    web = write_web_config(tmp_path)
    trustme.CA().issue_cert("localhost").private_key_pem.write_to_path(str(tmp_path / "server.key"))

    with pytest.raises(ConfigError, match="cannot load the certificate, key or client CA"):
        read_web_config(web.path)


def test_a_missing_file_names_the_variable(tmp_path: Path) -> None:
    env = Env({"HTTP_WEB_CONFIG_FILE": str(tmp_path / "absent.yml")})

    with pytest.raises(ConfigError, match=r"^HTTP_WEB_CONFIG_FILE: .*cannot read it"):
        web_access(env)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("barman.example.com", True),
        ("BARMAN.example.com.:9798", True),
        ("db.internal.example", True),
        ("internal.example", True),
        ("evil.example", False),
        ("barman.example.com.evil.example", False),
        ("10.1.2.3:9798", True),
        ("[fd00::1]:9798", True),
        ("localhost:9798", True),
        ("", False),
        (None, False),
    ],
)
def test_the_host_allow_list_checks_names(host: str | None, allowed: bool) -> None:
    names = allowed_hosts("barman.example.com, .internal.example")

    assert host_allowed(host, names) is allowed


def test_without_a_list_every_host_passes() -> None:
    assert host_allowed("evil.example", ()) and host_allowed(None, ())


def test_a_list_entry_that_is_no_host_name_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^HTTP_ALLOWED_HOSTS: 'https://x' is not a host name"):
        allowed_hosts("barman.example.com,https://x")
