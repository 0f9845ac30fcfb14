//! The application state the web layer serves from: configuration and a handle on each
//! running part (the processor behind its lock, the hub, dead letters, counters, the
//! sources' health, the archive). Only `web/` sees it whole; every other part is given
//! the few handles it reads and writes (`pipeline::Applying`, `hub::HubInputs`,
//! `sources::SourceCtx`, `checkpoint::CheckpointCtx`), built from these in `startup`.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use instabrand_shared::api::{ArchiveHealth, Health};
use instabrand_shared::{EventKind, Millis};

use crate::config::Config;
use crate::deadletter::DeadLetterLog;
use crate::hub::Hub;
use crate::intake::PipelineHandle;
use crate::processor::{Processor, ReaderLog};
use crate::sources::generator::GeneratorControl;
use crate::stats::{PipelineStats, SourceRegistry};

pub struct AppState {
    pub config: Config,
    pub processor: Arc<RwLock<Processor>>,
    /// Users who read their home timeline since the last batch: the pipeline notes
    /// them in the processor, which then keeps their timelines materialized.
    pub readers: Arc<ReaderLog>,
    pub hub: Arc<Hub>,
    pub dead_letters: Arc<DeadLetterLog>,
    pub pipeline: PipelineHandle,
    pub stats: Arc<PipelineStats>,
    pub sources: Arc<SourceRegistry>,
    /// The embedded generator's controls, when it runs.
    pub generator: Option<GeneratorControl>,
    /// The raw-event archive writer, when enabled.
    pub archive: Option<crate::archive::ArchiveHandle>,
    /// The presenter controls' bearer token.
    pub control_token: String,
    /// The sequence number of the last batch inside a durable checkpoint.
    pub durable: Arc<tokio::sync::watch::Sender<u64>>,
    /// Source positions restored from the last checkpoint at start.
    pub restored: Arc<crate::store::Positions>,
    pub started: Instant,
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
