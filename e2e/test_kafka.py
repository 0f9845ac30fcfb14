"""Kafka end to end: the real `instabrand serve --kafka` against a real broker (tansu on
loopback, started here by scripts/kafka-broker.sh), fed and read back by kafka-python,
checked through the REST API.

Also `instabrand replay --to kafka`: an archive written by a real server, produced
back onto the event topics of a fresh broker and read there by kafka-python.

Run: cargo build --release -p instabrand-server && python3 -m pytest e2e/test_kafka.py
"""
import collections
import json
import os
import random
import re
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from kafka_support import (
    DEAD_LETTER_TOPIC, EVENT_TOPICS, Broker, Server, as_records, binary, event_key, generate,
    order_independent_state, wait_for,
)

# The six original payloads of the 2017 contract, byte for byte (docs/semantics.md).
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
        status, metrics = server.request("GET", "/metrics")
        assert status == 200, metrics
        assert "kafka_consumer_lag" in metrics
    except BaseException:
        print(server.output())
        raise
    finally:
        server.stop()


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

        # The dead-letter topic holds each one, once: original bytes, reason in a header.
        # (read_topics reads on past the expected count, so an extra copy would show.)
        dead = b.read_topics([DEAD_LETTER_TOPIC], expected=len(BAD))
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


# --- `instabrand replay --to kafka`: the archive back onto the event topics ---------

# As the original system's per-event topics carried them: no `event` field, the topic
# says what each one is. Only the archive's own column keeps that type. Their day
# (2017-06-25) is theirs alone, at distinct seconds.
UNTYPED = [
    ("create-user", b'{"username": "carolking42", "full_name": "Carol King", "created_time": "2017-06-25 08:00:01"}'),
    ("follow", b'{"followed_username": "billyjoel219", "follower_username": "carolking42", "created_time": "2017-06-25 08:00:02"}'),
    ("like", b'{"followed_username": "billyjoel219", "follower_username": "carolking42", "photo_id": "2017-06-12 19:42:07", "created_time": "2017-06-25 08:00:03"}'),
]
# Bytes that re-serializing would not give back: keys in another order, odd spacing,
# an escape and multi-byte UTF-8, all to be produced exactly as sent.
ODD_BYTES = (b'{ "event":"comment",  "created_time":"2017-06-13 00:00:00","text":"Caf\\u00e9 \xc3\xa9 '
             b'\xf0\x9f\x8e\x89 \\"so\\"  good", "photo_id":"2017-06-12 19:42:07",'
             b'"followed_username":"billyjoel219",   "follower_username":"neildiamond54" }')
# Dead letters: archived apart, never replayed.
REPLAY_BAD = [
    b"this is not json",
    b'{"username": "x", "created_time": "2017-06-12 23:59:00", "event": "teleport"}',
]


def created(value):
    return json.loads(value)["created_time"]


def test_replay_to_kafka_produces_every_archived_event_once_on_its_topic_keyed_in_event_time_order(broker):
    """A real server archives a known stream: a generated one crossing midnight UTC
    (every event type, many events sharing a second) and the original payloads (from
    2017-06-12 to 06-22) over HTTP ingest, shuffled so arrival order is not event-time
    order, rolled into several files per day so the days' files overlap in time; plus
    records without an `event` field consumed from their per-event topics; plus bad
    lines, dead-lettered. `instabrand replay --from ARCHIVE --to kafka` onto a fresh
    broker then puts every archived event on the topic of its archived type, exactly
    once, keyed by username (follower for follows, likes and comments), with the bytes
    it arrived with; each partition holds its events in event-time order, ties in the
    order they were first accepted (the order the archive reader promises and the
    idempotent producer keeps); no dead letter is replayed; and the summary on stderr
    counts the events and the archive's files."""
    generated = generate(events=1500, users=60, seed=11, extra=(
        "--mean-follows", "5", "--rate", "2", "--start", "2017-06-12 23:52:00"))
    assert len({created(l)[:10] for l in generated}) == 2, "the generated stream crosses midnight"
    typed = generated + [CREATE_USER, PHOTO_UPLOAD, FOLLOW, LIKE, COMMENT, UNFOLLOW, LIKED_PHOTO, ODD_BYTES]
    random.Random(5).shuffle(typed)

    archiver = Server(broker, group="archiver", env={
        # A file per day at every 300 records: each day of the stream in several files.
        "INSTABRAND_ARCHIVE__ROLL_RECORDS": "300",
    })
    target = None
    try:
        archiver.wait_connected()
        broker.produce((topic, event_key(json.loads(v)), v) for topic, v in UNTYPED)
        wait_for(lambda: archiver.health()["events_ingested"] == len(UNTYPED), timeout=30,
                 message="the untyped records to be consumed")
        chunk = 250
        for n, start in enumerate(range(0, len(typed), chunk)):
            body = typed[start:start + chunk]
            bad = REPLAY_BAD[n:n + 1]
            # Answered once the lines are durable.
            status, report = archiver.request("POST", "/api/ingest", b"\n".join(body[:100] + bad + body[100:]) + b"\n",
                                              token=archiver.ingest_token, content_type="application/x-ndjson",
                                              timeout=60)
            assert status == 200, report
            assert (report["accepted"], report["rejected"]) == (len(body), len(bad)), report
        # SIGTERM: the archive is flushed on the way out.
        archiver.proc.terminate()
        assert archiver.proc.wait(timeout=30) == 0, archiver.output()

        archive = Path(archiver.data_dir) / "archive"
        files = sorted(archive.glob("dt=*/*.parquet"))
        days = collections.Counter(f.parent.name for f in files)
        assert set(days) == {"dt=2017-06-12", "dt=2017-06-13", "dt=2017-06-20", "dt=2017-06-22", "dt=2017-06-25"}, days
        assert max(days.values()) > 1, f"no day in several files: {days}"
        assert list(archive.glob("dead-letters/dt=*/*.parquet")), "the bad lines are archived apart"

        target = Broker()
        replay = subprocess.run(
            [str(binary()), "replay", "--from", str(archive), "--to", "kafka", target.address, "--speed", "0"],
            capture_output=True, text=True, timeout=120, cwd=archiver.data_dir,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info,librdkafka=warn"), NO_COLOR="1"),
        )
        assert replay.returncode == 0, replay.stderr[-4000:]

        # Everything archived, in archive order: event time, then arrival (the untyped
        # records first, then ingest in the order posted).
        archived = [(topic, v) for topic, v in UNTYPED] + [(json.loads(v)["event"], v) for v in typed]
        in_order = sorted(range(len(archived)), key=lambda i: (created(archived[i][1]), i))
        expected = [(archived[i][0], event_key(json.loads(archived[i][1])).encode(), archived[i][1])
                    for i in in_order]

        summary = re.search(r"replayed (\d+) events from (\d+) files", replay.stderr)
        assert summary, replay.stderr[-4000:]
        assert (int(summary[1]), int(summary[2])) == (len(expected), len(files))

        records = target.read_topics(EVENT_TOPICS, expected=len(expected))
        got = collections.Counter((r.topic, r.key, r.value) for r in records)
        want = collections.Counter(expected)
        assert got == want, (
            f"missing {sum((want - got).values())}: {list((want - got).items())[:3]}; "
            f"extra {sum((got - want).values())}: {list((got - want).items())[:3]}"
        )
        assert not {r.value for r in records} & set(REPLAY_BAD), "a dead letter was replayed"

        # A key's records share a partition; each partition in event-time order, ties
        # in arrival order: the expected sequence cut down to that partition.
        partition_of = {}
        by_partition = collections.defaultdict(list)
        for r in records:
            assert partition_of.setdefault((r.topic, r.key), r.partition) == r.partition, (r.topic, r.key)
            by_partition[(r.topic, r.partition)].append(r.value)
        assert len(by_partition) > len(EVENT_TOPICS), "the keys spread over several partitions"
        for (topic, partition), values in by_partition.items():
            times = [created(v) for v in values]
            assert times == sorted(times), f"{topic}/{partition} is not in event-time order"
            assert values == [v for t, k, v in expected if t == topic and partition_of[(t, k)] == partition], \
                f"{topic}/{partition}: events of the same second out of arrival order"
    except BaseException:
        print(archiver.output())
        if target:
            print(target.log())
        raise
    finally:
        archiver.stop()
        if target:
            target.stop()
