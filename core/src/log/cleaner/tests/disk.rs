//! A disk for crash tests: it can crash at its n-th mutating operation (that operation and
//! every later one fail), and it can show what a process crash leaves (everything written) and
//! what a power loss leaves (only what `sync_data` made durable, under only the names `sync_dir`
//! made durable). Like fuzz/src/durable.rs, which the core cannot depend on, but it also loses
//! unsynced creations, renames and removals, and fails at chosen operations.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::storage::{MemStorage, Storage, StorageFile};

/// Operation counter and crash switch, shared by the disk and its files.
#[derive(Debug, Default)]
struct Control {
    ops: AtomicU64,
    /// Crash at this operation (0: never).
    crash_at: AtomicU64,
    crashed: AtomicBool,
}

impl Control {
    /// Counts a mutating operation; fails it (and all later ones) at the crash point.
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
    /// Changes since the last `sync_dir`, in order: a power loss keeps any subset of them.
    pending: Vec<DirOp>,
}

impl Dirs {
    /// The durable names plus the pending changes `keep` selects (a rename whose source is
    /// not there cannot have reached the disk, and is skipped).
    fn names_after(&self, keep: impl Fn(usize) -> bool) -> Names {
        let mut names = self.durable_names.clone();
        for (_, op) in self.pending.iter().enumerate().filter(|(i, _)| keep(*i)) {
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
        names
    }
}

#[derive(Debug, Clone, Default)]
pub struct PowerLossDisk {
    dirs: Arc<Mutex<Dirs>>,
    control: Arc<Control>,
}

impl PowerLossDisk {
    /// A disk holding `image`'s files, all durable.
    pub fn from_image(image: &MemStorage) -> PowerLossDisk {
        let disk = PowerLossDisk::default();
        {
            let mut dirs = disk.dirs();
            for path in image.paths() {
                let bytes = image.file(&path).map(|f| f.contents()).unwrap_or_default();
                let file = Arc::new(File {
                    data: Mutex::new(bytes.clone()),
                    durable: Mutex::new(bytes),
                    control: disk.control.clone(),
                });
                dirs.names.insert(path.clone(), file.clone());
                dirs.durable_names.insert(path, file);
            }
        }
        disk
    }

    fn dirs(&self) -> std::sync::MutexGuard<'_, Dirs> {
        self.dirs.lock().expect("disk lock")
    }

    /// Crashes at the `n`-th mutating operation from now (`n >= 1`).
    pub fn arm(&self, n: u64) {
        self.control.ops.store(0, Ordering::SeqCst);
        self.control.crash_at.store(n, Ordering::SeqCst);
    }

    pub fn crashed(&self) -> bool {
        self.control.crashed.load(Ordering::SeqCst)
    }

    /// Mutating operations since [`Self::arm`].
    pub fn ops(&self) -> u64 {
        self.control.ops.load(Ordering::SeqCst)
    }

    /// Makes everything durable (a settled disk before the operation under test).
    pub fn sync_everything(&self) {
        let mut dirs = self.dirs();
        for f in dirs.names.values() {
            *f.durable.lock().expect("lock") = f.data.lock().expect("lock").clone();
        }
        dirs.durable_names = dirs.names.clone();
        dirs.pending.clear();
    }

    /// What a process crash leaves: every file as written (the kernel keeps it).
    pub fn process_crash_image(&self) -> MemStorage {
        image(&self.dirs().names, |f| f.data.lock().expect("lock").clone())
    }

    /// What power losses may leave when the directory's unsynced changes reach the disk in any
    /// order: only durable bytes, under the durable names changed by none, all, each one alone,
    /// and all but each one of the changes since the last `sync_dir`.
    pub fn power_loss_images(&self) -> Vec<MemStorage> {
        let dirs = self.dirs();
        let n = dirs.pending.len();
        let mut out = vec![
            image(&dirs.names_after(|_| false), durable_bytes),
            image(&dirs.names_after(|_| true), durable_bytes),
        ];
        for k in 0..n {
            out.push(image(&dirs.names_after(|i| i == k), durable_bytes));
            out.push(image(&dirs.names_after(|i| i != k), durable_bytes));
        }
        out
    }
}

fn durable_bytes(f: &File) -> Vec<u8> {
    f.durable.lock().expect("lock").clone()
}

fn image(names: &Names, bytes: impl Fn(&File) -> Vec<u8>) -> MemStorage {
    let image = MemStorage::new();
    for (path, f) in names {
        let file = image.open(path).expect("mem open");
        file.write_at(&bytes(f), 0).expect("mem write");
    }
    image
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
        Ok(self.data.lock().expect("lock").len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.data.lock().expect("lock");
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.control.op()?;
        let mut data = self.data.lock().expect("lock");
        let start = offset as usize;
        if data.len() < start + buf.len() {
            data.resize(start + buf.len(), 0);
        }
        data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.control.op()?;
        self.data.lock().expect("lock").resize(len as usize, 0);
        // A truncation may reach the disk before any sync: the durable copy may be cut too.
        self.durable.lock().expect("lock").truncate(len as usize);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.control.op()?;
        *self.durable.lock().expect("lock") = self.data.lock().expect("lock").clone();
        Ok(())
    }
}
