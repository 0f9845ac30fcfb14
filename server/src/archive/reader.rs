//! Reading an archive back, in event-time order across files and days, for replay.
//!
//! Days are disjoint in event time, so they are read one after another; within a day
//! every file is already sorted (the writer sorts before writing), so a k-way merge of
//! the day's files yields the day in order. Ties in event time (the original
//! `created_time` has whole seconds) go by ingest time and ingest sequence: the order
//! the events were first accepted in, which is what makes a replay reproduce the
//! original state. Memory: one row group per file of the current day.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::format::{
    self, DEAD_LETTER_COLUMNS, EVENT_COLUMNS, read_byte_arrays, read_i64s, read_strings,
};
use super::{ArchiveError, DEAD_LETTER_DIR};

/// One archived event as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedRow {
    pub event: String,
    pub event_time_ms: i64,
    pub username: String,
    pub source: String,
    pub ingest_time_ms: i64,
    pub ingest_seq: i64,
    /// The original bytes.
    pub raw: Bytes,
}

/// One archived dead letter as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRow {
    pub reason: String,
    pub detail: String,
    pub source: String,
    pub time_ms: i64,
    pub raw: Bytes,
}

/// The archive's event files, read in event-time order.
pub struct ArchiveReader {
    /// Each day's files, oldest day first.
    days: Vec<Vec<PathBuf>>,
    next_day: usize,
    total_rows: u64,
    files: usize,
    merge: Vec<Cursor>,
    heap: BinaryHeap<Reverse<(i64, i64, i64, usize)>>,
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| ArchiveError::io(dir, e))? {
        let entry = entry.map_err(|e| ArchiveError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Hidden names are files still being written (or left by a crash).
        if !name.starts_with('.') && name.ends_with(".parquet") && entry.path().is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// `dt=…` folders directly under `root`, oldest first (the names sort as dates).
fn partitions(root: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| ArchiveError::io(root, e))? {
        let entry = entry.map_err(|e| ArchiveError::io(root, e))?;
        if entry.file_name().to_string_lossy().starts_with("dt=") && entry.path().is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn open(path: &Path) -> Result<SerializedFileReader<File>, ArchiveError> {
    let f = File::open(path).map_err(|e| ArchiveError::io(path, e))?;
    SerializedFileReader::new(f).map_err(|e| ArchiveError::parquet(path, e))
}

impl ArchiveReader {
    /// Opens an archive root (the folder holding `dt=…/`), or a single partition folder.
    /// Dead letters are not events and are skipped.
    pub fn open(root: &Path) -> Result<Self, ArchiveError> {
        let mut days = Vec::new();
        for dir in partitions(root)? {
            let files = parquet_files(&dir)?;
            if !files.is_empty() {
                days.push(files);
            }
        }
        let loose = parquet_files(root)?;
        if !loose.is_empty() {
            days.push(loose);
        }
        let mut total_rows = 0u64;
        let mut files = 0;
        for path in days.iter().flatten() {
            let r = open(path)?;
            total_rows += r.metadata().file_metadata().num_rows() as u64;
            files += 1;
        }
        Ok(ArchiveReader {
            days,
            next_day: 0,
            total_rows,
            files,
            merge: Vec::new(),
            heap: BinaryHeap::new(),
        })
    }

    /// Events in the archive (from the files' footers, without reading them).
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    pub fn files(&self) -> usize {
        self.files
    }

    fn start_day(&mut self) -> Result<bool, ArchiveError> {
        let Some(files) = self.days.get(self.next_day) else {
            return Ok(false);
        };
        self.next_day += 1;
        self.merge.clear();
        self.heap.clear();
        for path in files {
            let mut c = Cursor::new(path.clone());
            if let Some(key) = c.peek()? {
                self.heap
                    .push(Reverse((key.0, key.1, key.2, self.merge.len())));
            }
            self.merge.push(c);
        }
        Ok(true)
    }

    fn next_row(&mut self) -> Result<Option<ArchivedRow>, ArchiveError> {
        loop {
            if let Some(Reverse((_, _, _, i))) = self.heap.pop() {
                let c = &mut self.merge[i];
                let row = c.take();
                if let Some(key) = c.peek()? {
                    self.heap.push(Reverse((key.0, key.1, key.2, i)));
                }
                return Ok(Some(row));
            }
            if !self.start_day()? {
                return Ok(None);
            }
        }
    }
}

impl Iterator for ArchiveReader {
    type Item = Result<ArchivedRow, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_row() {
            Ok(row) => row.map(Ok),
            Err(e) => {
                // Stop after an error rather than skip part of the history.
                self.days.clear();
                self.heap.clear();
                Some(Err(e))
            }
        }
    }
}

/// One file's current row group. The file is reopened per row group, so a day of many
/// small files does not hold one descriptor each.
struct Cursor {
    path: PathBuf,
    next_group: usize,
    groups: Option<usize>,
    pos: usize,
    event: Vec<ByteArray>,
    event_time: Vec<i64>,
    username: Vec<ByteArray>,
    source: Vec<ByteArray>,
    ingest_time: Vec<i64>,
    seq: Vec<i64>,
    raw: Vec<ByteArray>,
}

fn text(b: &ByteArray) -> String {
    String::from_utf8_lossy(b.data()).into_owned()
}

impl Cursor {
    fn new(path: PathBuf) -> Self {
        Cursor {
            path,
            next_group: 0,
            groups: None,
            pos: 0,
            event: Vec::new(),
            event_time: Vec::new(),
            username: Vec::new(),
            source: Vec::new(),
            ingest_time: Vec::new(),
            seq: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// The sort key of the current row, loading the next row group when needed.
    fn peek(&mut self) -> Result<Option<(i64, i64, i64)>, ArchiveError> {
        while self.pos >= self.event_time.len() {
            if self.groups.is_some_and(|n| self.next_group >= n) {
                return Ok(None);
            }
            self.load()?;
        }
        let i = self.pos;
        Ok(Some((self.event_time[i], self.ingest_time[i], self.seq[i])))
    }

    fn load(&mut self) -> Result<(), ArchiveError> {
        let path = self.path.clone();
        let pq = |e| ArchiveError::parquet(&path, e);
        let reader = open(&self.path)?;
        let groups = reader.num_row_groups();
        self.groups = Some(groups);
        self.pos = 0;
        self.event_time.clear();
        if self.next_group >= groups {
            return Ok(());
        }
        let rg = reader.get_row_group(self.next_group).map_err(pq)?;
        self.next_group += 1;
        format::check_columns(rg.as_ref(), &EVENT_COLUMNS).map_err(|detail| {
            ArchiveError::Schema {
                path: self.path.clone(),
                detail,
            }
        })?;
        let rg = rg.as_ref();
        self.event = read_byte_arrays(rg, 0).map_err(pq)?;
        self.event_time = read_i64s(rg, 1).map_err(pq)?;
        self.username = read_byte_arrays(rg, 2).map_err(pq)?;
        self.source = read_byte_arrays(rg, 3).map_err(pq)?;
        self.ingest_time = read_i64s(rg, 4).map_err(pq)?;
        self.seq = read_i64s(rg, 5).map_err(pq)?;
        self.raw = read_byte_arrays(rg, 6).map_err(pq)?;
        let n = self.event_time.len();
        if [
            self.event.len(),
            self.username.len(),
            self.source.len(),
            self.ingest_time.len(),
            self.seq.len(),
            self.raw.len(),
        ]
        .iter()
        .any(|&len| len != n)
        {
            return Err(ArchiveError::Schema {
                path: self.path.clone(),
                detail: "columns of different lengths".into(),
            });
        }
        Ok(())
    }

    fn take(&mut self) -> ArchivedRow {
        let i = self.pos;
        self.pos += 1;
        ArchivedRow {
            event: text(&self.event[i]),
            event_time_ms: self.event_time[i],
            username: text(&self.username[i]),
            source: text(&self.source[i]),
            ingest_time_ms: self.ingest_time[i],
            ingest_seq: self.seq[i],
            raw: Bytes::copy_from_slice(self.raw[i].data()),
        }
    }
}

/// Every dead letter under `<root>/dead-letters/`, oldest partition first, in file order.
pub fn read_dead_letters(root: &Path) -> Result<Vec<DeadLetterRow>, ArchiveError> {
    let dir = root.join(DEAD_LETTER_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in partitions(&dir)? {
        for path in parquet_files(&part)? {
            let reader = open(&path)?;
            let pq = |e| ArchiveError::parquet(&path, e);
            for g in 0..reader.num_row_groups() {
                let rg = reader.get_row_group(g).map_err(pq)?;
                let rg = rg.as_ref();
                format::check_columns(rg, &DEAD_LETTER_COLUMNS).map_err(|detail| {
                    ArchiveError::Schema {
                        path: path.clone(),
                        detail,
                    }
                })?;
                let reason = read_strings(rg, 0).map_err(pq)?;
                let detail = read_strings(rg, 1).map_err(pq)?;
                let source = read_strings(rg, 2).map_err(pq)?;
                let time = read_i64s(rg, 3).map_err(pq)?;
                let raw = read_byte_arrays(rg, 5).map_err(pq)?;
                for i in 0..reason.len() {
                    out.push(DeadLetterRow {
                        reason: reason[i].clone(),
                        detail: detail[i].clone(),
                        source: source[i].clone(),
                        time_ms: time[i],
                        raw: Bytes::copy_from_slice(raw[i].data()),
                    });
                }
            }
        }
    }
    Ok(out)
}
