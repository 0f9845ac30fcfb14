//! The pipeline: sources send batches of raw records; one task decodes them, applies
//! them to the processor, hands the deltas to the live hub and the failures to the
//! dead letters, then acknowledges the batch.
//!
//! Delivery: a source learns that a batch is done (applied, and its dead letters
//! written) only through the batch's acknowledgement, so a source that commits its
//! position after the acknowledgement gets at-least-once delivery; the processor's
//! idempotent rules (sets for follows and likes, photo identity) make most replays
//! change nothing. The queue is bounded: a fast source waits rather than growing memory.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use instabrand_shared::{DecodeError, EventKind, decode};
use tokio::sync::{mpsc, oneshot};
use tracing::{instrument, warn};

use crate::deadletter::{DeadLetter, DeadLetterSink};
use crate::processor::Delta;
use crate::state::AppState;

/// Where a record came from: shown with its dead letter.
#[derive(Debug, Clone)]
pub enum Origin {
    Generator,
    Ingest {
        line: u64,
    },
    Kafka {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    Replay,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Generator => f.write_str("generator"),
            Origin::Ingest { line } => write!(f, "ingest:line {line}"),
            Origin::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "kafka:{topic}/{partition}@{offset}"),
            Origin::Replay => f.write_str("replay"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub bytes: Bytes,
    /// The event type implied by the topic, used when the payload lacks `event`.
    pub hint: Option<EventKind>,
    pub origin: Origin,
}

impl Record {
    pub fn new(bytes: impl Into<Bytes>, origin: Origin) -> Self {
        Record {
            bytes: bytes.into(),
            hint: None,
            origin,
        }
    }
}

/// What happened to a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchResult {
    pub applied: u64,
    /// Records that did not decode: (index in the batch, error).
    pub rejected: Vec<(usize, DecodeError)>,
}

pub struct Batch {
    pub records: Vec<Record>,
    pub done: Option<oneshot::Sender<BatchResult>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct PipelineClosed;

/// The sending side, cloned into every source.
#[derive(Clone)]
pub struct PipelineHandle {
    tx: mpsc::Sender<Batch>,
}

impl PipelineHandle {
    pub fn new(queue_batches: usize) -> (PipelineHandle, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(queue_batches.max(1));
        (PipelineHandle { tx }, rx)
    }

    /// Sends a batch and waits until it is applied.
    pub async fn submit(&self, records: Vec<Record>) -> Result<BatchResult, PipelineClosed> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Batch {
                records,
                done: Some(done),
            })
            .await
            .map_err(|_| PipelineClosed)?;
        wait.await.map_err(|_| PipelineClosed)
    }

    /// Sends a batch without waiting for it to be applied (waits only for queue room).
    pub async fn send(&self, records: Vec<Record>) -> Result<(), PipelineClosed> {
        self.tx
            .send(Batch {
                records,
                done: None,
            })
            .await
            .map_err(|_| PipelineClosed)
    }
}

/// Runs on its own thread until every handle is dropped: applying is CPU work under
/// the processor's lock, and dead-letter writes are blocking I/O, so neither belongs on
/// the async workers that serve HTTP and WebSockets.
pub fn run_blocking(
    state: Arc<AppState>,
    mut rx: mpsc::Receiver<Batch>,
    mut sink: Box<dyn DeadLetterSink>,
) {
    while let Some(batch) = rx.blocking_recv() {
        let (result, dead) = apply_batch(&state, &batch.records);
        if !dead.is_empty() {
            state.dead_letters.record(&dead);
            if let Err(e) = sink.write(&dead) {
                state.dead_letters.sink_failed();
                warn!(error = %e, count = dead.len(), "could not write dead letters");
            }
        }
        if let Some(done) = batch.done {
            let _ = done.send(result);
        }
    }
}

/// Decodes and applies one batch; returns the result and the dead letters to keep.
#[instrument(skip_all, fields(records = records.len()))]
pub fn apply_batch(state: &AppState, records: &[Record]) -> (BatchResult, Vec<DeadLetter>) {
    let limits = &state.config.limits;
    let decoded: Vec<_> = records
        .iter()
        .map(|r| decode(&r.bytes, r.hint, limits))
        .collect();
    let now = crate::state::wall_ms();
    let mut result = BatchResult::default();
    let mut dead = Vec::new();
    let mut changes = Vec::with_capacity(records.len());
    {
        let mut p = state.processor.write().expect("processor lock poisoned");
        for (i, (r, d)) in records.iter().zip(decoded).enumerate() {
            match d {
                Ok(ev) => {
                    result.applied += 1;
                    for delta in p.apply(&ev, &r.bytes) {
                        match delta {
                            Delta::DeadLetter {
                                reason,
                                detail,
                                raw,
                            } => dead.push(DeadLetter {
                                reason,
                                detail,
                                source: format!("{} (held)", r.origin),
                                at_ms: now,
                                raw: Bytes::from(raw.into_vec()),
                            }),
                            Delta::Duplicate | Delta::Held => {}
                            other => changes.push(other),
                        }
                    }
                }
                Err(e) => {
                    p.count_dead_letter(e.reason);
                    dead.push(DeadLetter {
                        reason: e.reason,
                        detail: e.detail.clone(),
                        source: r.origin.to_string(),
                        at_ms: now,
                        raw: r.bytes.clone(),
                    });
                    result.rejected.push((i, e));
                }
            }
        }
    }
    state.stats.record_applied(result.applied);
    state.hub.absorb(changes);
    (result, dead)
}
