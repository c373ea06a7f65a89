"""The probes answer from state alone: codes, documents, metrics text, and no secret anywhere."""

from __future__ import annotations

import errno
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from barman_supervisor import cli
from barman_supervisor.barman.commands import Check
from barman_supervisor.barman.records import Backup
from barman_supervisor.barman.verify import Verification
from barman_supervisor.config import WebAccess
from barman_supervisor.config.web import read_web_config
from barman_supervisor.log import MASKER
from barman_supervisor.postgres.connection import SlotState
from barman_supervisor.status import server as server_module
from barman_supervisor.status.health import Limits
from barman_supervisor.status.http import HttpServer, Probes, bind_problem
from barman_supervisor.status.metrics import registry
from barman_supervisor.status.state import JobRun, State
from tests.support.webconfig import WebConfig, basic, write_web_config
from tests.support.webconfig import get as https_get

LIMITS = Limits(
    postgres_max_silence=35, backup_max_age=36 * 3600, wal_max_lag_bytes=256 << 20, wal_max_age=None
)
SECRET = "Pr0be-s3cret"
FREE_DISK = 1024**4


def streaming(state: State, name: str, *, running: bool) -> None:
    state.record_probe(
        name,
        receive_wal_running=running,
        wal_received_at=None,
        wal_archived_at=None,
        disk_free_bytes=FREE_DISK,
    )


def protected_state() -> State:
    now = time.time()
    state = State(["pg", "reports"])
    for name in ("pg", "reports"):
        state.set_phase(name, "running")
        state.postgres_seen(name, SlotState(exists=True, active=True, lag_bytes=0))
        streaming(state, name, running=True)
        state.record_checks(name, [Check("postgresql", True, "")])
        state.record_backups(name, [Backup("20261123T030000", "DONE", now - 60, 1234)])
        state.record_run(name, JobRun("backup", now - 70, 9.5, True))
    return state


def probes(state: State, scheduler_running: bool = True) -> Probes:
    return Probes(
        state,
        lambda _server: LIMITS,
        lambda: scheduler_running,
        lambda: {"backup:pg": "2026-11-24T03:00:00+00:00", "cron": "2026-11-24T00:01:00+00:00"},
        registry(state, lambda _server: LIMITS),
    )


def test_ready_when_every_server_is_protected() -> None:
    code, document = probes(protected_state()).readyz()

    assert code == 200
    assert document == {"ready": True, "servers": {"pg": [], "reports": []}}


def test_one_unprotected_server_makes_readyz_503_and_says_why() -> None:
    state = protected_state()
    streaming(state, "reports", running=False)

    code, document = probes(state).readyz()

    assert code == 503
    assert document["servers"]["pg"] == []
    assert document["servers"]["reports"] == [
        {"condition": "streaming", "reason": "barman receive-wal is not running"}
    ]


def test_liveness_does_not_care_about_backups() -> None:
    state = protected_state()
    state.record_backups("pg", [])
    state.postgres_unreachable("pg", "connection refused")

    assert probes(state).healthz()[0] == 200
    assert probes(state, scheduler_running=False).healthz()[0] == 503


def test_status_has_backups_jobs_and_next_runs_per_server() -> None:
    _, document = probes(protected_state()).status()
    pg = document["servers"]["pg"]

    assert pg["ready"] is True
    assert pg["backups"]["newest"]["id"] == "20261123T030000"
    assert pg["backups"]["newest"]["size_bytes"] == 1234
    assert pg["jobs"]["backup"]["duration_s"] == 9.5
    assert pg["next_runs"] == {"backup": "2026-11-24T03:00:00+00:00"}
    assert document["next_runs"] == {"cron": "2026-11-24T00:01:00+00:00"}


def test_metrics_parse_and_carry_the_backup_time() -> None:
    state = protected_state()
    text = generate_latest(registry(state, lambda _server: LIMITS)).decode()

    families = {f.name: f for f in text_string_to_metric_families(text)}
    ready = {s.labels["server"]: s.value for s in families["barman_supervisor_ready"].samples}
    newest = state.server("pg").backups[0].end_time
    (backup_time,) = [
        s.value
        for s in families["barman_supervisor_last_backup_timestamp_seconds"].samples
        if s.labels["server"] == "pg"
    ]
    assert ready == {"pg": 1.0, "reports": 1.0}
    assert backup_time == newest
    runs = families["barman_supervisor_job_runs"].samples
    assert any(s.labels == {"server": "pg", "job": "backup", "result": "success"} for s in runs)


@pytest.fixture
def served() -> Iterator[tuple[str, State]]:
    state = protected_state()
    server = HttpServer("127.0.0.1", 0, probes(state))
    server.start()
    yield f"http://127.0.0.1:{server.port}", state
    server.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_http_routes(served: tuple[str, State]) -> None:
    base, state = served
    assert _get(f"{base}/healthz")[0] == 200
    assert _get(f"{base}/readyz")[0] == 200
    assert _get(f"{base}/nope")[0] == 404
    code, text = _get(f"{base}/metrics")
    assert code == 200 and "barman_supervisor_up 1.0" in text

    state.postgres_unreachable("pg", "connection refused")
    code, text = _get(f"{base}/readyz")
    assert code == 503 and json.loads(text)["servers"]["pg"][0]["condition"] == "postgres"


def test_the_page_at_root_is_html_from_the_status_document(served: tuple[str, State]) -> None:
    base, state = served
    state.postgres_unreachable("pg", "connection refused")

    with urllib.request.urlopen(f"{base}/", timeout=5) as response:
        headers, text = response.headers, response.read().decode()

    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["Cache-Control"] == "no-store"
    assert "PostgreSQL unreachable: connection refused" in text
    assert _get(f"{base}/?refresh=1")[1].startswith("<!doctype html>")


def test_every_route_is_answered_in_one_place() -> None:
    """``Probes.answer`` decides every answer (a login will be asked there, issue 25)."""
    answers = {path: probes(protected_state()).answer(path) for path in ("/", "/status", "/x")}

    assert answers["/"].content_type.startswith("text/html")
    assert json.loads(answers["/status"].body)["servers"]["pg"]["ready"] is True
    assert answers["/x"].code == 404


def test_no_response_carries_a_secret(served: tuple[str, State]) -> None:
    base, state = served
    MASKER.register([SECRET])
    state.postgres_unreachable("pg", f"password authentication failed, password={SECRET}")
    try:
        for path in ("/", "/healthz", "/readyz", "/status", "/metrics"):
            assert SECRET not in _get(f"{base}{path}")[1]
    finally:
        MASKER.register([])


def test_a_failed_bind_names_the_variable_that_is_wrong() -> None:
    busy = OSError(errno.EADDRINUSE, "Address already in use")
    absent = OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    assert bind_problem("127.0.0.1", 9798, busy).startswith("HTTP_PORT: ")
    assert bind_problem("10.9.9.9", 9798, absent).startswith("HTTP_BIND: ")
    assert bind_problem("nohost", 9798, socket.gaierror(-2, "Name unknown")).startswith("HTTP_BIND")


def test_idle_connections_hold_no_worker_and_are_closed_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clients that never send a request do not stand between a probe and its answer, and are
    closed once the whole-request deadline passes (the threaded server before this one gave
    each of them a handler thread)."""
    monkeypatch.setattr(server_module, "REQUEST_DEADLINE", 0.5)
    server = HttpServer("127.0.0.1", 0, probes(protected_state()))
    server.start()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(64)]
    try:
        code, _ = _get(f"http://127.0.0.1:{server.port}/healthz")
        assert code == 200
        for sock in idle:
            sock.settimeout(10)
            assert sock.recv(1) == b""  # closed by the server, not by us
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_offsite_shows_in_status_and_metrics_only_for_a_server_with_a_store() -> None:
    state = protected_state()
    now = time.time()
    state.record_offsite(
        "pg",
        {
            "url": "s3://bucket/prefix",
            "store_backups": ["20261123T030000"],
            "backups_owed": [],
            "newest_copied_backup": "20261123T030000",
            "newest_copied_backup_end": now - 60,
            "wal_owed": 3,
            "oldest_owed_wal_at": now - 42,
            "bytes_copied": 4096,
            "failures": 2,
            "last_error": None,
            "last_ok_at": now,
        },
    )
    _, document = probes(state).status()
    offsite = document["servers"]["pg"]["offsite"]
    assert offsite["url"] == "s3://bucket/prefix"
    assert offsite["backups"] == ["20261123T030000"]
    assert offsite["wal_files_owed"] == 3 and 40 <= offsite["wal_lag_s"] <= 60
    assert document["servers"]["reports"]["offsite"] is None

    text = generate_latest(registry(state, lambda _server: LIMITS)).decode()
    samples = {
        (s.name, s.labels.get("server")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("barman_supervisor_offsite_wal_files_owed", "pg")] == 3
    assert samples[("barman_supervisor_offsite_copied_bytes_total", "pg")] == 4096
    assert samples[("barman_supervisor_offsite_failures_total", "pg")] == 2
    assert samples[("barman_supervisor_offsite_last_copy_success", "pg")] == 1
    assert ("barman_supervisor_offsite_wal_files_owed", "reports") not in samples


def test_status_and_metrics_show_the_chain_of_an_incremental_backup() -> None:
    state = protected_state()
    now = time.time()
    state.record_backups(
        "pg",
        [
            Backup("I2", "DONE", now - 10, 70, begin_time=now - 20, parent_id="I1"),
            Backup("I1", "DONE", now - 100, 50, begin_time=now - 110, parent_id="F"),
            Backup("F", "DONE", now - 1000, 1000, begin_time=now - 1100),
        ],
    )

    _, document = probes(state).status()
    newest = document["servers"]["pg"]["backups"]["newest"]
    text = generate_latest(registry(state, lambda _server: LIMITS)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}

    assert newest["id"] == "I2"
    assert (newest["type"], newest["parent"]) == ("incremental", "I1")
    assert (newest["chain_length"], newest["chain_size_bytes"]) == (3, 1120)
    assert newest["chain_broken"] is None

    def pg_value(family: str) -> float:
        (value,) = [
            s.value
            for s in families[f"barman_supervisor_{family}"].samples
            if s.labels["server"] == "pg"
        ]
        return value

    assert pg_value("last_backup_incremental") == 1
    assert pg_value("last_backup_chain_length") == 3
    assert pg_value("last_backup_chain_size_bytes") == 1120


@pytest.mark.parametrize(
    ("ok", "skipped", "expected"), [(True, False, 1), (False, False, 0), (True, True, 0)]
)
def test_a_compressed_backup_left_unverified_is_not_counted_verified(
    ok: bool, skipped: bool, expected: int
) -> None:
    state = protected_state()
    reason = "not verified: needs pg_verifybackup 18" if skipped else ""
    state.record_verification("pg", Verification(ok, reason, 0.1, "B", time.time(), skipped))
    text = generate_latest(registry(state, lambda _server: LIMITS)).decode()
    (sample,) = [
        s
        for f in text_string_to_metric_families(text)
        if f.name == "barman_supervisor_last_backup_verified"
        for s in f.samples
        if s.labels["server"] == "pg"
    ]
    assert sample.value == expected
    _, document = probes(state).status()
    assert document["servers"]["pg"]["backups"]["last_verification"]["skipped"] is skipped


def test_without_a_login_the_probes_tell_their_verdict_only() -> None:
    state = protected_state()
    state.postgres_unreachable("pg", "connection refused by db1.internal")
    answers = probes(state)

    healthz, readyz = answers.answer("/healthz", False), answers.answer("/readyz", False)

    assert (healthz.code, json.loads(healthz.body)) == (200, {"alive": True})
    assert (readyz.code, json.loads(readyz.body)) == (503, {"ready": False})
    for path in ("/", "/status", "/metrics", "/nope"):
        refused = answers.answer(path, False)
        assert refused.code == 401 and b"db1" not in refused.body
        assert refused.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_an_offsite_error_is_masked_in_status() -> None:
    state = protected_state()
    state.record_offsite(
        "pg",
        {
            "url": "s3://bucket/prefix",
            "last_error": "PUT https://key:S3cr3tValue@minio:9000/x failed; password=hunter2xY "
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG AKIAIOSFODNN7EXAMPLE",
        },
    )

    _, document = probes(state).status()
    error = document["servers"]["pg"]["offsite"]["last_error"]

    for secret in ("S3cr3tValue", "hunter2xY", "wJalrXUtnFEMI", "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in error
    assert error.startswith("PUT https://key:***@minio:9000/x failed")


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[int, WebConfig]]:
    web = write_web_config(tmp_path)
    tls, users = read_web_config(web.path)
    server = HttpServer(
        "127.0.0.1",
        0,
        probes(protected_state()),
        WebAccess(tls=tls, users=users, allowed_hosts=("barman.example",)),
    )
    server.start()
    yield server.port, web
    server.stop()


def test_with_tls_and_users_status_and_metrics_need_a_login(
    secured: tuple[int, WebConfig],
) -> None:
    port, web = secured
    context = web.client_context()

    for path in ("/status", "/metrics", "/"):
        assert https_get(port, path, context=context)[0] == 401
        assert https_get(port, path, context=context, headers={"Authorization": basic()})[0] == 200
    code, _, body = https_get(port, "/healthz", context=context)
    assert (code, json.loads(body)) == (200, {"alive": True})
    foreign = {"Host": "evil.example", "Authorization": basic()}
    assert https_get(port, "/status", context=context, headers=foreign)[0] == 421


def test_plain_http_to_the_tls_port_gets_no_answer(secured: tuple[int, WebConfig]) -> None:
    port, _ = secured
    with pytest.raises(OSError):
        https_get(port, "/healthz")


def test_the_healthcheck_command_speaks_https_to_its_own_daemon(
    secured: tuple[int, WebConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    port, web = secured
    environ = {
        "HTTP_BIND": "0.0.0.0",  # noqa: S104 - the probe maps it to the loopback
        "HTTP_PORT": str(port),
        "HTTP_WEB_CONFIG_FILE": str(web.path),
    }

    assert cli.main(["healthcheck", "--live"], environ) == 0
    assert cli.main(["healthcheck"], environ) == 0
    assert capsys.readouterr().out.splitlines() == ["alive", "ready"]
