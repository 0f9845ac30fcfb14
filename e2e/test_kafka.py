"""Kafka end to end: the real `instabrand serve --kafka` against a real broker (tansu on
loopback, started here by scripts/kafka-broker.sh), fed and read back by kafka-python,
checked through the REST API.

Run: cargo build --release -p instabrand-server && python3 -m pytest e2e/test_kafka.py
"""
import json
import urllib.parse

import pytest

from kafka_support import (
    DEAD_LETTER_TOPIC, Broker, Server, as_records, generate, order_independent_state, wait_for,
)

# The six original payloads, byte for byte as DESIGN.md gives them.
CREATE_USER = b'{"username": "billyjoel219", "full_name": "Billy Joel", "created_time": "2017-06-12 19:42:07", "event": "create-user"}'
PHOTO_UPLOAD = b'{"username": "billyjoel219", "tags": "Apple, Inc.", "photo_link": "2017-06-12 19:42:07", "created_time": "2017-06-20 05:30:22", "latitude": "46.265", "longitude": "26.623", "event": "photo-upload"}'
FOLLOW = b'{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "created_time": "2017-06-12 19:42:07", "event": "follow"}'
LIKE = b'{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "photo_id": "2017-06-12 19:42:07", "created_time": "2017-06-22 12:49:09", "event": "like"}'
COMMENT = b'{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "photo_id": "2017-06-12 19:42:07", "text": "E pluribus unum", "created_time": "2017-06-22 12:49:09", "event": "comment"}'
UNFOLLOW = b'{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "created_time": "2017-06-22 19:42:07", "event": "unfollow"}'
# The like and comment name a photo by billyjoel219 taken at 2017-06-12 19:42:07, which
# the six payloads never upload (the sample photo is from 2017-06-20): this upload is
# that photo, so the held engagements have somewhere to land.
LIKED_PHOTO = b'{"username": "billyjoel219", "tags": "Apple, Inc.", "photo_link": "https://example.com/a.jpg", "created_time": "2017-06-12 19:42:07", "latitude": "46.265", "longitude": "26.623", "event": "photo-upload"}'

T_LIKED_PHOTO = 1497296527000  # 2017-06-12 19:42:07 UTC
T_SAMPLE_PHOTO = 1497936622000  # 2017-06-20 05:30:22 UTC


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.stop()


def start(broker, **kw):
    s = Server(broker, **kw)
    s.wait_connected()
    return s


def user(server, name):
    return server.get(f"/api/users/{name}")


def brand(server, name, window="all"):
    return server.get(f"/api/brands/{urllib.parse.quote(name)}?window={window}")["current"]


def photo_at(feeds, created_ms):
    return next((p for p in feeds["photos"]["items"] if p["created_ms"] == created_ms), None)


def test_the_six_original_payloads_appear_through_the_rest_api(broker):
    server = start(broker)
    try:
        broker.produce([("create-user", "billyjoel219", CREATE_USER)])
        billy = wait_for(lambda: (u := user(server, "billyjoel219"))["profile"]["registered"] and u,
                         message="billyjoel219 to be created")
        assert billy["profile"]["full_name"] == "Billy Joel"
        assert billy["profile"]["created_ms"] == T_LIKED_PHOTO

        broker.produce([("photo-upload", "billyjoel219", PHOTO_UPLOAD)])
        billy = wait_for(lambda: (u := user(server, "billyjoel219"))["profile"]["photos"] == 1 and u,
                         message="the photo")
        photo = billy["photos"]["items"][0]
        assert photo["created_ms"] == T_SAMPLE_PHOTO
        assert photo["brands"] == ["Apple, Inc."], "a tag with a comma is one brand"
        assert photo["photo_link"] == "2017-06-12 19:42:07"
        assert (photo["latitude"], photo["longitude"]) == (46.265, 26.623)

        broker.produce([("follow", "neildiamond54", FOLLOW)])
        wait_for(lambda: user(server, "billyjoel219")["profile"]["followers"] == 1, message="the follow")
        neil = user(server, "neildiamond54")
        assert neil["profile"]["following"] == 1
        assert not neil["profile"]["registered"], "named only by events, never created"
        assert [p["owner"] for p in neil["timeline"]["items"]] == ["billyjoel219"], "back-filled on follow"

        # Their photo has not been uploaded yet: both wait for it.
        broker.produce([("like", "neildiamond54", LIKE), ("comment", "neildiamond54", COMMENT)])
        wait_for(lambda: server.health()["pending_engagements"] == 2, message="the held like and comment")
        broker.produce([("photo-upload", "billyjoel219", LIKED_PHOTO)])
        billy = wait_for(lambda: (u := user(server, "billyjoel219"))["profile"]["photos"] == 2 and u,
                         message="the liked photo")
        wait_for(lambda: server.health()["pending_engagements"] == 0, message="the held ones to apply")
        billy = user(server, "billyjoel219")
        liked = photo_at(billy, T_LIKED_PHOTO)
        assert (liked["likes"], liked["comments"]) == (1, 1)
        assert [(c["username"], c["text"]) for c in liked["recent_comments"]] == [("neildiamond54", "E pluribus unum")]
        assert (photo_at(billy, T_SAMPLE_PHOTO)["likes"], photo_at(billy, T_SAMPLE_PHOTO)["comments"]) == (0, 0)
        assert (billy["profile"]["likes_received"], billy["profile"]["comments_received"]) == (1, 1)
        apple = brand(server, "Apple, Inc.")
        assert (apple["photos"], apple["likes"], apple["comments"]) == (2, 1, 1)

        broker.produce([("unfollow", "neildiamond54", UNFOLLOW)])
        wait_for(lambda: user(server, "billyjoel219")["profile"]["followers"] == 0, message="the unfollow")
        neil = user(server, "neildiamond54")
        assert neil["profile"]["following"] == 0
        assert neil["timeline"]["items"] == [], "the followee's photos leave the timeline on unfollow"

        h = server.health()
        assert h["events_by_kind"] == {k: (2 if k == "photo-upload" else 1) for k in h["events_by_kind"]}
        assert h["dead_letters"] == 0
        kafka = server.kafka_health()
        assert kafka["connected"]
        assert set(kafka["lag"]) >= {"create-user/0", "photo-upload/0", "comment/0"}
        metrics = urllib_text(server, "/metrics")
        assert "kafka_consumer_lag" in metrics
    except BaseException:
        print(server.output())
        raise
    finally:
        server.stop()


def urllib_text(server, path):
    import urllib.request
    with urllib.request.urlopen(server.base + path, timeout=10) as r:
        return r.read().decode()


# A generated stream, shared by the tests that compare runs.
@pytest.fixture(scope="module")
def stream():
    return as_records(generate(events=6000, users=300, seed=7))


@pytest.fixture(scope="module")
def reference(stream):
    """The state after an undisturbed run of `stream`."""
    b = Broker()
    s = None
    try:
        s = start(b, group="reference")
        ends = b.produce(stream)
        s.wait_caught_up(b, ends)
        state = order_independent_state(s)
        assert s.health()["dead_letters"] == 0
        return state
    finally:
        if s:
            s.stop()
        b.stop()


BAD = [
    # (topic, value, reason)
    ("like", b"\xff\xfe this is not json {", "not_json"),
    ("follow", b'{"followed_username": "a", "follower_username": "b", "created_time": "2017-06-12 19:42:07", "event": "poke"}', "unknown_event"),
    ("photo-upload", b'{"tags": "Nike", "photo_link": "x", "created_time": "2017-06-12 19:42:07", "latitude": "1", "longitude": "2", "event": "photo-upload"}', "missing_field"),
    ("photo-upload", b'{"username": "zz", "tags": "Nike", "photo_link": "x", "created_time": "2017-06-12 19:42:07", "latitude": "91.5", "longitude": "2", "event": "photo-upload"}', "invalid_coordinates"),
    ("create-user", b'{"username": "zz", "full_name": "Z", "created_time": "yesterday", "event": "create-user"}', "invalid_time"),
    ("follow", b'{"followed_username": "zz", "follower_username": "zz", "created_time": "2017-06-12 19:42:07", "event": "follow"}', "self_follow"),
    ("comment", b'{"followed_username": "a", "follower_username": "b", "photo_id": "2017-06-12 19:42:07", "text": "' + b"x" * 70000 + b'", "created_time": "2017-06-12 19:42:07", "event": "comment"}', "oversized"),
]


def test_bad_records_are_dead_lettered_with_their_reason_and_the_good_ones_land(stream, reference):
    b = Broker()
    s = None
    try:
        s = start(b, group="mixed")
        mixed = list(stream)
        step = len(mixed) // (len(BAD) + 1)
        for i, (topic, value, _) in enumerate(BAD):
            mixed.insert((i + 1) * step + i, (topic, None, value))
        ends = b.produce(mixed)
        s.wait_caught_up(b, ends)

        assert order_independent_state(s) == reference, "the good records land as if alone"
        h = s.health()
        expected = {}
        for _, _, reason in BAD:
            expected[reason] = expected.get(reason, 0) + 1
        assert h["dead_letters_by_reason"] == expected

        # The dead-letter topic holds each one: original bytes, reason in a header.
        dead = b.read_all(DEAD_LETTER_TOPIC, expected=len(BAD))
        assert len(dead) == len(BAD), [r.value[:60] for r in dead]
        by_value = {r.value: dict((k, v.decode()) for k, v in r.headers) for r in dead}
        for topic, value, reason in BAD:
            headers = by_value[value]
            assert headers["reason"] == reason, value[:80]
            assert headers["source"].startswith(f"kafka:{topic}/"), headers["source"]
            assert headers["detail"]
            assert int(headers["at_ms"]) > 0
    except BaseException:
        if s:
            print(s.output())
        raise
    finally:
        if s:
            s.stop()
        b.stop()


def test_a_broker_killed_and_restarted_mid_stream_loses_nothing_and_counts_nothing_twice(stream, reference):
    # Storage outside the broker process, so the restarted broker has the records and
    # the committed offsets it had when it was killed.
    b = Broker(storage="s3")
    s = None
    try:
        s = start(b, group="restart")
        half = len(stream) // 2
        ends = b.produce(stream[:half])
        # Mid-stream: some of the first half applied, the broker dies under the consumer.
        wait_for(lambda: s.health()["events_applied"] > 0, message="consumption to begin")
        b.kill()
        wait_for(lambda: not s.kafka_health()["connected"], message="the server to notice")
        h = s.health()
        assert h["status"] == "degraded", "the health view says what is wrong"
        assert any("kafka" in p for p in h["problems"])
        assert s.status("/api/leaderboard?window=all") == 200, "the dashboard keeps serving"

        b.restart()
        s.wait_connected()
        ends.update(b.produce(stream[half:]))
        s.wait_caught_up(b, ends)

        assert order_independent_state(s) == reference
        assert s.health()["dead_letters"] == 0
    except BaseException:
        if s:
            print(s.output())
        print(b.log())
        raise
    finally:
        if s:
            s.stop()
        b.stop()
