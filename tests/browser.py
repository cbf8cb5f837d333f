"""Headless Chromium for the page tests (the serve playground, inspect.html).

Selenium drives Debian's chromium + chromium-driver (apt-get install chromium
chromium-driver; pip install selenium). The driver path is given to Service, which makes
Selenium skip Selenium Manager (it would otherwise try to download a driver); SE_OFFLINE
is set as well, in case a future Selenium consults it anyway. Nothing is fetched from the
network. Without chromium a test is skipped locally, and fails when $CI is set.

Screenshots go to .test-artifacts/ under the repository root (git ignores it)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / ".test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def needs(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI installs it: apt-get install chromium chromium-driver; "
                    "pip install selenium)")
    pytest.skip(what)


def chromium(monkeypatch, timeout: float, window: str = "1100,760"):
    """A generator for a fixture: yields a headless Chrome driver, quits it after."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            needs(f"{path} is not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        needs("selenium is not installed")
    monkeypatch.setenv("SE_OFFLINE", "true")          # never let Selenium Manager download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window}", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(timeout)
    driver.set_script_timeout(timeout)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path
