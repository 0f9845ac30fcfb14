//! The raw-event archive: every accepted event, as the original bytes, written to
//! Parquet files partitioned by the event's own day (`dt=YYYY-MM-DD/`, UTC), so Hive,
//! Presto, Spark or DuckDB can read it later, as the original system's Secor-to-S3
//! archive could be. Dead letters are kept the same way, apart, under
//! `dead-letters/dt=YYYY-MM-DD/` (partitioned by the time they were rejected, since
//! their own time may not parse).
//!
//! Shape of the flow: the pipeline thread calls [`ArchiveHandle::append`] after each
//! batch; a bounded queue carries the records to one writer thread, which buffers them
//! and rolls the buffer into files by record count, by bytes and by age. A full queue
//! blocks the pipeline (back-pressure): nothing is ever dropped, and when the disk
//! refuses a write the writer keeps the records and retries, so the queue fills and
//! the pipeline waits rather than losing data. An object store that is down is the
//! same case: each attempt times out, the records stay, and the writer tries again.
//!
//! Where files go: a local folder by default (`archive.dir`, else `<data_dir>/archive`),
//! or S3-compatible object storage when `archive.s3.bucket` is set (see [`s3`]), the
//! same layout under `archive.s3.prefix`. `serve --archive DIR|s3://BUCKET/PREFIX`
//! picks one from the command line.
//!
//! A file is visible only when complete: locally it is written under a hidden temporary
//! name in its partition, fsynced, then renamed to `part-<run>-<seq>.parquet` and the
//! directory fsynced (see [`store`]); on S3 it is one `PUT`, and an object exists only
//! once its upload has completed. [`ArchiveHandle::flush`] returns once everything appended
//! before it is durable, which is what the state checkpoint waits for, so the archive
//! never lags the state it produced: durable means in such files, or in the local
//! [`spool`] (`archive.spool`, on by default), from which a restarted writer takes them
//! back; so checkpoints do not cut files short and files roll only by size and age.
//! After a crash, events between the last checkpoint and the crash are delivered again
//! (at-least-once) and so may be archived twice; `ingest_time` and `ingest_seq` tell the
//! copies apart.
//!
//! [`reader`] reads an archive back in event-time order for replay
//! (`sources::replay`), from a folder or from `s3://bucket/prefix`.

mod format;
pub mod reader;
pub mod s3;
pub mod spool;
pub mod store;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bytes::Bytes;
use instabrand_shared::{Event, EventKind, Millis};
use serde::{Deserialize, Serialize};

use crate::intake::{Origin, Record};

pub use format::{DEAD_LETTER_COLUMNS, EVENT_COLUMNS};
pub use reader::{ArchiveReader, ArchivedRow, DeadLetterRow, read_dead_letters};
pub use s3::{S3Client, S3Config, S3Location, S3Store};
pub use store::{ArchiveStore, LocalStore};
pub use writer::{Archive, ArchiveHandle, ArchiveStats};

/// The folder under the archive root that holds dead letters, apart from events.
pub const DEAD_LETTER_DIR: &str = "dead-letters";

/// `[archive]` in the TOML file, `INSTABRAND_ARCHIVE__*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveConfig {
    pub enabled: bool,
    /// The archive root; `None` means `<data_dir>/archive`.
    pub dir: Option<PathBuf>,
    /// A file is written once this many records are buffered.
    pub roll_records: usize,
    /// ... or once their raw bytes reach this size ...
    pub roll_bytes: usize,
    /// ... or once the oldest buffered record has waited this long, so a quiet stream
    /// still becomes visible.
    pub roll_secs: u64,
    /// Batches queued for the writer before `append` blocks the pipeline.
    pub queue_batches: usize,
    /// Rows per Parquet row group: what a reader holds in memory per open file.
    pub row_group_records: usize,
    /// After a failed write, wait this long before trying again.
    pub retry_ms: u64,
    /// Make records durable at each checkpoint by appending them to a local spool
    /// instead of writing the Parquet files early (which would make a file per day
    /// partition per checkpoint). Off: every checkpoint closes the files.
    pub spool: bool,
    /// The spool file; `None` means `<data_dir>/archive-spool/spool.bin`. Always on
    /// local disk, also when the archive goes to S3.
    pub spool_file: Option<PathBuf>,
    /// `[archive.s3]`: the archive goes to this bucket instead of `dir` when
    /// `s3.bucket` is set.
    pub s3: S3Config,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            dir: None,
            roll_records: 200_000,
            roll_bytes: 64 << 20,
            roll_secs: 300,
            queue_batches: 64,
            row_group_records: 65_536,
            retry_ms: 1_000,
            spool: true,
            spool_file: None,
            s3: S3Config::default(),
        }
    }
}

impl ArchiveConfig {
    /// The spool file for a server whose data directory is `data_dir`, if spooling.
    pub fn spool_path(&self, data_dir: &Path) -> Option<PathBuf> {
        self.spool.then(|| {
            self.spool_file
                .clone()
                .unwrap_or_else(|| data_dir.join("archive-spool").join("spool.bin"))
        })
    }

    /// The archive root for a server whose data directory is `data_dir`.
    pub fn root(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("archive"))
    }

    /// Where this configuration archives to: the bucket when `s3.bucket` is set.
    pub fn location(&self, data_dir: &Path) -> ArchiveLocation {
        match self.s3.bucket.as_deref().filter(|b| !b.is_empty()) {
            Some(bucket) => ArchiveLocation::S3(S3Location {
                bucket: bucket.to_string(),
                prefix: self.s3.prefix.trim_matches('/').to_string(),
            }),
            None => ArchiveLocation::Dir(self.root(data_dir)),
        }
    }

    /// Archive to `location` (what `serve --archive` sets), keeping the S3 connection
    /// settings.
    pub fn set_location(&mut self, location: ArchiveLocation) {
        match location {
            ArchiveLocation::Dir(dir) => {
                self.dir = Some(dir);
                self.s3.bucket = None;
            }
            ArchiveLocation::S3(S3Location { bucket, prefix }) => {
                self.s3.bucket = Some(bucket);
                self.s3.prefix = prefix;
            }
        }
    }
}

/// An archive's place: a local folder or `s3://bucket/prefix`, as given to
/// `serve --archive` and `replay --from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLocation {
    Dir(PathBuf),
    S3(S3Location),
}

impl FromStr for ArchiveLocation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(loc) = S3Location::parse(s) {
            return loc.map(ArchiveLocation::S3);
        }
        // A typo'd or unsupported scheme must not become a local folder named `gs:`.
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!(
                "{s:?}: {scheme}:// is not supported; give a folder or s3://BUCKET[/PREFIX]"
            ));
        }
        Ok(ArchiveLocation::Dir(PathBuf::from(s)))
    }
}

impl fmt::Display for ArchiveLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveLocation::Dir(p) => write!(f, "{}", p.display()),
            ArchiveLocation::S3(loc) => loc.fmt(f),
        }
    }
}

/// One accepted raw event, as the pipeline hands it over.
///
/// Built on the pipeline thread, the serial bottleneck, for every accepted record, so
/// it copies nothing: the key shares the payload's buffer and the source is formatted
/// only when written, on the archive thread.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedEvent {
    pub kind: EventKind,
    /// The event's own time (`created_time`), UTC milliseconds: decides its partition.
    pub event_time_ms: Millis,
    /// The username the event is keyed by (as in Kafka), UTF-8: usually a slice of
    /// `raw`.
    pub key: Bytes,
    /// The original bytes, exactly as received.
    pub raw: Bytes,
    /// Where it came from (`generator`, `ingest:line 3`, `kafka:like/0@42`, `replay`).
    pub source: EventSource,
}

impl ArchivedEvent {
    /// From a decoded event and the record it came from (what `pipeline::apply_batch`
    /// has at hand for every accepted record).
    pub fn from_decoded(event: &Event<'_>, record: &Record) -> Self {
        ArchivedEvent {
            kind: event.kind(),
            event_time_ms: event.time(),
            key: share_or_copy(&record.bytes, event.key()),
            raw: record.bytes.clone(),
            source: EventSource::Origin(record.origin.clone()),
        }
    }
}

/// `part` as a slice of `whole` when it points into it (a decoded string without JSON
/// escapes borrows from the payload), else a copy.
fn share_or_copy(whole: &Bytes, part: &str) -> Bytes {
    let (start, end) = (
        whole.as_ptr() as usize,
        whole.as_ptr() as usize + whole.len(),
    );
    let p = part.as_ptr() as usize;
    if p >= start && p + part.len() <= end {
        whole.slice_ref(part.as_bytes())
    } else {
        Bytes::copy_from_slice(part.as_bytes())
    }
}

/// The `source` column of an archived event. The pipeline hands over the record's
/// [`Origin`] (a cheap clone: the Kafka topic is shared); the archive thread formats
/// the origins of each batch it receives into one buffer ([`EventSource::Text`]
/// slices of it), and the spool gives back text.
#[derive(Debug, Clone)]
pub enum EventSource {
    Origin(Origin),
    /// UTF-8.
    Text(Bytes),
}

impl EventSource {
    /// The length of the formatted source.
    pub fn len(&self) -> usize {
        match self {
            EventSource::Text(t) => t.len(),
            EventSource::Origin(o) => o.to_string().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The formatted source (a clone of the buffer once formatted).
    pub fn to_text(&self) -> Bytes {
        match self {
            EventSource::Text(t) => t.clone(),
            EventSource::Origin(o) => Bytes::from(o.to_string()),
        }
    }
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventSource::Origin(o) => o.fmt(f),
            EventSource::Text(t) => f.write_str(&String::from_utf8_lossy(t)),
        }
    }
}

/// Equal when they read the same: an origin equals the text it is archived as.
impl PartialEq for EventSource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (EventSource::Text(a), EventSource::Text(b)) => a == b,
            _ => self.to_text() == other.to_text(),
        }
    }
}

impl From<String> for EventSource {
    fn from(s: String) -> Self {
        EventSource::Text(s.into())
    }
}

impl From<&str> for EventSource {
    fn from(s: &str) -> Self {
        EventSource::Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Origin> for EventSource {
    fn from(o: Origin) -> Self {
        EventSource::Origin(o)
    }
}

/// Why the archive could not be started, written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive Parquet {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("archive file {path} is not an Instabrand archive: {detail}")]
    Schema { path: PathBuf, detail: String },
    #[error("the archive writer has stopped")]
    Stopped,
    #[error("the last archive write failed: {0}")]
    WriteFailed(String),
    #[error("invalid archive configuration: {0}")]
    Config(String),
    /// The store did not pass its start-up check (unreachable, no bucket, refused).
    #[error("{0}")]
    Unusable(String),
    #[error("archive on S3: {0}")]
    S3(#[from] s3::S3Error),
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        ArchiveError::Parquet {
            path: path.into(),
            source,
        }
    }
}

/// `dt=YYYY-MM-DD` for a UTC millisecond time.
pub fn partition_of(ms: Millis) -> String {
    format!("dt={}", instabrand_shared::time::format_date(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archived_event_shares_the_payload_and_formats_its_source_when_asked() {
        let limits = instabrand_shared::DecodeLimits::default();
        let origin = Origin::Kafka {
            topic: "like".into(),
            partition: 3,
            offset: 42,
        };
        let raw = br#"{"followed_username": "a", "follower_username": "bob", "photo_id": "2017-06-12 19:42:07", "created_time": "2017-06-22 12:49:09", "event": "like"}"#;
        let record = Record::new(Bytes::from_static(raw), origin.clone());
        let ev = instabrand_shared::decode(&record.bytes, None, &limits).unwrap();
        let a = ArchivedEvent::from_decoded(&ev, &record);
        assert_eq!(a.key, "bob");
        // A slice of the payload, not a copy.
        let at = a.key.as_ptr() as usize - record.bytes.as_ptr() as usize;
        assert_eq!(&raw[at..at + 3], b"bob");
        assert_eq!(a.source.to_string(), "kafka:like/3@42");
        assert_eq!(a.source.len(), "kafka:like/3@42".len());
        assert_eq!(a.source, EventSource::from("kafka:like/3@42"));

        // An escaped username is decoded into a string of its own: copied.
        let raw = br#"{"followed_username": "a", "follower_username": "b\u006fb", "photo_id": "2017-06-12 19:42:07", "created_time": "2017-06-22 12:49:09", "event": "like"}"#;
        let record = Record::new(Bytes::from_static(raw), origin);
        let ev = instabrand_shared::decode(&record.bytes, None, &limits).unwrap();
        assert_eq!(ArchivedEvent::from_decoded(&ev, &record).key, "bob");
    }

    #[test]
    fn a_location_is_a_folder_or_an_s3_url_and_other_schemes_are_refused() {
        assert_eq!(
            "data/archive".parse::<ArchiveLocation>(),
            Ok(ArchiveLocation::Dir("data/archive".into()))
        );
        let s3: ArchiveLocation = "s3://bucket/raw/".parse().unwrap();
        assert_eq!(s3.to_string(), "s3://bucket/raw");
        assert!("gs://bucket/raw".parse::<ArchiveLocation>().is_err());
    }

    #[test]
    fn the_bucket_decides_where_the_archive_goes_and_a_folder_flag_overrides_it() {
        let mut cfg = ArchiveConfig::default();
        assert_eq!(
            cfg.location(Path::new("data")),
            ArchiveLocation::Dir("data/archive".into())
        );
        cfg.set_location("s3://b/p".parse().unwrap());
        assert_eq!(cfg.location(Path::new("data")).to_string(), "s3://b/p");
        cfg.set_location("elsewhere".parse().unwrap());
        assert_eq!(
            cfg.location(Path::new("data")),
            ArchiveLocation::Dir("elsewhere".into())
        );
    }
}
