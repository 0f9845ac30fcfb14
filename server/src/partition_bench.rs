//! `instabrand bench --partitions N`: an event file through N partition processors in
//! one process (`processor/partitioned.rs`), each on a thread of its own, to measure
//! what partitioning buys on this machine's cores. The file is read into memory first
//! (not timed); then, a block of lines at a time, the lines are decoded on N threads,
//! put in the applied order (by second, then the tie order: docs/semantics.md,
//! "Order", as the aligner releases them), and applied by the N partitions in step.
//! With N = 1 the same path runs on one thread, so the two figures compare like with
//! like. Decoding and applying are timed apart (wall seconds of each stage).

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use instabrand_shared::{DecodeLimits, Event, decode};

use crate::align::OrderKey;
use crate::processor::ProcessorConfig;
use crate::processor::partitioned::{Partitioned, Route, route};

/// Lines decoded and applied together. Large enough that the threads' meetings are a
/// small share of the work, small enough that the decoded events stay in cache-sized
/// memory rather than a whole file's worth.
const BLOCK: usize = 65_536;

/// A decoded line with its place in the applied order, borrowing from the file.
type Keyed<'a> = (OrderKey, Route, Event<'a>, &'a [u8]);

#[derive(Debug, Clone)]
pub struct PartitionReport {
    pub partitions: usize,
    pub events: u64,
    pub rejected: u64,
    pub elapsed: Duration,
    /// Decoding and ordering each block (on all threads).
    pub decode: Duration,
    /// Applying each block (on all threads).
    pub apply: Duration,
    pub peak_rss_mb: Option<f64>,
    /// Brands in the merged view at the end, and the likes it counts (a check that the
    /// partitions did the work).
    pub brands: usize,
    pub likes: u64,
    /// Events each partition applied (a follow counts on both of its partitions), and
    /// the seconds the partitions met in.
    pub per_partition: Vec<u64>,
    pub meetings: u64,
}

impl PartitionReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the file through `n` partition processors.
pub fn run_file(
    path: &Path,
    n: usize,
    cfg: &ProcessorConfig,
    limits: &DecodeLimits,
) -> io::Result<PartitionReport> {
    let data = std::fs::read(path)?;
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii_end())
        .filter(|l| !l.is_empty())
        .collect();
    let n = n.max(1);
    let mut p = Partitioned::new(n, cfg);
    let (mut events, mut rejected) = (0u64, 0u64);
    let (mut decode_time, mut apply_time) = (Duration::ZERO, Duration::ZERO);
    let mut per_partition = vec![0u64; n];
    let mut meetings = 0u64;
    let started = Instant::now();
    for block in lines.chunks(BLOCK) {
        let t0 = Instant::now();
        let per = block.len().div_ceil(n);
        let parts: Vec<(Vec<Keyed<'_>>, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = block
                .chunks(per)
                .map(|lines| {
                    s.spawn(move || {
                        let mut bad = 0u64;
                        let mut out = Vec::with_capacity(lines.len());
                        for &l in lines {
                            match decode(l, None, limits) {
                                Ok(e) => out.push((OrderKey::of(&e, l), route(&e, n), e, l)),
                                Err(_) => bad += 1,
                            }
                        }
                        out.sort_by_key(|(k, ..)| *k);
                        (out, bad)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a decode thread panicked"))
                .collect()
        });
        let mut decoded: Vec<Keyed<'_>> = Vec::with_capacity(block.len());
        for (d, bad) in parts {
            decoded.extend(d);
            rejected += bad;
        }
        // Each part is sorted: one stable sort of the runs merges them.
        decoded.sort_by_key(|(k, ..)| *k);
        let routes: Vec<Route> = decoded.iter().map(|(_, r, ..)| *r).collect();
        for &(a, b) in &routes {
            per_partition[a as usize] += 1;
            if let Some(c) = per_partition.get_mut(b as usize) {
                *c += 1;
            }
        }
        meetings += decoded
            .windows(2)
            .filter(|w| w[0].0.sec != w[1].0.sec)
            .count() as u64
            + 1;
        let ordered: Vec<(Event<'_>, &[u8])> =
            decoded.into_iter().map(|(_, _, e, l)| (e, l)).collect();
        events += ordered.len() as u64;
        let t1 = Instant::now();
        decode_time += t1 - t0;
        p.apply_routed(&ordered, &routes);
        apply_time += t1.elapsed();
    }
    let elapsed = started.elapsed();
    let merged = p.merged_brands();
    Ok(PartitionReport {
        partitions: n,
        events,
        rejected,
        elapsed,
        decode: decode_time,
        apply: apply_time,
        peak_rss_mb: crate::bench::peak_rss_mb(),
        brands: merged.len(),
        likes: merged.values().map(|b| b.all.likes).sum(),
        per_partition,
        meetings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_two_partitions_count_the_same_file_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        crate::bench::generate_file(
            &path,
            30_000,
            instabrand_generator::Config {
                users: 1_000,
                mean_follows: 5.0,
                ..instabrand_generator::Config::default()
            },
        )
        .unwrap();
        let cfg = ProcessorConfig::default();
        let one = run_file(&path, 1, &cfg, &DecodeLimits::default()).unwrap();
        let two = run_file(&path, 2, &cfg, &DecodeLimits::default()).unwrap();
        assert_eq!(one.events, 30_000);
        assert_eq!((two.events, two.rejected), (one.events, one.rejected));
        assert!(one.likes > 1_000, "the file has engagement: {}", one.likes);
        assert_eq!((two.brands, two.likes), (one.brands, one.likes));
    }
}
