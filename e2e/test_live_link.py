"""The dashboard's link to the server in a real headless Chromium: it runs under the
server's Content-Security-Policy with no violation, and when the link goes half-open
(a laptop that slept, a Wi-Fi that dropped: nothing arrives, nothing is refused) the
server closes its end, the page says it is offline, and it comes back live by itself."""
import socket
import threading
import time
import urllib.request

from selenium.webdriver.common.by import By

import harness
from conftest import wait_for


def conn_state(driver):
    return driver.execute_script(
        "const e = document.querySelector('[data-test=conn]'); return e ? [e.dataset.state, e.innerText] : ['', '']")


def rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "[data-test=leaderboard] tbody tr")


def test_the_dashboard_runs_under_its_content_security_policy(page, server):
    with urllib.request.urlopen(server.url("/")) as res:
        csp = res.headers["Content-Security-Policy"]
        assert "'wasm-unsafe-eval'" in csp and "'unsafe-eval' " not in csp, csp
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["Cache-Control"] == "no-store"
    page.get(server.url("/"))
    wait_for(lambda: rows(page), 30, message="the wasm app running and drawing the leaderboard")
    time.sleep(1.0)
    logs = page.get_log("browser")
    violations = [e for e in logs if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
    assert not violations, violations


class FreezableProxy:
    """A TCP proxy that can stop moving bytes without closing anything: what a link
    that went half-open looks like to both ends."""

    def __init__(self, upstream_port):
        self.upstream = ("127.0.0.1", upstream_port)
        self.frozen = threading.Event()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                while self.frozen.is_set() and not self.closed:
                    time.sleep(0.05)
                data = src.recv(65536)
                if not data:
                    break
                while self.frozen.is_set() and not self.closed:
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.listener.close()


def test_a_half_open_link_is_closed_by_the_server_and_the_page_goes_offline_then_live(page):
    server = harness.start_server(env={
        "INSTABRAND_LIVE__PING_INTERVAL_MS": "1000",
        "INSTABRAND_LIVE__IDLE_TIMEOUT_MS": "3000",
    })
    proxy = FreezableProxy(int(server.base.rsplit(":", 1)[1]))
    try:
        page.get(f"http://127.0.0.1:{proxy.port}/")
        wait_for(lambda: rows(page), 30, message="the overview through the proxy")
        wait_for(lambda: conn_state(page)[0] == "open", 10, message="a live link")
        assert server.get("/api/health")["websocket_clients"] == 1

        proxy.frozen.set()
        seen = []

        def offline():
            state, text = conn_state(page)
            seen.append(text)
            return state != "open" and any("offline" in t for t in seen)
        wait_for(offline, 10, interval=0.05, message="the page to notice the silence and say offline")
        # The server heard nothing, not even pongs, and closed its end.
        wait_for(lambda: server.get("/api/health")["websocket_clients"] == 0, 10,
                 message="the server to close the silent connection")

        proxy.frozen.clear()
        wait_for(lambda: conn_state(page)[0] == "open", 30, message="the page to come back live by itself")
        wait_for(lambda: rows(page), 20, message="live rows again")
        assert conn_state(page)[1] == "live"
    finally:
        proxy.close()
        harness.stop_server(server)
