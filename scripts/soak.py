#!/usr/bin/env python3
"""Soak benchmark (issue 12): does the real server's footprint stay flat once the
retention window has filled?

Runs `instabrand serve` (the release binary: pipeline, checkpoints into the on-disk
store, the Parquet archive, all on a temporary data dir) and samples it every
--every seconds, printing one line per sample:

  wall time, event time reached, events applied, resident memory (VmRSS of the server
  process), the state store file on disk, the last checkpoint (size, time to durable,
  pause), and state size per part when /metrics has `instabrand_state_bytes{part=…}`
  and `instabrand_state_entries{part=…}` (skipped while the server has none).

Two modes:

  live (default)  the embedded generator at --rate events/s with event time running
                  --time-scale times faster than the wall clock, for --minutes.
  --file FILE     an NDJSON file read at full speed (`serve --events FILE
                  --events-rate 0`) until it is consumed. Made first if absent, with
                  `instabrand generate --events --file-events --days --file-days`.

At the end, for each series over the samples after the warm-up (--settle-minutes of
wall time, or --settle-days of event time since the first sample): min, max, mean and
whether every sample is within ±--tolerance (10 %) of the mean. The exit status is 1
if any gated series is not. Gated: resident memory, checkpoint size and every
per-part figure; the store file is gated against what it holds instead (issue 12:
"within twice the live state"): every sample at most --store-ratio (2.0) times the
base plus the changelog the server reports, since a changelog store is a sawtooth by
design (the changelog grows to the base's size, then is compacted). Checkpoint times and the event rate are shown but not gated
(they follow the machine's load, not the state). A series too small to matter (mean
below --floor-bytes bytes or --floor-entries entries) is shown but not gated: a
holding area going from 40 to 60 entries is not growth. In file mode the sample taken
once the file is consumed shows the server at rest (no batch in flight, the reader's
read-ahead freed) rather than under the stream: it is printed, not gated.

    scripts/soak.sh [--rate 20000] [--minutes 30] [--days 60] [--every 60]
                    [--settle-minutes 10 | --settle-days D] [--keep] [-- SERVE ARGS…]
    scripts/soak.sh --file /tmp/soak-90d.ndjson [--file-events 36000000] [--file-days 90]

--days sets the time scale (days × 86,400 / (minutes × 60)); --time-scale sets it
directly. Extra arguments after `--` go to `instabrand serve` (retention settings,
say). Python's standard library only.
"""
import argparse
import calendar
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
DAY_MS = 86_400_000

# `instabrand_state_bytes{part="photos"} 1234` (OpenMetrics text; labels in any order).
PART_RE = re.compile(r'^instabrand_state_(bytes|entries)\{([^}]*)\}\s+(\S+)')
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--bin", default=os.environ.get("INSTABRAND_BIN", str(ROOT / "target/release/instabrand")))
    p.add_argument("--rate", type=float, default=20_000, help="generator events/s (live mode)")
    p.add_argument("--minutes", type=float, default=30, help="wall minutes to run (live mode)")
    p.add_argument("--days", type=float, default=60, help="event-time days the run covers (live mode)")
    p.add_argument("--time-scale", type=float, help="event time per wall time; overrides --days")
    p.add_argument("--users", type=int, help="generator users (server default if unset)")
    p.add_argument("--file", type=Path, help="serve this NDJSON file at full speed instead")
    p.add_argument("--file-events", type=int, default=36_000_000,
                   help="events in a --file made here (default: as many as 30 min at 20,000/s)")
    p.add_argument("--file-days", type=float, default=90, help="event-time days a --file made here spans")
    p.add_argument("--every", type=float,
                   help="seconds between samples (default 60; 10 with --file, which is read in minutes)")
    settle = p.add_mutually_exclusive_group()
    settle.add_argument("--settle-minutes", type=float,
                        help="warm-up excluded from the summary, wall minutes (live default 10)")
    settle.add_argument("--settle-days", type=float,
                        help="warm-up excluded from the summary, event-time days (--file default 30)")
    p.add_argument("--tolerance", type=float, default=0.10, help="allowed spread around the mean")
    p.add_argument("--store-ratio", type=float, default=2.0,
                   help="the store file may be at most this many times base + changelog")
    p.add_argument("--floor-bytes", type=float, default=MIB, help="series below this mean are not gated")
    p.add_argument("--floor-entries", type=float, default=1000, help="series below this mean are not gated")
    p.add_argument("--checkpoint-ms", type=int, help="state.checkpoint_interval_ms (server default if unset)")
    p.add_argument("--dir", type=Path, help="data dir (default: a fresh temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    p.add_argument("serve_args", nargs="*", help="after --: more `instabrand serve` arguments")
    a = p.parse_args(argv)
    # The server runs in the data dir: a relative path would not find it from there.
    a.bin = str(Path(a.bin).resolve())
    if a.settle_minutes is None and a.settle_days is None:
        if a.file:
            a.settle_days = 30
        else:
            a.settle_minutes = 10
    if a.every is None:
        a.every = 10 if a.file else 60
    if a.time_scale is None:
        a.time_scale = a.days * 86_400 / (a.minutes * 60)
    return a


def make_file(a):
    print(f"# generating {a.file}: {a.file_events:,} events over {a.file_days:g} days of event time",
          flush=True)
    t = time.time()
    subprocess.run([a.bin, "generate", "--events", str(a.file_events), "--days", str(a.file_days),
                    *(["--users", str(a.users)] if a.users else []), "--out", str(a.file)], check=True)
    print(f"# generated in {time.time() - t:.0f} s, {a.file.stat().st_size / MIB:,.0f} MiB", flush=True)


class Server:
    """`instabrand serve` on a free port, its output in a log file (a pipe nobody
    drains would stall it)."""

    def __init__(self, a, data):
        argv = [a.bin, "serve", "--port", "0", "--data-dir", str(data)]
        if a.file:
            argv += ["--events", str(a.file.resolve()), "--events-rate", "0"]
        else:
            argv += ["--rate", str(a.rate), "--time-scale", str(a.time_scale)]
            if a.users:
                argv += ["--users", str(a.users)]
        argv += a.serve_args
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        if a.checkpoint_ms:
            env["INSTABRAND_STATE__CHECKPOINT_INTERVAL_MS"] = str(a.checkpoint_ms)
        self.log_path = data / "server.log"
        self.log = open(self.log_path, "wb")
        # The working directory is the data dir, so a stray ./instabrand.toml does not
        # change what is measured (pass --config FILE after -- to use one).
        self.proc = subprocess.Popen(argv, cwd=data, stdout=self.log, stderr=subprocess.STDOUT)
        self.argv = argv
        self.port = self._wait_port()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def _wait_port(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited ({self.proc.returncode}):\n{self.tail()}")
            m = re.search(rb"listening on http://[^:]+:(\d+)", self.log_path.read_bytes())
            if m:
                return int(m.group(1))
            time.sleep(0.1)
        raise SystemExit(f"server did not start:\n{self.tail()}")

    def tail(self, n=30):
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def get(self, path):
        for attempt in range(3):
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise SystemExit(f"GET {path} -> {r.status}: {body[:200]!r}")
                return body.decode()
            except (http.client.HTTPException, OSError):
                # A dropped keep-alive connection: open another.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 2:
                    raise

    def rss_bytes(self):
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def parts(metrics_text):
    """{"bytes:photos": n, "entries:photos": n, …} from the per-part gauges, if any."""
    out = {}
    for line in metrics_text.splitlines():
        m = PART_RE.match(line)
        if not m:
            continue
        labels = dict(LABEL_RE.findall(m.group(2)))
        if "part" in labels:
            out[f"{m.group(1)}:{labels['part']}"] = float(m.group(3))
    return out


def file_start_ms(path):
    """The first event's time in an NDJSON file: where its event time starts, which
    the first sample (taken after the bootstrap) is already past."""
    with open(path, "rb") as f:
        created = json.loads(f.readline()).get("created_time")
    if not created:
        return None
    return calendar.timegm(time.strptime(created[:19], "%Y-%m-%d %H:%M:%S")) * 1000


def store_bytes(data):
    """The store on disk: state.redb (changelog, positions) and its base file(s)."""
    return sum(f.stat().st_size for f in data.glob("state.redb*") if f.is_file())


def fmt_time(ms):
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def sample(server, data, t0):
    h = json.loads(server.get("/api/health"))
    cp = h.get("checkpoints") or {}
    # Before the first checkpoint the store is empty and there is no checkpoint to
    # size: missing, not zero, or the summary would count them as a spread.
    checkpointed = bool(cp.get("taken"))
    s = {
        "wall_s": time.time() - t0,
        "event_ms": (h.get("order") or {}).get("applied_time_ms") or h.get("stream_clock_ms"),
        "applied": h["events_applied"],
        "dead_letters": h["dead_letters"],
        "rss": server.rss_bytes(),
        "store": store_bytes(data) if checkpointed else None,
        "live": (cp.get("base_bytes") or 0) + (cp.get("changelog_bytes") or 0) if checkpointed else None,
        "cp_bytes": cp.get("last_bytes") if checkpointed else None,
        "cp_ms": cp.get("last_ms") if checkpointed else None,
        "cp_pause_ms": cp.get("last_pause_ms") if checkpointed else None,
        "checkpoints": cp.get("taken"),
        "sources": h.get("sources", []),
        "problems": h.get("problems", []),
    }
    s.update(parts(server.get("/metrics")))
    return s


def line(s, prev, first_event):
    rate = "-"
    if prev:
        rate = f"{(s['applied'] - prev['applied']) / max(s['wall_s'] - prev['wall_s'], 1e-9):,.0f}"
    days = (s["event_ms"] - first_event) / DAY_MS if s["event_ms"] and first_event else 0
    out = (
        f"t={s['wall_s'] / 60:5.1f}min event={fmt_time(s['event_ms'])} (+{days:5.1f}d) "
        f"applied={s['applied']:,} ({rate}/s) rss={(s['rss'] or 0) / MIB:,.0f}MiB "
        f"store={(s['store'] or 0) / MIB:,.0f}MiB ({store_ratio(s):.2f}× live) checkpoint={(s['cp_bytes'] or 0) / MIB:,.1f}MiB "
        f"in {s['cp_ms'] or 0}ms pause {s['cp_pause_ms'] or 0}ms (#{s['checkpoints'] or 0})"
    )
    part_keys = sorted(k for k in s if k.startswith("bytes:"))
    if part_keys:
        out += " parts: " + " ".join(
            f"{k[6:]}={s[k] / MIB:,.1f}MiB/{s.get('entries:' + k[6:], 0):,.0f}" for k in part_keys
        )
    if s["problems"]:
        out += f" problems={s['problems']}"
    return out


def store_ratio(s):
    """The store on disk against the base plus changelog it holds."""
    return (s["store"] or 0) / s["live"] if s.get("live") else 0.0


def file_done(s):
    return any(src.get("kind") == "file" and src.get("detail", "").startswith("finished")
               for src in s["sources"])


def summarize(a, samples, first_event):
    if a.settle_days is not None:
        settled = [s for s in samples
                   if s["event_ms"] and first_event and s["event_ms"] - first_event >= a.settle_days * DAY_MS]
        how = f"after {a.settle_days:g} days of event time"
    else:
        settled = [s for s in samples if s["wall_s"] >= a.settle_minutes * 60]
        how = f"after {a.settle_minutes:g} wall minutes"
    if a.file and settled and file_done(settled[-1]):
        rest = settled.pop()
        print(f"\nat rest, the file consumed (not gated): resident memory "
              f"{rest['rss'] / MIB:,.0f} MiB")
    print(f"\nsummary: {len(settled)} of {len(samples)} samples {how}, "
          f"gate ±{a.tolerance * 100:g} % of the mean")
    if len(settled) < 2:
        print("FAIL: fewer than 2 samples after the warm-up; run longer or settle sooner")
        return False
    keys = ["rss", "store", "cp_bytes"] + sorted(k for k in settled[-1] if k.startswith(("bytes:", "entries:")))
    info = ["cp_ms", "cp_pause_ms"]
    names = {"rss": "resident memory", "store": "state store file", "cp_bytes": "checkpoint size",
             "cp_ms": "checkpoint time (ms, not gated)", "cp_pause_ms": "checkpoint pause (ms, not gated)"}
    ok = True
    # The store and the checkpoint change only at checkpoints: samples repeating one
    # checkpoint's figures show nothing about the next.
    checkpoints = len({s["checkpoints"] for s in settled if s["checkpoints"]})
    for k in keys + info:
        vals = [s.get(k) for s in settled]
        vals = [v for v in vals if v is not None]
        if not vals:
            print(f"  {names.get(k, k):34} no data")
            continue
        lo, hi, mean = min(vals), max(vals), sum(vals) / len(vals)
        entries = k.startswith("entries:") or k in info
        unit, div = ("", 1) if entries else ("MiB", MIB)
        spread = max(hi - mean, mean - lo) / mean if mean else 0.0
        floor = a.floor_entries if k.startswith("entries:") else a.floor_bytes
        if k in info:
            verdict = ""
        elif k in ("store", "cp_bytes") and checkpoints < 2:
            verdict = f"FAIL: {checkpoints} checkpoint(s) after the warm-up (run longer or lower --checkpoint-ms)"
            ok = False
        elif k == "store":
            worst = max(store_ratio(s) for s in settled if s.get("live"))
            verdict = f"at most {worst:.2f}× base + changelog (gate ≤ {a.store_ratio:g}×)"
            if worst > a.store_ratio:
                verdict = "FAIL: " + verdict
                ok = False
            else:
                verdict = "ok, " + verdict
        elif mean < floor:
            verdict = "small, not gated"
        elif spread <= a.tolerance:
            verdict = "ok"
        else:
            verdict = "FAIL"
            ok = False
        print(f"  {names.get(k, k):34} min {lo / div:12,.1f}{unit}  max {hi / div:12,.1f}{unit}  "
              f"mean {mean / div:12,.1f}{unit}  ±{spread * 100:5.1f} %  {verdict}")
    if not any(k.startswith("bytes:") for k in keys):
        print("  (no instabrand_state_bytes{part=…} gauges in /metrics: state per part not checked)")
    print("PASS" if ok else "FAIL: a series moved more than the tolerance after the warm-up")
    return ok


def main(argv):
    a = parse_args(argv)
    if not Path(a.bin).exists():
        raise SystemExit(f"{a.bin} not found: build it (cargo build --release) or set INSTABRAND_BIN")
    if a.file and not a.file.exists():
        make_file(a)
    tmp = None
    if a.dir:
        data = a.dir
        data.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="instabrand-soak-")
        data = Path(tmp)
    mode = (f"file {a.file} at full speed" if a.file else
            f"generator at {a.rate:,.0f} events/s, event time ×{a.time_scale:,.0f} "
            f"for {a.minutes:g} min (≈{a.minutes * 60 * a.time_scale / 86_400:,.1f} days)")
    samples, ok, server, first_event = [], False, None, None
    # Live, event time starts at the wall clock when the server starts (a fresh data
    # dir restores nothing to start after).
    launched_ms = int(time.time() * 1000)
    try:
        server = Server(a, data)
        print(f"# soak: {mode}; data dir {data} (state.redb, archive/); sample every {a.every:g} s",
              flush=True)
        print(f"# {' '.join(server.argv)}", flush=True)
        t0 = time.time()
        next_at = t0 + a.every
        first_event = file_start_ms(a.file) if a.file else launched_ms
        while True:
            time.sleep(max(0.0, next_at - time.time()))
            next_at += a.every
            if server.proc.poll() is not None:
                raise SystemExit(f"server exited ({server.proc.returncode}):\n{server.tail()}")
            s = sample(server, data, t0)
            print(line(s, samples[-1] if samples else None, first_event), flush=True)
            samples.append(s)
            if a.file and file_done(s):
                print("# the file is consumed", flush=True)
                break
            if not a.file and s["wall_s"] >= a.minutes * 60 - 1:
                break
        ok = summarize(a, samples, first_event)
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        ok = summarize(a, samples, first_event)
    finally:
        if server:
            server.stop()
        if tmp and not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp:
            print(f"# kept {tmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
