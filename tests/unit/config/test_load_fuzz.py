"""Validation is total: any text or bytes in any variable or file ends as a Settings object or
a one-line ConfigError, never another exception (which would print a traceback), and the start's
write checks then answer without raising either."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from barman_supervisor.barman import config_files as barman_config
from barman_supervisor.config import VARIABLES as TABLE
from barman_supervisor.config import Settings, load_settings
from barman_supervisor.errors import ConfigError

# The table of variables is the list fuzzed: a variable added there is fuzzed at once (and the
# reader refuses to read one that is not there: tests/unit/config/test_env.py).
VARIABLES = tuple(TABLE)
SECRET_VARIABLES = tuple(name for name, variable in TABLE.items() if variable.secret)
ALL_NAMES = (
    *VARIABLES,
    *(f"{name}_FILE" for name in SECRET_VARIABLES),
    *(f"{name}__PG" for name in VARIABLES),
    "PG_HOST__OTHER",
)
# Values that once escaped validation, and their neighbours.
TRICKY = (
    "America", ":America", "Europe/", "../etc", "٣٢", "5432²", "9" * 400, "1e999", "nan", "inf",
    "http://h:abc/x", "http://[::1", "https://u:p@h:99999/x", "http://", "0 3 31 2 *",
    "0 3 30 2 *", "@yearly", "relative/path", "/", "", " ", "\t", "-1", "0", "9" * 30,
    "127.0.0.1", "::", "999.1.1.1", "host name", "/nonexistent/barman", "x" * 300, "/" + "y" * 300,
    "\udcff\udcfe", "pg,pg", "all", "PG", "render", "mounted", "true", "REDUNDANCY 0",
)  # fmt: skip
NUMBERED_FILES = ("password", "barman.conf", "barman.d/pg.conf")

values = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(blacklist_characters="\x00"), max_size=40),
    st.binary(max_size=40).map(
        lambda raw: raw.replace(b"\x00", b"").decode("utf-8", "surrogateescape")
    ),
)
file_bytes = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"\xff\xfe\x00p",
            b"s3cret\n",
            b"a\nb\n",
            b"[barman]\nbarman_home = /tmp/x\n[pg]\nconninfo = host=h password=\xe9\n",
            b"[barman]\nbarman_home = relative\n[pg]\nconninfo = host=h\n",
            b"[barman]\n[pg]\nconninfo = 'unterminated\n",
            b"[barman]\nbarman_home = /tmp/x\n[pg]\nconninfo = host=h\nslot_name = Bad Slot\n",
        ]
    ),
    st.text(max_size=200).map(str.encode),
)
TRIED: list[int] = []


def base_environment(root: Path) -> dict[str, str]:
    return {
        "BARMAN_CONFIG_FILE": str(root / "barman.conf"),
        "BARMAN_CONFIG_DIR": str(root / "barman.d"),
        "BARMAN_HOME": str(root / "home"),
        "BARMAN_USER": "barman",
        "PG_PASSWORD": "s3cret-Pw!",
        "PATH": "/usr/bin:/bin",
    }


def outcome(environ: Mapping[str, str]) -> Settings | ConfigError:
    try:
        result: Settings | ConfigError = load_settings(environ)
    except ConfigError as exc:
        result = exc
    TRIED.append(1)
    return result


def check(result: Settings | ConfigError) -> None:
    if isinstance(result, ConfigError):
        message = str(result)
        assert message and "\n" not in message and "\r" not in message
        assert "Traceback" not in message
    else:
        problem = barman_config.write_problem(result)
        assert problem is None or "\n" not in problem


def test_every_variable_of_the_table_is_fuzzed() -> None:
    assert set(ALL_NAMES) >= set(TABLE)
    assert {f"{name}_FILE" for name in SECRET_VARIABLES} <= set(ALL_NAMES)


@settings(
    max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from(ALL_NAMES), values, max_size=6))
@example(changes={"TZ": "America"})
@example(changes={"PG_PORT": "٣٢"})
@example(changes={"WAL_MAX_LAG": "9" * 400})
@example(changes={"ALERT_WEBHOOK_URL": "http://h:abc/x"})
@example(changes={"ALERT_WEBHOOK_URL": "http://[::1"})
@example(changes={"BARMAN_BIN": "/nonexistent/barman"})
@example(changes={"BACKUP_SCHEDULE": "0 3 31 2 *"})
@example(changes={"BARMAN_PGPASS_FILE": "relative/.pgpass"})
@example(changes={"PG_HOST__OTHER": "db2"})
@example(changes={"HTTP_BIND": "host name"})
def test_any_environment_gives_settings_or_one_line(changes: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        environ = {**base_environment(Path(directory)), **changes}
        check(outcome(environ))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    contents=st.fixed_dictionaries({name: file_bytes for name in NUMBERED_FILES}),
    secret_var=st.sampled_from([f"{name}_FILE" for name in SECRET_VARIABLES]),
)
@example(
    contents={"password": b"\xff\xfe", "barman.conf": b"", "barman.d/pg.conf": b""},
    secret_var="PG_PASSWORD_FILE",
)
@example(
    contents={"password": b"x", "barman.conf": b"[barman]\n\xff", "barman.d/pg.conf": b""},
    secret_var="PG_PASSWORD_FILE",
)
def test_any_file_content_gives_settings_or_one_line(
    contents: dict[str, bytes], secret_var: str
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        for name, data in contents.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        environ = base_environment(root)
        environ.pop("PG_PASSWORD")
        environ[secret_var] = str(root / "password")
        check(outcome(environ))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"TZ": "America"}, "TZ:"),
        ({"PG_PORT": "٣٢"}, "PG_PORT:"),
        ({"WAL_MAX_LAG": "9" * 400}, "WAL_MAX_LAG:"),
        ({"ALERT_WEBHOOK_URL": "http://h:abc/x"}, "ALERT_WEBHOOK_URL:"),
        ({"ALERT_WEBHOOK_URL": "http://[::1"}, "ALERT_WEBHOOK_URL:"),
        ({"BARMAN_BIN": "/nonexistent/barman"}, "BARMAN_BIN:"),
        ({"BACKUP_SCHEDULE": "0 3 31 2 *"}, "BACKUP_SCHEDULE:"),
        ({"BARMAN_PGPASS_FILE": "relative/.pgpass"}, "BARMAN_PGPASS_FILE:"),
        ({"PG_HOST__OTHER": "db2"}, "PG_HOST__OTHER:"),
        ({"HTTP_BIND": "host name"}, "HTTP_BIND:"),
        ({"PG_PASSWORD": "\udcff"}, "PG_PASSWORD:"),
    ],
)
def test_each_reported_escape_is_named(changes: dict[str, str], named: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        result = outcome({**base_environment(Path(directory)), **changes})
    assert isinstance(result, ConfigError) and str(result).startswith(named), result


def test_undecodable_password_and_config_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "password").write_bytes(b"\xff\xfe")
    environ = {**base_environment(tmp_path), "PG_PASSWORD": "", "PG_PASSWORD_FILE": ""}
    environ["PG_PASSWORD_FILE"] = str(tmp_path / "password")
    result = outcome(environ)
    assert isinstance(result, ConfigError) and "PG_PASSWORD_FILE" in str(result)

    (tmp_path / "barman.conf").write_bytes(b"[barman]\nbarman_home = /tmp/\xe9\n")
    result = outcome(base_environment(tmp_path))
    assert isinstance(result, ConfigError) and "barman.conf: not UTF-8" in str(result)


def test_every_tricky_value_in_every_variable() -> None:
    """The grid Hypothesis may not reach: each known-tricky value in each variable."""
    with tempfile.TemporaryDirectory() as directory:
        base = base_environment(Path(directory))
        for name in (*VARIABLES, "PG_PASSWORD_FILE", "BACKUP_SCHEDULE__PG", "PG_HOST__OTHER"):
            for value in TRICKY:
                check(outcome({**base, name: value}))
