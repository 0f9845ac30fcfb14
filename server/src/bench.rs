//! The single-thread processing benchmark: decode and apply an NDJSON file of events
//! on one thread, as the pipeline thread does, and report throughput and peak memory.
//! `instabrand bench --events FILE` (or `--generate N` to make the file first).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use instabrand_shared::{DecodeLimits, decode};

use crate::processor::{Processor, ProcessorConfig};

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
    /// With a checkpoint file: (bytes, seconds to serialize the state, seconds to save
    /// it). The server's pipeline pauses only for the first; the second runs on its
    /// checkpoint thread.
    pub checkpoint: Option<(usize, f64, f64)>,
}

impl BenchReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Decodes and applies every line of `path` on this thread.
pub fn run_file(
    path: &Path,
    cfg: ProcessorConfig,
    limits: &DecodeLimits,
    checkpoint_to: Option<&Path>,
) -> io::Result<BenchReport> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut p = Processor::new(cfg);
    let mut line = Vec::with_capacity(1024);
    let (mut events, mut rejected) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let rec = line.trim_ascii_end();
        if rec.is_empty() {
            continue;
        }
        match decode(rec, None, limits) {
            Ok(ev) => {
                p.apply(&ev, rec);
                events += 1;
            }
            Err(_) => rejected += 1,
        }
    }
    let elapsed = start.elapsed();
    let checkpoint = match checkpoint_to {
        Some(file) => {
            let t = Instant::now();
            let bytes = p.snapshot().map_err(io::Error::other)?;
            let serialized = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let store = crate::store::StateStore::open(file).map_err(io::Error::other)?;
            store
                .save(&bytes, &crate::store::Positions::new())
                .map_err(io::Error::other)?;
            Some((bytes.len(), serialized, t.elapsed().as_secs_f64()))
        }
        None => None,
    };
    Ok(BenchReport {
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
    })
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
        instabrand_generator::write_original_json(&generator.next_event(), &mut buf);
        buf.push(b'\n');
        out.write_all(&buf)?;
    }
    out.flush()
}

/// The process's peak resident set (Linux `VmHWM`), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
