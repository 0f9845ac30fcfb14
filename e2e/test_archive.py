"""The raw-event archive read back by an engine we did not write, and replayed.

1. A real server (`serve --no-generator`) ingests a generated stream spanning midnight
   UTC, with bad lines mixed in, over `POST /api/ingest`; then it is stopped (SIGTERM),
   which flushes the archive.
2. DuckDB reads `<data_dir>/archive/dt=*/*.parquet` with hive partitioning: the counts
   per day and per event equal what was ingested, the raw column holds the exact lines,
   and the dead letters are apart, under `dead-letters/`.
3. `instabrand replay --from ARCHIVE --to embedded --speed 0` runs a fresh server fed
   by the archive: its all-time leaderboard and its user and photo counts equal the
   original server's.

Environment: INSTABRAND_BIN (default target/release/instabrand).
"""
import collections
import datetime
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import harness

duckdb = pytest.importorskip("duckdb")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("INSTABRAND_BIN", ROOT / "target" / "release" / "instabrand")).resolve()
TOKEN = "t"
# A small network whose steady stream runs from 23:30 to past 00:20 UTC.
USERS, EVENTS, RATE, START = 200, 6000, 2.0, "2017-06-12 23:30:00"
BAD_LINES = [
    b"this is not json",
    b'{"username": "x", "created_time": "2017-06-12 23:59:00", "event": "teleport"}',
    b'{"followed_username": "a", "created_time": "2017-06-13 00:01:00", "event": "like"}',
    b'{"username": "y", "full_name": "Y", "created_time": "2017-13-45 99:00:00", "event": "create-user"}',
]


class Server:
    def __init__(self, args, data_dir, env=None):
        self.data_dir = data_dir
        env = dict(os.environ, INSTABRAND_INGEST_TOKEN=TOKEN, RUST_LOG=os.environ.get("RUST_LOG", "info"), **(env or {}))
        try:
            self.proc, self.lines, self.base = harness.launch([BIN, *args], env, cwd=data_dir)
        except harness.StartError as e:
            pytest.fail(f"server did not report its address:\n{e}")

    def output(self):
        return "".join(self.lines[-60:])

    def request(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {TOKEN}")
        if body is not None:
            req.add_header("Content-Type", "application/x-ndjson")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def get(self, path):
        status, body = self.request("GET", path)
        assert status == 200, f"GET {path} -> {status}: {body}\n{self.output()}"
        return body

    def stop(self):
        """SIGTERM, as a service manager stops it; the archive is flushed on the way out."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                pytest.fail("server did not stop within 30 s of SIGTERM:\n" + self.output())


def wait_for(predicate, what, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def day_of(line):
    t = json.loads(line)["created_time"]
    return datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S").date()


@pytest.fixture(scope="module")
def workdir():
    if not BIN.exists():
        pytest.fail(f"no server binary at {BIN}: cargo build --release -p instabrand-server")
    with tempfile.TemporaryDirectory(prefix="instabrand-archive-e2e-") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def stream(workdir):
    """The generated lines (exact bytes) and the NDJSON with bad lines mixed in."""
    path = workdir / "events.ndjson"
    subprocess.run(
        [str(BIN), "generate", "--events", str(EVENTS), "--users", str(USERS), "--mean-follows", "5",
         "--rate", str(RATE), "--start", START, "--out", str(path)],
        check=True, capture_output=True, cwd=workdir,
    )
    good = [l for l in path.read_bytes().split(b"\n") if l.strip()]
    assert len(good) == EVENTS
    return good


@pytest.fixture(scope="module")
def original(workdir, stream):
    """Ingests the stream into a fresh server, records its state, stops it."""
    data = workdir / "original"
    data.mkdir()
    srv = Server(["serve", "--port", "0", "--no-generator", "--data-dir", str(data)], str(data))
    try:
        chunks = [stream[i:i + 1000] for i in range(0, len(stream), 1000)]
        accepted = rejected = 0
        for n, chunk in enumerate(chunks):
            body = list(chunk)
            if n < len(BAD_LINES):
                body.insert(len(body) // 2, BAD_LINES[n])
            status, report = srv.request("POST", "/api/ingest", b"\n".join(body) + b"\n")
            assert status == 200, f"ingest -> {status}: {report}\n{srv.output()}"
            accepted += report["accepted"]
            rejected += report["rejected"]
        # Ingest answers once its events are applied (and durable).
        assert (accepted, rejected) == (EVENTS, len(BAD_LINES))
        state = {
            "leaderboard": srv.get("/api/leaderboard?window=all"),
            "health": srv.get("/api/health"),
        }
    finally:
        srv.stop()
    assert srv.proc.returncode == 0, f"exit code {srv.proc.returncode}:\n{srv.output()}"
    state["archive"] = data / "archive"
    return state


def test_duckdb_counts_per_day_and_event_equal_what_was_ingested(original, stream):
    archive = original["archive"]
    assert archive.is_dir(), f"no archive at {archive}"
    expected = collections.Counter((day_of(l), json.loads(l)["event"]) for l in stream)
    assert len({d for d, _ in expected}) == 2, "the stream must span two days"
    rows = duckdb.sql(
        f"SELECT dt, event, count(*) FROM read_parquet('{archive}/dt=*/*.parquet', hive_partitioning=true) GROUP BY ALL"
    ).fetchall()
    got = {(dt, event): n for dt, event, n in rows}
    assert got == dict(expected)


def test_the_archive_holds_the_exact_bytes_and_the_event_time(original, stream):
    archive = original["archive"]
    rows = duckdb.sql(
        f"SELECT raw, epoch_ms(event_time), username FROM read_parquet('{archive}/dt=*/*.parquet')"
    ).fetchall()
    assert collections.Counter(r[0].encode() for r in rows) == collections.Counter(stream)
    for raw, ms, username in rows[:200]:
        ev = json.loads(raw)
        t = datetime.datetime.strptime(ev["created_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
        assert ms == int(t.timestamp() * 1000)
        assert username in (ev.get("username"), ev.get("follower_username"))
    # Only complete files are visible: no temporary file is left behind.
    assert not [p for p in archive.rglob(".*") if p.is_file()]


def test_dead_letters_are_archived_apart(original):
    archive = original["archive"]
    dead = duckdb.sql(
        f"SELECT reason, raw FROM read_parquet('{archive}/dead-letters/dt=*/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert len(dead) == original["health"]["dead_letters"]
    kept = {bytes(raw) for _, raw in dead}
    assert set(BAD_LINES) <= kept
    assert all(reason for reason, _ in dead)
    events = duckdb.sql(f"SELECT raw FROM read_parquet('{archive}/dt=*/*.parquet')").fetchall()
    assert not set(BAD_LINES) & {r[0].encode() for r in events}


def test_replay_into_a_fresh_server_reproduces_the_original_state(workdir, original):
    data = workdir / "replayed"
    data.mkdir()
    srv = Server(
        ["replay", "--from", str(original["archive"]), "--to", "embedded", "--speed", "0",
         "--port", "0", "--data-dir", str(data)],
        str(data),
    )
    def replay_source():
        found = [s for s in srv.get("/api/health")["sources"] if s["kind"] == "replay"]
        return found[0] if found else None

    try:
        # The source reports `replay finished` once the last record is applied.
        wait_for(lambda: "finished" in ((replay_source() or {}).get("detail") or ""), "the replay to finish")
        assert replay_source()["connected"]
        health = srv.get("/api/health")
        assert health["users"] == original["health"]["users"]
        assert health["photos"] == original["health"]["photos"]
        assert health["events_by_kind"] == original["health"]["events_by_kind"]
        assert original["leaderboard"]["rows"] and original["health"]["photos"] > 0
        assert srv.get("/api/leaderboard?window=all") == original["leaderboard"]
    finally:
        srv.stop()
    assert any("replay:" in l for l in srv.lines), "a progress line on stderr"
