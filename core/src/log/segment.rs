//! A segment: one `.log` file of consecutive record batches plus its two sparse indexes.
//!
//! Files are named by the segment's base offset in 20 digits (Kafka's naming):
//! `00000000000000001234.log`, `.index`, `.timeindex`. The `.log` file is the batches, verbatim,
//! back to back.
//!
//! ## Offsets: kept, gaps allowed
//! Batches' offsets strictly increase: each batch starts at or after the previous one's next
//! offset (last offset + 1), the first at or after the segment's base offset. A leader's appends
//! leave no gap; a follower copies its leader's gaps, and the cleaner (log compaction, issue #16)
//! makes them by dropping superseded records while keeping every survivor's offset, as Kafka
//! does. A gap never holds a record. Every batch ends within `i32::MAX` offsets of the base
//! (relative offsets in the indexes; Kafka's `canConvertToRelativeOffset`): a header read from
//! disk that does not is not a batch of this segment.
//!
//! The segment's `next_offset` (its log end) is its last batch's next offset, or its base
//! offset when it holds no batch. An empty sealed segment (a cleaned segment whose batches all
//! went) is allowed: it holds no offset, and reads step over it.
//!
//! A walk over the batches ([`Segment::step`]) therefore knows only a lower bound for the next
//! batch's base offset (`expected`), not the offset itself: it accepts any batch at or after it.
//! Damage to a header's `baseOffset` (outside the CRC) that moves it up is not caught there,
//! as in Kafka; one that moves it back is. An `.index` entry names the exact base offset of the
//! batch it points at, and is believed only if that holds (`walk_start`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{BatchHeader, HEADER_LEN, TimestampType, validate_batch};
use crate::storage::{Storage, StorageFile, read_vec};
use crate::types::Offset;

use super::index::{Index, OffsetEntry, TimeEntry};

pub fn log_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{:020}.log", base.0))
}
pub fn index_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{:020}.index", base.0))
}
pub fn time_index_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{:020}.timeindex", base.0))
}

/// Parses a `.log` file name into its base offset.
pub fn parse_log_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok().map(Offset)
}

/// Reads of a batch before recovery believes it is damaged.
const READ_ATTEMPTS: usize = 3;

/// One segment.
#[derive(Debug)]
pub struct Segment {
    /// Offset of the first batch; also the segment's name.
    pub base_offset: Offset,
    /// The `.log` file.
    pub log: Arc<dyn StorageFile>,
    pub offset_index: Index<OffsetEntry>,
    pub time_index: Index<TimeEntry>,
    /// Bytes of valid batches in `.log` (the file is never longer after recovery).
    pub size: u64,
    /// Bytes of `.log` known to be on disk (fsynced).
    pub synced_size: u64,
    /// The sealed segment's indexes still need one fsync.
    pub index_sync_pending: bool,
    /// Offset right after the last batch (the segment's log end offset).
    pub next_offset: Offset,
    /// Largest batch `maxTimestamp` in the segment, -1 if none (time retention and lookups).
    pub max_timestamp: i64,
    /// Base offset of the last batch (for the seal-time `.timeindex` entry).
    pub last_batch_offset: Option<Offset>,
    /// Bytes appended since the last index entry (`index.interval.bytes`).
    pub bytes_since_index: u64,
    /// When the segment's first batch arrived, for `segment.ms`.
    pub first_batch_time_ms: Option<i64>,
    /// Corrupt batches recovery kept (below the recovery point, valid data after them): reads
    /// refuse them and step over them to the batch that follows.
    pub corrupt: Vec<CorruptSpan>,
    /// The log may hold offset gaps (a compacted topic's: set by the log from its cleanup
    /// policy, and sticky: a log once compacted keeps its gaps). Without it, walks and reads
    /// demand dense offsets (each batch exactly where the previous one ended), as Kafka's
    /// non-compacted logs are: the CRC does not cover `baseOffset` and walks do not check it, so
    /// density is what catches a header damaged on its way from the disk, which could otherwise
    /// make a read skip batches (the read_bitflips scenario, seed 14).
    pub gaps: bool,
}

/// A corrupt batch kept in a segment, and where the valid data after it resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptSpan {
    pub position: u64,
    /// The lowest offset the corrupt batch may hold (the previous batch's next offset): with
    /// gaps allowed its own base offset is unknown, so every offset from here to `next_offset`
    /// is refused.
    pub offset: Offset,
    pub next_position: u64,
    pub next_offset: Offset,
}

/// One step of a walk over a segment's batches (see [`Segment::step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A batch with a plausible header at or after the offset the walk expects (CRC not checked).
    Batch(BatchHeader),
    /// A corrupt batch recovery kept: refuse it, resume at `next_position` / `next_offset`.
    Corrupt(CorruptSpan),
    /// The end of the segment.
    End,
    /// No batch where one should start at this offset: corruption found while reading.
    Broken(Offset),
}

/// What a scan of a segment's batches found.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Position after the last valid batch (where a torn tail starts, if any).
    pub valid_end: u64,
    /// Corrupt batches that valid data follows: `(position, stored base offset)`.
    pub corrupt: Vec<(u64, Offset)>,
    /// The scan stopped at an invalid batch that no valid data follows.
    pub torn: bool,
}

/// What [`Segment::walk_tail`] found: the segment's batches chain (offsets increasing, from its
/// base offset on) to the end of its file, and its `.timeindex` is what the log writes for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// Offset right after the last batch.
    pub next_offset: Offset,
    pub first: Option<BatchHeader>,
    pub last: Option<BatchHeader>,
    /// The largest batch `maxTimestamp`, -1 if none.
    pub newest: i64,
}

/// Batches read from a segment.
#[derive(Debug, Default)]
pub struct SegmentRead {
    pub records: Vec<u8>,
    /// The read stopped at a corrupt batch that should have started at this offset.
    pub corrupt_at: Option<Offset>,
}

impl Segment {
    /// Creates a new, empty segment.
    pub fn create(storage: &dyn Storage, dir: &Path, base: Offset) -> io::Result<Segment> {
        let log = storage.open(&log_path(dir, base))?;
        log.set_len(0)?;
        let (offset_index, _) = Index::load(storage.open(&index_path(dir, base))?, true)?;
        let (time_index, _) = Index::load(storage.open(&time_index_path(dir, base))?, true)?;
        let mut seg = Segment::from_parts(base, log, offset_index, time_index, 0);
        seg.offset_index.clear()?;
        seg.time_index.clear()?;
        Ok(seg)
    }

    /// Opens an existing segment's files. Returns the segment and whether its indexes look sound.
    /// `next_offset` and the timestamps are only known after [`Segment::scan`] or from the index.
    pub fn open(
        storage: &dyn Storage,
        dir: &Path,
        base: Offset,
        active: bool,
    ) -> io::Result<(Segment, bool)> {
        let log = storage.open(&log_path(dir, base))?;
        let size = log.len()?;
        let (offset_index, sorted_o) =
            Index::<OffsetEntry>::load(storage.open(&index_path(dir, base))?, active)?;
        let (time_index, sorted_t) =
            Index::<TimeEntry>::load(storage.open(&time_index_path(dir, base))?, active)?;
        let in_bounds = offset_index
            .last()
            .is_none_or(|e| u64::from(e.position) < size);
        let seg = Segment::from_parts(base, log, offset_index, time_index, size);
        Ok((seg, sorted_o && sorted_t && in_bounds))
    }

    fn from_parts(
        base: Offset,
        log: Arc<dyn StorageFile>,
        offset_index: Index<OffsetEntry>,
        time_index: Index<TimeEntry>,
        size: u64,
    ) -> Segment {
        Segment {
            base_offset: base,
            log,
            offset_index,
            time_index,
            size,
            synced_size: size,
            index_sync_pending: false,
            next_offset: base,
            max_timestamp: -1,
            last_batch_offset: None,
            bytes_since_index: 0,
            first_batch_time_ms: None,
            corrupt: Vec::new(),
            gaps: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn relative(&self, offset: Offset) -> u32 {
        let rel = offset.0 - self.base_offset.0;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&rel),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        rel as u32
    }

    /// Checks the segment's invariants (no IO): synced bytes within the written ones; offsets
    /// from the base on, an empty segment ending at its base; the last batch and every kept
    /// corrupt span inside the segment, spans in order; both indexes' (`Index::check_invariants`).
    /// Panics on a violation.
    pub fn check_invariants(&self) {
        let base = self.base_offset;
        assert!(
            self.synced_size <= self.size,
            "segment {base}: synced {} > size {}",
            self.synced_size,
            self.size
        );
        assert!(
            self.next_offset >= base,
            "segment {base}: next offset {} below its base",
            self.next_offset
        );
        assert_eq!(
            self.size == 0,
            self.next_offset == base,
            "segment {base}: empty exactly when it ends at its base (size {}, next {})",
            self.size,
            self.next_offset
        );
        if let Some(last) = self.last_batch_offset {
            assert!(
                last >= base && last < self.next_offset,
                "segment {base}: last batch {last} outside [{base}, {})",
                self.next_offset
            );
        }
        let extent = super::index::SegmentExtent {
            base,
            offsets: self.next_offset.0 - base.0,
            size: self.size,
        };
        self.offset_index.check_invariants(extent);
        self.time_index.check_invariants(extent);
        let mut previous_end = 0;
        for c in &self.corrupt {
            assert!(
                c.position >= previous_end
                    && c.position < c.next_position
                    && c.next_position <= self.size,
                "segment {base}: corrupt span {c:?} out of order or outside the segment"
            );
            previous_end = c.next_position;
        }
    }

    /// Records a batch just written (or found by a scan) at `position`: sizes, timestamps and,
    /// when `index_interval` is given, index entries every `index.interval.bytes`.
    pub fn on_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
        index_interval: Option<u32>,
        now_ms: Option<i64>,
    ) -> io::Result<()> {
        assert!(
            header.base_offset >= self.next_offset && self.fits(header),
            "batches in a segment strictly increase and fit its relative offsets: batch {} after \
             {} in segment {}",
            header.base_offset,
            self.next_offset,
            self.base_offset
        );
        assert_eq!(position, self.size, "batches in a segment are back to back");
        if let Some(interval) = index_interval
            && self.bytes_since_index >= u64::from(interval)
        {
            let position = u32::try_from(position).expect("segment.bytes is capped below 4 GiB");
            self.offset_index.append(OffsetEntry {
                relative_offset: self.relative(header.base_offset),
                position,
            })?;
            self.bytes_since_index = 0;
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
            self.maybe_time_entry(header.base_offset)?;
        }
        self.bytes_since_index += header.total_size() as u64;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.size += header.total_size() as u64;
        self.next_offset = header.next_offset();
        self.last_batch_offset = Some(header.base_offset);
        if self.first_batch_time_ms.is_none() {
            self.first_batch_time_ms = Some(now_ms.unwrap_or(header.max_timestamp));
        }
        Ok(())
    }

    fn maybe_time_entry(&mut self, offset: Offset) -> io::Result<()> {
        let newer = self
            .time_index
            .last()
            .is_none_or(|e| self.max_timestamp > e.timestamp);
        let later = self
            .time_index
            .last()
            .is_none_or(|e| self.relative(offset) >= e.relative_offset);
        if self.max_timestamp >= 0 && newer && later {
            self.time_index.append(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: self.relative(offset),
            })?;
        }
        Ok(())
    }

    /// Seals the segment when a newer one becomes active: a final `.timeindex` entry covering
    /// every batch, and the index caches dropped.
    pub fn seal(&mut self) -> io::Result<()> {
        if let Some(last) = self.last_batch_offset {
            self.maybe_time_entry(last)?;
        }
        self.offset_index.seal();
        self.time_index.seal();
        self.index_sync_pending = true;
        Ok(())
    }

    /// Whether `header`'s offsets lie in this segment's range: at or after the base, and its next
    /// offset at most `i32::MAX` above it (relative offsets; checked before `last_offset`, which
    /// a damaged header could overflow).
    pub fn fits(&self, header: &BatchHeader) -> bool {
        let rel = header.base_offset.0.saturating_sub(self.base_offset.0);
        header.base_offset >= self.base_offset
            && rel.saturating_add(i64::from(header.last_offset_delta)) < i64::from(i32::MAX)
    }

    /// The header of the batch at `position`, if a plausible one lies wholly before `limit`.
    fn read_header(&self, position: u64, limit: u64) -> io::Result<Option<BatchHeader>> {
        if position + HEADER_LEN as u64 > limit {
            return Ok(None);
        }
        let raw = read_vec(&*self.log, position, HEADER_LEN)?;
        Ok(BatchHeader::parse(&raw).ok())
    }

    /// Reads and validates (CRC and header) the whole batch at `position`, if it ends by `limit`.
    fn read_valid_batch(&self, position: u64, limit: u64) -> io::Result<Option<BatchHeader>> {
        // A read error can be transient (a flipped bit on the way from the disk): before a batch
        // is judged corrupt — and recovery cuts or fences it — it is read again.
        for _ in 0..READ_ATTEMPTS {
            if let Some(h) = self.read_valid_batch_once(position, limit)? {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    fn read_valid_batch_once(&self, position: u64, limit: u64) -> io::Result<Option<BatchHeader>> {
        let Some(header) = self.read_header(position, limit)? else {
            return Ok(None);
        };
        let total = header.total_size() as u64;
        if position + total > limit {
            return Ok(None);
        }
        let raw = read_vec(&*self.log, position, total as usize)?;
        Ok(validate_batch(&raw).ok())
    }

    /// Whether a batch at `base` may follow where the chain expects `expected`: exactly there,
    /// or after it in a log that allows gaps ([`Segment::gaps`]).
    fn follows(&self, base: Offset, expected: Offset) -> bool {
        base == expected || (self.gaps && base > expected)
    }

    /// Walks and validates every batch from `position` (where a batch starting at or after
    /// `offset` must be) to the end of the file, setting sizes and timestamps and — when
    /// `reindex` — the indexes (which the caller has cleared). A valid batch (CRC, header) whose
    /// base offset goes back, or that does not fit the segment, is treated as invalid.
    ///
    /// A batch that fails validation is *corruption* if it lies below `recovery_point` (so it was
    /// fsynced once) and a valid batch with a higher offset follows it: it is kept, reported and
    /// stepped over. Otherwise it starts a *torn tail*: the scan stops there and the caller cuts.
    pub fn scan(
        &mut self,
        position: u64,
        offset: Offset,
        recovery_point: Offset,
        reindex: bool,
        interval: u32,
    ) -> io::Result<ScanOutcome> {
        let file_size = self.log.len()?;
        self.size = position;
        self.next_offset = offset;
        let index_interval = reindex.then_some(interval);
        let mut out = ScanOutcome::default();
        let mut pos = position;
        while pos < file_size {
            let valid = self
                .read_valid_batch(pos, file_size)?
                .filter(|h| self.follows(h.base_offset, self.next_offset) && self.fits(h));
            if let Some(h) = valid {
                self.on_batch(pos, &h, index_interval, None)?;
                pos += h.total_size() as u64;
                continue;
            }
            let mut follower = None;
            if self.next_offset < recovery_point
                && let Some(bad) = self.read_header(pos, file_size)?
            {
                let next_pos = pos + bad.total_size() as u64;
                let next = self.read_valid_batch(next_pos, file_size)?;
                // The follower's base offset is outside its CRC: accept it only where the corrupt
                // batch could have ended (each record takes at least one byte of it), counted
                // from its own stored base offset when that is plausible (where the chain
                // expects a batch, or after it where gaps are allowed), else from `next_offset`.
                let start = if self.follows(bad.base_offset, self.next_offset) && self.fits(&bad) {
                    bad.base_offset
                } else {
                    self.next_offset
                };
                let limit = start.0.saturating_add(bad.total_size() as i64);
                follower = next
                    .filter(|n| {
                        n.base_offset > self.next_offset && n.base_offset.0 <= limit && self.fits(n)
                    })
                    .map(|n| (bad, next_pos, n));
            }
            let Some((bad, next_pos, next)) = follower else {
                out.torn = true;
                break;
            };
            out.corrupt.push((pos, bad.base_offset));
            self.corrupt.push(CorruptSpan {
                position: pos,
                offset: self.next_offset,
                next_position: next_pos,
                next_offset: next.base_offset,
            });
            // Step over the corrupt batch; the batch after it resumes the chain.
            self.size = next_pos;
            self.bytes_since_index += next_pos - pos;
            self.next_offset = next.base_offset;
            pos = next_pos;
        }
        out.valid_end = pos;
        assert_eq!(self.size, pos, "scan accounts for every byte it accepts");
        Ok(out)
    }

    /// Cuts the segment at `position` (a batch boundary); `next_offset` is the next offset of
    /// what stays before it (the last batch's, a corrupt span's, or the base offset), which
    /// becomes the segment's end (see [`Segment::cut_point`]).
    pub fn truncate(&mut self, position: u64, next_offset: Offset) -> io::Result<()> {
        self.log.set_len(position)?;
        self.corrupt.retain(|c| c.next_position <= position);
        self.size = position;
        self.synced_size = self.synced_size.min(position);
        self.next_offset = next_offset;
        let rel = i64::from(self.relative(next_offset));
        self.offset_index.truncate_keys_from(rel)?;
        while self
            .time_index
            .last()
            .is_some_and(|e| i64::from(e.relative_offset) >= rel)
        {
            let n = self.time_index.len() - 1;
            self.time_index.truncate_entries(n)?;
        }
        // What the cut removed may have held the segment's newest timestamp and its last batch:
        // recompute both from what remains (truncation is rare; this walks headers only), so a
        // segment sealed again gets the right final `.timeindex` entry.
        let (mut max_timestamp, mut last_batch_offset) = (-1, None);
        self.walk_headers(0, self.base_offset, |h| {
            max_timestamp = max_timestamp.max(h.max_timestamp);
            last_batch_offset = Some(h.base_offset);
        })?;
        self.max_timestamp = max_timestamp;
        self.last_batch_offset = last_batch_offset;
        if self.size == 0 {
            self.first_batch_time_ms = None;
        }
        Ok(())
    }

    /// Calls `f` on every batch header from `position` (where a batch starting at or after
    /// `expected` should be) to the end of the segment, stepping over corrupt spans recovery kept
    /// and stopping at the first break in the chain.
    pub fn walk_headers(
        &self,
        position: u64,
        expected: Offset,
        mut f: impl FnMut(&BatchHeader),
    ) -> io::Result<()> {
        let (mut pos, mut expected) = (position, expected);
        loop {
            match self.step(pos, expected)? {
                Step::End | Step::Broken(_) => return Ok(()),
                Step::Corrupt(span) => (pos, expected) = (span.next_position, span.next_offset),
                Step::Batch(h) => {
                    f(&h);
                    (pos, expected) = (pos + h.total_size() as u64, h.next_offset());
                }
            }
        }
    }

    /// What is at `position`, where the chain expects a batch starting at or after `expected`
    /// (the previous batch's next offset: offsets strictly increase, gaps allowed).
    pub fn step(&self, position: u64, expected: Offset) -> io::Result<Step> {
        if position >= self.size {
            return Ok(Step::End);
        }
        if let Some(span) = self.corrupt.iter().find(|c| c.position == position) {
            return Ok(Step::Corrupt(*span));
        }
        match self.read_header(position, self.size)? {
            // `lastOffsetDelta >= 0` and no more records than offsets: the header must say where
            // the batch ends. The CRC is not checked on a walk, so a header read with a damaged
            // (say negative) delta would otherwise let a walk step over its batch as if it ended
            // before the offset sought.
            Some(h)
                if self.follows(h.base_offset, expected)
                    && h.last_offset_delta >= 0
                    && h.record_count >= 0
                    && i64::from(h.record_count) <= i64::from(h.last_offset_delta) + 1
                    && self.fits(&h)
                    && position + h.total_size() as u64 <= self.size =>
            {
                Ok(Step::Batch(h))
            }
            _ => Ok(Step::Broken(expected)),
        }
    }

    /// Where to start walking towards `offset`: the `.index` entry at or below it, if the batch
    /// there really starts at exactly the offset the entry names (an index is derived data and
    /// may lie after disk damage; an entry naming an earlier offset than its batch's would make
    /// a walk skip the batches in between), else the segment's start.
    pub(super) fn walk_start(&self, offset: Offset) -> io::Result<(u64, Offset)> {
        if let Some(e) = self.offset_index.floor(offset.0 - self.base_offset.0)? {
            let named = Offset(self.base_offset.0 + i64::from(e.relative_offset));
            if named <= offset
                && let Step::Batch(h) = self.step(u64::from(e.position), named)?
                && h.base_offset == named
            {
                return Ok((u64::from(e.position), named));
            }
            tracing::warn!(segment = self.base_offset.0, entry = ?e, "index entry does not match the log; scanning from the segment start");
        }
        Ok((0, self.base_offset))
    }

    /// Position of the first batch whose last offset is at or after `offset` (the one holding
    /// it, or the next one if it falls in a gap; the walk's best effort: `None` if the segment
    /// ends first or corruption is in the way).
    pub fn position_of(&self, offset: Offset) -> io::Result<Option<u64>> {
        if offset < self.base_offset {
            return Ok(Some(0));
        }
        Ok(self.locate(offset)?.ok().flatten().map(|(p, _)| p))
    }

    /// Position and header of the first batch whose last offset is at or after `offset` (the
    /// floor `.index` entry, then a walk forward); `Ok(None)` if the segment ends first;
    /// `Err(at)` if corruption is in the way (`at`: the offset that cannot be served).
    fn locate(&self, offset: Offset) -> io::Result<Result<Option<(u64, BatchHeader)>, Offset>> {
        let (mut pos, mut expected) = self.walk_start(offset)?;
        loop {
            match self.step(pos, expected)? {
                Step::End => return Ok(Ok(None)),
                Step::Broken(at) => return Ok(Err(at)),
                Step::Corrupt(span) if offset < span.next_offset => return Ok(Err(span.offset)),
                Step::Corrupt(span) => (pos, expected) = (span.next_position, span.next_offset),
                Step::Batch(h) if h.last_offset() >= offset => return Ok(Ok(Some((pos, h)))),
                Step::Batch(h) => (pos, expected) = (pos + h.total_size() as u64, h.next_offset()),
            }
        }
    }

    /// Where to cut so that every batch ending at or after `offset` goes (follower truncation):
    /// the start of the first batch whose last offset is at or after `offset`, or of the first
    /// damage in the way, with the next offset of what stays before it — the segment's new end,
    /// at most `offset` (below it when `offset` falls inside a batch or in a gap). The segment's
    /// end if `offset` lies beyond it. Walks from the segment's start, not from an `.index`
    /// entry: with gaps allowed, only the walk knows where the batch before the cut ended (and
    /// the cut's `truncate` walks every header anyway).
    pub fn cut_point(&self, offset: Offset) -> io::Result<(u64, Offset)> {
        let (mut pos, mut expected) = (0, self.base_offset);
        loop {
            match self.step(pos, expected)? {
                Step::End | Step::Broken(_) => return Ok((pos.min(self.size), expected)),
                Step::Corrupt(span) if offset < span.next_offset => {
                    return Ok((span.position, span.offset));
                }
                Step::Corrupt(span) => (pos, expected) = (span.next_position, span.next_offset),
                Step::Batch(h) if h.last_offset() >= offset => return Ok((pos, expected)),
                Step::Batch(h) => (pos, expected) = (pos + h.total_size() as u64, h.next_offset()),
            }
        }
    }

    /// Reads whole, CRC-checked batches from the first one whose last offset is at or after
    /// `offset`: at most `max_bytes` but at least one batch (KIP-74), none reaching
    /// `upper_bound`. Stops before the first batch that is corrupt or breaks the chain (goes
    /// back, or leaves the segment's offsets), and says so in `corrupt_at`.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> io::Result<SegmentRead> {
        let (pos, first) = match self.locate(offset)? {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(SegmentRead::default()),
            Err(at) => {
                return Ok(SegmentRead {
                    records: Vec::new(),
                    corrupt_at: Some(at),
                });
            }
        };
        if first.next_offset() > upper_bound {
            return Ok(SegmentRead::default());
        }
        let available = (self.size - pos) as usize;
        let len = max_bytes.max(first.total_size()).min(available);
        let mut buf = read_vec(&*self.log, pos, len)?;
        let (mut end, mut expected) = (0usize, first.base_offset);
        let mut corrupt_at = None;
        while end < buf.len() {
            if let Some(span) = self.corrupt.iter().find(|c| c.position == pos + end as u64) {
                corrupt_at = Some(span.offset);
                break;
            }
            let rest = &buf[end..];
            let h = match BatchHeader::parse(rest) {
                Ok(h) if h.total_size() > rest.len() => break, // continues beyond this read
                Ok(h) => h,
                Err(_) if rest.len() < HEADER_LEN => break,
                Err(_) => {
                    corrupt_at = Some(expected);
                    break;
                }
            };
            if !self.follows(h.base_offset, expected)
                || !self.fits(&h)
                || validate_batch(&rest[..h.total_size()]).is_err()
            {
                corrupt_at = Some(expected);
                break;
            }
            if h.next_offset() > upper_bound {
                break;
            }
            end += h.total_size();
            expected = h.next_offset();
        }
        buf.truncate(end);
        Ok(SegmentRead {
            records: buf,
            corrupt_at,
        })
    }

    /// The end of a segment whose files recovery may trust, found by walking every batch header
    /// from the start with the `.timeindex` checked on the way, or `None` if the walk does not
    /// end exactly at the end of the file or the `.timeindex` is not what [`Segment::on_batch`]
    /// and [`Segment::seal`] write for these batches: every entry names a batch start, in order,
    /// with the largest `maxTimestamp` up to and including that batch; for a `sealed` segment the
    /// last entry also holds the segment's newest timestamp (no entry: no batch has one).
    /// Recovery trusts a segment's indexes only when this holds.
    ///
    /// Why every header, not just the tail: CreateTime timestamps need not increase, so no batch
    /// near the end vouches for the segment's newest timestamp, and an entry `(T, o)` speaks for
    /// every batch up to `o` (a lookup starting at `o` never looks back). A damaged `.timeindex`
    /// that passed a tail check made `offset_for_timestamp` skip the segment and time retention
    /// misjudge its age (fuzz finding `index_files/regression-timestamp-lookup-misses-a-segment`).
    /// The walk reads one header per batch (no payloads, no CRCs): far less than the scan that
    /// rebuilds the indexes, but it grows with the segment. `.index` entries are still verified
    /// on use (`walk_start`).
    pub fn walk_tail(&self, sealed: bool) -> io::Result<Option<Walk>> {
        let entries = self.time_index.entries()?;
        let mut entries = entries.iter().peekable();
        let (mut pos, mut expected) = (0u64, self.base_offset);
        let mut walk = Walk {
            next_offset: expected,
            first: None,
            last: None,
            newest: -1,
        };
        loop {
            match self.step(pos, expected)? {
                Step::End => break,
                Step::Broken(_) => return Ok(None),
                Step::Corrupt(span) => (pos, expected) = (span.next_position, span.next_offset),
                Step::Batch(h) => {
                    walk.newest = walk.newest.max(h.max_timestamp);
                    // Not `relative`: a damaged header may push offsets past the u32 range.
                    let rel = h.base_offset.0 - self.base_offset.0;
                    while let Some(e) = entries.next_if(|e| i64::from(e.relative_offset) == rel) {
                        if e.timestamp != walk.newest {
                            return Ok(None);
                        }
                    }
                    (pos, expected) = (pos + h.total_size() as u64, h.next_offset());
                    walk.first.get_or_insert(h);
                    walk.last = Some(h);
                }
            }
        }
        walk.next_offset = expected;
        // Entries left over name no batch start (or are out of order).
        let last_entry_ok = !sealed
            || self
                .time_index
                .last()
                .map_or(walk.newest < 0, |e| e.timestamp == walk.newest);
        let entries_match = entries.next().is_none() && last_entry_ok;
        Ok((pos == self.size && entries_match).then_some(walk))
    }

    /// The first record at or after `timestamp_ms` in this segment: `(offset, timestamp)`.
    pub fn find_timestamp(&self, timestamp_ms: i64) -> io::Result<Option<(Offset, i64)>> {
        if self.max_timestamp < timestamp_ms {
            return Ok(None);
        }
        // Every batch up to the one starting at the entry's offset is older than the target.
        let (mut pos, mut expected) = (0, self.base_offset);
        if let Some(e) = self.time_index.lower(timestamp_ms)? {
            let offset = Offset(self.base_offset.0 + i64::from(e.relative_offset));
            // Verified on use, like `.index` entries: the entry must name a batch start whose
            // own newest timestamp it covers; a damaged entry falls back to a scan.
            match self.locate(offset)? {
                Ok(Some((p, h))) if h.base_offset == offset && h.max_timestamp <= e.timestamp => {
                    (pos, expected) = (p, h.base_offset);
                }
                _ => {
                    tracing::warn!(segment = self.base_offset.0, entry = ?e, "time index entry does not match the log; scanning the segment")
                }
            }
        }
        loop {
            match self.step(pos, expected)? {
                Step::End | Step::Broken(_) => return Ok(None),
                Step::Corrupt(span) => (pos, expected) = (span.next_position, span.next_offset),
                Step::Batch(h) if h.max_timestamp >= timestamp_ms => {
                    let raw = read_vec(&*self.log, pos, h.total_size())?;
                    return Ok(Some(record_at_timestamp(&raw, &h, timestamp_ms)));
                }
                Step::Batch(h) => (pos, expected) = (pos + h.total_size() as u64, h.next_offset()),
            }
        }
    }
}

/// Finds the first record of a batch whose timestamp is `>= target` (the batch's
/// `maxTimestamp` is). Exact for uncompressed `CreateTime` batches; for compressed ones the
/// records are not decompressed and the batch's base offset is returned with its `maxTimestamp`.
pub fn record_at_timestamp(batch: &[u8], header: &BatchHeader, target: i64) -> (Offset, i64) {
    if header.timestamp_type() == TimestampType::LogAppendTime {
        return (header.base_offset, header.max_timestamp);
    }
    if header.compression_codec() != 0 {
        return (header.base_offset, header.max_timestamp);
    }
    let mut pos = HEADER_LEN;
    for _ in 0..header.record_count {
        let Some((len, n)) = read_varint(&batch[pos.min(batch.len())..]) else {
            break;
        };
        let rec_start = pos + n;
        let rec = &batch[rec_start.min(batch.len())..];
        // attributes (1 byte), timestampDelta (varlong), offsetDelta (varint)
        let Some((ts_delta, n1)) = rec.get(1..).and_then(read_varint) else {
            break;
        };
        let Some((off_delta, _)) = rec.get(1 + n1..).and_then(read_varint) else {
            break;
        };
        let ts = header.base_timestamp.saturating_add(ts_delta);
        if ts >= target {
            return (Offset(header.base_offset.0 + off_delta), ts);
        }
        let Ok(len) = usize::try_from(len) else { break };
        pos = rec_start + len;
    }
    (header.base_offset, header.max_timestamp)
}

/// Reads a zig-zag varint (Kafka's `varint`/`varlong`); returns the value and bytes used.
fn read_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, b) in buf.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let decoded = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Some((decoded, i + 1));
        }
    }
    None
}
