#!/usr/bin/env python3
"""Dashboard benchmark: gzip size of the built wasm, time from page load to the first
live number, and the map's frame time with 20,000 points, against the goals.

Runs the real server (INSTABRAND_BIN) and headless Chromium, as the end-to-end tests
do. The page measures itself: `data-first-number-ms` on <body> is performance.now()
(milliseconds since navigation start) when the first leaderboard row has painted;
`/map?bench=20000` draws 120 frames of 20,000 synthetic points and sets
`data-map-frame-median-ms`, `-p95-ms` and `-max-ms`. Last, a soak: presentation mode
rotating every 5 s while the generator runs at SOAK_RATE events/s for SOAK_SECONDS
(default 3000/s for 150 s: the map's 20,000-point buffer fills in about a minute), sampling the wasm memory (`data-wasm-memory-bytes`, which
only grows) and the JS heap, to show memory levels off instead of climbing.
"""
import gzip
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

GOALS = {"wasm_gzip_kb": 700.0, "first_number_ms": 1000.0, "map_frame_ms": 16.0}
LOADS = 5
SOAK_SECONDS = int(os.environ.get("SOAK_SECONDS", "150"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "3000"))
SOAK_PATH = os.environ.get("SOAK_PATH", "/present?every=5")


def body_metric(driver, name, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = driver.execute_script("return document.body && document.body.getAttribute(arguments[0])", f"data-{name}")
        if v:
            return float(v)
        time.sleep(0.05)
    raise RuntimeError(f"the page never reported {name}")


def main():
    dist = Path(harness.os.environ.get("INSTABRAND_DIST", harness.ROOT / "dist"))
    wasm = sorted(dist.glob("*.wasm"))
    if not wasm:
        sys.exit("no wasm in dist/: run scripts/build-frontend.sh")
    raw = wasm[0].read_bytes()
    gz_kb = len(gzip.compress(raw, 9)) / 1024

    srv = harness.start_server()
    driver, profile = harness.new_browser()
    try:
        # Let the embedded generator produce its first brands, as a viewer would find it.
        deadline = time.time() + 30
        while time.time() < deadline and not srv.get("/api/leaderboard?window=5m").get("rows"):
            time.sleep(0.2)
        firsts = []
        for i in range(LOADS + 1):
            driver.get(srv.url("/"))
            ms = body_metric(driver, "first-number-ms")
            if i > 0:  # the first load fills the HTTP cache, as a returning wall screen has
                firsts.append(ms)
        cold = None
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        driver.get(srv.url("/"))
        cold = body_metric(driver, "first-number-ms")

        driver.get(srv.url("/map?bench=20000"))
        median = body_metric(driver, "map-frame-median-ms", 60)
        p95 = body_metric(driver, "map-frame-p95-ms")
        worst = body_metric(driver, "map-frame-max-ms")
        points = body_metric(driver, "map-points")

        soak = []
        if SOAK_SECONDS > 0:
            srv.request("POST", "/api/control/rate", json.dumps({"rate": SOAK_RATE}), token=srv.control_token)
            driver.get(srv.url(SOAK_PATH))
            start = time.time()
            while time.time() - start < SOAK_SECONDS:
                time.sleep(min(10, SOAK_SECONDS))
                wasm_bytes = body_metric(driver, "wasm-memory-bytes")
                heap = driver.execute_script("return performance.memory ? performance.memory.usedJSHeapSize : 0")
                map_points = driver.execute_script(
                    "const c = document.querySelector('[data-test=map-canvas]'); return c ? c.dataset.points : ''")
                soak.append((time.time() - start, wasm_bytes / 2**20, heap / 2**20))
                print(f"  soak {soak[-1][0]:5.0f} s: wasm {soak[-1][1]:.1f} MB, JS heap {soak[-1][2]:.1f} MB, map points {map_points}",
                      flush=True)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        harness.stop_server(srv)

    first = statistics.median(firsts)
    rows = [
        ("wasm size (gzip -9)", f"{gz_kb:.0f} KB ({len(raw) / 1024:.0f} KB raw)", gz_kb <= GOALS["wasm_gzip_kb"], "<= 700 KB"),
        ("first live number (warm, median of 5)", f"{first:.0f} ms", first <= GOALS["first_number_ms"], "<= 1000 ms"),
        ("first live number (cold cache)", f"{cold:.0f} ms", cold <= GOALS["first_number_ms"], "<= 1000 ms"),
        (f"map frame, {points:.0f} points (median)", f"{median:.1f} ms (p95 {p95:.1f}, max {worst:.1f})", median <= GOALS["map_frame_ms"], "<= 16 ms"),
    ]
    if soak:
        (t0, w0, h0), (t1, w1, h1) = soak[0], soak[-1]
        # Compare the end with two thirds in, after the map buffer has filled.
        mid = soak[len(soak) * 2 // 3]
        rows.append((f"presentation soak, {SOAK_RATE:.0f} events/s",
                     f"wasm {w0:.1f}/{mid[1]:.1f}/{w1:.1f} MB, JS heap {h0:.1f}/{mid[2]:.1f}/{h1:.1f} MB at {t0:.0f}/{mid[0]:.0f}/{t1:.0f} s",
                     w1 <= mid[1] + 0.5, "levels off"))
    width = max(len(r[0]) for r in rows)
    print(f"Instabrand dashboard benchmark ({wasm[0].name})")
    for name, value, ok, goal in rows:
        print(f"  {name:<{width}}  {value:<34} goal {goal:<10} {'ok' if ok else 'MISSED'}")
    return 0 if all(r[2] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
