"""The probes, metrics and alerts tell the truth about real PostgreSQL and Barman.

One daemon serves the module, in order: green after start, a killed receive-wal, a PostgreSQL
outage (with exactly one failure and one recovery alert on a webhook receiver on 127.0.0.1),
metrics against Barman's own list, and no password anywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import Daemon, Probe, running_daemon
from tests.support.poll import wait_until
from tests.support.postgres import BARMAN_PASSWORD, STREAMING_PASSWORD, Cluster, cluster
from tests.support.processes import processes_using
from tests.support.webhook import WebhookReceiver as Webhook
from tests.support.webhook import webhook_receiver

pytestmark = pytest.mark.integration
# Seconds without a new alert after which a test takes the alert stream as settled.
ALERT_QUIET_S = 3.0
# /healthz asked once a second this many times while PostgreSQL is down.
HEALTHZ_SAMPLES = 5


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    with cluster() as server:
        server.init()
        server.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        yield server


@pytest.fixture(scope="module")
def daemon(
    pg: Cluster, webhook: Webhook, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Daemon, Probe]]:
    with running_daemon(
        tmp_path_factory.mktemp("health"),
        pg,
        until=None,
        HEALTH_INTERVAL="1",
        BARMAN_CRON_INTERVAL="10",
        ALERT_WEBHOOK_URL=webhook.url,
        ALERT_STREAMING_AFTER="0",
    ) as supervisor:
        yield supervisor, supervisor.probe


def test_all_endpoints_green_after_start(daemon: tuple[Daemon, Probe]) -> None:
    supervisor, probe = daemon
    wait_until(lambda: probe.get("/readyz")[0] == 200, timeout=180, what="/readyz 200")
    assert probe.get("/healthz")[0] == 200
    code, status = probe.json("/status")
    assert code == 200
    pg_status = status["servers"]["pg"]
    assert pg_status["ready"] and pg_status["backups"]["done"] >= 1
    assert pg_status["streaming"]["receive_wal_running"] is True
    assert pg_status["checks"]["ok"] is True
    # minimum_redundancy (1) is rendered; the check beside the first backup that saw none ran
    # again after it, so no stale failure shows
    floor = pg_status["checks"]["results"]["minimum_redundancy_requirements"]
    assert floor["ok"] and floor["hint"].endswith("expected at least 1"), floor
    assert {"backup", "check", "monitor"} <= set(pg_status["next_runs"])
    assert status["next_runs"]["cron"]
    assert (
        subprocess.run(
            [str(Path(supervisor.env["BARMAN_BIN"]).parent / "barman-supervisor"), "healthcheck"],
            env={**os.environ, "HTTP_PORT": probe.base.rsplit(":", 1)[1]},
            capture_output=True,
            timeout=30,
            check=False,
        ).returncode
        == 0
    )


def test_a_clean_start_sends_no_alert(daemon: tuple[Daemon, Probe], webhook: Webhook) -> None:
    """Start-up's problems are not alerts, and nothing stale may look like one once it ended
    (a process table read before receive-wal started once said "not running" right then)."""
    _supervisor, probe = daemon
    assert settled_alerts(webhook, probe) == 0, webhook.received


def test_metrics_parse_and_match_barman(daemon: tuple[Daemon, Probe]) -> None:
    supervisor, probe = daemon
    code, text = probe.get("/metrics")
    assert code == 200
    families = {family.name: family for family in text_string_to_metric_families(text)}
    (timestamp,) = families["barman_supervisor_last_backup_timestamp_seconds"].samples
    newest = max(
        float(b["end_time_timestamp"]) for b in supervisor.backups() if b["status"] == "DONE"
    )
    assert timestamp.value == newest
    assert families["barman_supervisor_receive_wal_running"].samples[0].value == 1
    checks = families["barman_supervisor_check_ok"].samples
    assert checks and all(sample.value == 1 for sample in checks)


def _outage_alerts(webhook: Webhook, before: int) -> list[str]:
    return [event["state"] for event in webhook.received[before:]]


def settled_alerts(webhook: Webhook, probe: Probe) -> int:
    """How many alerts were posted, once the daemon is green and no alert came for
    ALERT_QUIET_S with the last one a recovery. A blip the daemon saw before (with
    ALERT_STREAMING_AFTER=0 any moment without streaming is an alert) then closes before a
    test counts its own outage's alerts, instead of inside them."""
    seen = {"count": -1, "at": 0.0}

    def quiet() -> bool:
        received, now = webhook.received, time.monotonic()
        if len(received) != seen["count"]:
            seen.update(count=len(received), at=now)
            return False
        closed = not received or received[-1]["state"] == "recovered"
        return closed and now - seen["at"] >= ALERT_QUIET_S and probe.get("/readyz")[0] == 200

    wait_until(quiet, timeout=60, what="the alerts to settle")
    return int(seen["count"])


def test_killed_receive_wal_turns_unready_then_green(
    daemon: tuple[Daemon, Probe], webhook: Webhook
) -> None:
    supervisor, probe = daemon
    before = settled_alerts(webhook, probe)
    receivers = [
        p for p in processes_using(str(supervisor.workdir)) if "receive-wal" in p[3].split()
    ]
    assert receivers, "no receive-wal to kill"
    os.kill(receivers[0][0], signal.SIGTERM)
    wait_until(lambda: "streaming" in probe.problems(), timeout=30, what="streaming problem")
    assert probe.get("/healthz")[0] == 200
    wait_until(lambda: probe.get("/readyz")[0] == 200, timeout=90, what="green again")
    wait_until(lambda: len(webhook.received) >= before + 2, timeout=30, what="two alerts")
    assert _outage_alerts(webhook, before) == ["failing", "recovered"], webhook.received[before:]


def test_postgres_outage_is_one_alert_and_one_recovery(
    daemon: tuple[Daemon, Probe], pg: Cluster, webhook: Webhook
) -> None:
    _supervisor, probe = daemon
    before = settled_alerts(webhook, probe)
    pg.stop()
    try:
        problems = wait_until(
            lambda: {"postgres", "streaming"} & set(probe.problems()),
            timeout=60,
            what="/readyz to name PostgreSQL or streaming",
        )
        assert problems
        for _ in range(HEALTHZ_SAMPLES):
            assert probe.get("/healthz")[0] == 200, "liveness must not depend on PostgreSQL"
            time.sleep(1)  # spreads the samples over the outage; not a wait
    finally:
        pg.start()
    wait_until(lambda: probe.get("/readyz")[0] == 200, timeout=120, what="green after restart")
    wait_until(lambda: len(webhook.received) >= before + 2, timeout=30, what="two alerts")
    settled_alerts(webhook, probe)  # anything more would be a second alert for the same outage
    assert _outage_alerts(webhook, before) == ["failing", "recovered"], webhook.received[before:]
    failing = webhook.received[before]
    assert failing["server"] == "pg"
    assert {p["condition"] for p in failing["problems"]} & {"postgres", "streaming"}


@pytest.mark.parametrize(
    ("role", "password", "login"),
    [
        ("barman", BARMAN_PASSWORD, "new login"),
        ("streaming_barman", STREAMING_PASSWORD, "new replication login"),
    ],
)
def test_a_changed_password_is_named_at_once_and_green_again_once_restored(
    daemon: tuple[Daemon, Probe],
    pg: Cluster,
    webhook: Webhook,
    role: str,
    password: str,
    login: str,
) -> None:
    """The kept connection stays logged in when a DBA changes the password: the probe's new
    login (every HEALTH_INTERVAL, 1 s here) is what names it, in /readyz and in one alert."""
    _supervisor, probe = daemon
    before = settled_alerts(webhook, probe)
    refused = f'{login} refused: password authentication failed for user "{role}"'

    def named() -> str | None:
        code, document = probe.json("/readyz")
        reasons = (
            [p["reason"] for p in document["servers"]["pg"] if p["condition"] == "postgres_login"]
            if code == 503
            else []
        )
        return reasons[0] if reasons else None

    changed_at = time.monotonic()
    pg.sql(f"ALTER ROLE {role} PASSWORD 'Changed-by-a-DBA-7'")
    try:
        reason = wait_until(named, timeout=30, what=f"/readyz to name the refused {login}")
        red_s = time.monotonic() - changed_at
    finally:
        restored_at = time.monotonic()
        pg.sql(f"ALTER ROLE {role} PASSWORD '{password}'")
    wait_until(lambda: probe.get("/readyz")[0] == 200, timeout=60, what="green once restored")
    green_s = time.monotonic() - restored_at
    print(f"{role}: red {red_s:.1f} s after ALTER ROLE, green {green_s:.1f} s after the fix")
    assert reason.startswith(refused), reason
    wait_until(lambda: len(webhook.received) >= before + 2, timeout=30, what="two alerts")
    settled_alerts(webhook, probe)
    assert _outage_alerts(webhook, before) == ["failing", "recovered"], webhook.received[before:]
    assert any(
        p["condition"] == "postgres_login" and p["reason"].startswith(refused)
        for p in webhook.received[before]["problems"]
    ), webhook.received[before]


def test_no_response_and_no_alert_contains_a_password(
    daemon: tuple[Daemon, Probe], webhook: Webhook
) -> None:
    supervisor, probe = daemon
    texts = [probe.get(path)[1] for path in ("/healthz", "/readyz", "/status", "/metrics")]
    texts += [json.dumps(event) for event in webhook.received]
    texts += [supervisor.stdout.read_text(), supervisor.stderr.read_text()]
    for secret in (BARMAN_PASSWORD, STREAMING_PASSWORD):
        assert not [text for text in texts if secret in text]


def test_backup_older_than_max_age_is_named(pg: Cluster, tmp_path: Path) -> None:
    with running_daemon(
        tmp_path,
        pg,
        HEALTH_INTERVAL="1",
        BARMAN_SLOT_NAME="aged",
        BACKUP_MAX_AGE="5",
    ) as supervisor:
        probe = supervisor.probe

        def backup_named() -> tuple[int, Any] | None:
            answer = probe.json("/readyz")
            named = answer[0] == 503 and any(
                p["condition"] == "backup" for p in answer[1]["servers"]["pg"]
            )
            return answer if named else None

        _code, document = wait_until(backup_named, timeout=60, what="backup age problem")
        (problem,) = [p for p in document["servers"]["pg"] if p["condition"] == "backup"]
        assert "old (max 5 s)" in problem["reason"]


def test_status_shows_what_changed_beside_the_daemon_within_seconds(
    daemon: tuple[Daemon, Probe],
) -> None:
    """A backup taken by hand (as Barman's users do) and the archived WAL show without
    waiting for the next barman check."""
    supervisor, probe = daemon
    wait_until(lambda: probe.get("/readyz")[0] == 200, timeout=180, what="/readyz 200")

    def pg_status() -> Any:
        return probe.json("/status")[1]["servers"]["pg"]

    assert pg_status()["streaming"]["wal_last_archived_at"] is not None
    before = pg_status()["backups"]["count"]
    taken = supervisor.barman_command(
        "backup", "--immediate-checkpoint", "--wait", "--wait-timeout", "120", "pg"
    )
    assert taken.returncode == 0, taken.stderr
    wait_until(
        lambda: pg_status()["backups"]["count"] > before, timeout=15, what="the manual backup"
    )
