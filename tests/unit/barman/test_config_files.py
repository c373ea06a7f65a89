"""Rendering Barman's files and the password file from the settings."""

from __future__ import annotations

import configparser
import stat
from pathlib import Path

import pytest

from barman_supervisor.barman.config_files import (
    command_config,
    pgpass_lines,
    reads_this_configuration,
    render_global,
    render_server,
    write_configuration,
    write_pgpass,
    write_problem,
)
from barman_supervisor.config import RENDERED_MARKER, Settings, load_settings
from barman_supervisor.errors import ConfigError
from tests.unit.conftest import PASSWORD


def settings_for(environ: dict[str, str], **changes: str) -> Settings:
    return load_settings({**environ, **changes})


def read_as_barman(text: str) -> configparser.ConfigParser:
    """Barman reads its files with ConfigParser's default ('%') interpolation."""
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return parser


def test_server_file_has_marker_and_conninfo_without_password(environ: dict[str, str]) -> None:
    settings = settings_for(environ, PG_HOST="db1", PG_USER="bar%man")
    server = settings.server("pg")

    text = render_server(server)

    assert text.startswith(RENDERED_MARKER)
    assert "conninfo = host=db1 port=5432 user=bar%%man dbname=postgres\n" in text
    assert PASSWORD not in text
    assert "password" not in text.lower()
    parsed = read_as_barman(text)
    assert parsed.get("pg", "conninfo") == server.conninfo
    assert parsed.get("pg", "streaming_conninfo") == server.streaming_conninfo
    assert parsed.get("pg", "backup_method") == "postgres"
    assert parsed.get("pg", "slot_name") == "barman"
    assert parsed.get("pg", "retention_policy") == "RECOVERY WINDOW OF 7 DAYS"
    assert parsed.get("pg", "minimum_redundancy") == "1"


def test_minimum_redundancy_is_rendered_per_server(environ: dict[str, str]) -> None:
    """A floor under retention, 1 unless set: no policy or hand removes the last backup."""
    settings = settings_for(
        environ,
        BARMAN_SERVERS="pg,reports",
        MINIMUM_REDUNDANCY="2",
        MINIMUM_REDUNDANCY__REPORTS="0",
    )
    floors = {
        name: read_as_barman(render_server(settings.server(name))).get(name, "minimum_redundancy")
        for name in ("pg", "reports")
    }
    assert floors == {"pg": "2", "reports": "0"}


@pytest.mark.parametrize("value", ["-1", "two", "1001"])
def test_a_bad_minimum_redundancy_is_refused(environ: dict[str, str], value: str) -> None:
    with pytest.raises(ConfigError, match="MINIMUM_REDUNDANCY"):
        settings_for(environ, MINIMUM_REDUNDANCY=value)


def test_global_file_escapes_percent_in_paths(environ: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "100%"
    settings = settings_for(environ, BARMAN_HOME=str(home))

    text = render_global(settings)

    assert text.startswith(RENDERED_MARKER)
    parsed = read_as_barman(text)
    assert parsed.get("barman", "barman_home") == str(home)
    assert parsed.get("barman", "log_file") == str(home / "log" / "barman.log")
    assert parsed.get("barman", "configuration_files_directory") == str(tmp_path / "barman.d")
    assert parsed.get("barman", "barman_user") == "barman"


def test_write_configuration_writes_files_and_drops_stale_rendered_ones(
    environ: dict[str, str], tmp_path: Path
) -> None:
    config_dir = tmp_path / "barman.d"
    config_dir.mkdir()
    stale = config_dir / "old.conf"
    stale.write_text(f"{RENDERED_MARKER} earlier\n[old]\nconninfo = host=x\n")
    settings = settings_for(environ, BARMAN_SERVERS="pg,reports")

    written = write_configuration(settings)

    assert written == [
        tmp_path / "barman.conf",
        config_dir / "pg.conf",
        config_dir / "reports.conf",
    ]
    assert sorted(path.name for path in config_dir.iterdir()) == ["pg.conf", "reports.conf"]
    assert (config_dir / "pg.conf").read_text() == render_server(settings.server("pg"))
    assert (tmp_path / "barman.conf").read_text() == render_global(settings)
    assert stat.S_IMODE((config_dir / "pg.conf").stat().st_mode) == 0o644
    # The next start reads its own files as rendered, not as a person's.
    assert load_settings(environ).config_mode == "render"


def test_each_server_has_a_file_of_its_own_for_its_commands(
    environ: dict[str, str], tmp_path: Path
) -> None:
    settings = settings_for(environ, BARMAN_SERVERS="pg,reports")
    write_configuration(settings)
    settings = settings_for(environ, BARMAN_SERVERS="pg")

    write_configuration(settings)

    own = command_config(settings, "pg")
    assert own.parent.parent == settings.barman_home
    assert sorted(path.name for path in own.parent.iterdir()) == ["pg.conf"]
    alone = read_as_barman(own.read_text())
    whole = read_as_barman(render_global(settings))
    whole.read_string(render_server(settings.server("pg")))
    # Barman reads the same options for this server, and no directory of other servers
    assert alone.sections() == ["barman", "pg"]
    assert not alone.has_option("barman", "configuration_files_directory")
    whole.remove_option("barman", "configuration_files_directory")
    for section in ("barman", "pg"):
        assert dict(alone.items(section, raw=True)) == dict(whole.items(section, raw=True))
    assert command_config(settings, None) == settings.barman_config_file


def test_a_process_of_this_configuration_names_the_whole_file_or_a_servers_own(
    environ: dict[str, str],
) -> None:
    settings = settings_for(environ)
    own = str(command_config(settings, "pg"))
    whole = str(settings.barman_config_file)

    assert reads_this_configuration(settings, ["barman", "-c", own, "receive-wal", "pg"])
    assert reads_this_configuration(settings, ["barman", "-c", whole, "cron"])
    assert not reads_this_configuration(settings, ["barman", "-c", "/etc/other.conf", "cron"])
    assert not reads_this_configuration(settings, ["barman", "-c", f"{whole}.d/pg.conf"])


def test_write_configuration_refuses_to_touch_a_foreign_file(
    environ: dict[str, str], tmp_path: Path
) -> None:
    settings = settings_for(environ)
    foreign = tmp_path / "barman.d" / "mine.conf"
    foreign.parent.mkdir()
    foreign.write_text("[mine]\nconninfo = host=mine\n")

    with pytest.raises(ConfigError, match=r"mine\.conf"):
        write_configuration(settings)

    assert foreign.read_text() == "[mine]\nconninfo = host=mine\n"
    assert not (tmp_path / "barman.conf").exists()
    assert not (tmp_path / "barman.d" / "pg.conf").exists()


def test_write_configuration_leaves_mounted_files_alone(
    environ: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "barman.d").mkdir()
    (tmp_path / "barman.conf").write_text("[barman]\nbarman_home = /srv\n")
    (tmp_path / "barman.d" / "pg.conf").write_text("[pg]\nconninfo = host=db\n")
    settings = settings_for(environ)

    assert settings.config_mode == "mounted"
    assert write_configuration(settings) == []
    assert command_config(settings, "pg") == tmp_path / "barman.conf"
    assert (tmp_path / "barman.conf").read_text() == "[barman]\nbarman_home = /srv\n"


def test_pgpass_escapes_colon_and_backslash(environ: dict[str, str]) -> None:
    settings = settings_for(
        environ, PG_HOST="::1", PG_PASSWORD="pa:ss\\word", PG_STREAMING_USER="barman"
    )

    assert pgpass_lines(settings) == ["\\:\\:1:5432:*:barman:pa\\:ss\\\\word"]


def test_pgpass_has_a_line_per_distinct_user(environ: dict[str, str]) -> None:
    settings = settings_for(environ, PG_PORT="5433", PG_STREAMING_PASSWORD="stream-pw")

    assert pgpass_lines(settings) == [
        f"localhost:5433:*:barman:{PASSWORD}",
        "localhost:5433:*:streaming_barman:stream-pw",
    ]


def test_pgpass_deduplicates_identical_lines(environ: dict[str, str]) -> None:
    settings = settings_for(environ, BARMAN_SERVERS="pg,copy", PG_STREAMING_USER="barman")

    assert pgpass_lines(settings) == [f"localhost:5432:*:barman:{PASSWORD}"]


def test_write_pgpass_is_private(environ: dict[str, str], tmp_path: Path) -> None:
    settings = settings_for(environ)

    assert write_pgpass(settings) is True

    assert stat.S_IMODE(settings.pgpass_file.stat().st_mode) == 0o600
    assert settings.pgpass_file.read_text().splitlines() == pgpass_lines(settings)
    assert settings.pgpass_file.read_text().endswith("\n")


def test_write_pgpass_without_passwords_writes_nothing(
    environ: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "barman.d").mkdir()
    (tmp_path / "barman.conf").write_text(f"[barman]\nbarman_home = {tmp_path / 'home'}\n")
    (tmp_path / "barman.d" / "pg.conf").write_text("[pg]\nconninfo = host=db\n")
    settings = settings_for({k: v for k, v in environ.items() if k != "PG_PASSWORD"})

    assert settings.pgpass_file == tmp_path / "home" / ".pgpass"

    assert write_pgpass(settings) is False
    assert not settings.pgpass_file.exists()


def test_write_problem_is_found_before_anything_is_written(
    environ: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    settings = settings_for(environ, BARMAN_CONFIG_DIR=str(tmp_path / "blocker" / "barman.d"))

    problem = write_problem(settings)

    assert problem is not None and "blocker/barman.d/pg.conf: cannot be written" in problem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_write_problem_none_when_everything_can_be_written(environ: dict[str, str]) -> None:
    assert write_problem(settings_for(environ)) is None


def test_a_home_that_is_a_file_is_a_write_problem(environ: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "home").write_text("")

    problem = write_problem(settings_for(environ))

    assert problem is not None and "exists and is not a directory" in problem
