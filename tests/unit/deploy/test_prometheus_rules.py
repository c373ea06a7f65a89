"""The shipped alert rules (deploy/prometheus/) pass Prometheus's own tools, every alert is
unit-tested firing and not firing, and each runbook in the rules is the one docs/alerts.md shows.

promtool (Debian's ``prometheus`` package, installed by ``make install``) is a real program but a
quick one (about a second for every file), so these run with the unit tests: a broken rule fails
``make unit`` without PostgreSQL or a running Prometheus. The real Prometheus against a real
daemon is tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from tests.support.paths import REPO
from tests.support.prometheus import DEPLOY, PROMTOOL, SHIPPED_CONFIG

RULE_FILES = sorted(DEPLOY.glob("*.rules.yml"))
TEST_FILES = sorted((DEPLOY / "tests").glob("*.yml"))
ALERTS_DOC = REPO / "docs" / "alerts.md"
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "description", "runbook", "runbook_url"}
# Seconds promtool may take over every file together.
PROMTOOL_TIMEOUT_S = 60


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
        cwd=REPO,
    )


def _alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _words(text: str) -> str:
    """Text with every run of whitespace one space: a paragraph wrapped differently is equal."""
    return " ".join(text.split())


def test_the_files_are_there() -> None:
    assert RULE_FILES, f"no *.rules.yml in {DEPLOY}"
    assert TEST_FILES, f"no promtool unit tests in {DEPLOY / 'tests'}"


def test_promtool_check_rules_accepts_them() -> None:
    result = _promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_accepts_the_example_and_its_rules() -> None:
    result = _promtool("check", "config", str(SHIPPED_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = _promtool("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") + result.stderr.count("SUCCESS") == len(TEST_FILES)


def _alert_tests() -> list[dict[str, Any]]:
    return [
        check
        for path in TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for check in test.get("alert_rule_test", [])
    ]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    checks = _alert_tests()
    firing = {check["alertname"] for check in checks if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in checks if not check.get("exp_alerts")}
    names = {alert["alert"] for alert in _alerts()}
    assert not names - firing, f"no test sees these fire: {sorted(names - firing)}"
    assert not names - quiet, f"no test sees these stay quiet: {sorted(names - quiet)}"
    assert not (firing | quiet) - names, f"tests of no rule: {sorted((firing | quiet) - names)}"


def test_every_firing_expectation_checks_the_annotations() -> None:
    """promtool compares annotations only when the test gives them: every expected alert does,
    so a template that renders wrong (a missing limit, a wrong unit) fails."""
    unchecked = [
        check["alertname"]
        for check in _alert_tests()
        for expected in check.get("exp_alerts") or []
        if set(expected.get("exp_annotations", {})) != ANNOTATIONS
    ]
    assert not unchecked, f"expected alerts without their annotations: {unchecked}"


def test_every_alert_has_a_severity_and_the_annotations() -> None:
    for alert in _alerts():
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        assert set(alert["annotations"]) == ANNOTATIONS, alert["alert"]
        assert alert["annotations"]["runbook_url"] == f"docs/alerts.md#{alert['alert'].lower()}"


def _sections(document: str) -> dict[str, str]:
    """The page's ``### Name`` sections by name, each its text up to the next heading."""
    parts = re.split(r"^#{2,3} +(.+)$", document, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_each_runbook_is_the_one_on_the_page() -> None:
    """The annotation is what a person paged reads first; the page is where it is looked up
    later. They must say the same, so a change to one fails here until the other follows."""
    sections = _sections(ALERTS_DOC.read_text())
    for alert in _alerts():
        name = alert["alert"]
        assert name in sections, f"docs/alerts.md has no '### {name}' section"
        section = _words(sections[name])
        assert _words(alert["annotations"]["runbook"]) in section, (
            f"the runbook of {name} in docs/alerts.md differs from its annotation"
        )
        assert _words(alert["expr"]) in section, f"docs/alerts.md shows another expr for {name}"
