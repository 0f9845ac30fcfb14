//! The pipeline: sources send batches of raw records; a decode thread decodes each one
//! (and builds what the archive keeps of it) while the pipeline thread applies the one
//! before to the processor, hands the deltas to the live hub and the failures to the
//! dead letters, then acknowledges it. Batches keep their order through both.
//!
//! Delivery: a batch may carry its source's position (a file offset, Kafka offsets, the
//! generator's sequence). Every few seconds, and soon after anyone waits for
//! durability, the pipeline checkpoints: the processor's whole state and the latest
//! position of every source, in one atomic write to the state store. After a crash the
//! server restores that checkpoint and each source resumes from its saved position, so
//! every event is applied exactly once to the state, however often it is read
//! (at-least-once delivery, exactly-once effect). A source that must tell someone else
//! (Kafka's committed offsets, an HTTP ingest client) waits for durability first
//! (`submit_durable`, `wait_durable`). The queue is bounded: a fast source waits rather
//! than growing memory.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use instabrand_shared::{DecodeError, Event, EventKind, decode};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use yoke::Yoke;

use tracing::{debug, instrument, warn};

use crate::deadletter::{DeadLetter, DeadLetterSink};
use crate::processor::Delta;
use crate::state::AppState;
use crate::store::{BackgroundSaver, Positions, StateStore};

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
    File {
        offset: u64,
    },
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
            Origin::File { offset } => write!(f, "file:byte {offset}"),
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
    /// The batch's sequence number: it is durable once `durable_seq() >= seq`.
    pub seq: u64,
    /// Records that decoded: applied, or only archived when `pipeline.apply` is off.
    pub applied: u64,
    /// Records that did not decode: (index in the batch, error).
    pub rejected: Vec<(usize, DecodeError)>,
}

pub struct Batch {
    pub records: Vec<Record>,
    pub done: Option<oneshot::Sender<BatchResult>>,
    /// The source's position after this batch: (source name, position).
    pub position: Option<(String, serde_json::Value)>,
    /// Also wait until the batch is in a checkpoint before answering `done`.
    pub durable: bool,
    /// Checkpoint now (shutdown), answering when done.
    pub checkpoint: Option<oneshot::Sender<Result<(), String>>>,
}

impl Batch {
    fn records(records: Vec<Record>) -> Batch {
        Batch {
            records,
            done: None,
            position: None,
            durable: false,
            checkpoint: None,
        }
    }
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
        self.submit_batch(records, None, false).await
    }

    /// Sends a batch with the source's position after it, and waits until it is applied
    /// (and, with `durable`, until it is in a checkpoint).
    pub async fn submit_batch(
        &self,
        records: Vec<Record>,
        position: Option<(String, serde_json::Value)>,
        durable: bool,
    ) -> Result<BatchResult, PipelineClosed> {
        let (done, wait) = oneshot::channel();
        let mut batch = Batch::records(records);
        batch.done = Some(done);
        batch.position = position;
        batch.durable = durable;
        self.tx.send(batch).await.map_err(|_| PipelineClosed)?;
        wait.await.map_err(|_| PipelineClosed)
    }

    /// Sends a batch without waiting for it to be applied (waits only for queue room).
    pub async fn send(&self, records: Vec<Record>) -> Result<(), PipelineClosed> {
        self.tx
            .send(Batch::records(records))
            .await
            .map_err(|_| PipelineClosed)
    }

    /// Like `send`, with the source's position after the batch.
    pub async fn send_at(
        &self,
        records: Vec<Record>,
        position: (String, serde_json::Value),
    ) -> Result<(), PipelineClosed> {
        let mut batch = Batch::records(records);
        batch.position = Some(position);
        self.tx.send(batch).await.map_err(|_| PipelineClosed)
    }

    /// Checkpoints now and waits for it (used at shutdown).
    pub async fn checkpoint(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        let mut batch = Batch::records(Vec::new());
        batch.checkpoint = Some(done);
        self.tx.send(batch).await.map_err(|e| e.to_string())?;
        wait.await.map_err(|e| e.to_string())?
    }

    /// Wakes the pipeline so a due checkpoint happens even when no batch arrives.
    pub fn tick(&self) {
        let _ = self.tx.try_send(Batch::records(Vec::new()));
    }
}

/// Checkpoint policy for the pipeline thread.
pub struct Checkpointing {
    pub store: Option<StateStore>,
    /// Checkpoint at least this often while anything changed.
    pub interval: Duration,
    /// Someone waits for durability: checkpoint once this much has passed since the last.
    pub min_gap: Duration,
    /// Positions restored at start (kept until each source reports again).
    pub positions: Positions,
}

/// Runs on its own thread until every handle is dropped: applying is CPU work under
/// the processor's lock, and dead-letter writes are blocking I/O, so none of it belongs
/// on the async workers that serve HTTP and WebSockets.
///
/// A checkpoint stops applying only while the state is serialized (a consistent cut,
/// with the positions of the same moment); flushing the archive and writing the store,
/// which take longer, happen on the checkpoint writer's thread while batches go on
/// being applied. Whoever waits for durability is answered by the writer once the
/// checkpoint holding their batch is written.
pub fn run_blocking(
    state: Arc<AppState>,
    mut rx: mpsc::Receiver<Batch>,
    mut sink: Box<dyn DeadLetterSink>,
    mut cp: Checkpointing,
) {
    let mut seq = 0u64;
    // The last batch whose state went to the writer (or, in memory, was applied).
    let mut snapshotted = 0u64;
    let mut waiting: Waiters = Vec::new();
    let mut last_checkpoint = Instant::now();
    let writer = cp
        .store
        .take()
        .map(|store| CheckpointWriter::start(state.clone(), store));
    // Decoding runs a batch ahead on its own thread; applying stays on this one.
    let (prepared_tx, prepared) = std::sync::mpsc::sync_channel::<Prepared>(DECODED_AHEAD);
    let decoder = {
        let state = state.clone();
        std::thread::Builder::new()
            .name("decode".into())
            .spawn(move || {
                while let Some(batch) = rx.blocking_recv() {
                    if prepared_tx.send(prepare(&state, batch)).is_err() {
                        break;
                    }
                }
            })
            .expect("could not start the decode thread")
    };
    while let Ok(Prepared {
        batch,
        records,
        archived,
    }) = prepared.recv()
    {
        if !records.backing_cart().is_empty() {
            seq += 1;
            let (mut result, dead) = apply_batch(&state, &records, archived);
            result.seq = seq;
            if !dead.is_empty() {
                if let Some(a) = &state.archive
                    && let Err(e) = a.append_dead(dead.clone())
                {
                    warn!(error = %e, "could not archive dead letters");
                }
                state.dead_letters.record(&dead);
                if let Err(e) = sink.write(&dead) {
                    state.dead_letters.sink_failed();
                    warn!(error = %e, count = dead.len(), "could not write dead letters");
                }
            }
            if let Some((name, pos)) = batch.position {
                cp.positions.insert(name, pos);
            }
            if writer.is_none() {
                // In-memory mode: applied is as durable as it gets.
                snapshotted = seq;
                state.durable.send_replace(seq);
            }
            match (batch.done, batch.durable && writer.is_some()) {
                (Some(done), true) => waiting.push((done, result)),
                (Some(done), false) => {
                    let _ = done.send(result);
                }
                (None, _) => {}
            }
        } else if let Some(done) = batch.done {
            // Nothing to apply; answering still tells the sender all before it is applied.
            let _ = done.send(BatchResult {
                seq,
                ..BatchResult::default()
            });
        }
        let Some(w) = &writer else {
            if let Some(done) = batch.checkpoint {
                let _ = done.send(Ok(()));
            }
            continue;
        };
        // A failed write hands its waiters back; its batches need another checkpoint.
        while let Ok(back) = w.failed.try_recv() {
            let durable = *state.durable.borrow();
            snapshotted = snapshotted.min(durable);
            for (done, result) in back {
                // A later checkpoint may have succeeded meanwhile and covers them.
                if result.seq <= durable {
                    let _ = done.send(result);
                } else {
                    waiting.push((done, result));
                }
            }
        }
        let dirty = seq > snapshotted;
        let since = last_checkpoint.elapsed();
        let due = batch.checkpoint.is_some()
            || (dirty && since >= cp.interval)
            || (!waiting.is_empty() && since >= cp.min_gap);
        // While one checkpoint is being written the next waits (except when asked for
        // explicitly): the state would only be serialized to queue behind it.
        if !due || (batch.checkpoint.is_none() && w.busy()) {
            continue;
        }
        let started = Instant::now();
        let snapshot = if dirty {
            let p = state.processor.read().expect("processor lock poisoned");
            match p.snapshot() {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    warn!(error = %e, "could not serialize the state; will retry");
                    state.stats.record_checkpoint_error(&e.to_string());
                    if let Some(done) = batch.checkpoint {
                        let _ = done.send(Err(e.to_string()));
                    }
                    last_checkpoint = Instant::now();
                    continue;
                }
            }
        } else {
            None
        };
        last_checkpoint = Instant::now();
        snapshotted = seq;
        w.send(CheckpointJob {
            seq,
            state: snapshot,
            positions: cp.positions.clone(),
            waiters: std::mem::take(&mut waiting),
            reply: batch.checkpoint,
            started,
            pause: started.elapsed(),
        });
    }
    let _ = decoder.join();
    // Every handle is gone: the writer finishes what it was given, then stops.
    if let Some(w) = writer {
        w.stop();
    }
}

type Waiters = Vec<(oneshot::Sender<BatchResult>, BatchResult)>;

/// The state as of batch `seq`, on its way to the store.
struct CheckpointJob {
    seq: u64,
    /// `None`: nothing changed since the last checkpoint; only answer once it is written.
    state: Option<Vec<u8>>,
    positions: Positions,
    /// Sources waiting for their batches (all at or below `seq`) to be durable.
    waiters: Waiters,
    /// An explicit checkpoint (shutdown) waiting for the outcome.
    reply: Option<oneshot::Sender<Result<(), String>>>,
    started: Instant,
    /// How long the pipeline stopped applying for this checkpoint.
    pause: Duration,
}

/// The pipeline's checkpoint thread: archive flush, then the store, then tells everyone
/// waiting (see [`BackgroundSaver`]).
struct CheckpointWriter {
    saver: BackgroundSaver<CheckpointJob>,
    /// Waiters of checkpoints that failed, back to the pipeline.
    failed: std::sync::mpsc::Receiver<Waiters>,
}

impl CheckpointWriter {
    fn start(state: Arc<AppState>, store: StateStore) -> Self {
        let (failed_tx, failed) = std::sync::mpsc::channel();
        let saver = BackgroundSaver::start("checkpoint", move |job: CheckpointJob| {
            let outcome = write_checkpoint(&state, &store, &job);
            match &outcome {
                Ok(()) => {
                    // Jobs come in order, so durability only moves forward.
                    state.durable.send_if_modified(|d| {
                        let newer = job.seq > *d;
                        *d = (*d).max(job.seq);
                        newer
                    });
                    for (done, result) in job.waiters {
                        let _ = done.send(result);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "checkpoint failed; will retry");
                    state.stats.record_checkpoint_error(e);
                    let _ = failed_tx.send(job.waiters);
                }
            }
            if let Some(reply) = job.reply {
                let _ = reply.send(outcome);
            }
        });
        CheckpointWriter { saver, failed }
    }

    fn busy(&self) -> bool {
        self.saver.busy()
    }

    fn send(&self, job: CheckpointJob) {
        if !self.saver.send(job) {
            // Only if the writer thread panicked: nobody is told it is durable.
            warn!("checkpoint writer gone");
        }
    }

    fn stop(self) {
        self.saver.stop();
    }
}

#[instrument(skip_all, fields(seq = job.seq))]
fn write_checkpoint(
    state: &AppState,
    store: &StateStore,
    job: &CheckpointJob,
) -> Result<(), String> {
    let Some(bytes) = &job.state else {
        return Ok(());
    };
    // The archive first: state never gets ahead of the archived events. The flush
    // covers every batch appended so far, which includes all of this snapshot's.
    if let Some(a) = &state.archive {
        a.flush()
            .map_err(|e| format!("archive flush before checkpoint: {e}"))?;
    }
    store
        .save(bytes, &job.positions)
        .map_err(|e| e.to_string())?;
    let took = job.started.elapsed();
    state.stats.record_checkpoint(bytes.len(), job.pause, took);
    debug!(
        bytes = bytes.len(),
        pause_ms = job.pause.as_millis() as u64,
        ms = took.as_millis() as u64,
        "checkpoint"
    );
    Ok(())
}

/// Batches decoded ahead of the one being applied, at most.
const DECODED_AHEAD: usize = 2;

/// A batch's records, decoded. The events borrow their strings from the records.
#[derive(yoke::Yokeable)]
struct Decoded<'a>(Vec<Result<Event<'a>, DecodeError>>);

/// Records with their decoded events, which borrow from them.
type DecodedRecords = Yoke<Decoded<'static>, Arc<Vec<Record>>>;

/// A batch made ready for applying off the applying thread: decoding is a fifth of
/// the per-event work, and building what the archive keeps is more, so the pipeline
/// thread (the serial part) only applies.
struct Prepared {
    /// The batch's other fields; its records are in `records`.
    batch: Batch,
    records: DecodedRecords,
    /// What the archive keeps of the records that decoded.
    archived: Vec<crate::archive::ArchivedEvent>,
}

#[instrument(skip_all, fields(records = batch.records.len()))]
fn prepare(state: &AppState, mut batch: Batch) -> Prepared {
    let limits = &state.config.limits;
    let records: DecodedRecords = Yoke::attach_to_cart(
        Arc::new(std::mem::take(&mut batch.records)),
        |rs: &Vec<Record>| {
            Decoded(
                rs.iter()
                    .map(|r| decode(&r.bytes, r.hint, limits))
                    .collect(),
            )
        },
    );
    let archived = match &state.archive {
        Some(_) => records
            .backing_cart()
            .iter()
            .zip(&records.get().0)
            .filter_map(|(r, d)| {
                d.as_ref()
                    .ok()
                    .map(|ev| crate::archive::ArchivedEvent::from_decoded(ev, r))
            })
            .collect(),
        None => Vec::new(),
    };
    Prepared {
        batch,
        records,
        archived,
    }
}

/// Applies one decoded batch; returns the result and the dead letters to keep.
#[instrument(skip_all, fields(records = records.backing_cart().len()))]
fn apply_batch(
    state: &AppState,
    records: &DecodedRecords,
    archived: Vec<crate::archive::ArchivedEvent>,
) -> (BatchResult, Vec<DeadLetter>) {
    let now = crate::state::wall_ms();
    let mut result = BatchResult::default();
    let mut dead = Vec::new();
    let mut changes = Vec::with_capacity(records.backing_cart().len());
    {
        let mut p = state.processor.write().expect("processor lock poisoned");
        let apply = state.config.pipeline.apply;
        let decoded = &records.get().0;
        for (i, (r, d)) in records.backing_cart().iter().zip(decoded).enumerate() {
            match d {
                Ok(ev) => {
                    result.applied += 1;
                    if !apply {
                        continue; // an archiver: archived and counted, not applied
                    }
                    for delta in p.apply(ev, &r.bytes) {
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
                    result.rejected.push((i, e.clone()));
                }
            }
        }
    }
    state.stats.record_ingested(result.applied);
    state.hub.absorb(changes);
    if let Some(a) = &state.archive
        && let Err(e) = a.append(archived)
    {
        warn!(error = %e, "could not archive a batch");
    }
    (result, dead)
}
