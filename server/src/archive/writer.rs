//! The writer thread and the handle the pipeline appends through.
//!
//! Records are buffered per day and rolled into one file per day present, when the
//! buffer reaches `roll_records` records or `roll_bytes` raw bytes, when its oldest
//! record is `roll_secs` old, and at shutdown. `flush` (before each state checkpoint)
//! appends what is new in the buffer to the spool (see [`super::spool`]), or, without
//! one, rolls. A failed write keeps its
//! records; while writes fail and the buffer is full the writer stops taking more, so
//! the bounded queue fills and `append` blocks the pipeline instead of losing data.
//!
//! A file that failed keeps its name for its retries, so when a store did take a file
//! but its answer was lost (an S3 `PUT` that timed out after landing), the retry,
//! holding the same records and maybe more, replaces it rather than adding a copy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use instabrand_shared::Millis;
use serde::Serialize;
use tracing::{debug, error, info, warn};

use super::format::{self, DeadLetterOut, EventRow};
use super::s3::S3Store;
use super::spool::{self, Spool, Spooled};
use super::store::{ArchiveStore, LocalStore};
use super::{
    ArchiveConfig, ArchiveError, ArchiveLocation, ArchivedEvent, DEAD_LETTER_DIR, EventSource,
    partition_of,
};
use crate::clock::wall_ms;
use crate::deadletter::DeadLetter;

const MS_PER_DAY: i64 = 86_400_000;
/// How many times shutdown retries a failing final write before giving up.
const SHUTDOWN_ATTEMPTS: u32 = 3;

enum Msg {
    Events(Vec<ArchivedEvent>, Millis),
    Dead(Vec<DeadLetter>),
    Flush(SyncSender<Result<(), String>>),
    Stop(SyncSender<Result<(), String>>),
}

/// Counters for the health view and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArchiveStats {
    pub dir: String,
    pub files_written: u64,
    pub records_written: u64,
    pub dead_letters_written: u64,
    /// Parquet bytes published.
    pub bytes_written: u64,
    /// Appended but not yet in a visible file.
    pub buffered_records: u64,
    pub last_file: Option<String>,
    /// The most recent write failure, cleared by the next successful write.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    files: AtomicU64,
    records: AtomicU64,
    dead: AtomicU64,
    bytes: AtomicU64,
    buffered: AtomicU64,
    last_file: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dir: String,
}

/// Starts archive writers.
pub struct Archive;

impl Archive {
    /// Starts a writer into `cfg.location(data_dir)`: the local folder, or the S3
    /// bucket once it has answered one signed request (so a wrong endpoint, bucket or
    /// key fails here, at start-up). Blocking. It does not look at `cfg.enabled`: see
    /// [`Archive::start_if_enabled`].
    pub fn start(
        cfg: &ArchiveConfig,
        data_dir: &std::path::Path,
    ) -> Result<ArchiveHandle, ArchiveError> {
        let store: Box<dyn ArchiveStore> = match cfg.location(data_dir) {
            ArchiveLocation::Dir(root) => {
                Box::new(LocalStore::open(&root).map_err(|e| ArchiveError::io(&root, e))?)
            }
            ArchiveLocation::S3(_) => {
                Box::new(S3Store::connect(&cfg.s3).map_err(ArchiveError::Unusable)?)
            }
        };
        Self::start_inner(cfg, store, cfg.spool_path(data_dir))
    }

    /// `None` when the archive is switched off.
    pub fn start_if_enabled(
        cfg: &ArchiveConfig,
        data_dir: &std::path::Path,
    ) -> Result<Option<ArchiveHandle>, ArchiveError> {
        if cfg.enabled {
            Self::start(cfg, data_dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Starts a writer into any store (tests, other backends), without a spool.
    pub fn start_with_store(
        cfg: &ArchiveConfig,
        store: Box<dyn ArchiveStore>,
    ) -> Result<ArchiveHandle, ArchiveError> {
        Self::start_inner(cfg, store, None)
    }

    /// Starts a writer into `store` that spools to `spool` (`None`: no spool),
    /// taking back what a crash left there.
    fn start_inner(
        cfg: &ArchiveConfig,
        store: Box<dyn ArchiveStore>,
        spool: Option<PathBuf>,
    ) -> Result<ArchiveHandle, ArchiveError> {
        for (name, v) in [
            ("roll_records", cfg.roll_records),
            ("roll_bytes", cfg.roll_bytes),
            ("queue_batches", cfg.queue_batches),
            ("row_group_records", cfg.row_group_records),
        ] {
            if v == 0 {
                return Err(ArchiveError::Config(format!(
                    "archive.{name} must be at least 1"
                )));
            }
        }
        if cfg.roll_secs == 0 {
            return Err(ArchiveError::Config(
                "archive.roll_secs must be at least 1".into(),
            ));
        }
        let (tx, rx) = sync_channel(cfg.queue_batches);
        let shared = Arc::new(Shared {
            dir: store.describe(),
            ..Shared::default()
        });
        info!(dir = %shared.dir, "archiving raw events as Parquet");
        let mut writer = Writer::new(cfg.clone(), store, shared.clone());
        if let Some(path) = spool {
            let (s, records) = Spool::open(&path).map_err(|e| ArchiveError::io(&path, e))?;
            if !records.is_empty() {
                info!(records = records.len(), spool = %path.display(),
                    "archive: taking back records a stop left in the spool");
            }
            writer.take_back(records);
            writer.spool = Some(s);
        }
        let thread = std::thread::Builder::new()
            .name("archive".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| ArchiveError::io(shared.dir.clone(), e))?;
        *shared.thread.lock().expect("archive lock poisoned") = Some(thread);
        Ok(ArchiveHandle { tx, shared })
    }
}

/// The sending side: cheap to clone; the pipeline thread holds one, health another.
#[derive(Clone)]
pub struct ArchiveHandle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl ArchiveHandle {
    /// Queues accepted events. Blocks while the queue is full (back-pressure): call it
    /// from the pipeline thread, not from an async task.
    pub fn append(&self, records: Vec<ArchivedEvent>) -> Result<(), ArchiveError> {
        if records.is_empty() {
            return Ok(());
        }
        self.shared
            .buffered
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.tx
            .send(Msg::Events(records, wall_ms()))
            .map_err(|_| ArchiveError::Stopped)
    }

    /// Queues dead letters, kept apart under `dead-letters/`.
    pub fn append_dead(&self, letters: Vec<DeadLetter>) -> Result<(), ArchiveError> {
        if letters.is_empty() {
            return Ok(());
        }
        self.shared
            .buffered
            .fetch_add(letters.len() as u64, Ordering::Relaxed);
        self.tx
            .send(Msg::Dead(letters))
            .map_err(|_| ArchiveError::Stopped)
    }

    /// Returns once everything appended before it is durable: in the spool if there
    /// is one, else in complete, visible, fsynced files. Blocking: from async code,
    /// call it inside `spawn_blocking`.
    pub fn flush(&self) -> Result<(), ArchiveError> {
        let (reply, wait) = sync_channel(1);
        self.tx
            .send(Msg::Flush(reply))
            .map_err(|_| ArchiveError::Stopped)?;
        wait.recv()
            .map_err(|_| ArchiveError::Stopped)?
            .map_err(ArchiveError::WriteFailed)
    }

    /// Writes what is buffered and stops the writer thread (every clone stops working).
    pub fn shutdown(&self) -> Result<(), ArchiveError> {
        let (reply, wait) = sync_channel(1);
        if self.tx.send(Msg::Stop(reply)).is_err() {
            return Ok(()); // already stopped
        }
        let result = wait.recv().map_err(|_| ArchiveError::Stopped)?;
        if let Some(t) = self
            .shared
            .thread
            .lock()
            .expect("archive lock poisoned")
            .take()
        {
            let _ = t.join();
        }
        result.map_err(ArchiveError::WriteFailed)
    }

    pub fn stats(&self) -> ArchiveStats {
        let s = &self.shared;
        ArchiveStats {
            dir: s.dir.clone(),
            files_written: s.files.load(Ordering::Relaxed),
            records_written: s.records.load(Ordering::Relaxed),
            dead_letters_written: s.dead.load(Ordering::Relaxed),
            bytes_written: s.bytes.load(Ordering::Relaxed),
            buffered_records: s.buffered.load(Ordering::Relaxed),
            last_file: s.last_file.lock().expect("archive lock poisoned").clone(),
            last_error: s.last_error.lock().expect("archive lock poisoned").clone(),
        }
    }
}

struct Pending {
    ev: ArchivedEvent,
    ingest_ms: Millis,
    seq: i64,
}

struct PendingDead {
    dl: DeadLetter,
    seq: i64,
}

struct Writer {
    cfg: ArchiveConfig,
    store: Box<dyn ArchiveStore>,
    shared: Arc<Shared>,
    /// Names files uniquely across restarts without listing the store.
    run: Millis,
    next_file: u64,
    /// The name a failed file keeps for its retries: (dead letters?, day).
    retry_names: BTreeMap<(bool, i64), PathBuf>,
    next_seq: i64,
    events: BTreeMap<i64, Vec<Pending>>,
    /// A written day's emptied buffer, kept for the next day buffered: growing a fresh
    /// one to `roll_records` rows for every file (copying it at each doubling, and
    /// faulting in its new pages) was a tenth of this thread's time.
    spare: Vec<Pending>,
    dead: BTreeMap<i64, Vec<PendingDead>>,
    count: usize,
    bytes: usize,
    oldest: Option<Instant>,
    failing: bool,
    spool: Option<Spool>,
    /// Buffered records with `seq` below this are in the spool already.
    spooled_through: i64,
}

impl Writer {
    fn new(cfg: ArchiveConfig, store: Box<dyn ArchiveStore>, shared: Arc<Shared>) -> Self {
        Writer {
            cfg,
            store,
            shared,
            run: wall_ms(),
            next_file: 0,
            retry_names: BTreeMap::new(),
            next_seq: 0,
            events: BTreeMap::new(),
            spare: Vec::new(),
            dead: BTreeMap::new(),
            count: 0,
            bytes: 0,
            oldest: None,
            failing: false,
            spool: None,
            spooled_through: 0,
        }
    }

    /// Buffers the records a previous run left in the spool (already durable there).
    fn take_back(&mut self, records: Vec<Spooled>) {
        if records.is_empty() {
            return;
        }
        self.oldest = Some(Instant::now());
        self.shared
            .buffered
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        for r in records {
            match r {
                Spooled::Event { ev, ingest_ms, seq } => self.buffer_event(ev, ingest_ms, seq),
                Spooled::Dead { dl, seq } => self.buffer_dead(dl, seq),
            }
        }
        self.spooled_through = self.next_seq;
    }

    /// Makes everything buffered durable: into the spool if there is one, else into
    /// files.
    fn flush(&mut self) -> Result<(), String> {
        let Some(spool) = self.spool.as_mut() else {
            return self.roll();
        };
        let frames = spool_frames(&self.events, &self.dead, self.spooled_through);
        spool
            .append(&frames)
            .map_err(|e| format!("archive spool {}: {e}", spool.path().display()))?;
        self.spooled_through = self.next_seq;
        Ok(())
    }

    /// After a roll: the spool keeps only what is still buffered.
    fn trim_spool(&mut self) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let result = if self.count == 0 {
            spool.clear()
        } else {
            spool.replace(&spool_frames(&self.events, &self.dead, 0))
        };
        match result {
            // Everything still buffered is in the spool now.
            Ok(()) => self.spooled_through = self.next_seq,
            // Harmless but for duplicates: at the next start the spool would give back
            // records that are in files already (told apart by `ingest_seq`).
            Err(e) => {
                warn!(error = %e, spool = %spool.path().display(), "could not trim the archive spool")
            }
        }
    }

    fn full(&self) -> bool {
        self.count >= self.cfg.roll_records || self.bytes >= self.cfg.roll_bytes
    }

    fn due(&self) -> Option<Instant> {
        self.oldest
            .map(|t| t + Duration::from_secs(self.cfg.roll_secs))
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let retry = Duration::from_millis(self.cfg.retry_ms.max(1));
        loop {
            // While writes fail and the buffer is full, take nothing more: the queue
            // fills and the pipeline waits.
            while self.failing && self.full() {
                std::thread::sleep(retry);
                let _ = self.roll();
            }
            let now = Instant::now();
            let timeout = match (self.failing, self.due()) {
                (true, _) if self.count > 0 => retry,
                (_, Some(due)) => due.saturating_duration_since(now),
                (_, None) => Duration::from_secs(3600),
            };
            match rx.recv_timeout(timeout) {
                Ok(Msg::Events(batch, ingest_ms)) => {
                    self.push_events(batch, ingest_ms);
                    if self.full() {
                        let _ = self.roll();
                    }
                }
                Ok(Msg::Dead(batch)) => {
                    self.push_dead(batch);
                    if self.full() {
                        let _ = self.roll();
                    }
                }
                Ok(Msg::Flush(reply)) => {
                    let _ = reply.send(self.flush());
                }
                Ok(Msg::Stop(reply)) => {
                    let _ = reply.send(self.finish());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.roll();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.finish();
                    return;
                }
            }
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        let mut result = self.roll();
        for _ in 1..SHUTDOWN_ATTEMPTS {
            if result.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(self.cfg.retry_ms.max(1)));
            result = self.roll();
        }
        if let Err(e) = &result {
            error!(error = %e, records = self.count, "archive: records not written at shutdown");
        }
        result
    }

    fn push_events(&mut self, mut batch: Vec<ArchivedEvent>, ingest_ms: Millis) {
        format_sources(&mut batch);
        self.oldest.get_or_insert_with(Instant::now);
        for ev in batch {
            self.buffer_event(ev, ingest_ms, self.next_seq);
        }
    }

    fn push_dead(&mut self, batch: Vec<DeadLetter>) {
        self.oldest.get_or_insert_with(Instant::now);
        for dl in batch {
            self.buffer_dead(dl, self.next_seq);
        }
    }

    /// Buffers one event under `seq` (new, or given back by the spool).
    fn buffer_event(&mut self, ev: ArchivedEvent, ingest_ms: Millis, seq: i64) {
        self.count += 1;
        self.bytes += ev.raw.len() + ev.key.len() + ev.source.len() + 32;
        self.next_seq = self.next_seq.max(seq + 1);
        self.events
            .entry(ev.event_time_ms.div_euclid(MS_PER_DAY))
            .or_insert_with(|| std::mem::take(&mut self.spare))
            .push(Pending { ev, ingest_ms, seq });
    }

    /// Buffers one dead letter under `seq` (new, or given back by the spool).
    fn buffer_dead(&mut self, dl: DeadLetter, seq: i64) {
        self.count += 1;
        self.bytes += dl.raw.len() + dl.detail.len() + dl.source.len() + 32;
        self.next_seq = self.next_seq.max(seq + 1);
        self.dead
            .entry(dl.at_ms.div_euclid(MS_PER_DAY))
            .or_default()
            .push(PendingDead { dl, seq });
    }

    /// The path for the next file of `day`: a fresh name, or the one its failed
    /// attempt used (see the module notes). Forgotten once written.
    fn file_path(&mut self, dead: bool, day: i64) -> PathBuf {
        if let Some(p) = self.retry_names.get(&(dead, day)) {
            return p.clone();
        }
        let n = self.next_file;
        self.next_file += 1;
        let name = format!("part-{:013}-{n:06}.parquet", self.run);
        let partition = PathBuf::from(partition_of(day * MS_PER_DAY));
        let path = if dead {
            PathBuf::from(DEAD_LETTER_DIR).join(partition).join(name)
        } else {
            partition.join(name)
        };
        self.retry_names.insert((dead, day), path.clone());
        path
    }

    /// Writes every buffered day; a day that fails stays buffered for the next try.
    fn roll(&mut self) -> Result<(), String> {
        let before = self.count;
        let result = self.roll_days();
        if self.count < before {
            self.trim_spool();
        }
        result
    }

    fn roll_days(&mut self) -> Result<(), String> {
        let mut first_error = None;
        let days: Vec<i64> = self.events.keys().copied().collect();
        for day in days {
            if let Err(e) = self.write_event_day(day) {
                first_error.get_or_insert(e);
            }
        }
        let days: Vec<i64> = self.dead.keys().copied().collect();
        for day in days {
            if let Err(e) = self.write_dead_day(day) {
                first_error.get_or_insert(e);
            }
        }
        if self.count == 0 {
            self.oldest = None;
            self.bytes = 0;
        }
        match first_error {
            None => {
                if self.failing {
                    info!("archive writes succeed again");
                }
                self.failing = false;
                *self
                    .shared
                    .last_error
                    .lock()
                    .expect("archive lock poisoned") = None;
                Ok(())
            }
            Some(e) => {
                if !self.failing {
                    warn!(error = %e, buffered = self.count, "archive write failed; keeping the records and retrying");
                }
                self.failing = true;
                *self
                    .shared
                    .last_error
                    .lock()
                    .expect("archive lock poisoned") = Some(e.clone());
                Err(e)
            }
        }
    }

    fn write_event_day(&mut self, day: i64) -> Result<(), String> {
        let mut rows = self.events.remove(&day).unwrap_or_default();
        if rows.is_empty() {
            return Ok(());
        }
        // Stable: equal times keep their arrival order, which is what replay reproduces.
        rows.sort_by_key(|p| p.ev.event_time_ms);
        let sources: Vec<Bytes> = rows.iter().map(|p| p.ev.source.to_text()).collect();
        let out: Vec<EventRow<'_>> = rows
            .iter()
            .zip(&sources)
            .map(|(p, source)| EventRow {
                event: p.ev.kind.as_str(),
                event_time_ms: p.ev.event_time_ms,
                username: &p.ev.key,
                source,
                ingest_time_ms: p.ingest_ms,
                ingest_seq: p.seq,
                raw: &p.ev.raw,
            })
            .collect();
        let encoded = format::encode_events(&out, self.cfg.row_group_records);
        drop(out);
        let result = self.publish(false, day, rows.len(), encoded);
        if result.is_err() {
            self.events.insert(day, rows);
        } else if rows.capacity() > self.spare.capacity() {
            rows.clear();
            self.spare = rows;
        }
        result
    }

    fn write_dead_day(&mut self, day: i64) -> Result<(), String> {
        let rows = self.dead.remove(&day).unwrap_or_default();
        if rows.is_empty() {
            return Ok(());
        }
        let out: Vec<DeadLetterOut<'_>> = rows
            .iter()
            .map(|p| DeadLetterOut {
                reason: p.dl.reason.code(),
                detail: &p.dl.detail,
                source: &p.dl.source,
                time_ms: p.dl.at_ms,
                ingest_seq: p.seq,
                raw: &p.dl.raw,
            })
            .collect();
        let encoded = format::encode_dead_letters(&out, self.cfg.row_group_records);
        drop(out);
        let result = self.publish(true, day, rows.len(), encoded);
        if result.is_err() {
            self.dead.insert(day, rows);
        }
        result
    }

    /// Stores the encoded file of `records` records of `day` (dead letters or events)
    /// under its name, and counts it; or says what went wrong where, and the name is
    /// kept for the retry.
    fn publish<E: std::fmt::Display>(
        &mut self,
        dead: bool,
        day: i64,
        records: usize,
        encoded: Result<Vec<u8>, E>,
    ) -> Result<(), String> {
        let rel = self.file_path(dead, day);
        let data = encoded.map_err(|e| format!("encoding {}: {e}", rel.display()))?;
        self.store
            .put(&rel, &data)
            .map_err(|e| format!("writing {}: {e}", rel.display()))?;
        self.retry_names.remove(&(dead, day));
        self.published(&rel, records, data.len(), dead);
        Ok(())
    }

    fn published(&mut self, rel: &std::path::Path, records: usize, len: usize, dead: bool) {
        self.count -= records;
        let s = &self.shared;
        s.files.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(len as u64, Ordering::Relaxed);
        s.buffered.fetch_sub(records as u64, Ordering::Relaxed);
        if dead {
            s.dead.fetch_add(records as u64, Ordering::Relaxed);
        } else {
            s.records.fetch_add(records as u64, Ordering::Relaxed);
        }
        *s.last_file.lock().expect("archive lock poisoned") = Some(rel.display().to_string());
        debug!(file = %rel.display(), records, bytes = len, "archive file written");
    }
}

/// The spool frames of buffered records with `seq >= from`.
fn spool_frames(
    events: &BTreeMap<i64, Vec<Pending>>,
    dead: &BTreeMap<i64, Vec<PendingDead>>,
    from: i64,
) -> Vec<u8> {
    let mut out = Vec::new();
    for p in events.values().flatten().filter(|p| p.seq >= from) {
        spool::encode_event(&mut out, &p.ev, p.ingest_ms, p.seq);
    }
    for p in dead.values().flatten().filter(|p| p.seq >= from) {
        spool::encode_dead(&mut out, &p.dl, p.seq);
    }
    out
}

/// Formats the sources the pipeline handed over as origins into one buffer for the
/// batch, each event's source a slice of it: formatted once, with one allocation per
/// batch rather than one per record.
fn format_sources(batch: &mut [ArchivedEvent]) {
    use std::fmt::Write;
    let mut text = String::with_capacity(batch.len() * 24);
    let mut ends = Vec::with_capacity(batch.len());
    for ev in batch.iter() {
        if let EventSource::Origin(o) = &ev.source {
            let _ = write!(text, "{o}");
        }
        ends.push(text.len());
    }
    let text = Bytes::from(text);
    let mut start = 0;
    for (ev, end) in batch.iter_mut().zip(ends) {
        if matches!(ev.source, EventSource::Origin(_)) {
            ev.source = EventSource::Text(text.slice(start..end));
        }
        start = end;
    }
}
