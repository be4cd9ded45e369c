//! The simulated disk: a [`Storage`] that behaves like a real disk behind a page cache, and fails
//! the ways real disks do.
//!
//! madsim's own file system cannot lose unsynced data, so the harness owns one [`SimDisk`] per
//! simulated node. The disk outlives the node: on kill or power loss the harness calls
//! [`SimDisk::kill`] or [`SimDisk::crash`], restarts the node and hands it a fresh
//! [`SimDisk::storage`] view. `SimDisk` is `Clone` (every clone is the same disk).
//!
//! ```text
//! let disk = SimDisk::new(seed);                  // one per node, kept by the harness
//! node.start(disk.storage());                     // Arc<dyn Storage>
//! disk.set_faults(DiskFaults { fsync_eio_probability: 0.01, ..Default::default() });
//! ... disk.next_latency() ...                     // the driver sleeps this long around IO
//! disk.crash(&mut rng);                           // power loss: unsynced data may go
//! node.start(disk.storage());                     // old handles now fail
//! ```
//!
//! ## The model
//! - **Page cache.** Every file (inode) has a *durable* image and a list of unsynced changes
//!   (`write_at`, `set_len`). Reads see the changes at once; `sync_data` of the file makes them
//!   durable. Directory changes (creating a file with `open`, `remove_file`, `rename`,
//!   `remove_dir_all`) are visible at once and durable after `sync_dir` of a directory they touch
//!   (see `journal` for the rule that keeps directory outcomes consistent).
//! - **`create_dir_all` is durable at once**: it acts as `mkdir` plus a sync of the new directory's
//!   parent. The log never syncs the parent of a partition directory (nor does the storage
//!   contract ask it to), so modelling a lost `mkdir` would only report that known gap.
//! - **Power crash** ([`SimDisk::crash`]): every handle and view dies; each unsynced write is kept,
//!   dropped, or torn at a 512-byte sector boundary, each `set_len` kept or dropped, survivors
//!   applied in the order they were made (`data`); each directory keeps a random prefix of its
//!   unsynced changes (`journal`). Reads then see exactly the durable state. What happened is
//!   returned as a [`CrashReport`].
//! - **Process kill** ([`SimDisk::kill`], alias `crash_keep_all`): every handle and view dies, but
//!   the OS page cache survives: nothing is lost, and unsynced changes *stay unsynced* (a later
//!   power crash can still drop them, as on a real machine).
//! - **Stale handles.** Every crash or kill bumps a generation; a handle or view from an older
//!   generation fails every call with an IO error and never touches the disk, so a killed node's
//!   leftover tasks cannot write into its successor's files.
//! - **Handles follow inodes**: a handle keeps working on its file after a rename or removal (as a
//!   POSIX descriptor does) until the next crash or kill. Removed files stop counting toward
//!   `capacity` at once.
//! - **Faults** ([`DiskFaults`], changed at run time): EIO on `write_at` (nothing written; `set_len`,
//!   reads and directory changes never fail with EIO); EIO on
//!   `sync_data`/`sync_dir`, Linux style: the covered changes are resolved as at a crash and
//!   forgotten, the error is reported once, and a later sync succeeds without writing what was
//!   lost — why a node must treat fsync failure as fatal; ENOSPC (raw OS error 28, kind
//!   `StorageFull`) when a write or `set_len` would grow the visible files past `capacity` (removal
//!   and truncation free space at once); bit-flips in the caller's buffer on read (stored bytes
//!   untouched); [`SimDisk::corrupt_durable`] for damage at rest; and latency, which is only data
//!   ([`SimDisk::next_latency`]): storage calls are synchronous, so the driver applies it.
//! - **Determinism.** Fault dice come from `StdRng`s seeded by [`SimDisk::new`]; crash dice from the
//!   RNG the harness passes. Only ordered maps are iterated. Same seed and same calls, same disk.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use strata_core::storage::Storage;

mod data;
mod faults;
mod handle;
mod journal;
mod state;
#[cfg(test)]
mod tests;

pub use data::{Change, Fate, SECTOR};
pub use faults::{DiskFaults, DiskStats};
pub use journal::{DirOp, InodeId};

use handle::{SimStorage, lock};
use state::DiskState;

/// One simulated node's disk. Cloning shares it.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("SimDisk")
            .field("generation", &s.generation)
            .field("files", &s.visible.files.len())
            .field("unsynced_dir_ops", &s.journal.len())
            .finish_non_exhaustive()
    }
}

/// What a power crash did to unsynced state, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced directory changes, oldest first, and whether each landed.
    pub dir_ops: Vec<DirOpCrash>,
    /// Files that had unsynced changes, by inode.
    pub files: Vec<FileCrash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirOpCrash {
    pub op: DirOp,
    pub kept: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCrash {
    pub inode: InodeId,
    /// The file's name after the crash; `None` if it has none (its creation was lost, or it had
    /// been removed).
    pub path: Option<PathBuf>,
    /// Its unsynced changes, oldest first, with their fates.
    pub changes: Vec<(Change, Fate)>,
}

impl SimDisk {
    /// An empty disk (just the roots `/` and ``), fault dice seeded from `seed`.
    pub fn new(seed: u64) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(DiskState::new(seed))),
        }
    }

    /// A view for the node running now; it (and every file opened through it) fails after the
    /// next crash or kill.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(SimStorage {
            state: self.state.clone(),
            generation: lock(&self.state).generation,
        })
    }

    /// Power loss: see the module docs. Randomness comes only from `rng`.
    pub fn crash<R: Rng + ?Sized>(&self, rng: &mut R) -> CrashReport {
        lock(&self.state).power_crash(rng)
    }

    /// The worst power loss: every unsynced write and directory change is lost.
    pub fn crash_losing_unsynced(&self) -> CrashReport {
        lock(&self.state).power_crash_losing_unsynced()
    }

    /// Process kill (`kill -9`): handles die, the page cache survives.
    pub fn kill(&self) {
        lock(&self.state).kill();
    }

    /// The same as [`SimDisk::kill`]: everything written is kept (still unsynced).
    pub fn crash_keep_all(&self) {
        self.kill();
    }

    /// Disk generation: bumped by every crash and kill.
    pub fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    pub fn faults(&self) -> DiskFaults {
        lock(&self.state).faults.faults.clone()
    }

    pub fn set_faults(&self, faults: DiskFaults) {
        faults.assert_valid();
        lock(&self.state).faults.faults = faults;
    }

    /// The next `n` `write_at` calls fail with EIO (before any dice are rolled).
    pub fn fail_next_writes(&self, n: u64) {
        lock(&self.state).faults.fail_next_writes = n;
    }

    /// The next `n` `sync_data` / `sync_dir` calls fail with EIO (before any dice are rolled).
    pub fn fail_next_syncs(&self, n: u64) {
        lock(&self.state).faults.fail_next_syncs = n;
    }

    /// How long the next storage operation should take. The disk never sleeps (storage calls are
    /// synchronous); the driver or harness sleeps this long in simulated time where it does IO.
    pub fn next_latency(&self) -> Duration {
        let s = &mut *lock(&self.state);
        s.faults.next_latency(&mut s.latency_rng)
    }

    /// Damage at rest: flips every bit of the durable byte at `offset` of the file durably named
    /// `path`. Reads see it at once unless an unsynced write covers that byte (then after a power
    /// crash). `NotFound` if there is no such durable file or byte.
    pub fn corrupt_durable(&self, path: &Path, offset: u64) -> io::Result<()> {
        let s = &mut *lock(&self.state);
        let id =
            *s.durable.files.get(path).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
            })?;
        let inode = s
            .inodes
            .get_mut(&id)
            .expect("durable names keep their inode");
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(byte) = inode.durable.get_mut(at) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} has no durable byte at {offset}", path.display()),
            ));
        };
        *byte ^= 0xff;
        if inode.diverged {
            if let Some(v) = inode.visible.get_mut(at) {
                *v ^= 0xff;
            }
        } else {
            let mut visible = inode.durable.clone();
            for op in &inode.pending {
                op.apply(&mut visible);
            }
            inode.visible = visible;
        }
        Ok(())
    }

    /// Paths of the files reads see now, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        lock(&self.state).visible.files.keys().cloned().collect()
    }

    /// Paths of the files a power crash now would certainly keep, sorted.
    pub fn durable_files(&self) -> Vec<PathBuf> {
        lock(&self.state).durable.files.keys().cloned().collect()
    }

    /// What reads of `path` see now.
    pub fn visible_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = lock(&self.state);
        let id = s.visible.files.get(path)?;
        Some(s.inodes[id].visible.clone())
    }

    /// The durable image of the file durably named `path`.
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = lock(&self.state);
        let id = s.durable.files.get(path)?;
        Some(s.inodes[id].durable.clone())
    }

    /// Number of unsynced changes to the contents of the file visibly named `path`.
    pub fn unsynced_changes(&self, path: &Path) -> Option<usize> {
        let s = lock(&self.state);
        let id = s.visible.files.get(path)?;
        Some(s.inodes[id].pending.len())
    }

    /// Number of unsynced directory changes.
    pub fn unsynced_dir_ops(&self) -> usize {
        lock(&self.state).journal.len()
    }

    /// Total bytes of the visible files (what `capacity` limits).
    pub fn used_bytes(&self) -> u64 {
        lock(&self.state).used_bytes()
    }

    pub fn stats(&self) -> DiskStats {
        lock(&self.state).stats.clone()
    }

    /// Asserts the model's invariants (also checked at every crash and kill).
    pub fn check_invariants(&self) {
        lock(&self.state).check_invariants();
    }
}
