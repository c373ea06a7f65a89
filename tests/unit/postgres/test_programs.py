"""Which PostgreSQL programs serve a server: client major vs server major, drill programs."""

from __future__ import annotations

from pathlib import Path

from barman_supervisor.postgres.programs import (
    WRAPPED_CLIENTS,
    Clients,
    client_major,
    find_client,
    installed_majors,
    link_clients,
    major_problem,
    missing_server_programs,
    probe_clients,
    programs_status,
    survey,
    unwrapped_clients,
)
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner

CLIENTS_18 = Clients("/usr/lib/postgresql/18/bin", 18)


def _program(directory: Path, name: str, output: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return path


def test_client_major_from_version_output() -> None:
    assert client_major("pg_basebackup (PostgreSQL) 18.1 (Debian 18.1-1)\n") == 18
    assert client_major("pg_basebackup (PostgreSQL) 17.6") == 17
    assert client_major("pg_basebackup (PostgreSQL) 9.6.24") == 9
    assert client_major("pg_basebackup: command not found") is None


def test_newest_clients_serve_every_older_major() -> None:
    for version_num in (140019, 150014, 160010, 170006, 180001):
        assert major_problem(version_num, CLIENTS_18) is None, version_num


def test_a_server_newer_than_the_clients_is_refused_naming_major_and_fix() -> None:
    problem = major_problem(190000, CLIENTS_18)
    assert problem is not None
    assert "PostgreSQL 19 is newer" in problem and "PostgreSQL 18" in problem
    assert "postgresql-client-19" in problem and "\n" not in problem
    assert major_problem(180001, Clients("/usr/lib/postgresql/17/bin", 17)) is not None


def test_missing_or_unreadable_clients_are_refused() -> None:
    missing = major_problem(170006, Clients(None, None))
    assert missing is not None and "postgresql-client-17" in missing
    unknown = major_problem(170006, Clients("/opt/pg/bin", None))
    assert unknown is not None and "/opt/pg/bin" in unknown


def test_installed_majors_need_the_server_program(tmp_path: Path) -> None:
    _program(tmp_path / "18" / "bin", "postgres")
    _program(tmp_path / "17" / "bin", "postgres")
    _program(tmp_path / "15" / "bin", "pg_basebackup")  # clients only: no drills
    (tmp_path / "common").mkdir()
    assert installed_majors(tmp_path) == [17, 18]
    assert installed_majors(tmp_path / "absent") == []


def test_drill_refusal_names_the_major_what_is_here_and_what_to_do(tmp_path: Path) -> None:
    _program(tmp_path / "18" / "bin", "postgres")
    line = missing_server_programs(15, root=tmp_path)
    assert "PostgreSQL 15" in line and str(tmp_path / "15" / "bin") in line
    assert "server programs here: 18" in line
    assert "PG_BIN_DIR" in line and "DRILL_SCHEDULE" in line and "\n" not in line
    assert "server programs here: none" in missing_server_programs(15, root=tmp_path / "x")


def test_status_field_names_client_and_server_programs(tmp_path: Path) -> None:
    server_dir = _program(tmp_path / "17" / "bin", "postgres").parent
    served = programs_status(170006, CLIENTS_18, None, tmp_path)
    assert served == {
        "client": {"major": 18, "dir": "/usr/lib/postgresql/18/bin"},
        "server": {"major": 17, "dir": str(server_dir), "drill": None},
    }
    older = programs_status(150014, CLIENTS_18, None, tmp_path)
    assert older["server"]["dir"] is None and "PostgreSQL 15" in older["server"]["drill"]
    configured = programs_status(150014, CLIENTS_18, server_dir, tmp_path)
    assert configured["server"]["dir"] == str(server_dir)


def test_probe_runs_the_client_on_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _program(bin_dir, "pg_basebackup", "pg_basebackup (PostgreSQL) 18.1 (Debian 18.1-1)")
    path = f"{bin_dir}:/usr/bin:/bin"
    assert find_client(path) == str(bin_dir / "pg_basebackup")
    runner = Runner(Pid1(), {"PATH": path})
    assert probe_clients(runner, path) == Clients(str(bin_dir), 18)
    assert probe_clients(runner, str(tmp_path / "empty")) == Clients(None, None)
    clients = probe_clients(runner, path)
    problems, status = survey(190000, clients, None)
    assert len(problems) == 1 and "PostgreSQL 19" in problems[0]
    assert status["client"] == {"major": 18, "dir": str(bin_dir)}
    assert survey(170006, clients, None)[0] == []


def _debian_layout(root: Path, *majors: int) -> Path:
    """``root/usr/bin/pg_basebackup`` a link to a wrapper, as postgresql-common makes it, and
    the client programs of each major under ``root/lib/<major>/bin``."""
    wrapper = _program(root / "share", "pg_wrapper")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "pg_basebackup").symlink_to(wrapper)
    for major in majors:
        for name in WRAPPED_CLIENTS:
            _program(root / "lib" / str(major) / "bin", name, f"{name} (PostgreSQL) {major}.1")
    return root / "usr" / "bin"


def test_the_wrapper_is_skipped_for_the_major_it_picked(tmp_path: Path) -> None:
    wrapped = _debian_layout(tmp_path, 17, 18)
    lib = tmp_path / "lib"
    assert unwrapped_clients(Clients(str(wrapped), 17), lib) == lib / "17" / "bin"
    assert unwrapped_clients(Clients(str(wrapped), 18), lib) == lib / "18" / "bin"
    # no such major installed, no version read, or not the wrapper: nothing to skip
    assert unwrapped_clients(Clients(str(wrapped), 16), lib) is None
    assert unwrapped_clients(Clients(str(wrapped), None), lib) is None
    assert unwrapped_clients(Clients(str(lib / "18" / "bin"), 18), lib) is None
    assert unwrapped_clients(Clients(None, None), lib) is None


def test_the_links_hold_the_wrapped_programs_only(tmp_path: Path) -> None:
    source = tmp_path / "18" / "bin"
    for name in (*WRAPPED_CLIENTS, "pg_verifybackup", "pg_combinebackup"):
        _program(source, name)
    links = tmp_path / "links"
    link_clients(source, links)
    link_clients(source, links)  # again at the next start: replaced, not failed
    assert sorted(p.name for p in links.iterdir()) == sorted(WRAPPED_CLIENTS)
    assert all((links / name).resolve() == source / name for name in WRAPPED_CLIENTS)


def test_a_directory_put_first_on_the_runner_path_is_what_children_search_first(
    tmp_path: Path,
) -> None:
    first = tmp_path / "first"
    _program(first, "pg_basebackup", "pg_basebackup (PostgreSQL) 18.1")
    runner = Runner(Pid1(), {"PATH": "/usr/bin:/bin"})
    runner.put_first_on_path(first)
    assert runner.path == f"{first}:/usr/bin:/bin"
    assert runner.run(["sh", "-c", "command -v pg_basebackup"], kind="t").stdout.strip() == str(
        first / "pg_basebackup"
    )
