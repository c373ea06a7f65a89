"""A real Prometheus (Debian's ``prometheus`` package) on 127.0.0.1 for one test, and its API.

``running_prometheus(workdir, config)`` writes ``config`` (a ``prometheus.yml`` as data), starts
``/usr/bin/prometheus`` on a free port with its storage in ``workdir``, waits until it answers
``/-/ready`` and always stops it. ``Prometheus`` asks its HTTP API (``/api/v1/...``): the
targets' health, instant queries, the alerts its rules raised.

``scrape_config(...)`` turns the shipped ``deploy/prometheus/prometheus.yml`` into a test's: the
same job and rule files, with the daemon's port and intervals short enough for a test.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO
from tests.support.poll import SHOWN_CHARS, wait_until
from tests.support.ports import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
DEPLOY = REPO / "deploy" / "prometheus"
# The shipped example configuration and rules, loaded unchanged by the tests.
SHIPPED_CONFIG = DEPLOY / "prometheus.yml"
# Seconds Prometheus gets to open its storage and answer /-/ready, and to stop on SIGTERM.
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
# Seconds an HTTP request to Prometheus may take.
HTTP_TIMEOUT_S = 5
HTTP_OK = 200
# A test's scrape and rule evaluation interval: alerts follow the daemon within seconds.
TEST_INTERVAL = "1s"


def scrape_config(target: str, interval: str = TEST_INTERVAL) -> dict[str, Any]:
    """The shipped ``prometheus.yml`` with its one job pointed at ``target`` (``host:port``),
    its intervals set to ``interval`` and its rule files as absolute paths; nothing else of it
    changes, so a test proves the example works as shipped."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(DEPLOY / path) for path in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    return config


class Prometheus:
    """Prometheus's HTTP API; ``None`` answers mean nothing answered (yet)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.base + path, timeout=HTTP_TIMEOUT_S) as response:
                return json.loads(response.read()) if path.startswith("/api/") else response.status
        except (urllib.error.URLError, OSError):
            return None

    def data(self, path: str) -> Any:
        answer = self.get(path)
        return answer["data"] if answer and answer.get("status") == "success" else None

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        """Pending and firing alerts (resolved ones leave this list), ``name``'s only if given."""
        found = (self.data("/api/v1/alerts") or {}).get("alerts", [])
        return [a for a in found if name is None or a["labels"]["alertname"] == name]

    def firing(self, name: str) -> list[dict[str, Any]]:
        return [alert for alert in self.alerts(name) if alert["state"] == "firing"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query's vector; empty when nothing matches or nothing answered."""
        encoded = urllib.parse.quote(expression)
        return list((self.data(f"/api/v1/query?query={encoded}") or {}).get("result", []))

    def targets_up(self) -> bool:
        active = (self.data("/api/v1/targets") or {}).get("activeTargets", [])
        return bool(active) and all(target["health"] == "up" for target in active)

    def rule_names(self) -> set[str]:
        groups = (self.data("/api/v1/rules") or {}).get("groups", [])
        return {rule["name"] for group in groups for rule in group["rules"]}


@contextmanager
def running_prometheus(workdir: Path, config: dict[str, Any]) -> Iterator[Prometheus]:
    """``/usr/bin/prometheus`` with ``config``, its storage and log in ``workdir``; ready when
    yielded, stopped (SIGTERM, then SIGKILL) on the way out, pass or fail."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    prometheus = Prometheus(port)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(
                    f"prometheus exited {process.returncode}: "
                    f"{log.read_text(errors='replace')[-SHOWN_CHARS:]}"
                )
            return bool(prometheus.get("/-/ready") == HTTP_OK)

        wait_until(ready, START_TIMEOUT_S, what="prometheus /-/ready")
        yield prometheus
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
