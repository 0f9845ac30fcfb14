//! A WebSocket load client: opens N dashboard connections to a running server, each
//! subscribing to a chosen set of topics, and reports what one dashboard gets and what
//! the server pays for it:
//!
//! - frames per second per client (min, median) and bytes per second per client
//!   (median, max), over the measuring period;
//! - fan-out spread: for each frame (topic and sequence number), the time between its
//!   first and its last receipt across clients, as percentiles over all frames;
//! - the server's resident memory per connection: `VmRSS` of `/proc/<pid>/status`
//!   before connecting and once every client has its snapshots, divided by N (pass
//!   `--pid`); and again after they all left, to see whether memory came back.
//!
//! ```text
//! cargo run --release -p instabrand-server --example loadtest -- \
//!     --url ws://127.0.0.1:8080/ws --clients 10000 --topics overview --seconds 20 --pid $(pgrep -n instabrand)
//! ```
//!
//! `--topics` is `overview` (leaderboard 5m, influencers 5m, alerts: what the overview
//! page subscribes to), `all-time` (the all-time leaderboard's first page), `idle`
//! (alerts only: a connection that is mostly quiet) or a JSON array of topics. Only for
//! servers on this machine: it refuses any host but 127.0.0.1 and localhost.
//!
//! The client shares the machine with the server it measures, so it is kept cheap per
//! received frame: it speaks the few parts of WebSocket it needs itself (the upgrade,
//! unmasked frames from the server, masked frames and pongs to it) over a plain
//! `TcpStream`, reads into spare capacity without zeroing it, and looks only at a
//! frame's first bytes for its identity. It runs one worker thread per core, as
//! `#[tokio::main]` did (`--threads 1` for one: on two cores shared with the server,
//! a frame's last receipt then waits for one thread to get through 10,000 sockets,
//! which adds about 20 ms to the spread's p99 here). Every
//! client keeps reading from its first snapshot on, so frames sent while others were
//! still connecting do not pile up in the socket and arrive as a burst when measuring
//! starts; a frame counts for the spread only if its first receipt falls in the
//! measuring period.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use instabrand_shared::api::Window;
use instabrand_shared::ws::{ClientMessage, Topic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

struct Args {
    url: String,
    clients: usize,
    topics: Vec<Topic>,
    seconds: u64,
    pid: Option<u32>,
    threads: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadtest --url ws://127.0.0.1:PORT/ws --clients N \
         [--topics overview|all-time|idle|JSON] [--seconds S] [--pid SERVER_PID] [--threads T]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        url: "ws://127.0.0.1:8080/ws".into(),
        clients: 100,
        topics: preset("overview").expect("a preset"),
        seconds: 20,
        pid: None,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--url" => args.url = value,
            "--clients" => args.clients = value.parse().unwrap_or_else(|_| usage()),
            "--seconds" => args.seconds = value.parse().unwrap_or_else(|_| usage()),
            "--pid" => args.pid = Some(value.parse().unwrap_or_else(|_| usage())),
            "--threads" => args.threads = value.parse().unwrap_or_else(|_| usage()),
            "--topics" => {
                args.topics = preset(&value)
                    .or_else(|| serde_json::from_str(&value).ok())
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let host_ok = ["ws://127.0.0.1:", "ws://localhost:"]
        .iter()
        .any(|p| args.url.starts_with(p));
    if !host_ok {
        eprintln!("loadtest only runs against a server on this machine (127.0.0.1)");
        std::process::exit(2);
    }
    args
}

fn preset(name: &str) -> Option<Vec<Topic>> {
    Some(match name {
        "overview" => vec![
            Topic::leaderboard(Window::M5),
            Topic::Influencers { window: Window::M5 },
            Topic::Alerts,
        ],
        "all-time" => vec![Topic::leaderboard(Window::All)],
        "idle" => vec![Topic::Alerts],
        _ => return None,
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What one client saw while measuring: (frame key, receipt time since the measuring
/// period began) and counts.
#[derive(Default)]
struct Seen {
    receipts: Vec<(u64, Duration)>,
    frames: u64,
    bytes: u64,
    resyncs: u64,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where a message's fields after the topic are: `seq` and `snapshot` come right
/// after it (`ServerMessage`'s field order), within the first few hundred bytes.
const HEAD: usize = 512;

/// The frame's identity without parsing it: a hash of everything before `"seq":N`
/// (the topic) and the sequence number. Parsing every frame as JSON would cost the
/// load client more CPU than the server spends sending it.
fn frame_key(text: &[u8]) -> Option<u64> {
    let head = &text[..text.len().min(HEAD)];
    let at = find(head, b",\"seq\":")?;
    let mut seq: u64 = 0;
    let mut digits = 0;
    for &c in &head[at + 7..] {
        if !c.is_ascii_digit() {
            break;
        }
        seq = seq.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        digits += 1;
    }
    if digits == 0 {
        return None;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &text[..at] {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Some(h ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Whole-list frames (influencers, health) and resyncs say so next to their `seq`.
fn is_snapshot(text: &[u8]) -> bool {
    find(&text[..text.len().min(HEAD)], b"\"snapshot\":true").is_some()
}

/// One frame from the server (never masked, never fragmented by ours): its opcode,
/// where its payload lies in `buf`, and its whole length; `None` if not all there yet.
fn next_frame(buf: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 != 0 {
        return Err("a masked frame from the server".into());
    }
    if buf[0] & 0x80 == 0 {
        return Err("a fragmented frame from the server".into());
    }
    let (len, at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
            10,
        ),
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    let end = at + usize::try_from(len).map_err(|_| "a frame too large")?;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((buf[0] & 0x0f, at..end)))
}

/// A frame from the client: masked, as the protocol requires (the key need not be
/// secret here: this client only talks to a server on this machine).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x5a, 0xc3, 0x17, 0x8e];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&KEY);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    f
}

/// The upgrade: a fixed key (the server checks its form, not its value), then the
/// bytes after the response's headers, which may already hold frames.
async fn open(host: &str, path: &str) -> Result<(TcpStream, BytesMut), String> {
    let mut s = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                let line = String::from_utf8_lossy(&buf[..end]);
                return Err(format!(
                    "upgrade refused: {}",
                    line.lines().next().unwrap_or("")
                ));
            }
            buf.advance(end + 4);
            return Ok((s, buf));
        }
        if buf.len() > 16 * 1024 {
            return Err("upgrade response too long".into());
        }
        buf.reserve(4096);
        if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed during the upgrade".into());
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// What the clients share: when recording receipts and measuring started (each set
/// once), and how many are ready.
struct Run {
    /// A second before `measure_from`: the frames whose fan-out straddles the start
    /// are seen whole, and left out by their first receipt.
    record_from: OnceLock<Instant>,
    measure_from: OnceLock<Instant>,
    ready: AtomicUsize,
    stop: tokio_util::sync::CancellationToken,
}

async fn client(
    host: String,
    path: String,
    subscribe: Arc<Vec<Vec<u8>>>,
    handshakes: Arc<Semaphore>,
    run: Arc<Run>,
) -> Result<Seen, String> {
    let permit = handshakes.acquire().await.expect("semaphore open");
    let opened = open(&host, &path).await;
    let (mut s, mut buf) = match opened {
        Ok(o) => o,
        Err(e) => {
            drop(permit);
            run.ready.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    let mut out = Vec::new();
    for m in subscribe.iter() {
        out.extend_from_slice(m);
    }
    if let Err(e) = s.write_all(&out).await {
        drop(permit);
        run.ready.fetch_add(1, Ordering::Relaxed);
        return Err(e.to_string());
    }
    let mut snapshots = 0;
    let mut permit = Some(permit);
    let mut seen = Seen::default();
    let stop = run.stop.cancelled();
    tokio::pin!(stop);
    let result = 'conn: loop {
        // Every whole frame in the buffer, then one read.
        loop {
            let (opcode, range) = match next_frame(&buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => break 'conn Err(e),
            };
            let end = range.end;
            match opcode {
                1 | 2 => {
                    let text = &buf[range];
                    if snapshots < subscribe.len() {
                        // Before all its snapshots a client is still connecting.
                        if is_snapshot(text) {
                            snapshots += 1;
                            if snapshots == subscribe.len() {
                                permit = None;
                                run.ready.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    } else if let Some(r0) = run.record_from.get() {
                        let now = Instant::now();
                        if let Some(k) = frame_key(text) {
                            seen.receipts.push((k, now - *r0));
                        }
                        if run.measure_from.get().is_some_and(|t0| now >= *t0) {
                            seen.frames += 1;
                            seen.bytes += text.len() as u64;
                            if is_snapshot(text) {
                                seen.resyncs += 1;
                            }
                        }
                    }
                }
                8 => break 'conn Err("closed by the server".into()),
                9 => {
                    let pong = client_frame(0xA, &buf[range]);
                    if let Err(e) = s.write_all(&pong).await {
                        break 'conn Err(e.to_string());
                    }
                }
                _ => {}
            }
            buf.advance(end);
        }
        buf.reserve(8192);
        tokio::select! {
            biased;
            _ = &mut stop => break Ok(()),
            r = s.read_buf(&mut buf) => match r {
                Ok(0) => break Err("closed by the server".into()),
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            },
        }
    };
    if permit.is_some() || snapshots < subscribe.len() {
        drop(permit);
        run.ready.fetch_add(1, Ordering::Relaxed);
        return Err(match result {
            Err(e) => format!("closed before its snapshots: {e}"),
            Ok(()) => "the run ended before its snapshots".into(),
        });
    }
    let _ = s.write_all(&client_frame(8, &1000u16.to_be_bytes())).await;
    result.map(|()| seen)
}

fn main() {
    let args = parse_args();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("a runtime");
    rt.block_on(run(args));
}

async fn run(args: Args) {
    if let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX)
        && (limit as usize) < args.clients + 64
    {
        eprintln!("open-file limit {limit} is below {} clients", args.clients);
    }
    let rest = args.url.trim_start_matches("ws://");
    let (host, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    };
    let rss_before = args.pid.and_then(rss_kib);
    let subscribe: Arc<Vec<Vec<u8>>> = Arc::new(
        args.topics
            .iter()
            .map(|t| {
                let m = serde_json::to_string(&ClientMessage::Subscribe { topic: t.clone() })
                    .expect("messages serialize");
                client_frame(1, m.as_bytes())
            })
            .collect(),
    );
    let start = Instant::now();
    let handshakes = Arc::new(Semaphore::new(256));
    let run = Arc::new(Run {
        record_from: OnceLock::new(),
        measure_from: OnceLock::new(),
        ready: AtomicUsize::new(0),
        stop: tokio_util::sync::CancellationToken::new(),
    });
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        tasks.push(tokio::spawn(client(
            host.clone(),
            path.clone(),
            subscribe.clone(),
            handshakes.clone(),
            run.clone(),
        )));
    }
    // Every client is connected and has its snapshots (or failed) before measuring.
    while run.ready.load(Ordering::Relaxed) < args.clients {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected_in = start.elapsed();
    // Let the connection wave settle before reading the server's memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = args.pid.and_then(rss_kib);
    let r0 = Instant::now();
    run.record_from.set(r0).expect("set once");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    run.measure_from.set(t0).expect("set once");
    let lead = t0 - r0;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    run.stop.cancel();
    let measured = t0.elapsed().as_secs_f64();

    let mut failures = 0;
    let mut first_error = None;
    let mut resyncs = 0;
    let mut frame_rates = Vec::new();
    let mut byte_rates = Vec::new();
    let mut spans: HashMap<u64, (Duration, Duration, u32)> = HashMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok(seen)) => {
                resyncs += seen.resyncs;
                frame_rates.push(seen.frames as f64 / measured);
                byte_rates.push(seen.bytes as f64 / measured);
                for (k, at) in seen.receipts {
                    let e = spans.entry(k).or_insert((at, at, 0));
                    e.0 = e.0.min(at);
                    e.1 = e.1.max(at);
                    e.2 += 1;
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let ok = frame_rates.len();
    // A frame counts for the spread when nearly every client got it (frames at the
    // window's edges reached only some before the clock stopped).
    // And when its first receipt is in the measuring period: one sent before it may
    // have reached some clients before receipts were recorded.
    let mut spreads: Vec<f64> = spans
        .values()
        .filter(|(first, _, n)| *first >= lead && *n as usize * 10 >= ok * 9)
        .map(|(first, last, _)| (*last - *first).as_secs_f64() * 1000.0)
        .collect();
    for v in [&mut frame_rates, &mut byte_rates, &mut spreads] {
        v.sort_by(f64::total_cmp);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = args.pid.and_then(rss_kib);

    println!(
        "clients {ok} connected ({failures} failed) in {:.1} s; topics {}",
        connected_in.as_secs_f64(),
        serde_json::to_string(&args.topics).unwrap_or_default()
    );
    if let Some(e) = first_error {
        println!("first failure: {e}");
    }
    println!(
        "frames/s per client: min {:.2}, median {:.2}, max {:.2} over {measured:.1} s",
        percentile(&frame_rates, 0.0),
        percentile(&frame_rates, 0.5),
        percentile(&frame_rates, 1.0)
    );
    println!(
        "bytes/s per client: median {:.0} ({:.1} KB/s), max {:.0}",
        percentile(&byte_rates, 0.5),
        percentile(&byte_rates, 0.5) / 1000.0,
        percentile(&byte_rates, 1.0)
    );
    println!("of which snapshots (whole-list frames such as influencers, and resyncs): {resyncs}");
    println!(
        "fan-out spread over {} frames: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        spreads.len(),
        percentile(&spreads, 0.5),
        percentile(&spreads, 0.9),
        percentile(&spreads, 0.99),
        percentile(&spreads, 1.0)
    );
    if let (Some(before), Some(connected)) = (rss_before, rss_connected) {
        let per = (connected.saturating_sub(before) as f64 * 1024.0) / ok.max(1) as f64;
        println!(
            "server RSS: {} MB before, {} MB connected ({:.1} KB per connection), {} MB after they left",
            before / 1024,
            connected / 1024,
            per / 1024.0,
            rss_after.unwrap_or(0) / 1024
        );
    }
}
