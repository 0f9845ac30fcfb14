"""Starting the real `instabrand` server and headless Debian Chromium, shared by the
end-to-end tests (conftest.py) and the benchmark (bench.py).

Environment:
  INSTABRAND_BIN    server binary (default target/release/instabrand)
  INSTABRAND_DIST   built dashboard (default dist; build it with scripts/build-frontend.sh)
  CHROMIUM, CHROMEDRIVER   browser and driver (default Debian's /usr/bin ones)
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

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parent.parent
CONTROL_TOKEN = "e2e-control-secret"
INGEST_TOKEN = "e2e-ingest-secret"
DEAD_LETTERS_TOKEN = "e2e-dead-letters-secret"

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

    def request(self, method, path, body=None, token=None, content_type="application/json", timeout=10):
        """(status, parsed JSON or text) without raising on HTTP errors."""
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(self.url(path), data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
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


class StartError(RuntimeError):
    pass


def launch(argv, env, cwd=None, timeout=60):
    """Starts a server process with stderr merged into stdout, keeps draining its output
    (so a chatty server never blocks on a full pipe) into a bounded list, and waits for
    its `listening on http://…` line; start-up logs may come before it. Returns
    (process, output lines, base URL); raises StartError with the last output."""
    proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    first = queue.Queue()

    def drain():
        found = False
        for line in proc.stdout:
            lines.append(line)
            if len(lines) > 5000:
                del lines[1:1000]
            if not found and "listening on http://" in line:
                found = True
                first.put(line)
        first.put(None)

    threading.Thread(target=drain, daemon=True).start()
    try:
        line = first.get(timeout=timeout)
    except queue.Empty:
        line = None
    if not line:
        proc.kill()
        proc.wait()
        raise StartError("".join(lines[-50:]))
    return proc, lines, line.strip().split("listening on ", 1)[1].split()[0].rstrip("/")


def wait_for(predicate, timeout=20.0, interval=0.2, message="condition", errors=(Exception,)):
    """Polls `predicate` until it returns something truthy, and returns that; `errors`
    raised meanwhile count as not yet (an element or a record may not exist yet)."""
    deadline = time.time() + timeout
    last_error = None
    while time.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except errors as e:
            last_error = e
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {message}"
        + (f" (last error: {last_error!r})" if last_error else "")
    )


def start_server(port=0, env=None, dist=None):
    """Starts the server (on a free port unless given, with `env` added to its
    environment, serving the dashboard from `dist` if given); returns a Server once
    its API answers."""
    binary = Path(os.environ.get("INSTABRAND_BIN", ROOT / "target" / "release" / "instabrand")).resolve()
    dist = Path(dist or os.environ.get("INSTABRAND_DIST", ROOT / "dist")).resolve()
    if not binary.exists():
        raise StartError(f"no server binary at {binary}: cargo build --release -p instabrand-server")
    if not (dist / "index.html").exists():
        raise StartError(f"no dashboard in {dist}: run scripts/build-frontend.sh")
    data_dir = tempfile.mkdtemp(prefix="instabrand-e2e-")
    full_env = dict(os.environ,
                    INSTABRAND_CONTROL_TOKEN=CONTROL_TOKEN,
                    INSTABRAND_INGEST_TOKEN=INGEST_TOKEN,
                    INSTABRAND_SECURITY__DEAD_LETTERS_TOKEN=DEAD_LETTERS_TOKEN,
                    INSTABRAND_DATA_DIR=data_dir,
                    RUST_LOG=os.environ.get("RUST_LOG", "info"))
    full_env.update(env or {})
    try:
        proc, lines, base = launch([binary, "serve", "--port", port, "--static-dir", dist], full_env, cwd=data_dir)
    except StartError as e:
        raise StartError(f"server did not report its address:\n{e}") from None
    srv = Server(base, proc, lines)
    srv.data_dir = data_dir
    srv.static_dir = dist
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if srv.request("GET", "/api/health")[0] == 200:
                return srv
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    # Not answering (or gone): say so here rather than let a test fail later on it.
    output, rc = "".join(lines[-50:]), proc.poll()
    stop_server(srv)
    state = "still running" if rc is None else f"exited with {rc}"
    raise StartError(f"the server's /api/health did not answer 200 within 30 s ({state}):\n{output}")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(srv):
    srv.proc.terminate()
    try:
        srv.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def new_browser():
    """Headless Chromium with a fresh profile; returns (driver, profile_dir)."""
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
    return driver, profile
