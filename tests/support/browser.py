"""A real headless Chromium (Debian's ``chromium`` driven by its ``chromium-driver``) for the
page at ``/``: what a person's browser shows, its console errors, and screenshots kept with the
test results.

Selenium 4 drives it through the driver Debian ships beside the browser (same version, so
Selenium Manager never downloads one); the browser's console comes from the ``goog:loggingPrefs``
log, and the phone's viewport and full-page screenshots from the DevTools protocol.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.support.paths import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Kept with the test results (``test-results/`` is ignored by git); docs copy the ones they show.
SCREENSHOTS = REPO / "test-results" / "screenshots"
# Seconds a page may take to load before the driver gives up.
PAGE_LOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class Viewport:
    width: int
    height: int
    mobile: bool = False
    # A phone's pixel ratio: text is drawn as sharp as on the device.
    scale: float = 1.0


DESKTOP = Viewport(1280, 900)
# An iPhone 12-15 sized screen in CSS pixels: the width the page must fit without scrolling.
PHONE = Viewport(390, 844, mobile=True, scale=2.0)


@contextmanager
def chromium(viewport: Viewport = DESKTOP) -> Iterator[WebDriver]:
    """A headless Chromium showing pages at ``viewport``; quit on the way out."""
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={viewport.width},{viewport.height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": viewport.width,
                "height": viewport.height,
                "deviceScaleFactor": viewport.scale,
                "mobile": viewport.mobile,
            },
        )
        yield driver
    finally:
        driver.quit()


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """What the page wrote to the console at level error (failed loads, CSP refusals, script
    errors) since the last call."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry for entry in entries if entry.get("level") == "SEVERE"]


def horizontal_overflow(driver: WebDriver) -> int:
    """CSS pixels the page is wider than the viewport (0 when nothing scrolls sideways)."""
    width = driver.execute_script(
        "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )
    return int(width)


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page (not only the viewport, and no empty viewport below a short page) as
    ``SCREENSHOTS/<name>.png``."""
    width = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["width"]
    height = driver.execute_script(
        "return Math.ceil(document.body.getBoundingClientRect().bottom + window.scrollY)"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
