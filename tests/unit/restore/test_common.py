"""What the two restore commands share: the destination's check, the target's parsing, the
steps printed at the end."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from barman_supervisor.config import load_settings
from barman_supervisor.restore import common as restore


def test_destination_must_be_empty_new_and_absolute(tmp_path: Path) -> None:
    home = Path("/nonexistent/barman-home")
    assert restore.destination_problem(tmp_path / "new", home) is None
    assert restore.destination_problem(tmp_path, home) is None
    (tmp_path / "PG_VERSION").write_text("15\n")
    assert "not empty" in (restore.destination_problem(tmp_path, home) or "")
    assert "not a directory" in (restore.destination_problem(tmp_path / "PG_VERSION", home) or "")
    assert "absolute" in (restore.destination_problem(Path("relative/dir"), home) or "")


def test_a_destination_inside_equal_to_or_holding_barman_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "var" / "lib" / "barman"
    home.mkdir(parents=True)
    for destination, how in (
        (home / "restore", "is inside"),
        (home, "is"),
        (tmp_path / "var", "holds"),
        (home / "pg" / ".." / "restore", "is inside"),
    ):
        problem = restore.destination_problem(destination, home) or ""
        assert f"{destination} {how} BARMAN_HOME ({home})" in problem
        assert "outside" in problem and "\n" not in problem
    assert restore.destination_problem(tmp_path / "restore", home) is None
    assert restore.destination_problem(tmp_path / "var" / "lib" / "barman2", home) is None


def test_a_symlink_into_barman_home_is_refused_as_what_it_leads_to(tmp_path: Path) -> None:
    home = tmp_path / "barman"
    (home / "restore").mkdir(parents=True)
    link = tmp_path / "looks-outside"
    link.symlink_to(home / "restore")
    assert "is inside BARMAN_HOME" in (restore.destination_problem(link, home) or "")


def test_target_time_parsing() -> None:
    with_offset = restore.parse_target_time("2026-11-23 14:05:00+00:00")
    assert with_offset == datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    naive = restore.parse_target_time("2026-11-23T14:05:00")
    assert naive is not None and naive.tzinfo is not None
    assert restore.parse_target_time("yesterday") is None


def test_next_steps_start_the_copy_as_postgres_when_root() -> None:
    steps = restore.next_steps(
        Path("/r"), "/usr/lib/postgresql/15/bin", ("lsn", "0/5"), "pause", True
    )
    assert steps[0].startswith("Give it to the PostgreSQL user: chown -R postgres:postgres /r")
    assert any("runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /r" in s for s in steps)
    assert "pg_wal_replay_resume()" in steps[-1]
    plain = restore.next_steps(Path("/r"), "/b", None, "pause", False)
    assert not any("chown" in s or "runuser" in s for s in plain)


def test_a_restore_is_refused_only_when_its_backup_and_wal_cannot_fit() -> None:
    """One line naming the destination and both sizes; the backup's own size, no margin: no
    restore that fits is refused. An unknown size refuses nothing."""
    mib = 1048576
    destination = Path("/restore/pg")
    assert restore.room_problem(destination, 100 * mib, 100 * mib) is None
    reason = restore.room_problem(destination, 100 * mib - 1, 100 * mib)
    assert reason is not None and "\n" not in reason
    assert reason.startswith("not enough free space for the restore in /restore/pg: 100 MiB free")
    assert "backup and its WAL 100 MiB" in reason and "nothing was changed" in reason
    assert restore.room_problem(destination, 0, None) is None


def test_a_new_destination_is_measured_on_its_nearest_existing_directory(tmp_path: Path) -> None:
    assert restore.existing_ancestor(tmp_path / "new" / "pg") == tmp_path
    assert restore.existing_ancestor(tmp_path) == tmp_path
    assert restore.free_space(tmp_path / "new") > 0


def test_a_server_another_replica_owns_is_named_with_its_shard(environ: dict[str, str]) -> None:
    names = [f"pg{n}" for n in range(1, 13)]
    settings = load_settings(
        {**environ, "BARMAN_SERVERS": ",".join(names), "SHARD_COUNT": "3", "SHARD_INDEX": "0"}
    )
    other = next(o for o in settings.ownership if not o.mine)
    hint = restore.elsewhere(settings, other.server)
    assert f"protected by shard {other.owner} of 3" in hint and "restore-offsite" in hint
    assert restore.elsewhere(settings, settings.servers[0].name) == ""
    assert restore.elsewhere(settings, "nowhere") == ""
