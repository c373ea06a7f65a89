"""The shipped alert rules in a real Prometheus against a daemon protecting a real PostgreSQL.

Debian's Prometheus loads ``deploy/prometheus/prometheus.yml`` and its rules unchanged (only the
target and the intervals are a test's) and scrapes the daemon every second. The daemon's backup
limit is made short (``BACKUP_MAX_AGE``) and no schedule takes a backup in time, as when a
scheduled backup is missed: ``BarmanBackupTooOld`` fires once the newest backup outlives the
limit the daemon exports, and resolves once a backup is taken. Nothing fires while all is well.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import yaml

from tests.support.daemon import Daemon, running_daemon
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster
from tests.support.prometheus import DEPLOY, Prometheus, running_prometheus, scrape_config

pytestmark = pytest.mark.integration
# The daemon's backup limit: past start-up (its first backup) and a first healthy look, short
# enough that the test waits for it, long enough that a fresh backup stays under it a while.
BACKUP_MAX_AGE_S = 60
# Seconds for Prometheus to see what the daemon serves: a few scrapes and rule evaluations.
SCRAPE_TIMEOUT_S = 30
# Seconds `barman backup --wait` may take on an idle cluster.
BACKUP_TIMEOUT_S = 120
ALERT = "BarmanBackupTooOld"
MONTHS = 12
RULES = sorted(DEPLOY.glob("*.rules.yml"))
_METRIC = re.compile(r"\bbarman_supervisor_[a-z_]+\b")
_HELP = re.compile(r"^# HELP (\S+)", re.MULTILINE)


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    with cluster() as server:
        server.init()
        server.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        yield server


@pytest.fixture(scope="module")
def watched(
    pg: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Daemon, Prometheus]]:
    """A daemon through its start-up (first backup DONE) and a Prometheus scraping it."""
    with running_daemon(
        tmp_path_factory.mktemp("daemon"),
        pg,
        HEALTH_INTERVAL="1",
        BACKUP_MAX_AGE=str(BACKUP_MAX_AGE_S),
        BACKUP_SCHEDULE=_schedule_not_during_the_test(),
        # A backup's WAL is archived within a second, so `barman backup --wait` ends promptly.
        WAL_ARCHIVE_INTERVAL="1",
    ) as daemon:
        target = daemon.probe.base.removeprefix("http://")
        config = scrape_config(target)
        with running_prometheus(tmp_path_factory.mktemp("prometheus"), config) as prometheus:
            wait_until(prometheus.targets_up, SCRAPE_TIMEOUT_S, what="the daemon scraped")
            yield daemon, prometheus


def _schedule_not_during_the_test() -> str:
    """A backup schedule six months away: the daily default (03:00) would take a backup, and
    reset the age the test waits on, when the test runs at 03:00."""
    far_month = (datetime.now().month + 5) % MONTHS + 1
    return f"0 3 1 {far_month} *"


def _shipped_alerts() -> set[str]:
    return {
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }


def _newest_done_end(daemon: Daemon) -> float:
    return max(float(b["end_time_timestamp"]) for b in daemon.backups() if b["status"] == "DONE")


def _evaluated_since(prometheus: Prometheus, moment: float) -> bool:
    """Every rule group evaluated after ``moment`` (Unix time)."""
    groups = (prometheus.data("/api/v1/rules") or {}).get("groups", [])
    stamps = [group["lastEvaluation"] for group in groups]
    return bool(stamps) and all(_unix(stamp) > moment for stamp in stamps)


def _unix(stamp: str) -> float:
    """An RFC 3339 time as Prometheus writes it (UTC, up to nanoseconds) as Unix time."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    return seconds + float(f"0.{fraction or 0}")


# Served only by a sharded replica (SHARD_COUNT set); tests/unit/status/test_metrics.py and
# tests/integration/test_sharding.py cover them.
SHARDED_ONLY = {"barman_supervisor_shard_owner", "barman_supervisor_claim_held"}


def test_prometheus_loads_every_shipped_rule_and_the_daemon_serves_their_metrics(
    watched: tuple[Daemon, Prometheus],
) -> None:
    daemon, prometheus = watched
    assert prometheus.rule_names() == _shipped_alerts()
    _code, text = daemon.probe.get("/metrics")
    served = set(_HELP.findall(text))
    named = {name for path in RULES for name in _METRIC.findall(path.read_text())}
    assert named >= SHARDED_ONLY and not SHARDED_ONLY & served
    missing = named - served - SHARDED_ONLY
    assert named and not missing, f"rules name metrics not served: {missing}"


def test_backup_age_alert_fires_when_the_limit_passes_and_resolves_after_a_backup(
    watched: tuple[Daemon, Prometheus],
) -> None:
    """Nothing fires while the server is protected; then the backup outlives the daemon's limit
    as when a scheduled backup is missed, and a backup taken puts it right."""
    daemon, prometheus = watched
    _assert_nothing_fires(prometheus, daemon)
    crossed_at = _newest_done_end(daemon) + BACKUP_MAX_AGE_S
    (alert,) = wait_until(
        lambda: prometheus.firing(ALERT),
        BACKUP_MAX_AGE_S + SCRAPE_TIMEOUT_S,
        what=f"{ALERT} firing",
    )
    fired_after = time.time() - crossed_at
    assert alert["labels"] == {
        "alertname": ALERT,
        "job": "barman-supervisor",
        "instance": daemon.probe.base.removeprefix("http://"),
        "server": "pg",
        "severity": "critical",
    }
    assert float(alert["value"]) > BACKUP_MAX_AGE_S
    assert "longer than the daemon's limit of 1m 0s" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"] == f"docs/alerts.md#{ALERT.lower()}"

    taken = daemon.barman_command(
        "backup", "--immediate-checkpoint", "--wait", "--wait-timeout", "60", "pg",
        timeout=BACKUP_TIMEOUT_S,
    )  # fmt: skip
    assert taken.returncode == 0, taken.stderr
    done_at = time.time()
    wait_until(lambda: not prometheus.alerts(ALERT), SCRAPE_TIMEOUT_S, what=f"{ALERT} resolved")
    resolved_after = time.time() - done_at
    # The numbers for a person reading the run (-s): how soon Prometheus followed the daemon.
    print(
        f"{ALERT}: fired {fired_after:.1f} s after the limit passed, resolved "
        f"{resolved_after:.1f} s after the backup command returned"
    )


def _assert_nothing_fires(prometheus: Prometheus, daemon: Daemon) -> None:
    """Once Prometheus has seen the server ready and evaluated every rule after that, within
    the backup limit: no alert fires (a rule that fires on a healthy daemon would page for
    nothing)."""
    wait_until(
        lambda: prometheus.query('barman_supervisor_ready{server="pg"} == 1'),
        SCRAPE_TIMEOUT_S,
        what="pg ready in Prometheus",
    )
    seen_ready = time.time()
    wait_until(
        lambda: _evaluated_since(prometheus, seen_ready), SCRAPE_TIMEOUT_S, what="an evaluation"
    )
    assert time.time() - _newest_done_end(daemon) < BACKUP_MAX_AGE_S, "no look within the limit"
    firing = [alert for alert in prometheus.alerts() if alert["state"] == "firing"]
    assert firing == [], firing
