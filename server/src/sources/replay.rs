//! Archive replay as a source: the archive's raw events read back in event-time order
//! (see `archive::reader`), from a folder or from `s3://bucket/prefix` (with the
//! connection settings of `archive.s3`), and fed again, at a chosen multiple of their original pace
//! or as fast as they are taken, either into this server's pipeline
//! ([`run_replay_source`], `instabrand replay --to embedded`) or to Kafka's event
//! topics ([`replay_to_kafka`], `--to kafka`), for demos and for rebuilding state.
//!
//! Pace: an event `t` ms of event time after the first one is sent `t / speed` ms of
//! wall time after the start. Each record carries the event type it was archived with
//! as its hint, so records that came from per-event Kafka topics without an `event`
//! field decode again. Progress goes to stderr (one line redrawn on a terminal, a line
//! every few seconds otherwise) and to the health view under the `replay` source.
//!
//! Position: the number of archive records handed over, saved with each batch in the
//! state checkpoint (with the archive's path), so a replay server that restarts on its
//! checkpoint continues after the records its state already holds instead of applying
//! them twice.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use instabrand_shared::EventKind;
use instabrand_shared::time::format_naive;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::SourceCtx;
use crate::archive::{ArchiveError, ArchiveLocation, ArchiveReader, ArchivedRow, S3Config};
use crate::intake::{Origin, Record};
use crate::kafka::{KafkaConfig, KafkaError, counting_producer, ensure_topics, topic_for};
use crate::telemetry::ProgressLine;

/// The source's name in health and in checkpoint positions.
pub const NAME: &str = "replay";

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Speed {
    /// As fast as the receiver takes it (`--speed 0` or `--speed max`).
    Max,
    /// This many times the original pace (`--speed 1` is real time).
    Times(f64),
}

impl FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.trim_end_matches(['x', 'X']).parse::<f64>() {
            Ok(0.0) => Ok(Speed::Max),
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Speed::Times(v)),
            _ => Err(format!(
                "speed {s:?}: give a positive multiple of the original pace, or 0 / max"
            )),
        }
    }
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Times(v) => write!(f, "{v}x"),
        }
    }
}

/// `instabrand replay` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConfig {
    /// The archive root (holding `dt=…/`): a folder or `s3://bucket/prefix`.
    pub from: ArchiveLocation,
    pub speed: Speed,
    /// Records per pipeline batch, at most.
    pub batch_records: usize,
    /// Batches read ahead of the pipeline, at most.
    pub read_ahead_batches: usize,
}

impl ReplayConfig {
    pub fn new(from: ArchiveLocation, speed: Speed) -> Self {
        ReplayConfig {
            from,
            speed,
            batch_records: 4096,
            read_ahead_batches: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("producing to Kafka: {0}")]
    Produce(#[source] RdKafkaError),
    #[error("the pipeline has stopped")]
    PipelineClosed,
    #[error("{0} of {1} records were not acknowledged by Kafka")]
    Undelivered(u64, u64),
    #[error("the replay reader thread failed: {0}")]
    Reader(String),
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    pub records: u64,
    pub files: usize,
    pub elapsed: Duration,
    /// Event time of the last record replayed.
    pub last_event_ms: Option<i64>,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replayed {} events from {} files in {:.1} s ({:.0}/s)",
            self.records,
            self.files,
            self.elapsed.as_secs_f64(),
            self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )
    }
}

/// When each event is due, at `speed` times its original pace.
struct Pacer {
    speed: Speed,
    origin: Option<(i64, Instant)>,
}

impl Pacer {
    fn new(speed: Speed) -> Self {
        Pacer {
            speed,
            origin: None,
        }
    }

    /// `None`: due now.
    fn due(&mut self, event_ms: i64) -> Option<Instant> {
        let Speed::Times(x) = self.speed else {
            return None;
        };
        let (t0, w0) = *self.origin.get_or_insert((event_ms, Instant::now()));
        let ahead = (event_ms - t0).max(0) as f64 / x / 1000.0;
        let due = w0 + Duration::from_secs_f64(ahead);
        // Finer sleeps cost more than the burst they smooth.
        (due > Instant::now() + Duration::from_millis(1)).then_some(due)
    }
}

/// The progress line: events replayed, share, event time, rate.
struct Progress {
    line: ProgressLine,
    total: u64,
    started: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress {
            line: ProgressLine::default(),
            total,
            started: Instant::now(),
        }
    }

    fn text(&self, done: u64, event_ms: Option<i64>) -> String {
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        format!(
            "replay: {done}/{} events ({:.1}%), event time {}, {rate:.0}/s",
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
            event_ms.map(format_naive).unwrap_or_else(|| "-".into()),
        )
    }

    /// True when a line was shown (the caller may update other displays then too).
    fn maybe_show(&mut self, done: u64, event_ms: Option<i64>) -> bool {
        if !self.line.due() {
            return false;
        }
        self.show(done, event_ms);
        true
    }

    fn show(&mut self, done: u64, event_ms: Option<i64>) {
        let line = self.text(done, event_ms);
        self.line.show(&line);
    }

    fn finish(&mut self, done: u64, event_ms: Option<i64>) {
        self.show(done, event_ms);
        self.line.finish();
    }
}

/// Reads the archive on a blocking thread, `batch` rows at a time, into a bounded
/// channel: file reads and decompression stay off the async workers.
fn spawn_reader(
    reader: ArchiveReader,
    batch: usize,
    ahead: usize,
    stop: CancellationToken,
) -> mpsc::Receiver<Result<Vec<ArchivedRow>, ArchiveError>> {
    let (tx, rx) = mpsc::channel(ahead.max(1));
    let batch = batch.max(1);
    tokio::task::spawn_blocking(move || {
        let mut rows = Vec::with_capacity(batch);
        for row in reader {
            if stop.is_cancelled() {
                return;
            }
            match row {
                Ok(r) => rows.push(r),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            if rows.len() == batch
                && tx
                    .blocking_send(Ok(std::mem::replace(&mut rows, Vec::with_capacity(batch))))
                    .is_err()
            {
                return;
            }
        }
        if !rows.is_empty() {
            let _ = tx.blocking_send(Ok(rows));
        }
    });
    rx
}

/// Records of this archive already in the restored state.
fn restored_records(state: &SourceCtx, from: &ArchiveLocation) -> u64 {
    state
        .restored
        .get(NAME)
        .filter(|p| p.get("from").and_then(|f| f.as_str()) == Some(&*from.to_string()))
        .and_then(|p| p.get("records"))
        .and_then(|n| n.as_u64())
        .unwrap_or(0)
}

fn position(from: &ArchiveLocation, records: u64) -> (String, serde_json::Value) {
    (
        NAME.to_string(),
        json!({ "from": from.to_string(), "records": records }),
    )
}

/// Sends what is pending to the pipeline, with the replay's position after it.
async fn hand_over(
    state: &SourceCtx,
    from: &ArchiveLocation,
    pending: &mut Vec<Record>,
    done: &mut u64,
) -> Result<(), ReplayError> {
    *done += pending.len() as u64;
    let batch = std::mem::take(pending);
    state
        .intake
        .send_at(batch, position(from, *done))
        .await
        .map_err(|_| ReplayError::PipelineClosed)
}

fn record(row: ArchivedRow) -> Record {
    let mut r = Record::new(row.raw, Origin::Replay);
    r.hint = EventKind::parse(&row.event);
    r
}

/// Replays the archive `cfg.from` (with the S3 settings `s3`) into this server's
/// pipeline until it ends or `shutdown`. Returns once every replayed record has been
/// applied.
pub async fn run_replay_source(
    state: SourceCtx,
    s3: S3Config,
    cfg: ReplayConfig,
    shutdown: CancellationToken,
) -> Result<ReplaySummary, ReplayError> {
    let report = |connected: bool, detail: String| {
        state.health.update(NAME, |h| {
            h.connected = connected;
            h.detail = detail;
            h.rate = match cfg.speed {
                Speed::Max => None,
                Speed::Times(x) => Some(x),
            };
        })
    };
    // Blocking: reads every file's footer, over the network for S3.
    let from = cfg.from.clone();
    let opened = tokio::task::spawn_blocking(move || ArchiveReader::open_at(&from, &s3))
        .await
        .map_err(|e| ReplayError::Reader(e.to_string()))?;
    let reader = match opened {
        Ok(r) => r,
        Err(e) => {
            report(false, format!("cannot read {}: {e}", cfg.from));
            return Err(e.into());
        }
    };
    let (total, files) = (reader.total_rows(), reader.files());
    let skip = restored_records(&state, &cfg.from);
    info!(
        from = %cfg.from,
        events = total,
        files,
        speed = %cfg.speed,
        already_applied = skip,
        "replaying the archive"
    );
    report(true, format!("replaying {total} events from {}", cfg.from));
    let stop = shutdown.child_token();
    let mut rows = spawn_reader(
        reader,
        cfg.batch_records,
        cfg.read_ahead_batches,
        stop.clone(),
    );
    let _stop_reader = stop.drop_guard();
    let mut pacer = Pacer::new(cfg.speed);
    let mut progress = Progress::new(total);
    // Records handed to the pipeline (or already in the restored state), in archive order.
    let mut done = 0u64;
    let mut last_ms = None;
    let mut pending: Vec<Record> = Vec::with_capacity(cfg.batch_records);
    'read: loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break 'read,
            b = rows.recv() => b,
        };
        let Some(batch) = batch else { break };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                report(false, format!("replay stopped at {done}/{total}: {e}"));
                return Err(e.into());
            }
        };
        for row in batch {
            if done < skip {
                done += 1;
                continue;
            }
            if let Some(due) = pacer.due(row.event_time_ms) {
                // Hand over what is due before waiting for the next one.
                hand_over(&state, &cfg.from, &mut pending, &mut done).await?;
                tokio::select! {
                    _ = shutdown.cancelled() => break 'read,
                    _ = tokio::time::sleep_until(due.into()) => {}
                }
            }
            last_ms = Some(row.event_time_ms);
            pending.push(record(row));
            if pending.len() >= cfg.batch_records.max(1) {
                hand_over(&state, &cfg.from, &mut pending, &mut done).await?;
            }
            if progress.maybe_show(done, last_ms) {
                report(true, progress.text(done, last_ms));
            }
        }
    }
    done += pending.len() as u64;
    // The queue is FIFO: once this (possibly empty) batch is applied, all are.
    state
        .intake
        .submit_batch(pending, Some(position(&cfg.from, done)), false)
        .await
        .map_err(|_| ReplayError::PipelineClosed)?;
    progress.finish(done, last_ms);
    let summary = ReplaySummary {
        records: done,
        files,
        elapsed: progress.started.elapsed(),
        last_event_ms: last_ms,
    };
    let finished = if shutdown.is_cancelled() && done < total {
        format!("replay stopped at {done}/{total} events")
    } else {
        format!("replay finished: {summary}")
    };
    info!("{finished}");
    report(true, finished);
    Ok(summary)
}

/// How long the final flush waits for the broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Produces the archive at `from` to Kafka: each raw record to the topic of its event
/// type (or the combined topic, if configured), keyed by username, with an idempotent
/// producer. `kafka.brokers` must be set; `kafka.client` properties apply; `s3` holds
/// the connection settings for an `s3://` archive. Ctrl-C stops after flushing what
/// was sent.
pub async fn replay_to_kafka(
    from: &ArchiveLocation,
    speed: Speed,
    kafka: &KafkaConfig,
    s3: &S3Config,
) -> Result<ReplaySummary, ReplayError> {
    let brokers = kafka.brokers.clone().ok_or(KafkaError::NoBrokers)?;
    if kafka.create_topics {
        let names: Vec<&str> = match &kafka.combined_topic {
            Some(t) => vec![t.as_str()],
            None => EventKind::ALL.iter().map(|k| k.as_str()).collect(),
        };
        ensure_topics(kafka, &names).await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    let signal = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.store(true, Ordering::Relaxed);
        }
    });
    let (from, kafka, s3) = (from.clone(), kafka.clone(), s3.clone());
    let result = tokio::task::spawn_blocking(move || {
        produce_blocking(&from, speed, &brokers, &kafka, &s3, &stop)
    })
    .await
    .map_err(|e| ReplayError::Reader(e.to_string()))?;
    signal.abort();
    result
}

fn produce_blocking(
    from: &ArchiveLocation,
    speed: Speed,
    brokers: &str,
    kafka: &KafkaConfig,
    s3: &S3Config,
    stop: &AtomicBool,
) -> Result<ReplaySummary, ReplayError> {
    let reader = ArchiveReader::open_at(from, s3)?;
    let (total, files) = (reader.total_rows(), reader.files());
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "instabrand-replay");
    let (producer, counts) = counting_producer(c, &kafka.client, "replay producer")?;
    let mut pacer = Pacer::new(speed);
    let mut progress = Progress::new(total);
    let mut sent = 0u64;
    let mut last_ms = None;
    for row in reader {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let row = row?;
        if let Some(due) = pacer.due(row.event_time_ms) {
            producer.poll(Duration::ZERO);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let topic = EventKind::parse(&row.event)
            .map(|k| topic_for(kafka, k).to_string())
            .unwrap_or_else(|| row.event.clone());
        let mut record = BaseRecord::to(&topic)
            .key(row.username.as_bytes())
            .payload(&row.raw[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The broker is behind: serve acknowledgements, then retry.
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
                Err((e, _)) => return Err(ReplayError::Produce(e)),
            }
        }
        sent += 1;
        last_ms = Some(row.event_time_ms);
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
            progress.maybe_show(sent, last_ms);
        }
    }
    if let Err(e) = producer.flush(FLUSH_TIMEOUT) {
        warn!(error = %e, in_flight = producer.in_flight_count(), "not every replayed record was acknowledged");
    }
    progress.finish(sent, last_ms);
    let failed = counts.failed.load(Ordering::Relaxed)
        + u64::try_from(producer.in_flight_count()).unwrap_or(0);
    if failed > 0 {
        return Err(ReplayError::Undelivered(failed, sent));
    }
    Ok(ReplaySummary {
        records: sent,
        files,
        elapsed: progress.started.elapsed(),
        last_event_ms: last_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_reads_multiples_and_max() {
        assert_eq!("0".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("10".parse::<Speed>(), Ok(Speed::Times(10.0)));
        assert_eq!("2.5x".parse::<Speed>(), Ok(Speed::Times(2.5)));
        assert!("-1".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }

    #[test]
    fn the_pacer_spaces_events_by_their_time_over_the_speed() {
        let mut p = Pacer::new(Speed::Times(1000.0));
        assert_eq!(p.due(0), None);
        // 10 s of event time at 1000x is 10 ms of wall time.
        let due = p.due(10_000).expect("later");
        let wait = due.saturating_duration_since(Instant::now());
        assert!(wait <= Duration::from_millis(10) && wait > Duration::from_millis(5));
        let mut max = Pacer::new(Speed::Max);
        assert_eq!(max.due(0), None);
        assert_eq!(max.due(1_000_000), None);
    }
}
