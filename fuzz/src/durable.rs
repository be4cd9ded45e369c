//! A [`MemStorage`] that remembers what an fsync made durable, and builds the disk image a
//! machine crash could leave.
//!
//! Model: per file, the length covered by its last `sync_data` (a `set_len` below it lowers it:
//! truncations count as durable at once, as do creations, removals and renames, which
//! `MemStorage` applies immediately). At a crash every file keeps its durable prefix plus any
//! prefix of its unsynced tail — lost and torn unsynced appends, never lost synced bytes.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use strata_core::storage::{MemStorage, Storage, StorageFile};

/// Identity of a file across renames: its address, kept alive by the map that holds it.
type SyncedMap = BTreeMap<usize, (Arc<dyn StorageFile>, u64)>;
type Synced = Arc<Mutex<SyncedMap>>;

#[derive(Debug, Clone)]
pub struct DurableStorage {
    pub mem: MemStorage,
    synced: Synced,
}

impl DurableStorage {
    /// A disk whose every byte is durable (a freshly booted machine's).
    pub fn new(mem: MemStorage) -> DurableStorage {
        let storage = DurableStorage {
            mem,
            synced: Synced::default(),
        };
        for path in storage.mem.paths() {
            if let Ok(f) = storage.mem.open(&path) {
                let len = f.len().unwrap_or(0);
                storage.record(&f, len);
            }
        }
        storage
    }

    fn record(&self, file: &Arc<dyn StorageFile>, len: u64) {
        let key = Arc::as_ptr(file) as *const () as usize;
        self.lock().insert(key, (file.clone(), len));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SyncedMap> {
        self.synced.lock().expect("synced map lock poisoned")
    }

    fn synced_len(&self, file: &Arc<dyn StorageFile>) -> u64 {
        let key = Arc::as_ptr(file) as *const () as usize;
        self.lock().get(&key).map_or(0, |(_, len)| *len)
    }

    /// The image a crash leaves: each file cut somewhere between its durable length and its
    /// current length, chosen from `seed` (mode 0: nothing lost; 1: every unsynced byte lost;
    /// otherwise a pseudo-random cut per file).
    /// Also returns the files that lost bytes.
    pub fn crash_image(&self, seed: u64) -> (MemStorage, Vec<std::path::PathBuf>) {
        let image = self.mem.deep_clone();
        let mut cut = Vec::new();
        let mut state = seed | 1;
        for path in image.paths() {
            let (Ok(current), Some(copy)) = (self.mem.open(&path), image.file(&path)) else {
                continue;
            };
            let contents = copy.contents();
            let len = contents.len() as u64;
            let durable = self.synced_len(&current).min(len);
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let keep = match seed % 4 {
                0 => len,
                1 => durable,
                _ => durable + state % (len - durable + 1),
            };
            if keep < len {
                cut.push(path.clone());
            }
            let keep = usize::try_from(keep).expect("in-memory files fit in memory");
            copy.replace(contents[..keep].to_vec());
        }
        (image, cut)
    }
}

impl Storage for DurableStorage {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let inner = self.mem.open(path)?;
        Ok(Arc::new(TrackedFile {
            inner,
            storage: self.clone(),
        }))
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.mem.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.mem.create_dir_all(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.mem.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.mem.remove_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mem.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.mem.sync_dir(dir)
    }
}

/// A file whose syncs are recorded.
#[derive(Debug)]
struct TrackedFile {
    inner: Arc<dyn StorageFile>,
    storage: DurableStorage,
}

impl StorageFile for TrackedFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        // Overwriting durable bytes with different ones is not modelled: the log only appends.
        // Recovery does rewrite its unflushed tail with the bytes already there (so that a
        // later fsync really writes them, see core's recovery), which changes nothing durable.
        let durable = self.storage.synced_len(&self.inner);
        if offset < durable {
            let overlap = (durable - offset).min(buf.len() as u64) as usize;
            let mut current = vec![0u8; overlap];
            let n = self.inner.read_at(&mut current, offset)?;
            assert!(
                n == overlap && current == buf[..overlap],
                "write at {offset} changes bytes below the durable length of a file"
            );
        }
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let durable = self.storage.synced_len(&self.inner);
        self.inner.set_len(len)?;
        self.storage.record(&self.inner, durable.min(len));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()?;
        let len = self.inner.len()?;
        self.storage.record(&self.inner, len);
        Ok(())
    }
}
