"""The product image and compose file, end to end, on a real engine.

PostgreSQL: the official ``postgres:18`` image (the compose default) cannot be pulled on the test
machines (no registry), so ``barman-supervisor-test/postgres:18`` stands in for it: Debian sid's
postgresql-18 with an entrypoint that follows the official image's contract
(``tests/container/postgres-standin/``); other majors are in ``test_majors.py``. It gets the
project's own ``docker/postgres`` files: ``postgresql.conf``, ``pg_hba.conf`` and
``initdb.d/10-barman-roles.sh``, mounted by the product compose file
``compose/docker-compose.yml``. The override ``compose.host.yaml`` changes only what this engine
needs: host networking, free ports on 127.0.0.1, prebuilt images.

The stack tests share one stack and run in file order: start and first backup, the locked-down
container and TLS to PostgreSQL, the PID-1 duties, a restore, a ``docker stop`` during a backup,
and a restart. The image's package list (``results/image-packages.json``) is written and checked
against the lock file here too.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from barman_supervisor.daemon.shutdown import STOP_MARGIN
from tests.container.conftest import (
    BARMAN_IMAGE,
    DEFAULT_MAJOR,
    HERE,
    PRODUCT_COMPOSE,
    REPO_ROOT,
    Stack,
    run,
    write_env,
    write_secrets,
)
from tests.support.poll import wait_until
from tests.support.s3 import s3_server

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

SHUTDOWN_GRACE = 5
STOP_GRACE = 60
CRON_INTERVAL = 2
# Seconds a backup has run when the stop comes: well under way, not just begun.
BACKUP_UNDER_WAY_S = 2
# Long-lived processes of a healthy barman container besides PID 1; anything else is a one-off
# (cron, archive-wal, check, list-backups, ...) that must be gone again soon.
LONG_LIVED = ("receive-wal", "pg_receivewal", "pg_basebackup", " backup ", " fork-server ")
LOCK_FILE = REPO_ROOT / "docker" / "barman" / "requirements.lock"
# The image's package list, kept in the repository: what a rebuild changed shows in its diff.
PACKAGE_LIST = HERE / "results" / "image-packages.json"
# In the image's venv besides the locked packages: the project itself and the venv's own pip.
NOT_LOCKED = {"barman-supervisor", "pip"}
_LOCKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)


def _compose_config(env_file: Path, secrets_dir: Path) -> dict[str, Any]:
    result = run(
        [
            "docker", "compose", "-f", str(PRODUCT_COMPOSE), "--env-file", str(env_file),
            "config", "--format", "json",
        ],
        60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "SECRETS_DIR": str(secrets_dir)},
    )  # fmt: skip
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
        else:
            total += float(number) * units[char]
            number = ""
    return total


def test_compose_config_accepts_the_product_file(built_images: float, tmp_path: Path) -> None:
    """`docker compose config` takes compose/docker-compose.yml with .env.example and secrets."""
    write_secrets(tmp_path / "secrets")
    config = _compose_config(REPO_ROOT / "compose" / ".env.example", tmp_path / "secrets")
    services = config["services"]
    assert set(services) == {"postgres", "barman"}
    postgres, barman = services["postgres"], services["barman"]
    assert postgres["image"] == f"postgres:{DEFAULT_MAJOR}"
    # The official image's layout from 18 on: the volume one level above a per-major PGDATA.
    assert postgres["environment"]["PGDATA"] == f"/var/lib/postgresql/{DEFAULT_MAJOR}/docker"
    assert {v["target"] for v in postgres["volumes"] if v["type"] == "volume"} == {
        "/var/lib/postgresql"
    }
    assert barman["build"]["context"] == str(REPO_ROOT)
    assert not barman["build"].get("args"), "one barman image for every major"
    assert barman["depends_on"]["postgres"]["condition"] == "service_healthy"
    for service in (postgres, barman):
        assert "network_mode" not in service, "real users get the compose network"
        assert service["healthcheck"]["test"]
        assert any(volume["type"] == "volume" for volume in service["volumes"])
    environment = barman["environment"]
    assert environment["PG_HOST"] == "postgres"
    assert environment["PG_PASSWORD_FILE"].startswith("/run/secrets/")
    assert environment["PG_STREAMING_PASSWORD_FILE"].startswith("/run/secrets/")
    assert environment["HTTP_PORT"] == "9798"
    assert environment["BACKUP_SCHEDULE"] == "0 3 * * 0"
    assert environment["BACKUP_INCREMENTAL_SCHEDULE"] == "0 3 * * 1-6"
    assert _seconds(barman["stop_grace_period"]) >= int(environment["SHUTDOWN_GRACE"]) + STOP_MARGIN
    # TLS to PostgreSQL, checked against the stack's CA; the container locked down.
    assert environment["PG_SSLMODE"] == "verify-full"
    assert environment["PG_SSLROOTCERT"] == "/run/secrets/postgres_ca_cert"
    assert barman["cap_drop"] == ["ALL"] and barman["read_only"] is True
    assert barman["security_opt"] == ["no-new-privileges:true"]
    for secret in config["secrets"].values():
        assert Path(secret["file"]).parent == tmp_path / "secrets"
    # Every password is a file: none in the environment of either service.
    for service in (postgres, barman):
        for name, value in service["environment"].items():
            if "PASSWORD" in name:
                assert name.endswith("_FILE") and value.startswith("/run/secrets/"), name
    # Schedules follow the environment.
    write_env(
        tmp_path / "tuned.env",
        {"BACKUP_SCHEDULE": "30 4 * * 0", "TZ": "Europe/Paris", "POSTGRES_MAJOR": "17"},
    )
    tuned = _compose_config(tmp_path / "tuned.env", tmp_path / "secrets")
    assert tuned["services"]["barman"]["environment"]["BACKUP_SCHEDULE"] == "30 4 * * 0"
    assert tuned["services"]["barman"]["environment"]["TZ"] == "Europe/Paris"
    assert tuned["services"]["postgres"]["image"] == "postgres:17"
    assert tuned["services"]["postgres"]["environment"]["PGDATA"] == "/var/lib/postgresql/17/docker"


def test_image_has_postgresql_18_clients_drill_servers_and_no_compiler(docker_client: Any) -> None:
    image = docker_client.images.get(BARMAN_IMAGE)
    config = image.attrs["Config"]
    assert config["User"] == "999:999"
    assert config["Entrypoint"] == ["barman-supervisor"]
    assert config["Cmd"] == ["run"]
    assert "9798/tcp" in config["ExposedPorts"]
    assert config.get("StopSignal") == "SIGTERM"
    assert config["Healthcheck"]["Test"] == ["CMD", "barman-supervisor", "healthcheck"]
    assert "/var/lib/barman" in config["Volumes"]
    # The newest clients serve every supported major; drills start a server of the backup's own.
    script = (
        "set -e; for tool in pg_basebackup pg_receivewal pg_verifybackup pg_combinebackup; do "
        "command -v $tool; $tool --version; done; "
        "for major in 18 17; do /usr/lib/postgresql/$major/bin/postgres --version; done; "
        "test ! -e /usr/lib/postgresql/15; barman --version; "
        "rsync --version | head -n1; file --version | head -n1; "
        "for tool in gcc cc c++ make; do ! command -v $tool; done; "
        "test ! -d /usr/include/postgresql; stat -c %u:%g:%a /var/lib/barman"
    )
    container = docker_client.containers.run(
        BARMAN_IMAGE, entrypoint=["sh", "-c", script], command=[], network_mode="host", detach=True
    )
    try:
        result = container.wait(timeout=120)
        output = container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True, v=True)  # with its anonymous /var/lib/barman volume
    assert result["StatusCode"] == 0, output
    for tool in ("pg_basebackup", "pg_receivewal", "pg_verifybackup", "pg_combinebackup"):
        assert f"/usr/lib/postgresql/18/bin/{tool}\n{tool} (PostgreSQL) 18." in output, output
    assert "postgres (PostgreSQL) 18." in output and "postgres (PostgreSQL) 17." in output
    assert "3.20" in output, output
    assert output.strip().endswith("999:999:750"), output
    print(f"image size: {image.attrs['Size'] / 1e6:.0f} MB")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_image_package_list_matches_the_lock(docker_client: Any) -> None:
    """The image's Debian and Python packages, written to results/image-packages.json: every
    locked package at its locked version and nothing else in the venv, Barman 3.20, no compiler
    or headers, and no setuid or setgid file."""
    script = (
        "set -e; cat /etc/debian_version; echo '--'; "
        "dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n'; echo '--'; "
        "python3 -c 'import json, importlib.metadata as m, platform; print(json.dumps("
        '[platform.python_version(), {d.metadata["Name"]: d.version for d in m.distributions()}]'
        "))'; echo '--'; "
        "for major in 18 17; do /usr/lib/postgresql/$major/bin/postgres --version; done; "
        "echo '--'; find / -xdev -perm /6000 -type f 2>/dev/null || true"
    )
    container = docker_client.containers.run(
        BARMAN_IMAGE, entrypoint=["sh", "-c", script], command=[], network_mode="host", detach=True
    )
    try:
        result = container.wait(timeout=120)
        output = container.logs(stdout=True, stderr=False).decode()
    finally:
        container.remove(force=True, v=True)
    assert result["StatusCode"] == 0, output
    debian_version, dpkg, python, postgres, setuid = output.split("--\n")
    python_version, installed = json.loads(python)
    packages = {
        "image": BARMAN_IMAGE,
        "debian_version": debian_version.strip(),
        "debian_packages": {
            name: f"{version} {arch}"
            for name, version, arch in sorted(line.split("\t") for line in dpkg.splitlines())
        },
        "python": python_version,
        "python_packages": dict(sorted((_normalized(k), v) for k, v in installed.items())),
        "postgresql_programs": postgres.splitlines(),
        "setuid_setgid_files": setuid.split(),
    }
    PACKAGE_LIST.parent.mkdir(exist_ok=True)
    PACKAGE_LIST.write_text(json.dumps(packages, indent=1) + "\n", encoding="utf-8")
    locked = {_normalized(m[1]): m[2] for m in _LOCKED.finditer(LOCK_FILE.read_text("utf-8"))}
    python_packages = packages["python_packages"]
    assert {name: python_packages.get(name) for name in locked} == locked
    assert set(python_packages) - set(locked) == NOT_LOCKED
    assert python_packages["barman"].startswith("3.20.")
    assert packages["setuid_setgid_files"] == []
    debian = packages["debian_packages"]
    assert not [name for name in debian if name.endswith("-dev") or name in {"gcc", "cpp"}]
    assert {"python3", "rsync", "file", "zstd", "lz4"} <= set(debian)
    print(f"{len(debian)} Debian packages, {len(python_packages)} Python packages")


@pytest.fixture(scope="module")
def stack(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """PostgreSQL 18 stand-in + barman-supervisor, host networking, free ports, fresh volumes.

    Backups every minute, throttled to 1000 kB/s so that one is running most of the time
    (the stop test needs one); SHUTDOWN_GRACE short so that the stop ends well within the
    compose stop_grace_period.
    """
    stack = Stack(
        docker_client,
        tmp_path_factory.mktemp("stack"),
        {
            "BACKUP_SCHEDULE": "* * * * *",
            "BACKUP_IMMEDIATE_CHECKPOINT": "true",
            "BACKUP_BANDWIDTH_LIMIT": "1000",
            "BARMAN_CRON_INTERVAL": str(CRON_INTERVAL),
            "BARMAN_CHECK_INTERVAL": "5",
            "SHUTDOWN_GRACE": str(SHUTDOWN_GRACE),
            "STOP_GRACE_PERIOD": f"{STOP_GRACE}s",
            "TZ": "UTC",
        },
    )
    try:
        # `up` returns once PostgreSQL is healthy and barman has started (depends_on).
        stack.compose("up", "-d", "--no-build", "--pull", "never")
        yield stack
    finally:
        stack.down()


def _processes_text(stack: Stack) -> str:
    return "\n".join(f"{p['PID']} {p['PPID']} {p['STAT']} {p['ARGS']}" for p in stack.processes())


def test_barman_turns_healthy_with_a_done_backup(stack: Stack) -> None:
    wait_until(
        lambda: stack.health() == "healthy", 300, what="barman container healthy", interval=2
    )
    done = [b for b in stack.backups() if b["status"] == "DONE"]
    assert done, stack.backups()
    status = stack.status()
    assert "pg" in json.dumps(status), status
    assert stack.container("postgres").attrs["State"]["Health"]["Status"] == "healthy"


def test_runs_as_non_root_with_the_supervisor_as_pid_1(stack: Stack) -> None:
    assert stack.exec("barman", "id", "-u").strip() == "999"
    cmdline = stack.exec("barman", "cat", "/proc/1/cmdline").split("\0")
    assert any(part.endswith("/barman-supervisor") for part in cmdline), cmdline
    assert "run" in cmdline, cmdline
    status = stack.exec("barman", "cat", "/proc/1/status")
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["999"] * 4, uid_line
    # The same seen from the host: the container's init process is the supervisor.
    container = stack.container("barman")
    container.reload()
    init_pid = str(container.attrs["State"]["Pid"])
    init = [p for p in stack.processes() if p["PID"] == init_pid]
    assert init and "barman-supervisor run" in init[0]["ARGS"], _processes_text(stack)
    # The named volume took its ownership from the image on first start.
    assert stack.exec("barman", "stat", "-c", "%u:%g", "/var/lib/barman").strip() == "999:999"


def _barman_connection_lines(stack: Stack) -> list[str]:
    """PostgreSQL's log lines (log_connections, compose.host.yaml) of each connection of the
    Barman roles, the daemon's own included."""
    raw = stack.container("postgres").logs(stdout=True, stderr=True).decode("utf-8", "replace")
    return [
        line
        for line in raw.splitlines()
        if "connection authorized: user=barman " in line
        or "connection authorized: user=streaming_barman " in line
    ]


def test_locked_down_and_over_tls_only(stack: Stack) -> None:
    """The hardened service is what runs healthy: no capability, no new privileges, a read-only
    root. Every connection of the Barman roles used TLS (the streaming one live in pg_stat_ssl,
    all of them in the server's log), Barman's conninfo asks for verify-full, and a connection
    without TLS is refused by pg_hba.conf."""
    status = dict(
        line.split(":", 1) for line in stack.exec("barman", "cat", "/proc/1/status").splitlines()
    )
    assert int(status["CapBnd"], 16) == 0 and int(status["CapEff"], 16) == 0, status
    assert status["NoNewPrivs"].strip() == "1"
    code, output = stack.exec_status("barman", "touch", "/opt/barman-supervisor/written")
    assert code != 0 and "Read-only file system" in output, output
    mounts = {
        line.split()[1]: line.split()
        for line in stack.exec("barman", "cat", "/proc/mounts").splitlines()
    }
    assert "ro" in mounts["/"][3].split(","), mounts["/"]
    assert mounts["/etc/barman"][2] == "tmpfs" and mounts["/tmp"][2] == "tmpfs"
    rendered = stack.exec("barman", "cat", "/etc/barman/barman.d/pg.conf")
    assert "sslmode=verify-full" in rendered and "/run/secrets/postgres_ca_cert" in rendered
    rows = stack.psql(
        "SELECT a.usename || ' ' || s.ssl || ' ' || s.version FROM pg_stat_ssl s "
        "JOIN pg_stat_activity a USING (pid) WHERE a.usename IN ('barman', 'streaming_barman')"
    ).splitlines()
    assert any(row.startswith("streaming_barman true TLS") for row in rows), rows
    assert all(" true TLS" in row for row in rows), rows
    lines = _barman_connection_lines(stack)
    assert any("user=barman " in line for line in lines), lines[-5:]
    assert any("replication connection" in line for line in lines), lines[-5:]
    assert all("SSL enabled" in line for line in lines), [x for x in lines if "SSL" not in x]
    plaintext = f"host=127.0.0.1 port={stack.pg_port} user=barman dbname=postgres sslmode=disable"
    code, output = stack.exec_status("barman", "psql", "-w", "-d", plaintext, "-c", "SELECT 1")
    assert code != 0 and "no encryption" in output, output
    print(f"{len(lines)} connections of the Barman roles, all over TLS")


def _cron_runs(stack: Stack) -> int:
    return sum(
        1
        for event in stack.events()
        if event.get("event") == "job_finished" and event.get("job") == "cron"
    )


def test_no_zombie_and_no_orphan_after_cron_cycles(stack: Stack) -> None:
    start = _cron_runs(stack)
    wait_until(
        lambda: _cron_runs(stack) >= start + 5, 60, what="5 more barman cron runs", interval=1
    )
    one_offs: set[str] = set()
    for _ in range(5):
        init_pid = str(stack.container("barman").attrs["State"]["Pid"])
        everything = stack.processes()
        text = "\n".join(f"{p['PID']} {p['PPID']} {p['STAT']} {p['ARGS']}" for p in everything)
        shim = next(p["PPID"] for p in everything if p["PID"] == init_pid)
        # `docker exec` sessions (the healthcheck, this test's own) hang off the shim, not PID 1.
        processes = [p for p in everything if p["PPID"] != shim or p["PID"] == init_pid]
        pids = {p["PID"] for p in processes}
        assert not [p for p in everything if p["STAT"].startswith("Z")], f"zombie:\n{text}"
        assert len(processes) < 15, f"processes pile up:\n{text}"
        for process in processes:
            if process["PID"] != init_pid:
                assert process["PPID"] in pids, f"parent outside the supervisor's tree:\n{text}"
        streaming = [
            p for p in processes if "receive-wal" in p["ARGS"] and "pg_receivewal" not in p["ARGS"]
        ]
        receivers = [p for p in processes if "pg_receivewal" in p["ARGS"]]
        assert len(streaming) <= 1 and len(receivers) <= 1, f"duplicate streaming:\n{text}"
        # Barman's commands fork from one fork server, a child of PID 1
        servers = [p for p in processes if " fork-server " in f" {p['ARGS']} "]
        assert [p["PPID"] for p in servers] == [init_pid], f"no fork server:\n{text}"
        one_offs |= {
            p["PID"]
            for p in processes
            if p["PID"] != init_pid and not any(word in f" {p['ARGS']} " for word in LONG_LIVED)
        }
        time.sleep(CRON_INTERVAL)  # one sample per cron cycle: pacing, not a wait
    # Every one-off seen (cron, archive-wal, check, ...) has been reaped since.
    wait_until(
        lambda: not one_offs & {p["PID"] for p in stack.processes()},
        60,
        what="one-off Barman processes to end",
        interval=2,
    )
    assert any("pg_receivewal" in p["ARGS"] for p in stack.processes()), _processes_text(stack)


def test_restore_from_the_latest_backup(stack: Stack) -> None:
    """What the README's restore step does, inside the container: restore into the restore
    volume (outside BARMAN_HOME), which the image makes writable for Barman's user."""
    restore = ("barman-supervisor", "restore", "pg", "/restore/pg", "--target-action", "promote")
    stack.exec("barman", *restore, timeout=300)
    assert stack.exec("barman", "cat", "/restore/pg/PG_VERSION").strip() == str(DEFAULT_MAJOR)
    stack.exec("barman", "rm", "-rf", "/restore/pg")


def _backup_running(stack: Stack, since: float = 0.0) -> bool:
    """A backup's pg_basebackup is running (started after ``since``, a time.monotonic()).

    Not `pg_basebackup --version`, which every `barman check` runs.
    """
    age_limit = time.monotonic() - since
    return any(
        "pg_basebackup --dbname" in p["ARGS"] and float(p["AGE"]) <= age_limit
        for p in stack.processes()
    )


def test_docker_stop_during_a_backup_exits_0_and_a_restart_carries_on(stack: Stack) -> None:
    """One story, so that no test depends on another having run: stop mid-backup within the
    grace, start again, streaming and archiving resume, and both runs log only JSON."""
    before = _stop_during_a_backup(stack)
    _restart_and_resume(stack, before)
    _every_log_line_is_json(stack, runs=2)


def _stop_during_a_backup(stack: Stack) -> set[str]:
    """The DONE backups before the stop."""
    # ~60 MB more to copy at 1000 kB/s: a backup started after this runs over a minute.
    loaded = time.monotonic()
    stack.psql(
        "CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 6) AS pad "
        "FROM generate_series(1, 250000) AS g"
    )
    wait_until(
        lambda: _backup_running(stack, loaded),
        180,
        what="a scheduled backup of the new data",
        interval=1,
    )
    time.sleep(BACKUP_UNDER_WAY_S)  # the stop comes well into the backup: not a wait
    assert _backup_running(stack), "the backup ended before the stop: more data needed"
    before = {b["backup_id"] for b in stack.backups() if b["status"] == "DONE"}
    container = stack.container("barman")
    began = time.monotonic()
    container.stop(timeout=STOP_GRACE)
    elapsed = time.monotonic() - began
    container.reload()
    state = container.attrs["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 0, f"exit code {state['ExitCode']} (137 is a SIGKILL)"
    assert not state["OOMKilled"]
    assert elapsed < STOP_GRACE, f"stop took {elapsed:.1f}s, grace {STOP_GRACE}s"
    print(f"docker stop during a backup: {elapsed:.1f}s, exit code 0")
    events = [event.get("event") for event in stack.events()]
    assert "waiting_for_backup" in events
    assert "backup_interrupted" in events or "backup_finished_before_stop" in events
    assert events[-1] == "daemon_stopped", events[-5:]
    return before


def _restart_and_resume(stack: Stack, before: set[str]) -> None:
    assert before, "a DONE backup existed before the stop"
    container = stack.container("barman")
    container.start()
    # Streaming resumes: Barman's pg_receivewal holds the slot again.
    wait_until(
        lambda: (
            stack.psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'barman'") == "t"
        ),
        120,
        what="the replication slot to be active again",
        interval=1,
    )
    # New WAL reaches Barman: a switched segment is archived by the next cron runs.
    stack.switch_and_archive_wal()
    # The backup list is intact: every backup DONE before the stop is still DONE.
    after = {b["backup_id"]: b["status"] for b in stack.backups()}
    assert {backup: after.get(backup) for backup in before} == dict.fromkeys(before, "DONE")
    container.reload()
    assert container.attrs["State"]["Status"] == "running"
    assert container.attrs["RestartCount"] == 0
    # Not asserted: the interrupted backup is FAILED, which Barman's check reports until deleted.
    failed = [b["backup_id"] for b in stack.backups() if b["status"] == "FAILED"]
    print(f"after restart: health {stack.health()}, FAILED backups {failed}")


def _every_log_line_is_json(stack: Stack, runs: int) -> None:
    """Every run of the container, start to stop: one JSON object per line."""
    lines = stack.logs()
    assert len(lines) > 50
    for number, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"docker logs line {number} is not JSON: {line[:300]}")
        assert isinstance(event, dict) and {"event", "level", "timestamp"} <= set(event), line
    assert sum(1 for line in lines if '"daemon_starting"' in line) == runs


def test_the_image_reaches_an_s3_store_with_its_barman_cloud_programs(
    docker_client: Any, tmp_path: Path
) -> None:
    """Off-site copies run barman-cloud-* inside the image: its boto3 answers a real S3 API
    server (moto on 127.0.0.1, host networking), and a wrong key is refused."""
    with s3_server(tmp_path) as store:
        results = {}
        for label, secret in (("right", store.secret), ("wrong", "not-the-key")):
            container = docker_client.containers.run(
                BARMAN_IMAGE,
                entrypoint=["barman-cloud-backup"],
                command=[
                    "--test",
                    "--cloud-provider",
                    "aws-s3",
                    "--endpoint-url",
                    store.endpoint,
                    f"s3://{store.bucket}/pg",
                    "pg",
                ],
                environment={
                    "AWS_ACCESS_KEY_ID": store.key_id,
                    "AWS_SECRET_ACCESS_KEY": secret,
                    "AWS_DEFAULT_REGION": "us-east-1",
                },
                network_mode="host",
                detach=True,
            )
            try:
                results[label] = container.wait(timeout=120)["StatusCode"]
                output = container.logs(stdout=True, stderr=True).decode()
            finally:
                container.remove(force=True, v=True)
            assert secret not in output
    assert results["right"] == 0 and results["wrong"] != 0, output
