//! The state store: checkpoints of the processor's whole state, saved together with the
//! sources' positions in one redb write transaction, so a restart resumes exactly
//! where a checkpoint left off: the state and the position that produced it always
//! belong together. redb is a pure-Rust, crash-safe (copy-on-write B-tree, checksummed
//! commits) embedded store, so a kill -9 mid-write leaves the previous checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

/// Source name -> its position (a Kafka offset map, a file offset, a sequence number).
pub type Positions = BTreeMap<String, serde_json::Value>;

const CHECKPOINT: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoint");
/// Bumped whenever the snapshot's encoding changes.
const FORMAT: &[u8] = b"instabrand-state-v4";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Db(String),
    #[error("state store {0} holds another format version; move it away to start fresh")]
    Format(String),
    #[error("state store: bad positions record: {0}")]
    Positions(#[from] serde_json::Error),
}

fn db<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

pub struct StateStore {
    db: Database,
    path: String,
}

pub struct Checkpoint {
    pub state: Vec<u8>,
    /// Events read but still waiting for the other inputs (the aligner's), encoded by
    /// the pipeline: the positions are past them, so they are kept here.
    pub held: Vec<u8>,
    pub positions: Positions,
}

impl StateStore {
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(db)?;
        }
        Ok(StateStore {
            db: Database::create(path).map_err(db)?,
            path: path.display().to_string(),
        })
    }

    /// The last checkpoint, if any.
    pub fn load(&self) -> Result<Option<Checkpoint>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let table = match txn.open_table(CHECKPOINT) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db(e)),
        };
        let get = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(table.get(k).map_err(db)?.map(|v| v.value().to_vec()))
        };
        let Some(format) = get("format")? else {
            return Ok(None);
        };
        if format != FORMAT {
            return Err(StoreError::Format(self.path.clone()));
        }
        let state = get("state")?.unwrap_or_default();
        let held = get("held")?.unwrap_or_default();
        let positions = match get("positions")? {
            Some(p) => serde_json::from_slice(&p)?,
            None => Positions::new(),
        };
        Ok(Some(Checkpoint {
            state,
            held,
            positions,
        }))
    }

    /// Saves state, the events held for ordering, and positions atomically and durably.
    pub fn save(&self, state: &[u8], held: &[u8], positions: &Positions) -> Result<(), StoreError> {
        let pos = serde_json::to_vec(positions)?;
        let txn = self.db.begin_write().map_err(db)?;
        {
            let mut t = txn.open_table(CHECKPOINT).map_err(db)?;
            t.insert("format", FORMAT).map_err(db)?;
            t.insert("state", state).map_err(db)?;
            t.insert("held", held).map_err(db)?;
            t.insert("positions", pos.as_slice()).map_err(db)?;
        }
        txn.commit().map_err(db)
    }
}

/// Writes checkpoints on a thread of its own, in the order they are given, with at most
/// one queued behind the one being written: the thread that serializes the state goes
/// on applying meanwhile. `busy` tells it a checkpoint falling due now would only
/// queue, so it can wait for the next one instead. Used by the pipeline and the bench.
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

    #[test]
    fn a_checkpoint_round_trips_with_its_positions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path).unwrap();
        assert!(store.load().unwrap().is_none());
        let mut pos = Positions::new();
        pos.insert("file".into(), serde_json::json!({"offset": 42}));
        store.save(b"one", b"", &pos).unwrap();
        store.save(b"two", b"waiting", &pos).unwrap();
        drop(store);
        let cp = StateStore::open(&path).unwrap().load().unwrap().unwrap();
        assert_eq!(cp.state, b"two");
        assert_eq!(cp.held, b"waiting");
        assert_eq!(cp.positions["file"]["offset"], 42);
    }
}
