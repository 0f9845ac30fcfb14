//! The state store: a base snapshot of the processor's state plus a changelog of the
//! events applied since, saved together with the sources' positions.
//!
//! A checkpoint writes one changelog entry (the events applied since the previous
//! checkpoint, in applied order) to a file of its own (`state.redb.log-<n>`, synced),
//! then one redb write transaction lists it (length and CRC-32) with the events held
//! for ordering and the positions: its cost follows the rate of change, not the size
//! of the state, and applying never stops to serialize the state. The processor is a
//! deterministic function of the events in order, so base + changelog is the state.
//! In the background the changelog is compacted ([`crate::checkpoint`]): a new base is
//! streamed into a file of its own (`state.redb.base-<n>`, written to a temporary
//! name, synced, renamed), then one transaction points the store at it and drops the
//! entries it covers, and their files and the old base go. redb is a pure-Rust,
//! crash-safe (copy-on-write B-tree, checksummed commits) embedded store, so a kill -9
//! mid-write leaves the previous checkpoint; a file it does not list is deleted at the
//! next start, and one it lists is checked against its length and CRC-32, so a
//! damaged one is found, not decoded.
//!
//! Why the bytes live outside redb: a copy-on-write B-tree keeps old pages until a
//! commit and grows its file by doubling, and never gives space back on its own, so a
//! store of base + changelog in redb took several times what it held (268 MB of file
//! for 75 MB of changelog). Files are written once, read once at start, and deleted
//! whole, so the store on disk is what it holds, plus the new base while it is written.
//!
//! A damaged file or one written in another format is reported with what to do
//! (`instabrand rebuild`), never dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// Source name -> its position (a Kafka offset map, a file offset, a sequence number).
pub type Positions = BTreeMap<String, serde_json::Value>;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Changelog entries after the base, by sequence number: each entry's length and
/// CRC-32 (the bytes are in a file of their own, `<store>.log-<seq>`).
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Where formats up to v4 kept one whole snapshot; only read to say what it is.
const OLD_CHECKPOINT: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoint");

/// Bumped whenever the layout or the snapshot's encoding changes.
pub const FORMAT: &[u8] = b"instabrand-state-v7";

/// redb's page cache. It holds only the changelog's index, the held events and the
/// positions, written and read back rarely; its default (1 GiB) let resident memory
/// follow the file.
const REDB_CACHE_BYTES: usize = 32 << 20;

/// What to do when the store cannot be used, shown with every such error.
pub const REBUILD_HINT: &str = "The events are still in the archive and in Kafka: rebuild the state with \
`instabrand rebuild` (from the archive), or move the file away and start again to re-read \
the Kafka topics from their earliest offsets (README, \"Rebuilding the state\").";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {detail}")]
    Db { path: String, detail: String },
    #[error("the state store {path} is damaged ({detail}). {hint}", hint = REBUILD_HINT)]
    Damaged { path: String, detail: String },
    #[error(
        "the state store {path} was written in format {found:?}; this build reads {expected:?} \
         and does not convert it. Nothing was changed. {hint}",
        expected = String::from_utf8_lossy(FORMAT),
        hint = REBUILD_HINT
    )]
    Format { path: String, found: String },
    #[error("the state store {0} is in use by another instance (one state file per process)")]
    InUse(String),
    #[error("state store: bad positions record: {0}")]
    Positions(#[from] serde_json::Error),
}

impl StoreError {
    pub fn damaged(path: &Path, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Damaged {
            path: path.display().to_string(),
            detail: detail.to_string(),
        }
    }
}

/// What the store holds: restore `base`, then replay `log` in order.
pub struct Loaded {
    pub base: Option<Vec<u8>>,
    /// Changelog entries after the base, oldest first.
    pub log: Vec<Vec<u8>>,
    /// Events read but still waiting for the other inputs (the aligner's), encoded by
    /// the pipeline: the positions are past them, so they are kept here.
    pub held: Vec<u8>,
    pub positions: Positions,
}

/// What a compaction starts from: the base and the entries through `through`.
pub struct CompactionInput {
    pub base: Option<Vec<u8>>,
    pub log: Vec<Vec<u8>>,
    pub through: u64,
}

/// How much the store holds, for the compaction policy and the health view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSizes {
    pub base_bytes: u64,
    pub log_bytes: u64,
    pub log_entries: u64,
    /// The file on disk.
    pub file_bytes: u64,
    /// The number of the newest changelog entry (or of the last one the base covers;
    /// 0: none yet). Entries are numbered from 1 without gaps.
    pub last_entry: u64,
}

impl StoreSizes {
    /// What the file must hold: the base and the changelog.
    pub fn live_bytes(&self) -> u64 {
        self.base_bytes + self.log_bytes
    }
}

pub struct StateStore {
    /// Behind a lock because redb's in-place file compaction needs `&mut`; every
    /// transaction takes the lock only to begin (reads) or for its duration (writes).
    db: Mutex<Database>,
    path: PathBuf,
}

fn u64_of(v: Option<redb::AccessGuard<'_, &[u8]>>) -> u64 {
    v.and_then(|g| <[u8; 8]>::try_from(g.value()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

impl StateStore {
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        }
        let db = redb::Builder::new()
            .set_cache_size(REDB_CACHE_BYTES)
            .create(path)
            .map_err(|e| classify(path, e.into()))?;
        Ok(StateStore {
            db: Mutex::new(db),
            path: path.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        classify(&self.path, e.into())
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Database> {
        self.db.lock().expect("state store lock poisoned")
    }

    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db().begin_read().map_err(|e| self.err(e))
    }

    /// The base, the changelog and the positions, if a checkpoint was ever written.
    pub fn load(&self) -> Result<Option<Loaded>, StoreError> {
        let txn = self.read()?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return match self.old_format(&txn)? {
                    Some(found) => Err(StoreError::Format {
                        path: self.path.display().to_string(),
                        found,
                    }),
                    None => Ok(None),
                };
            }
            Err(e) => return Err(self.err(e)),
        };
        let get = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(meta
                .get(k)
                .map_err(|e| self.err(e))?
                .map(|v| v.value().to_vec()))
        };
        let Some(format) = get("format")? else {
            return Ok(None);
        };
        if format != FORMAT {
            return Err(StoreError::Format {
                path: self.path.display().to_string(),
                found: String::from_utf8_lossy(&format).into_owned(),
            });
        }
        let held = get("held")?.unwrap_or_default();
        let positions = match get("positions")? {
            Some(p) => serde_json::from_slice(&p)?,
            None => Positions::new(),
        };
        let base = self.read_base(&txn)?;
        let log = self.read_log(&txn, u64::MAX)?;
        // At start nothing else writes: a base file the store does not point at was
        // replaced, or left half-written by a crash.
        let keep = self.base_ref(&meta)?.map(|r| r.0);
        self.remove_stale_bases(keep.as_deref());
        let listed: std::collections::BTreeSet<u64> = match txn.open_table(LOG) {
            Ok(t) => t
                .iter()
                .map_err(|e| self.err(e))?
                .map(|e| e.map(|(k, _)| k.value()).map_err(|e| self.err(e)))
                .collect::<Result<_, _>>()?,
            Err(_) => Default::default(),
        };
        self.remove_log_files(|seq| listed.contains(&seq));
        Ok(Some(Loaded {
            base,
            log,
            held,
            positions,
        }))
    }

    /// The format name an older build left, if any.
    fn old_format(&self, txn: &redb::ReadTransaction) -> Result<Option<String>, StoreError> {
        match txn.open_table(OLD_CHECKPOINT) {
            Ok(t) => Ok(t
                .get("format")
                .map_err(|e| self.err(e))?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The current base file's name (`None`: no base yet), length and CRC-32.
    fn base_ref(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Option<(String, u64, u32)>, StoreError> {
        let Some(name) = meta.get("base_file").map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(name.value()).into_owned();
        let len = u64_of(meta.get("base_bytes").map_err(|e| self.err(e))?);
        let crc = u64_of(meta.get("base_crc").map_err(|e| self.err(e))?) as u32;
        Ok(Some((name, len, crc)))
    }

    fn read_base(&self, txn: &redb::ReadTransaction) -> Result<Option<Vec<u8>>, StoreError> {
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let Some((name, len, crc)) = self.base_ref(&meta)? else {
            return Ok(None);
        };
        self.read_checked("base", &self.sibling(&name), len, crc)
            .map(Some)
    }

    /// A file the store lists (`what`: base or changelog), checked against the
    /// length and CRC-32 the store holds for it.
    fn read_checked(
        &self,
        what: &str,
        path: &Path,
        len: u64,
        crc: u32,
    ) -> Result<Vec<u8>, StoreError> {
        let bytes = std::fs::read(path).map_err(|e| {
            StoreError::damaged(
                &self.path,
                format_args!("its {what} {}: {e}", path.display()),
            )
        })?;
        if bytes.len() as u64 != len || crc32fast::hash(&bytes) != crc {
            return Err(StoreError::damaged(
                &self.path,
                format_args!(
                    "its {what} {} does not match its length and checksum",
                    path.display()
                ),
            ));
        }
        Ok(bytes)
    }

    /// A file beside the store's.
    fn sibling(&self, name: &str) -> PathBuf {
        self.path.with_file_name(name)
    }

    /// Base files are `<store file name>.base-<generation>`.
    fn base_prefix(&self) -> String {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        format!("{name}.base-")
    }

    /// Base files (and unfinished `.tmp` ones) beside the store: name and size.
    fn base_files(&self) -> Vec<(String, u64)> {
        self.files_with_prefix(&self.base_prefix())
    }

    /// Files beside the store whose names start with `prefix`: name and size.
    fn files_with_prefix(&self, prefix: &str) -> Vec<(String, u64)> {
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty());
        let Ok(entries) = std::fs::read_dir(dir.unwrap_or(Path::new("."))) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let len = e.metadata().ok()?.len();
                name.starts_with(prefix).then_some((name, len))
            })
            .collect()
    }

    /// Deletes base files other than `keep`: ones a compaction replaced, or left
    /// unfinished by a crash before its transaction committed.
    fn remove_stale_bases(&self, keep: Option<&str>) {
        for (name, _) in self.base_files() {
            if Some(name.as_str()) != keep
                && let Err(e) = std::fs::remove_file(self.sibling(&name))
            {
                tracing::warn!(file = %name, error = %e, "could not delete an old base file");
            }
        }
    }

    fn read_log(
        &self,
        txn: &redb::ReadTransaction,
        through: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let table = match txn.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut log = Vec::new();
        for entry in table.range(..=through).map_err(|e| self.err(e))? {
            let (seq, r) = entry.map_err(|e| self.err(e))?;
            let (len, crc) = log_ref(r.value()).ok_or_else(|| {
                StoreError::damaged(&self.path, "a changelog record is malformed")
            })?;
            log.push(self.read_checked("changelog", &self.log_path(seq.value()), len, crc)?);
        }
        Ok(log)
    }

    /// Changelog entry `seq`'s file.
    fn log_path(&self, seq: u64) -> PathBuf {
        self.sibling(&format!("{}{seq}", self.log_prefix()))
    }

    fn log_prefix(&self) -> String {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        format!("{name}.log-")
    }

    /// Deletes changelog files the store does not list: `keep` says which it does.
    fn remove_log_files(&self, keep: impl Fn(u64) -> bool) {
        let prefix = self.log_prefix();
        for (name, _) in self.files_with_prefix(&prefix) {
            let seq = name[prefix.len()..].parse::<u64>().ok();
            if seq.is_some_and(&keep) {
                continue;
            }
            if let Err(e) = std::fs::remove_file(self.sibling(&name)) {
                tracing::warn!(file = %name, error = %e, "could not delete a changelog file");
            }
        }
    }

    /// Syncs the data dir, so that files created or renamed in it survive a power cut.
    fn sync_dir(&self) -> std::io::Result<()> {
        match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
            None => Ok(()),
        }
    }

    /// One checkpoint: a changelog entry (may be empty: only the positions moved), the
    /// held events and the positions, atomically and durably.
    pub fn append(
        &self,
        entry: &[u8],
        held: &[u8],
        positions: &Positions,
    ) -> Result<StoreSizes, StoreError> {
        let pos = serde_json::to_vec(positions)?;
        let db = self.db();
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        let sizes = {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut log = txn.open_table(LOG).map_err(|e| self.err(e))?;
            meta.insert("format", FORMAT).map_err(|e| self.err(e))?;
            let mut last = match log.last().map_err(|e| self.err(e))? {
                Some((k, _)) => k.value(),
                None => u64_of(meta.get("base_seq").map_err(|e| self.err(e))?),
            };
            if !entry.is_empty() {
                last += 1;
                // The bytes go to a file of their own, synced before the transaction
                // that lists them commits: a crash in between leaves a file nobody
                // lists, deleted at the next start (and overwritten before that).
                let path = self.log_path(last);
                std::fs::write(&path, entry)
                    .and_then(|()| std::fs::File::open(&path)?.sync_all())
                    .and_then(|()| self.sync_dir())
                    .map_err(|e| StoreError::Db {
                        path: self.path.display().to_string(),
                        detail: format!("writing changelog entry {}: {e}", path.display()),
                    })?;
                let r = encode_log_ref(entry.len() as u64, crc32fast::hash(entry));
                log.insert(last, r.as_slice()).map_err(|e| self.err(e))?;
                let total =
                    u64_of(meta.get("log_bytes").map_err(|e| self.err(e))?) + entry.len() as u64;
                meta.insert("log_bytes", total.to_le_bytes().as_slice())
                    .map_err(|e| self.err(e))?;
            }
            meta.insert("held", held).map_err(|e| self.err(e))?;
            meta.insert("positions", pos.as_slice())
                .map_err(|e| self.err(e))?;
            StoreSizes {
                base_bytes: u64_of(meta.get("base_bytes").map_err(|e| self.err(e))?),
                log_bytes: u64_of(meta.get("log_bytes").map_err(|e| self.err(e))?),
                log_entries: log.len().map_err(|e| self.err(e))?,
                file_bytes: self.file_bytes(),
                last_entry: last,
            }
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(sizes)
    }

    /// The base and every changelog entry so far; the writer goes on appending after them.
    pub fn compaction_input(&self) -> Result<CompactionInput, StoreError> {
        let txn = self.read()?;
        let through = match txn.open_table(LOG) {
            Ok(t) => t
                .last()
                .map_err(|e| self.err(e))?
                .map(|(k, _)| k.value())
                .unwrap_or(0),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(self.err(e)),
        };
        Ok(CompactionInput {
            base: self.read_base(&txn)?,
            log: self.read_log(&txn, through)?,
            through,
        })
    }

    /// Makes `base` (the state after the entries through `through`) the new base and
    /// deletes those entries.
    pub fn install_base(&self, through: u64, base: &[u8]) -> Result<StoreSizes, StoreError> {
        self.install_base_with(through, |w| w.write_all(base))
    }

    /// As [`Self::install_base`], the base streamed by `write` into its file: no copy of
    /// it is held in memory. The file is synced and renamed before one transaction
    /// points the store at it and deletes the entries it covers; only then does the
    /// old base go. A crash at any point leaves the previous base or the new one.
    pub fn install_base_with(
        &self,
        through: u64,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<StoreSizes, StoreError> {
        let io_err = |what: &str, e: std::io::Error| StoreError::Db {
            path: self.path.display().to_string(),
            detail: format!("{what}: {e}"),
        };
        let generation = {
            let txn = self.read()?;
            match txn.open_table(META) {
                Ok(meta) => u64_of(meta.get("base_gen").map_err(|e| self.err(e))?) + 1,
                Err(redb::TableError::TableDoesNotExist(_)) => 1,
                Err(e) => return Err(self.err(e)),
            }
        };
        let name = format!("{}{generation}", self.base_prefix());
        let tmp = self.sibling(&format!("{name}.tmp"));
        let (len, crc) = {
            let file = std::fs::File::create(&tmp).map_err(|e| io_err("creating a base", e))?;
            let mut out = Checksummed {
                inner: std::io::BufWriter::with_capacity(1 << 20, file),
                crc: crc32fast::Hasher::new(),
                len: 0,
            };
            write(&mut out).map_err(|e| io_err("writing a base", e))?;
            let file = out
                .inner
                .into_inner()
                .map_err(|e| io_err("writing a base", e.into_error()))?;
            file.sync_all().map_err(|e| io_err("syncing a base", e))?;
            (out.len, out.crc.finalize())
        };
        std::fs::rename(&tmp, self.sibling(&name)).map_err(|e| io_err("naming a base", e))?;
        // The rename itself must survive a power cut before redb points at it.
        self.sync_dir()
            .map_err(|e| io_err("syncing the data dir", e))?;
        let db = self.db();
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        let sizes = {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut log = txn.open_table(LOG).map_err(|e| self.err(e))?;
            log.retain_in(..=through, |_, _| false)
                .map_err(|e| self.err(e))?;
            let mut rest = 0u64;
            for e in log.iter().map_err(|e| self.err(e))? {
                let r = e.map_err(|e| self.err(e))?.1;
                rest += log_ref(r.value()).map_or(0, |(len, _)| len);
            }
            let mut put =
                |k: &str, v: &[u8]| meta.insert(k, v).map(|_| ()).map_err(|e| self.err(e));
            put("format", FORMAT)?;
            put("base_file", name.as_bytes())?;
            put("base_gen", &generation.to_le_bytes())?;
            put("base_seq", &through.to_le_bytes())?;
            put("base_bytes", &len.to_le_bytes())?;
            put("base_crc", &u64::from(crc).to_le_bytes())?;
            put("log_bytes", &rest.to_le_bytes())?;
            StoreSizes {
                base_bytes: len,
                log_bytes: rest,
                log_entries: log.len().map_err(|e| self.err(e))?,
                file_bytes: 0,
                last_entry: log
                    .last()
                    .map_err(|e| self.err(e))?
                    .map_or(through, |(k, _)| k.value()),
            }
        };
        txn.commit().map_err(|e| self.err(e))?;
        drop(db);
        self.remove_stale_bases(Some(&name));
        self.remove_log_files(|seq| seq > through);
        Ok(StoreSizes {
            file_bytes: self.file_bytes(),
            ..sizes
        })
    }

    /// Replaces everything with `base` and `positions` (a rebuilt state).
    pub fn reset(&self, base: &[u8], positions: &Positions) -> Result<(), StoreError> {
        {
            let db = self.db();
            let txn = db.begin_write().map_err(|e| self.err(e))?;
            {
                let mut log = txn.open_table(LOG).map_err(|e| self.err(e))?;
                log.retain(|_, _| false).map_err(|e| self.err(e))?;
                let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
                meta.insert("held", [].as_slice())
                    .map_err(|e| self.err(e))?;
                meta.insert("positions", serde_json::to_vec(positions)?.as_slice())
                    .map_err(|e| self.err(e))?;
                meta.insert("base_seq", 0u64.to_le_bytes().as_slice())
                    .map_err(|e| self.err(e))?;
            }
            txn.commit().map_err(|e| self.err(e))?;
        }
        self.remove_log_files(|_| false);
        self.install_base(0, base)?;
        self.shrink_if_needed()?;
        Ok(())
    }

    /// What the store holds now.
    pub fn sizes(&self) -> Result<StoreSizes, StoreError> {
        let txn = self.read()?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(StoreSizes::default()),
            Err(e) => return Err(self.err(e)),
        };
        let (log_entries, last) = match txn.open_table(LOG) {
            Ok(t) => (
                t.len().map_err(|e| self.err(e))?,
                t.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value()),
            ),
            Err(_) => (0, None),
        };
        let base_seq = u64_of(meta.get("base_seq").map_err(|e| self.err(e))?);
        Ok(StoreSizes {
            base_bytes: u64_of(meta.get("base_bytes").map_err(|e| self.err(e))?),
            log_bytes: u64_of(meta.get("log_bytes").map_err(|e| self.err(e))?),
            log_entries,
            file_bytes: self.file_bytes(),
            last_entry: last.unwrap_or(base_seq),
        })
    }

    /// The store on disk: the redb file, its base file (two while a new base is being
    /// written) and its changelog files.
    pub fn file_bytes(&self) -> u64 {
        let db = self.db_file_bytes();
        let files = |prefix: String| -> u64 {
            self.files_with_prefix(&prefix)
                .iter()
                .map(|(_, len)| len)
                .sum()
        };
        db + files(self.base_prefix()) + files(self.log_prefix())
    }

    /// The redb file alone: the changelog's index, the held events and the positions.
    fn db_file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Compacts the redb file in place when it is more than twice what it holds (the
    /// held events, mostly) plus a little slack: a backlog's held events came and went.
    /// Blocks checkpoints while it runs; `true` if it did.
    pub fn shrink_if_needed(&self) -> Result<bool, StoreError> {
        let held = {
            let txn = self.read()?;
            match txn.open_table(META) {
                Ok(meta) => meta
                    .get("held")
                    .map_err(|e| self.err(e))?
                    .map_or(0, |v| v.value().len() as u64),
                Err(_) => 0,
            }
        };
        if self.db_file_bytes() <= 2 * held + (8 << 20) {
            return Ok(false);
        }
        let mut db = self.db();
        // redb compacts only with no transaction in flight; a reader that just began
        // makes this a no-op until the next time.
        match db.compact() {
            Ok(done) => Ok(done),
            Err(redb::CompactionError::TransactionInProgress) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }
}

/// Moves the store at `path` (the redb file, its base and changelog files) into a new folder
/// `<path>.damaged-<unix seconds>` beside it, as it was, so it can be inspected or
/// opened again; `None` if there is no store there.
pub fn move_aside(path: &Path) -> std::io::Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{secs}"));
    let kept = PathBuf::from(name);
    std::fs::create_dir(&kept)?;
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let ours = [format!("{file_name}.base-"), format!("{file_name}.log-")];
    for entry in std::fs::read_dir(dir.unwrap_or(Path::new(".")))?.flatten() {
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if n == file_name || ours.iter().any(|p| n.starts_with(p.as_str())) {
            std::fs::rename(entry.path(), kept.join(&name))?;
        }
    }
    Ok(Some(kept))
}

/// A changelog record: the entry's length and CRC-32.
fn encode_log_ref(len: u64, crc: u32) -> [u8; 12] {
    let mut r = [0u8; 12];
    r[..8].copy_from_slice(&len.to_le_bytes());
    r[8..].copy_from_slice(&crc.to_le_bytes());
    r
}

fn log_ref(r: &[u8]) -> Option<(u64, u32)> {
    let len = u64::from_le_bytes(r.get(..8)?.try_into().ok()?);
    let crc = u32::from_le_bytes(r.get(8..12)?.try_into().ok()?);
    Some((len, crc))
}

/// A writer that counts and checksums what goes through it.
struct Checksummed<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A corrupted file is `Damaged` (with what to do), a locked one `InUse`.
fn classify(path: &Path, e: redb::Error) -> StoreError {
    let path_s = path.display().to_string();
    match e {
        redb::Error::Corrupted(detail) => StoreError::Damaged {
            path: path_s,
            detail,
        },
        redb::Error::DatabaseAlreadyOpen => StoreError::InUse(path_s),
        // A header overwritten ("not a redb database: magic number mismatch").
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => StoreError::Damaged {
            path: path_s,
            detail: e.to_string(),
        },
        redb::Error::UpgradeRequired(v) => StoreError::Format {
            path: path_s,
            found: format!("redb file format {v}"),
        },
        other => {
            let detail = other.to_string();
            // Checksum and structure failures surface through several error types;
            // their message names the corruption.
            if detail.to_ascii_lowercase().contains("corrupt") {
                StoreError::Damaged {
                    path: path_s,
                    detail,
                }
            } else {
                StoreError::Db {
                    path: path_s,
                    detail,
                }
            }
        }
    }
}

/// Writes checkpoints on a thread of its own, in the order they are given, with at most
/// one queued behind the one being written: the thread that applies events goes on
/// meanwhile. `busy` tells it a checkpoint falling due now would only queue, so it can
/// wait for the next one instead. Used by the pipeline and the bench.
pub struct BackgroundSaver<J: Send + 'static> {
    tx: std::sync::mpsc::SyncSender<J>,
    /// Jobs handed over and not yet written.
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl<J: Send + 'static> BackgroundSaver<J> {
    /// Starts the thread `name`, which calls `write` for each job.
    pub fn start(name: &str, mut write: impl FnMut(J) + Send + 'static) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (tx, rx) = std::sync::mpsc::sync_channel::<J>(1);
        let in_flight = std::sync::Arc::new(AtomicUsize::new(0));
        let busy = in_flight.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in rx {
                    write(job);
                    busy.fetch_sub(1, Ordering::AcqRel);
                }
            })
            .expect("spawn checkpoint writer thread");
        BackgroundSaver {
            tx,
            in_flight,
            thread,
        }
    }

    /// Whether a job is being written (or queued).
    pub fn busy(&self) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// Hands a job over; waits only while one is already queued. `false` if the
    /// thread is gone (it panicked): nobody may then be told the job was written.
    pub fn send(&self, job: J) -> bool {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.tx.send(job).is_ok()
    }

    /// Waits for every job handed over to be written, then stops the thread.
    pub fn stop(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(n: u64) -> Positions {
        let mut p = Positions::new();
        p.insert("file".into(), serde_json::json!({ "offset": n }));
        p
    }

    #[test]
    fn checkpoints_append_to_the_changelog_and_a_new_base_replaces_what_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path).unwrap();
        assert!(store.load().unwrap().is_none());
        store.append(b"one", b"", &pos(1)).unwrap();
        let sizes = store.append(b"two", b"waiting", &pos(2)).unwrap();
        assert_eq!(
            (sizes.log_bytes, sizes.log_entries, sizes.base_bytes),
            (6, 2, 0)
        );
        // Only the positions moved: no entry.
        store.append(b"", b"waiting", &pos(3)).unwrap();
        let input = store.compaction_input().unwrap();
        assert_eq!((input.base, input.log.len(), input.through), (None, 2, 2));
        // A checkpoint lands while the compaction runs: it stays after the new base.
        store.append(b"three", b"", &pos(4)).unwrap();
        let sizes = store.install_base(input.through, b"BASE(one,two)").unwrap();
        assert_eq!((sizes.log_bytes, sizes.log_entries), (5, 1));
        drop(store);
        let loaded = StateStore::open(&path).unwrap().load().unwrap().unwrap();
        assert_eq!(loaded.base.as_deref(), Some(b"BASE(one,two)".as_slice()));
        assert_eq!(loaded.log, vec![b"three".to_vec()]);
        assert_eq!(loaded.held, b"");
        assert_eq!(loaded.positions["file"]["offset"], 4);
        // Numbering continues after the base when the log was emptied.
        let store = StateStore::open(&path).unwrap();
        let input = store.compaction_input().unwrap();
        store.install_base(input.through, b"BASE(1,2,3)").unwrap();
        store.append(b"four", b"", &pos(5)).unwrap();
        let input = store.compaction_input().unwrap();
        assert_eq!((input.log, input.through), (vec![b"four".to_vec()], 4));
    }

    #[test]
    fn the_base_lives_in_a_file_of_its_own_and_replaced_or_unfinished_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = StateStore::open(&path).unwrap();
        let base: Vec<u8> = (0..(40 << 20) + 17).map(|i| (i % 251) as u8).collect();
        store.reset(&base, &pos(9)).unwrap();
        let bases = |store: &StateStore| {
            let mut names: Vec<_> = store.base_files().into_iter().map(|(n, _)| n).collect();
            names.sort();
            names
        };
        assert_eq!(bases(&store), vec!["s.redb.base-1".to_string()]);
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.base.as_deref(), Some(base.as_slice()));
        assert!(loaded.log.is_empty());
        assert_eq!(loaded.positions["file"]["offset"], 9);
        // The redb file holds no copy of it.
        assert!(store.db_file_bytes() < 8 << 20, "{}", store.db_file_bytes());
        assert!(store.file_bytes() >= base.len() as u64);
        // A new base replaces the old file.
        store.append(b"one", b"", &pos(10)).unwrap();
        let sizes = store
            .install_base_with(1, |w| w.write_all(b"streamed"))
            .unwrap();
        assert_eq!((sizes.base_bytes, sizes.log_bytes), (8, 0));
        assert_eq!(bases(&store), vec!["s.redb.base-2".to_string()]);
        // What a crash can leave: a half-written base and one the store no longer uses.
        std::fs::write(dir.path().join("s.redb.base-3.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join("s.redb.base-1"), b"old").unwrap();
        std::fs::write(dir.path().join("other.txt"), b"not ours").unwrap();
        drop(store);
        let store = StateStore::open(&path).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.base.as_deref(), Some(b"streamed".as_slice()));
        assert_eq!(bases(&store), vec!["s.redb.base-2".to_string()]);
        assert!(dir.path().join("other.txt").exists());
    }

    #[test]
    fn changelog_entries_are_files_the_store_lists_and_go_with_the_base_that_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = StateStore::open(&path).unwrap();
        for (i, e) in [b"one".as_slice(), b"two", b"three"].iter().enumerate() {
            store.append(e, b"", &pos(i as u64)).unwrap();
        }
        let logs = |store: &StateStore| {
            let mut n: Vec<_> = store
                .files_with_prefix("s.redb.log-")
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            logs(&store),
            ["s.redb.log-1", "s.redb.log-2", "s.redb.log-3"]
        );
        assert_eq!(
            std::fs::read(dir.path().join("s.redb.log-2")).unwrap(),
            b"two"
        );
        // The store on disk is exactly its files.
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(store.file_bytes(), on_disk);
        // A base through entry 2 takes entries 1 and 2 away, files included.
        store.install_base(2, b"BASE(one,two)").unwrap();
        assert_eq!(logs(&store), ["s.redb.log-3"]);
        // A file written by a checkpoint that never committed is not part of the state.
        std::fs::write(dir.path().join("s.redb.log-4"), b"uncommitted").unwrap();
        drop(store);
        let store = StateStore::open(&path).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.log, vec![b"three".to_vec()]);
        assert_eq!(logs(&store), ["s.redb.log-3"]);
        // The next entry is 4 again, and a damaged entry is reported with what to do.
        assert_eq!(store.append(b"four", b"", &pos(9)).unwrap().last_entry, 4);
        std::fs::write(dir.path().join("s.redb.log-3"), b"thr3e").unwrap();
        let err = store.load().err().expect("a damaged entry");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Damaged { .. }), "{msg}");
        assert!(
            msg.contains("s.redb.log-3") && msg.contains("instabrand rebuild"),
            "{msg}"
        );
    }

    #[test]
    fn a_damaged_or_missing_base_file_is_reported_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path).unwrap();
        store.reset(&vec![7u8; 100_000], &pos(1)).unwrap();
        drop(store);
        let base = dir.path().join("state.redb.base-1");
        let mut bytes = std::fs::read(&base).unwrap();
        bytes[50_000] ^= 1;
        std::fs::write(&base, &bytes).unwrap();
        for damage in ["a flipped bit", "a missing file"] {
            let err = StateStore::open(&path).unwrap().load().err().expect(damage);
            let msg = err.to_string();
            assert!(matches!(err, StoreError::Damaged { .. }), "{damage}: {msg}");
            assert!(
                msg.contains("state.redb.base-1") && msg.contains("instabrand rebuild"),
                "{damage}: {msg}"
            );
            std::fs::remove_file(&base).unwrap_or_default();
        }
    }

    #[test]
    fn a_store_of_an_older_format_is_reported_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(OLD_CHECKPOINT).unwrap();
                t.insert("format", b"instabrand-state-v4".as_slice())
                    .unwrap();
                t.insert("state", b"old".as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let err = StateStore::open(&path).unwrap().load().err().unwrap();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Format { .. }), "{msg}");
        assert!(
            msg.contains("instabrand-state-v4") && msg.contains("instabrand rebuild"),
            "{msg}"
        );
        // Still there.
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
    }

    #[test]
    fn random_bytes_over_the_file_give_a_damaged_store_error_with_what_to_do() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = StateStore::open(&path).unwrap();
            for i in 0..50u64 {
                store.append(&vec![i as u8; 10_000], b"", &pos(i)).unwrap();
            }
        }
        let len = std::fs::metadata(&path).unwrap().len();
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for at in (0..len).step_by(4096) {
            f.seek(SeekFrom::Start(at)).unwrap();
            let junk: Vec<u8> = (0..512)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            f.write_all(&junk).unwrap();
        }
        drop(f);
        let err = StateStore::open(&path)
            .and_then(|s| s.load().map(|_| ()))
            .expect_err("a damaged store is an error");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Damaged { .. }), "{msg}");
        assert!(msg.contains("instabrand rebuild"), "{msg}");
    }
}
