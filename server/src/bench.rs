//! The single-thread processing benchmark: decode and apply an NDJSON file of events
//! on one thread, as the pipeline thread does, and report throughput and peak memory.
//! The file is read on a second thread, as a source reads for the pipeline.
//! `instabrand bench --events FILE` (or `--generate N` to make the file first).
//!
//! With `--checkpoint-to FILE --checkpoint-every SECS` it also checkpoints into the
//! on-disk store while it runs, as the server does (`checkpoint`): applying stops only
//! to take the events applied since the last checkpoint, a second thread appends them
//! to the store's changelog, and a third compacts the changelog into a new base when it
//! is due; so the events/s and the peak memory then include the store. At the end a
//! last checkpoint and a full compaction are timed.
//!
//! With `--readers N` the first N users read their home timelines all along, as
//! dashboards would: every 4,096 events (a batch) a share of them is noted, so each is
//! noted again well within `reader_ttl_secs`, and uploads fan out to them.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use instabrand_shared::{DecodeLimits, decode};

use crate::processor::{Processor, ProcessorConfig, UserId};

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub events: u64,
    pub rejected: u64,
    pub elapsed: Duration,
    pub users: usize,
    pub photos: usize,
    /// Events applied by type, e.g. `create-user=20000 follow=…`.
    pub by_kind: String,
    pub peak_rss_mb: Option<f64>,
    /// With a checkpoint file: what the store holds at the end.
    pub checkpoint: Option<StoreReport>,
    /// Checkpoints written while applying (`--checkpoint-every`), how long applying
    /// stopped for them in all, and the longest stop.
    pub checkpoints_during: u64,
    pub checkpoint_pauses: Duration,
    pub checkpoint_pause_max: Duration,
    /// Home timelines materialized at the end.
    pub active_readers: usize,
}

/// The store after the run.
#[derive(Debug, Clone)]
pub struct StoreReport {
    /// Compactions that ran while applying.
    pub compactions_during: u64,
    /// The final compaction: seconds, events replayed, the base it wrote.
    pub final_compaction_secs: f64,
    pub final_replayed: u64,
    pub base_bytes: u64,
    pub file_bytes: u64,
}

impl BenchReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What else the benchmark does while it applies.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions<'a> {
    /// Checkpoint into this store at the end (and while applying, with `every`).
    pub checkpoint_to: Option<&'a Path>,
    pub checkpoint_every: Option<Duration>,
    /// The first this many users read their home timelines all along.
    pub readers: u32,
}

/// Readers noted per batch: each of `readers` once every `ROUNDS` batches.
const ROUNDS: u32 = 16;

/// Decodes and applies every line of `path` on this thread.
pub fn run_file(
    path: &Path,
    cfg: ProcessorConfig,
    limits: &DecodeLimits,
    opts: BenchOptions<'_>,
) -> io::Result<BenchReport> {
    let BenchOptions {
        checkpoint_to,
        checkpoint_every,
        readers,
    } = opts;
    let per_batch = readers.div_ceil(ROUNDS);
    let mut next_reader = 0u32;
    let chunks = LineChunks::open(path)?;
    let mut p = Processor::new(cfg);
    let (mut events, mut rejected) = (0u64, 0u64);
    let store = match checkpoint_to {
        Some(file) => Some(std::sync::Arc::new(
            crate::store::StateStore::open(file).map_err(io::Error::other)?,
        )),
        None => None,
    };
    let mut writer = store
        .as_ref()
        .map(|store| BackgroundWriter::start(store.clone(), checkpoint_every, p.config().clone()));
    let start = Instant::now();
    let mut since_batch = 0u32;
    for chunk in chunks.iter() {
        let chunk = chunk?;
        for line in chunk.split_lines() {
            if since_batch == 0 {
                if let Some(w) = writer.as_mut() {
                    w.maybe_checkpoint()?;
                }
                // As the pipeline drains the web layer's reads before a batch.
                for _ in 0..per_batch {
                    p.note_reader(UserId(next_reader));
                    next_reader = (next_reader + 1) % readers;
                }
            }
            since_batch = (since_batch + 1) % 4096;
            let rec = line.trim_ascii_end();
            if rec.is_empty() {
                continue;
            }
            match decode(rec, None, limits) {
                Ok(ev) => {
                    p.apply(&ev, rec);
                    events += 1;
                    if let Some(w) = writer.as_mut() {
                        w.log.push(crate::checkpoint::Logged::Event(
                            None,
                            bytes::Bytes::copy_from_slice(rec),
                        ));
                    }
                }
                Err(_) => rejected += 1,
            }
        }
        chunks.recycle(chunk);
    }
    let (checkpoints_during, checkpoint_pauses, checkpoint_pause_max, compactions_during) =
        match writer.take() {
            Some(w) => w.finish()?,
            None => (0, Duration::ZERO, Duration::ZERO, 0),
        };
    let elapsed = start.elapsed();
    let checkpoint = match store {
        Some(store) => {
            let c = crate::checkpoint::compact(&store, p.config()).map_err(io::Error::other)?;
            Some(StoreReport {
                compactions_during,
                final_compaction_secs: c.took.as_secs_f64(),
                final_replayed: c.replayed,
                base_bytes: c.sizes.base_bytes,
                file_bytes: c.sizes.file_bytes,
            })
        }
        None => None,
    };
    Ok(BenchReport {
        checkpoints_during,
        checkpoint_pauses,
        checkpoint_pause_max,
        checkpoint,
        events,
        rejected,
        elapsed,
        users: p.user_count(),
        photos: p.photo_count(),
        by_kind: instabrand_shared::EventKind::ALL
            .iter()
            .map(|k| format!("{k}={}", p.stats.applied_by_kind[*k as usize]))
            .collect::<Vec<_>>()
            .join(" "),
        peak_rss_mb: peak_rss_mb(),
        active_readers: p.home_feeds().active_readers(),
    })
}

/// Checkpoints taken while the benchmark applies, as the pipeline takes them: the
/// events applied since the last one go to the server's checkpoint thread, which
/// appends them to the changelog and asks the compactor when it is due.
struct BackgroundWriter {
    every: Option<Duration>,
    /// As `state.max_unlogged_events`: past it a checkpoint is due at once.
    max_unlogged: usize,
    last: Instant,
    log: Vec<crate::checkpoint::Logged>,
    saver: crate::store::BackgroundSaver<Vec<crate::checkpoint::Logged>>,
    /// Checkpoints written, compactions done, and the first failure.
    written: std::sync::Arc<std::sync::Mutex<(u64, u64, Option<String>)>>,
    paused: Duration,
    longest: Duration,
}

impl BackgroundWriter {
    fn start(
        store: std::sync::Arc<crate::store::StateStore>,
        every: Option<Duration>,
        cfg: ProcessorConfig,
    ) -> Self {
        let written = std::sync::Arc::new(std::sync::Mutex::new((0, 0, None)));
        let outcome = written.clone();
        let compacted = written.clone();
        // The server's defaults: the bench has no configuration file.
        let defaults = crate::config::StateConfig::default();
        let policy = crate::checkpoint::CompactPolicy::of(&defaults);
        let compactor =
            crate::checkpoint::Compactor::start(store.clone(), cfg.clone(), policy, move |c| {
                let mut o = compacted.lock().expect("bench lock poisoned");
                match c {
                    Ok(_) => o.1 += 1,
                    Err(e) => {
                        o.2.get_or_insert(e);
                    }
                }
            });
        let saver = crate::store::BackgroundSaver::start(
            "checkpoint",
            move |events: Vec<crate::checkpoint::Logged>| {
                let entry = crate::checkpoint::encode_entry(&events);
                let saved = store.append(&entry, &[], &crate::store::Positions::new());
                let mut o = outcome.lock().expect("bench lock poisoned");
                match saved {
                    Ok(sizes) => {
                        o.0 += 1;
                        drop(o);
                        if !entry.is_empty() {
                            compactor.logged(sizes.last_entry, entry);
                        }
                    }
                    Err(e) => {
                        o.2.get_or_insert(e.to_string());
                    }
                }
            },
        );
        BackgroundWriter {
            every,
            max_unlogged: defaults.max_unlogged_events,
            last: Instant::now(),
            log: Vec::new(),
            saver,
            written,
            paused: Duration::ZERO,
            longest: Duration::ZERO,
        }
    }

    fn maybe_checkpoint(&mut self) -> io::Result<()> {
        let full = self.log.len() >= self.max_unlogged;
        let due = self.every.is_some_and(|e| self.last.elapsed() >= e);
        if !full && (!due || self.saver.busy()) {
            return Ok(());
        }
        let t = Instant::now();
        let events = std::mem::take(&mut self.log);
        let pause = t.elapsed();
        self.paused += pause;
        self.longest = self.longest.max(pause);
        self.last = Instant::now();
        if !self.saver.send(events) {
            return Err(io::Error::other("checkpoint writer stopped"));
        }
        Ok(())
    }

    /// Writes the rest, waits for the writes; (checkpoints written, time applying was
    /// stopped, the longest stop, compactions done).
    fn finish(mut self) -> io::Result<(u64, Duration, Duration, u64)> {
        let rest = std::mem::take(&mut self.log);
        if !rest.is_empty() && !self.saver.send(rest) {
            return Err(io::Error::other("checkpoint writer stopped"));
        }
        // Stopping the writer drops the compactor it owns, which waits for a
        // compaction in progress.
        self.saver.stop();
        let mut o = self.written.lock().expect("bench lock poisoned");
        match o.2.take() {
            Some(e) => Err(io::Error::other(e)),
            None => Ok((o.0, self.paused, self.longest, o.1)),
        }
    }
}

/// An NDJSON file read in chunks of whole lines on a thread of its own, as a source
/// reads for the pipeline: the measured thread only decodes and applies (reading
/// from the page cache was 6 % of its time). Chunk buffers go back to the reader to
/// be filled again, so the benchmark does not measure the allocator either.
struct LineChunks {
    rx: std::sync::mpsc::Receiver<io::Result<Chunk>>,
    spare: std::sync::mpsc::SyncSender<Vec<u8>>,
}

/// Whole lines (the last one ends with its newline, or the file).
struct Chunk(Vec<u8>);

impl Chunk {
    fn split_lines(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.0.as_slice();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            let (line, tail) = rest.split_at(end);
            rest = tail;
            Some(line)
        })
    }
}

/// Bytes read per chunk: large enough that handing one over costs nothing per line
/// (about 7,000 lines), small enough that the few buffers in flight stay out of the
/// peak memory the benchmark reports. At 4 MiB, grown by doubling as `read_to_end`
/// does, the buffers came to 8 MiB each and up to 64 MB of the peak.
const CHUNK_BYTES: u64 = 1 << 20;

/// Room each buffer has beyond a chunk for the cut line carried over from the last.
const CARRY_ROOM: usize = 64 << 10;

impl LineChunks {
    fn open(path: &Path) -> io::Result<LineChunks> {
        Self::open_with(path, CHUNK_BYTES)
    }

    fn open_with(path: &Path, chunk_bytes: u64) -> io::Result<LineChunks> {
        use std::io::Read;
        let mut file = File::open(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let (spare, spares) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        std::thread::Builder::new()
            .name("bench-read".into())
            .spawn(move || {
                let mut carry: Vec<u8> = Vec::new();
                loop {
                    let mut buf = spares
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(chunk_bytes as usize + CARRY_ROOM));
                    buf.clear();
                    buf.append(&mut carry);
                    let read = (&mut file).take(chunk_bytes).read_to_end(&mut buf);
                    let done = match read {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    if !done {
                        // Keep a cut line for the next chunk (a line longer than a
                        // chunk is read on until its end).
                        match memchr::memrchr(b'\n', &buf) {
                            Some(i) => carry.extend_from_slice(&buf[i + 1..]),
                            None => {
                                carry = buf;
                                continue;
                            }
                        }
                        let keep = buf.len() - carry.len();
                        buf.truncate(keep);
                    }
                    if !buf.is_empty() && tx.send(Ok(Chunk(buf))).is_err() {
                        return;
                    }
                    if done {
                        return;
                    }
                }
            })?;
        Ok(LineChunks { rx, spare })
    }

    fn iter(&self) -> impl Iterator<Item = io::Result<Chunk>> + '_ {
        self.rx.iter()
    }

    fn recycle(&self, chunk: Chunk) {
        let _ = self.spare.try_send(chunk.0);
    }
}

/// Writes `events` generated events as NDJSON in the original shape.
pub fn generate_file(
    path: &Path,
    events: u64,
    cfg: instabrand_generator::Config,
) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut generator = instabrand_generator::Generator::new(cfg);
    let mut buf = Vec::with_capacity(512);
    for _ in 0..events {
        buf.clear();
        // The line comes with its newline.
        instabrand_generator::write_original_json(&generator.next_event(), &mut buf);
        out.write_all(&buf)?;
    }
    out.flush()
}

/// The event-time rate (events per second) at which `events` events span `days` days
/// from the first event's time to the last's, for a file that is to cover several
/// retention windows whatever its length (`generate --days`). The bootstrap takes its
/// share of that span like any other event.
pub fn rate_spanning(events: u64, days: f64) -> Option<f64> {
    let seconds = days * 86_400.0;
    // One event spans nothing; the rate between the first and the last is over the
    // events - 1 steps between them.
    (events >= 2 && seconds.is_finite() && seconds > 0.0).then(|| (events - 1) as f64 / seconds)
}

/// The process's peak resident set (Linux `VmHWM`), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_hands_over_every_line_whole_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines");
        // Lines shorter and longer than a chunk, an empty one, no final newline.
        let lines: Vec<String> = (0..300)
            .map(|i| "x".repeat((i * 37) % 150) + &i.to_string())
            .chain(["".to_string(), "last".to_string()])
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        for chunk_bytes in [64, 1000, 1 << 20] {
            let chunks = LineChunks::open_with(&path, chunk_bytes).unwrap();
            let mut got = Vec::new();
            for c in chunks.iter() {
                let c = c.unwrap();
                for l in c.split_lines() {
                    got.push(String::from_utf8(l.to_vec()).unwrap());
                }
                chunks.recycle(c);
            }
            let got: Vec<String> = got
                .iter()
                .map(|l| l.strip_suffix('\n').unwrap_or(l).to_string())
                .collect();
            assert_eq!(got, lines, "chunks of {chunk_bytes} bytes");
        }
    }

    #[test]
    fn checkpoints_while_applying_land_in_the_store_and_the_last_holds_the_final_state() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.ndjson");
        let store = dir.path().join("state.redb");
        generate_file(
            &events,
            20_000,
            instabrand_generator::Config {
                users: 500,
                ..instabrand_generator::Config::default()
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(&events).unwrap();
        assert_eq!(
            text.lines().count(),
            20_000,
            "one line per event, no blank ones"
        );
        let r = run_file(
            &events,
            ProcessorConfig::default(),
            &DecodeLimits::default(),
            BenchOptions {
                checkpoint_to: Some(&store),
                // Due at every check (each 4,096 events) unless one is being written.
                checkpoint_every: Some(Duration::ZERO),
                readers: 0,
            },
        )
        .unwrap();
        assert_eq!(r.events, 20_000);
        assert!(r.checkpoints_during >= 1, "{r:?}");
        let saved = crate::store::StateStore::open(&store)
            .unwrap()
            .load()
            .unwrap()
            .expect("a checkpoint");
        // The final compaction folded the whole changelog into the base.
        assert!(saved.log.is_empty());
        let (p, _) = crate::checkpoint::restore(
            saved.base.as_deref(),
            &saved.log,
            ProcessorConfig::default(),
        )
        .unwrap();
        assert_eq!(p.user_count(), r.users);
        assert_eq!(p.photo_count(), r.photos);
        assert_eq!(summary(&p), summary(&final_state(&events)));
    }

    /// The state a plain run over `events` ends in.
    fn final_state(events: &Path) -> Processor {
        let mut p = Processor::new(ProcessorConfig::default());
        for line in std::fs::read_to_string(events).unwrap().lines() {
            if let Ok(ev) = decode(line.as_bytes(), None, &DecodeLimits::default()) {
                p.apply(&ev, line.as_bytes());
            }
        }
        p
    }

    /// What a state says: its counts and every brand's all-time numbers (snapshots
    /// are not compared byte for byte: hash sets iterate in insertion order).
    fn summary(p: &Processor) -> String {
        let brands: Vec<String> = p
            .brand_ids()
            .map(|b| {
                let s = p.brand(b);
                format!("{} {:?} {}", s.name, s.all, s.all_reach.estimate())
            })
            .collect();
        format!(
            "{} {} {:?} {:?} {brands:?}",
            p.user_count(),
            p.photo_count(),
            p.clock(),
            p.stats
        )
    }

    #[test]
    fn a_file_generated_to_span_days_spans_them_evenly() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.ndjson");
        let n = 20_000;
        let cfg = instabrand_generator::Config {
            users: 300,
            rate: rate_spanning(n, 90.0).unwrap(),
            ..instabrand_generator::Config::default()
        };
        let start = cfg.start_ms;
        generate_file(&events, n, cfg).unwrap();
        let text = std::fs::read_to_string(&events).unwrap();
        let times: Vec<i64> = text
            .lines()
            .map(|l| {
                decode(l.as_bytes(), None, &DecodeLimits::default())
                    .unwrap()
                    .time()
            })
            .collect();
        assert_eq!(times.len(), n as usize);
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "event time never goes back"
        );
        let day = 86_400_000;
        // Stamped in whole seconds: the last event is within a second of 90 days.
        assert_eq!(times[0], start);
        assert!((times[n as usize - 1] - (start + 90 * day)).abs() <= 1000);
        // Evenly: the first half of the events covers the first half of the days.
        let mid = times[n as usize / 2] - start;
        assert!((mid - 45 * day).abs() < day, "{mid}");
        assert_eq!(rate_spanning(1, 90.0), None);
        assert_eq!(rate_spanning(10, 0.0), None);
    }

    #[test]
    fn readers_are_noted_while_applying_and_their_timelines_materialized() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.ndjson");
        let cfg = instabrand_generator::Config {
            users: 300,
            mean_follows: 5.0,
            shape: instabrand_generator::Shape::Popular,
            ..instabrand_generator::Config::default()
        };
        generate_file(&events, 30_000, cfg).unwrap();
        let text = std::fs::read_to_string(&events).unwrap();
        assert_eq!(
            text.lines().count(),
            30_000,
            "one line per event, no blank ones"
        );
        let run = |readers| {
            let opts = BenchOptions {
                readers,
                ..BenchOptions::default()
            };
            run_file(
                &events,
                ProcessorConfig::default(),
                &DecodeLimits::default(),
                opts,
            )
            .unwrap()
        };
        assert_eq!(run(0).active_readers, 0);
        // 16 per batch of 4,096 events, 8 batches (the first before any user exists).
        assert_eq!(run(256).active_readers, 7 * 16);
    }
}
