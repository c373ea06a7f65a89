"""The WAL Barman's slot holds on the primary, against real PostgreSQL and Barman.

Barman stalls while the primary writes: its ``pg_receivewal`` is stopped with SIGSTOP (running,
connected, receiving nothing, so the daemon has nothing to heal). The slot's retained WAL shows
in /metrics and /status and alerts past WAL_MAX_LAG, with the room left before
``max_slot_wal_keep_size``. Then Barman is down (no daemon) while the primary writes past that
and checkpoints: the slot is lost, and the next daemon says so (``slot``) and its WAL-gap
detection names the WAL the archive lacks. (A checkpoint cannot invalidate the slot while the
stopped receiver holds it: the walsender it terminates blocks for ever sending its goodbye.)
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import READY, Daemon, Probe, running_daemon
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.processes import processes_using
from tests.support.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.integration
MIB = 1048576
SEGMENT = 16 * MIB
# The primary's bound on the slot (what docker/postgres/postgresql.conf sets, scaled down), and
# the daemon's alert threshold well under it.
KEEP = 96 * MIB
MAX_LAG = 32 * MIB
# WAL segments written while Barman stalls: past WAL_MAX_LAG.
PAST_LAG = 3
WAIT_S = 120


def _metrics(probe: Probe) -> dict[tuple[str, str], float]:
    _code, text = probe.get("/metrics")
    return {
        (sample.name, sample.labels.get("wal_status", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("server") == "pg"
    }


def _slot(probe: Probe) -> dict[str, Any]:
    _code, status = probe.json("/status")
    return dict(status["servers"]["pg"]["streaming"]["slot"] or {}) if status else {}


def _problems(probe: Probe) -> dict[str, str]:
    _code, document = probe.json("/readyz")
    problems = document["servers"]["pg"] if document else []
    return {p["condition"]: p["reason"] for p in problems}


def _alerted(webhook: WebhookReceiver, condition: str) -> bool:
    return any(
        problem["condition"] == condition
        for body in webhook.received
        for problem in body.get("problems", [])
    )


def _switch_segments(pg: Cluster, count: int) -> None:
    """``count`` new WAL segments on the primary: a row, then a switch, each time."""
    for _ in range(count):
        pg.sql("INSERT INTO t VALUES (1); SELECT pg_switch_wal()")


@pytest.fixture
def primary() -> Iterator[Cluster]:
    with cluster(max_slot_wal_keep_size=f"{KEEP // MIB}MB") as pg:
        pg.init()
        pg.sql("CREATE TABLE t (n int)")
        yield pg


@contextmanager
def stopped_receiver(workdir: Path) -> Iterator[None]:
    """The daemon's pg_receivewal stopped (SIGSTOP) and continued again on the way out."""
    receivers = [p[0] for p in processes_using(str(workdir)) if "pg_receivewal" in p[3]]
    assert len(receivers) == 1, receivers
    os.kill(receivers[0], signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(receivers[0], signal.SIGCONT)


def test_a_stalled_barman_is_seen_on_the_primary_then_its_lost_slot_is_a_gap(
    primary: Cluster, tmp_path: Path
) -> None:
    pg = primary
    env = {
        "HEALTH_INTERVAL": "1",
        "BARMAN_CRON_INTERVAL": "3600",
        "WAL_MAX_LAG": f"{MAX_LAG // MIB}M",
    }
    with webhook_receiver() as webhook:
        with (
            running_daemon(
                tmp_path, pg, until=READY, ALERT_WEBHOOK_URL=webhook.url, **env
            ) as daemon,
            stopped_receiver(tmp_path),
        ):
            _retained_wal_alerts(pg, daemon.probe, webhook)

        # Barman down for long (no daemon): the primary writes past max_slot_wal_keep_size and
        # checkpoints, which removes WAL the slot held: the slot is lost.
        _switch_segments(pg, KEEP // SEGMENT + 1)
        pg.sql("CHECKPOINT")
        assert pg.sql("SELECT wal_status FROM pg_replication_slots") == "lost"
        with running_daemon(
            tmp_path, pg, until=None, output="lost", ALERT_WEBHOOK_URL=webhook.url, **env
        ) as daemon:
            _lost_slot_is_a_gap(daemon, webhook)


def _retained_wal_alerts(pg: Cluster, probe: Probe, webhook: WebhookReceiver) -> None:
    """Past WAL_MAX_LAG: reported in /metrics and /status, with the room left, red and
    alerted."""
    _switch_segments(pg, PAST_LAG)
    retained = wait_until(
        lambda: (
            (lag := _metrics(probe).get(("barman_supervisor_wal_lag_bytes", ""), 0)) > MAX_LAG
            and lag
        ),
        WAIT_S,
        what="the retained WAL past WAL_MAX_LAG in /metrics",
    )
    metrics, slot = _metrics(probe), _slot(probe)
    print(f"retained {retained / MIB:.0f} MiB; status slot {slot}")
    assert slot["lag_bytes"] > MAX_LAG and slot["wal_status"] in ("reserved", "extended")
    safe = metrics[("barman_supervisor_slot_safe_wal_size_bytes", "")]
    print(f"safe_wal_size {safe / MIB:.0f} MiB")
    assert 0 < safe <= KEEP - MAX_LAG, safe
    assert metrics[("barman_supervisor_slot_wal_status", slot["wal_status"])] == 1
    wait_until(lambda: _alerted(webhook, "wal"), WAIT_S, what="the wal alert")
    assert "not yet received" in _problems(probe)["wal"]


def _lost_slot_is_a_gap(daemon: Daemon, webhook: WebhookReceiver) -> None:
    probe = daemon.probe
    problems = wait_until(
        lambda: (found := _problems(probe)).keys() >= {"slot", "wal_gap"} and found,
        WAIT_S,
        what="slot and wal_gap in /readyz",
    )
    print(f"lost: {problems}")
    gap = daemon.find("wal_gap_detected")[0]
    print(f"gap: {gap['first_missing']} to {gap['last_missing']}")
    assert _slot(probe)["wal_status"] == "lost"
    metrics = _metrics(probe)
    assert metrics[("barman_supervisor_slot_wal_status", "lost")] == 1
    assert ("barman_supervisor_slot_safe_wal_size_bytes", "") not in metrics
    wait_until(lambda: _alerted(webhook, "slot"), WAIT_S, what="the slot alert")
