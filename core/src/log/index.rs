//! Sparse indexes of a segment: `.index` (offset → position) and `.timeindex`
//! (timestamp → offset).
//!
//! ## On-disk formats (big-endian, Kafka's layouts)
//!
//! ```text
//! .index      8 bytes per entry:  relativeOffset u32 | position u32
//! .timeindex 12 bytes per entry:  timestamp i64 | relativeOffset u32
//! ```
//!
//! `relativeOffset` is the offset minus the segment's base offset. An `.index` entry points at the
//! first byte of the batch whose *base* offset is `base + relativeOffset`. A `.timeindex` entry
//! `(T, o)` says that the batches of the segment up to and including the one starting at offset
//! `base + o` have no timestamp above `T`; as the log writes it, `T` is exactly the largest
//! `maxTimestamp` of those batches. A sealed segment's last `.timeindex` entry holds the segment's
//! newest timestamp (no entry: no batch has a timestamp), so a trusted segment's newest timestamp
//! comes from it, once recovery has checked the whole file against the batch headers
//! (`Segment::walk_tail`): CreateTime timestamps need not increase, so nothing cheaper vouches
//! for it.
//!
//! Invariants (checked on load, asserted on append): keys strictly increase; `.index` positions
//! strictly increase and lie inside the log file. Indexes are derived data: they are not fsynced
//! with every group commit (only when a segment is sealed), and recovery rebuilds any index that
//! does not match its log. Entries are appended, never preallocated, so the file length is always
//! a whole number of entries after a clean write; a torn trailing entry is cut on load.
//!
//! The active segment keeps its entries in memory; a sealed segment's index is searched in the
//! file with `pread`, so memory does not grow with the number of segments.

use std::io;
use std::sync::Arc;

use crate::storage::{StorageFile, read_vec};

/// One entry type of an index file.
pub trait IndexEntry: Copy + std::fmt::Debug + PartialEq {
    const SIZE: usize;
    fn encode(&self, out: &mut [u8]);
    fn decode(bytes: &[u8]) -> Self;
    /// The value entries are sorted and searched by.
    fn key(&self) -> i64;
}

/// An `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// A `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    fn key(&self) -> i64 {
        i64::from(self.relative_offset)
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
    fn key(&self) -> i64 {
        self.timestamp
    }
}

/// An index file, with its entries cached in memory while the segment is active.
#[derive(Debug)]
pub struct Index<E: IndexEntry> {
    file: Arc<dyn StorageFile>,
    /// Entries in the file. Kept in sync with `cache` when present.
    len: usize,
    /// All entries, for the active segment; `None` once sealed (search the file instead).
    cache: Option<Vec<E>>,
    /// Last entry, cached for cheap "is this key newer?" checks.
    last: Option<E>,
}

impl<E: IndexEntry> Index<E> {
    /// Loads an index file, cutting a torn trailing entry. Returns the index and whether its
    /// entries are strictly increasing (if not, the caller rebuilds it).
    pub fn load(file: Arc<dyn StorageFile>, cached: bool) -> io::Result<(Index<E>, bool)> {
        let bytes = file.len()?;
        let whole = bytes - bytes % E::SIZE as u64;
        if whole != bytes {
            file.set_len(whole)?;
        }
        let raw = read_vec(&*file, 0, whole as usize)?;
        let entries: Vec<E> = raw.chunks_exact(E::SIZE).map(E::decode).collect();
        let sorted = entries.windows(2).all(|w| w[0].key() < w[1].key());
        let last = entries.last().copied();
        let len = entries.len();
        Ok((
            Index {
                file,
                len,
                cache: cached.then_some(entries),
                last,
            },
            sorted,
        ))
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.last = None;
        if let Some(c) = &mut self.cache {
            c.clear();
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn last(&self) -> Option<E> {
        self.last
    }

    pub fn size_bytes(&self) -> u64 {
        (self.len * E::SIZE) as u64
    }

    pub fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// Appends an entry whose key is greater than the last one's.
    pub fn append(&mut self, entry: E) -> io::Result<()> {
        if let Some(last) = self.last {
            assert!(
                entry.key() > last.key(),
                "index keys must strictly increase: {last:?} then {entry:?}"
            );
        }
        let mut buf = vec![0u8; E::SIZE];
        entry.encode(&mut buf);
        self.file.write_at(&buf, (self.len * E::SIZE) as u64)?;
        self.len += 1;
        self.last = Some(entry);
        if let Some(c) = &mut self.cache {
            c.push(entry);
        }
        Ok(())
    }

    /// Drops the in-memory copy (the segment was sealed).
    pub fn seal(&mut self) {
        self.cache = None;
    }

    /// Keeps only entries whose key is below `key`.
    pub fn truncate_keys_from(&mut self, key: i64) -> io::Result<()> {
        let keep = self.count_below(key)?;
        self.truncate_entries(keep)
    }

    /// Keeps only the first `n` entries.
    pub fn truncate_entries(&mut self, n: usize) -> io::Result<()> {
        if n >= self.len {
            return Ok(());
        }
        self.file.set_len((n * E::SIZE) as u64)?;
        self.len = n;
        if let Some(c) = &mut self.cache {
            c.truncate(n);
        }
        self.last = if n == 0 {
            None
        } else {
            Some(self.entry(n - 1)?)
        };
        Ok(())
    }

    /// Every entry, in file order. For a sealed index this reads the whole file (at most
    /// `segment.index.bytes`); recovery uses it to check a trusted segment's `.timeindex`.
    pub fn entries(&self) -> io::Result<Vec<E>> {
        if let Some(c) = &self.cache {
            return Ok(c.clone());
        }
        let raw = read_vec(&*self.file, 0, self.len * E::SIZE)?;
        if raw.len() != self.len * E::SIZE {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "index shorter than its entries",
            ));
        }
        Ok(raw.chunks_exact(E::SIZE).map(E::decode).collect())
    }

    fn entry(&self, i: usize) -> io::Result<E> {
        if let Some(c) = &self.cache {
            return Ok(c[i]);
        }
        let raw = read_vec(&*self.file, (i * E::SIZE) as u64, E::SIZE)?;
        if raw.len() != E::SIZE {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "index entry beyond end of file",
            ));
        }
        Ok(E::decode(&raw))
    }

    /// Number of entries whose key is below `key` (binary search).
    fn count_below(&self, key: i64) -> io::Result<usize> {
        let (mut lo, mut hi) = (0usize, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid)?.key() < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The last entry whose key is `<= key`.
    pub fn floor(&self, key: i64) -> io::Result<Option<E>> {
        let n = self.count_below(key.saturating_add(1))?;
        if n == 0 {
            Ok(None)
        } else {
            self.entry(n - 1).map(Some)
        }
    }

    /// The last entry whose key is `< key`.
    pub fn lower(&self, key: i64) -> io::Result<Option<E>> {
        let n = self.count_below(key)?;
        if n == 0 {
            Ok(None)
        } else {
            self.entry(n - 1).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemStorage, Storage};
    use proptest::prelude::*;
    use std::path::Path;

    fn fresh(cached: bool) -> Index<OffsetEntry> {
        let s = MemStorage::new();
        let f = s.open(Path::new("/x.index")).expect("open");
        Index::load(f, cached).expect("load").0
    }

    proptest! {
        /// Index lookups agree with a linear scan, cached or searched in the file.
        #[test]
        fn floor_matches_linear_scan(gaps in proptest::collection::vec(1u32..50, 0..200), probes in proptest::collection::vec(0i64..12_000, 1..50), cached in any::<bool>()) {
            let mut idx = fresh(cached);
            let mut entries = Vec::new();
            let mut off = 0u32;
            for (i, g) in gaps.iter().enumerate() {
                off += g;
                let e = OffsetEntry { relative_offset: off, position: i as u32 * 100 };
                idx.append(e).expect("append");
                entries.push(e);
            }
            for p in probes {
                let expect = entries.iter().rev().find(|e| i64::from(e.relative_offset) <= p).copied();
                prop_assert_eq!(idx.floor(p).expect("floor"), expect);
                let expect_lower = entries.iter().rev().find(|e| i64::from(e.relative_offset) < p).copied();
                prop_assert_eq!(idx.lower(p).expect("lower"), expect_lower);
            }
        }
    }

    #[test]
    fn torn_entry_is_cut_and_unsorted_is_reported() {
        let s = MemStorage::new();
        let f = s.open(Path::new("/x.index")).expect("open");
        f.write_at(&[0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 2, 9, 9], 0)
            .expect("write");
        let (idx, sorted) = Index::<OffsetEntry>::load(f.clone(), false).expect("load");
        assert_eq!(idx.len(), 2);
        assert!(!sorted);
        assert_eq!(f.len().expect("len"), 16);
    }

    #[test]
    fn truncate_keeps_prefix() {
        let mut idx = fresh(false);
        for i in 1..=10u32 {
            idx.append(OffsetEntry {
                relative_offset: i * 10,
                position: i,
            })
            .expect("append");
        }
        idx.truncate_keys_from(55).expect("truncate");
        assert_eq!(idx.len(), 5);
        assert_eq!(idx.last().map(|e| e.relative_offset), Some(50));
        idx.append(OffsetEntry {
            relative_offset: 51,
            position: 99,
        })
        .expect("append after truncate");
    }
}
