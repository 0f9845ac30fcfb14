//! Where archive files go. The writer only ever publishes whole files, so a store needs
//! one operation: put these bytes under this relative path, visible all at once or not
//! at all. That is a rename on a local disk and a single PUT on S3-compatible storage.
//!
//! [`LocalStore`] is the folder; `s3::S3Store` is S3-compatible object storage, built
//! on a request signer and a small blocking HTTP client rather than the `object_store`
//! crate, whose async HTTP, TLS and cloud-signing stack would have doubled the
//! server's cold build.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A place to publish complete archive files.
pub trait ArchiveStore: Send {
    /// Publishes `data` at `rel` (e.g. `dt=2017-06-12/part-….parquet`) atomically:
    /// readers see either no file or the whole file.
    fn put(&mut self, rel: &Path, data: &[u8]) -> io::Result<()>;

    /// Where the store points, for logs and errors.
    fn describe(&self) -> String;
}

/// A local folder. Each file is written to a hidden temporary name beside its final
/// one (`.part-….parquet.tmp`, which neither the `*.parquet` globs of query engines nor
/// our reader match), fsynced, renamed, and the directory fsynced so the rename itself
/// survives a power cut.
pub struct LocalStore {
    root: PathBuf,
}

/// The suffix of files still being written.
pub const TEMP_SUFFIX: &str = ".tmp";

impl LocalStore {
    /// Opens (creating) `root` and removes temporary files left by a crash: their
    /// records were never reported flushed, so the source delivers them again.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        remove_leftovers(root, 0)?;
        Ok(LocalStore { root: root.into() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// How deep partitions nest under the root (`dead-letters/dt=…/`).
const MAX_DEPTH: usize = 2;

fn remove_leftovers(dir: &Path, depth: usize) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type()?;
        if kind.is_dir() && depth < MAX_DEPTH {
            remove_leftovers(&entry.path(), depth + 1)?;
        } else if kind.is_file() && name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
            tracing::info!(file = %entry.path().display(), "removing an unfinished archive file");
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Writes `data` to `path` so that a crash leaves either the old file or the whole new
/// one: into `tmp` beside it, fsynced, renamed over `path`, and the directory fsynced
/// (the rename is durable only once the directory entry is). `tmp` goes on failure.
pub fn write_atomically(path: &Path, tmp: &Path, data: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let result = (|| {
        let mut f = File::create(tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

impl ArchiveStore for LocalStore {
    fn put(&mut self, rel: &Path, data: &[u8]) -> io::Result<()> {
        let path = self.root.join(rel);
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::other("archive path has no parent"))?;
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other("archive path has no file name"))?
            .to_string_lossy();
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{name}{TEMP_SUFFIX}"));
        write_atomically(&path, &tmp, data)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
