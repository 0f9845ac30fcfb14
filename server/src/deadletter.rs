//! Dead letters: records that could not be applied, kept with their original bytes
//! and the reason, counted by reason, and visible through the API.
//!
//! Where they are kept depends on the mode: a file in embedded mode (one JSON object a
//! line, the bytes in base64 so nothing is lost, plus a UTF-8 preview), a Kafka topic
//! in Kafka mode (the `kafka` module's sink). The in-memory ring of recent ones and the
//! counts serve the health view either way.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use bytes::Bytes;
use instabrand_shared::api::DeadLetterView;
use instabrand_shared::{Millis, Reason};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub reason: Reason,
    pub detail: String,
    /// Where the record came from, e.g. `kafka:like/0@42`, `ingest:line 3`, `generator`.
    pub source: String,
    /// Wall-clock time it was dead-lettered.
    pub at_ms: Millis,
    pub raw: Bytes,
}

/// Somewhere dead letters are kept durably.
pub trait DeadLetterSink: Send {
    fn write(&mut self, batch: &[DeadLetter]) -> io::Result<()>;
}

/// Embedded mode: an NDJSON file, rotated once past a size.
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    written: u64,
    out: BufWriter<File>,
}

#[derive(Serialize)]
struct FileRecord<'a> {
    at_ms: Millis,
    reason: &'a str,
    detail: &'a str,
    source: &'a str,
    raw_base64: String,
    raw_utf8: std::borrow::Cow<'a, str>,
}

impl FileSink {
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let written = f.metadata()?.len();
        Ok(FileSink {
            path: path.into(),
            max_bytes,
            written,
            out: BufWriter::new(f),
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let old = self.path.with_extension("ndjson.1");
        std::fs::rename(&self.path, old)?;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(f);
        self.written = 0;
        Ok(())
    }
}

impl DeadLetterSink for FileSink {
    fn write(&mut self, batch: &[DeadLetter]) -> io::Result<()> {
        for d in batch {
            let rec = FileRecord {
                at_ms: d.at_ms,
                reason: d.reason.code(),
                detail: &d.detail,
                source: &d.source,
                raw_base64: base64::engine::general_purpose::STANDARD.encode(&d.raw),
                raw_utf8: String::from_utf8_lossy(&d.raw),
            };
            let mut line = serde_json::to_vec(&rec).map_err(io::Error::other)?;
            line.push(b'\n');
            if self.written + line.len() as u64 > self.max_bytes && self.written > 0 {
                self.rotate()?;
            }
            self.out.write_all(&line)?;
            self.written += line.len() as u64;
        }
        self.out.flush()
    }
}

/// Counts by reason and the most recent dead letters, for the API.
pub struct DeadLetterLog {
    inner: Mutex<LogInner>,
    keep: usize,
}

#[derive(Default)]
struct LogInner {
    by_reason: BTreeMap<Reason, u64>,
    recent: VecDeque<DeadLetter>,
    sink_errors: u64,
}

impl DeadLetterLog {
    pub fn new(keep: usize) -> Self {
        DeadLetterLog {
            inner: Mutex::new(LogInner::default()),
            keep,
        }
    }

    pub fn record(&self, batch: &[DeadLetter]) {
        let mut g = self.inner.lock().expect("dead letter log poisoned");
        for d in batch {
            *g.by_reason.entry(d.reason).or_default() += 1;
            g.recent.push_back(d.clone());
        }
        while g.recent.len() > self.keep {
            g.recent.pop_front();
        }
    }

    pub fn sink_failed(&self) {
        self.inner
            .lock()
            .expect("dead letter log poisoned")
            .sink_errors += 1;
    }

    pub fn by_reason(&self) -> BTreeMap<Reason, u64> {
        self.inner
            .lock()
            .expect("dead letter log poisoned")
            .by_reason
            .clone()
    }

    pub fn total(&self) -> u64 {
        self.inner
            .lock()
            .expect("dead letter log poisoned")
            .by_reason
            .values()
            .sum()
    }

    pub fn sink_errors(&self) -> u64 {
        self.inner
            .lock()
            .expect("dead letter log poisoned")
            .sink_errors
    }

    /// Newest first.
    pub fn recent(&self, limit: usize) -> Vec<DeadLetterView> {
        let g = self.inner.lock().expect("dead letter log poisoned");
        g.recent
            .iter()
            .rev()
            .take(limit)
            .map(|d| DeadLetterView {
                reason: d.reason.code().into(),
                detail: d.detail.clone(),
                source: d.source.clone(),
                at_ms: d.at_ms,
                raw: String::from_utf8_lossy(&d.raw).into_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dl(raw: &[u8]) -> DeadLetter {
        DeadLetter {
            reason: Reason::NotJson,
            detail: "expected value".into(),
            source: "test".into(),
            at_ms: 1,
            raw: Bytes::copy_from_slice(raw),
        }
    }

    #[test]
    fn the_file_keeps_the_original_bytes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.ndjson");
        let mut sink = FileSink::open(&path, 1 << 20).unwrap();
        let raw: &[u8] = b"\xff\xfe not utf8 {";
        sink.write(&[dl(raw)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["reason"], "not_json");
        let back = base64::engine::general_purpose::STANDARD
            .decode(v["raw_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn the_file_rotates_past_its_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dl.ndjson");
        let mut sink = FileSink::open(&path, 300).unwrap();
        for _ in 0..5 {
            sink.write(&[dl(b"garbage garbage garbage")]).unwrap();
        }
        assert!(dir.path().join("dl.ndjson.1").exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 300);
    }

    #[test]
    fn the_log_counts_by_reason_and_keeps_a_bounded_recent_list() {
        let log = DeadLetterLog::new(2);
        log.record(&[dl(b"a"), dl(b"b"), dl(b"c")]);
        assert_eq!(log.by_reason()[&Reason::NotJson], 3);
        let recent: Vec<_> = log.recent(10).into_iter().map(|d| d.raw).collect();
        assert_eq!(recent, ["c", "b"]);
    }
}
