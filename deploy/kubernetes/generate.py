"""The prometheus-operator rule and the Grafana dashboard of ``deploy/kubernetes/monitoring/``,
made from the files the compose stack loads:

    .venv/bin/python deploy/kubernetes/generate.py    # writes monitoring/prometheusrule.yaml
                                                       # and monitoring/grafana-dashboard.yaml

Generated rather than read by kustomize: kustomize refuses a file outside its kustomization's
directory (``configMapGenerator`` cannot take ``deploy/grafana/barman-supervisor.json``), and a
``PrometheusRule`` wraps the rule groups in a resource no generator makes. The generated files
are checked in, so ``kubectl apply -k`` needs no Python;
``tests/unit/deploy/test_kubernetes.py`` fails while they differ from what this module makes,
so a rule changed in ``deploy/prometheus/`` reaches Kubernetes in the same commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
RULES = DEPLOY / "prometheus" / "barman-supervisor.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "barman-supervisor.json"
MONITORING = HERE / "monitoring"
NAME = "barman-supervisor"
LABELS = {"app.kubernetes.io/name": NAME}
# The label Grafana's dashboard sidecar (kube-prometheus-stack, the Grafana chart) watches for.
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
# Longer than any line of the rules, so PyYAML never folds a string of its own accord.
LINE_WIDTH = 1000


def prometheus_rule() -> dict[str, Any]:
    """The shipped rule groups, unchanged, as a ``monitoring.coreos.com/v1`` ``PrometheusRule``."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME, "labels": dict(LABELS)},
        "spec": {"groups": groups},
    }


def dashboard_config_map() -> dict[str, Any]:
    """The shipped dashboard JSON, byte for byte, in a ConfigMap the sidecar loads."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{NAME}-dashboard", "labels": LABELS | DASHBOARD_LABEL},
        "data": {DASHBOARD.name: DASHBOARD.read_text(encoding="utf-8")},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (descriptions, the dashboard) as literal blocks a reviewer can read."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render(document: dict[str, Any], source: Path) -> str:
    """A generated file: a header naming its source and this module, then the resource."""
    header = (
        f"# Generated from deploy/{source.relative_to(DEPLOY)} by deploy/kubernetes/generate.py:"
        "\n# edit that file, then run this one.\n"
    )
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, width=LINE_WIDTH, allow_unicode=True
    )
    return header + body


def outputs() -> dict[Path, str]:
    """Every generated file by its path, as it must be checked in."""
    return {
        MONITORING / "prometheusrule.yaml": render(prometheus_rule(), RULES),
        MONITORING / "grafana-dashboard.yaml": render(dashboard_config_map(), DASHBOARD),
    }


if __name__ == "__main__":
    for path, text in outputs().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
