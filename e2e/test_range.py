"""Issue 15, item 2, in a real headless Chromium: a date range on the brand and compare
pages. A server of its own with the generator off is fed nine days of event time
through `/api/ingest`; the brand page opened with `range=7d` draws the buckets
`/api/brands/{brand}/series` serves for the same request (hourly), with its totals as
the cards; the URL holds the range and reopens it; from–to, back and forward, the
window buttons and a server error behave; and the compare page reads `/api/series`."""
import json
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By

import harness
from conftest import screenshot, wait_for

DAYS = 9
BRANDS = ("Nike", "Adidas")


def t(day, hour, minute=0):
    # 2017-06-03 00:00 UTC plus `day` days.
    return f"2017-06-{3 + day:02d} {hour:02d}:{minute:02d}:00"


def events():
    """Photos at four hours of each of nine days, a varying count per brand, and a like
    on some, so every hourly bucket in the range differs from its neighbours."""
    out, n = [], 0
    out.append({"username": "fan", "full_name": "fan", "created_time": t(0, 0), "event": "create-user"})
    for day in range(DAYS + 1):
        for hour in (1, 7, 13, 19):
            if day == DAYS and hour > 7:
                break  # the clock stops at day 9, 07:xx
            for b, brand in enumerate(BRANDS):
                for i in range((day + hour + 2 * b) % 4 + 1):
                    n += 1
                    owner = f"u{n}"
                    at = t(day, hour, i)
                    out.append({"username": owner, "full_name": owner, "created_time": at, "event": "create-user"})
                    out.append({"username": owner, "tags": brand, "photo_link": "https://example.com/p.jpg",
                                "created_time": at, "latitude": "48.85", "longitude": "2.35",
                                "event": "photo-upload"})
                    if i == 0:
                        out.append({"followed_username": owner, "follower_username": "fan",
                                    "photo_id": at, "created_time": t(day, hour, 30), "event": "like"})
    out.sort(key=lambda e: e["created_time"])
    return out


@pytest.fixture(scope="module")
def history():
    try:
        srv = harness.start_server(env={"INSTABRAND_GENERATOR__ENABLED": "false"})
    except harness.StartError as e:
        pytest.fail(str(e))
    evs = events()
    body = "\n".join(json.dumps(e) for e in evs) + "\n"
    status, report = srv.request("POST", "/api/ingest", body, token=srv.ingest_token,
                                 content_type="application/x-ndjson")
    assert status in (200, 202), f"ingest -> {status}: {report}"
    assert report.get("rejected", 0) == 0, report
    photos = sum(1 for e in evs if e["event"] == "photo-upload")
    wait_for(lambda: srv.get("/api/health")["photos"] >= photos, 30, message="every photo applied")
    yield srv
    harness.stop_server(srv)


@pytest.fixture
def tab(browser, history):
    browser.get(history.url("/health"))
    browser.execute_script("window.localStorage.clear()")
    browser.get_log("browser")
    return browser


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def query(driver):
    return {k: v[0] for k, v in parse_qs(urlparse(driver.current_url).query).items()}


def chart(driver):
    """What the brand chart drew: the request it made and its buckets."""
    return js(driver, "const c = document.querySelector('[data-test=series-chart]');"
                      "return c ? {query: c.dataset.query || null, resolution: c.dataset.resolution || null,"
                      " points: c.dataset.points || null, partial: c.dataset.partialMs} : null")


def drawn(driver):
    c = chart(driver)
    return c if c and c["query"] and c["points"] is not None else None


def as_cells(series):
    return ",".join(f"{p['time_ms']}:{p['photos']}:{p['likes']}:{p['comments']}" for p in series["points"])


def check_against_rest(driver, srv, brand, resolution):
    c = wait_for(lambda: drawn(driver), 20, message="the range chart drawn")
    rest = srv.get(f"/api/brands/{brand}/series?{c['query']}")
    assert rest["resolution"] == resolution, rest["resolution"]
    assert c["resolution"] == resolution
    assert c["points"] == as_cells(rest), "the chart's buckets are REST's"
    cards = wait_for(lambda: js(driver, "const s = document.querySelector('[data-test=range-cards]');"
                                        "return s ? {...s.dataset} : null"), 10, message="the range cards")
    totals = rest["totals"]
    assert int(cards["photos"]) == totals["photos"] and int(cards["likes"]) == totals["likes"]
    assert totals["photos"] == sum(p["photos"] for p in rest["points"])
    return c, rest


def test_a_seven_day_range_is_drawn_from_hourly_buckets_as_rest_serves_them(tab, history):
    tab.get(history.url("/brand/Nike?range=7d"))
    c, rest = check_against_rest(tab, history, "Nike", "hour")
    clock = history.get("/api/health")["stream_clock_ms"]
    day = 86_400_000
    assert c["query"] == f"from={clock - 7 * day}&to={clock}", "seven days back from the stream's clock"
    assert len(rest["points"]) >= 7 * 24, len(rest["points"])
    assert rest["totals"]["photos"] > 0
    # Events span nine days: the two oldest fall outside.
    every = history.get(f"/api/brands/Nike/series?from={clock - 10 * day}&to={clock}&resolution=hour")
    assert every["totals"]["photos"] > rest["totals"]["photos"]
    # The last bucket holds the clock, so it is marked partial.
    assert c["partial"] == str(rest["points"][-1]["time_ms"])
    badge = tab.find_element(By.CSS_SELECTOR, "[data-test=range-resolution]")
    assert badge.text == "hourly"
    assert js(tab, "return document.querySelector('[data-test=range-preset]').value") == "7d"
    assert js(tab, "return document.querySelector('[data-test=window-picker] button[aria-pressed=true]')") is None, \
        "no window lit while a range shows"
    q = query(tab)
    assert q.get("range") == "7d" and "window" in q, q
    screenshot(tab, "range-7d-hourly")

    # The copied URL, on a browser that remembers nothing, reopens the same range.
    copied = tab.current_url
    tab.get(history.url("/health"))
    js(tab, "window.localStorage.clear()")
    tab.get(copied)
    again = wait_for(lambda: drawn(tab), 20, message="the reopened range")
    assert again["query"] == c["query"] and again["points"] == c["points"]
    assert js(tab, "return document.querySelector('[data-test=range-preset]').value") == "7d"


def test_from_to_back_forward_window_buttons_and_server_errors(tab, history):
    tab.get(history.url("/brand/Adidas?range=7d"))
    seven = wait_for(lambda: drawn(tab), 20, message="the 7-day range")
    # From–to through the two inputs: two days, read as UTC.
    js(tab, "document.querySelector('[data-test=range-from]').value = '2017-06-05T00:00';"
            "document.querySelector('[data-test=range-to]').value = '2017-06-06T23:59';"
            "document.querySelector('[data-test=range-apply]').click()")
    wait_for(lambda: query(tab).get("from") == "2017-06-05T00:00" and query(tab).get("to") == "2017-06-06T23:59",
             5, message="from and to in the URL")
    assert "range" not in query(tab)
    wait_for(lambda: (drawn(tab) or {}).get("query", "").startswith("from=2017-06-05"), 20,
             message="the from–to chart")
    c, rest = check_against_rest(tab, history, "Adidas", "hour")
    assert len(rest["points"]) == 48 and c["partial"] == "", "a range in the past has no partial bucket"
    screenshot(tab, "range-from-to")

    tab.back()
    wait_for(lambda: query(tab).get("range") == "7d", 5, message="back to range=7d")
    wait_for(lambda: (drawn(tab) or {}).get("query") == seven["query"], 20, message="the 7-day chart again")
    tab.forward()
    wait_for(lambda: query(tab).get("from") == "2017-06-05T00:00", 5, message="forward to from–to")

    # A window button drops the range; the chart is the window's again.
    js(tab, "[...document.querySelectorAll('[data-test=window-picker] button')].find(b => b.textContent == '24h').click()")
    wait_for(lambda: query(tab).get("window") == "24h" and "from" not in query(tab) and "range" not in query(tab),
             5, message="window=24h, no range")
    wait_for(lambda: (chart(tab) or {}).get("query") is None, 10, message="the window chart")
    assert tab.find_elements(By.CSS_SELECTOR, "[data-test=brand-cards]")

    # The server's 400 is shown, not swallowed.
    tab.get(history.url("/brand/Adidas?from=yesterday"))
    err = wait_for(lambda: tab.find_elements(By.CSS_SELECTOR, "[data-test=range-error]"), 20,
                   message="the server's error on screen")
    assert "not a time" in err[0].text and "400" in err[0].text, err[0].text


def test_the_compare_page_reads_trends_and_share_of_voice_over_the_range(tab, history):
    tab.get(history.url("/compare?brands=Nike,Adidas&range=7d"))
    wait_for(lambda: tab.find_elements(By.CSS_SELECTOR, "[data-test=range-table] tbody tr"), 20,
             message="the range totals")
    badge = tab.find_element(By.CSS_SELECTOR, "[data-test=range-resolution]")
    assert badge.text == "hourly"
    clock = history.get("/api/health")["stream_clock_ms"]
    rest = history.get(f"/api/series?brands=Nike,Adidas&from={clock - 7 * 86_400_000}&to={clock}")
    assert rest["resolution"] == "hour"
    shown = js(tab, "return Object.fromEntries([...document.querySelectorAll('[data-test=range-table] tbody tr')]"
                    ".map(r => [r.dataset.brand, +r.dataset.photos]))")
    assert shown == {b["brand"]: b["totals"]["photos"] for b in rest["brands"]}
    assert js(tab, "return document.querySelector('[data-test=compare-trend]').dataset.resolution") == "hour"
    note = tab.find_element(By.CSS_SELECTOR, "[data-test=overlap-note]").text
    assert "window" in note, note
    screenshot(tab, "range-compare-7d")
