//! Writes one cleaned segment: `<base>.log.cleaned` with its `.index.cleaned` and
//! `.timeindex.cleaned`, indexed exactly as the log indexes what it appends and seals
//! (`Segment::on_batch`, `Segment::seal`): an `.index` entry (and a `.timeindex` entry if the
//! newest timestamp grew) at the first batch after every `index.interval.bytes`, and a final
//! `.timeindex` entry for the segment's newest timestamp. The base offset names the segment;
//! its first batch may start later (a gap left by dropped batches).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::BatchHeader;
use crate::storage::{Storage, StorageFile};
use crate::types::Offset;

use super::super::index::{IndexEntry, OffsetEntry, TimeEntry};
use super::super::segment::{index_path, log_path, time_index_path};

/// The suffix of a file a cleaning writes before the swap.
pub const CLEANED_SUFFIX: &str = ".cleaned";

/// Where the cleaned copy of `final_path` is written.
pub fn cleaned_path(final_path: &Path) -> PathBuf {
    let mut name = final_path.as_os_str().to_owned();
    name.push(CLEANED_SUFFIX);
    PathBuf::from(name)
}

/// The three final paths of segment `base` (`.log` first).
pub fn segment_paths(dir: &Path, base: Offset) -> [PathBuf; 3] {
    [
        log_path(dir, base),
        index_path(dir, base),
        time_index_path(dir, base),
    ]
}

/// What a finished output segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenSegment {
    pub base_offset: Offset,
    pub size: u64,
    /// The last batch's next offset (the base offset if empty).
    pub next_offset: Offset,
    pub last_batch_offset: Option<Offset>,
    /// Largest batch `maxTimestamp`, -1 if none.
    pub max_timestamp: i64,
}

/// An output segment being written.
#[derive(Debug)]
pub struct SegmentWriter {
    files: [Arc<dyn StorageFile>; 3],
    written: WrittenSegment,
    index_interval: u32,
    bytes_since_index: u64,
    offset_entries: u64,
    time_entries: u64,
    last_time_entry: Option<TimeEntry>,
}

impl SegmentWriter {
    /// Creates (or empties) the `.cleaned` files of segment `base`.
    pub fn create(
        storage: &dyn Storage,
        dir: &Path,
        base: Offset,
        index_interval: u32,
    ) -> io::Result<SegmentWriter> {
        let [log, index, time] = segment_paths(dir, base).map(|p| cleaned_path(&p));
        let files = [
            storage.open(&log)?,
            storage.open(&index)?,
            storage.open(&time)?,
        ];
        for f in &files {
            f.set_len(0)?;
        }
        Ok(SegmentWriter {
            files,
            written: WrittenSegment {
                base_offset: base,
                size: 0,
                next_offset: base,
                last_batch_offset: None,
                max_timestamp: -1,
            },
            index_interval,
            bytes_since_index: 0,
            offset_entries: 0,
            time_entries: 0,
            last_time_entry: None,
        })
    }

    fn relative(&self, offset: Offset) -> u32 {
        u32::try_from(offset.0 - self.written.base_offset.0)
            .expect("a cleaned group's offsets fit the index's relative offsets")
    }

    /// Appends one whole batch (its header parsed from `bytes`).
    pub fn append(&mut self, header: &BatchHeader, bytes: &[u8]) -> io::Result<()> {
        assert!(
            header.base_offset >= self.written.next_offset && bytes.len() == header.total_size(),
            "cleaned batches keep increasing offsets: {} after {}",
            header.base_offset,
            self.written.next_offset
        );
        let position = self.written.size;
        self.files[0].write_at(bytes, position)?;
        if self.bytes_since_index >= u64::from(self.index_interval) {
            let position = u32::try_from(position).expect("a cleaned group fits segment.bytes");
            let entry = OffsetEntry {
                relative_offset: self.relative(header.base_offset),
                position,
            };
            self.write_entry(1, self.offset_entries, entry)?;
            self.offset_entries += 1;
            self.bytes_since_index = 0;
            self.written.max_timestamp = self.written.max_timestamp.max(header.max_timestamp);
            self.maybe_time_entry(header.base_offset)?;
        }
        self.bytes_since_index += bytes.len() as u64;
        self.written.max_timestamp = self.written.max_timestamp.max(header.max_timestamp);
        self.written.size += bytes.len() as u64;
        self.written.next_offset = header.next_offset();
        self.written.last_batch_offset = Some(header.base_offset);
        Ok(())
    }

    fn write_entry<E: IndexEntry>(&self, file: usize, n: u64, entry: E) -> io::Result<()> {
        let mut buf = vec![0u8; E::SIZE];
        entry.encode(&mut buf);
        self.files[file].write_at(&buf, n * E::SIZE as u64)
    }

    /// `Segment::maybe_time_entry`: an entry when the newest timestamp grew.
    fn maybe_time_entry(&mut self, offset: Offset) -> io::Result<()> {
        let ts = self.written.max_timestamp;
        let rel = self.relative(offset);
        let newer = self.last_time_entry.is_none_or(|e| ts > e.timestamp);
        let later = self
            .last_time_entry
            .is_none_or(|e| rel >= e.relative_offset);
        if ts >= 0 && newer && later {
            let entry = TimeEntry {
                timestamp: ts,
                relative_offset: rel,
            };
            self.write_entry(2, self.time_entries, entry)?;
            self.time_entries += 1;
            self.last_time_entry = Some(entry);
        }
        Ok(())
    }

    /// Seals the segment as `Segment::seal` does (a final `.timeindex` entry for the newest
    /// timestamp) and fsyncs its three files. Returns what it holds.
    pub fn finish(mut self) -> io::Result<WrittenSegment> {
        if let Some(last) = self.written.last_batch_offset {
            self.maybe_time_entry(last)?;
        }
        for f in &self.files {
            f.sync_data()?;
        }
        Ok(self.written)
    }
}
