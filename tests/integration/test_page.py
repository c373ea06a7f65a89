"""The page at ``/`` in a real headless Chromium, served by a daemon protecting a real
PostgreSQL: healthy on a desktop and on a phone, then with streaming broken.

Each test keeps a screenshot in ``test-results/screenshots/`` (looked at, and the healthy ones
copied to ``docs/images/``); none may leave an error in the browser's console.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.support.browser import (
    DESKTOP,
    PHONE,
    Viewport,
    chromium,
    console_errors,
    horizontal_overflow,
    screenshot,
)
from tests.support.daemon import Daemon, running_daemon
from tests.support.poll import wait_until
from tests.support.postgres import Cluster, cluster

pytestmark = pytest.mark.integration
# How the page words a backup's age: "45 s old", "12 min old", "3.2 h old".
BACKUP_AGE = re.compile(r"^\d+(\.\d)? (s|min|h) old$")
# Seconds the daemon may take to see PostgreSQL stopped (HEALTH_INTERVAL is 1 s here) or back.
NOTICE_S = 60
READY_S = 180


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    with cluster() as server:
        server.init()
        server.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        yield server


@pytest.fixture(scope="module")
def daemon(pg: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(
        tmp_path_factory.mktemp("page"),
        pg,
        HEALTH_INTERVAL="1",
        DRILL_SCHEDULE="30 4 * * *",
    ) as supervisor:
        yield supervisor


def ready(daemon: Daemon) -> None:
    wait_until(lambda: daemon.probe.get("/readyz")[0] == 200, READY_S, what="/readyz 200")


@contextmanager
def shown(daemon: Daemon, viewport: Viewport) -> Iterator[WebDriver]:
    """The page in Chromium at ``viewport``, checked for console errors when the test is done."""
    with chromium(viewport) as driver:
        driver.get(daemon.probe.base + "/")
        yield driver
        assert console_errors(driver) == []


@pytest.fixture
def desktop(daemon: Daemon) -> Iterator[WebDriver]:
    with shown(daemon, DESKTOP) as driver:
        yield driver


@pytest.fixture
def phone(daemon: Daemon) -> Iterator[WebDriver]:
    with shown(daemon, PHONE) as driver:
        yield driver


def streaming_reasons_agree(driver: WebDriver, daemon: Daemon) -> bool:
    """The page, reloaded, names the same streaming problems as /readyz asked right after."""
    driver.refresh()
    section = driver.find_element(By.ID, "server-pg")
    on_page = [
        reason.text
        for reason in section.find_elements(
            By.CSS_SELECTOR, '.problem[data-condition="streaming"] .reason'
        )
    ]
    _, readyz = daemon.probe.json("/readyz")
    said = [p["reason"] for p in readyz["servers"]["pg"] if p["condition"] == "streaming"]
    return bool(on_page) and on_page == said


def card(driver: WebDriver, server: str = "pg") -> dict[str, str]:
    """What the server's card says, by part."""
    section = driver.find_element(By.ID, f"server-{server}")
    return {
        "name": section.find_element(By.CLASS_NAME, "name").text,
        "badge": section.find_element(By.CLASS_NAME, "badge").text,
        "backup": section.find_element(By.CLASS_NAME, "backup").text,
        "backup_age": section.find_element(By.CLASS_NAME, "backup-age").text,
        "next_runs": section.find_element(By.CLASS_NAME, "next-runs").text,
        "problems": "\n".join(p.text for p in section.find_elements(By.CLASS_NAME, "problem")),
    }


def test_a_healthy_server_on_a_desktop(daemon: Daemon, desktop: WebDriver) -> None:
    ready(daemon)
    desktop.refresh()
    newest = max(
        (b for b in daemon.backups() if b["status"] == "DONE"), key=lambda b: b["end_time"]
    )

    shown = card(desktop)
    screenshot(desktop, "page-healthy-desktop")

    assert (shown["name"], shown["badge"], shown["problems"]) == ("pg", "READY", "")
    assert BACKUP_AGE.match(shown["backup_age"]), shown["backup_age"]
    assert newest["backup_id"] in shown["backup"] and "full" in shown["backup"]
    assert re.search(r"^backup in .+\ndrill in .+\ncheck in ", shown["next_runs"]), shown
    assert desktop.title.startswith("1/1 ready")


def test_a_phone_sees_the_whole_page_without_scrolling_sideways(
    daemon: Daemon, phone: WebDriver
) -> None:
    ready(daemon)
    phone.refresh()

    screenshot(phone, "page-healthy-phone")

    assert phone.execute_script("return window.innerWidth") == PHONE.width
    assert horizontal_overflow(phone) <= 0
    assert card(phone)["badge"] == "READY"


def test_broken_streaming_shows_the_server_its_problem_and_what_to_do(
    daemon: Daemon, pg: Cluster
) -> None:
    ready(daemon)
    pg.stop()
    try:
        wait_until(
            lambda: "streaming" in daemon.probe.problems(), NOTICE_S, what="streaming problem"
        )
        for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
            with shown(daemon, viewport) as driver:
                wait_until(
                    lambda: streaming_reasons_agree(driver, daemon),
                    NOTICE_S,
                    what="the page and /readyz to name the same streaming problem",
                )
                broken = card(driver)
                screenshot(driver, f"page-streaming-broken-{name}")
                assert (broken["name"], broken["badge"]) == ("pg", "NOT READY")
                assert BACKUP_AGE.match(broken["backup_age"]), broken["backup_age"]
                assert "What to do" in broken["problems"]
                assert horizontal_overflow(driver) <= 0
    finally:
        pg.start()
    ready(daemon)


def test_the_console_check_sees_what_a_browser_reports(daemon: Daemon) -> None:
    """The check above can fail: a resource that does not load is an error in the console."""
    with chromium(DESKTOP) as driver:
        driver.get(daemon.probe.base + "/no-such-page")
        errors = console_errors(driver)

    assert [e for e in errors if "404" in e["message"]], errors
