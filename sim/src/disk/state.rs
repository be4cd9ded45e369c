//! The disk's state behind its one lock, and every operation on it. [`super::SimDisk`], the
//! storage view and file handles are thin shells that lock and call in here.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::data::{self, DataOp, Severity};
use super::faults::{DiskStats, FaultState};
use super::journal::{self, DirOp, InodeId, Journal, Namespace};
use super::{CrashReport, DirOpCrash, FileCrash};

/// One file's contents, independent of its name.
#[derive(Debug)]
pub(super) struct Inode {
    /// What survives a crash as of now.
    pub durable: Vec<u8>,
    /// What reads see: `durable` with every change in `pending` applied, unless `diverged`.
    pub visible: Vec<u8>,
    /// Unsynced changes, oldest first.
    pub pending: Vec<DataOp>,
    /// A failed fsync dropped changes from the durable future that reads still see (Linux keeps
    /// the pages, marked clean): `visible` is no longer `durable` + `pending`.
    pub diverged: bool,
    /// Cloned into every open handle, so that an unlinked file stays while a handle may use it.
    pub handles: Arc<()>,
}

impl Inode {
    fn new() -> Inode {
        Inode {
            durable: Vec::new(),
            visible: Vec::new(),
            pending: Vec::new(),
            diverged: false,
            handles: Arc::new(()),
        }
    }
}

#[derive(Debug)]
pub(super) struct DiskState {
    /// Bumped by every crash and kill; handles and views carry the generation they were made in.
    pub generation: u64,
    pub visible: Namespace,
    pub durable: Namespace,
    pub journal: Journal,
    pub inodes: BTreeMap<InodeId, Inode>,
    next_inode: u64,
    pub faults: FaultState,
    /// Dice for injected faults (not crashes: the harness passes the crash's RNG).
    pub fault_rng: StdRng,
    /// Dice for latency only, so querying latency does not shift the fault dice.
    pub latency_rng: StdRng,
    pub stats: DiskStats,
}

pub(super) fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

/// ENOSPC: `kind()` is `ErrorKind::StorageFull`, `raw_os_error()` is 28, as from a real disk.
pub(super) fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

fn parent(path: &Path) -> io::Result<PathBuf> {
    path.parent().map(Path::to_path_buf).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", path.display()),
        )
    })
}

impl DiskState {
    pub fn new(seed: u64) -> DiskState {
        // Two independent streams from one seed.
        let mut seeder = StdRng::seed_from_u64(seed);
        DiskState {
            generation: 0,
            visible: Namespace::with_roots(),
            durable: Namespace::with_roots(),
            journal: Journal::default(),
            inodes: BTreeMap::new(),
            next_inode: 1,
            faults: FaultState::default(),
            fault_rng: StdRng::seed_from_u64(seeder.random()),
            latency_rng: StdRng::seed_from_u64(seeder.random()),
            stats: DiskStats::default(),
        }
    }

    /// Refuses calls through a handle or view from before the last crash or kill: a killed node's
    /// leftover tasks must never touch the restarted node's disk.
    pub fn check_generation(&mut self, generation: u64) -> io::Result<()> {
        if generation == self.generation {
            Ok(())
        } else {
            self.stats.stale_calls += 1;
            Err(io::Error::other(format!(
                "stale handle: made in disk generation {generation}, the disk is at {} (the node crashed)",
                self.generation
            )))
        }
    }

    fn inode(&mut self, id: InodeId) -> &mut Inode {
        self.inodes
            .get_mut(&id)
            .expect("an inode with a live handle is never collected")
    }

    /// Total visible bytes of all named files (what ENOSPC counts).
    pub fn used_bytes(&self) -> u64 {
        self.visible
            .files
            .values()
            .map(|id| self.inodes[id].visible.len() as u64)
            .sum()
    }

    fn check_space(&mut self, current_len: u64, new_len: u64) -> io::Result<()> {
        let Some(capacity) = self.faults.faults.capacity else {
            return Ok(());
        };
        let growth = new_len.saturating_sub(current_len);
        if growth > 0 && self.used_bytes() + growth > capacity {
            self.stats.enospc += 1;
            return Err(enospc());
        }
        Ok(())
    }

    // ----- Directory operations -----

    pub fn open(&mut self, path: &Path) -> io::Result<(InodeId, Arc<()>)> {
        if let Some(&id) = self.visible.files.get(path) {
            return Ok((id, self.inodes[&id].handles.clone()));
        }
        if self.visible.dirs.contains(path) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                path.display().to_string(),
            ));
        }
        let dir = parent(path)?;
        if !self.visible.dirs.contains(&dir) {
            return Err(not_found(&dir));
        }
        let id = InodeId(self.next_inode);
        self.next_inode += 1;
        let inode = Inode::new();
        let handles = inode.handles.clone();
        self.inodes.insert(id, inode);
        let op = DirOp::Create {
            path: path.to_path_buf(),
            inode: id,
        };
        self.visible.apply(&op);
        self.journal.push(op, [dir]);
        Ok((id, handles))
    }

    pub fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        if !self.visible.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let child_name = |p: &PathBuf| -> Option<String> {
            (p.parent() == Some(dir))
                .then(|| p.file_name().map(|n| n.to_string_lossy().into_owned()))?
        };
        let mut names: Vec<String> = self
            .visible
            .files_below(dir)
            .filter_map(|(p, _)| child_name(p))
            .chain(self.visible.dirs_at_or_below(dir).filter_map(child_name))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Durable at once: behaves as `mkdir` of each missing directory followed by a sync of its
    /// parent, which also makes the parent's earlier changes durable (see the module docs).
    pub fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        let mut missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|a| !self.visible.dirs.contains(*a))
            .collect();
        missing.reverse();
        for d in missing {
            if self.visible.files.contains_key(d) {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    d.display().to_string(),
                ));
            }
            let p = parent(d)?;
            let forced = self.journal.take_for_sync(&p);
            for e in &forced {
                self.durable.apply(&e.op);
            }
            self.visible.dirs.insert(d.to_path_buf());
            self.durable.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }

    pub fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        if !self.visible.files.contains_key(path) {
            return Err(not_found(path));
        }
        let op = DirOp::Remove {
            path: path.to_path_buf(),
        };
        self.visible.apply(&op);
        self.journal.push(op, [parent(path)?]);
        self.collect_garbage(false);
        Ok(())
    }

    /// Like `std::fs::remove_dir_all` as `FsStorage` uses it: a missing directory is not an error.
    pub fn remove_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        if self.visible.files.contains_key(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                dir.display().to_string(),
            ));
        }
        if !self.visible.dirs.contains(dir) {
            return Ok(());
        }
        let p = parent(dir)?;
        let removed: Vec<PathBuf> = self.visible.dirs_at_or_below(dir).cloned().collect();
        let op = DirOp::RemoveDirAll {
            dir: dir.to_path_buf(),
        };
        self.visible.apply(&op);
        self.journal.push(op, removed.into_iter().chain([p]));
        self.collect_garbage(false);
        Ok(())
    }

    pub fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let Some(&inode) = self.visible.files.get(from) else {
            return Err(not_found(from));
        };
        let to_dir = parent(to)?;
        if !self.visible.dirs.contains(&to_dir) {
            return Err(not_found(&to_dir));
        }
        if self.visible.dirs.contains(to) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                to.display().to_string(),
            ));
        }
        if from == to {
            return Ok(());
        }
        let op = DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            inode,
        };
        self.visible.apply(&op);
        self.journal.push(op, [parent(from)?, to_dir]);
        self.collect_garbage(false);
        Ok(())
    }

    pub fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        if !self.visible.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let forced = self.journal.take_for_sync(dir);
        if self.faults.fsync_eio(&mut self.fault_rng) {
            // Linux: the error is reported once and the changes it covered are forgotten, each
            // having landed or not (consistently, as at a crash).
            self.stats.fsync_eio += 1;
            for (e, kept) in journal::resolve(forced, &mut self.fault_rng) {
                if kept {
                    self.durable.apply(&e.op);
                }
            }
            self.collect_garbage(false);
            return Err(eio());
        }
        for e in &forced {
            self.durable.apply(&e.op);
        }
        self.stats.dir_syncs += 1;
        self.collect_garbage(false);
        Ok(())
    }

    // ----- File operations -----

    pub fn len(&mut self, id: InodeId) -> u64 {
        self.inode(id).visible.len() as u64
    }

    pub fn read_at(&mut self, id: InodeId, buf: &mut [u8], offset: u64) -> usize {
        let visible = &self.inodes[&id].visible;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(visible.len());
        let n = buf.len().min(visible.len() - start);
        buf[..n].copy_from_slice(&visible[start..start + n]);
        self.stats.reads += 1;
        if n > 0 && self.faults.read_bitflip(&mut self.fault_rng) {
            let bit = self.fault_rng.random_range(0..n * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            self.stats.read_bitflips += 1;
        }
        n
    }

    pub fn write_at(&mut self, id: InodeId, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.faults.write_eio(&mut self.fault_rng) {
            self.stats.write_eio += 1;
            return Err(eio());
        }
        let current = self.inode(id).visible.len() as u64;
        let end = offset.checked_add(buf.len() as u64).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "write past the largest offset")
        })?;
        self.check_space(current, end)?;
        let op = DataOp::Write {
            offset,
            data: buf.to_vec(),
        };
        let inode = self.inode(id);
        op.apply(&mut inode.visible);
        inode.pending.push(op);
        self.stats.writes += 1;
        self.stats.bytes_written += buf.len() as u64;
        Ok(())
    }

    pub fn set_len(&mut self, id: InodeId, len: u64) -> io::Result<()> {
        let current = self.inode(id).visible.len() as u64;
        self.check_space(current, len)?;
        let op = DataOp::SetLen(len);
        let inode = self.inode(id);
        op.apply(&mut inode.visible);
        inode.pending.push(op);
        Ok(())
    }

    pub fn sync_data(&mut self, id: InodeId) -> io::Result<()> {
        if self.faults.fsync_eio(&mut self.fault_rng) {
            // Linux: some pages may have been written, the rest are marked clean and dropped from
            // the durable future while reads still see them; the error is reported once.
            self.stats.fsync_eio += 1;
            let severity = Severity::draw(&mut self.fault_rng);
            let inode = self.inodes.get_mut(&id).expect("live handle");
            let pending = std::mem::take(&mut inode.pending);
            data::resolve(&mut inode.durable, pending, severity, &mut self.fault_rng);
            inode.diverged |= inode.durable != inode.visible;
            return Err(eio());
        }
        let inode = self.inode(id);
        for op in std::mem::take(&mut inode.pending) {
            op.apply(&mut inode.durable);
        }
        self.stats.data_syncs += 1;
        Ok(())
    }

    // ----- Crashes -----

    /// Process kill: handles die, the page cache (and so every unsynced change, still unsynced)
    /// survives.
    pub fn kill(&mut self) {
        self.generation += 1;
        self.stats.kills += 1;
        self.collect_garbage(true);
        self.check_invariants();
    }

    /// Power loss: handles die, unsynced changes land or not (see the module docs), and what
    /// reads see becomes exactly what is durable.
    pub fn power_crash<R: Rng + ?Sized>(&mut self, rng: &mut R) -> CrashReport {
        self.power_crash_as(rng, false)
    }

    /// The worst power loss: every unsynced change (data and directory) is dropped.
    pub fn power_crash_losing_unsynced(&mut self) -> CrashReport {
        // With nothing kept and nothing torn, the draws below decide nothing.
        let mut rng = StdRng::seed_from_u64(0);
        self.power_crash_as(&mut rng, true)
    }

    fn power_crash_as<R: Rng + ?Sized>(&mut self, rng: &mut R, lose_all: bool) -> CrashReport {
        self.generation += 1;
        self.stats.power_crashes += 1;
        let mut report = CrashReport::default();
        let entries = self.journal.take_all();
        let resolved = if lose_all {
            entries.into_iter().map(|e| (e, false)).collect()
        } else {
            journal::resolve(entries, rng)
        };
        for (e, kept) in resolved {
            if kept {
                self.durable.apply(&e.op);
            }
            report.dir_ops.push(DirOpCrash { op: e.op, kept });
        }
        let severity = if lose_all {
            Severity {
                keep: 0.0,
                tear: 0.0,
            }
        } else {
            Severity::draw(rng)
        };
        let names: BTreeMap<InodeId, PathBuf> = self
            .durable
            .files
            .iter()
            .map(|(p, id)| (*id, p.clone()))
            .collect();
        for (id, inode) in &mut self.inodes {
            let pending = std::mem::take(&mut inode.pending);
            if pending.is_empty() {
                continue;
            }
            let changes = data::resolve(&mut inode.durable, pending, severity, rng);
            report.files.push(FileCrash {
                inode: *id,
                path: names.get(id).cloned(),
                changes,
            });
        }
        self.visible = self.durable.clone();
        for inode in self.inodes.values_mut() {
            inode.visible.clone_from(&inode.durable);
            inode.diverged = false;
        }
        self.collect_garbage(true);
        self.check_invariants();
        report
    }

    /// Forgets inodes nothing can reach any more: no name, visible or durable, no unsynced
    /// directory change, and (unless every handle just died) no open handle.
    fn collect_garbage(&mut self, handles_dead: bool) {
        let mut live: BTreeSet<InodeId> = self.visible.files.values().copied().collect();
        live.extend(self.durable.files.values().copied());
        for e in self.journal.entries() {
            match &e.op {
                DirOp::Create { inode, .. } | DirOp::Rename { inode, .. } => {
                    live.insert(*inode);
                }
                DirOp::Remove { .. } | DirOp::RemoveDirAll { .. } => {}
            }
        }
        self.inodes.retain(|id, inode| {
            live.contains(id) || (!handles_dead && Arc::strong_count(&inode.handles) > 1)
        });
    }

    /// The model's own invariants (kept on in release, as assertions should be).
    pub fn check_invariants(&self) {
        for (name, ns) in [("visible", &self.visible), ("durable", &self.durable)] {
            let mut seen = BTreeSet::new();
            for (path, id) in &ns.files {
                assert!(
                    self.inodes.contains_key(id),
                    "{name} file {} names a collected inode",
                    path.display()
                );
                assert!(seen.insert(*id), "{name}: two names for inode {id:?}");
                let dir = path.parent().expect("a file has a parent");
                assert!(
                    ns.dirs.contains(dir),
                    "{name} file {} lies in a missing directory",
                    path.display()
                );
                assert!(
                    !ns.dirs.contains(path),
                    "{name}: {} is file and dir",
                    path.display()
                );
            }
        }
        for (id, inode) in &self.inodes {
            if !inode.diverged {
                let mut replay = inode.durable.clone();
                for op in &inode.pending {
                    op.apply(&mut replay);
                }
                assert!(
                    replay == inode.visible,
                    "inode {id:?}: visible contents are not durable + unsynced changes"
                );
            }
        }
    }
}
