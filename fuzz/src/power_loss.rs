//! A disk that can crash at its n-th mutating operation and shows what a power loss leaves —
//! [`crate::durable::DurableStorage`]'s model extended to directory operations, for targets
//! whose crash safety rests on `sync_dir` (the log cleaner's swap).
//!
//! Model (the storage contract of `strata_core::storage`):
//! - data: per file, the bytes its last `sync_data` made durable (a `set_len` below them cuts
//!   them at once: a truncation may reach the disk before any sync). A power loss keeps the
//!   durable bytes plus any prefix of what was written past them; an unsynced overwrite of
//!   durable bytes is lost.
//! - names: creations, removals and renames since the last `sync_dir` are pending. A power loss
//!   keeps the durable names plus any subset of the pending changes, applied in order (a rename
//!   whose source is not there is skipped).
//! - crash switch: [`PowerLossDisk::arm`]`(n)` fails the n-th mutating operation from then on
//!   and every later one ("the machine is down"); reads keep working.
//!
//! Files are identified by their `Arc`, so a rename carries a file's durable bytes with it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use strata_core::storage::{Storage, StorageFile};

/// Operation counter and crash switch, shared by the disk and its files.
#[derive(Debug, Default)]
struct Control {
    ops: AtomicU64,
    /// Fail from this operation on (0: never).
    crash_at: AtomicU64,
    crashed: AtomicBool,
}

impl Control {
    /// Counts a mutating operation; fails it (and every later one) from the crash point on.
    fn op(&self) -> io::Result<()> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(io::Error::other("the machine is down"));
        }
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.crash_at.load(Ordering::SeqCst) {
            self.crashed.store(true, Ordering::SeqCst);
            return Err(io::Error::other(format!("crash at operation {n}")));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct File {
    data: Mutex<Vec<u8>>,
    durable: Mutex<Vec<u8>>,
    control: Arc<Control>,
}

impl File {
    fn data(&self) -> MutexGuard<'_, Vec<u8>> {
        self.data.lock().expect("file lock poisoned")
    }
    fn durable(&self) -> MutexGuard<'_, Vec<u8>> {
        self.durable.lock().expect("file lock poisoned")
    }
}

type Names = BTreeMap<PathBuf, Arc<File>>;

/// A directory change not yet made durable by `sync_dir`.
#[derive(Debug, Clone)]
enum DirOp {
    Create(PathBuf, Arc<File>),
    Remove(PathBuf),
    Rename(PathBuf, PathBuf),
}

#[derive(Debug, Default)]
struct Dirs {
    names: Names,
    durable_names: Names,
    pending: Vec<DirOp>,
}

#[derive(Debug, Clone, Default)]
pub struct PowerLossDisk {
    dirs: Arc<Mutex<Dirs>>,
    control: Arc<Control>,
}

/// xorshift64: the crash image's choices, from the input's seed.
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

impl PowerLossDisk {
    fn dirs(&self) -> MutexGuard<'_, Dirs> {
        self.dirs.lock().expect("disk lock poisoned")
    }

    fn new_file(&self, bytes: Vec<u8>) -> Arc<File> {
        Arc::new(File {
            data: Mutex::new(bytes.clone()),
            durable: Mutex::new(bytes),
            control: self.control.clone(),
        })
    }

    /// Fails the `n`-th mutating operation from now (`n >= 1`) and every later one.
    pub fn arm(&self, n: u64) {
        self.control.ops.store(0, Ordering::SeqCst);
        self.control.crash_at.store(n, Ordering::SeqCst);
    }

    /// Whether the armed crash happened.
    pub fn crashed(&self) -> bool {
        self.control.crashed.load(Ordering::SeqCst)
    }

    /// Every current name, for checks of the directory's contents.
    pub fn names(&self) -> Vec<PathBuf> {
        self.dirs().names.keys().cloned().collect()
    }

    /// The disk after a power loss, every byte of it durable (a freshly booted machine's).
    /// `seed % 4`: 0 keeps everything (a process crash), 1 only what was synced, otherwise a
    /// pseudo-random subset of the pending directory changes and a cut of each unsynced tail.
    pub fn crash_image(&self, seed: u64) -> PowerLossDisk {
        let mut choose = Choices(seed | 1);
        let dirs = self.dirs();
        let mut names = dirs.durable_names.clone();
        for op in &dirs.pending {
            let keep = match seed % 4 {
                0 => true,
                1 => false,
                _ => choose.next().is_multiple_of(2),
            };
            if keep {
                apply(&mut names, op);
            }
        }
        let image = PowerLossDisk::default();
        let mut out = image.dirs();
        for (path, f) in names {
            let data = f.data();
            let mut bytes = f.durable().clone();
            let tail = data.len().saturating_sub(bytes.len());
            let keep = match seed % 4 {
                0 => tail,
                1 => 0,
                _ => (choose.next() % (tail as u64 + 1)) as usize,
            };
            if seed.is_multiple_of(4) {
                bytes.clone_from(&data);
            } else {
                let from = bytes.len();
                bytes.extend_from_slice(&data[from..from + keep]);
            }
            let file = image.new_file(bytes);
            out.names.insert(path.clone(), file.clone());
            out.durable_names.insert(path, file);
        }
        drop(out);
        image
    }
}

fn apply(names: &mut Names, op: &DirOp) {
    match op {
        DirOp::Create(p, f) => {
            names.insert(p.clone(), f.clone());
        }
        DirOp::Remove(p) => {
            names.remove(p);
        }
        DirOp::Rename(from, to) => {
            if let Some(f) = names.remove(from) {
                names.insert(to.clone(), f);
            }
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl Storage for PowerLossDisk {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        if let Some(f) = self.dirs().names.get(path) {
            return Ok(f.clone());
        }
        self.control.op()?;
        let file = Arc::new(File {
            data: Mutex::default(),
            durable: Mutex::default(),
            control: self.control.clone(),
        });
        let mut dirs = self.dirs();
        dirs.names.insert(path.to_path_buf(), file.clone());
        dirs.pending
            .push(DirOp::Create(path.to_path_buf(), file.clone()));
        Ok(file)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .dirs()
            .names
            .keys()
            .filter_map(|p| {
                let first = p.strip_prefix(dir).ok()?.components().next()?;
                Some(first.as_os_str().to_string_lossy().into_owned())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if !self.dirs().names.contains_key(path) {
            return Err(not_found(path));
        }
        self.control.op()?;
        let mut dirs = self.dirs();
        dirs.names.remove(path);
        dirs.pending.push(DirOp::Remove(path.to_path_buf()));
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.control.op()?;
        let mut dirs = self.dirs();
        let doomed: Vec<PathBuf> = dirs
            .names
            .keys()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for p in doomed {
            dirs.names.remove(&p);
            dirs.pending.push(DirOp::Remove(p));
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if !self.dirs().names.contains_key(from) {
            return Err(not_found(from));
        }
        self.control.op()?;
        let mut dirs = self.dirs();
        let file = dirs.names.remove(from).ok_or_else(|| not_found(from))?;
        dirs.names.insert(to.to_path_buf(), file);
        dirs.pending
            .push(DirOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        self.control.op()?;
        let mut dirs = self.dirs();
        dirs.durable_names = dirs.names.clone();
        dirs.pending.clear();
        Ok(())
    }
}

impl StorageFile for File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data().len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.data();
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.control.op()?;
        let start = usize::try_from(offset).expect("in-memory files fit in memory");
        let mut data = self.data();
        if data.len() < start + buf.len() {
            data.resize(start + buf.len(), 0);
        }
        data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.control.op()?;
        let len = usize::try_from(len).expect("in-memory files fit in memory");
        self.data().resize(len, 0);
        self.durable().truncate(len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.control.op()?;
        let data = self.data().clone();
        *self.durable() = data;
        Ok(())
    }
}
