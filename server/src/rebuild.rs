//! `instabrand rebuild`: the state made again from the archive, for when the state
//! store is damaged or was written in another format.
//!
//! The archive holds every event that decoded, with where it came from. Rebuilding
//! applies them to a fresh processor in the order the server applies them (event
//! time, then the fixed order of event types within a second: docs/semantics.md,
//! "Order"), and derives each source's position from the archived origins (the next
//! Kafka offset per partition, the file offset after the last line, the generator's
//! count), so the server resumes exactly after what the rebuilt state holds. The old
//! store (its file and base files) is kept beside the new one, in a folder
//! `<file>.damaged-<unix seconds>`, never deleted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use instabrand_shared::{DecodeLimits, EventKind, decode};
use serde_json::{Map, Value, json};

use crate::align::OrderKey;
use crate::archive::{ArchiveLocation, ArchiveReader, S3Config};
use crate::intake::Origin;
use crate::processor::{Processor, ProcessorConfig};
use crate::store::{Positions, StateStore};

/// What a rebuild did.
#[derive(Debug)]
pub struct Rebuilt {
    pub events: u64,
    /// Archived rows that no longer decode (counted, skipped).
    pub undecodable: u64,
    pub users: usize,
    pub photos: usize,
    pub positions: Positions,
    /// Where the previous store file was moved, if there was one.
    pub kept_old: Option<PathBuf>,
    pub took: Duration,
}

/// Where each source stands after the archived events, from their origins.
#[derive(Default)]
struct Ends {
    kafka: Map<String, Value>,
    file: Option<u64>,
    generator: u64,
}

impl Ends {
    fn note(&mut self, source: &str) {
        match Origin::parse(source) {
            Some(Origin::Kafka {
                topic,
                partition,
                offset,
            }) => {
                let next = offset + 1;
                let e = self
                    .kafka
                    .entry(format!("{topic}/{partition}"))
                    .or_insert(json!(next));
                if e.as_i64().is_some_and(|o| o < next) {
                    *e = json!(next);
                }
            }
            // The file source's origin is the offset after its line.
            Some(Origin::File { offset }) => self.file = Some(self.file.unwrap_or(0).max(offset)),
            Some(Origin::Generator) => self.generator += 1,
            _ => {}
        }
    }

    fn positions(self) -> Positions {
        let mut p = Positions::new();
        if !self.kafka.is_empty() {
            p.insert(
                crate::sources::kafka::SOURCE.into(),
                Value::Object(self.kafka),
            );
        }
        if let Some(offset) = self.file {
            p.insert(
                crate::sources::file::NAME.into(),
                json!({ "offset": offset }),
            );
        }
        if self.generator > 0 {
            p.insert(
                crate::sources::generator::NAME.into(),
                json!({ "emitted": self.generator }),
            );
        }
        p
    }
}

/// Applies one second's archived events in the server's order.
fn apply_second(p: &mut Processor, rows: &mut Vec<(OrderKey, Option<EventKind>, bytes::Bytes)>) {
    rows.sort_by_key(|r| r.0);
    for (_, hint, raw) in rows.drain(..) {
        if let Ok(ev) = decode(&raw, hint, &DecodeLimits::NONE) {
            p.apply(&ev, &raw);
        }
    }
}

/// Rebuilds the state in `store_path` from the archive at `from`.
pub fn rebuild(
    from: &ArchiveLocation,
    s3: &S3Config,
    store_path: &Path,
    cfg: ProcessorConfig,
) -> anyhow::Result<Rebuilt> {
    use anyhow::Context;
    let started = Instant::now();
    let reader =
        ArchiveReader::open_at(from, s3).with_context(|| format!("opening the archive {from}"))?;
    let mut p = Processor::new(cfg);
    let mut ends = Ends::default();
    let (mut events, mut undecodable) = (0u64, 0u64);
    let mut second = None;
    let mut rows = Vec::new();
    for row in reader {
        let row = row.with_context(|| format!("reading the archive {from}"))?;
        let hint = EventKind::parse(&row.event);
        let key = match decode(&row.raw, hint, &DecodeLimits::NONE) {
            Ok(ev) => OrderKey::of(&ev, &row.raw),
            Err(_) => {
                undecodable += 1;
                continue;
            }
        };
        if second != Some(key.sec) {
            apply_second(&mut p, &mut rows);
            second = Some(key.sec);
        }
        ends.note(&row.source);
        rows.push((key, hint, row.raw));
        events += 1;
    }
    apply_second(&mut p, &mut rows);
    let positions = ends.positions();
    let base = p.snapshot().context("encoding the rebuilt state")?;
    let kept_old = crate::store::move_aside(store_path).with_context(|| {
        format!(
            "moving the old state store {} aside (with its base files)",
            store_path.display()
        )
    })?;
    let store = StateStore::open(store_path)?;
    store.reset(&base, &positions)?;
    Ok(Rebuilt {
        events,
        undecodable,
        users: p.user_count(),
        photos: p.photo_count(),
        positions,
        kept_old,
        took: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_come_from_the_archived_origins() {
        let mut e = Ends::default();
        for s in [
            "kafka:photo-upload/2@41",
            "kafka:photo-upload/2@40",
            "kafka:like/0@7",
            "file:byte 120",
            "file:byte 80",
            "generator",
            "generator",
            "ingest:line 3",
        ] {
            e.note(s);
        }
        let p = e.positions();
        assert_eq!(p["kafka"], json!({"photo-upload/2": 42, "like/0": 8}));
        assert_eq!(p["file"], json!({"offset": 120}));
        assert_eq!(p["generator"], json!({"emitted": 2}));
        assert_eq!(p.len(), 3);
    }
}
