"""Fixtures for the dashboard's end-to-end tests: the real `instabrand` server on the
embedded generator, and headless Debian Chromium driven by chromedriver.

Environment:
  INSTABRAND_BIN    server binary (default target/release/instabrand)
  INSTABRAND_DIST   built dashboard (default dist; build it with scripts/build-frontend.sh)
  E2E_OUTPUT        where screenshots go (default test-output/screenshots)
"""
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parent.parent
CONTROL_TOKEN = "e2e-control-secret"
INGEST_TOKEN = "e2e-ingest-secret"
SCREENSHOTS = Path(os.environ.get("E2E_OUTPUT", ROOT / "test-output" / "screenshots"))

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
]


class Server:
    def __init__(self, base, proc, lines):
        self.base = base
        self.proc = proc
        self.lines = lines  # the server's output, for failure reports
        self.control_token = CONTROL_TOKEN
        self.ingest_token = INGEST_TOKEN

    def url(self, path):
        return self.base + path

    def request(self, method, path, body=None, token=None, content_type="application/json"):
        """(status, parsed JSON or text) without raising on HTTP errors."""
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(self.url(path), data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path):
        status, body = self.request("GET", path)
        assert status == 200, f"GET {path} -> {status}: {body}"
        return body


@pytest.fixture(scope="session")
def server():
    binary = Path(os.environ.get("INSTABRAND_BIN", ROOT / "target" / "release" / "instabrand")).resolve()
    dist = Path(os.environ.get("INSTABRAND_DIST", ROOT / "dist")).resolve()
    if not binary.exists():
        pytest.fail(f"no server binary at {binary}: cargo build --release -p instabrand-server")
    if not (dist / "index.html").exists():
        pytest.fail(f"no dashboard in {dist}: run scripts/build-frontend.sh")
    data_dir = tempfile.mkdtemp(prefix="instabrand-e2e-")
    env = dict(os.environ,
               INSTABRAND_CONTROL_TOKEN=CONTROL_TOKEN,
               INSTABRAND_INGEST_TOKEN=INGEST_TOKEN,
               INSTABRAND_DATA_DIR=data_dir,
               RUST_LOG=os.environ.get("RUST_LOG", "info"))
    proc = subprocess.Popen(
        [str(binary), "serve", "--port", "0", "--static-dir", str(dist)],
        cwd=data_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    first = queue.Queue()

    def drain():
        # Keep reading so a chatty server never blocks on a full pipe.
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                first.put(line)
        first.put(None)

    threading.Thread(target=drain, daemon=True).start()
    try:
        line = first.get(timeout=60)
    except queue.Empty:
        line = None
    if not line:
        proc.kill()
        pytest.fail("server did not report its address:\n" + "".join(lines[-40:]))
    base = line.strip().split("listening on ", 1)[1].split()[0].rstrip("/")
    srv = Server(base, proc, lines)
    # Ready when the API answers.
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if srv.request("GET", "/api/health")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    yield srv
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    profile = tempfile.mkdtemp(prefix="instabrand-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # Browser console for errors; the performance log carries CDP network events.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
    driver.set_page_load_timeout(30)
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


def wait_for(predicate, timeout=20.0, interval=0.2, message="condition"):
    deadline = time.time() + timeout
    last_error = None
    while time.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the element may not exist yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}" + (f" (last error: {last_error})" if last_error else ""))


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
