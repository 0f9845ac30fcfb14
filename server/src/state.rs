//! The state every part of the running server shares: configuration, the processor
//! behind a lock (one writer: the pipeline thread; many readers: REST, the hub), the
//! live hub, dead letters, pipeline counters and the sources' health.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use instabrand_shared::api::{ArchiveHealth, CheckpointHealth, Health, SourceHealth};
use instabrand_shared::{EventKind, Millis};

use crate::config::Config;
use crate::deadletter::DeadLetterLog;
use crate::hub::Hub;
use crate::pipeline::PipelineHandle;
use crate::processor::Processor;
use crate::sources::generator::GeneratorControl;

pub fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

pub struct AppState {
    pub config: Config,
    pub processor: RwLock<Processor>,
    /// Users who read their home timeline since the last batch: the pipeline notes
    /// them in the processor, which then keeps their timelines materialized.
    pub readers: crate::processor::ReaderLog,
    pub hub: Hub,
    pub dead_letters: DeadLetterLog,
    pub pipeline: PipelineHandle,
    pub stats: PipelineStats,
    pub sources: SourceRegistry,
    /// The embedded generator's controls, when it runs.
    pub generator: Option<GeneratorControl>,
    /// The raw-event archive writer, when enabled.
    pub archive: Option<crate::archive::ArchiveHandle>,
    /// The presenter controls' bearer token.
    pub control_token: String,
    /// The sequence number of the last batch inside a durable checkpoint.
    pub durable: tokio::sync::watch::Sender<u64>,
    /// Source positions restored from the last checkpoint at start.
    pub restored: crate::store::Positions,
    pub started: Instant,
}

/// The aligner as the pipeline last published it: what the health view shows of each
/// input, and what a Kafka source reads to pause the partitions far ahead.
#[derive(Debug, Clone, Default)]
pub struct OrderView {
    pub inputs: Vec<crate::align::InputStatus>,
    pub held: usize,
    pub stats: crate::align::AlignStats,
}

/// Valid events through the pipeline (applied, or only archived by an archiver), and
/// the recent rate.
pub struct PipelineStats {
    ingested: AtomicU64,
    /// The newest applied event time (`i64::MIN`: none yet).
    applied_time: AtomicI64,
    order: Mutex<OrderView>,
    window: Mutex<VecDeque<(Instant, u64)>>,
    checkpoints: AtomicU64,
    checkpoint_bytes: AtomicU64,
    checkpoint_ms: AtomicU64,
    checkpoint_pause_us: AtomicU64,
    store_sizes: Mutex<crate::store::StoreSizes>,
    compactions: AtomicU64,
    compaction_ms: AtomicU64,
    checkpoint_error: Mutex<Option<String>>,
}

impl Default for PipelineStats {
    fn default() -> Self {
        PipelineStats {
            ingested: AtomicU64::default(),
            applied_time: AtomicI64::new(i64::MIN),
            order: Mutex::default(),
            window: Mutex::default(),
            checkpoints: AtomicU64::default(),
            checkpoint_bytes: AtomicU64::default(),
            checkpoint_ms: AtomicU64::default(),
            checkpoint_pause_us: AtomicU64::default(),
            store_sizes: Mutex::default(),
            compactions: AtomicU64::default(),
            compaction_ms: AtomicU64::default(),
            checkpoint_error: Mutex::default(),
        }
    }
}

const RATE_SPAN: Duration = Duration::from_secs(5);

impl PipelineStats {
    pub fn set_applied_time(&self, t: Option<Millis>) {
        self.applied_time
            .store(t.unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    /// The newest event time applied so far.
    pub fn applied_time(&self) -> Option<Millis> {
        Some(self.applied_time.load(Ordering::Relaxed)).filter(|t| *t != i64::MIN)
    }

    pub fn publish_order(&self, view: OrderView) {
        *self.order.lock().expect("stats lock poisoned") = view;
    }

    pub fn order_view(&self) -> OrderView {
        self.order.lock().expect("stats lock poisoned").clone()
    }

    pub fn record_ingested(&self, n: u64) {
        self.ingested.fetch_add(n, Ordering::Relaxed);
        let now = Instant::now();
        let mut w = self.window.lock().expect("stats lock poisoned");
        w.push_back((now, n));
        while w
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_SPAN)
        {
            w.pop_front();
        }
    }

    /// A checkpoint of `bytes` was written: it took `took` from start to durable, of
    /// which the pipeline stopped applying for `pause` (taking the snapshot).
    pub fn record_checkpoint(&self, bytes: usize, pause: Duration, took: Duration) {
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.checkpoint_bytes.store(bytes as u64, Ordering::Relaxed);
        self.checkpoint_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
        self.checkpoint_pause_us
            .store(pause.as_micros() as u64, Ordering::Relaxed);
        *self.checkpoint_error.lock().expect("stats lock poisoned") = None;
    }

    /// A checkpoint failed (it is retried); shown in the health view until one succeeds.
    pub fn record_checkpoint_error(&self, error: &str) {
        *self.checkpoint_error.lock().expect("stats lock poisoned") = Some(error.to_string());
    }

    /// What the state store holds after a checkpoint or compaction.
    pub fn record_store(&self, sizes: crate::store::StoreSizes) {
        *self.store_sizes.lock().expect("stats lock poisoned") = sizes;
    }

    /// The changelog was compacted into a new base.
    pub fn record_compaction(&self, sizes: crate::store::StoreSizes, took: Duration) {
        self.record_store(sizes);
        self.compactions.fetch_add(1, Ordering::Relaxed);
        self.compaction_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
    }

    /// The checkpoints so far, for the health view and `/metrics`.
    pub fn checkpoint_health(&self) -> CheckpointHealth {
        let sizes = *self.store_sizes.lock().expect("stats lock poisoned");
        CheckpointHealth {
            taken: self.checkpoints.load(Ordering::Relaxed),
            last_bytes: self.checkpoint_bytes.load(Ordering::Relaxed),
            last_ms: self.checkpoint_ms.load(Ordering::Relaxed),
            last_pause_ms: self.checkpoint_pause_us.load(Ordering::Relaxed) / 1000,
            last_pause_us: self.checkpoint_pause_us.load(Ordering::Relaxed),
            base_bytes: sizes.base_bytes,
            changelog_bytes: sizes.log_bytes,
            changelog_entries: sizes.log_entries,
            file_bytes: sizes.file_bytes,
            compactions: self.compactions.load(Ordering::Relaxed),
            last_compaction_ms: self.compaction_ms.load(Ordering::Relaxed),
            last_error: self
                .checkpoint_error
                .lock()
                .expect("stats lock poisoned")
                .clone(),
        }
    }

    pub fn ingested(&self) -> u64 {
        self.ingested.load(Ordering::Relaxed)
    }

    /// Events per second over the last few seconds.
    pub fn rate(&self) -> f64 {
        let now = Instant::now();
        let w = self.window.lock().expect("stats lock poisoned");
        let n: u64 = w
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= RATE_SPAN)
            .map(|(_, n)| n)
            .sum();
        n as f64 / RATE_SPAN.as_secs_f64()
    }
}

/// Each source reports its own health under its name.
#[derive(Default)]
pub struct SourceRegistry {
    inner: Mutex<BTreeMap<String, SourceHealth>>,
}

impl SourceRegistry {
    pub fn update(&self, name: &str, f: impl FnOnce(&mut SourceHealth)) {
        let mut g = self.inner.lock().expect("source registry poisoned");
        let h = g.entry(name.to_string()).or_insert_with(|| SourceHealth {
            kind: name.to_string(),
            ..SourceHealth::default()
        });
        f(h);
    }

    pub fn all(&self) -> Vec<SourceHealth> {
        self.inner
            .lock()
            .expect("source registry poisoned")
            .values()
            .cloned()
            .collect()
    }
}

impl AppState {
    /// Waits until the batch with sequence `seq` is in a durable checkpoint.
    pub async fn wait_durable(&self, seq: u64) {
        let mut rx = self.durable.subscribe();
        let _ = rx.wait_for(|d| *d >= seq).await;
    }

    pub fn health(&self) -> Health {
        let p = self.processor.read().expect("processor lock poisoned");
        let sources = self.sources.all();
        let mut problems: Vec<String> = sources
            .iter()
            .filter(|s| !s.connected)
            .map(|s| format!("{} source disconnected: {}", s.kind, s.detail))
            .collect();
        if self.dead_letters.sink_errors() > 0 {
            problems.push(format!(
                "{} dead-letter writes failed",
                self.dead_letters.sink_errors()
            ));
        }
        let checkpoints = self
            .config
            .state
            .persist
            .then(|| self.stats.checkpoint_health());
        if let Some(e) = checkpoints.as_ref().and_then(|c| c.last_error.as_ref()) {
            problems.push(format!("checkpoints failing (retried): {e}"));
        }
        let archive = self.archive.as_ref().map(|a| {
            let s = a.stats();
            ArchiveHealth {
                location: s.dir,
                files: s.files_written,
                records: s.records_written,
                dead_letters: s.dead_letters_written,
                bytes: s.bytes_written,
                buffered: s.buffered_records,
                last_error: s.last_error,
            }
        });
        if let Some(e) = archive.as_ref().and_then(|a| a.last_error.as_ref()) {
            problems.push(format!("archive writes failing (retried): {e}"));
        }
        let by_reason = self.dead_letters.by_reason();
        let view = self.stats.order_view();
        let applied_time = p.newest_time();
        let order = instabrand_shared::api::OrderHealth {
            applied_time_ms: applied_time,
            held: view.held as u64,
            released_early: view.stats.released_early,
            inputs: view
                .inputs
                .into_iter()
                .map(|i| instabrand_shared::api::InputHealth {
                    trails_ms: i.watermark.zip(applied_time).map(|(w, a)| (w - a).max(0)),
                    name: i.name,
                    watermark_ms: i.watermark,
                    held: i.held as u64,
                    position: match i.position {
                        crate::align::LogPosition::Open => "open",
                        crate::align::LogPosition::AtEnd => "at_end",
                        crate::align::LogPosition::Behind => "behind",
                    }
                    .into(),
                    idle: i.idle,
                })
                .collect(),
        };
        if order.released_early > 0 {
            problems.push(format!(
                "{} events applied before the other inputs passed them (align.max_held is full)",
                order.released_early
            ));
        }
        Health {
            status: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            }
            .into(),
            problems,
            uptime_ms: self.started.elapsed().as_millis() as Millis,
            events_applied: p.stats.applied_by_kind.iter().sum(),
            events_ingested: self.stats.ingested(),
            events_per_sec: self.stats.rate(),
            events_by_kind: EventKind::ALL
                .iter()
                .map(|k| (k.as_str().to_string(), p.stats.applied_by_kind[*k as usize]))
                .collect(),
            dead_letters: by_reason.values().sum(),
            dead_letters_by_reason: by_reason
                .iter()
                .map(|(r, n)| (r.code().to_string(), *n))
                .collect(),
            pending_engagements: p.pending_count() as u64,
            users: p.user_count() as u64,
            implicit_users: p.stats.implicit_users,
            photos: p.photo_count() as u64,
            stream_clock_ms: p.clock().unwrap_or(0),
            late_events: p.stats.late_events,
            duplicates: p.stats.duplicates,
            superseded: p.stats.superseded,
            late_by_handling: crate::processor::late_by_handling(&p.stats),
            order,
            websocket_clients: self.hub.connections(),
            sources,
            checkpoints,
            archive,
            state: p.state_sizes(),
        }
    }
}
