#!/usr/bin/env python3
"""Backlog catch-up benchmark (issue 11): how fast `instabrand serve --kafka` works
through a backlog that was produced before it started, and whether the backlog gives
the numbers an event-time-ordered read does.

N events (e2e/independent_stream.py's, or `instabrand generate --out`'s) go to tansu
on loopback as a backlog, topic by topic: photo-upload, like, comment, create-user,
then follow and unfollow last (the follow graph behind everything else in the log).
Then the server starts on a fresh data dir and consumer group, and health is polled
(one kept-alive connection, every 20 ms) until every event is accounted for
(events_applied + dead_letters + pending_engagements == N, nothing held) or nothing
has moved for 10 s with everything ingested.

Printed: the catch-up rate from the first applied event to the last, and from the
server's start (joining the group and the first fetches included); the same events
read from an NDJSON file by `serve --events` (no Kafka: the applying cost alone); and
the all-time reach of the biggest brands in both runs (a backlog applied in arrival
order loses most of it).

    scripts/bench-backlog.sh [--events 300000] [--source independent|generator] [--partitions 3]
"""
import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_stream  # noqa: E402
from kafka_support import EVENT_TOPICS, Broker, Server, generate  # noqa: E402

PRODUCE_ORDER = ["photo-upload", "like", "comment", "create-user", "follow", "unfollow"]


def poll_until_applied(server, total, stall=10.0, timeout=1800.0):
    """(seconds from launch to first applied, to all applied, final health, note)."""
    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    t0 = server.launched
    first = None
    last, moved = None, time.time()
    try:
        while time.time() - t0 < timeout:
            server.alive()
            conn.request("GET", "/api/health")
            h = json.loads(conn.getresponse().read())
            now = time.time()
            applied = h["events_applied"]
            if applied and first is None:
                first = now
            sig = (applied, h["dead_letters"], h["pending_engagements"])
            if sig != last:
                last, moved = sig, now
            done = applied + h["dead_letters"] + h["pending_engagements"]
            if done >= total and h["pending_engagements"] == 0:
                return first - t0, moved - t0, h, ""
            if h.get("events_ingested", 0) + h["dead_letters"] >= total and now - moved >= stall:
                return first - t0, moved - t0, h, f"stalled at {done} of {total} accounted for"
            time.sleep(0.02)
        raise SystemExit(f"timed out: {last}")
    finally:
        conn.close()


def run_server(broker, args, total, group):
    s = Server(broker, group=group, env={"RUST_LOG": "warn"}, args=args)
    s.launched = time.time()  # the process started just before its `listening` line
    try:
        first, done, h, note = poll_until_applied(s, total)
        board = s.get("/api/leaderboard?window=all")
        return first, done, h, note, board
    except BaseException:
        print(s.output(), file=sys.stderr)
        raise
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--users", type=int, default=0,
                    help="default: events / 15 (independent), events / 50 (generator, whose "
                         "network bootstrap alone is about 21 events per user)")
    ap.add_argument("--source", choices=["independent", "generator"], default="independent")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-file-run", action="store_true", help="skip the NDJSON file run")
    ap.add_argument("--batches", choices=["single", "producer"], default="single",
                    help="record batches of one record (default: tansu 0.6 skips the rest of a "
                         "batch when a fetch starts inside it, as a paused partition's resume may) "
                         "or kafka-python's own batching (about 3x faster to produce)")
    a = ap.parse_args()
    users = a.users or max(100, a.events // (15 if a.source == "independent" else 50))

    t = time.time()
    if a.source == "independent":
        hours = max(1.0, a.events / 10_000)  # about 3 events a second of event time
        lines = [independent_stream.encode(e)
                 for e in independent_stream.generate(a.events, users, a.seed, hours=hours)]
    else:
        lines = generate(a.events, users, a.seed)
    kinds = [json.loads(l)["event"] for l in lines]
    total = len(lines)
    print(f"{total:,} events from {a.source} ({users:,} users) made in {time.time() - t:.1f} s", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="instabrand-bench-backlog-") as d:
        path = Path(d) / "events.ndjson"
        path.write_bytes(b"\n".join(lines) + b"\n")
        b = Broker()
        try:
            b.create_topics(EVENT_TOPICS, a.partitions)
            by_topic = {k: [] for k in PRODUCE_ORDER}
            for kind, raw in zip(kinds, lines):
                by_topic[kind].append((kind, independent_stream.key(json.loads(raw)), raw))
            t = time.time()
            ends = b.produce((r for k in PRODUCE_ORDER for r in by_topic[k]),
                             one_per_batch=a.batches == "single")
            produced = time.time() - t
            assert sum(ends.values()) == total, (sum(ends.values()), total)
            print(f"produced as a backlog in {produced:.1f} s", file=sys.stderr)
            kafka = run_server(b, [], total, "bench-backlog")
        finally:
            b.stop()
        file = None if a.no_file_run else run_server(None, ["--events", str(path), "--no-generator"],
                                                      total, "unused")

    print()
    print(f"Backlog catch-up ({os.cpu_count()} cores, tansu 0.6 in memory on loopback, {total:,} {a.source} "
          f"events, {users:,} users, 6 topics x {a.partitions} partitions, follows produced last, "
          f"{'one record per batch' if a.batches == 'single' else 'producer batches'})")
    rows = [("kafka backlog", kafka)] + ([("file, event-time order", file)] if file else [])
    for name, (first, done, h, note, _) in rows:
        span = max(done - first, 1e-9)
        print(f"  {name:<24}: {total / span:>10,.0f} events/s first to last applied ({span:.2f} s), "
              f"{total / done:>10,.0f} events/s from the server's start ({done:.2f} s)"
              + (f"  [{note}]" if note else ""))
    if file:
        ref = {r["brand"]: r for r in file[4]["rows"]}
        got = {r["brand"]: r for r in kafka[4]["rows"]}
        print("  all-time reach, biggest brands: file vs kafka backlog")
        worst = 0.0
        for brand in sorted(ref, key=lambda x: -ref[x]["reach"])[:10]:
            rr, gr = ref[brand]["reach"], got.get(brand, {}).get("reach", 0)
            off = (gr - rr) / rr * 100 if rr else 0.0
            worst = max(worst, abs(off))
            print(f"    {brand:<22} {rr:>8,} {gr:>8,}  {off:+6.1f}%")
        print(f"  worst: {worst:.1f}% off")
        counts_equal = all(got.get(k, {}).get(f) == v[f] for k, v in ref.items()
                           for f in ("photos", "likes", "comments"))
        print(f"  photos, likes, comments per brand equal: {counts_equal}")


if __name__ == "__main__":
    main()
