//! `instabrand generate --kafka`: the generator's stream produced to the event topics,
//! in the exact original JSON shape, keyed by username (the user the event is about:
//! the creator, the uploader, the follower, the liker or commenter), as the original
//! producer did.
//!
//! The producer is idempotent (`enable.idempotence`): librdkafka's retries after a
//! lost acknowledgement neither duplicate nor reorder records within a partition.
//! (tansu 0.6 accepts it; checked against it.) The bootstrap (every user and the
//! initial follow graph) is produced as fast as the broker takes it; after that the
//! stream is paced at `rate` events per second of wall time and stamped with the wall
//! clock, so a consuming server sees a live network. A rate that is not a positive
//! number means unpaced. Ctrl-C stops cleanly: what was sent is flushed first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use instabrand_generator::{Generator, write_original_json};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use tracing::{info, warn};

use super::{
    Deliveries, KafkaConfig, KafkaError, client_config, counting_producer, ensure_topics,
    source_topics, topic_for,
};
use crate::clock::wall_ms;
use crate::telemetry::ProgressLine;

/// How long the final flush may wait for the broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Produces `events` events (unbounded if `None`, until Ctrl-C) from a generator built
/// with `network`, paced at `network.rate` events/s after the bootstrap.
pub async fn produce(
    cfg: &KafkaConfig,
    network: instabrand_generator::Config,
    events: Option<u64>,
) -> anyhow::Result<()> {
    if cfg.create_topics {
        let topics = source_topics(cfg);
        let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
        ensure_topics(cfg, &names)
            .await
            .context("creating the event topics")?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.store(true, Ordering::Relaxed);
        }
    });
    let cfg = cfg.clone();
    let summary =
        tokio::task::spawn_blocking(move || produce_blocking(&cfg, network, events, &stop))
            .await
            .context("the producer thread panicked")??;
    eprintln!("{summary}");
    if summary.failed > 0 {
        anyhow::bail!("{} events were not delivered", summary.failed);
    }
    Ok(())
}

#[derive(Debug)]
struct Summary {
    sent: u64,
    delivered: u64,
    failed: u64,
    elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "produced {} events in {:.1} s ({:.0}/s): {} acknowledged, {} failed",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.delivered,
            self.failed
        )
    }
}

fn produce_blocking(
    cfg: &KafkaConfig,
    network: instabrand_generator::Config,
    events: Option<u64>,
    stop: &AtomicBool,
) -> Result<Summary, KafkaError> {
    let (producer, counts) = counting_producer(client_config(cfg)?, &cfg.client, "producer")?;
    let rate = (network.rate.is_finite() && network.rate > 0.0).then_some(network.rate);
    let mut generator = Generator::new(network);
    info!(
        bootstrap = generator.bootstrap_len(),
        rate = ?rate,
        events = ?events,
        "producing the generator's stream to Kafka"
    );
    let mut progress = Progress::new(generator.bootstrap_len());
    let started = Instant::now();
    // Wall time and count when pacing began (the end of the bootstrap).
    let mut paced_from: Option<(Instant, u64)> = None;
    let mut buf = Vec::with_capacity(512);
    let mut sent = 0u64;
    while events.is_none_or(|n| sent < n) && !stop.load(Ordering::Relaxed) {
        if let (Some(rate), false) = (rate, generator.in_bootstrap()) {
            let (t0, n0) = *paced_from.get_or_insert((Instant::now(), sent));
            let due = t0 + Duration::from_secs_f64((sent - n0) as f64 / rate);
            let now = Instant::now();
            // Sleep only when at least a millisecond ahead: finer sleeps cost more than
            // the burst they smooth.
            if due > now + Duration::from_millis(1) {
                producer.poll(Duration::ZERO);
                std::thread::sleep(due - now);
            }
        }
        let event = generator.next_event_at(wall_ms());
        buf.clear();
        write_original_json(&event, &mut buf);
        let mut record = BaseRecord::to(topic_for(cfg, event.kind()))
            .key(event.key())
            .payload(&buf[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The broker is behind (or away): serve acknowledgements, retry.
                    producer.poll(Duration::from_millis(10));
                    record = r;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Err((e, _)) => {
                    return Err(KafkaError::Client {
                        what: "record",
                        source: e,
                    });
                }
            }
        }
        sent += 1;
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
            progress.maybe_show(sent, &counts, generator.in_bootstrap());
        }
    }
    progress.finish();
    if let Err(e) = producer.flush(FLUSH_TIMEOUT) {
        warn!(error = %e, in_flight = producer.in_flight_count(), "not every event was acknowledged");
    }
    Ok(Summary {
        sent,
        delivered: counts.delivered.load(Ordering::Relaxed),
        failed: counts.failed.load(Ordering::Relaxed)
            + u64::try_from(producer.in_flight_count()).unwrap_or(0),
        elapsed: started.elapsed(),
    })
}

/// The progress display: sent, rate since the last line, phase, acknowledgements.
struct Progress {
    line: ProgressLine,
    bootstrap: u64,
    last_sent: u64,
}

impl Progress {
    fn new(bootstrap: u64) -> Self {
        Progress {
            line: ProgressLine::default(),
            bootstrap,
            last_sent: 0,
        }
    }

    fn maybe_show(&mut self, sent: u64, counts: &Deliveries, bootstrap: bool) {
        if !self.line.due() {
            return;
        }
        let rate = (sent - self.last_sent) as f64 / self.line.since_last().as_secs_f64();
        let phase = if bootstrap {
            format!(
                "bootstrap {:.0}%",
                100.0 * sent as f64 / self.bootstrap.max(1) as f64
            )
        } else {
            "live".to_string()
        };
        self.line.show(&format!(
            "{sent} events sent ({rate:.0}/s, {phase}), {} acknowledged, {} failed",
            counts.delivered.load(Ordering::Relaxed),
            counts.failed.load(Ordering::Relaxed)
        ));
        self.last_sent = sent;
    }

    fn finish(&self) {
        self.line.finish();
    }
}
