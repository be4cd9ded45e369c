//! The [`Storage`] view and [`StorageFile`] handles a node gets: each remembers the disk
//! generation it was made in and fails once a crash or kill has moved the disk on.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use strata_core::storage::{Storage, StorageFile};

use super::journal::InodeId;
use super::state::DiskState;

pub(super) fn lock(state: &Mutex<DiskState>) -> MutexGuard<'_, DiskState> {
    state
        .lock()
        .expect("sim disk lock poisoned: an earlier panic inside the model")
}

/// One node's view of its disk, valid until the next crash or kill.
pub(super) struct SimStorage {
    pub state: Arc<Mutex<DiskState>>,
    pub generation: u64,
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimStorage")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl SimStorage {
    /// Locks the disk and refuses the call if this view is stale.
    fn live(&self) -> io::Result<MutexGuard<'_, DiskState>> {
        let mut s = lock(&self.state);
        s.check_generation(self.generation)?;
        Ok(s)
    }
}

impl Storage for SimStorage {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let (inode, handles) = self.live()?.open(path)?;
        Ok(Arc::new(SimFile {
            state: self.state.clone(),
            generation: self.generation,
            inode,
            path: path.to_path_buf(),
            _handles: handles,
        }))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.live()?.list_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.live()?.create_dir_all(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.live()?.remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.live()?.remove_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.live()?.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.live()?.sync_dir(dir)
    }

    /// The disk's modelled latency (with slow spells), for the driver to wait out.
    fn latency_hint(&self) -> std::time::Duration {
        let s = &mut *lock(&self.state);
        s.faults.next_latency(&mut s.latency_rng)
    }
}

/// An open file: follows its inode across renames and removal, as a POSIX descriptor does.
pub(super) struct SimFile {
    state: Arc<Mutex<DiskState>>,
    generation: u64,
    inode: InodeId,
    /// The name it was opened by (for debugging only).
    path: PathBuf,
    /// Keeps an unlinked inode alive while this handle exists.
    _handles: Arc<()>,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl SimFile {
    fn live(&self) -> io::Result<MutexGuard<'_, DiskState>> {
        let mut s = lock(&self.state);
        s.check_generation(self.generation)?;
        Ok(s)
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.live()?.len(self.inode))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(self.live()?.read_at(self.inode, buf, offset))
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.live()?.write_at(self.inode, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.live()?.set_len(self.inode, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.live()?.sync_data(self.inode)
    }
}
