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

use std::sync::Arc;

use tokio::sync::watch;

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
