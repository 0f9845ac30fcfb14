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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use instabrand_shared::api::Window;
use instabrand_shared::ws::{ClientMessage, Topic};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

struct Args {
    url: String,
    clients: usize,
    topics: Vec<Topic>,
    seconds: u64,
    pid: Option<u32>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadtest --url ws://127.0.0.1:PORT/ws --clients N \
         [--topics overview|all-time|idle|JSON] [--seconds S] [--pid SERVER_PID]"
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
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--url" => args.url = value,
            "--clients" => args.clients = value.parse().unwrap_or_else(|_| usage()),
            "--seconds" => args.seconds = value.parse().unwrap_or_else(|_| usage()),
            "--pid" => args.pid = Some(value.parse().unwrap_or_else(|_| usage())),
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

/// What one client saw while measuring: (frame key, receipt time) and byte count.
#[derive(Default)]
struct Seen {
    receipts: Vec<(u64, Duration)>,
    frames: u64,
    bytes: u64,
    resyncs: u64,
}

/// The frame's identity without parsing it: a hash of everything before `"seq":N`
/// (the topic) and the sequence number. Parsing every frame as JSON would cost the
/// load client more CPU than the server spends sending it.
fn frame_key(text: &str) -> Option<u64> {
    let at = text.find(",\"seq\":")?;
    let digits: String = text[at + 7..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let seq: u64 = digits.parse().ok()?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text[..at].bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Some(h ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX)
        && (limit as usize) < args.clients + 64
    {
        eprintln!("open-file limit {limit} is below {} clients", args.clients);
    }
    let rss_before = args.pid.and_then(rss_kib);
    let subscribe: Arc<Vec<String>> = Arc::new(
        args.topics
            .iter()
            .map(|t| {
                serde_json::to_string(&ClientMessage::Subscribe { topic: t.clone() })
                    .expect("messages serialize")
            })
            .collect(),
    );
    let start = Instant::now();
    let handshakes = Arc::new(Semaphore::new(256));
    // Every client is connected and has its snapshots before measuring starts.
    let ready = Arc::new(tokio::sync::Barrier::new(args.clients + 1));
    let (measure_tx, measure_from) = tokio::sync::watch::channel(None::<Instant>);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let (url, subscribe, handshakes, ready, measure_from, stop) = (
            args.url.clone(),
            subscribe.clone(),
            handshakes.clone(),
            ready.clone(),
            measure_from.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let permit = handshakes.acquire().await.expect("semaphore open");
            let opened = async {
                // Small client buffers too: 10,000 clients at tungstenite's default
                // 128 KiB would take over a gigabyte of this machine from the server.
                let config = WebSocketConfig::default()
                    .read_buffer_size(16 * 1024)
                    .write_buffer_size(0);
                let (mut ws, _) =
                    tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
                        .await
                        .map_err(|e| e.to_string())?;
                for s in subscribe.iter() {
                    ws.send(Message::Text(s.clone().into()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let mut snapshots = 0;
                while snapshots < subscribe.len() {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.contains("\"snapshot\":true") => {
                            snapshots += 1
                        }
                        Some(Ok(_)) => {}
                        other => return Err(format!("closed before its snapshots: {other:?}")),
                    }
                }
                Ok(ws)
            }
            .await;
            drop(permit);
            // Every task reaches the barrier, failed or not, or the others would wait.
            ready.wait().await;
            let mut ws = opened?;
            let mut measure_from = measure_from;
            let t0 = match measure_from.wait_for(Option::is_some).await {
                Ok(t) => t.expect("set"),
                Err(_) => return Err("the run ended".to_string()),
            };
            let mut seen = Seen::default();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            let at = t0.elapsed();
                            seen.frames += 1;
                            seen.bytes += t.len() as u64;
                            // Whole-list frames (influencers, health) and resyncs.
                            if t.contains("\"snapshot\":true") {
                                seen.resyncs += 1;
                            }
                            if let Some(k) = frame_key(&t) {
                                seen.receipts.push((k, at));
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    }
                }
            }
            let _ = ws.close(None).await;
            Ok(seen)
        }));
    }
    ready.wait().await;
    let connected_in = start.elapsed();
    // Let the connection wave settle before reading the server's memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = args.pid.and_then(rss_kib);
    let t0 = Instant::now();
    let _ = measure_tx.send(Some(t0));
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.cancel();
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
    let mut spreads: Vec<f64> = spans
        .values()
        .filter(|(_, _, n)| *n as usize * 10 >= ok * 9)
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
