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
//! first byte of the batch whose *base* offset is exactly `base + relativeOffset`. Offsets may
//! have gaps (log compaction keeps offsets; see `segment`), so a lookup of offset `o` takes the
//! floor entry (the last at or below `o - base`) and walks forward to the first batch whose
//! *last* offset is at or above `o`: the batch holding `o`, or the next one when `o` falls in a
//! gap. Relative offsets stay below `i32::MAX`, as in Kafka. A `.timeindex` entry
//! `(T, o)` says that the batches of the segment up to and including the one starting at offset
//! `base + o` have no timestamp above `T`; as the log writes it, `T` is exactly the largest
//! `maxTimestamp` of those batches. A sealed segment's last `.timeindex` entry holds the segment's
//! newest timestamp (no entry: no batch has a timestamp), so a trusted segment's newest timestamp
//! comes from it, once recovery has checked the whole file against the batch headers
//! (`Segment::walk_tail`): CreateTime timestamps need not increase, so nothing cheaper vouches
//! for it.
//!
//! Indexes are derived data: they are not fsynced with every group commit (only when a segment is
//! sealed), and recovery rebuilds any index that does not match its log. Entries are appended,
//! never preallocated, so the file length is a whole number of entries after a clean write; a
//! torn trailing entry is cut on load, and one a failed append left behind is overwritten by the
//! next append.
//!
//! ## Invariants (asserted)
//! Of an index of a segment holding `n` offsets in `size` bytes:
//! - `.index`: relative offsets and positions both strictly increase; every relative offset is
//!   below `n`, every position below `size` (an entry points at a batch start).
//! - `.timeindex`: timestamps strictly increase and are not negative (batches without a
//!   timestamp get no entry); relative offsets never decrease and are below `n`.
//! - The entry count, the cached entries (active segment) and the last entry agree with each
//!   other and with the file: no entry is counted that the file's length does not hold.
//!
//! [`Index::check_invariants`] asserts what is in memory in O(1) (the log runs it after every
//! group commit; debug builds also walk every cached entry). [`Index::find_violation`] reads the
//! file and checks every entry; recovery trusts a sealed segment's indexes only if it finds none
//! (`recovery::tail_matches`), so nothing read from disk can trip the assertions. Whether an entry
//! points at the *right* batch is verified on use (`Segment::walk_start`, `find_timestamp`).
//!
//! The active segment keeps its entries in memory; a sealed segment's index is searched in the
//! file with `pread`, so memory does not grow with the number of segments.

use std::io;
use std::sync::Arc;

use crate::storage::{StorageFile, read_vec};
use crate::types::Offset;

/// One entry type of an index file.
pub trait IndexEntry: Copy + std::fmt::Debug + PartialEq {
    const SIZE: usize;
    /// The file's kind, for messages.
    const NAME: &'static str;
    fn encode(&self, out: &mut [u8]);
    fn decode(bytes: &[u8]) -> Self;
    /// The value entries are sorted and searched by.
    fn key(&self) -> i64;
    /// The invariant this entry breaks when it follows `previous` in an index of a segment of
    /// this extent (module docs), with the values; `None` if it breaks none.
    fn violation(&self, previous: Option<&Self>, extent: SegmentExtent) -> Option<String>;
}

/// What a segment's index entries must lie inside (module docs, "Invariants").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentExtent {
    /// The segment's base offset (named in messages).
    pub base: Offset,
    /// Offsets the segment holds (`next_offset - base_offset`).
    pub offsets: i64,
    /// Bytes of its `.log` (`Segment::size`).
    pub size: u64,
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
    const NAME: &'static str = ".index";
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
    fn violation(&self, previous: Option<&Self>, extent: SegmentExtent) -> Option<String> {
        if let Some(p) = previous
            && !(p.relative_offset < self.relative_offset && p.position < self.position)
        {
            return Some(format!(
                "relative offsets and positions strictly increase: {p:?} then {self:?}"
            ));
        }
        if i64::from(self.relative_offset) >= extent.offsets
            || u64::from(self.position) >= extent.size
        {
            return Some(format!(
                "entry {self:?} inside the segment ({} offsets, {} bytes)",
                extent.offsets, extent.size
            ));
        }
        None
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    const NAME: &'static str = ".timeindex";
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
    fn violation(&self, previous: Option<&Self>, extent: SegmentExtent) -> Option<String> {
        if let Some(p) = previous
            && !(p.timestamp < self.timestamp && p.relative_offset <= self.relative_offset)
        {
            return Some(format!(
                "timestamps strictly increase, relative offsets never decrease: {p:?} then \
                 {self:?}"
            ));
        }
        if i64::from(self.relative_offset) >= extent.offsets || self.timestamp < 0 {
            return Some(format!(
                "entry {self:?} inside the segment ({} offsets), timestamp not negative",
                extent.offsets
            ));
        }
        None
    }
}

/// The first invariant `entries` (in file order) break, naming the segment and the index.
fn first_violation<E: IndexEntry>(entries: &[E], extent: SegmentExtent) -> Option<String> {
    let mut previous = None;
    for e in entries {
        if let Some(why) = e.violation(previous, extent) {
            return Some(format!("segment {} {}: {why}", extent.base, E::NAME));
        }
        previous = Some(e);
    }
    None
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

    /// Asserts the module invariants on what is in memory, with no IO and in O(1): the entry
    /// count, the cache and the last entry agree; the last entry lies inside `extent` and follows
    /// the one before it. Debug builds check every cached entry (the active segment may cache
    /// hundreds of thousands, and the log runs this after every group commit). Panics naming
    /// the invariant and the values.
    pub fn check_invariants(&self, extent: SegmentExtent) {
        let (base, name) = (extent.base, E::NAME);
        assert_eq!(
            self.last.is_some(),
            self.len > 0,
            "segment {base} {name}: a last entry exactly when there are entries (len {}, last \
             {:?})",
            self.len,
            self.last
        );
        if let Some(cache) = &self.cache {
            assert!(
                cache.len() == self.len && cache.last() == self.last.as_ref(),
                "segment {base} {name}: the cache holds exactly the counted entries, ending with \
                 the last one (cached {}, len {}, cached last {:?}, last {:?})",
                cache.len(),
                self.len,
                cache.last(),
                self.last
            );
            let from = if cfg!(debug_assertions) {
                0
            } else {
                cache.len().saturating_sub(2)
            };
            if let Some(why) = first_violation(&cache[from..], extent) {
                panic!("{why}");
            }
        }
        if let Some(why) = self.last.and_then(|e| e.violation(None, extent)) {
            panic!("segment {base} {name}: {why}");
        }
    }

    /// Reads the whole file and checks it against the module invariants and against what is in
    /// memory: no counted entry beyond the file's length, the cache (if any) and the last entry
    /// are the file's, every entry follows the one before it inside `extent`. The first
    /// violation found, if any; recovery rebuilds an index that has one. Not for hot paths.
    pub fn find_violation(&self, extent: SegmentExtent) -> io::Result<Option<String>> {
        let name = format!("segment {} {}", extent.base, E::NAME);
        let counted = self.len * E::SIZE;
        let file_len = self.file.len()?;
        let raw = read_vec(&*self.file, 0, counted)?;
        if raw.len() != counted {
            return Ok(Some(format!(
                "{name}: {} entries ({counted} bytes) counted, the file holds {file_len} bytes",
                self.len
            )));
        }
        let entries: Vec<E> = raw.chunks_exact(E::SIZE).map(E::decode).collect();
        if self.cache.as_ref().is_some_and(|c| *c != entries) {
            return Ok(Some(format!(
                "{name}: the cached entries are not the file's"
            )));
        }
        if entries.last() != self.last.as_ref() {
            return Ok(Some(format!(
                "{name}: last entry {:?}, the file's is {:?}",
                self.last,
                entries.last()
            )));
        }
        Ok(first_violation(&entries, extent))
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
    ///
    /// Never an entry past `key`: a damaged read during the binary search (a bit flipped on the
    /// way from the disk) can steer it too far, and the entry then read back names a later
    /// batch; a walk starting there would skip the batches in between (the read_bitflips
    /// scenario, seed 15: a fetch at 506 answered from 522). Such an answer becomes `None`, and
    /// the caller walks from the segment's start, which is always correct for a floor.
    pub fn floor(&self, key: i64) -> io::Result<Option<E>> {
        let n = self.count_below(key.saturating_add(1))?;
        self.last_of(n, |k| k <= key)
    }

    /// The last entry whose key is `< key` (never one at or past it, as for [`Index::floor`]).
    pub fn lower(&self, key: i64) -> io::Result<Option<E>> {
        let n = self.count_below(key)?;
        self.last_of(n, |k| k < key)
    }

    /// Entry `n - 1` if there is one and its key is `below` the bound sought, else `None`.
    fn last_of(&self, n: usize, below: impl Fn(i64) -> bool) -> io::Result<Option<E>> {
        if n == 0 {
            return Ok(None);
        }
        let e = self.entry(n - 1)?;
        Ok(below(e.key()).then_some(e))
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
        /// Index lookups agree with a linear scan, cached or searched in the file; what
        /// `append` wrote holds the invariants, in memory and in the file.
        #[test]
        fn floor_matches_linear_scan(
            gaps in proptest::collection::vec(1u32..50, 0..200),
            probes in proptest::collection::vec(0i64..12_000, 1..50),
            cached in any::<bool>(),
        ) {
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
                let at_or_below = |e: &&OffsetEntry| i64::from(e.relative_offset) <= p;
                let expect = entries.iter().rev().find(at_or_below).copied();
                prop_assert_eq!(idx.floor(p).expect("floor"), expect);
                let below = |e: &&OffsetEntry| i64::from(e.relative_offset) < p;
                let expect_lower = entries.iter().rev().find(below).copied();
                prop_assert_eq!(idx.lower(p).expect("lower"), expect_lower);
            }
            let extent = SegmentExtent {
                base: Offset(0),
                offsets: i64::from(off) + 1,
                size: gaps.len() as u64 * 100,
            };
            idx.check_invariants(extent);
            prop_assert_eq!(idx.find_violation(extent).expect("read"), None);
        }
    }

    const EXTENT: SegmentExtent = SegmentExtent {
        base: Offset(100),
        offsets: 50,
        size: 1_000,
    };

    /// An index whose file holds `entries`, loaded cached (active segment) or not (sealed).
    fn loaded<E: IndexEntry>(entries: &[E], cached: bool) -> Index<E> {
        let s = MemStorage::new();
        let f = s.open(Path::new("/x")).expect("open");
        let mut raw = vec![0u8; entries.len() * E::SIZE];
        for (e, out) in entries.iter().zip(raw.chunks_exact_mut(E::SIZE)) {
            e.encode(out);
        }
        f.write_at(&raw, 0).expect("write");
        Index::load(f, cached).expect("load").0
    }

    fn oe(relative_offset: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
        }
    }

    fn te(timestamp: i64, relative_offset: u32) -> TimeEntry {
        TimeEntry {
            timestamp,
            relative_offset,
        }
    }

    /// What the log writes passes, cached or sealed, in memory and in the file: a `.timeindex`
    /// may repeat a relative offset (its entries need only not go back).
    #[test]
    fn sound_indexes_pass_every_check() {
        for cached in [true, false] {
            let o = loaded(&[oe(0, 0), oe(10, 300), oe(49, 999)], cached);
            o.check_invariants(EXTENT);
            assert_eq!(o.find_violation(EXTENT).expect("read"), None);
            let t = loaded(&[te(0, 0), te(5, 3), te(9, 3), te(10, 49)], cached);
            t.check_invariants(EXTENT);
            assert_eq!(t.find_violation(EXTENT).expect("read"), None);
            let empty = loaded::<TimeEntry>(&[], cached);
            empty.check_invariants(EXTENT);
            assert_eq!(empty.find_violation(EXTENT).expect("read"), None);
        }
    }

    #[test]
    #[should_panic(
        expected = "segment 100 .index: relative offsets and positions strictly increase: \
                    OffsetEntry { relative_offset: 0, position: 500 } then OffsetEntry { \
                    relative_offset: 10, position: 400 }"
    )]
    fn offset_index_positions_going_back_are_caught() {
        loaded(&[oe(0, 500), oe(10, 400)], true).check_invariants(EXTENT);
    }

    /// A sealed index keeps only its last entry in memory: that one is checked.
    #[test]
    #[should_panic(
        expected = "segment 100 .index: entry OffsetEntry { relative_offset: 10, position: 1000 \
                    } inside the segment (50 offsets, 1000 bytes)"
    )]
    fn offset_index_entry_beyond_the_log_is_caught() {
        loaded(&[oe(0, 0), oe(10, 1_000)], false).check_invariants(EXTENT);
    }

    #[test]
    #[should_panic(
        expected = "segment 100 .timeindex: timestamps strictly increase, relative \
                               offsets never decrease: TimeEntry { timestamp: 5, \
                               relative_offset: 0 } then TimeEntry { timestamp: 5, \
                               relative_offset: 1 }"
    )]
    fn time_index_timestamps_standing_still_are_caught() {
        loaded(&[te(5, 0), te(5, 1)], true).check_invariants(EXTENT);
    }

    #[test]
    #[should_panic(expected = "relative offsets never decrease")]
    fn time_index_offsets_going_back_are_caught() {
        loaded(&[te(5, 3), te(6, 2)], true).check_invariants(EXTENT);
    }

    #[test]
    #[should_panic(
        expected = "segment 100 .timeindex: entry TimeEntry { timestamp: 7, relative_offset: 50 \
                    } inside the segment (50 offsets), timestamp not negative"
    )]
    fn time_index_entry_beyond_the_segment_is_caught() {
        loaded(&[te(7, 50)], false).check_invariants(EXTENT);
    }

    #[test]
    #[should_panic(expected = "timestamp not negative")]
    fn time_index_negative_timestamp_is_caught() {
        loaded(&[te(-1, 0)], true).check_invariants(EXTENT);
    }

    #[test]
    #[should_panic(
        expected = "segment 100 .index: the cache holds exactly the counted entries, \
                               ending with the last one (cached 2, len 1"
    )]
    fn cache_out_of_step_with_the_count_is_caught() {
        let mut idx = loaded(&[oe(0, 0), oe(10, 300)], true);
        idx.len = 1;
        idx.check_invariants(EXTENT);
    }

    #[test]
    #[should_panic(expected = "a last entry exactly when there are entries (len 0, last Some(")]
    fn last_entry_of_an_empty_index_is_caught() {
        let mut idx = loaded(&[oe(0, 0)], false);
        idx.len = 0;
        idx.check_invariants(EXTENT);
    }

    /// `find_violation` reads the file: what memory cannot show (a counted entry the file no
    /// longer holds, a middle entry of a sealed index, a cache or last entry unlike the file's).
    #[test]
    fn file_check_finds_what_memory_cannot_show() {
        let idx = loaded(&[oe(0, 0), oe(10, 300), oe(20, 600)], false);
        idx.file().set_len(16).expect("cut behind its back");
        idx.check_invariants(EXTENT);
        let cut = "segment 100 .index: 3 entries (24 bytes) counted, the file holds 16 bytes";
        assert_eq!(idx.find_violation(EXTENT).expect("read"), Some(cut.into()));

        let idx = loaded(&[oe(0, 0), oe(30, 300), oe(20, 600)], false);
        idx.check_invariants(EXTENT);
        let found = idx
            .find_violation(EXTENT)
            .expect("read")
            .expect("a violation");
        assert!(found.contains("strictly increase"), "{found}");

        let idx = loaded(&[oe(0, 0), oe(10, 300)], true);
        idx.file().write_at(&[0, 0, 0, 11], 8).expect("damage");
        let cache = "segment 100 .index: the cached entries are not the file's";
        assert_eq!(
            idx.find_violation(EXTENT).expect("read"),
            Some(cache.into())
        );

        let mut idx = loaded(&[te(1, 0), te(2, 10)], false);
        idx.last = Some(te(3, 10));
        let found = idx
            .find_violation(EXTENT)
            .expect("read")
            .expect("a violation");
        assert!(
            found.contains("last entry Some(TimeEntry { timestamp: 3"),
            "{found}"
        );
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

    /// A file whose `nth` read comes back with one bit flipped (in the caller's buffer only, as
    /// the simulated disk's read bit-flips do).
    #[derive(Debug)]
    struct FlipsOneRead {
        inner: Arc<dyn StorageFile>,
        reads: std::sync::atomic::AtomicUsize,
        nth: usize,
        bit: usize,
    }

    impl StorageFile for FlipsOneRead {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = self.inner.read_at(buf, offset)?;
            let i = self
                .reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i == self.nth && self.bit / 8 < n {
                buf[self.bit / 8] ^= 1 << (self.bit % 8);
            }
            Ok(n)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            self.inner.write_at(buf, offset)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.inner.sync_data()
        }
    }

    /// Whichever one read of a lookup comes back damaged, `floor` and `lower` never answer an
    /// entry past the key sought: a walk from there would skip the batches in between (the
    /// read_bitflips scenario, seed 15). A damaged read may only make them answer an earlier
    /// entry or none, from which a walk is slower but still right.
    #[test]
    fn a_damaged_read_never_steers_a_lookup_past_its_key() {
        let s = MemStorage::new();
        let f = s.open(Path::new("/x.index")).expect("open");
        let mut idx = Index::<OffsetEntry>::load(f.clone(), false)
            .expect("load")
            .0;
        for i in 0..40u32 {
            let e = OffsetEntry {
                relative_offset: i * 2,
                position: i * 91,
            };
            idx.append(e).expect("append");
        }
        let mut damaged_answers = 0;
        for key in [0i64, 1, 17, 18, 39, 40, 77, 78, 200] {
            for nth in 0..8 {
                for bit in 0..OffsetEntry::SIZE * 8 {
                    let file = Arc::new(FlipsOneRead {
                        inner: f.clone(),
                        reads: Default::default(),
                        nth,
                        bit,
                    });
                    let idx = Index::<OffsetEntry>::load(file.clone(), false)
                        .expect("load")
                        .0;
                    file.reads.store(0, std::sync::atomic::Ordering::Relaxed);
                    let clean = (key / 2).min(39) as u32 * 2;
                    if let Some(e) = idx.floor(key).expect("floor") {
                        assert!(i64::from(e.relative_offset) <= key, "floor({key}) = {e:?}");
                        damaged_answers += usize::from(e.relative_offset != clean);
                    }
                    file.reads.store(0, std::sync::atomic::Ordering::Relaxed);
                    if let Some(e) = idx.lower(key).expect("lower") {
                        assert!(i64::from(e.relative_offset) < key, "lower({key}) = {e:?}");
                    }
                }
            }
        }
        // The damage did reach the answers (the test is not vacuous).
        assert!(damaged_answers > 0);
    }
}
