//! Reading an archive back, in event-time order across files and days, for replay.
//!
//! Days are disjoint in event time, so they are read one after another; within a day
//! every file is already sorted (the writer sorts before writing), so a k-way merge of
//! the day's files yields the day in order. Ties in event time (the original
//! `created_time` has whole seconds) go by ingest time and ingest sequence: the order
//! the events were first accepted in, which is what makes a replay reproduce the
//! original state. Memory: one row group per file of the current day.
//!
//! From S3 (`s3://bucket/prefix`), the same plan is made from a listing; the row
//! counts come from each object's footer (one ranged `GET`), and each day's objects
//! are downloaded into a temporary folder when the merge reaches that day and removed
//! when it moves on, so disk holds one day of files and memory one row group per file.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parquet::data_type::ByteArray;
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::format::{
    self, DEAD_LETTER_COLUMNS, EVENT_COLUMNS, read_byte_arrays, read_i64s, read_strings,
};
use super::s3::{S3Client, S3Config};
use super::{ArchiveError, ArchiveLocation, DEAD_LETTER_DIR};

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
    files: Files,
    /// Each day's files, relative to the root, oldest day first.
    days: Vec<Vec<String>>,
    next_day: usize,
    total_rows: u64,
    file_count: usize,
    merge: Vec<Cursor>,
    heap: BinaryHeap<Reverse<(i64, i64, i64, usize)>>,
}

/// Where the files are read from.
enum Files {
    Dir(PathBuf),
    /// Objects, and the folder holding the current day's downloads.
    S3 {
        client: Box<S3Client>,
        tmp: tempfile::TempDir,
    },
}

/// Enough of an object's end to hold our footers (7 columns, a few row groups) in one
/// request; a larger footer costs a second one.
const FOOTER_GUESS: u64 = 64 << 10;

impl Files {
    /// Rows in one file, from its footer.
    fn rows(&self, rel: &str) -> Result<u64, ArchiveError> {
        match self {
            Files::Dir(root) => {
                let path = root.join(rel);
                Ok(open(&path)?.metadata().file_metadata().num_rows() as u64)
            }
            Files::S3 { client, .. } => {
                let bad = |e| ArchiveError::parquet(rel, e);
                let mut tail = client.get_tail(rel, FOOTER_GUESS)?;
                let footer =
                    FooterTail::try_from(tail.get(tail.len().saturating_sub(8)..).unwrap_or(&[]))
                        .map_err(bad)?;
                let need = footer.metadata_length() as u64 + 8;
                if need > tail.len() as u64 {
                    tail = client.get_tail(rel, need)?;
                }
                let start = tail.len().saturating_sub(need as usize);
                let meta = ParquetMetaDataReader::decode_metadata(&tail[start..tail.len() - 8])
                    .map_err(bad)?;
                Ok(meta.file_metadata().num_rows() as u64)
            }
        }
    }

    /// Local paths of one day's files, valid until the next call.
    fn day(&mut self, rels: &[String]) -> Result<Vec<PathBuf>, ArchiveError> {
        match self {
            Files::Dir(root) => Ok(rels.iter().map(|r| root.join(r)).collect()),
            Files::S3 { client, tmp } => {
                for entry in
                    fs::read_dir(tmp.path()).map_err(|e| ArchiveError::io(tmp.path(), e))?
                {
                    let path = entry.map_err(|e| ArchiveError::io(tmp.path(), e))?.path();
                    fs::remove_file(&path).map_err(|e| ArchiveError::io(&path, e))?;
                }
                let mut out = Vec::with_capacity(rels.len());
                for rel in rels {
                    // `dt=…__part-….parquet`: flat, and errors still name the object.
                    let path = tmp.path().join(rel.replace('/', "__"));
                    let mut f = File::create(&path).map_err(|e| ArchiveError::io(&path, e))?;
                    client.get_to(rel, &mut f)?;
                    out.push(path);
                }
                Ok(out)
            }
        }
    }
}

/// Groups archive-relative names into days: `dt=…/*.parquet` by partition, oldest
/// first, then loose `*.parquet` at the root (a single partition folder opened as the
/// root) as one more day. Hidden names (files still being written) and anything
/// deeper (`dead-letters/…`) are not events.
fn plan(rels: impl IntoIterator<Item = String>) -> Vec<Vec<String>> {
    let mut days: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut loose = Vec::new();
    let is_file = |name: &str| !name.starts_with('.') && name.ends_with(".parquet");
    for rel in rels {
        match rel.split('/').collect::<Vec<_>>()[..] {
            [dir, name] if dir.starts_with("dt=") && is_file(name) => {
                days.entry(dir.to_string()).or_default().push(rel.clone())
            }
            [name] if is_file(name) => loose.push(rel.clone()),
            _ => {}
        }
    }
    let mut out: Vec<Vec<String>> = days.into_values().collect();
    if !loose.is_empty() {
        out.push(loose);
    }
    for day in &mut out {
        day.sort();
    }
    out
}

/// `dt=…/name` and `name` under a local root, for [`plan`].
fn local_names(root: &Path) -> Result<Vec<String>, ArchiveError> {
    let mut out = Vec::new();
    for dir in partitions(root)? {
        let part = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for f in parquet_files(&dir)? {
            out.push(format!(
                "{part}/{}",
                f.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    for f in parquet_files(root)? {
        out.push(
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(out)
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
        let days = plan(local_names(root)?);
        Self::with_files(Files::Dir(root.into()), days)
    }

    /// Opens a folder or `s3://bucket/prefix`; `s3` gives the S3 connection settings
    /// (endpoint, region, credentials, timeouts). Blocking: lists and reads footers.
    pub fn open_at(location: &ArchiveLocation, s3: &S3Config) -> Result<Self, ArchiveError> {
        match location {
            ArchiveLocation::Dir(root) => Self::open(root),
            ArchiveLocation::S3(loc) => {
                let client = S3Client::new(s3, loc.clone())?;
                let days = plan(client.list()?.into_iter().map(|o| o.rel));
                let tmp = tempfile::Builder::new()
                    .prefix("instabrand-replay-")
                    .tempdir()
                    .map_err(|e| ArchiveError::io(std::env::temp_dir(), e))?;
                Self::with_files(
                    Files::S3 {
                        client: Box::new(client),
                        tmp,
                    },
                    days,
                )
            }
        }
    }

    fn with_files(files: Files, days: Vec<Vec<String>>) -> Result<Self, ArchiveError> {
        let mut total_rows = 0u64;
        let mut count = 0;
        for rel in days.iter().flatten() {
            total_rows += files.rows(rel)?;
            count += 1;
        }
        Ok(ArchiveReader {
            files,
            days,
            next_day: 0,
            total_rows,
            file_count: count,
            merge: Vec::new(),
            heap: BinaryHeap::new(),
        })
    }

    /// Events in the archive (from the files' footers, without reading them).
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    pub fn files(&self) -> usize {
        self.file_count
    }

    fn start_day(&mut self) -> Result<bool, ArchiveError> {
        let Some(rels) = self.days.get(self.next_day) else {
            return Ok(false);
        };
        self.next_day += 1;
        self.merge.clear();
        self.heap.clear();
        for path in self.files.day(rels)? {
            let mut c = Cursor::new(path);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_planned_from_names_oldest_first_without_dead_letters_or_unfinished_files() {
        let names = [
            "dt=2017-06-13/part-2.parquet",
            "dt=2017-06-12/part-9.parquet",
            "dt=2017-06-12/part-1.parquet",
            "dt=2017-06-12/.part-3.parquet.tmp",
            "dead-letters/dt=2017-06-12/part-4.parquet",
            "dt=2017-06-12/notes.txt",
            "loose.parquet",
        ];
        assert_eq!(
            plan(names.iter().map(|s| s.to_string())),
            vec![
                vec![
                    "dt=2017-06-12/part-1.parquet".to_string(),
                    "dt=2017-06-12/part-9.parquet".to_string()
                ],
                vec!["dt=2017-06-13/part-2.parquet".to_string()],
                vec!["loose.parquet".to_string()],
            ]
        );
    }
}
