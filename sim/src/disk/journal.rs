//! Directory changes: the two namespaces (visible and durable) and the journal of unsynced
//! changes between them.
//!
//! Every creation, removal and rename is applied to the visible namespace at once and appended to
//! the journal, tagged with the directories it touches (a rename touches both parents; a
//! `remove_dir_all` touches the parent and every directory it removes). A change reaches the
//! durable namespace when a directory it touches is synced, or, at a power crash, if the dice keep
//! it.
//!
//! **Consistency rule.** Within one directory, what survives a crash is a *prefix* of that
//! directory's changes, in the order they were made: an ext4/xfs-style metadata journal never
//! lands a later change to a directory without the earlier ones (so a rename never survives
//! without the creation of its source). Different directories are independent, except that a
//! change touching several directories survives only if it is within the surviving prefix of each
//! of them, and losing it cuts all of them there. Syncing a directory likewise makes durable every
//! change touching it *and* every earlier change those depend on (an earlier change sharing a
//! directory with one being made durable, transitively).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rand::Rng;

/// Identifies a file's contents independently of its name (an inode number): open handles and
/// renames follow the inode, as on a POSIX file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InodeId(pub u64);

/// One directory change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirOp {
    /// `open` created a new file.
    Create {
        path: PathBuf,
        inode: InodeId,
    },
    Remove {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        inode: InodeId,
    },
    /// `remove_dir_all`: every file and directory at or below `dir`.
    RemoveDirAll {
        dir: PathBuf,
    },
}

/// A file tree: files by path, and directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Namespace {
    pub files: BTreeMap<PathBuf, InodeId>,
    pub dirs: BTreeSet<PathBuf>,
}

impl Namespace {
    /// A namespace holding only the roots (`/` for absolute paths, `` for relative ones).
    pub fn with_roots() -> Namespace {
        Namespace {
            files: BTreeMap::new(),
            dirs: [PathBuf::from("/"), PathBuf::new()].into_iter().collect(),
        }
    }

    pub fn apply(&mut self, op: &DirOp) {
        match op {
            DirOp::Create { path, inode } => {
                self.files.insert(path.clone(), *inode);
            }
            DirOp::Remove { path } => {
                self.files.remove(path);
            }
            DirOp::Rename { from, to, inode } => {
                self.files.remove(from);
                self.files.insert(to.clone(), *inode);
            }
            DirOp::RemoveDirAll { dir } => {
                self.files.retain(|p, _| !p.starts_with(dir));
                self.dirs.retain(|d| !d.starts_with(dir));
            }
        }
    }

    /// Files and directories strictly below `dir` (not `dir` itself), in path order. Paths compare
    /// component by component, so everything below `dir` sorts right after it.
    pub fn files_below<'a>(
        &'a self,
        dir: &'a Path,
    ) -> impl Iterator<Item = (&'a PathBuf, &'a InodeId)> + 'a {
        self.files
            .range::<Path, _>((std::ops::Bound::Excluded(dir), std::ops::Bound::Unbounded))
            .take_while(move |(p, _)| p.starts_with(dir))
    }

    pub fn dirs_at_or_below<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        self.dirs
            .range::<Path, _>((std::ops::Bound::Included(dir), std::ops::Bound::Unbounded))
            .take_while(move |p| p.starts_with(dir))
    }
}

/// A directory change not yet durable, with the directories whose sync makes it so.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub op: DirOp,
    /// Sorted, without duplicates.
    pub dirs: Vec<PathBuf>,
}

/// The unsynced directory changes, oldest first.
#[derive(Debug, Default)]
pub(super) struct Journal {
    entries: Vec<Entry>,
}

impl Journal {
    pub fn push(&mut self, op: DirOp, dirs: impl IntoIterator<Item = PathBuf>) {
        let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
        dirs.sort();
        dirs.dedup();
        assert!(!dirs.is_empty(), "a directory change touches a directory");
        self.entries.push(Entry { op, dirs });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Takes out, oldest first, every change that syncing `dir` makes durable: those touching
    /// `dir` and, transitively, the earlier ones sharing a directory with a change taken.
    pub fn take_for_sync(&mut self, dir: &Path) -> Vec<Entry> {
        // Walk newest to oldest: a change is needed if it touches a directory that some newer
        // needed change touches (or `dir` itself, whatever its age).
        let mut needed_dirs: BTreeSet<PathBuf> = BTreeSet::new();
        needed_dirs.insert(dir.to_path_buf());
        let mut take = vec![false; self.entries.len()];
        for (i, e) in self.entries.iter().enumerate().rev() {
            if e.dirs.iter().any(|d| needed_dirs.contains(d)) {
                take[i] = true;
                needed_dirs.extend(e.dirs.iter().cloned());
            }
        }
        let mut taken = Vec::new();
        let mut kept = Vec::new();
        for (e, t) in std::mem::take(&mut self.entries).into_iter().zip(take) {
            if t { taken.push(e) } else { kept.push(e) }
        }
        self.entries = kept;
        taken
    }

    pub fn take_all(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }
}

/// Decides which of `entries` (oldest first) land on disk at a crash: per directory a uniformly
/// random cut, then the consistency rule of the module docs. Returns each entry with its fate.
pub(super) fn resolve<R: Rng + ?Sized>(entries: Vec<Entry>, rng: &mut R) -> Vec<(Entry, bool)> {
    let mut counts: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for e in &entries {
        for d in &e.dirs {
            *counts.entry(d.clone()).or_default() += 1;
        }
    }
    // Drawn in path order, so the same journal and seed always give the same cuts.
    let cuts: BTreeMap<PathBuf, usize> = counts
        .into_iter()
        .map(|(d, n)| {
            let cut = rng.random_range(0..=n);
            (d, cut)
        })
        .collect();
    let mut seen: BTreeMap<PathBuf, usize> = BTreeMap::new();
    let mut broken: BTreeSet<PathBuf> = BTreeSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let mut survives = true;
        for d in &e.dirs {
            let pos = seen.entry(d.clone()).or_default();
            survives &= *pos < cuts[d] && !broken.contains(d);
            *pos += 1;
        }
        if !survives {
            broken.extend(e.dirs.iter().cloned());
        }
        out.push((e, survives));
    }
    out
}
