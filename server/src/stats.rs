//! Counters the running parts publish for the health view and `/metrics`: what went
//! through the pipeline, the aligner as last seen, checkpoints and the store, and each
//! source's own health. Writers and readers share them through an `Arc`; nothing here
//! knows who writes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use instabrand_shared::Millis;
use instabrand_shared::api::{CheckpointHealth, SourceHealth};

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
