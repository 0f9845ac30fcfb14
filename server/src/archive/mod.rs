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
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedEvent {
    pub kind: EventKind,
    /// The event's own time (`created_time`), UTC milliseconds: decides its partition.
    pub event_time_ms: Millis,
    /// The username the event is keyed by (as in Kafka).
    pub key: String,
    /// The original bytes, exactly as received.
    pub raw: Bytes,
    /// Where it came from (`generator`, `ingest:line 3`, `kafka:like/0@42`, `replay`).
    pub source: String,
}

impl ArchivedEvent {
    /// From a decoded event and the record it came from (what `pipeline::apply_batch`
    /// has at hand for every accepted record).
    pub fn from_decoded(event: &Event<'_>, record: &crate::pipeline::Record) -> Self {
        ArchivedEvent {
            kind: event.kind(),
            event_time_ms: event.time(),
            key: event.key().to_string(),
            raw: record.bytes.clone(),
            source: record.origin.to_string(),
        }
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
