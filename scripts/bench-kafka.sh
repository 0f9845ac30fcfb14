#!/usr/bin/env bash
# Kafka benchmark, against a real broker (tansu on loopback, in memory).
#
#   scripts/bench-kafka.sh [EVENTS]        (default 1,000,000)
#
# 1. Throughput: `instabrand generate --kafka` writes EVENTS generator events to the six
#    topics; then a bare rdkafka consumer (server/examples/bare_consumer.rs: counts
#    messages, nothing else) and the server (`serve --kafka`: consume, decode, apply,
#    commit) each read all of them in their own consumer group. Both are timed from
#    their first message to their last, so joining the group is not counted. Then the
#    server runs twice more with nothing applied (`pipeline.apply = false`, an archiver),
#    with and without the archive: the cost of the Kafka path itself, apart from applying.
# 2. Latency: a fresh broker and server; server/examples/kafka_latency.rs produces at
#    LATENCY_RATE events/s (default 10,000) for LATENCY_SECONDS (default 30) and times
#    each upload from just before it is handed to the producer until the WebSocket
#    `map_points` frame carrying it arrives. Run twice: with the hub's default 40
#    frames/s and with 25 (the default before: its 40 ms period is the difference). The
#    default run lasts past the 30 s checkpoint interval (counted from the server's
#    start), so a checkpoint is counted. Beside the server, a bare consumer times the
#    same uploads to their arrival from the broker (`broker p50/p99`): the part of the
#    latency that is producer, broker and fetch, before the server sees anything.
#
# Environment: CARGO_TARGET_DIR (default target), LATENCY_RATE, LATENCY_SECONDS,
# BENCH_USERS (users in the generated network, default 20,000).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
TARGET=${CARGO_TARGET_DIR:-target}

echo "building (release)..." >&2
cargo build --release -p instabrand-server --bin instabrand --example bare_consumer --example kafka_latency >&2

INSTABRAND_BIN="$TARGET/release/instabrand" \
BARE="$TARGET/release/examples/bare_consumer" \
LATENCY="$TARGET/release/examples/kafka_latency" \
EVENTS="$EVENTS" \
LATENCY_RATE="${LATENCY_RATE:-10000}" \
LATENCY_SECONDS="${LATENCY_SECONDS:-30}" \
BENCH_USERS="${BENCH_USERS:-20000}" \
python3 - <<'EOF'
import http.client, json, os, subprocess, sys, tempfile, time
sys.path.insert(0, "e2e")
from kafka import TopicPartition
from kafka_support import EVENT_TOPICS, Broker, Server, wait_for

N = int(os.environ["EVENTS"])
BIN, BARE, LATENCY = os.environ["INSTABRAND_BIN"], os.environ["BARE"], os.environ["LATENCY"]


def server_rate(broker, ends, group, env=None, counter="events_applied"):
    """The server's events/s, from the first event counted in `counter` to the last."""
    s = Server(broker, group=group, env={"RUST_LOG": "warn", **(env or {})})
    # One kept-alive connection for the 10 ms polling: a new one per poll cost the
    # server's async thread a quarter of its CPU, which the bare consumer never pays.
    host, port = s.base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def applied_now():
        conn.request("GET", "/api/health")
        return json.loads(conn.getresponse().read())[counter]

    try:
        first = last = None
        seen = 0
        next_check = 0.0
        while True:
            applied = applied_now()
            now = time.time()
            if applied and first is None:
                first = now
            if applied != seen:
                seen, last = applied, now
            if now >= next_check:
                next_check = now + 0.5
                c = broker.committed(group, list(ends))
                if all((c[tp] or 0) >= end for tp, end in ends.items()):
                    break
            time.sleep(0.01)
        return N / (last - first), seen
    finally:
        conn.close()
        s.stop()


def bare_rate(broker, group):
    """Events/s of the bare consumer, and the end offset of every partition it read
    (tansu's ListOffsets answer is not the high watermark, so we learn it here)."""
    out = subprocess.run([BARE, broker.address, group, str(N)], check=True,
                         capture_output=True, text=True, timeout=600)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["messages"] == N, r
    ends = {TopicPartition(*tp.rsplit("/", 1)[:1], int(tp.rsplit("/", 1)[1])): end
            for tp, end in r["ends"].items()}
    return r["per_sec"], ends


b = Broker()
try:
    t = time.time()
    subprocess.run([BIN, "generate", "--kafka", b.address, "--events", str(N),
                    "--users", os.environ["BENCH_USERS"], "--rate", "0"],
                   check=True, env={**os.environ, "RUST_LOG": "warn"})
    print(f"produced {N} events in {time.time() - t:.1f} s", file=sys.stderr)
    bare1, ends = bare_rate(b, "bench-bare-1")
    assert sum(ends.values()) == N, (sum(ends.values()), N)
    ours, applied = server_rate(b, ends, "bench-server")
    # The same server as an archiver (pipeline.apply = false), then with the archive off
    # too: what the Kafka path itself costs, apart from applying.
    archiver, _ = server_rate(b, ends, "bench-archiver", {"INSTABRAND_PIPELINE__APPLY": "false"},
                              "events_ingested")
    ingest, _ = server_rate(b, ends, "bench-ingest", {"INSTABRAND_PIPELINE__APPLY": "false",
                                                       "INSTABRAND_ARCHIVE__ENABLED": "false"},
                            "events_ingested")
    bare2, _ = bare_rate(b, "bench-bare-2")
finally:
    b.stop()
bare = (bare1 + bare2) / 2

def latency(config):
    """Latency percentiles with the server run on `config` (TOML text)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config)
    b = Broker()
    try:
        s = Server(b, group="bench-latency", env={"RUST_LOG": "warn"}, args=["--config", f.name])
        try:
            s.wait_connected()
            ws = s.base.replace("http://", "ws://") + "/ws"
            out = subprocess.run([LATENCY, b.address, ws, os.environ["LATENCY_RATE"],
                                  os.environ["LATENCY_SECONDS"]],
                                 check=True, capture_output=True, text=True, timeout=600)
            return json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            s.stop()
    finally:
        b.stop()
        os.unlink(f.name)


lat40 = latency("")
lat25 = latency("[live]\nframes_per_sec = 25\n")

print()
print(f"Kafka benchmark ({os.cpu_count()} cores, tansu 0.6 in memory on loopback, {N:,} generator events, 6 topics x 3 partitions)")
print(f"  server consume+decode+apply+archive+commit: {ours:>10,.0f} events/s")
print(f"  bare rdkafka consumer (count only)        : {bare:>10,.0f} events/s   (runs before and after: {bare1:,.0f}, {bare2:,.0f})")
print(f"  ratio                                     : {ours / bare:>10.2f}   (goal >= 0.8)")
print(f"  the Kafka path alone, nothing applied (pipeline.apply = false):")
print(f"    consume+decode+archive+commit           : {archiver:>10,.0f} events/s   ratio {archiver / bare:.2f}")
print(f"    consume+decode+commit, no archive       : {ingest:>10,.0f} events/s   ratio {ingest / bare:.2f}")
for name, lat in [("live.frames_per_sec = 40 (default)", lat40), ("live.frames_per_sec = 25", lat25)]:
    print(f"  produce -> WebSocket map frame at {lat['rate']:,.0f} events/s for {os.environ['LATENCY_SECONDS']} s, {name}:")
    print(f"    p50 {lat['p50_ms']:.1f} ms   p90 {lat['p90_ms']:.1f} ms   p99 {lat['p99_ms']:.1f} ms   max {lat['max_ms']:.1f} ms"
          f"   ({lat['photos_seen']:,} of {lat['photos_timed']:,} uploads seen, {lat['frames']} frames; goal p99 <= 100 ms)")
    print(f"    of which producer + broker + fetch alone (bare consumer beside it): p50 {lat['broker_p50_ms']:.1f} ms   p99 {lat['broker_p99_ms']:.1f} ms")
EOF
