//! The archive's spool: where buffered records become durable without becoming a file.
//!
//! Every state checkpoint must find the events it covers archived, or a crash after it
//! would lose them from the archive (the source does not deliver them again). Closing
//! the Parquet files at each checkpoint did that, but made a file per day partition
//! every 30 s, however few records: the small-files problem that Hive, Presto and
//! DuckDB pay for on every query. Instead, a checkpoint appends the records buffered
//! since the last one to this local, append-only file and fsyncs it; Parquet files are
//! rolled only by size and age. Once everything buffered is in published files the
//! spool is emptied. At start the writer loads what a crash left in it.
//!
//! Format: frames of `[u32 length][u32 CRC-32][payload]`, little-endian. A torn or
//! damaged frame ends the spool: nothing after it was ever reported durable, so the
//! source delivers those records again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use instabrand_shared::{EventKind, Millis, Reason};

use super::ArchivedEvent;
use crate::deadletter::DeadLetter;

const EVENT: u8 = 0;
const DEAD: u8 = 1;
/// No single record comes near this (messages are limited far below); a larger length
/// can only be damage.
const MAX_FRAME: usize = 64 << 20;

/// A record read back from the spool.
#[derive(Debug, Clone, PartialEq)]
pub enum Spooled {
    Event {
        ev: ArchivedEvent,
        ingest_ms: Millis,
        seq: i64,
    },
    Dead {
        dl: DeadLetter,
        seq: i64,
    },
}

pub struct Spool {
    path: PathBuf,
    file: File,
}

impl Spool {
    /// Opens (creating) the spool at `path`, returns what it holds, and cuts off a torn
    /// tail so new frames follow the last whole one.
    pub fn open(path: &Path) -> io::Result<(Spool, Vec<Spooled>)> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let (records, whole) = decode_frames(&data);
        if whole < data.len() {
            tracing::warn!(
                spool = %path.display(),
                kept = whole,
                dropped = data.len() - whole,
                "archive spool ends in a torn frame; keeping the whole frames before it"
            );
            file.set_len(whole as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok((
            Spool {
                path: path.into(),
                file,
            },
            records,
        ))
    }

    /// Appends frames (from [`encode_event`], [`encode_dead`]) and makes them durable.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        self.file.write_all(frames)?;
        self.file.sync_data()
    }

    /// Empties the spool: everything it held is in published files.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.sync_all()
    }

    /// Replaces the spool's content with `frames` atomically (some records were
    /// published, others are still buffered).
    pub fn replace(&mut self, frames: &[u8]) -> io::Result<()> {
        super::store::write_atomically(&self.path, &self.path.with_extension("tmp"), frames)?;
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Appends one event's frame to `out`.
pub fn encode_event(out: &mut Vec<u8>, ev: &ArchivedEvent, ingest_ms: Millis, seq: i64) {
    frame(out, |p| {
        p.push(EVENT);
        put_bytes(p, ev.kind.as_str().as_bytes());
        p.extend_from_slice(&ev.event_time_ms.to_le_bytes());
        p.extend_from_slice(&ingest_ms.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        put_bytes(p, &ev.key);
        put_bytes(p, &ev.source.to_text());
        put_bytes(p, &ev.raw);
    });
}

/// Appends one dead letter's frame to `out`.
pub fn encode_dead(out: &mut Vec<u8>, dl: &DeadLetter, seq: i64) {
    frame(out, |p| {
        p.push(DEAD);
        put_bytes(p, dl.reason.code().as_bytes());
        put_bytes(p, dl.detail.as_bytes());
        put_bytes(p, dl.source.as_bytes());
        p.extend_from_slice(&dl.at_ms.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        put_bytes(p, &dl.raw);
    });
}

fn frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    fill(out);
    let len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The whole frames at the start of `data`, and how many bytes they span.
fn decode_frames(data: &[u8]) -> (Vec<Spooled>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(header) = data.get(at..at + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(payload) = data.get(at + 8..at + 8 + len).filter(|_| len <= MAX_FRAME) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = decode_payload(payload) else {
            break;
        };
        out.push(record);
        at += 8 + len;
    }
    (out, at)
}

fn decode_payload(p: &[u8]) -> Option<Spooled> {
    let mut r = Reader(p);
    match r.u8()? {
        EVENT => {
            let kind = EventKind::parse(r.str()?)?;
            let event_time_ms = r.i64()?;
            let ingest_ms = r.i64()?;
            let seq = r.i64()?;
            let key = Bytes::copy_from_slice(r.str()?.as_bytes());
            let source = r.str()?.into();
            let raw = Bytes::copy_from_slice(r.bytes()?);
            Some(Spooled::Event {
                ev: ArchivedEvent {
                    kind,
                    event_time_ms,
                    key,
                    raw,
                    source,
                },
                ingest_ms,
                seq,
            })
        }
        DEAD => {
            let code = r.str()?;
            let reason = Reason::ALL.into_iter().find(|x| x.code() == code)?;
            let detail = r.str()?.to_string();
            let source = r.str()?.to_string();
            let at_ms = r.i64()?;
            let seq = r.i64()?;
            let raw = Bytes::copy_from_slice(r.bytes()?);
            Some(Spooled::Dead {
                dl: DeadLetter {
                    reason,
                    detail,
                    source,
                    at_ms,
                    raw,
                },
                seq,
            })
        }
        _ => None,
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        self.take(n)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> ArchivedEvent {
        ArchivedEvent {
            kind: EventKind::Like,
            event_time_ms: 1_497_000_000_000 + n,
            key: format!("user{n}").into(),
            raw: Bytes::from(format!("{{\"n\":{n}}}")),
            source: format!("kafka:like/0@{n}").into(),
        }
    }

    fn dead(n: i64) -> DeadLetter {
        DeadLetter {
            reason: Reason::NotJson,
            detail: "expected value".into(),
            source: format!("ingest:line {n}"),
            at_ms: 1_497_000_000_000 + n,
            raw: Bytes::from_static(b"not json \xff"),
        }
    }

    fn frames() -> Vec<u8> {
        let mut out = Vec::new();
        encode_event(&mut out, &event(1), 10, 0);
        encode_dead(&mut out, &dead(2), 1);
        encode_event(&mut out, &event(3), 11, 2);
        out
    }

    #[test]
    fn records_come_back_as_they_went_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let (mut s, loaded) = Spool::open(&path).unwrap();
        assert!(loaded.is_empty());
        s.append(&frames()).unwrap();
        drop(s);
        let (_, loaded) = Spool::open(&path).unwrap();
        assert_eq!(
            loaded,
            vec![
                Spooled::Event {
                    ev: event(1),
                    ingest_ms: 10,
                    seq: 0
                },
                Spooled::Dead {
                    dl: dead(2),
                    seq: 1
                },
                Spooled::Event {
                    ev: event(3),
                    ingest_ms: 11,
                    seq: 2
                },
            ]
        );
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_whole_frames_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let all = frames();
        // A crash in the middle of the third frame's write.
        fs::write(&path, &all[..all.len() - 5]).unwrap();
        let (mut s, loaded) = Spool::open(&path).unwrap();
        assert_eq!(loaded.len(), 2);
        // New frames follow the last whole one.
        let mut more = Vec::new();
        encode_event(&mut more, &event(4), 12, 3);
        s.append(&more).unwrap();
        drop(s);
        let (_, loaded) = Spool::open(&path).unwrap();
        assert_eq!(loaded.len(), 3);
        assert!(matches!(&loaded[2], Spooled::Event { seq: 3, .. }));
    }

    #[test]
    fn a_damaged_frame_ends_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut all = frames();
        let first_len = u32::from_le_bytes(all[..4].try_into().unwrap()) as usize;
        // Flip a byte inside the second frame's payload.
        all[8 + first_len + 8 + 3] ^= 0x40;
        fs::write(&path, &all).unwrap();
        let (_, loaded) = Spool::open(&path).unwrap();
        assert_eq!(loaded.len(), 1);
    }

    #[test]
    fn clear_and_replace_leave_only_what_is_still_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let (mut s, _) = Spool::open(&path).unwrap();
        s.append(&frames()).unwrap();
        s.clear().unwrap();
        let mut one = Vec::new();
        encode_event(&mut one, &event(9), 13, 8);
        s.append(&one).unwrap();
        drop(s);
        let (mut s, loaded) = Spool::open(&path).unwrap();
        assert_eq!(loaded.len(), 1);
        s.replace(&frames()).unwrap();
        s.append(&one).unwrap();
        drop(s);
        let (_, loaded) = Spool::open(&path).unwrap();
        assert_eq!(loaded.len(), 4);
    }
}
