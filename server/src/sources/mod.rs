//! Every source that feeds the pipeline, behind one interface: a source is given a
//! [`SourceCtx`] (where its records go, where it reports its health, where it stopped
//! last time) and runs until shutdown. The embedded generator, a file, Kafka and the
//! archive replay live here; HTTP ingest is a route in `web` that sends through the
//! same intake.

pub mod file;
pub mod generator;
pub mod ingest;
pub mod kafka;
pub mod replay;

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::align::AlignConfig;
use crate::config::PipelineConfig;
use crate::intake::PipelineHandle;
use crate::stats::{PipelineStats, SourceRegistry};
use crate::store::Positions;

/// What every source reads and writes, and nothing more.
#[derive(Clone)]
pub struct SourceCtx {
    /// Where records go: a bounded queue, so a fast source waits.
    pub intake: PipelineHandle,
    /// Each source reports its health here under its name.
    pub health: Arc<SourceRegistry>,
    /// Positions in the last checkpoint: where each source resumes.
    pub restored: Arc<Positions>,
    /// The pipeline's counters: the aligner as last seen (Kafka pauses partitions far
    /// ahead of the others) and the newest applied time.
    pub stats: Arc<PipelineStats>,
    /// The last batch inside a durable checkpoint (Kafka commits only what is durable).
    pub durable: watch::Receiver<u64>,
    pub pipeline: PipelineConfig,
    pub align: AlignConfig,
    /// A source that must not go on stops the whole server through this, with why.
    pub refusal: Refusal,
}

/// A reason to stop the server that a source found: its Kafka consumer group is shared
/// with an instance it cannot merge with (docs/scale-out.md, "No silent split"). The
/// server stops as on a signal and exits with the reason as its error.
#[derive(Clone, Default)]
pub struct Refusal {
    stop: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Refusal {
    /// Stops the server with `why` (the first reason given stands).
    pub fn refuse(&self, why: String) {
        self.reason
            .lock()
            .expect("refusal lock poisoned")
            .get_or_insert(why);
        self.stop.cancel();
    }

    /// The reason given, if any.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().expect("refusal lock poisoned").clone()
    }

    /// Resolves once a source has refused.
    pub async fn refused(&self) {
        self.stop.cancelled().await
    }
}

impl SourceCtx {
    /// Reports this source's health as `connected` with `detail`.
    pub fn report(&self, name: &str, connected: bool, detail: String) {
        self.health.update(name, |h| {
            h.connected = connected;
            h.detail = detail;
        });
    }
}
