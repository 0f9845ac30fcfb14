//! Produce-to-screen latency through Kafka: produces the generator's stream to the
//! event topics at a fixed rate and, on a WebSocket subscribed to the live map, times
//! each upload from just before it was handed to the producer to the arrival of the
//! `map_points` frame that carries it. Used by `scripts/bench-kafka.sh`.
//!
//! To tell the broker's share from the server's, a bare consumer in its own group reads
//! `photo-upload` beside the server and times each upload from the same start to its
//! arrival there (the `broker_*` figures): produce, broker and fetch, no server.
//!
//! `kafka_latency BROKERS WS_URL RATE SECONDS` prints one JSON line with the
//! percentiles in milliseconds. A photo is identified by its owner and its
//! `created_time` (whole seconds), which the generator never repeats; the first two
//! seconds of the paced stream are a warm-up and not counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use instabrand_generator::{Config, Generator, write_original_json};
use instabrand_shared::{Event, Millis};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio_tungstenite::tungstenite::Message;

const WARM_UP: Duration = Duration::from_secs(2);

type Sent = Arc<Mutex<HashMap<(String, Millis), Instant>>>;

fn wall_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, ws_url, rate, seconds] = &args[..] else {
        eprintln!("usage: kafka_latency BROKERS WS_URL RATE SECONDS");
        std::process::exit(2);
    };
    let rate: f64 = rate.parse().expect("RATE is a number");
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");

    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .expect("WebSocket");
    ws.send(Message::text(
        r#"{"op":"subscribe","topic":{"type":"map"}}"#,
    ))
    .await
    .expect("subscribe");

    let sent: Sent = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probing = {
        let (brokers, sent, stop) = (brokers.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || broker_probe(&brokers, &sent, &stop))
    };
    let producing = {
        let (brokers, sent) = (brokers.clone(), sent.clone());
        std::thread::spawn(move || produce(&brokers, rate, seconds, &sent))
    };

    let mut latencies: Vec<f64> = Vec::new();
    let mut unmatched = 0u64;
    let mut frames = 0u64;
    let mut done_at: Option<Instant> = None;
    loop {
        if producing.is_finished() && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        // Frames for the last photos arrive shortly after producing ends.
        if done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_millis(200), ws.next()).await
        else {
            continue;
        };
        let arrived = Instant::now();
        let Message::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&text).expect("frame JSON");
        if v["snapshot"].as_bool() != Some(false) || v["frame"]["kind"] != "map_points" {
            continue;
        }
        frames += 1;
        let sent = sent.lock().expect("sent lock");
        for p in v["frame"]["data"].as_array().into_iter().flatten() {
            let key = (
                p["owner"].as_str().unwrap_or_default().to_string(),
                p["created_ms"].as_i64().unwrap_or_default() as Millis,
            );
            match sent.get(&key) {
                Some(t) => latencies.push(arrived.duration_since(*t).as_secs_f64() * 1000.0),
                None => unmatched += 1,
            }
        }
    }
    let (photos, produced) = producing.join().expect("producer thread");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut broker = probing.join().expect("probe thread");
    let pct = |v: &mut Vec<f64>, q: f64| -> f64 {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    println!(
        "{{\"rate\": {rate}, \"events\": {produced}, \"photos_timed\": {photos}, \"photos_seen\": {}, \"unmatched\": {unmatched}, \"frames\": {frames}, \"p50_ms\": {:.1}, \"p90_ms\": {:.1}, \"p99_ms\": {:.1}, \"max_ms\": {:.1}, \"broker_seen\": {}, \"broker_p50_ms\": {:.1}, \"broker_p99_ms\": {:.1}}}",
        latencies.len(),
        pct(&mut latencies, 0.50),
        pct(&mut latencies, 0.90),
        pct(&mut latencies, 0.99),
        pct(&mut latencies, 1.0),
        broker.len(),
        pct(&mut broker, 0.50),
        pct(&mut broker, 0.99),
    );
}

/// Reads `photo-upload` with a bare consumer (the server's fetch settings) until
/// `stop`, returning each timed upload's produce-to-consume latency in milliseconds.
fn broker_probe(brokers: &str, sent: &Sent, stop: &std::sync::atomic::AtomicBool) -> Vec<f64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "latency-probe")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("probe consumer");
    consumer.subscribe(&["photo-upload"]).expect("subscribe");
    let mut out = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let arrived = Instant::now();
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
        else {
            continue;
        };
        let (Some(user), Some(Ok(t))) = (
            v["username"].as_str(),
            v["created_time"]
                .as_str()
                .map(instabrand_shared::time::parse_time),
        ) else {
            continue;
        };
        if let Some(at) = sent.lock().expect("sent lock").get(&(user.to_string(), t)) {
            out.push(arrived.duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    out
}

/// Produces the bootstrap unpaced and untimed, then `seconds` of paced stream, timing
/// every upload after the warm-up. Returns (uploads timed, events produced).
fn produce(brokers: &str, rate: f64, seconds: f64, sent: &Sent) -> (u64, u64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut g = Generator::new(Config {
        seed: 11,
        users: 2_000,
        mean_follows: 10.0,
        start_ms: wall_ms(),
        rate,
        ..Config::default()
    });
    let mut buf = Vec::with_capacity(512);
    let send = |e: &Event<'_>, buf: &mut Vec<u8>| {
        buf.clear();
        write_original_json(e, buf);
        let mut rec = BaseRecord::to(e.kind().as_str())
            .key(e.key())
            .payload(&buf[..]);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(5));
                    rec = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    };
    let mut produced = 0u64;
    while g.in_bootstrap() {
        let e = g.next_event_at(wall_ms());
        send(&e, &mut buf);
        produced += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("bootstrap flushed");
    // Let the server catch up with the bootstrap before timing anything.
    std::thread::sleep(Duration::from_secs(3));

    let start = Instant::now();
    let total = (rate * seconds) as u64;
    let mut photos = 0u64;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let e = g.next_event_at(wall_ms());
        // The wire format keeps whole seconds, and so does the map point.
        if let (Event::PhotoUpload(p), true) = (&e, start.elapsed() > WARM_UP) {
            sent.lock().expect("sent lock").insert(
                (p.username.to_string(), p.created / 1000 * 1000),
                Instant::now(),
            );
            photos += 1;
        }
        send(&e, &mut buf);
        produced += 1;
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
    (photos, produced)
}
