"""The Grafana dashboard (``deploy/grafana/``): the checked-in JSON is what the generator builds,
every query parses (``promtool``), and the provisioning files agree with it.

That every query names a metric the daemon serves is proven against a real daemon's ``/metrics``
in ``tests/integration/test_dashboard.py``; the tokenizer it uses is tested here.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.grafana import dashboard
from tests.support.prometheus import PROMTOOL
from tests.support.promql import metric_names

GRAFANA = Path(dashboard.__file__).resolve().parent
# What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$server": ".*", "$__rate_interval": "1m"}


def _checked_in() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(dashboard.OUTPUT.read_text(encoding="utf-8"))
    return document


def test_the_checked_in_dashboard_is_what_the_generator_builds() -> None:
    assert dashboard.OUTPUT.read_text(encoding="utf-8") == dashboard.render(), (
        "deploy/grafana/barman-supervisor.json is stale: run "
        ".venv/bin/python deploy/grafana/dashboard.py and commit the JSON"
    )


def test_every_panel_has_a_unique_id_a_title_and_queries_on_the_picked_servers() -> None:
    document = _checked_in()
    panels = document["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)) and 0 not in ids
    queries = [p for p in panels if p["type"] != "row"]
    assert len(queries) >= 20
    for panel in queries:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target["expr"]
            if "start_time_seconds" not in target["expr"]:  # the daemon's own, no server label
                assert target["expr"].count('server=~"$server"') == len(names), target["expr"]
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["server"]["query"] == "label_values(barman_supervisor_ready, server)"


def test_every_query_parses(tmp_path: Path) -> None:
    """Each expression as a recording rule through ``promtool check rules``: a PromQL syntax
    error fails here, with the rule's name pointing at the panel."""
    rules = []
    for index, expression in enumerate(dashboard.expressions(_checked_in())):
        query = expression
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": query})
    rule_file = tmp_path / "dashboard.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_the_provisioning_files_point_grafana_at_the_dashboard_and_prometheus() -> None:
    provisioning = GRAFANA / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load(
        (provisioning / "dashboards" / "barman-supervisor.yml").read_text()
    )["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ('barman_supervisor_ready{server=~"$server"}', {"barman_supervisor_ready"}),
        (
            'increase(barman_supervisor_job_runs_total{server=~"$server", result="failure"}'
            "[$__rate_interval])",
            {"barman_supervisor_job_runs_total"},
        ),
        (
            "min by (server) (a_running * on(server) group_left(check) b_active) > bool 0",
            {"a_running", "b_active"},
        ),
        (
            "time() - barman_supervisor_start_time_seconds offset 5m",
            {"barman_supervisor_start_time_seconds"},
        ),
        ('absent(up{job="x"}) or vector(1) unless c:recorded', {"up", "c:recorded"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', {"m"}),
        ("histogram_quantile(0.9, sum without (le) (rate(h_bucket[5m])))", {"h_bucket"}),
    ],
)
def test_metric_names_are_found_in_an_expression(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def test_every_dashboard_query_reads_only_the_daemons_prefix_or_its_exporter_names() -> None:
    """The integration test holds the names against a real ``/metrics``; this catches a name
    from another exporter (``pg_up``, ``node_...``) in seconds."""
    for expression in dashboard.expressions(_checked_in()):
        for name in metric_names(expression):
            assert re.match(r"^(barman_supervisor_|barman_)", name), (name, expression)
