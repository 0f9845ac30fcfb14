"""Event time, not arrival order (issue 11): a backlog on the six topics gives the same
numbers as the same events read in event-time order from a file.

The stream is e2e/independent_stream.py's (written apart from our Rust generator):
thousands of users, every event type, follows that come after the photos of the users
they follow. All of it is produced to a real broker (tansu) by kafka-python BEFORE the
server starts, one topic at a time: photo-upload, like and comment first, follow and
unfollow last, so the follow topic is behind in every sense. Then `instabrand serve
--kafka` reads the backlog, and everything it answers (leaderboards, the original
`/brand-metrics`, influencers, sampled users' profiles and home timelines, the health
counts) must equal what `instabrand serve --events FILE` answers for the same events
read from an NDJSON file in event-time order (ties in one second: create-user, follow,
photo-upload, like, comment, unfollow).

Reach is compared exactly: HyperLogLog unions do not depend on the order they are
made in, so the same causal order gives the same registers. A server that applies the
topics in arrival order gives photos an empty follower graph and loses most of it.

Run: cargo build --release -p instabrand-server && python3 -m pytest e2e/test_event_time.py
Environment: E2E_EVENT_TIME_EVENTS, E2E_EVENT_TIME_USERS (stream size, default 60000/4000).
"""
import collections
import json
import os
import random
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

import independent_stream
from kafka_support import DEAD_LETTER_TOPIC, EVENT_TOPICS, Broker, Server, wait_for

EVENTS = int(os.environ.get("E2E_EVENT_TIME_EVENTS", "60000"))
USERS = int(os.environ.get("E2E_EVENT_TIME_USERS", "4000"))
SEED = 20170614

# The backlog's production order: the follow graph last.
PRODUCE_ORDER = ["photo-upload", "like", "comment", "create-user", "follow", "unfollow"]
assert sorted(PRODUCE_ORDER) == sorted(EVENT_TOPICS)

# What is compared. Windows end at the stream's clock, the same in both runs once all
# is applied; all-time is the plainest, the others check the buckets too.
ENDPOINTS = [
    "/api/leaderboard?window=all",
    "/api/leaderboard?window=24h",
    "/api/leaderboard?window=1h",
    "/brand-metrics",
    "/brand-metrics?window=all",
    "/api/influencers?window=all&limit=100",
    "/api/influencers?window=24h&limit=100",
]
HEALTH_KEYS = ["users", "implicit_users", "photos", "events_by_kind", "dead_letters_by_reason",
               "pending_engagements", "late_events", "stream_clock_ms"]
SAMPLED_USERS = 40
FEED_LIMIT = 100


# --- the stream --------------------------------------------------------------------

@pytest.fixture(scope="module")
def stream():
    events = independent_stream.generate(events=EVENTS, users=USERS, seed=SEED)
    independent_stream.check(events)
    lines = [independent_stream.encode(e) for e in events]
    kinds = collections.Counter(e["event"] for e in events)
    assert set(kinds) == set(EVENT_TOPICS), kinds
    return events, lines


@pytest.fixture(scope="module")
def ndjson(stream):
    with tempfile.TemporaryDirectory(prefix="instabrand-event-time-") as d:
        path = Path(d) / "events.ndjson"
        path.write_bytes(b"\n".join(stream[1]) + b"\n")
        yield path


def sample_users(events):
    """Users whose profiles and timelines are compared: the most followed, the
    busiest posters and engagers, some never created, and a seeded random few."""
    followers, posts, engaged, named, created = (collections.Counter(), collections.Counter(),
                                                 collections.Counter(), set(), set())
    for e in events:
        k = e["event"]
        if k == "create-user":
            created.add(e["username"])
        elif k == "photo-upload":
            posts[e["username"]] += 1
        elif k == "follow":
            followers[e["followed_username"]] += 1
        elif k == "unfollow":
            followers[e["followed_username"]] -= 1
        else:
            engaged[e["follower_username"]] += 1
        named.update(v for f, v in e.items() if f in ("username", "followed_username", "follower_username"))
    picked = []
    for name in ([n for n, _ in followers.most_common(8)] + [n for n, _ in posts.most_common(8)]
                 + [n for n, _ in engaged.most_common(6)] + sorted(named - created)[:3]):
        if name not in picked:
            picked.append(name)
    rest = sorted(named - set(picked))
    picked += random.Random(SEED).sample(rest, SAMPLED_USERS - len(picked))
    return picked


def backlog(events, lines):
    """(topic, key, value) in production order: topic by topic, each in event time."""
    by_topic = collections.defaultdict(list)
    for e, raw in zip(events, lines):
        by_topic[e["event"]].append((e["event"], independent_stream.key(e), raw))
    return [r for topic in PRODUCE_ORDER for r in by_topic[topic]]


# --- waiting and reading ---------------------------------------------------------------

def progress(h):
    return h["events_applied"] + h["dead_letters"] + h["pending_engagements"]


def read_everything(h, total):
    """Whether the sources say they have read all there is: every Kafka partition's lag
    0, a file source finished; without such a source, events_ingested + dead_letters
    reaching `total` (both count from the process's start only)."""
    sources = h.get("sources") or []
    kafka = [s for s in sources if s.get("kind") == "kafka"]
    files = [s for s in sources if s.get("kind") == "file"]
    if kafka:
        return all(s.get("lag") and all(v == 0 for v in s["lag"].values()) for s in kafka)
    if files:
        return all("finished" in (s.get("detail") or "") for s in files)
    return h.get("events_ingested", 0) + h["dead_letters"] >= total


def wait_consumed(server, total, timeout=180.0, stall=10.0, long_stall=30.0):
    """Until every one of `total` events is accounted for in health (applied, dead-
    lettered or held: events_applied + dead_letters + pending_engagements == total, with
    nothing held), and stays so for a moment. Returns (health, note).

    A server that quietly drops events (today's follow-after-unfollow drop counts
    neither) never gets there, nor does one restarted after dead-lettering some (the
    dead-letter counts in health start again at 0 in each process): once the sources
    say they have read everything and nothing has moved for `stall` seconds (or, since
    a restarted server's lag can stay above 0 for partitions its checkpoint already
    covered, once this process has ingested something and nothing has moved for
    `long_stall` seconds), the wait returns with a note saying how far short it is,
    and the comparison shows the difference. A correct server never takes that path."""
    deadline = time.time() + timeout
    last, moved = None, time.time()
    while time.time() < deadline:
        server.alive()
        try:
            h = server.health()
        except OSError:
            time.sleep(0.2)
            continue
        sig = (h["events_applied"], h["dead_letters"], h["pending_engagements"], h.get("events_ingested"))
        if sig != last:
            last, moved = sig, time.time()
        if os.environ.get("E2E_DEBUG_WAIT"):
            print(f"{time.strftime('%X')} {sig} lag={[x.get('lag') for x in h.get('sources') or []]}", flush=True)
        if progress(h) >= total and h["pending_engagements"] == 0:
            time.sleep(0.5)
            h2 = server.health()
            if progress(h2) == progress(h):
                note = "" if progress(h2) == total else f"{progress(h2)} accounted for, more than the {total} produced"
                return h2, note
        elif ((time.time() - moved >= stall and read_everything(h, total))
              or (time.time() - moved >= long_stall and h.get("events_ingested"))):
            return h, (f"stalled at {progress(h)} of {total} accounted for (events_applied "
                       f"{h['events_applied']}, dead_letters {h['dead_letters']}, pending "
                       f"{h['pending_engagements']}, events_ingested {h.get('events_ingested')}, duplicates "
                       f"{h.get('duplicates')}, superseded {h.get('superseded')}, waiting for order "
                       f"{(h.get('order') or {}).get('held')}, late {h.get('late_by_handling')})")
        time.sleep(0.1)
    h = server.health()
    raise AssertionError(f"timed out after {timeout}s: {progress(h)} of {total} events accounted for; "
                         f"health {json.dumps({k: v for k, v in h.items() if k != 'sources'})}; "
                         f"sources {h.get('sources')}")


def snapshot(server, users):
    snap = {path: server.get(path) for path in ENDPOINTS}
    h = server.health()
    snap["health"] = {k: h.get(k) for k in HEALTH_KEYS}
    for name in users:
        snap[f"/api/users/{name}"] = server.get(f"/api/users/{urllib.parse.quote(name)}?limit={FEED_LIMIT}")
    return snap


def deep_diff(a, b, path="", out=None, limit=60):
    """Differences between two JSON values as 'path: reference -> got' lines."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in b:
                out.append(f"{path}.{k}: missing (reference {json.dumps(a[k])[:120]})")
            elif k not in a:
                out.append(f"{path}.{k}: unexpected {json.dumps(b[k])[:120]}")
            else:
                deep_diff(a[k], b[k], f"{path}.{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items -> {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b)):
            key = x.get("brand") or x.get("username") or x.get("Tag") if isinstance(x, dict) else None
            deep_diff(x, y, f"{path}[{key or i}]", out, limit)
    elif a != b:
        out.append(f"{path}: {json.dumps(a)[:120]} -> {json.dumps(b)[:120]}")
    return out


def reach_table(ref, got):
    """All-time reach per brand, reference vs this run."""
    r = {row["brand"]: row for row in ref["rows"]}
    g = {row["brand"]: row for row in got["rows"]}
    lines = [f"  {'brand':<22}{'photos':>8}{'reach (file)':>14}{'reach (kafka)':>15}{'off':>9}"]
    for brand in sorted(r, key=lambda b: -r[b]["reach"]):
        rr, gr = r[brand]["reach"], g.get(brand, {}).get("reach")
        off = "" if gr is None else f"{(gr - rr) / rr * 100:+.1f}%" if rr else ("" if gr == rr else "+inf")
        lines.append(f"  {brand:<22}{r[brand]['photos']:>8}{rr:>14}{str(gr):>15}{off:>9}")
    return "\n".join(lines)


def assert_same(reference, got, note=""):
    """Every compared answer equal; otherwise a readable account of what differs."""
    problems = []
    for key in reference:
        d = deep_diff(reference[key], got.get(key), limit=12)
        if d:
            problems.append(f"{key}: {len(d)}{'+' if len(d) >= 12 else ''} differences\n    " + "\n    ".join(d))
    if problems or note:
        table = reach_table(reference["/api/leaderboard?window=all"], got["/api/leaderboard?window=all"])
        print(f"all-time reach, file in event-time order vs Kafka backlog:\n{table}")
    assert not problems, (
        (f"{note}\n" if note else "")
        + f"{len(problems)} of {len(reference)} compared answers differ from the event-time-ordered file run.\n"
        + f"All-time reach per brand:\n{table}\n\n" + "\n".join(problems[:25])
    )
    assert not note, note


# --- the reference: the file, in event-time order -----------------------------------------

@pytest.fixture(scope="module")
def reference(stream, ndjson):
    events, lines = stream
    users = sample_users(events)
    s = Server(None, args=["--events", str(ndjson), "--no-generator"])
    try:
        h, note = wait_consumed(s, len(lines))
        # The stream's own promises (no duplicates, no orphans), checked on the way.
        assert not note, note
        assert h["dead_letters"] == 0, h["dead_letters_by_reason"]
        assert h["events_applied"] == len(lines)
        assert h["events_by_kind"] == dict(collections.Counter(e["event"] for e in events))
        snap = snapshot(s, users)
        assert snap["/api/leaderboard?window=all"]["rows"], "no brands"
        return {"users": users, "snap": snap}
    except BaseException:
        print(s.output())
        raise
    finally:
        s.stop()


COMBINED_TOPIC = "instabrand-events"


def produce_backlog(broker, stream, partitions, one_per_batch=True):
    """The backlog on the six topics, follows last. partitions == "combined": instead
    one combined topic of one partition in event-time order (the control: a log that is
    already in event-time order).

    One record per record batch unless told otherwise: tansu 0.6 skips the rest of a
    batch when a fetch starts inside it (see Broker.produce), which a restart from a
    committed offset or a paused partition resumed would otherwise run into."""
    events, lines = stream
    t = time.time()
    if partitions == "combined":
        broker.create_topics([COMBINED_TOPIC], 1)
        ends = broker.produce(((COMBINED_TOPIC, independent_stream.key(e), raw) for e, raw in zip(events, lines)),
                              one_per_batch=one_per_batch)
        assert len(ends) == 1
    else:
        broker.create_topics(EVENT_TOPICS, partitions)
        ends = broker.produce(backlog(events, lines), one_per_batch=one_per_batch)
        assert len(ends) == len(EVENT_TOPICS) * partitions, "every partition holds part of the backlog"
    assert sum(ends.values()) == len(lines), (sum(ends.values()), len(lines))
    print(f"produced {len(lines)} events to {len(ends)} partitions in {time.time() - t:.1f} s")
    return ends


def layout_env(partitions):
    return {"INSTABRAND_KAFKA__COMBINED_TOPIC": COMBINED_TOPIC} if partitions == "combined" else {}


# --- the tests ----------------------------------------------------------------------------

@pytest.mark.parametrize("partitions", [1, 3, "combined"])
def test_a_backlog_read_from_kafka_equals_the_same_events_in_event_time_order(stream, reference, partitions):
    """1 and 3 partitions per topic: the backlog of issue 11. "combined": the control,
    one partition already in event-time order, which even a server that applies in
    arrival order gets right; it shows that what is compared can be equal exactly."""
    b = Broker()
    s = None
    try:
        # The control's single partition is read from its start, never resumed mid-
        # batch: it can keep the producer's batches (a third of the produce time).
        produce_backlog(b, stream, partitions, one_per_batch=partitions != "combined")
        t = time.time()
        s = Server(b, group=f"backlog-{partitions}", env=layout_env(partitions))
        h, note = wait_consumed(s, len(stream[1]))
        print(f"backlog of {len(stream[1])} events applied {time.time() - t:.1f} s after the server started")
        assert_same(reference["snap"], snapshot(s, reference["users"]), note)
    except BaseException:
        if s:
            print(s.output())
        raise
    finally:
        if s:
            s.stop()
        b.stop()


@pytest.fixture
def short_session(tmp_path):
    """A config whose consumer's group session lasts 6 s instead of librdkafka's 45 s
    (and whose rebalance wait, max.poll.interval.ms, 10 s instead of 300 s): the killed
    consumer never leaves its group, and the restarted one gets no partitions until the
    broker has given up on it."""
    path = tmp_path / "short-session.toml"
    # Small fetches too: each partition is then read a few records at a time, so the
    # merge in event time releases the backlog step by step and there is a middle to
    # kill in. With librdkafka's default (1 MiB a partition) a whole partition can
    # come in one fetch, and the backlog, held until the follow partitions pass it,
    # was applied in one step before the test could see half of it.
    path.write_text('[kafka.client]\n"session.timeout.ms" = "6000"\n"heartbeat.interval.ms" = "1000"\n'
                    '"max.poll.interval.ms" = "10000"\n"max.partition.fetch.bytes" = "4096"\n')
    return str(path)


@pytest.mark.parametrize("partitions", [3, "combined"])
def test_a_server_killed_halfway_through_the_backlog_and_restarted_ends_with_the_same_numbers(
        stream, reference, short_session, partitions):
    """3: the backlog of issue 11, the kill in the middle of it. "combined": the
    control, one partition in event-time order: the restart alone must change nothing."""
    total = len(stream[1])
    b = Broker()
    s = None
    try:
        produce_backlog(b, stream, partitions)
        # Checkpoints (state + positions, then the Kafka commit) every 50 ms: the whole
        # backlog takes well under a second to apply, and the restart should resume
        # from a checkpoint taken part of the way through it.
        env = {"INSTABRAND_STATE__CHECKPOINT_INTERVAL_MS": "50",
               "INSTABRAND_KAFKA__COMMIT_INTERVAL_MS": "50", **layout_env(partitions)}

        def taken(h):
            return (h.get("checkpoints") or {}).get("taken", 0)

        # The event-time merge releases the backlog in steps whose size depends on how
        # the fetches fall: once in a while the first step is the whole backlog, and
        # there is no middle to kill in. Then the run says so and starts over on a
        # fresh group and data dir (a kill after the end would test nothing).
        for attempt in range(4):
            group = f"backlog-kill-{partitions}-{attempt}"
            s = Server(b, group=group, env=env, args=["--config", short_session])
            data_dir = s.data_dir

            def health_when(ready):
                def check():
                    s.alive()
                    h = s.health()
                    return h if ready(h) else None
                return check

            # A checkpoint that starts after something is applied holds a state
            # mid-backlog.
            h = wait_for(health_when(lambda h: h["events_applied"] > 0), timeout=120, interval=0.01,
                         message="the first event applied")
            before = taken(h)
            h = wait_for(health_when(lambda h: h["events_applied"] >= total // 2 and taken(h) > before),
                         timeout=120, interval=0.01, message="half the backlog applied and a checkpoint taken")
            s.kill()
            at_kill = h["events_applied"]
            print(f"attempt {attempt}: killed with -9 at {at_kill} of {total} applied ({taken(h)} checkpoints)")
            if at_kill < total:
                break
        assert at_kill < total, (
            f"the whole backlog ({total}) was applied before the kill in every attempt: "
            "nothing tested mid-backlog")

        s = Server(b, group=group, env=env, data_dir=data_dir, args=["--config", short_session])
        restored = s.health()["events_applied"]
        print(f"restarted: {restored} events restored from the checkpoint")
        # `taken` counts checkpoints when written, so the last one may have been started
        # before anything was applied: then it holds the read events as waiting for
        # order (with the positions past them) and none as applied. Either way the
        # restart must end where an undisturbed run does.
        assert 0 <= restored <= at_kill, (restored, at_kill)
        h, note = wait_consumed(s, total)
        assert_same(reference["snap"], snapshot(s, reference["users"]), note)
    except BaseException:
        if s:
            print(s.output())
        raise
    finally:
        if s:
            s.stop()
        b.stop()


# The six original payloads, byte for byte as docs/events.md gives them.
CREATE_USER = b'{"username": "billyjoel219", "full_name": "Billy Joel", "created_time": "2017-06-12 19:42:07", "event": "create-user"}'
PHOTO_UPLOAD = b'{"username": "billyjoel219", "tags": "Apple, Inc.", "photo_link": "2017-06-12 19:42:07", "created_time": "2017-06-20 05:30:22", "latitude": "46.265", "longitude": "26.623", "event": "photo-upload"}'
FOLLOW = b'{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "created_time": "2017-06-12 19:42:07", "event": "follow"}'
LIKE = b'{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "photo_id": "2017-06-12 19:42:07", "created_time": "2017-06-22 12:49:09", "event": "like"}'
COMMENT = b'{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "photo_id": "2017-06-12 19:42:07", "text": "E pluribus unum", "created_time": "2017-06-22 12:49:09", "event": "comment"}'
UNFOLLOW = b'{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "created_time": "2017-06-22 19:42:07", "event": "unfollow"}'
T_PHOTO = 1497936622000  # 2017-06-20 05:30:22 UTC
T_ENGAGED = 1498135749000  # 2017-06-22 12:49:09 UTC
T_UNFOLLOW = 1498160527000  # 2017-06-22 19:42:07 UTC


def test_the_six_seed_payloads_as_a_backlog_give_apple_a_reach_of_one_and_dead_letter_the_orphans():
    """All six in the log before the server reads any. In event time neildiamond54
    follows billyjoel219 (06-12) before the photo (06-20) and unfollows after (06-22), so
    the photo reached one person. The like and comment name a photo taken at
    2017-06-12 19:42:07 that is never uploaded: held for pending_hold_secs of event time,
    then dead-lettered as orphan engagements once the clock (the unfollow) passes."""
    b = Broker()
    s = None
    try:
        b.create_topics(EVENT_TOPICS, 1)
        # One batch, newest first: arrival order is the opposite of event time.
        ends = b.produce([
            ("unfollow", "neildiamond54", UNFOLLOW),
            ("comment", "neildiamond54", COMMENT),
            ("like", "neildiamond54", LIKE),
            ("photo-upload", "billyjoel219", PHOTO_UPLOAD),
            ("follow", "neildiamond54", FOLLOW),
            ("create-user", "billyjoel219", CREATE_USER),
        ])
        assert sum(ends.values()) == 6
        s = Server(b, group="seed")
        h, note = wait_consumed(s, 6, timeout=120)
        board = s.get("/api/leaderboard?window=all")
        apple = next((r for r in board["rows"] if r["brand"] == "Apple, Inc."), None)
        billy = s.get("/api/users/billyjoel219")
        neil = s.get("/api/users/neildiamond54")
        facts = {
            "Apple, Inc. (photos, likes, comments, reach)":
                apple and (apple["photos"], apple["likes"], apple["comments"], apple["reach"]),
            "brands": [r["brand"] for r in board["rows"]],
            "applied by kind": h["events_by_kind"],
            "dead letters by reason": h["dead_letters_by_reason"],
            "held": h["pending_engagements"],
            "billyjoel219 (photos, followers, likes, comments received)":
                (billy["profile"]["photos"], billy["profile"]["followers"],
                 billy["profile"]["likes_received"], billy["profile"]["comments_received"]),
            "neildiamond54 following": neil["profile"]["following"],
        }
        want = {
            "Apple, Inc. (photos, likes, comments, reach)": (1, 0, 0, 1),
            "brands": ["Apple, Inc."],
            "applied by kind": {"create-user": 1, "photo-upload": 1, "follow": 1, "unfollow": 1,
                                "like": 0, "comment": 0},
            "dead letters by reason": {"orphan_engagement": 2},
            "held": 0,
            "billyjoel219 (photos, followers, likes, comments received)": (1, 0, 0, 0),
            "neildiamond54 following": 0,
        }
        wrong = {k: (want[k], facts[k]) for k in want if facts[k] != want[k]}
        assert not wrong and not note, (
            f"{note}\nexpected vs got:\n" + "\n".join(f"  {k}: {w} vs {g}" for k, (w, g) in wrong.items())
            + f"\nstream clock {h['stream_clock_ms']} (the unfollow is {T_UNFOLLOW}; the orphans expire after "
            f"{T_ENGAGED} + pending_hold_secs)")
        assert s.get("/api/health")["stream_clock_ms"] > T_PHOTO

        # The dead-letter topic: the like and the comment, their original bytes, once each.
        dead = b.read_topics([DEAD_LETTER_TOPIC], expected=2)
        got = sorted((r.value, dict((k, v.decode()) for k, v in r.headers).get("reason")) for r in dead)
        assert got == sorted([(LIKE, "orphan_engagement"), (COMMENT, "orphan_engagement")]), got
    except BaseException:
        if s:
            print(s.output())
        raise
    finally:
        if s:
            s.stop()
        b.stop()
