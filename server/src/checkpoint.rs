//! Checkpoints as a changelog, compacted in the background.
//!
//! The processor is a deterministic function of the events it applied, in order
//! (docs/semantics.md, "Order"). So a checkpoint does not serialize the state: it
//! appends the events applied since the previous checkpoint (their original bytes, in
//! applied order) to the store's changelog, with the held events and the positions.
//! Applying stops only to hand that list over, whatever the size of the state; the
//! write costs what changed.
//!
//! A compactor thread keeps restarts and the store bounded. It holds a replica: a
//! second processor restored once from the store, to which it applies every changelog
//! entry as soon as it is written. Once the changelog outgrows the base (and
//! `state.compact_min_bytes`), it streams the replica into a new base file and the
//! store drops the entries it covers, all off the applying thread. Why a standing
//! replica rather than restoring the base into a fresh processor for each compaction:
//! that copy came and went, so resident memory jumped by a whole state (and a base's
//! bytes) for every compaction, and each compaction decoded the whole base again. A
//! replica costs the same memory all the time (memory a deployment must have anyway
//! for the peak) and applies each event once more, spread over time. Restoring is the
//! same as building the replica: the base, then the changelog.
//!
//! Entry encoding: per item one byte (0: an event without a topic hint, 1..=6: an
//! event and its topic's kind, 255: a record rejected before applying, whose bytes are
//! its reason's name), a little-endian u32 length and the bytes.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use instabrand_shared::{DecodeLimits, EventKind, Reason, decode};
use tokio::sync::oneshot;
use tracing::{debug, info, instrument, warn};

use crate::archive::ArchiveHandle;
use crate::config::StateConfig;
use crate::intake::BatchResult;
use crate::processor::{Processor, ProcessorConfig};
use crate::stats::PipelineStats;
use crate::store::{BackgroundSaver, Positions, StateStore, StoreSizes};

/// What the processor was given, as the changelog keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Logged {
    /// An event applied: its topic's kind (for payloads without `event`) and bytes.
    Event(Option<EventKind>, Bytes),
    /// A record that did not decode: only counted (`Processor::count_dead_letter`).
    Rejected(Reason),
}

const REJECTED: u8 = 255;

/// The changelog entry of `items`.
pub fn encode_entry(items: &[Logged]) -> Vec<u8> {
    let len: usize = items
        .iter()
        .map(|l| match l {
            Logged::Event(_, b) => b.len() + 5,
            Logged::Rejected(_) => 32,
        })
        .sum();
    let mut out = Vec::with_capacity(len);
    let mut put = |code: u8, bytes: &[u8]| {
        out.push(code);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    for item in items {
        match item {
            Logged::Event(hint, bytes) => {
                let code = match hint {
                    None => 0,
                    Some(k) => 1 + EventKind::ALL.iter().position(|x| x == k).unwrap_or(0) as u8,
                };
                put(code, bytes);
            }
            Logged::Rejected(reason) => {
                // By name: the enum's order may change between versions.
                let name = serde_json::to_vec(reason).unwrap_or_default();
                put(REJECTED, &name);
            }
        }
    }
    out
}

/// One item of a changelog entry, borrowed from it.
#[derive(Debug, PartialEq)]
pub enum Item<'a> {
    Event(Option<EventKind>, &'a [u8]),
    Rejected(Reason),
}

/// The items of a changelog entry, in order.
pub fn decode_entry(entry: &[u8]) -> impl Iterator<Item = Result<Item<'_>, String>> {
    let mut rest = entry;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let (&code, tail) = rest.split_first()?;
            let len = u32::from_le_bytes(tail.get(..4)?.try_into().ok()?) as usize;
            let bytes = tail.get(4..4 + len)?;
            let item = match code {
                0 => Item::Event(None, bytes),
                REJECTED => Item::Rejected(serde_json::from_slice(bytes).ok()?),
                c => Item::Event(Some(*EventKind::ALL.get(c as usize - 1)?), bytes),
            };
            rest = &tail[4 + len..];
            Some(item)
        })();
        match parsed {
            Some(ev) => Some(Ok(ev)),
            None => {
                rest = &[];
                Some(Err(
                    "a changelog entry is cut short or malformed".to_string()
                ))
            }
        }
    })
}

/// Applies a changelog entry's events to `p` as the pipeline did; how many.
pub fn replay_entry(p: &mut Processor, entry: &[u8]) -> Result<u64, String> {
    let mut n = 0;
    for item in decode_entry(entry) {
        match item? {
            Item::Event(hint, bytes) => {
                let event = decode(bytes, hint, &DecodeLimits::NONE).map_err(|e| e.to_string())?;
                p.apply(&event, bytes);
                n += 1;
            }
            Item::Rejected(reason) => p.count_dead_letter(reason),
        }
    }
    Ok(n)
}

/// The state a base and its changelog hold; also how many events were replayed.
pub fn restore(
    base: Option<&[u8]>,
    log: &[Vec<u8>],
    cfg: ProcessorConfig,
) -> Result<(Processor, u64), String> {
    let mut p = match base {
        Some(b) => Processor::restore(b, cfg).map_err(|e| format!("the base snapshot: {e}"))?,
        None => Processor::new(cfg),
    };
    let mut replayed = 0;
    for entry in log {
        replayed += replay_entry(&mut p, entry).map_err(|e| format!("the changelog: {e}"))?;
    }
    Ok((p, replayed))
}

/// When to compact: the changelog is larger than this many times the base, and at
/// least `min_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct CompactPolicy {
    pub min_bytes: u64,
    pub ratio: f64,
}

impl CompactPolicy {
    pub fn of(cfg: &crate::config::StateConfig) -> Self {
        CompactPolicy {
            min_bytes: cfg.compact_min_bytes,
            ratio: cfg.compact_ratio,
        }
    }

    pub fn due(&self, sizes: &StoreSizes) -> bool {
        sizes.log_bytes >= self.min_bytes
            && sizes.log_bytes as f64 >= self.ratio * sizes.base_bytes as f64
    }
}

/// The background compactor and its replica of the state (see the module's doc).
pub struct Compactor {
    tx: Option<SyncSender<ToCompactor>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

enum ToCompactor {
    /// Entry `seq` was appended.
    Logged(u64, Vec<u8>),
}

/// Changelog entries handed to the compactor and not yet applied to its replica.
/// Past it the checkpoint writer waits (and then applying, past
/// `state.max_unlogged_events`): a replica that falls behind slows the stream down
/// rather than holding entries without bound.
const COMPACTOR_QUEUE: usize = 2;

/// What one compaction did.
#[derive(Debug, Clone, Copy)]
pub struct Compacted {
    pub sizes: StoreSizes,
    pub replayed: u64,
    pub took: Duration,
    pub shrunk: bool,
}

/// What a store holds, restored.
struct Restored {
    p: Processor,
    /// The last entry it includes.
    through: u64,
    replayed: u64,
    base_bytes: u64,
    log_bytes: u64,
}

/// The processor a store holds (base + changelog) and the last entry it includes.
fn restore_from(store: &StateStore, cfg: &ProcessorConfig) -> Result<Restored, String> {
    let input = store.compaction_input().map_err(|e| e.to_string())?;
    let (p, replayed) = restore(input.base.as_deref(), &input.log, cfg.clone())?;
    Ok(Restored {
        p,
        through: input.through,
        replayed,
        base_bytes: input.base.as_ref().map_or(0, |b| b.len() as u64),
        log_bytes: input.log.iter().map(|e| e.len() as u64).sum(),
    })
}

/// Writes `p` (the state after entry `through`) as the new base.
fn install(store: &StateStore, p: &Processor, through: u64) -> Result<(StoreSizes, bool), String> {
    let mut sizes = store
        .install_base_with(through, |w| p.snapshot_to(w))
        .map_err(|e| e.to_string())?;
    let shrunk = store.shrink_if_needed().map_err(|e| e.to_string())?;
    if shrunk {
        sizes.file_bytes = store.file_bytes();
    }
    Ok((sizes, shrunk))
}

/// Restores the base, replays the changelog, stores the result as the new base: a
/// compaction without a replica (the bench's final one, tools).
pub fn compact(store: &StateStore, cfg: &ProcessorConfig) -> Result<Compacted, String> {
    let started = Instant::now();
    let before = store.sizes().map_err(|e| e.to_string())?;
    if before.log_entries == 0 {
        return Ok(Compacted {
            sizes: before,
            replayed: 0,
            took: started.elapsed(),
            shrunk: false,
        });
    }
    let r = restore_from(store, cfg)?;
    let (sizes, shrunk) = install(store, &r.p, r.through)?;
    Ok(Compacted {
        sizes,
        replayed: r.replayed,
        took: started.elapsed(),
        shrunk,
    })
}

/// The compactor thread's state.
struct Replica {
    store: Arc<StateStore>,
    cfg: ProcessorConfig,
    policy: CompactPolicy,
    /// The replica and the last entry applied to it; `None` until the first entry
    /// arrives, or after an error (then rebuilt from the store).
    state: Option<(Processor, u64)>,
    /// Entries applied since the last compaction.
    replayed: u64,
    /// The base the store holds and the changelog after it, as the replica knows
    /// them: what the policy weighs. Counted here, not read from the writer's
    /// appends: an append made while a compaction ran still counted the entries that
    /// compaction was about to drop, and asked for another at once.
    base_bytes: u64,
    log_bytes: u64,
}

impl Replica {
    fn on_logged(&mut self, seq: u64, entry: &[u8]) -> Result<Option<Compacted>, String> {
        let (mut p, mut at) = match self.state.take() {
            // The store already holds this entry: restoring includes it.
            None => {
                let r = restore_from(&self.store, &self.cfg)?;
                self.replayed += r.replayed;
                (self.base_bytes, self.log_bytes) = (r.base_bytes, r.log_bytes);
                (r.p, r.through)
            }
            Some(s) => s,
        };
        if seq > at {
            if seq != at + 1 {
                // An entry never reached us (a panic between append and send): the
                // store has it.
                return Err(format!(
                    "changelog entry {seq} arrived after {at}; rebuilding the replica"
                ));
            }
            self.replayed += replay_entry(&mut p, entry)?;
            self.log_bytes += entry.len() as u64;
            at = seq;
        }
        let held = StoreSizes {
            base_bytes: self.base_bytes,
            log_bytes: self.log_bytes,
            ..StoreSizes::default()
        };
        let outcome = if self.policy.due(&held) {
            let started = Instant::now();
            let (sizes, shrunk) = install(&self.store, &p, at)?;
            // The base now covers every entry the replica has.
            (self.base_bytes, self.log_bytes) = (sizes.base_bytes, 0);
            Some(Compacted {
                sizes,
                replayed: std::mem::take(&mut self.replayed),
                took: started.elapsed(),
                shrunk,
            })
        } else {
            None
        };
        self.state = Some((p, at));
        Ok(outcome)
    }
}

impl Compactor {
    /// Starts the compactor thread; `done` hears of every compaction and failure.
    pub fn start(
        store: Arc<StateStore>,
        cfg: ProcessorConfig,
        policy: CompactPolicy,
        mut done: impl FnMut(Result<Compacted, String>) + Send + 'static,
    ) -> Compactor {
        let (tx, rx): (SyncSender<ToCompactor>, Receiver<ToCompactor>) =
            std::sync::mpsc::sync_channel(COMPACTOR_QUEUE);
        let thread = std::thread::Builder::new()
            .name("compact".into())
            .spawn(move || {
                let mut r = Replica {
                    store,
                    cfg,
                    policy,
                    state: None,
                    replayed: 0,
                    base_bytes: 0,
                    log_bytes: 0,
                };
                for ToCompactor::Logged(seq, entry) in rx {
                    match r.on_logged(seq, &entry) {
                        Ok(Some(c)) => done(Ok(c)),
                        Ok(None) => {}
                        // Dropped with the error: the next entry restores it from the
                        // store, which holds everything it would have had.
                        Err(e) => {
                            r.state = None;
                            done(Err(e));
                        }
                    }
                }
            })
            .expect("spawn the compactor thread");
        Compactor {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Entry `seq` (`entry`) was appended: the replica applies it and compacts when
    /// due. Waits while the replica is [`COMPACTOR_QUEUE`] entries behind.
    pub fn logged(&self, seq: u64, entry: Vec<u8>) {
        if let Some(tx) = &self.tx
            && tx.send(ToCompactor::Logged(seq, entry)).is_err()
        {
            warn!("compactor gone");
        }
    }
}

impl Drop for Compactor {
    /// Lets a compaction in progress finish: the store must not be reopened under it.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub type Waiters = Vec<(oneshot::Sender<BatchResult>, BatchResult)>;

/// What changed up to batch `seq`, on its way to the store.
pub struct CheckpointJob {
    pub seq: u64,
    /// The events applied since the last checkpoint and the aligner's held events;
    /// `None`: nothing changed since the last checkpoint, only answer once it is written.
    pub changes: Option<(Vec<Logged>, Vec<u8>)>,
    pub positions: Positions,
    /// Sources waiting for their batches (all at or below `seq`) to be durable.
    pub waiters: Waiters,
    /// An explicit checkpoint (shutdown) waiting for the outcome.
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
    pub started: Instant,
    /// How long the pipeline stopped applying for this checkpoint.
    pub pause: Duration,
}

/// The pipeline's checkpoint thread: archive flush, then the store, then tells everyone
/// waiting (see [`BackgroundSaver`]); it asks the compactor when the changelog is due.
pub struct CheckpointWriter {
    saver: BackgroundSaver<CheckpointJob>,
    /// Waiters of checkpoints that failed, back to the pipeline.
    pub failed: std::sync::mpsc::Receiver<Waiters>,
}

/// What the checkpoint writer reads and writes besides its store.
#[derive(Clone)]
pub struct CheckpointCtx {
    pub state: StateConfig,
    pub processor: ProcessorConfig,
    /// Flushed before each checkpoint: the state never gets ahead of the archive.
    pub archive: Option<ArchiveHandle>,
    pub stats: Arc<PipelineStats>,
    /// The last batch inside a durable checkpoint, moved on after each write.
    pub durable: Arc<tokio::sync::watch::Sender<u64>>,
}

impl CheckpointWriter {
    pub fn start(ctx: CheckpointCtx, store: StateStore) -> Self {
        let store = Arc::new(store);
        let policy = CompactPolicy::of(&ctx.state);
        let compactor = {
            let stats = ctx.stats.clone();
            Compactor::start(
                store.clone(),
                ctx.processor.clone(),
                policy,
                move |outcome| match outcome {
                    Ok(c) => {
                        info!(
                            base_bytes = c.sizes.base_bytes,
                            file_bytes = c.sizes.file_bytes,
                            replayed = c.replayed,
                            ms = c.took.as_millis() as u64,
                            shrunk = c.shrunk,
                            "compacted the state store"
                        );
                        stats.record_compaction(c.sizes, c.took);
                    }
                    Err(e) => {
                        warn!(error = %e, "compacting the state store failed; the changelog stays");
                        stats.record_checkpoint_error(&format!("compaction: {e}"));
                    }
                },
            )
        };
        let (failed_tx, failed) = std::sync::mpsc::channel();
        // Events of checkpoints that failed: the changelog must not have a gap, so they
        // go first into the next entry.
        let mut carried: Vec<Logged> = Vec::new();
        let saver = BackgroundSaver::start("checkpoint", move |mut job: CheckpointJob| {
            if let Some((events, _)) = &mut job.changes
                && !carried.is_empty()
            {
                carried.append(events);
                std::mem::swap(&mut carried, events);
            }
            let mut outcome = write_checkpoint(&ctx, &store, &job);
            match &mut outcome {
                Ok(sizes) => {
                    // Jobs come in order, so durability only moves forward.
                    ctx.durable.send_if_modified(|d| {
                        let newer = job.seq > *d;
                        *d = (*d).max(job.seq);
                        newer
                    });
                    for (done, result) in job.waiters {
                        let _ = done.send(result);
                    }
                    if let Some((entry, sizes)) = sizes {
                        ctx.stats.record_store(*sizes);
                        if !entry.is_empty() {
                            compactor.logged(sizes.last_entry, std::mem::take(entry));
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "checkpoint failed; will retry");
                    ctx.stats.record_checkpoint_error(e);
                    if let Some((events, _)) = job.changes.take() {
                        carried = events;
                    }
                    let _ = failed_tx.send(job.waiters);
                }
            }
            if let Some(reply) = job.reply {
                let _ = reply.send(outcome.map(|_| ()));
            }
        });
        CheckpointWriter { saver, failed }
    }

    pub fn busy(&self) -> bool {
        self.saver.busy()
    }

    pub fn send(&self, job: CheckpointJob) {
        if !self.saver.send(job) {
            // Only if the writer thread panicked: nobody is told it is durable.
            warn!("checkpoint writer gone");
        }
    }

    pub fn stop(self) {
        self.saver.stop();
    }
}

#[instrument(skip_all, fields(seq = job.seq))]
/// The entry written (for the compactor's replica) and the store's sizes after it;
/// `None` when nothing changed.
fn write_checkpoint(
    ctx: &CheckpointCtx,
    store: &StateStore,
    job: &CheckpointJob,
) -> Result<Option<(Vec<u8>, StoreSizes)>, String> {
    let Some((events, held)) = &job.changes else {
        return Ok(None);
    };
    // The archive first: state never gets ahead of the archived events. The flush
    // covers every batch appended so far, which includes all of this entry's.
    if let Some(a) = &ctx.archive {
        a.flush()
            .map_err(|e| format!("archive flush before checkpoint: {e}"))?;
    }
    let entry = encode_entry(events);
    let sizes = store
        .append(&entry, held, &job.positions)
        .map_err(|e| e.to_string())?;
    let took = job.started.elapsed();
    ctx.stats
        .record_checkpoint(entry.len() + held.len(), job.pause, took);
    debug!(
        events = events.len(),
        bytes = entry.len(),
        pause_us = job.pause.as_micros() as u64,
        ms = took.as_millis() as u64,
        "checkpoint"
    );
    Ok(Some((entry, sizes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_hints_and_a_cut_entry_is_an_error() {
        let events: Vec<Logged> = vec![
            Logged::Event(None, Bytes::from_static(b"{\"event\":\"like\"}")),
            Logged::Rejected(Reason::NotJson),
            Logged::Event(Some(EventKind::Comment), Bytes::from_static(b"")),
            Logged::Event(Some(EventKind::Unfollow), Bytes::from_static(b"xyz")),
        ];
        let entry = encode_entry(&events);
        let back: Vec<_> = decode_entry(&entry).collect::<Result<_, _>>().unwrap();
        let expect = vec![
            Item::Event(None, b"{\"event\":\"like\"}".as_slice()),
            Item::Rejected(Reason::NotJson),
            Item::Event(Some(EventKind::Comment), b"".as_slice()),
            Item::Event(Some(EventKind::Unfollow), b"xyz".as_slice()),
        ];
        assert_eq!(back, expect);
        let cut: Result<Vec<_>, _> = decode_entry(&entry[..entry.len() - 1]).collect();
        assert!(cut.is_err());
    }

    /// What a dashboard would show of `p`: enough to tell two states apart.
    fn view(p: &Processor) -> String {
        use instabrand_shared::api::Window;
        let timelines: Vec<_> = (0..20)
            .map(|u| p.home_timeline(crate::processor::UserId(u), None, 20))
            .collect();
        serde_json::to_string(&(
            p.user_count(),
            p.photo_count(),
            p.leaderboard(Window::All),
            p.leaderboard(Window::H1),
            p.influencers(Window::All, 10),
            timelines,
        ))
        .unwrap()
    }

    #[test]
    fn the_replica_compacts_into_the_state_the_events_make_and_recovers_a_missed_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&dir.path().join("state.redb")).unwrap());
        let cfg = ProcessorConfig::default();
        let compactions = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = compactions.clone();
        // Small thresholds: many compactions in a short stream.
        let policy = CompactPolicy {
            min_bytes: 20_000,
            ratio: 0.5,
        };
        let compactor = Compactor::start(store.clone(), cfg.clone(), policy, move |c| {
            seen.lock().unwrap().push(c.map(|c| c.replayed));
        });
        let mut g = instabrand_generator::Generator::new(instabrand_generator::Config {
            users: 300,
            ..instabrand_generator::Config::default()
        });
        let mut live = Processor::new(cfg.clone());
        let mut line = Vec::new();
        let mut logged = 0u64;
        for checkpoint in 0..40 {
            let mut events = Vec::new();
            for _ in 0..250 {
                line.clear();
                instabrand_generator::write_original_json(&g.next_event(), &mut line);
                let bytes = Bytes::copy_from_slice(line.trim_ascii_end());
                live.apply(&decode(&bytes, None, &DecodeLimits::NONE).unwrap(), &bytes);
                events.push(Logged::Event(None, bytes));
            }
            let entry = encode_entry(&events);
            logged += entry.len() as u64;
            let sizes = store.append(&entry, b"", &Positions::new()).unwrap();
            // Entry 25 never reaches the replica (as if lost between the threads).
            if checkpoint != 24 {
                compactor.logged(sizes.last_entry, entry);
            }
        }
        drop(compactor);
        let outcomes = compactions.lock().unwrap().clone();
        let failed = outcomes.iter().filter(|c| c.is_err()).count();
        assert_eq!(failed, 1, "the gap is reported once: {outcomes:?}");
        // Each compaction waits for at least `min_bytes` of new changelog (entries
        // appended while one runs do not ask for another at once).
        let most = (logged / policy.min_bytes) as usize + 2;
        assert!(
            (5..=most).contains(&outcomes.len()),
            "{} outcomes, at most {most}: {outcomes:?}",
            outcomes.len()
        );
        let loaded = store.load().unwrap().unwrap();
        let sizes = store.sizes().unwrap();
        assert!(loaded.base.is_some());
        assert!(
            sizes.log_bytes < sizes.base_bytes,
            "compacted recently: {sizes:?}"
        );
        let (restored, _) = restore(loaded.base.as_deref(), &loaded.log, cfg).unwrap();
        assert_eq!(view(&restored), view(&live));
    }

    #[test]
    fn the_policy_waits_for_the_minimum_and_the_ratio() {
        let p = CompactPolicy {
            min_bytes: 100,
            ratio: 1.0,
        };
        let s = |base, log| StoreSizes {
            base_bytes: base,
            log_bytes: log,
            ..StoreSizes::default()
        };
        assert!(!p.due(&s(0, 99)));
        assert!(p.due(&s(0, 100)));
        assert!(!p.due(&s(1000, 999)));
        assert!(p.due(&s(1000, 1000)));
    }
}
