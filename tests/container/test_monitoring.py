"""The compose profile ``monitoring``: Prometheus and Grafana beside the stack, provisioned with
the shipped alert rules (``deploy/prometheus/``) and dashboard (``deploy/grafana/``).

No registry is reachable here, so their images cannot be pulled and the profile cannot run:
``docker compose --profile monitoring config`` proves what compose would start, every file it
mounts exists where the services read it, and ``promtool check config`` (Debian's Prometheus)
accepts the Prometheus configuration the profile renders, with the rules it loads.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.container.conftest import PRODUCT_COMPOSE, REPO_ROOT, run, write_env, write_secrets

pytestmark = pytest.mark.container

PROMTOOL = "/usr/bin/promtool"
ENV_EXAMPLE = REPO_ROOT / "compose" / ".env.example"
# A tag with a version, never `latest` or none: what runs is what was looked at.
PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+$")


def _config(env_file: Path, secrets_dir: Path, *args: str) -> dict[str, Any]:
    result = run(
        [
            "docker", "compose", "-f", str(PRODUCT_COMPOSE), "--env-file", str(env_file),
            *args, "config", "--format", "json",
        ],
        60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "SECRETS_DIR": str(secrets_dir)},
    )  # fmt: skip
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a service: target in the container -> source on the host."""
    return {v["target"]: Path(v["source"]) for v in service["volumes"] if v["type"] == "bind"}


@pytest.fixture
def monitoring(built_images: float, tmp_path: Path) -> dict[str, Any]:
    """The product file with .env.example and the monitoring profile switched on."""
    write_secrets(tmp_path / "secrets")
    return _config(ENV_EXAMPLE, tmp_path / "secrets", "--profile", "monitoring")


def test_the_profile_adds_prometheus_and_grafana_on_pinned_images_on_loopback(
    monitoring: dict[str, Any],
) -> None:
    services = monitoring["services"]
    assert set(services) == {"postgres", "barman", "prometheus", "grafana"}
    for name, port in (("prometheus", 9090), ("grafana", 3000)):
        service = services[name]
        assert service["profiles"] == ["monitoring"]
        assert PINNED.match(service["image"]), service["image"]
        (published,) = service["ports"]
        assert (published["host_ip"], published["target"]) == ("127.0.0.1", port)
        assert any(v["type"] == "volume" for v in service["volumes"]), f"{name} keeps its data"
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert grafana["GF_ANALYTICS_REPORTING_ENABLED"] == "false"


def test_grafana_reads_the_shipped_provisioning_and_dashboard(monitoring: dict[str, Any]) -> None:
    grafana = monitoring["services"]["grafana"]
    mounts = _mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == REPO_ROOT / "deploy" / "grafana" / "provisioning"
    (provider,) = yaml.safe_load(
        (provisioning / "dashboards" / "barman-supervisor.yml").read_text()
    )["providers"]
    dashboards = [t for t in mounts if Path(t).parent == Path(provider["options"]["path"])]
    assert [mounts[t] for t in dashboards] == [
        REPO_ROOT / "deploy" / "grafana" / "barman-supervisor.json"
    ]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home in dashboards
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in monitoring["services"], "the data source's host is a service"


def test_prometheus_scrapes_barman_with_the_shipped_rules(
    monitoring: dict[str, Any], tmp_path: Path
) -> None:
    """The rendered configuration, its rule files pointed at the host's copies, through
    ``promtool check config``: the configuration and every rule parse."""
    prometheus = monitoring["services"]["prometheus"]
    (config,) = prometheus["configs"]
    assert config["target"] == "/etc/prometheus/prometheus.yml"
    assert f"--config.file={config['target']}" in prometheus["command"]
    document = yaml.safe_load(monitoring["configs"][config["source"]]["content"])
    (job,) = document["scrape_configs"]
    assert job["job_name"] == "barman-supervisor", "the name the alert rules select"
    assert job["static_configs"] == [{"targets": ["barman:9798"]}]
    mounts = _mounts(prometheus)
    rules = [
        source
        for target, source in mounts.items()
        for pattern in document["rule_files"]
        if Path(target).match(pattern)
    ]
    assert rules == [REPO_ROOT / "deploy" / "prometheus" / "barman-supervisor.rules.yml"]
    assert all(rule.is_file() for rule in rules)
    document["rule_files"] = [str(rule) for rule in rules]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(document))
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(local)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_the_scrape_follows_http_port_and_the_profile_stays_off_by_default(
    built_images: float, tmp_path: Path
) -> None:
    write_secrets(tmp_path / "secrets")
    write_env(tmp_path / "moved.env", {"HTTP_PORT": "9911", "COMPOSE_PROFILES": "monitoring"})
    moved = _config(tmp_path / "moved.env", tmp_path / "secrets")
    content = yaml.safe_load(moved["configs"]["prometheus_config"]["content"])
    assert content["scrape_configs"][0]["static_configs"] == [{"targets": ["barman:9911"]}]
    assert moved["services"]["barman"]["environment"]["HTTP_PORT"] == "9911"
    plain = _config(ENV_EXAMPLE, tmp_path / "secrets")
    assert set(plain["services"]) == {"postgres", "barman"}
