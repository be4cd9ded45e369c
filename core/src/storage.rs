//! The storage seam: the only way Strata's state machines reach a disk.
//!
//! `core` never opens a file itself. The driver hands the log an `Arc<dyn Storage>`:
//! `strata-node` implements it on real files (`pwrite`/`pread`/`fdatasync`), `strata-sim` on a
//! simulated disk that loses unsynced writes and injects faults, and [`MemStorage`] here keeps
//! files in memory for unit tests and fuzzing.
//!
//! ## Durability contract (what every implementation must honour, and what the log relies on)
//! - `write_at` is visible to `read_at` at once, but durable only after `sync_data` of that file
//!   returns `Ok`.
//! - A file's creation, removal or rename is durable only after `sync_dir` of its parent returns
//!   `Ok`.
//! - Any error from `sync_data` means the data written since the last successful sync may or may
//!   not be on disk; the caller must not acknowledge it (the log treats it as fatal).
//!
//! File handles are `Arc`s so a driver can run `sync_data` off its reactor thread while the log
//! keeps serving reads.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A directory tree of files, as the log sees it.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens `path`, creating an empty file if it does not exist.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Names (not paths) of the entries in `dir`, sorted. `NotFound` if `dir` does not exist.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file. `NotFound` if it does not exist.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything below it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the creations, removals and renames in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// How long the driver should let a group commit take on top of the calls themselves. Real
    /// files take their own time (zero here); a simulated disk, whose calls return at once,
    /// reports its modelled latency and slow spells so the driver waits in simulated time.
    fn latency_hint(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// One open file.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync + fmt::Debug {
    fn len(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes every write so far durable.
    fn sync_data(&self) -> io::Result<()>;
}

/// Reads exactly `len` bytes at `offset` (fewer only if the file ends first).
pub fn read_vec(file: &dyn StorageFile, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Files kept in memory. Every write is "durable" at once; it models no crash. For unit tests,
/// property tests and fuzzing of the log; the simulator has its own faulty disk. One fault can
/// be injected: [`MemStorage::fail_syncs`] makes every fsync fail with EIO (clones share it).
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    files: Arc<Mutex<BTreeMap<PathBuf, Arc<MemFile>>>>,
    fail_syncs: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
pub struct MemFile {
    data: Mutex<Vec<u8>>,
    fail_syncs: Arc<AtomicBool>,
}

/// The EIO an injected fsync failure returns.
fn injected_eio(fail: &AtomicBool) -> io::Result<()> {
    if fail.load(Ordering::Relaxed) {
        Err(io::Error::other("injected EIO on fsync"))
    } else {
        Ok(())
    }
}

impl MemFile {
    /// A copy of the file's bytes (for tests that corrupt or inspect files).
    pub fn contents(&self) -> Vec<u8> {
        self.data.lock().expect("mem file lock poisoned").clone()
    }

    /// Replaces the file's bytes (for tests that corrupt files).
    pub fn replace(&self, bytes: Vec<u8>) {
        *self.data.lock().expect("mem file lock poisoned") = bytes;
    }
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// From now on every `sync_data` and `sync_dir` fails with EIO (`true`), or succeeds again.
    pub fn fail_syncs(&self, fail: bool) {
        self.fail_syncs.store(fail, Ordering::Relaxed);
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Arc<MemFile>>> {
        self.files.lock().expect("mem storage lock poisoned")
    }

    /// The file at `path`, if any (for tests).
    pub fn file(&self, path: &Path) -> Option<Arc<MemFile>> {
        self.files().get(path).cloned()
    }

    /// An independent copy of every file (for tests that try many damages of one disk image).
    pub fn deep_clone(&self) -> MemStorage {
        let copy = MemStorage::new();
        for (path, file) in self.files().iter() {
            copy.files().insert(
                path.clone(),
                Arc::new(MemFile {
                    data: Mutex::new(file.contents()),
                    fail_syncs: copy.fail_syncs.clone(),
                }),
            );
        }
        copy
    }

    /// Every file path, sorted (for tests).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files().keys().cloned().collect()
    }
}

impl Storage for MemStorage {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = self
            .files()
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                Arc::new(MemFile {
                    data: Mutex::default(),
                    fail_syncs: self.fail_syncs.clone(),
                })
            })
            .clone();
        Ok(file)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .files()
            .keys()
            .filter_map(|p| {
                let rel = p.strip_prefix(dir).ok()?;
                let first = rel.components().next()?;
                Some(first.as_os_str().to_string_lossy().into_owned())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories exist implicitly as path prefixes.
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self.files().remove(path) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                path.display().to_string(),
            )),
        }
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.files().retain(|p, _| !p.starts_with(dir));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut files = self.files();
        let file = files
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, from.display().to_string()))?;
        files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        injected_eio(&self.fail_syncs)
    }
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().expect("mem file lock poisoned").len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.data.lock().expect("mem file lock poisoned");
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut data = self.data.lock().expect("mem file lock poisoned");
        let start = usize::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        if data.len() < start + buf.len() {
            data.resize(start + buf.len(), 0);
        }
        data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        self.data
            .lock()
            .expect("mem file lock poisoned")
            .resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        injected_eio(&self.fail_syncs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_storage_round_trip() {
        let s = MemStorage::new();
        let f = s.open(Path::new("/d/a.log")).expect("open");
        f.write_at(b"hello", 0).expect("write");
        f.write_at(b"!", 10).expect("write");
        assert_eq!(f.len().expect("len"), 11);
        assert_eq!(read_vec(&*f, 0, 5).expect("read"), b"hello");
        assert_eq!(read_vec(&*f, 8, 10).expect("read"), vec![0, 0, b'!']);
        s.open(Path::new("/d/b.index")).expect("open");
        assert_eq!(
            s.list_dir(Path::new("/d")).expect("list"),
            vec!["a.log", "b.index"]
        );
        s.rename(Path::new("/d/b.index"), Path::new("/d/c.index"))
            .expect("rename");
        s.remove_file(Path::new("/d/a.log")).expect("remove");
        assert_eq!(s.list_dir(Path::new("/d")).expect("list"), vec!["c.index"]);
    }
}
