//! The pipeline: sources send batches of raw records; a decode thread decodes each one
//! (and builds what the archive keeps of it) while the pipeline thread takes the one
//! before: it archives the batch, dead-letters what did not decode, and hands the
//! events to the aligner (`align.rs`), which releases them to the processor in
//! event-time order across every input (Kafka partitions, the generator, files, HTTP
//! ingest), once the other inputs have passed them. Deltas go to the live hub.
//!
//! Delivery: a batch may carry its source's position (a file offset, Kafka offsets, the
//! generator's sequence). Every few seconds, and soon after anyone waits for
//! durability, the pipeline checkpoints: the events applied since the last checkpoint
//! (a changelog entry, see `checkpoint`), the events the aligner holds (read, past the positions, not yet applied) and the latest position
//! of every source, in one atomic write to the state store. After a crash the
//! server restores that checkpoint and each source resumes from its saved position, so
//! every event is applied exactly once to the state, however often it is read
//! (at-least-once delivery, exactly-once effect). A source that must tell someone else
//! (Kafka's committed offsets, an HTTP ingest client) waits for durability first
//! (`submit_durable`, `wait_durable`). The queue is bounded: a fast source waits rather
//! than growing memory.

use std::rc::Rc;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use instabrand_shared::time::MS_PER_SEC;
use instabrand_shared::{DecodeError, DecodeLimits, Event, EventKind, Millis, Reason, decode};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use yoke::Yoke;

use tracing::{info, instrument, warn};

use crate::align::{AlignConfig, Aligner, InputId, LogPosition, OrderKey};
use crate::archive::ArchiveHandle;
use crate::checkpoint::{CheckpointCtx, CheckpointJob, CheckpointWriter, Logged, Waiters};
use crate::clock::wall_ms;
use crate::config::PipelineConfig;
use crate::deadletter::{DeadLetter, DeadLetterLog, DeadLetterSink};
use crate::hub::Hub;
use crate::intake::{Batch, BatchResult, Origin, Record};
use crate::processor::{Delta, Processor, ReaderLog};
use crate::stats::{OrderView, PipelineStats};
use crate::store::{Positions, StateStore};

/// What the pipeline thread reads and writes: the processor it alone writes, where
/// deltas, dead letters and counters go, and its settings.
pub struct Applying {
    pub processor: Arc<RwLock<Processor>>,
    /// Readers noted since the last batch, handed to the processor under its lock.
    pub readers: Arc<ReaderLog>,
    /// Takes each batch's deltas.
    pub hub: Arc<Hub>,
    pub dead_letters: Arc<DeadLetterLog>,
    pub stats: Arc<PipelineStats>,
    pub archive: Option<ArchiveHandle>,
    /// The last batch inside a durable checkpoint (in memory: the last applied).
    pub durable: Arc<tokio::sync::watch::Sender<u64>>,
    pub align: AlignConfig,
    pub pipeline: PipelineConfig,
    pub limits: DecodeLimits,
    /// The checkpoint writer's handles, when there is a store.
    pub checkpoints: CheckpointCtx,
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
    /// The events the aligner held at the restored checkpoint (`encode_held`).
    pub held: Vec<u8>,
    /// Events applied and not yet handed to the writer, at most: past it a checkpoint
    /// is due at once, and applying waits while the writer is behind (the changelog
    /// buffer is memory).
    pub max_unlogged: usize,
}

/// Runs on its own thread until every handle is dropped: applying is CPU work under
/// the processor's lock, and dead-letter writes are blocking I/O, so none of it belongs
/// on the async workers that serve HTTP and WebSockets.
///
/// A checkpoint stops applying only to take the events applied since the last one (a
/// consistent cut, with the positions of the same moment); flushing the archive and
/// appending to the store happen on the checkpoint writer's thread while batches go
/// on being applied. Whoever waits for durability is answered by the writer once the
/// checkpoint holding their batch is written.
pub fn run_blocking(
    state: Applying,
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
        .map(|store| CheckpointWriter::start(state.checkpoints.clone(), store));
    let mut order = Order::new(&state, &cp.held, writer.is_some());
    let mut released_since_snapshot = false;
    // Decoding runs a batch ahead on its own thread; applying stays on this one.
    let (prepared_tx, prepared) = std::sync::mpsc::sync_channel::<Prepared>(DECODED_AHEAD);
    let state = Arc::new(state);
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
        let now = wall_ms();
        let mut dead = Vec::new();
        let result = if !records.backing_cart().is_empty() {
            seq += 1;
            let mut result = order.admit(&state, records, archived, &mut dead, now);
            result.seq = seq;
            if let Some((name, pos)) = batch.position {
                cp.positions.insert(name, pos);
            }
            Some(result)
        } else {
            None
        };
        order.report_inputs(&batch.inputs, now);
        // Events released from the hold change the state as much as a new batch does,
        // also when no batch arrives (the end of a backlog): the next checkpoint is due.
        released_since_snapshot |= order.release(&state, &mut dead, now) > 0;
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
        match result {
            Some(result) => {
                if writer.is_none() {
                    // In-memory mode: applied (or held) is as durable as it gets.
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
            }
            None => {
                if let Some(done) = batch.done {
                    // Nothing to apply; answering still tells the sender all before it is in.
                    let _ = done.send(BatchResult {
                        seq,
                        ..BatchResult::default()
                    });
                }
            }
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
        let dirty = seq > snapshotted || released_since_snapshot;
        let since = last_checkpoint.elapsed();
        let full = order.log_len() >= cp.max_unlogged;
        let due = batch.checkpoint.is_some()
            || full
            || (dirty && since >= cp.interval)
            || (!waiting.is_empty() && since >= cp.min_gap);
        // While one checkpoint is being written the next waits (except when asked for,
        // or when the buffer is full: then sending waits for the writer, and so does
        // applying).
        if !due || (batch.checkpoint.is_none() && !full && w.busy()) {
            continue;
        }
        let started = Instant::now();
        // The pause: taking the events applied since the last checkpoint (the state
        // itself is not serialized, see `checkpoint`) and encoding the held ones.
        let changes = if dirty {
            match order.encode_held() {
                Ok(held) => Some((order.take_log(), held)),
                Err(e) => {
                    warn!(error = %e, "could not encode the held events; will retry");
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
        released_since_snapshot = false;
        w.send(CheckpointJob {
            seq,
            changes,
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
fn prepare(state: &Applying, mut batch: Batch) -> Prepared {
    let limits = &state.limits;
    // Ahead of both the wall clock and the applied stream by more than this: a bad
    // clock upstream, dead-lettered before it can move the stream's clock.
    let future = wall_ms()
        .max(state.stats.applied_time().unwrap_or(Millis::MIN))
        .saturating_add(state.align.max_future_secs.saturating_mul(MS_PER_SEC));
    let records: DecodedRecords = Yoke::attach_to_cart(
        Arc::new(std::mem::take(&mut batch.records)),
        |rs: &Vec<Record>| {
            Decoded(
                rs.iter()
                    .map(|r| {
                        decode(&r.bytes, r.hint, limits).and_then(|ev| {
                            if ev.time() > future {
                                Err(DecodeError {
                                    reason: Reason::FutureTime,
                                    detail: format!(
                                        "created_time {} is more than {} s ahead of the wall clock and of the stream",
                                        instabrand_shared::time::format_naive(ev.time()),
                                        state.align.max_future_secs
                                    ),
                                })
                            } else {
                                Ok(ev)
                            }
                        })
                    })
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

/// An event waiting in the aligner: its batch stays alive while any of its events waits.
struct Waiting {
    batch: Rc<DecodedRecords>,
    index: usize,
}

impl Waiting {
    fn record(&self) -> &Record {
        &self.batch.backing_cart()[self.index]
    }

    fn event(&self) -> &Event<'_> {
        self.batch.get().0[self.index]
            .as_ref()
            .expect("only decoded events wait")
    }
}

/// A held event as a checkpoint keeps it: re-decoded on restore.
#[derive(serde::Serialize, serde::Deserialize)]
struct HeldRecord {
    input: String,
    hint: Option<EventKind>,
    origin: String,
    bytes: Vec<u8>,
}

/// The pipeline thread's side of event-time order: admits decoded batches into the
/// aligner and applies what it releases.
struct Order {
    aligner: Aligner<Waiting>,
    /// The events applied since the last checkpoint, in order: the next changelog
    /// entry. `None` without a store.
    log: Option<Vec<Logged>>,
    /// The input of the last record admitted (Kafka delivers runs from one partition).
    last_input: Option<(Origin, InputId)>,
    published: Instant,
}

/// How often the aligner's view (health, Kafka's pausing) is refreshed.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

impl Order {
    fn new(state: &Applying, held: &[u8], logged: bool) -> Order {
        let mut order = Order {
            aligner: Aligner::new(state.align.clone()),
            log: logged.then(Vec::new),
            last_input: None,
            published: Instant::now(),
        };
        if held.is_empty() {
            return order;
        }
        let held: Vec<HeldRecord> = match postcard::from_bytes(held) {
            Ok(h) => h,
            Err(e) => {
                // The state and positions restored are still right; only these events
                // are lost, and that must be loud.
                tracing::error!(error = %e, "could not read the held events of the checkpoint");
                return order;
            }
        };
        let inputs: Vec<String> = held.iter().map(|h| h.input.clone()).collect();
        let records: Vec<Record> = held
            .into_iter()
            .map(|h| Record {
                bytes: Bytes::from(h.bytes),
                hint: h.hint,
                origin: Origin::Restored(h.origin.into()),
            })
            .collect();
        let prepared = prepare(state, Batch::records(records));
        let batch = Rc::new(prepared.records);
        let now = wall_ms();
        for (index, (input, decoded)) in inputs.iter().zip(&batch.get().0).enumerate() {
            let Ok(ev) = decoded else { continue };
            let key = OrderKey::of(ev, &batch.backing_cart()[index].bytes);
            let id = order.aligner.input(input, now);
            order.aligner.push(
                id,
                key,
                Waiting {
                    batch: batch.clone(),
                    index,
                },
                now,
            );
            // Its source has not started: the others must not go ahead of it yet.
            order.aligner.restored(id, now);
        }
        info!(
            held = order.aligner.held(),
            "restored the events held for ordering"
        );
        order
    }

    /// Archives a decoded batch, dead-letters what did not decode, and hands the rest
    /// to the aligner.
    fn admit(
        &mut self,
        state: &Applying,
        records: DecodedRecords,
        archived: Vec<crate::archive::ArchivedEvent>,
        dead: &mut Vec<DeadLetter>,
        now: Millis,
    ) -> BatchResult {
        let mut result = BatchResult::default();
        let batch = Rc::new(records);
        let apply = state.pipeline.apply;
        let mut own_inputs: Vec<InputId> = Vec::new();
        let mut rejected = Vec::new();
        for (index, (r, d)) in batch.backing_cart().iter().zip(&batch.get().0).enumerate() {
            match d {
                Ok(ev) => {
                    result.applied += 1;
                    if !apply {
                        continue; // an archiver: archived and counted, not applied
                    }
                    let input = self.input_of(&r.origin, now);
                    if !r.origin.reports_end_of_log() && !own_inputs.contains(&input) {
                        own_inputs.push(input);
                    }
                    let key = OrderKey::of(ev, &r.bytes);
                    let waiting = Waiting {
                        batch: batch.clone(),
                        index,
                    };
                    self.aligner.push(input, key, waiting, now);
                }
                Err(e) => {
                    rejected.push(e.reason);
                    dead.push(DeadLetter {
                        reason: e.reason,
                        detail: e.detail.clone(),
                        source: r.origin.to_string(),
                        at_ms: now,
                        raw: r.bytes.clone(),
                    });
                    result.rejected.push((index, e.clone()));
                }
            }
        }
        if !rejected.is_empty() {
            let mut p = state.processor.write().expect("processor lock poisoned");
            for reason in rejected {
                p.count_dead_letter(reason);
                if let Some(log) = self.log.as_mut() {
                    log.push(Logged::Rejected(reason));
                }
            }
        }
        if !own_inputs.is_empty() {
            // A source other than Kafka delivered: it reports its one input.
            self.aligner.sources_reported();
        }
        // A source other than Kafka sends its batches complete and in order.
        for input in own_inputs {
            self.aligner.set_position(input, LogPosition::AtEnd);
        }
        state.stats.record_ingested(result.applied);
        if let Some(a) = &state.archive
            && let Err(e) = a.append(archived)
        {
            warn!(error = %e, "could not archive a batch");
        }
        result
    }

    fn input_of(&mut self, origin: &Origin, now: Millis) -> InputId {
        let same = |a: &Origin, b: &Origin| match (a, b) {
            (
                Origin::Kafka {
                    topic: t1,
                    partition: p1,
                    ..
                },
                Origin::Kafka {
                    topic: t2,
                    partition: p2,
                    ..
                },
            ) => p1 == p2 && t1 == t2,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        };
        if let Some((o, id)) = &self.last_input
            && same(o, origin)
        {
            return *id;
        }
        let id = self.aligner.input(&origin.input_name(), now);
        self.last_input = Some((origin.clone(), id));
        id
    }

    /// What the source says of its inputs' ends of log.
    fn report_inputs(&mut self, inputs: &[(String, LogPosition)], now: Millis) {
        if !inputs.is_empty() {
            self.aligner.sources_reported();
        }
        for (name, position) in inputs {
            let id = self.aligner.input(name, now);
            self.aligner.set_position(id, *position);
        }
    }

    /// Applies every event the aligner lets go now, in order.
    /// Returns how many were applied.
    fn release(&mut self, state: &Applying, dead: &mut Vec<DeadLetter>, now: Millis) -> usize {
        let before = self.aligner.held();
        if before > 0 {
            let mut changes = Vec::new();
            let mut p = state.processor.write().expect("processor lock poisoned");
            // Readers since the last batch, before its events: they decide which home
            // timelines fan-out keeps up to date.
            state.readers.drain_into(&mut p);
            let log = &mut self.log;
            self.aligner.release(now, |_, w| {
                let r = w.record();
                if let Some(log) = log.as_mut() {
                    log.push(Logged::Event(r.hint, r.bytes.clone()));
                }
                for delta in p.apply(w.event(), &r.bytes) {
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
                        Delta::Duplicate | Delta::Superseded | Delta::Held => {}
                        other => changes.push(other),
                    }
                }
            });
            state.stats.set_applied_time(p.newest_time());
            drop(p);
            state.hub.absorb(changes);
        }
        if self.published.elapsed() >= PUBLISH_EVERY {
            self.published = Instant::now();
            state.stats.publish_order(OrderView {
                inputs: self.aligner.status(now),
                held: self.aligner.held(),
                stats: self.aligner.stats(),
            });
        }
        before - self.aligner.held()
    }

    fn log_len(&self) -> usize {
        self.log.as_ref().map_or(0, Vec::len)
    }

    /// The events applied since the last call, for a checkpoint.
    fn take_log(&mut self) -> Vec<Logged> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The held events, for a checkpoint.
    fn encode_held(&self) -> Result<Vec<u8>, postcard::Error> {
        if self.aligner.held() == 0 {
            return Ok(Vec::new());
        }
        let held: Vec<HeldRecord> = self
            .aligner
            .waiting()
            .map(|(input, w)| {
                let r = w.record();
                HeldRecord {
                    input: input.to_string(),
                    hint: r.hint,
                    origin: r.origin.to_string(),
                    bytes: r.bytes.to_vec(),
                }
            })
            .collect();
        // A failure fails the checkpoint (retried), never drops the held events.
        postcard::to_stdvec(&held)
    }
}
