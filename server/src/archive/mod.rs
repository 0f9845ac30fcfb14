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
//! the pipeline waits rather than losing data.
//!
//! A file is visible only when complete: it is written under a hidden temporary name in
//! its partition, fsynced, then renamed to `part-<run>-<seq>.parquet` and the directory
//! fsynced (see [`store`]). [`ArchiveHandle::flush`] returns once everything appended
//! before it is in such files, which is what the state checkpoint waits for, so the
//! archive never lags the state it produced. After a crash, events between the last
//! checkpoint and the crash are delivered again (at-least-once) and so may be archived
//! twice; `ingest_time` and `ingest_seq` tell the copies apart.
//!
//! [`reader`] reads an archive back in event-time order for replay
//! (`sources::replay`).

mod format;
pub mod reader;
pub mod store;
mod writer;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use instabrand_shared::{Event, EventKind, Millis};
use serde::{Deserialize, Serialize};

pub use format::{DEAD_LETTER_COLUMNS, EVENT_COLUMNS};
pub use reader::{ArchiveReader, ArchivedRow, DeadLetterRow, read_dead_letters};
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
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            dir: None,
            roll_records: 200_000,
            roll_bytes: 64 << 20,
            roll_secs: 60,
            queue_batches: 64,
            row_group_records: 65_536,
            retry_ms: 1_000,
        }
    }
}

impl ArchiveConfig {
    /// The archive root for a server whose data directory is `data_dir`.
    pub fn root(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("archive"))
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
