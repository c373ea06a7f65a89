"""Settings from the environment: defaults, one-line errors, secrets, several servers, mounted."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from barman_supervisor.config import (
    RENDERED_MARKER,
    Secret,
    Settings,
    load_settings,
    server_suffix,
)
from barman_supervisor.errors import ConfigError
from tests.unit.conftest import PASSWORD

MOUNTED_GLOBAL = "[barman]\nbarman_user = barman\nbarman_home = /srv/barman\nlog_level = INFO\n"
MOUNTED_SERVERS = """\
[template]
model = true
conninfo = host=template user=barman

[pg]
conninfo = host=db1 port=5433 user=barman dbname=postgres
streaming_conninfo = host=db1 port=5433 user=streaming_barman
slot_name = pg_slot
retention_policy = REDUNDANCY 2

[reports]
conninfo = host=db2 user=barman dbname=postgres
"""


def load(environ: dict[str, str], **changes: str | None) -> Settings:
    """load_settings on ``environ`` with variables changed (a None value removes one)."""
    env = dict(environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return load_settings(env)


def write_files(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# Defaults -------------------------------------------------------------------------------------


def test_defaults(environ: dict[str, str], tmp_path: Path) -> None:
    settings = load(environ)

    assert settings.config_mode == "render"
    assert [server.name for server in settings.servers] == ["pg"]
    server = settings.server("pg")
    assert (server.host, server.port) == ("localhost", 5432)
    assert server.conninfo == "host=localhost port=5432 user=barman dbname=postgres"
    assert server.streaming_conninfo == "host=localhost port=5432 user=streaming_barman"
    assert server.password == Secret(PASSWORD)
    assert server.streaming_password == Secret(PASSWORD)
    assert server.slot_name == "barman"
    assert server.backup_schedule == "0 3 * * *"
    assert server.retention_policy == "RECOVERY WINDOW OF 7 DAYS"
    assert server.backup_on_start is True
    assert server.backup_immediate_checkpoint is False
    assert settings.timezone == ZoneInfo("UTC")
    assert settings.barman_home == tmp_path / "home"
    assert settings.barman_log_file == tmp_path / "home" / "log" / "barman.log"
    assert settings.pgpass_file == tmp_path / "home" / ".pgpass"
    assert (settings.cron_interval, settings.check_interval) == (600, 300)
    assert settings.pg_wait_timeout is None
    assert (settings.log_level, settings.log_format) == ("INFO", "auto")
    assert settings.http_port == 9798


def test_unknown_server_raises_key_error(environ: dict[str, str]) -> None:
    with pytest.raises(KeyError):
        load(environ).server("nope")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"TZ": ":Europe/Berlin"}, ("timezone", ZoneInfo("Europe/Berlin"))),
        ({"PG_WAIT_TIMEOUT": "90"}, ("pg_wait_timeout", 90)),
        ({"BARMAN_CRON_INTERVAL": "1"}, ("cron_interval", 1)),
        ({}, ("startup_concurrency", 4)),
        ({}, ("wal_archive_interval", 60)),
        ({"WAL_ARCHIVE_INTERVAL": "10"}, ("wal_archive_interval", 10)),
        ({"STARTUP_CONCURRENCY": "50"}, ("startup_concurrency", 50)),
        ({"BARMAN_FORKSERVER": "false"}, ("barman_forkserver", False)),
        ({"LOG_LEVEL": "DEBUG"}, ("log_level", "DEBUG")),
        ({"HTTP_PORT": " 8080 "}, ("http_port", 8080)),
    ],
)
def test_global_values_are_read(
    environ: dict[str, str], changes: dict[str, str], expected: tuple[str, object]
) -> None:
    attribute, value = expected
    assert getattr(load(environ, **changes), attribute) == value


@pytest.mark.parametrize(
    ("changes", "attribute", "value"),
    [
        ({"BACKUP_ON_START": "no"}, "backup_on_start", False),
        ({"BACKUP_ON_START": "OFF"}, "backup_on_start", False),
        ({"BACKUP_IMMEDIATE_CHECKPOINT": "yes"}, "backup_immediate_checkpoint", True),
        ({"BACKUP_IMMEDIATE_CHECKPOINT": "1"}, "backup_immediate_checkpoint", True),
        ({"RETENTION_POLICY": "redundancy 3"}, "retention_policy", "REDUNDANCY 3"),
        ({"BACKUP_SCHEDULE": "@weekly"}, "backup_schedule", "@weekly"),
        ({"BARMAN_SLOT_NAME": "barman_2"}, "slot_name", "barman_2"),
    ],
)
def test_server_values_are_read(
    environ: dict[str, str], changes: dict[str, str], attribute: str, value: object
) -> None:
    assert getattr(load(environ, **changes).server("pg"), attribute) == value


# Errors ---------------------------------------------------------------------------------------

BROKEN_CONNINFO = f"[barman]\nbarman_home = /srv\n[pg]\nconninfo = host=db password={PASSWORD} 'x\n"

# (id, variables to change (None removes), files to create under tmp_path, text the message names)
ERROR_CASES: list[tuple[str, dict[str, str | None], dict[str, str], str]] = [
    ("port-not-number", {"PG_PORT": "abc"}, {}, "PG_PORT"),
    ("port-zero", {"PG_PORT": "0"}, {}, "PG_PORT"),
    ("port-too-high", {"PG_PORT": "70000"}, {}, "PG_PORT"),
    (
        "port-per-server",
        {"BARMAN_SERVERS": "pg,reports", "PG_PORT__REPORTS": "x"},
        {},
        "PG_PORT__REPORTS",
    ),
    ("host-two-lines", {"PG_HOST": "a\nb"}, {}, "PG_HOST"),
    ("tz-unknown", {"TZ": "Mars/Olympus"}, {}, "TZ"),
    ("schedule-minute-61", {"BACKUP_SCHEDULE": "61 * * * *"}, {}, "BACKUP_SCHEDULE"),
    ("schedule-per-server", {"BACKUP_SCHEDULE__PG": "* * * *"}, {}, "BACKUP_SCHEDULE__PG"),
    ("password-missing", {"PG_PASSWORD": None}, {}, "PG_PASSWORD"),
    (
        "password-empty-file",
        {"PG_PASSWORD": None, "PG_PASSWORD_FILE": "{tmp}/empty"},
        {"empty": "\n"},
        "PG_PASSWORD",
    ),
    ("password-two-lines", {"PG_PASSWORD": f"{PASSWORD}\n{PASSWORD}"}, {}, "PG_PASSWORD"),
    ("password-and-file", {"PG_PASSWORD_FILE": "{tmp}/pw"}, {"pw": PASSWORD}, "PG_PASSWORD_FILE"),
    (
        "password-file-missing",
        {"PG_PASSWORD": None, "PG_PASSWORD_FILE": "{tmp}/nope"},
        {},
        "PG_PASSWORD_FILE",
    ),
    ("servers-bad-name", {"BARMAN_SERVERS": "bad name"}, {}, "BARMAN_SERVERS"),
    ("servers-all", {"BARMAN_SERVERS": "all"}, {}, "BARMAN_SERVERS"),
    ("servers-barman", {"BARMAN_SERVERS": "pg,barman"}, {}, "BARMAN_SERVERS"),
    ("servers-empty", {"BARMAN_SERVERS": " , "}, {}, "BARMAN_SERVERS"),
    ("servers-same-suffix", {"BARMAN_SERVERS": "a-b,a_b"}, {}, "BARMAN_SERVERS"),
    ("backup-on-start-maybe", {"BACKUP_ON_START": "maybe"}, {}, "BACKUP_ON_START"),
    ("retention-forever", {"RETENTION_POLICY": "forever"}, {}, "RETENTION_POLICY"),
    ("retention-zero", {"RETENTION_POLICY": "REDUNDANCY 0"}, {}, "RETENTION_POLICY"),
    ("slot-name", {"BARMAN_SLOT_NAME": "Bad-Slot"}, {}, "BARMAN_SLOT_NAME"),
    ("log-level", {"LOG_LEVEL": "LOUD"}, {}, "LOG_LEVEL"),
    ("log-format", {"LOG_FORMAT": "xml"}, {}, "LOG_FORMAT"),
    ("cron-interval-negative", {"BARMAN_CRON_INTERVAL": "-1"}, {}, "BARMAN_CRON_INTERVAL"),
    ("startup-concurrency-zero", {"STARTUP_CONCURRENCY": "0"}, {}, "STARTUP_CONCURRENCY"),
    ("check-interval-too-short", {"BARMAN_CHECK_INTERVAL": "1"}, {}, "BARMAN_CHECK_INTERVAL"),
    ("home-relative", {"BARMAN_HOME": "var/lib/barman"}, {}, "BARMAN_HOME"),
    ("log-file-relative", {"BARMAN_LOG_FILE": "barman.log"}, {}, "BARMAN_LOG_FILE"),
    ("wait-timeout-text", {"PG_WAIT_TIMEOUT": "abc"}, {}, "PG_WAIT_TIMEOUT"),
    ("wait-timeout-nan", {"PG_WAIT_TIMEOUT": "nan"}, {}, "PG_WAIT_TIMEOUT"),
    ("http-port", {"HTTP_PORT": "99999"}, {}, "HTTP_PORT"),
    ("config-mode", {"BARMAN_CONFIG_MODE": "other"}, {}, "BARMAN_CONFIG_MODE"),
    (
        "render-with-foreign-file",
        {"BARMAN_CONFIG_MODE": "render"},
        {"barman.d/pg.conf": "[pg]\nconninfo = host=db\n"},
        "BARMAN_CONFIG_MODE",
    ),
    ("mounted-without-file", {"BARMAN_CONFIG_MODE": "mounted"}, {}, "BARMAN_CONFIG_FILE"),
    (
        "mounted-broken-ini",
        {},
        {"barman.conf": "no section\n", "barman.d/pg.conf": ""},
        "barman.conf",
    ),
    (
        "mounted-no-barman-section",
        {},
        {"barman.conf": "[pg]\n", "barman.d/x.conf": ""},
        "barman.conf",
    ),
    (
        "mounted-no-conninfo",
        {},
        {"barman.conf": MOUNTED_GLOBAL, "barman.d/pg.conf": "[pg]\nslot_name = x\n"},
        "pg.conf",
    ),
    (
        "mounted-no-server",
        {"BARMAN_CONFIG_MODE": "mounted"},
        {"barman.conf": MOUNTED_GLOBAL},
        "barman.conf",
    ),
    (
        "mounted-server-twice",
        {},
        {
            "barman.conf": MOUNTED_GLOBAL + "[pg]\nconninfo = host=a\n",
            "barman.d/pg.conf": "[pg]\nconninfo = host=b\n",
        },
        "pg.conf",
    ),
    (
        "mounted-bad-server-name",
        {},
        {"barman.conf": MOUNTED_GLOBAL, "barman.d/all.conf": "[all]\nconninfo = host=a\n"},
        "all.conf",
    ),
    (
        "mounted-broken-conninfo",
        {"BARMAN_CONFIG_MODE": "mounted"},
        {"barman.conf": BROKEN_CONNINFO},
        "barman.conf",
    ),
]


@pytest.mark.parametrize(
    ("changes", "files", "named"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_config_error_is_one_line_naming_the_culprit(
    environ: dict[str, str],
    tmp_path: Path,
    changes: dict[str, str | None],
    files: dict[str, str],
    named: str,
) -> None:
    write_files(tmp_path, files)
    resolved = {
        name: None if value is None else value.replace("{tmp}", str(tmp_path))
        for name, value in changes.items()
    }

    with pytest.raises(ConfigError) as caught:
        load(environ, **resolved)

    message = str(caught.value)
    assert "\n" not in message
    assert named in message
    assert PASSWORD not in message


# Secrets --------------------------------------------------------------------------------------


def test_password_files_are_read_without_trailing_newline(
    environ: dict[str, str], tmp_path: Path
) -> None:
    write_files(tmp_path, {"pw": "from-file\n", "streaming": "streaming-pw\r\n"})

    server = load(
        environ,
        PG_PASSWORD=None,
        PG_PASSWORD_FILE=str(tmp_path / "pw"),
        PG_STREAMING_PASSWORD_FILE=str(tmp_path / "streaming"),
    ).server("pg")

    assert server.password is not None and server.password.reveal() == "from-file"
    assert server.streaming_password is not None
    assert server.streaming_password.reveal() == "streaming-pw"


def test_secrets_never_print(environ: dict[str, str]) -> None:
    settings = load(environ, PG_STREAMING_PASSWORD="other-Secret")
    server = settings.server("pg")

    assert server.password is not None
    for text in (
        repr(settings),
        str(settings),
        repr(server),
        f"{server.password}",
        repr(server.password),
    ):
        assert PASSWORD not in text
        assert "other-Secret" not in text
    assert str(Secret(PASSWORD)) == "Secret('***')"
    assert {secret.reveal() for secret in settings.secrets} == {PASSWORD, "other-Secret"}


def test_secret_compares_by_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert len({Secret("a"), Secret("a")}) == 1


def test_child_env_drops_sensitive_variables_and_points_at_pgpass(
    environ: dict[str, str], tmp_path: Path
) -> None:
    write_files(tmp_path, {"pw": PASSWORD})
    settings = load(
        environ,
        PG_PASSWORD=None,
        PG_PASSWORD_FILE=str(tmp_path / "pw"),
        PG_STREAMING_PASSWORD__PG="x",
        NOTIFY_WEBHOOK="https://hooks.example/abc",
        API_TOKEN="t",
        LANG="C.UTF-8",
    )

    assert not [name for name in settings.child_env if "PASSWORD" in name]
    assert "NOTIFY_WEBHOOK" not in settings.child_env
    assert "API_TOKEN" not in settings.child_env
    assert settings.child_env["LANG"] == "C.UTF-8"
    assert settings.child_env["PGPASSFILE"] == str(tmp_path / "home" / ".pgpass")
    assert PASSWORD not in "".join(settings.child_env.values())
    with pytest.raises(TypeError):
        settings.child_env["X"] = "y"  # type: ignore[index]


# Several servers ------------------------------------------------------------------------------


def test_per_server_variables_override_the_global_ones(environ: dict[str, str]) -> None:
    settings = load(
        environ,
        BARMAN_SERVERS="pg, reports",
        PG_HOST="db1",
        PG_HOST__REPORTS="db2",
        PG_PORT__REPORTS="5433",
        BACKUP_SCHEDULE__REPORTS="0 4 * * 0",
        PG_PASSWORD__REPORTS="reports-pw",
    )

    pg, reports = settings.servers
    assert (pg.name, pg.host, pg.port, pg.backup_schedule) == ("pg", "db1", 5432, "0 3 * * *")
    assert (reports.name, reports.host, reports.port) == ("reports", "db2", 5433)
    assert reports.backup_schedule == "0 4 * * 0"
    assert pg.password == Secret(PASSWORD)
    assert reports.password == Secret("reports-pw")


def test_per_server_password_file_overrides_the_global_password(
    environ: dict[str, str], tmp_path: Path
) -> None:
    """A global PG_PASSWORD plus PG_PASSWORD_FILE__REPORTS for one server is an override, like
    PG_HOST__REPORTS, not a conflict: the global password still serves 'pg'."""
    write_files(tmp_path, {"reports-pw": "reports-pw\n"})

    settings = load(
        environ,
        BARMAN_SERVERS="pg,reports",
        PG_PASSWORD_FILE__REPORTS=str(tmp_path / "reports-pw"),
    )

    assert settings.server("pg").password == Secret(PASSWORD)
    assert settings.server("reports").password == Secret("reports-pw")


@pytest.mark.parametrize(
    ("server", "suffix"), [("reports", "REPORTS"), ("pg-main", "PG_MAIN"), ("a.b", "A_B")]
)
def test_server_suffix(server: str, suffix: str) -> None:
    assert server_suffix(server) == suffix


# Render or mounted ----------------------------------------------------------------------------


def test_rendered_files_keep_render_mode(environ: dict[str, str], tmp_path: Path) -> None:
    rendered = f"{RENDERED_MARKER} from the environment\n[old]\nconninfo = host=x\n"
    write_files(tmp_path, {"barman.conf": rendered, "barman.d/old.conf": rendered})

    assert load(environ).config_mode == "render"


def test_foreign_server_file_selects_mounted_mode(environ: dict[str, str], tmp_path: Path) -> None:
    write_files(tmp_path, {"barman.conf": MOUNTED_GLOBAL, "barman.d/servers.conf": MOUNTED_SERVERS})

    settings = load(
        environ,
        PG_PASSWORD=None,
        BACKUP_SCHEDULE="0 2 * * *",
        BACKUP_SCHEDULE__REPORTS="0 5 * * 6",
    )

    assert settings.config_mode == "mounted"
    assert [server.name for server in settings.servers] == ["pg", "reports"]
    pg, reports = settings.servers
    assert (pg.host, pg.port, pg.slot_name) == ("db1", 5433, "pg_slot")
    assert pg.streaming_conninfo == "host=db1 port=5433 user=streaming_barman"
    assert pg.retention_policy == "REDUNDANCY 2"
    assert pg.password is None
    assert pg.backup_schedule == "0 2 * * *"
    assert reports.backup_schedule == "0 5 * * 6"
    assert reports.streaming_conninfo == reports.conninfo
    assert reports.retention_policy == ""
    assert settings.barman_home == Path("/srv/barman")


def test_mounted_mode_reads_configuration_files_directory(
    environ: dict[str, str], tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    write_files(
        tmp_path,
        {
            "barman.conf": MOUNTED_GLOBAL + f"configuration_files_directory = {other}\n",
            "elsewhere/pg.conf": "[main]\nconninfo = host=db3\n",
        },
    )

    settings = load(environ, BARMAN_CONFIG_MODE="mounted")

    assert [(server.name, server.host) for server in settings.servers] == [("main", "db3")]


def test_foreign_global_file_is_never_rendered_over(
    environ: dict[str, str], tmp_path: Path
) -> None:
    """A person's /etc/barman.conf (servers inline, empty barman.d) must not yield render mode,
    which write_configuration() then refuses: either mounted mode or a ConfigError up front."""
    write_files(
        tmp_path, {"barman.conf": MOUNTED_GLOBAL + "[pg]\nconninfo = host=db1 user=barman\n"}
    )

    try:
        settings = load(environ)
    except ConfigError:
        return
    assert settings.config_mode == "mounted"


def test_a_webhook_password_is_a_secret_of_its_own(environ: dict[str, str]) -> None:
    settings = load(environ, ALERT_WEBHOOK_URL="https://ops:Hook%2Dpw9x@hooks.example/alert")

    assert Secret("Hook-pw9x") in settings.secrets


# Outbound: plaintext webhooks, credentials in the endpoint, the customer KMS key --------------


@pytest.mark.parametrize("name", ["ALERT_WEBHOOK_URL", "DEADMAN_URL"])
def test_a_plaintext_webhook_off_the_loopback_is_refused_unless_allowed(
    environ: dict[str, str], name: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(environ, **{name: "http://hooks.example/x"})
    assert str(refused.value) == (
        f"{name}: http:// would send the body and any credentials to hooks.example in "
        "plaintext; use https://, or set ALERT_WEBHOOK_ALLOW_HTTP=true"
    )

    allowed = load(environ, **{name: "http://hooks.example/x", "ALERT_WEBHOOK_ALLOW_HTTP": "true"})
    assert allowed.alert_webhook_url or allowed.servers[0].deadman_url


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example/x", "http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]/x"],
)
def test_https_and_the_loopback_need_no_allowance(environ: dict[str, str], url: str) -> None:
    assert load(environ, ALERT_WEBHOOK_URL=url).alert_webhook_url == Secret(url)


OFFSITE = {"OFFSITE_URL": "s3://bucket/prefix"}


def test_credentials_in_the_endpoint_url_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as refused:
        load(environ, **OFFSITE, OFFSITE_ENDPOINT_URL="https://minio:Mn-pw-77@minio.example:9000")

    assert str(refused.value) == (
        "OFFSITE_ENDPOINT_URL: credentials in the URL (user:password@) end up on the "
        "barman-cloud command lines (ps) and in logs; remove them and use the key files: "
        "AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE"
    )
    assert "Mn-pw-77" not in str(refused.value)


def test_a_kms_key_goes_with_aws_kms_only(environ: dict[str, str]) -> None:
    key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    offsite = (
        load(environ, **OFFSITE, OFFSITE_ENCRYPTION="aws:kms", OFFSITE_SSE_KMS_KEY_ID=key)
        .servers[0]
        .offsite
    )
    assert offsite is not None and offsite.sse_kms_key_id == key

    with pytest.raises(ConfigError) as refused:
        load(environ, **OFFSITE, OFFSITE_ENCRYPTION="AES256", OFFSITE_SSE_KMS_KEY_ID=key)
    assert str(refused.value) == (
        "OFFSITE_SSE_KMS_KEY_ID: a KMS key encrypts only with aws:kms; set "
        "OFFSITE_ENCRYPTION=aws:kms or unset OFFSITE_SSE_KMS_KEY_ID"
    )


def test_a_sharded_replica_configures_only_the_servers_it_owns(environ: dict[str, str]) -> None:
    """Every replica gets the full list; the owners split it with no overlap and no hole."""
    names = [f"pg{n}" for n in range(1, 13)]
    owned = [
        [s.name for s in load(environ, BARMAN_SERVERS=",".join(names), SHARD_COUNT="3",
                              POD_NAME=f"barman-{index}").servers]
        for index in range(3)
    ]  # fmt: skip
    assert sorted(name for shard in owned for name in shard) == sorted(names)
    settings = load(environ, BARMAN_SERVERS=",".join(names), SHARD_COUNT="3", SHARD_INDEX="1")
    assert settings.shard is not None and settings.shard.index == 1
    assert [o.server for o in settings.ownership] == names
    assert [s.name for s in settings.servers] == owned[1]


def test_unsharded_the_daemon_owns_every_server(environ: dict[str, str]) -> None:
    settings = load(environ, BARMAN_SERVERS="a,b")
    assert settings.shard is None and settings.ownership == ()
    assert [s.name for s in settings.servers] == ["a", "b"]


def test_a_restore_from_the_store_sees_every_server_on_any_replica(
    environ: dict[str, str],
) -> None:
    names = [f"pg{n}" for n in range(1, 13)]
    settings = load(environ, BARMAN_SERVERS=",".join(names), SHARD_COUNT="3", SHARD_INDEX="0")
    everything = load_settings(
        {**environ, "BARMAN_SERVERS": ",".join(names), "SHARD_COUNT": "3", "SHARD_INDEX": "0"},
        sharded=False,
    )
    assert len(settings.servers) < len(names)
    assert [s.name for s in everything.servers] == names and everything.shard is None
    with pytest.raises(ConfigError, match="SHARD_COUNT"):
        load_settings({**environ, "SHARD_COUNT": "0"}, sharded=False)
