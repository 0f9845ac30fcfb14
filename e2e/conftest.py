"""Fixtures for the dashboard's end-to-end tests: the real `instabrand` server on the
embedded generator (binary from INSTABRAND_BIN, default target/release/instabrand;
dashboard from INSTABRAND_DIST, default dist) and headless Debian Chromium driven by
chromedriver. Screenshots go to E2E_OUTPUT (default test-output/screenshots)."""
import os
import shutil
from pathlib import Path

import pytest

import harness

SCREENSHOTS = Path(os.environ.get("E2E_OUTPUT", harness.ROOT / "test-output" / "screenshots"))


@pytest.fixture(scope="session")
def server():
    try:
        srv = harness.start_server()
    except harness.StartError as e:
        pytest.fail(str(e))
    yield srv
    harness.stop_server(srv)


@pytest.fixture(scope="session")
def browser():
    driver, profile = harness.new_browser()
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser, server):
    """The browser, with logs from earlier tests drained and local storage cleared."""
    browser.get(server.url("/health"))
    browser.execute_script("window.localStorage.clear()")
    browser.get_log("browser")
    browser.get_log("performance")
    return browser


wait_for = harness.wait_for


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
