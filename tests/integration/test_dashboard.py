"""Every query of the Grafana dashboard (``deploy/grafana/barman-supervisor.json``) names only
metrics a real daemon serves: the daemon protects a real PostgreSQL 15, copies off-site to a
real S3 API server (moto_server) and runs a restore drill, so the families that appear only
after a backup, a copy or a drill are there with samples, not merely declared.

Scraped for real rather than checked against ``docs/metrics.md``: a page can say a name the
code no longer serves, a scrape cannot. Off-site with a real store, since half the dashboard's
off-site row has no sample without one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.offsite import offsite_daemon
from tests.support.paths import REPO
from tests.support.poll import TimedOut, wait_until
from tests.support.promql import metric_names

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DASHBOARD = REPO / "deploy" / "grafana" / "barman-supervisor.json"
# Declared in /metrics (HELP and TYPE) but without a sample in this test, and why.
NO_SAMPLE_HERE = {
    "barman_supervisor_last_incremental_backup_age_seconds": (
        "incremental backups need PostgreSQL 17; the integration tests run 15 "
        "(tests/container/test_incremental.py takes them on 18)"
    ),
}
# First backup DONE, copied off-site, and a drill at the next minute: about 90 s on 2 cores.
EVERYTHING_SERVED_S = 300


def _dashboard_names() -> dict[str, list[str]]:
    """Each metric name the dashboard reads, with the queries that read it."""
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [
        target["expr"]
        for panel in document["panels"]
        for target in panel.get("targets") or []
        if "expr" in target
    ]
    (server,) = [v for v in document["templating"]["list"] if v["name"] == "server"]
    # label_values(METRIC, LABEL): Grafana's, not PromQL; its metric is the first argument.
    queries.append(server["query"].removeprefix("label_values(").split(",")[0])
    names: dict[str, list[str]] = {}
    for query in queries:
        for name in metric_names(query):
            names.setdefault(name, []).append(query)
    return names


def _scrape(text: str) -> tuple[set[str], set[str]]:
    """Names /metrics declares (families, with a counter's ``_total``) and names with samples."""
    declared: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        declared.add(family.name)
        if family.type == "counter":
            declared.add(f"{family.name}_total")
        sampled.update(sample.name for sample in family.samples)
    return declared | sampled, sampled


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Where drills restore: a directory the drill's PostgreSQL (user postgres) can reach,
    which pytest's own temporary directories (mode 0700, root's) are not."""
    directory = Path(tempfile.mkdtemp(prefix="bs-drill-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_every_dashboard_query_names_a_metric_the_daemon_serves(
    tmp_path: Path, scratch: Path
) -> None:
    wanted = _dashboard_names()
    assert len(wanted) >= 30, sorted(wanted)
    with offsite_daemon(
        tmp_path,
        BACKUP_IMMEDIATE_CHECKPOINT="true",
        HEALTH_INTERVAL="1",
        BARMAN_CHECK_INTERVAL="5",
        OFFSITE_INTERVAL="5",
        # Off by default, and then its limit is not served: the dashboard draws it when set.
        WAL_MAX_AGE="1h",
        DRILL_SCHEDULE="* * * * *",
        DRILL_SCRATCH_DIR=str(scratch),
    ) as offsite:
        lacking = {"every name": set(wanted)}

        def complete() -> bool:
            code, text = offsite.probe.get("/metrics")
            if code == 200:
                lacking["every name"] = set(wanted) - _scrape(text)[1] - set(NO_SAMPLE_HERE)
            return code == 200 and not lacking["every name"]

        try:
            wait_until(complete, EVERYTHING_SERVED_S, what="every dashboard metric", interval=2)
        except TimedOut:
            pytest.fail(
                f"still no sample of {sorted(lacking['every name'])}: {offsite.daemon.tail()}"
            )
        code, text = offsite.probe.get("/metrics")
    assert code == 200
    served, sampled = _scrape(text)
    unserved = {name: wanted[name] for name in wanted if name not in served}
    assert not unserved, f"the dashboard reads metrics the daemon does not serve: {unserved}"
    assert set(wanted) - sampled == set(NO_SAMPLE_HERE)
