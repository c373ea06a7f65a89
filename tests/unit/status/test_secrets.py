"""Secrets are kept out at the source: whatever the password, every answer and event keeps its
bytes and stays valid JSON; only foreign text is masked, and children inherit no secret.

Each password below broke the old "replace the value everywhere" masking: ``barman`` renamed the
event ``barman_log``, ``postgres`` a /status key, ``2`` every timestamp, ``true`` made /healthz
invalid JSON (and ``healthcheck --live`` report a live daemon dead).
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from barman_supervisor.barman.commands import Check
from barman_supervisor.barman.logtail import LogTail
from barman_supervisor.barman.records import Backup
from barman_supervisor.config import load_settings
from barman_supervisor.config.children import TAR_OPTIONS
from barman_supervisor.log import MASKER, configure, get_logger
from barman_supervisor.postgres.connection import SlotState
from barman_supervisor.process.pid1 import Pid1
from barman_supervisor.process.runner import Runner
from barman_supervisor.status import metrics
from barman_supervisor.status.health import Limits
from barman_supervisor.status.http import Probes, encode
from barman_supervisor.status.state import BackupSummary, JobRun, State

HOSTILE = (
    "true", "false", "null", "2", "0", "1", "3", "postgres", "barman", "pg", '"', "\\", ":", "{",
    "}", ",", "-", "T", "Z", "e", "ok", "ready", "alive", "DONE", "status", "backup", "streaming",
    "wal", "info", "event", "2026", "*", "***", "a b", "password", "12345678", "barman_log",
)  # fmt: skip
NOW = 1795478625.0
LIMITS = Limits(
    postgres_max_silence=35, backup_max_age=36 * 3600, wal_max_lag_bytes=256 << 20, wal_max_age=None
)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")


def environment(tmp_path: Path, password: str) -> dict[str, str]:
    quoted = urllib.parse.quote(password, safe="")
    return {
        "BARMAN_CONFIG_FILE": str(tmp_path / "barman.conf"),
        "BARMAN_CONFIG_DIR": str(tmp_path / "barman.d"),
        "BARMAN_HOME": str(tmp_path / "home"),
        "BARMAN_USER": "barman",
        "BARMAN_SERVERS": "pg,postgres",
        "PG_PASSWORD": password,
        "PG_STREAMING_PASSWORD": password,
        "ALERT_WEBHOOK_URL": f"https://ops:{quoted}@hooks.example/alert",
        "DEADMAN_URL": f"https://hc.example/ping/{quoted}",
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "UNRELATED_TOKEN": password,
    }


def populated_state() -> State:
    """Everything /status shows, with foreign text that carries the password in a pattern."""
    moment = [NOW]
    state = State(["pg", "postgres"], clock=lambda: moment[0])
    state.started_at, state.heartbeat_at = NOW - 3600, NOW - 1
    for name in ("pg", "postgres"):
        state.set_phase(name, "running")
        moment[0] = NOW - 5
        state.postgres_seen(
            name, SlotState(exists=True, active=True, active_pid=4242, lag_bytes=2048)
        )
        state.record_probe(
            name,
            receive_wal_running=True,
            wal_received_at=NOW - 2,
            wal_archived_at=NOW - 62,
            disk_free_bytes=10**12,
        )
        moment[0] = NOW - 120
        state.record_checks(
            name,
            [
                Check("postgresql", True, ""),
                Check("backup_maximum_age", False, "interval provided: 1 day, latest is 2 days"),
            ],
        )
        state.record_backups(
            name,
            [
                Backup("20261123T030002", "DONE", NOW - 7200, 22_222_222, begin_time=NOW - 7300),
                Backup("20261122T030002", "FAILED", None, None, begin_time=NOW - 90000),
            ],
        )
        state.record_backup(
            name,
            BackupSummary(
                ok=False,
                trigger="schedule",
                backup_id=None,
                status=None,
                size_bytes=None,
                duration_s=1.0,
                reason="connection failed: password=abc host=db",
            ),
        )
        state.record_run(name, JobRun("backup", NOW - 7300, 100.2, True))
        state.record_run(name, JobRun("check", NOW - 120, 0.2, False, "barman: true 2 pg", 1))
    state.record_run(None, JobRun("cron", NOW - 30, 0.25, True))
    return state


def answers(tmp_path: Path, password: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Every HTTP answer, as sent, for a daemon configured with this password."""
    settings_ = load_settings(environment(tmp_path, password))
    MASKER.register(secret.reveal() for secret in settings_.secrets)
    monkeypatch.setattr(time, "time", lambda: NOW)
    state = populated_state()
    probes = Probes(
        state,
        lambda _server: LIMITS,
        lambda: True,
        lambda: {"backup:pg": "2026-11-24T03:00:00+00:00", "cron": "2026-11-24T00:01:00+00:00"},
        metrics.registry(state, lambda _server: LIMITS),
        clock=lambda: NOW,
    )
    result = {path: encode(handler()[1]) for path, handler in probes.routes().items()}
    result["/metrics"] = generate_latest(probes.registry)
    monkeypatch.undo()
    return result


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, threading.excepthook
    stream = io.StringIO()
    configure(level="DEBUG", fmt="json", stream=stream)
    yield stream
    threading.excepthook = hook
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    MASKER.register([])


def events(tmp_path: Path, password: str, stream: io.StringIO) -> list[dict[str, Any]]:
    """The daemon's own events and re-emitted foreign lines, parsed; timestamps checked and
    dropped (they are the only part that differs between two runs)."""
    settings_ = load_settings(environment(tmp_path, password))
    MASKER.register(secret.reveal() for secret in settings_.secrets)
    stream.seek(0)
    stream.truncate()
    tail = LogTail(tmp_path / "absent.log", threading.Event())
    tail.emit("2026-11-23 23:32:51,861 [3263] barman.server INFO: Starting receive-wal for pg")
    tail.emit("2026-11-23 23:32:52,001 [3264] barman.cli ERROR: connect password=x failed")
    runner = Runner(Pid1(), settings_.child_env)
    runner.log_line("Starting streaming archiver for pg", command="barman -f json cron")
    log = get_logger("barman_supervisor.daemon.core")
    log.info(
        "daemon_starting", version="0.1.0", servers=["pg", "postgres"], pid1=True, subreaper=True
    )
    log.info("postgres_reached", server="pg", host="localhost", port=5432, version=150018)
    log.info("backup_finished", server="postgres", ok=True, backup_id="20261123T030002")
    logging.getLogger("apscheduler.executors").warning("Run time of job was missed by 0:00:02")
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    for event in parsed:
        assert TIMESTAMP.match(event.pop("timestamp")), event
    return parsed


@pytest.mark.parametrize("password", HOSTILE)
def test_answers_and_events_do_not_depend_on_the_password(
    password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_log: io.StringIO
) -> None:
    reference = secrets.token_urlsafe(24)

    hostile, random = (answers(tmp_path, p, monkeypatch) for p in (password, reference))
    assert hostile == random
    for path in ("/healthz", "/readyz", "/status"):
        json.loads(hostile[path])
    assert json.loads(hostile["/healthz"])["alive"] is True
    assert events(tmp_path, password, json_log) == events(tmp_path, reference, json_log)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    password=st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"),
        min_size=1,
        max_size=40,
    )
)
def test_any_password_keeps_every_answer_valid_json_with_the_same_keys(
    password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Foreign text may lose a strong secret it contains, so only the shape is compared here."""
    got, reference = (
        answers(tmp_path, p, monkeypatch) for p in (password, secrets.token_urlsafe(24))
    )
    for path in ("/healthz", "/readyz", "/status"):
        assert keys(json.loads(got[path])) == keys(json.loads(reference[path]))
    assert metric_names(got["/metrics"]) == metric_names(reference["/metrics"])
    MASKER.register([])


def keys(document: Any) -> Any:
    if isinstance(document, dict):
        return {key: keys(value) for key, value in document.items()}
    if isinstance(document, list):
        return [keys(item) for item in document]
    return type(document).__name__


def metric_names(text: bytes) -> list[str]:
    return [line.split("{")[0].split(" ")[0] for line in text.decode().splitlines()]


def test_a_strong_secret_in_foreign_text_is_masked_and_patterns_always(
    tmp_path: Path, json_log: io.StringIO
) -> None:
    strong = "Xk3v9-qLm2"
    settings_ = load_settings(environment(tmp_path, strong))
    MASKER.register(secret.reveal() for secret in settings_.secrets)

    LogTail(tmp_path / "absent.log", threading.Event()).emit(f"retrying with {strong}")
    Runner(Pid1(), settings_.child_env).log_line(f"PGPASSWORD={strong[:4]} psql")
    get_logger().error("alert_delivery_failed", error=f"POST https://ops:{strong}@h/x failed")

    text = json_log.getvalue()
    assert strong not in text and strong[:4] + " " not in text
    assert text.count("***") == 3


def test_children_inherit_only_the_allow_list(tmp_path: Path) -> None:
    settings_ = load_settings(
        {
            **environment(tmp_path, "barman"),
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "PGSSLMODE": "require",
            "PGPASSWORD": "barman",
            "AWS_SECRET_ACCESS_KEY": "k",
            "HOSTNAME": "x",
        }
    )

    assert dict(settings_.child_env) == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "PGSSLMODE": "require",
        "PGPASSFILE": str(tmp_path / "home" / ".pgpass"),
        "TAR_OPTIONS": TAR_OPTIONS,
    }
