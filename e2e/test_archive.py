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
4. The same stream archived to S3-compatible storage (moto's server on loopback, via
   scripts/s3-server.sh): boto3 downloads the objects, DuckDB counts them per day and
   event, every object is a whole Parquet file, and `replay --from s3://…` reproduces
   the state. A bad bucket or endpoint stops start-up with a clear error, and stopping
   the store mid-stream (then starting it again, empty) loses nothing: the objects
   from before the outage plus those after hold every event exactly once.

Environment: INSTABRAND_BIN (default target/release/instabrand).
"""
import collections
import datetime
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import harness

duckdb = pytest.importorskip("duckdb")
s3_support = pytest.importorskip("s3_support")

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


CHUNK = 1000


def ingest(srv, stream, chunks=None):
    """POSTs the stream in chunks of CHUNK lines (those numbered `chunks`, default all),
    one bad line in the middle of each of the first len(BAD_LINES); returns
    (accepted, rejected). Each answer comes once its events are applied and durable."""
    accepted = rejected = 0
    for n in chunks if chunks is not None else range((len(stream) + CHUNK - 1) // CHUNK):
        body = list(stream[n * CHUNK:(n + 1) * CHUNK])
        if n < len(BAD_LINES):
            body.insert(len(body) // 2, BAD_LINES[n])
        status, report = srv.request("POST", "/api/ingest", b"\n".join(body) + b"\n")
        assert status == 200, f"ingest -> {status}: {report}\n{srv.output()}"
        accepted += report["accepted"]
        rejected += report["rejected"]
    return accepted, rejected


def ingest_all_and_stop(srv, stream):
    """Ingests the whole stream, records the state it gives, stops the server cleanly."""
    try:
        assert ingest(srv, stream) == (EVENTS, len(BAD_LINES))
        state = {
            "leaderboard": srv.get("/api/leaderboard?window=all"),
            "health": srv.get("/api/health"),
        }
    finally:
        srv.stop()
    assert srv.proc.returncode == 0, f"exit code {srv.proc.returncode}:\n{srv.output()}"
    return state


@pytest.fixture(scope="module")
def original(workdir, stream):
    """Ingests the stream into a fresh server, records its state, stops it."""
    data = workdir / "original"
    data.mkdir()
    srv = Server(["serve", "--port", "0", "--no-generator", "--data-dir", str(data)], str(data))
    state = ingest_all_and_stop(srv, stream)
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


def test_a_kill_9_loses_no_acknowledged_event_from_the_archive_and_cuts_no_file_short(workdir, stream):
    """Acknowledged ingest is in the archive's local spool, not yet in a file (files
    roll by size and age, not at each checkpoint); kill -9, restart on the same data
    dir: the spool is taken back, and after the rest of the stream and a clean stop the
    archive holds every event exactly once, in a single file per day."""
    data = workdir / "kill-9"
    data.mkdir()
    args = ["serve", "--port", "0", "--no-generator", "--data-dir", str(data)]
    chunks = (len(stream) + CHUNK - 1) // CHUNK
    half = chunks // 2
    srv = Server(args, str(data))
    try:
        first = ingest(srv, stream, range(half))
        archive = srv.get("/api/health")["archive"]
        assert archive["files"] == 0 and archive["buffered"] > 0, archive
        assert not list((data / "archive").glob("dt=*/*.parquet"))
        assert (data / "archive-spool" / "spool.bin").stat().st_size > 0
    finally:
        srv.proc.kill()
        srv.proc.wait()
    srv = Server(args, str(data))
    try:
        rest = ingest(srv, stream, range(half, chunks))
    finally:
        srv.stop()
    assert srv.proc.returncode == 0, f"exit code {srv.proc.returncode}:\n{srv.output()}"
    assert first[0] + rest[0] == EVENTS
    assert raw_lines([data / "archive"]) == collections.Counter(stream)
    days = {day_of(l) for l in stream}
    assert len(list((data / "archive").glob("dt=*/*.parquet"))) == len(days)
    assert (data / "archive-spool" / "spool.bin").stat().st_size == 0


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


# --- The archive on S3-compatible storage -------------------------------------------

BUCKET = "instabrand-archive"
PREFIX = "raw/events"
KEY = re.compile(r"^(dead-letters/)?dt=\d{4}-\d{2}-\d{2}/part-\d{13}-\d{6}\.parquet$")


@pytest.fixture(scope="module")
def s3():
    store = s3_support.S3Server([BUCKET])
    yield store
    store.close()


def counts_per_day_and_event(folder):
    rows = duckdb.sql(
        f"SELECT dt, event, count(*) FROM read_parquet('{folder}/dt=*/*.parquet', hive_partitioning=true) GROUP BY ALL"
    ).fetchall()
    return {(dt, event): n for dt, event, n in rows}


def expected_counts(stream):
    return dict(collections.Counter((day_of(l), json.loads(l)["event"]) for l in stream))


def raw_lines(folders):
    """Every archived event's raw bytes, over several downloaded archives."""
    out = collections.Counter()
    for folder in folders:
        if list(Path(folder).glob("dt=*/*.parquet")):
            rows = duckdb.sql(f"SELECT raw FROM read_parquet('{folder}/dt=*/*.parquet')").fetchall()
            out.update(r[0].encode() for r in rows)
    return out


def assert_whole_parquet_files(paths):
    """Each file is a complete Parquet file: magic at both ends, a footer DuckDB reads,
    and as many rows readable as that footer declares."""
    assert paths
    for path in paths:
        data = Path(path).read_bytes()
        assert data[:4] == b"PAR1" and data[-4:] == b"PAR1", f"{path} is not a whole Parquet file"
        (declared,) = duckdb.sql(f"SELECT sum(num_rows) FROM parquet_file_metadata('{path}')").fetchone()
        (read,) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()
        assert declared == read > 0, f"{path}: footer says {declared} rows, read {read}"


@pytest.fixture(scope="module")
def s3_original(workdir, stream, s3):
    """Ingests the stream into a server archiving to s3://BUCKET/PREFIX, stops it, and
    downloads what it stored with boto3."""
    data = workdir / "s3-original"
    data.mkdir()
    srv = Server(
        ["serve", "--port", "0", "--no-generator", "--data-dir", str(data), "--archive", f"s3://{BUCKET}/{PREFIX}"],
        str(data), env=s3.server_env(),
    )
    state = ingest_all_and_stop(srv, stream)
    assert not (data / "archive").exists(), "archived locally instead of to S3"
    state["keys"] = s3.keys(BUCKET)
    state["files"] = s3.download(BUCKET, PREFIX, workdir / "s3-download")
    state["archive"] = workdir / "s3-download"
    return state


def test_s3_archive_counts_per_day_and_event_equal_what_was_ingested(s3_original, stream):
    archive = s3_original["archive"]
    assert counts_per_day_and_event(archive) == expected_counts(stream)
    assert raw_lines([archive]) == collections.Counter(stream)
    dead = duckdb.sql(f"SELECT raw FROM read_parquet('{archive}/dead-letters/dt=*/*.parquet')").fetchall()
    assert len(dead) == s3_original["health"]["dead_letters"]
    assert set(BAD_LINES) <= {bytes(r[0]) for r in dead}


def test_every_s3_object_is_a_whole_parquet_file_under_the_prefix(s3_original):
    keys = s3_original["keys"]
    assert keys and all(k.startswith(PREFIX + "/") for k in keys), keys
    # Only published files: no temporary or partial objects beside them.
    strays = [k for k in keys if not KEY.match(k[len(PREFIX) + 1:])]
    assert not strays, strays
    assert len(s3_original["files"]) == len(keys)
    assert_whole_parquet_files(s3_original["files"])


def test_replay_from_s3_reproduces_the_original_state(workdir, s3_original, s3):
    data = workdir / "s3-replayed"
    data.mkdir()
    srv = Server(
        ["replay", "--from", f"s3://{BUCKET}/{PREFIX}", "--to", "embedded", "--speed", "0",
         "--port", "0", "--data-dir", str(data)],
        str(data), env=s3.server_env(),
    )

    def replay_source():
        found = [s for s in srv.get("/api/health")["sources"] if s["kind"] == "replay"]
        return found[0] if found else None

    try:
        wait_for(lambda: "finished" in ((replay_source() or {}).get("detail") or ""), "the replay from S3 to finish")
        assert f"replayed {EVENTS} events" in replay_source()["detail"], replay_source()
        health = srv.get("/api/health")
        for key in ("users", "photos", "events_by_kind"):
            assert health[key] == s3_original["health"][key], key
        assert srv.get("/api/leaderboard?window=all") == s3_original["leaderboard"]
    finally:
        srv.stop()


@pytest.mark.parametrize("case", ["missing bucket", "nothing listening"])
def test_start_up_stops_with_a_clear_error_when_the_bucket_cannot_be_reached(workdir, s3, case):
    data = Path(tempfile.mkdtemp(dir=workdir, prefix="s3-bad-"))
    # No backtrace: the error must be readable on its own, in the last lines.
    env = dict(os.environ, INSTABRAND_INGEST_TOKEN=TOKEN, RUST_BACKTRACE="0", **s3.server_env())
    if case == "missing bucket":
        url, expected = "s3://no-such-bucket/raw", "NoSuchBucket"
    else:
        env["INSTABRAND_ARCHIVE__S3__ENDPOINT"] = f"http://127.0.0.1:{harness.free_port()}"
        url, expected = f"s3://{BUCKET}/raw", "endpoint"
    args = [BIN, "serve", "--port", "0", "--no-generator", "--data-dir", data, "--archive", url]
    with pytest.raises(harness.StartError) as failed:
        proc, _, _ = harness.launch(args, env, cwd=data, timeout=60)
        proc.terminate()
        proc.wait()
    message = str(failed.value)
    assert "S3 archive is not usable" in message and expected in message, message


def test_an_s3_outage_mid_stream_loses_nothing(workdir, stream):
    """moto stopped after half the stream, then started again, empty: ingest waits
    (nothing is acknowledged that is not stored), the writer retries, and the objects
    from before the outage plus those after hold every event exactly once."""
    store = s3_support.S3Server([BUCKET])
    data = workdir / "s3-outage"
    data.mkdir()
    srv = Server(
        ["serve", "--port", "0", "--no-generator", "--data-dir", str(data), "--archive", f"s3://{BUCKET}/outage"],
        # Without the local spool an acknowledged ingest is in the bucket itself, so what
        # moto holds before the outage is well defined (with it, files roll by age and
        # size alone, at moments the test cannot see).
        str(data), env=dict(store.server_env(), INSTABRAND_ARCHIVE__RETRY_MS="200",
                            INSTABRAND_ARCHIVE__SPOOL="false"),
    )
    chunks = (len(stream) + CHUNK - 1) // CHUNK
    half = chunks // 2
    try:
        first = ingest(srv, stream, range(half))
        # Acknowledged, so stored: what moto holds now is all the first half.
        before = store.download(BUCKET, "outage", workdir / "s3-outage-before")
        store.stop()

        result = {}
        rest = threading.Thread(target=lambda: result.update(counts=ingest(srv, stream, range(half, chunks))))
        rest.start()
        wait_for(lambda: any("archive write failed" in l for l in srv.lines), "the writer to notice the outage", 60)
        time.sleep(2)
        assert rest.is_alive(), "ingest was acknowledged while the archive could not store it"
        # The health view says so, for the dashboard and for whoever is on call.
        health = srv.get("/api/health")
        assert health["status"] == "degraded", health
        assert any(p.startswith("archive writes failing") for p in health["problems"]), health["problems"]
        assert health["archive"]["last_error"], health["archive"]

        store.restart()
        rest.join(120)
        assert not rest.is_alive(), "ingest did not finish after the store came back\n" + srv.output()
        assert first[0] + result["counts"][0] == EVENTS
        wait_for(lambda: any("archive writes succeed again" in l for l in srv.lines), "the writer to recover", 60)
        assert srv.get("/api/health")["archive"]["last_error"] is None
    finally:
        srv.stop()
        after = store.download(BUCKET, "outage", workdir / "s3-outage-after") if store else []
        store.close()
    assert srv.proc.returncode == 0, f"exit code {srv.proc.returncode}:\n{srv.output()}"
    assert before and after
    assert_whole_parquet_files(before + after)
    assert raw_lines([workdir / "s3-outage-before", workdir / "s3-outage-after"]) == collections.Counter(stream)
