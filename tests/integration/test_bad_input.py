"""Bad input, as a user would give it: one line naming the variable or file, exit 2, nothing
written. At least 30 distinct cases, each through the real command."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.refusal import assert_refused, run_supervisor

pytestmark = pytest.mark.integration

ENV_CASES = [
    ("PG_PORT", "abc"),
    ("PG_PORT", "0"),
    ("PG_PORT", "70000"),
    ("PG_HOST", "db\nother"),
    ("TZ", "Mars/Olympus_Mons"),
    ("BACKUP_SCHEDULE", "0 3 * *"),
    ("BACKUP_SCHEDULE", "61 * * * *"),
    ("BACKUP_SCHEDULE", "* * * * 8"),
    ("BACKUP_SCHEDULE", "* * 32 * *"),
    ("BACKUP_SCHEDULE__PG", "@sometimes"),
    ("BARMAN_SERVERS", "bad name"),
    ("BARMAN_SERVERS", "all"),
    ("BARMAN_SERVERS", "a-b,a_b"),
    ("BARMAN_SLOT_NAME", "Bad-Slot"),
    ("BACKUP_ON_START", "maybe"),
    ("BACKUP_IMMEDIATE_CHECKPOINT", "2"),
    ("RETENTION_POLICY", "forever"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "xml"),
    ("BARMAN_CRON_INTERVAL", "-1"),
    ("BARMAN_CRON_INTERVAL", "5 minutes"),
    ("BARMAN_CHECK_INTERVAL", "1"),
    ("SHUTDOWN_GRACE", "forever"),
    ("PG_WAIT_TIMEOUT", "abc"),
    ("PG_CONNECT_TIMEOUT", "0"),
    ("BACKUP_WAIT_TIMEOUT", "2x"),
    ("BARMAN_HOME", "relative/path"),
    ("BARMAN_CONFIG_MODE", "other"),
    ("HTTP_PORT", "http"),
    ("HEALTH_INTERVAL", "0"),
    ("WAL_MAX_LAG", "lots"),
    ("ALERT_WEBHOOK_URL", "ftp://example.invalid/hook"),
    ("DEADMAN_URL", "not a url"),
    ("BACKUP_BANDWIDTH_LIMIT", "10"),
    ("BACKUP_MAX_AGE", "yesterday"),
    ("FAILED_BACKUPS", "shred"),
    ("ALLOW_STREAMING_RESET", "perhaps"),
    ("DISK_MIN_FREE", "-5M"),
    ("PG_PASSWORD_FILE", "/nonexistent/secret"),
    # Issue 11: each escaped validation or was accepted although it can never work.
    ("TZ", "America"),
    ("PG_PORT", "\u0663\u0662"),
    ("WAL_MAX_LAG", "9" * 400),
    ("ALERT_WEBHOOK_URL", "http://h:abc/x"),
    ("ALERT_WEBHOOK_URL", "http://[::1"),
    ("BARMAN_BIN", "/nonexistent/barman"),
    ("BACKUP_SCHEDULE", "0 3 31 2 *"),
    ("BARMAN_PGPASS_FILE", "relative/.pgpass"),
    ("PG_HOST__OTHER", "db2"),
    ("HTTP_BIND", "not an address"),
    ("HTTP_BIND", "192.0.2.1"),
    # Issue 25: TLS files refused before any connection; plaintext webhooks off the loopback.
    ("PG_SSLMODE", "verify"),
    ("PG_SSLROOTCERT", "/nonexistent/ca.crt"),
    ("PG_SSLKEY__PG", "/nonexistent/client.key"),
    ("ALERT_WEBHOOK_URL", "http://hooks.example/alert"),
    ("DEADMAN_URL", "http://hc.example/ping/abc"),
]


@pytest.mark.parametrize(("variable", "value"), ENV_CASES)
def test_bad_variable(tmp_path: Path, variable: str, value: str) -> None:
    env = {variable: value}
    if variable == "PG_PASSWORD_FILE":
        env["PG_PASSWORD"] = ""
    result = run_supervisor(tmp_path, **env)
    assert_refused(result, variable)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "bad input must write nothing"


def test_missing_password(tmp_path: Path) -> None:
    assert_refused(run_supervisor(tmp_path, PG_PASSWORD=""), "PG_PASSWORD")


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"barman.conf": "[barman\nbarman_home = /x\n"}, "barman.conf"),
        ({"barman.conf": "[other]\nx = 1\n"}, "barman.conf"),
        (
            {
                "barman.conf": "[barman]\nbarman_home = /x\n",
                "barman.d/a.conf": "[a]\nslot_name = s\n",
            },
            "a.conf",
        ),
        (
            {
                "barman.conf": "[barman]\nbarman_home = /x\n",
                "barman.d/a.conf": "[all]\nconninfo = host=x\n",
            },
            "a.conf",
        ),
        (
            {
                "barman.conf": "[barman]\nbarman_home = /x\n",
                "barman.d/a.conf": "[a]\nconninfo = host='x\n",
            },
            "a.conf",
        ),
    ],
)
def test_bad_mounted_file(tmp_path: Path, files: dict[str, str], named: str) -> None:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    before = {name: (tmp_path / name).read_text() for name in files}
    assert_refused(run_supervisor(tmp_path), named)
    assert {name: (tmp_path / name).read_text() for name in files} == before


def test_a_busy_port_is_found_before_anything_is_written(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_supervisor(
            tmp_path, HTTP_BIND="127.0.0.1", HTTP_PORT=str(busy.getsockname()[1])
        )
    assert_refused(result, "HTTP_PORT")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_unwritable_config_dir_is_found_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    result = run_supervisor(tmp_path, BARMAN_CONFIG_DIR=str(tmp_path / "not-a-dir" / "barman.d"))
    assert_refused(result, "barman.d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


@pytest.mark.parametrize(
    ("name", "content", "variable"),
    [
        ("password", b"\xff\xfepw\n", "PG_PASSWORD_FILE"),
        ("barman.conf", b"[barman]\nbarman_home = /tmp/\xe9\n[pg]\nconninfo = host=h\n", None),
    ],
)
def test_undecodable_files_are_named(
    tmp_path: Path, name: str, content: bytes, variable: str | None
) -> None:
    (tmp_path / name).write_bytes(content)
    env = {variable: str(tmp_path / name), "PG_PASSWORD": ""} if variable else {}
    assert_refused(run_supervisor(tmp_path, **env), variable or name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("command", ["restore", "restore-offsite"])
@pytest.mark.parametrize(
    ("destination", "how"), [("home/restore", "is inside"), ("home", "is"), (".", "holds")]
)
def test_a_restore_into_barman_home_is_refused_and_writes_nothing(
    tmp_path: Path, command: str, destination: str, how: str
) -> None:
    """A copy inside Barman's home can overwrite the backups and WAL it is made from."""
    home = tmp_path / "home"
    (home / "pg" / "wals").mkdir(parents=True)
    target = (tmp_path / destination).resolve()
    before = sorted(tmp_path.rglob("*"))
    result = run_supervisor(tmp_path, command, "pg", str(target), OFFSITE_URL="s3://bucket/prefix")
    assert_refused(result, f"{target} {how} BARMAN_HOME ({home})")
    assert "outside" in result.stderr
    assert sorted(tmp_path.rglob("*")) == before
