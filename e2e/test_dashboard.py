"""The dashboard in a real headless Chromium against the real server on its embedded
generator: pages load cleanly, numbers move, feeds update live, user text stays text,
presenter controls work and are guarded, and nothing is fetched from another host."""
import json
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote, urlparse

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import harness
from conftest import console_errors, screenshot, wait_for

XSS = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def text_of(driver, selector):
    """Visible text of the first match, read in one script call: live views re-render,
    so an element handle held across two calls may already be gone."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", selector)


def attrs_of(driver, selector, name):
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]))",
        selector, name)


def top_brand(server):
    rows = server.get("/api/leaderboard?window=all")["rows"]
    return rows[0]["brand"] if rows else server.get("/api/brands")[0]["name"]


def naive_now(offset_s=0):
    return datetime.fromtimestamp(time.time() + offset_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def ingest(server, events):
    body = "\n".join(json.dumps(e) for e in events) + "\n"
    status, report = server.request("POST", "/api/ingest", body, token=server.ingest_token,
                                    content_type="application/x-ndjson")
    assert status in (200, 202), f"ingest -> {status}: {report}"
    assert report.get("rejected", 0) == 0, report
    return report


def assert_no_alert_dialog(driver):
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"user text ran as script: alert({text!r})")


def pages(server):
    user = server.get("/api/influencers?window=all&limit=1")
    username = user[0]["username"] if user else "nobody"
    return [
        ("overview", "/", "[data-test=leaderboard] tbody tr"),
        ("brand", "/brand/" + quote(top_brand(server), safe=""), "[data-test=brand-cards]"),
        ("map", "/map", "[data-test=map-readout]"),
        ("feeds-search", "/feed", "[data-test=user-search]"),
        ("feed", "/feed/" + quote(username, safe=""), "[data-test=profile]"),
        ("health", "/health", "[data-test=health-status]"),
        ("presentation", "/present", "[data-test=present] [data-test=leaderboard] tbody tr"),
    ]


def test_every_page_loads_without_console_errors(page, server):
    wait_for(lambda: server.get("/api/leaderboard?window=all")["rows"], 30, message="the generator's first brands")
    for name, path, ready in pages(server):
        page.get(server.url(path))
        wait_for(lambda: css(page, ready), 20, message=f"{name} page content ({ready})")
        time.sleep(1.0)  # let live frames and the map paint
        screenshot(page, name)
        errors = console_errors(page)
        assert not errors, f"{path}: console errors {errors}"
        assert text_of(page, "[data-test=conn]") in ("live", "") or name == "presentation"


def test_leaderboard_numbers_change_over_time(page, server):
    page.get(server.url("/"))
    first = wait_for(lambda: text_of(page, "[data-test=total-photos] .value").replace("\u202f", "").strip("–") and
                     text_of(page, "[data-test=total-photos] .value"), 15, message="a first live number")

    def snapshot():
        cells = attrs_of(page, "[data-test=leaderboard] tbody tr td[data-value]", "data-value")
        return text_of(page, "[data-test=total-photos] .value"), tuple(cells)

    before = snapshot()
    wait_for(lambda: snapshot() != before, 30, message=f"leaderboard numbers to move from {first}")


def test_map_points_arrive_and_are_drawn(page, server):
    page.get(server.url("/map"))
    def readout(name):
        return (attrs_of(page, "[data-test=map-readout]", name) or [None])[0]

    wait_for(lambda: int(readout("data-points") or 0) > 0, 20, message="map points")
    before = int(readout("data-points"))
    wait_for(lambda: int(readout("data-points")) > before, 30, message="new map points")
    assert float(readout("data-frame-ms")) < 100


def test_a_new_photo_and_comment_show_live_in_the_feed_as_text(page, server):
    owner = "e2e" + uuid.uuid4().hex[:8]
    friend = "e2efriend" + uuid.uuid4().hex[:6]
    taken = naive_now()
    ingest(server, [
        {"username": owner, "full_name": "End To End", "created_time": naive_now(-5), "event": "create-user"},
        {"username": friend, "full_name": "A Friend", "created_time": naive_now(-5), "event": "create-user"},
    ])
    page.get(server.url("/feed/" + owner))
    wait_for(lambda: css(page, "[data-test=profile]"), 15, message="the new user's profile")
    # Posted after the page subscribed: it must arrive live, not from a reload.
    ingest(server, [{"username": owner, "tags": "Apple, Inc.", "photo_link": "javascript:alert(1)",
                     "created_time": taken, "latitude": "48.85", "longitude": "2.35", "event": "photo-upload"}])
    selector = f"article.photo[data-owner={owner}]"
    wait_for(lambda: css(page, selector), 20, message="the new photo in the feed")
    assert "Apple, Inc." in text_of(page, selector)
    assert not css(page, selector + " a.photo-link"), "a javascript: link must not become a link"
    assert "javascript:alert(1)" in text_of(page, selector + " .photo-ref")

    ingest(server, [
        {"followed_username": owner, "follower_username": friend, "photo_id": taken, "event": "like",
         "created_time": naive_now(1)},
        {"followed_username": owner, "follower_username": friend, "photo_id": taken, "text": XSS,
         "event": "comment", "created_time": naive_now(1)},
    ])
    wait_for(lambda: XSS in text_of(page, selector + " .comment-list"), 20, message="the comment, as literal text")
    wait_for(lambda: attrs_of(page, selector + " .likes", "data-value") == ["1"], 10, message="the live like count")
    assert not css(page, selector + " .comment-list script, " + selector + " .comment-list img"), "comment markup was parsed as HTML"
    assert not css(page, "img[src=x]")
    assert_no_alert_dialog(page)
    screenshot(page, "feed-live-photo-and-comment")
    assert not console_errors(page)


def test_presenter_controls_refuse_without_token(server):
    for path, body in [("/api/control", None), ("/api/control/pause", ""),
                       ("/api/control/campaign", json.dumps({"brand": "Nike"}))]:
        method = "GET" if body is None else "POST"
        status, reply = server.request(method, path, body)
        assert status == 401, f"{method} {path} without a token -> {status}"
        assert isinstance(reply, dict) and reply.get("error"), reply
        status, _ = server.request(method, path, body, token="wrong-token")
        assert status == 401, f"{method} {path} with a wrong token -> {status}"


def test_presentation_mode_rotates_views(page, server):
    page.get(server.url("/present?every=3"))
    def view():
        return (attrs_of(page, "[data-test=present]", "data-view") or [None])[0]

    first = wait_for(view, 10, message="presentation mode")
    wait_for(lambda: view() != first, 10, message="the next view")
    if view() == "1":
        time.sleep(1)
        screenshot(page, "presentation-map")
    assert "present" in page.find_element(By.TAG_NAME, "body").get_attribute("class")
    assert not console_errors(page)


def test_brand_page_exports_its_series_as_csv_from_the_same_server(page, server):
    brand = top_brand(server)
    page.get(server.url("/brand/" + quote(brand, safe="")))
    wait_for(lambda: css(page, "[data-test=brand-cards]"), 20, message="the brand's numbers")
    href = page.execute_script("return document.querySelector('[data-test=csv-link]').href")
    assert urlparse(href).netloc == urlparse(server.base).netloc
    status, body = server.request("GET", urlparse(href).path + "?" + urlparse(href).query)
    assert status == 200, body
    assert isinstance(body, str) and body.splitlines()[0].count(",") >= 2, body[:200]


def test_the_keyboard_moves_between_pages_and_presentation(page, server):
    page.get(server.url("/"))
    wait_for(lambda: css(page, "[data-test=leaderboard] tbody tr"), 20, message="the overview")
    body = page.find_element(By.TAG_NAME, "body")
    body.send_keys("m")
    wait_for(lambda: urlparse(page.current_url).path == "/map", 5, message="key m opens the map")
    body.send_keys("3")
    body.send_keys("o")
    wait_for(lambda: attrs_of(page, "[data-test=window-picker] button[aria-pressed=true]", "title") == ["24 hours"],
             5, message="key 3 picks the 24-hour window")
    body.send_keys("p")
    wait_for(lambda: css(page, "[data-test=present]"), 5, message="key p starts the presentation")
    body.send_keys(Keys.ESCAPE)
    wait_for(lambda: urlparse(page.current_url).path == "/", 5, message="Escape leaves it")
    page.execute_script("localStorage.removeItem('instabrand.window')")
    assert not console_errors(page)


def test_the_page_says_when_it_is_offline_and_resyncs_after_a_server_restart(page):
    """Its own server on a fixed port, so the page can find it again after a restart."""
    port = harness.free_port()
    first = harness.start_server(port)
    try:
        page.get(first.url("/"))
        wait_for(lambda: css(page, "[data-test=leaderboard] tbody tr"), 20, message="the overview")
        assert attrs_of(page, "[data-test=conn]", "data-state") == ["open"]
    finally:
        harness.stop_server(first)
    wait_for(lambda: attrs_of(page, "[data-test=conn]", "data-state") == ["reconnecting"], 15,
             message="the connection badge to show the outage")
    assert "retrying" in text_of(page, "[data-test=conn]")
    screenshot(page, "offline")
    second = harness.start_server(port)
    try:
        # A fresh server starts from nothing: the resync snapshot replaces the old rows.
        wait_for(lambda: attrs_of(page, "[data-test=conn]", "data-state") == ["open"], 30,
                 message="the page to reconnect by itself")
        wait_for(lambda: css(page, "[data-test=leaderboard] tbody tr"), 20, message="live rows again")
        errors = [e for e in console_errors(page) if "/ws" not in e["message"]]
        assert not errors, errors
    finally:
        harness.stop_server(second)


def test_bad_input_shows_on_the_health_page_as_text(page, server):
    raw = '{"event": "photo-upload", "username": "<b>x</b><img src=x onerror=alert(2)>"}'
    status, report = server.request("POST", "/api/ingest", raw + "\nnot json at all\n", token=server.ingest_token,
                                    content_type="application/x-ndjson")
    assert status in (200, 202), report
    assert report["rejected"] == 2, report
    page.get(server.url("/health"))
    # Raw payloads are listed only to holders of the dead-letter token.
    wait_for(lambda: css(page, "[data-test=dead-letter-token]"), 20, message="the token form")
    assert "<img" not in text_of(page, "[data-test=dead-letters]")
    css(page, "[data-test=dead-letter-token]")[0].send_keys(harness.DEAD_LETTERS_TOKEN + Keys.ENTER)
    wait_for(lambda: "<img src=x onerror=alert(2)>" in text_of(page, "[data-test=dead-letters]"), 20,
             message="the dead letter's original bytes, as text")
    wait_for(lambda: text_of(page, "[data-test=dead-letter-reasons]").strip() not in ("", "Dead letters by reason\nNone."),
             10, message="dead letters counted by reason")
    assert not css(page, "[data-test=dead-letters] img, [data-test=dead-letters] b")
    assert_no_alert_dialog(page)
    # The ingest was answered once durable, so a checkpoint and an archive file exist.
    # (Labels are upper-cased by CSS, and Selenium reads rendered text.)
    wait_for(lambda: "CHECKPOINTS" in text_of(page, "[data-test=durability]").upper()
             and "ARCHIVED EVENTS" in text_of(page, "[data-test=durability]").upper(), 10,
             message="checkpoints and the archive on the health page")
    health = server.get("/api/health")
    assert health["checkpoints"]["taken"] >= 1, health["checkpoints"]
    assert health["archive"]["location"].endswith("archive"), health["archive"]
    screenshot(page, "health-dead-letters")
    assert not console_errors(page)


def test_no_request_leaves_the_servers_origin(page, server):
    origin = urlparse(server.base)
    seen = set()
    for _, path, ready in pages(server):
        page.get(server.url(path))
        wait_for(lambda: css(page, ready), 20, message=path)
        time.sleep(1.0)
        for name in page.execute_script("return performance.getEntries().map(e => e.name)"):
            seen.add(name)
        for entry in page.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") in ("Network.requestWillBeSent", "Network.webSocketCreated"):
                seen.add((msg["params"].get("request") or {}).get("url") or msg["params"].get("url", ""))
    assert seen, "no requests were recorded"
    foreign = []
    for url in seen:
        u = urlparse(url)
        if u.scheme in ("data", "blob", "about", "") or (u.scheme in ("http", "https", "ws", "wss") and u.netloc == origin.netloc):
            continue
        foreign.append(url)
    assert not foreign, f"requests outside {server.base}: {sorted(foreign)}"


def test_a_campaign_launched_from_the_controls_fires_an_alert_on_screen(page, server):
    # The spike detector compares a brand's last 30 s with its own baseline and needs a
    # minute of history first: give the fresh server that, then pick a brand that has
    # been active but is not among the busiest, so a burst stands out.
    wait_for(lambda: server.get("/api/health")["uptime_ms"] >= 95_000, 120, interval=1.0,
             message="95 s of stream history")
    rows = [r for r in server.get("/api/leaderboard?window=5m")["rows"] if r["photos"] > 0]
    assert rows, "the generator has posted nothing"
    brand = rows[len(rows) // 2]["brand"]
    page.get(server.url("/?presenter"))
    wait_for(lambda: css(page, "[data-test=token-input]"), 10, message="the token form")
    assert not css(page, "[data-test=campaign-form]"), "controls must stay hidden before a token"
    css(page, "[data-test=token-input]")[0].send_keys(server.control_token)
    css(page, "[data-test=token-form] button[type=submit]")[0].click()
    wait_for(lambda: "Generator" in text_of(page, "[data-test=generator-status]")
             and "unknown" not in text_of(page, "[data-test=generator-status]"), 10, message="generator status")
    assert page.execute_script("return localStorage.getItem('instabrand.control_token')") == server.control_token

    def fill(selector, value):
        el = css(page, selector)[0]
        el.clear()
        el.send_keys(value)

    fill("[data-test=campaign-brand]", brand)
    fill("[data-test=campaign-city]", "Paris")
    fill("[data-test=campaign-photos]", "1000")
    fill("[data-test=campaign-seconds]", "10")
    css(page, "[data-test=campaign-launch]")[0].click()
    wait_for(lambda: "launched" in text_of(page, "[data-test=control-message]"), 10, message="campaign accepted")
    on_screen = f'[data-test=alerts] li[data-brand="{brand}"], [data-test=alert-banner][data-brand="{brand}"]'
    wait_for(lambda: css(page, on_screen), 60, interval=0.5, message=f"a spike alert for {brand}")
    screenshot(page, "campaign-alert")
    assert not console_errors(page)


def test_an_archivers_health_page_says_it_archives_without_applying(page):
    """A server with `pipeline.apply = false` shows zeros everywhere on purpose; its
    health page says why instead of looking broken."""
    archiver = harness.start_server(env={"INSTABRAND_PIPELINE__APPLY": "false"})
    try:
        wait_for(lambda: archiver.get("/api/health")["events_ingested"] > 0, 20,
                 message="the embedded generator's events to be ingested")
        health = archiver.get("/api/health")
        assert health["events_applied"] == 0 and health["users"] == 0, health
        page.get(archiver.url("/health"))
        wait_for(lambda: "Archiving only" in text_of(page, "[data-test=archive-only]"), 20,
                 message="the archive-only note")
        assert "none applied" in text_of(page, "[data-test=archive-only]")
        assert not console_errors(page)
    finally:
        harness.stop_server(archiver)
