"""What the Kafka end-to-end tests and the Kafka benchmark need: a real broker (tansu,
started by scripts/kafka-broker.sh on a free loopback port), the real `instabrand`
server consuming it, and kafka-python as the independent client (its own protocol
implementation, not librdkafka) to produce records and read topics back (the
dead-letter topic; the event topics an archive replay produced to).

Environment:
  INSTABRAND_BIN   server binary (default target/release/instabrand)
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import harness

ROOT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = ROOT / "scripts" / "kafka-broker.sh"
EVENT_TOPICS = ["create-user", "photo-upload", "follow", "unfollow", "like", "comment"]
DEAD_LETTER_TOPIC = "instabrand-dead-letters"


def tansu_bin():
    found = shutil.which("tansu") or Path.home() / ".cargo" / "bin" / "tansu"
    if not Path(found).exists():
        raise RuntimeError("tansu not found: scripts/setup.sh --test")
    return str(found)


def binary():
    return Path(os.environ.get("INSTABRAND_BIN", ROOT / "target" / "release" / "instabrand"))


def wait_for(predicate, timeout=60.0, interval=0.2, message="condition"):
    """Polls `predicate` until it returns something truthy, and returns that."""
    return harness.wait_for(predicate, timeout, interval, message,
                            errors=(OSError, ValueError, KeyError, AssertionError))


class Broker:
    """A tansu broker. storage="s3" keeps topics, records and committed offsets in a
    local S3 server, so the broker can be killed and restarted without losing them."""

    def __init__(self, storage="memory"):
        self.dir = tempfile.mkdtemp(prefix="instabrand-kafka-")
        out = subprocess.run(
            [str(BROKER_SCRIPT), "start", "--dir", self.dir, "--storage", storage],
            check=True, capture_output=True, text=True, timeout=60,
        )
        self.address = out.stdout.strip().splitlines()[-1]

    def kill(self):
        """kill -9: no goodbye to the clients."""
        subprocess.run([str(BROKER_SCRIPT), "kill", self.dir], check=True, timeout=30)

    def restart(self):
        subprocess.run([str(BROKER_SCRIPT), "restart", self.dir], check=True, timeout=60)

    def stop(self):
        subprocess.run([str(BROKER_SCRIPT), "stop", self.dir], timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            return (Path(self.dir) / "tansu.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def create_topics(self, topics, partitions):
        """Creates `topics` with `partitions` partitions each (tansu does not create
        topics on first use; the server creates its own only when it starts, so a
        backlog produced before it needs them made here)."""
        for topic in topics:
            out = subprocess.run(
                [tansu_bin(), "topic", "create", topic, "--partitions", str(partitions),
                 "--broker", f"tcp://{self.address}"],
                capture_output=True, text=True, timeout=60,
            )
            if out.returncode != 0:
                raise RuntimeError(f"tansu topic create {topic} failed: {out.stdout}{out.stderr}")
        c = KafkaConsumer(bootstrap_servers=self.address)
        try:
            for topic in topics:
                wait_for(lambda: len(c.partitions_for_topic(topic) or ()) == partitions, timeout=30,
                         message=f"{topic} to have {partitions} partitions")
        finally:
            c.close()

    # --- kafka-python, the independent client ---

    def producer(self, one_per_batch=False):
        return KafkaProducer(
            bootstrap_servers=self.address, acks="all", linger_ms=5,
            retries=2147483647, request_timeout_ms=10000, max_request_size=4 * 1024 * 1024,
            **({"batch_size": 0} if one_per_batch else {}),
        )

    def produce(self, records, one_per_batch=False):
        """records: iterable of (topic, key: str|None, value: bytes). Returns the end
        offset (last offset + 1) written to each TopicPartition.

        one_per_batch: every record in a record batch of its own. tansu 0.6 answers a
        fetch from an offset inside a record batch with the NEXT batch, so a consumer
        that resumes mid-batch (a committed offset after a restart, a paused partition
        resumed) silently skips the rest of that batch: seek to 4096 in batches of ~130
        records and the first record read is 4229. Kafka returns the batch holding the
        offset and the client drops the records before it. With one record per batch
        every offset starts a batch. About three times slower to produce."""
        p = self.producer(one_per_batch)
        futures = [
            p.send(topic, key=key.encode() if key else None, value=value)
            for topic, key, value in records
        ]
        p.flush(timeout=60)
        ends = {}
        for f in futures:
            md = f.get(timeout=60)
            tp = TopicPartition(md.topic, md.partition)
            ends[tp] = max(ends.get(tp, 0), md.offset + 1)
        p.close()
        return ends

    def read_topics(self, topics, expected, timeout=30.0, settle=0.5):
        """Records of every partition of `topics` from the beginning, without a consumer
        group: until `expected` have been read (or `timeout`), then on until nothing new
        has come for `settle` seconds, so records beyond `expected` (duplicates) are
        read too. Returns them sorted by topic, partition and offset. (Not "up to the
        end offsets": tansu 0.6 answers kafka-python's ListOffsets with the last batch's
        base offset + 1, not the high watermark, and `seek_to_beginning` hangs
        `position()` there.)"""
        c = KafkaConsumer(bootstrap_servers=self.address, enable_auto_commit=False)
        try:
            tps = []
            for topic in topics:
                parts = wait_for(lambda: c.partitions_for_topic(topic), timeout=timeout,
                                 message=f"partitions of {topic}")
                tps.extend(TopicPartition(topic, p) for p in sorted(parts))
            c.assign(tps)
            for tp in tps:
                c.seek(tp, 0)
            out = []
            deadline = time.time() + timeout
            quiet_since = None
            while time.time() < deadline:
                got = [r for batch in c.poll(timeout_ms=200).values() for r in batch]
                out.extend(got)
                if len(out) < expected or got:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = time.time()
                elif time.time() - quiet_since >= settle:
                    break
            return sorted(out, key=lambda r: (r.topic, r.partition, r.offset))
        finally:
            c.close(autocommit=False)

    def committed(self, group, tps):
        """The group's committed offsets for `tps`: {TopicPartition: offset or None}.
        (A consumer that never subscribes: it reads the group's offsets without
        joining it. kafka-python's admin client cannot decode tansu's OffsetFetch
        response; the consumer's request version can.)"""
        c = KafkaConsumer(bootstrap_servers=self.address, group_id=group, enable_auto_commit=False)
        try:
            return {tp: c.committed(tp) for tp in tps}
        finally:
            c.close(autocommit=False)


class SourceMissing(AssertionError):
    """Health does not list a source (yet)."""


class ServerExited(RuntimeError):
    """The server process is gone: not something to wait out."""


class Server(harness.Server):
    """The real `instabrand serve --kafka`, on a free port, with its own data dir and
    harness's tokens; HTTP as `harness.Server` does it."""

    def __init__(self, broker, group="instabrand", env=None, args=(), data_dir=None):
        """`broker` None: no `--kafka` (give the source in `args`, e.g. `--events FILE`).
        `data_dir`: an existing one to start on (a restart), else a fresh one."""
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="instabrand-data-")
        self.group = group
        e = dict(os.environ)
        e.update({
            "INSTABRAND_DATA_DIR": self.data_dir,
            "INSTABRAND_KAFKA__GROUP_ID": group,
            "INSTABRAND_CONTROL_TOKEN": harness.CONTROL_TOKEN,
            "INSTABRAND_INGEST_TOKEN": harness.INGEST_TOKEN,
            "RUST_LOG": e.get("RUST_LOG", "info,librdkafka=warn"),
            "NO_COLOR": "1",
        })
        e.update(env or {})
        bin_ = binary()
        if not bin_.exists():
            raise RuntimeError(f"{bin_} not found: cargo build --release -p instabrand-server")
        try:
            proc, lines, base = harness.launch(
                [bin_, "serve", *(["--kafka", broker.address] if broker else []), "--port", "0", *args], e)
        except harness.StartError as err:
            raise RuntimeError(f"server did not start:\n{err}") from None
        super().__init__(base, proc, lines)

    def status(self, path):
        return self.request("GET", path)[0]

    def health(self):
        return self.get("/api/health")

    def source_health(self, kind, health=None):
        """The health entry of the source of `kind`. Raises SourceMissing (an
        AssertionError, so `wait_for` polls on) while health does not list it: a server
        answers health before every source has registered (issue 11, item 0)."""
        h = health or self.health()
        for s in h.get("sources") or []:
            if s.get("kind") == kind:
                return s
        raise SourceMissing(f"health lists no {kind} source yet "
                            f"(sources: {[s.get('kind') for s in h.get('sources') or []]})")

    def kafka_health(self):
        return self.source_health("kafka")

    def alive(self):
        """Raises, with the server's last output, if the process has exited: a wait on
        a dead server fails at once instead of at its timeout."""
        if self.proc.poll() is not None:
            raise ServerExited(f"the server exited with {self.proc.returncode}:\n{self.output()}")

    def wait_connected(self, timeout=60):
        def connected():
            self.alive()
            return self.kafka_health()["connected"]
        return wait_for(connected, timeout=timeout, message="the server to reach the broker")

    def wait_caught_up(self, broker, ends, timeout=120):
        """Until the group has committed every offset in `ends`: committing follows
        applying, so everything produced has then been applied."""
        def done():
            self.alive()
            c = broker.committed(self.group, list(ends))
            return all((c[tp] or 0) >= end for tp, end in ends.items())
        return wait_for(done, timeout=timeout, interval=0.5,
                        message=f"group {self.group} to commit {len(ends)} partitions")

    def output(self):
        return "".join(self.lines[-80:])

    def kill(self):
        """kill -9; the data dir stays, for a restart on it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def event_key(e):
    """The original producer's key: the user the event is about."""
    return e.get("username") or e.get("follower_username")


def as_records(lines):
    """NDJSON lines (bytes) of original events -> (topic, key, value) per event."""
    out = []
    for raw in lines:
        e = json.loads(raw)
        out.append((e["event"], event_key(e), raw))
    return out


def generate(events, users, seed, extra=()):
    """`instabrand generate --out`: a deterministic stream, as NDJSON lines (bytes).
    `extra`: more of its options (`--start`, `--rate`, `--mean-follows`)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "events.ndjson"
        subprocess.run(
            [str(binary()), "generate", "--out", str(path), "--events", str(events),
             "--users", str(users), "--seed", str(seed), *extra],
            check=True, capture_output=True, timeout=120,
        )
        return [l for l in path.read_bytes().split(b"\n") if l.strip()]


def order_independent_state(server):
    """What must match between two runs of the same records, whatever order the six
    topics were interleaved in: per-brand photos, likes and comments over all time,
    the users and photos known, and the counts of the events that are not set
    operations on the follow graph. (Reach and follower counts are taken as they are
    when each event applies, so they depend on the interleaving; so does whether an
    unfollow read before its follow is a no-op.)"""
    board = server.get("/api/leaderboard?window=all")
    h = server.health()
    return {
        "brands": sorted((r["brand"], r["photos"], r["likes"], r["comments"]) for r in board["rows"]),
        "total_photos": board["total_photos"],
        "users": h["users"],
        "photos": h["photos"],
        "events": {k: v for k, v in h["events_by_kind"].items() if k not in ("follow", "unfollow")},
    }
