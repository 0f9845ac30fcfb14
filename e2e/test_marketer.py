"""Issue 15, the marketer's workflow, in a real headless Chromium: a copied URL reopens
the same view and back and forward step through it, the leaderboard sorts by each
column and its rising order matches REST, rank arrows follow live moves, the CSV
exports parse back to what REST says, and the wall playlist rotates the views its URL
names and pauses and resumes on its keys.

A server of its own with the generator off, fed a fixed set of events through
`/api/ingest`, so every order on screen can be compared with REST exactly."""
import csv
import io
import json
import os
import shutil
import time
from urllib.parse import parse_qs, quote, urlparse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

import harness
from conftest import console_errors, screenshot, wait_for


def t(minute, sec=0):
    return f"2017-06-12 10:{minute:02d}:{sec:02d}"


# Photos per brand in minute 0 (the 5m window's previous period once the clock is in
# minute 8) and in minute 8 (the window), and followers per poster, so photos, reach
# and rising each give a different order.
BRANDS = {
    # brand: (photos before, photos now, followers of each poster now, likes per photo)
    "Nike": (6, 4, 2, 1),
    "Adidas": (1, 5, 1, 0),
    "Apple, Inc.": (0, 3, 9, 2),
    "Lego": (2, 2, 5, 0),
    "Ben & Jerry's": (4, 1, 12, 3),
    "Zara": (0, 1, 0, 0),
}


def events():
    out, n = [], 0
    fans = [f"fan{i}" for i in range(40)]
    for f in fans:
        out.append({"username": f, "full_name": f, "created_time": t(0), "event": "create-user"})
    for brand, (before, now, followers, likes) in BRANDS.items():
        for phase, count, minute in (("b", before, 0), ("n", now, 8)):
            for i in range(count):
                n += 1
                owner = f"p{n}"
                sec = n % 60
                out.append({"username": owner, "full_name": owner, "created_time": t(minute, sec), "event": "create-user"})
                if phase == "n":
                    for k in range(followers):
                        out.append({"followed_username": owner, "follower_username": fans[(n + k) % 40],
                                    "created_time": t(minute, sec), "event": "follow"})
                out.append({"username": owner, "tags": brand, "photo_link": "https://example.com/p.jpg",
                            "created_time": t(minute, sec), "latitude": "48.85", "longitude": "2.35",
                            "event": "photo-upload"})
                if phase == "n":
                    for k in range(likes):
                        out.append({"followed_username": owner, "follower_username": fans[(n + 7 * k + 3) % 40],
                                    "photo_id": t(minute, sec), "created_time": t(minute, 59), "event": "like"})
    out.sort(key=lambda e: e["created_time"])
    return out


def ingest(srv, evs):
    body = "\n".join(json.dumps(e) for e in evs) + "\n"
    status, report = srv.request("POST", "/api/ingest", body, token=srv.ingest_token,
                                 content_type="application/x-ndjson")
    assert status in (200, 202), f"ingest -> {status}: {report}"
    assert report.get("rejected", 0) == 0, report
    return report


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    # A copy of the dashboard, so the reload test can "rebuild" it without touching
    # the one the other tests serve.
    dist = tmp_path_factory.mktemp("dist")
    shutil.copytree(os.environ.get("INSTABRAND_DIST", harness.ROOT / "dist"), dist, dirs_exist_ok=True)
    try:
        srv = harness.start_server(env={"INSTABRAND_GENERATOR__ENABLED": "false"}, dist=dist)
    except harness.StartError as e:
        pytest.fail(str(e))
    ingest(srv, events())
    wait_for(lambda: len(srv.get("/api/leaderboard?window=5m")["rows"]) == len(BRANDS), 20,
             message="every brand in the 5m leaderboard")
    yield srv
    harness.stop_server(srv)


@pytest.fixture
def tab(browser, quiet):
    browser.get(quiet.url("/health"))
    browser.execute_script("window.localStorage.clear()")
    browser.get_log("browser")
    return browser


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def table_brands(driver):
    return js(driver, "return [...document.querySelectorAll('[data-test=leaderboard] tbody tr')].map(r => r.dataset.brand)")


def query(driver):
    return {k: v[0] for k, v in parse_qs(urlparse(driver.current_url).query).items()}


def pressed_window(driver):
    return js(driver, "const b = document.querySelector('[data-test=window-picker] button[aria-pressed=true]');"
                      "return b ? b.textContent : null")


def sorted_column(driver):
    return js(driver, "const th = document.querySelector('[data-test=leaderboard] th[aria-sort]');"
                      "return th ? th.querySelector('button').dataset.sort : null")


def rest_order(srv, window, sort):
    return [r["brand"] for r in srv.get(f"/api/leaderboard?window={window}&sort={sort}")["rows"]]


def click_sort(driver, key):
    js(driver, "document.querySelector(`[data-test=leaderboard] button.sort[data-sort=${arguments[0]}]`).click()", key)


def test_a_copied_url_reopens_the_same_view_and_back_and_forward_step_through_it(tab, quiet):
    tab.get(quiet.url("/"))
    wait_for(lambda: len(table_brands(tab)) == len(BRANDS), 20, message="the leaderboard")
    assert query(tab).get("window") == "5m", "the window is written into the URL on arrival"
    js(tab, "[...document.querySelectorAll('[data-test=window-picker] button')].find(b => b.textContent == '1h').click()")
    wait_for(lambda: query(tab).get("window") == "1h", 5, message="window=1h in the URL")
    click_sort(tab, "reach")
    wait_for(lambda: query(tab).get("sort") == "reach", 5, message="sort=reach in the URL")
    wait_for(lambda: table_brands(tab) == rest_order(quiet, "1h", "reach"), 10, message="the table by reach")
    copied = tab.current_url

    # Another machine: nothing remembered, or another window remembered.
    tab.get(quiet.url("/health"))
    js(tab, "localStorage.clear(); localStorage.setItem('instabrand.window', '24h')")
    tab.get(copied)
    wait_for(lambda: table_brands(tab) == rest_order(quiet, "1h", "reach"), 20, message="the copied view")
    assert pressed_window(tab) == "1h"
    assert sorted_column(tab) == "reach"
    screenshot(tab, "marketer-copied-url-by-reach")

    # Back and forward step through the choices, and the view follows the URL.
    tab.back()
    assert urlparse(tab.current_url).path == "/health"
    tab.forward()
    wait_for(lambda: sorted_column(tab) == "reach", 10, message="forward to the copied view")
    click_sort(tab, "comments")
    wait_for(lambda: sorted_column(tab) == "comments" and query(tab).get("sort") == "comments", 5,
             message="sorted by comments")
    tab.back()
    wait_for(lambda: sorted_column(tab) == "reach" and query(tab).get("sort") == "reach", 10,
             message="back to the reach order")
    wait_for(lambda: table_brands(tab) == rest_order(quiet, "1h", "reach"), 10, message="the reach order again")
    tab.forward()
    wait_for(lambda: sorted_column(tab) == "comments", 10, message="forward to comments again")

    # The map's brand filter, the same way.
    tab.get(quiet.url("/map?window=24h"))
    wait_for(lambda: len(css(tab, "[data-test=map-filter] option")) > 1, 20, message="the brand list")
    Select(tab.find_element(By.CSS_SELECTOR, "[data-test=map-filter]")).select_by_value("Apple, Inc.")
    wait_for(lambda: query(tab).get("brand") == "Apple, Inc.", 5, message="brand= in the URL")
    assert "brand=Apple%2C%20Inc." in tab.current_url
    copied = tab.current_url
    tab.get(quiet.url("/"))
    tab.get(copied)
    wait_for(lambda: js(tab, "return document.querySelector('[data-test=map-filter]').value") == "Apple, Inc.", 20,
             message="the filter from the copied URL")
    assert pressed_window(tab) is None or query(tab)["window"] == "24h"
    Select(tab.find_element(By.CSS_SELECTOR, "[data-test=map-filter]")).select_by_value("")
    wait_for(lambda: "brand" not in query(tab), 5, message="All brands: no brand= in the URL")
    tab.back()
    wait_for(lambda: js(tab, "return document.querySelector('[data-test=map-filter]').value") == "Apple, Inc.", 10,
             message="back restores the filter")
    assert not console_errors(tab)


def test_the_leaderboard_sorts_by_each_column_and_rising_matches_rest(tab, quiet):
    tab.get(quiet.url("/?window=5m"))
    wait_for(lambda: len(table_brands(tab)) == len(BRANDS), 20, message="the leaderboard")
    for key in ["reach", "likes", "engagement", "photos", "rising"]:
        click_sort(tab, key)
        expected = rest_order(quiet, "5m", key)
        wait_for(lambda: table_brands(tab) == expected, 10,
                 message=f"the table by {key} as REST orders it ({expected}, shown {table_brands(tab)})")
    rows = quiet.get("/api/leaderboard?window=5m&sort=rising")["rows"]
    shown = js(tab, "return [...document.querySelectorAll('[data-test=leaderboard] tbody td.rising')].map(td => +td.dataset.value)")
    assert shown == [r["photos"] - r["previous_photos"] for r in rows]
    assert shown == sorted(shown, reverse=True)
    assert rows[0]["brand"] == "Adidas" and rows[-1]["brand"] == "Ben & Jerry's", rows
    screenshot(tab, "marketer-rising")

    # A live move up the table gets an arrow.
    click_sort(tab, "photos")
    wait_for(lambda: table_brands(tab) == rest_order(quiet, "5m", "photos"), 10, message="by photos")
    last = table_brands(tab)[-1]
    ingest(quiet, [{"username": f"late{i}", "tags": last, "photo_link": "https://example.com/p.jpg",
                    "created_time": t(8, 59), "latitude": "1", "longitude": "2", "event": "photo-upload"}
                   for i in range(8)])
    wait_for(lambda: table_brands(tab)[0] == last, 10, message=f"{last} to the top")
    arrow = js(tab, "const a = document.querySelector(`tr[data-brand='${arguments[0]}'] [data-test=rank-move]`);"
                    "return a ? a.textContent : null", last)
    assert arrow and arrow.startswith("▲"), arrow
    screenshot(tab, "marketer-rank-arrow")
    assert not console_errors(tab)


def get_csv(srv, href):
    u = urlparse(href)
    assert u.netloc == urlparse(srv.base).netloc, href
    status, body = srv.request("GET", u.path + "?" + u.query)
    assert status == 200, body
    return list(csv.DictReader(io.StringIO(body)))


def test_the_leaderboard_and_influencer_csv_exports_parse_back_to_rest(tab, quiet):
    tab.get(quiet.url("/?window=5m&sort=rising"))
    wait_for(lambda: len(table_brands(tab)) >= len(BRANDS), 20, message="the leaderboard")
    href = js(tab, "return document.querySelector('[data-test=leaderboard-csv]').href")
    assert "window=5m" in href and "sort=rising" in href, href
    rows = get_csv(quiet, href)
    rest = quiet.get("/api/leaderboard?window=5m&sort=rising")["rows"]
    assert [r["brand"] for r in rows] == [r["brand"] for r in rest]
    for got, want in zip(rows, rest):
        assert int(got["photos"]) == want["photos"]
        assert int(got["reach"]) == want["reach"]
        assert int(got["change"]) == want["photos"] - want["previous_photos"]
        assert abs(float(got["engagement_rate"]) - want["engagement_rate"]) < 1e-6
    status, _ = quiet.request("GET", urlparse(href).path + "?" + urlparse(href).query)
    href = js(tab, "return document.querySelector('[data-test=influencers-csv]').href")
    influencers = get_csv(quiet, href)
    rest = quiet.get("/api/influencers?window=5m&limit=100")
    assert [r["username"] for r in influencers] == [i["username"] for i in rest]
    assert [int(r["score"]) for r in influencers] == [i["score"] for i in rest]


PLAYLIST = "/present?views=overview,map:Nike,brand:Adidas,compare:Nike+Apple%2C%20Inc.,nonsense&every=3"
NAMES = ["overview", "map:Nike", "brand:Adidas", "compare:Nike+Apple%2C%20Inc."]


def present_state(driver):
    return js(driver, "const p = document.querySelector('[data-test=present]');"
                      "return p ? [p.dataset.viewName, p.dataset.paused] : [null, null]")


def test_the_playlist_rotates_through_the_views_its_url_names_and_pauses_on_space(tab, quiet):
    tab.get(quiet.url(PLAYLIST))
    wait_for(lambda: present_state(tab)[0] == "overview", 15, message="the first view")
    assert "nonsense" in js(tab, "return document.querySelector('[data-test=present-refused]').innerText")
    seen = []
    deadline = time.time() + 4 * 3 + 8
    while time.time() < deadline and len(seen) < 5:
        name = present_state(tab)[0]
        if not seen or seen[-1] != name:
            seen.append(name)
            if name == "compare:Nike+Apple%2C%20Inc.":
                wait_for(lambda: css(tab, "[data-test=compare-table] tr[data-brand]"), 3, message="the comparison")
                shown_compare = js(tab, "return [...document.querySelectorAll('[data-test=compare-table] tr[data-brand]')]"
                                        ".map(r => [r.dataset.brand, +r.querySelector('.photos').dataset.value,"
                                        " +r.querySelector('.reach').dataset.value])"
                                        ".concat([[...document.querySelectorAll('[data-test=overlap]')].map(o => +o.dataset.value)])")
                screenshot(tab, "marketer-playlist-compare")
            if name == "brand:Adidas":
                wait_for(lambda: css(tab, "[data-test=present] [data-test=brand-cards]"), 3, message="the brand view")
            if name == "map:Nike":
                time.sleep(0.5)
                screenshot(tab, "marketer-playlist-map-nike")
        time.sleep(0.2)
    assert seen == NAMES + ["overview"], seen

    # The comparison's numbers are the REST API's.
    compare = quiet.get("/api/compare?brands=Nike,Apple%2C%20Inc.&window=5m")
    assert shown_compare == [[b["metrics"]["brand"], b["metrics"]["photos"], b["metrics"]["reach"]]
                             for b in compare["brands"]] + [[o["overlap"] for o in compare["overlaps"]]]

    body = tab.find_element(By.TAG_NAME, "body")
    body.send_keys(" ")
    wait_for(lambda: present_state(tab)[1] == "true", 3, message="space pauses")
    held = present_state(tab)[0]
    assert css(tab, "[data-test=present-paused]")
    time.sleep(4.5)
    assert present_state(tab) == [held, "true"], "a paused playlist stays on its view"
    body.send_keys(Keys.ARROW_RIGHT)
    nxt = NAMES[(NAMES.index(held) + 1) % 4]
    wait_for(lambda: present_state(tab)[0] == nxt, 3, message="the right arrow steps forward")
    body.send_keys(Keys.ARROW_LEFT)
    wait_for(lambda: present_state(tab)[0] == held, 3, message="the left arrow steps back")
    body.send_keys(" ")
    wait_for(lambda: present_state(tab)[1] == "false", 3, message="space resumes")
    wait_for(lambda: present_state(tab)[0] == nxt, 6, message="the rotation moves on after resuming")
    assert js(tab, "return document.body.dataset.wakeLock") in ("held", "refused", "unavailable")
    assert not console_errors(tab)


def test_the_playlist_reloads_itself_when_the_server_reports_a_new_build(tab, quiet):
    before = quiet.get("/api/build")["id"]
    tab.get(quiet.url("/present?views=overview&buildcheck=1"))
    wait_for(lambda: present_state(tab)[0] == "overview", 15, message="presentation mode")
    js(tab, "window.__sameDocument = true")
    time.sleep(2.5)
    assert js(tab, "return window.__sameDocument === true"), "no reload while the build is the same"
    # A new dashboard build: Trunk writes a new index.html.
    index = harness.Path(quiet.static_dir) / "index.html"
    original = index.read_text()
    try:
        index.write_text(original + "\n<!-- rebuilt -->\n")
        assert quiet.get("/api/build")["id"] != before
        wait_for(lambda: js(tab, "return window.__sameDocument === undefined"), 10, message="a reload")
        wait_for(lambda: present_state(tab)[0] == "overview", 15, message="presentation mode again")
    finally:
        index.write_text(original)


CAPTURE_DOWNLOADS = """
window.__downloads = [];
HTMLAnchorElement.prototype.click = function () {
  window.__downloads.push([this.download, this.href.slice(0, 22), this.href.length]);
};
"""


def test_a_brand_chart_downloads_as_png_and_its_series_csv_has_reach(tab, quiet):
    tab.get(quiet.url("/brand/" + quote("Apple, Inc.", safe="") + "?window=5m"))
    wait_for(lambda: css(tab, "[data-test=brand-cards]"), 20, message="the brand page")
    time.sleep(0.5)
    js(tab, CAPTURE_DOWNLOADS)
    js(tab, "document.querySelector('[data-test=chart-png]').click()")
    [(name, head, size)] = js(tab, "return window.__downloads")
    assert name == "Apple__Inc.-chart-5m-to-2017-06-12T1008Z.png", name
    assert head == "data:image/png;base64," and size > 1000
    rows = get_csv(quiet, js(tab, "return document.querySelector('[data-test=csv-link]').href"))
    assert list(rows[0].keys()) == ["time_utc", "brand", "photos", "likes", "comments", "reach", "engagement_rate"]
    assert sum(int(r["photos"]) for r in rows) == BRANDS["Apple, Inc."][1]
    assert int(rows[-1]["reach"]) > 0


def test_three_brands_picked_in_the_leaderboard_compare_as_rest_says(tab, quiet):
    tab.get(quiet.url("/?window=5m"))
    wait_for(lambda: len(table_brands(tab)) == len(BRANDS), 20, message="the leaderboard")
    picks = ["Nike", "Apple, Inc.", "Lego"]
    for b in picks:
        js(tab, "document.querySelector(`tr[data-brand=\"${arguments[0]}\"] [data-test=pick]`).click()", b)
    wait_for(lambda: css(tab, "[data-test=compare-picked]"), 5, message="the compare link")
    js(tab, "document.querySelector('[data-test=compare-picked]').click()")
    wait_for(lambda: urlparse(tab.current_url).path == "/compare", 5, message="the compare page")
    assert parse_qs(urlparse(tab.current_url).query)["brands"] == [",".join(picks)]
    wait_for(lambda: len(css(tab, "[data-test=compare-table] tr[data-brand]")) == 3, 15, message="three brands compared")
    rest = quiet.get("/api/compare?brands=" + ",".join(quote(b, safe="") for b in picks) + "&window=5m")
    shown = js(tab, "return [...document.querySelectorAll('[data-test=compare-table] tr[data-brand]')]"
                    ".map(r => [r.dataset.brand, +r.querySelector('.photos').dataset.value, +r.querySelector('.reach').dataset.value])")
    assert shown == [[b["metrics"]["brand"], b["metrics"]["photos"], b["metrics"]["reach"]] for b in rest["brands"]]
    overlaps = js(tab, "return [...document.querySelectorAll('[data-test=overlap]')].map(o => [+o.dataset.value, +o.dataset.error])")
    assert overlaps == [[o["overlap"], o["error"]] for o in rest["overlaps"]]
    assert len(overlaps) == 3, "every pair of three"
    js(tab, "document.querySelector('[data-test=compare-metric] button[data-metric=reach]').click()")
    wait_for(lambda: query(tab).get("metric") == "reach", 5, message="metric=reach in the URL")
    time.sleep(0.5)
    screenshot(tab, "marketer-compare-three-brands")

    js(tab, CAPTURE_DOWNLOADS)
    js(tab, "document.querySelector('[data-test=trend-png]').click()")
    [(name, head, _)] = js(tab, "return window.__downloads")
    assert name == "compare-Nike-vs-Apple__Inc.-vs-Lego-reach-5m-to-2017-06-12T1008Z.png", name
    assert head == "data:image/png;base64,"

    rows = get_csv(quiet, js(tab, "return document.querySelector('[data-test=compare-csv]').href"))
    for b in rest["brands"]:
        mine = [r for r in rows if r["brand"] == b["metrics"]["brand"]]
        assert len(mine) == len(b["series"]) == 5
        assert sum(int(r["photos"]) for r in mine) == b["metrics"]["photos"]
        assert [int(r["reach"]) for r in mine] == [p["reach"] for p in b["series"]]

    # The copied link reopens the same comparison.
    copied = tab.current_url
    tab.get(quiet.url("/"))
    tab.get(copied)
    wait_for(lambda: len(css(tab, "[data-test=compare-table] tr[data-brand]")) == 3, 15, message="the copied comparison")
    assert js(tab, "return document.querySelector('[data-test=compare-metric] button[aria-pressed=true]').dataset.metric") == "reach"
    assert not console_errors(tab)


def test_the_brand_chart_draws_the_previous_period_and_marks_the_partial_step(tab, quiet):
    tab.get(quiet.url("/brand/Nike?window=5m"))
    wait_for(lambda: css(tab, "[data-test=series-chart][data-previous-photos]"), 20, message="the chart")
    detail = quiet.get("/api/brands/Nike?window=5m")
    chart = tab.find_element(By.CSS_SELECTOR, "[data-test=series-chart]")
    assert int(chart.get_attribute("data-previous-photos")) == detail["previous"]["photos"] == BRANDS["Nike"][0]
    assert int(chart.get_attribute("data-partial-ms")) == detail["series"][-1]["minute_ms"]
    time.sleep(0.3)
    screenshot(tab, "marketer-brand-previous-period")
    assert not console_errors(tab)
