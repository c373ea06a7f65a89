"""TLS to PostgreSQL: PG_SSL* rendered into both conninfos, and their files refused in one line
before anything is written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from barman_supervisor.barman.config_files import pgpass_lines, render_server
from barman_supervisor.config import load_settings
from barman_supervisor.config.tls import key_access_refused, tls_file_problem
from barman_supervisor.errors import ConfigError

NAMES = {"sslrootcert": "PG_SSLROOTCERT", "sslcert": "PG_SSLCERT", "sslkey": "PG_SSLKEY"}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """A CA, a client certificate and its key (mode 0600), as a person mounts them."""
    paths = {}
    for keyword, name in (("sslrootcert", "ca.crt"), ("sslcert", "client.crt"), ("sslkey", "k")):
        path = tmp_path / name
        path.write_text("-----BEGIN-----\n")
        path.chmod(0o600)
        paths[keyword] = str(path)
    return paths


def tls_env(environ: dict[str, str], files: dict[str, str]) -> dict[str, str]:
    return {
        **environ,
        "PG_SSLMODE": "verify-full",
        "PG_SSLROOTCERT": files["sslrootcert"],
        "PG_SSLCERT": files["sslcert"],
        "PG_SSLKEY": files["sslkey"],
    }


def test_unset_leaves_the_conninfo_as_before(environ: dict[str, str]) -> None:
    server = load_settings(environ).servers[0]

    assert not any(key.startswith("ssl") for key in conninfo_to_dict(server.conninfo))
    assert not any(key.startswith("ssl") for key in conninfo_to_dict(server.streaming_conninfo))


def test_every_setting_reaches_both_conninfos_and_barmans_file(
    environ: dict[str, str], files: dict[str, str]
) -> None:
    server = load_settings(tls_env(environ, files)).servers[0]
    wanted = {"sslmode": "verify-full", **files}

    for conninfo in (server.conninfo, server.streaming_conninfo):
        assert wanted.items() <= conninfo_to_dict(conninfo).items()
    rendered = render_server(server)
    assert f"sslrootcert={files['sslrootcert']}" in rendered
    assert rendered.count("sslmode=verify-full") == 2


def test_a_per_server_override_applies_to_that_server_only(
    environ: dict[str, str], files: dict[str, str]
) -> None:
    settings = load_settings(
        {**environ, "BARMAN_SERVERS": "pg,reports", "PG_SSLMODE__REPORTS": "VERIFY-CA"}
    )

    assert "sslmode" not in conninfo_to_dict(settings.server("pg").conninfo)
    assert conninfo_to_dict(settings.server("reports").conninfo)["sslmode"] == "verify-ca"
    assert settings.server("reports").tls_name("sslmode") == "PG_SSLMODE__REPORTS"


def test_the_password_file_is_unchanged_by_tls(
    environ: dict[str, str], files: dict[str, str]
) -> None:
    assert pgpass_lines(load_settings(tls_env(environ, files))) == pgpass_lines(
        load_settings(environ)
    )


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"PG_SSLMODE": "verify"}, "PG_SSLMODE: 'verify' is not one of disable, allow, prefer,"),
        ({"PG_SSLROOTCERT": "ca.crt"}, "PG_SSLROOTCERT: 'ca.crt' must be an absolute path"),
        ({"PG_SSLROOTCERT": "/nonexistent/ca.crt"}, "PG_SSLROOTCERT: '/nonexistent/ca.crt' does "
         "not exist; mount the CA certificate there or fix the path"),
        ({"PG_SSLKEY": "/nonexistent/k"}, "PG_SSLKEY: '/nonexistent/k' does not exist; mount "
         "the client certificate's key there or fix the path"),
        ({"PG_SSLCERT": None}, "PG_SSLKEY: set without PG_SSLCERT; a client certificate needs "
         "its key: set both or neither"),
        ({"PG_SSLROOTCERT__PG": "/nonexistent/x"}, "PG_SSLROOTCERT__PG: '/nonexistent/x' does "
         "not exist"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_line_naming_it(
    environ: dict[str, str], files: dict[str, str], change: dict[str, str | None], line: str
) -> None:
    env = tls_env(environ, files)
    for name, value in change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value

    with pytest.raises(ConfigError) as refused:
        load_settings(env)

    assert str(refused.value).startswith(line)
    assert "\n" not in str(refused.value)


def test_a_key_others_may_read_is_refused_at_start(
    environ: dict[str, str], files: dict[str, str]
) -> None:
    Path(files["sslkey"]).chmod(0o644)

    with pytest.raises(ConfigError, match=r"^PG_SSLKEY: '.*' has mode 0644 \(owner uid \d+\), "):
        load_settings(tls_env(environ, files))


def test_system_roots_need_no_file(environ: dict[str, str]) -> None:
    server = load_settings({**environ, "PG_SSLROOTCERT": "system"}).servers[0]

    assert conninfo_to_dict(server.conninfo)["sslrootcert"] == "system"


@pytest.mark.parametrize(
    ("uid", "mode", "refused"),
    [
        (1000, 0o600, False),
        (1000, 0o400, False),
        (1000, 0o640, True),
        (1000, 0o604, True),
        (0, 0o640, False),
        (0, 0o600, False),
        (0, 0o660, True),
        (0, 0o644, True),
        (0, 0o444, True),  # what a Docker secret is mounted as by default
    ],
)
def test_the_key_rule_is_libpqs(uid: int, mode: int, refused: bool) -> None:
    assert key_access_refused(uid, stat.S_IFREG | mode) is refused


def test_a_directory_or_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    assert (tls_file_problem({"sslrootcert": str(tmp_path)}, NAMES) or "").startswith(
        f"PG_SSLROOTCERT: {str(tmp_path)!r} is not a file"
    )
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    problem = tls_file_problem({"sslrootcert": str(ca)}, NAMES, readable=lambda _path: False)
    assert problem == (
        f"PG_SSLROOTCERT: {str(ca)!r} is not readable by the daemon's user (uid {os.geteuid()}); "
        "make it readable by that user"
    )


def test_a_mounted_configuration_takes_tls_in_its_conninfo(
    environ: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "barman.d").mkdir()
    (tmp_path / "barman.conf").write_text("[barman]\nbarman_home = /srv/barman\n")
    (tmp_path / "barman.d" / "pg.conf").write_text(
        "[pg]\nconninfo = host=db user=barman dbname=postgres sslmode=verify-full "
        "sslrootcert=/nonexistent/ca.crt\n"
    )
    mounted = {**environ, "BARMAN_CONFIG_MODE": "mounted"}

    with pytest.raises(ConfigError, match=r"^PG_SSLMODE: the Barman configuration is mounted"):
        load_settings({**mounted, "PG_SSLMODE": "require"})
    with pytest.raises(ConfigError) as refused:
        load_settings(mounted)
    assert str(refused.value).startswith(
        "sslrootcert in [pg]'s conninfo: '/nonexistent/ca.crt' does not exist"
    )
