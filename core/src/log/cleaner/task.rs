//! [`CleanTask`]: the IO of one cleaning, run in bounded steps with no access to the log (the
//! driver runs it off its reactor, outside the log's lock, and may sleep between steps to
//! honour `log.cleaner.io.max.bytes.per.second`). Two phases: the offset map is filled from the
//! dirty section, then every source segment is read again and its surviving batches are written
//! to the `.cleaned` files of its group's output segment; last, the directory is fsynced so
//! every `.cleaned` file's name is durable before `finish_clean` writes the swap marker.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::{BatchHeader, BatchIter, compute_crc};
use crate::storage::{Storage, StorageFile, read_vec};
use crate::types::Offset;

use super::offset_map::OffsetMap;
use super::records::{Record, decode_batch, encode_batch};
use super::retain::{BatchFate, RetainRules, RetainStats};
use super::writer::{SegmentWriter, WrittenSegment};

/// Bytes of source segments one [`CleanTask::step`] reads, at most (one larger batch excepted).
pub const CLEAN_STEP_BYTES: usize = 1 << 20;

/// A sealed segment a cleaning reads and replaces, as it was when the cleaning began.
#[derive(Debug, Clone)]
pub struct SourceSegment {
    pub base_offset: Offset,
    pub log: Arc<dyn StorageFile>,
    pub size: u64,
    /// Where the next segment starts: every batch of this one ends at or below it.
    pub end: Offset,
    pub offset_index_bytes: u64,
    pub time_index_bytes: u64,
}

/// Consecutive sources whose cleaned batches go to one output segment, named by the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Indexes into the sources, in order.
    pub sources: std::ops::Range<usize>,
    /// What was written; `None` for a group (never the first) left with no batch, whose
    /// sources simply go.
    pub output: Option<WrittenSegment>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStep {
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// Every step is done: hand the task to `PartitionLog::finish_clean`.
    pub done: bool,
}

#[derive(Debug)]
enum Phase {
    /// Filling the offset map from `source`, at byte `pos`.
    Map {
        source: usize,
        pos: u64,
    },
    /// Writing `group`: reading `source` at byte `pos`.
    Write {
        group: usize,
        source: usize,
        pos: u64,
        writer: Option<SegmentWriter>,
    },
    /// Every output written and fsynced: the directory entries next.
    SyncDir,
    Done,
}

/// One cleaning's work (see the module docs). Built by `PartitionLog::begin_clean`.
#[derive(Debug)]
pub struct CleanTask {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) dir: PathBuf,
    pub(super) sources: Vec<SourceSegment>,
    /// Filled once the offset map is complete.
    pub(super) groups: Vec<Group>,
    /// The end of the cleanable range (the first uncleanable offset).
    pub(super) cleanable_end: Offset,
    pub(super) map: OffsetMap,
    pub(super) now_ms: i64,
    pub(super) delete_retention_ms: i64,
    pub(super) index_interval: u32,
    pub(super) segment_bytes: u64,
    pub(super) segment_index_bytes: u64,
    pub(super) producer_last_offsets: BTreeSet<Offset>,
    /// The log's truncation count when the task began.
    pub(super) truncations: u64,
    pub(super) stats: TaskStats,
    phase: Phase,
    /// Where the last batch read ended: the next one must start at or after it.
    read_end: Offset,
}

/// What a cleaning did, counted as it goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskStats {
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub batches_dropped: u64,
    pub batches_rewritten: u64,
    pub batches_copied: u64,
    pub records: RetainStats,
}

impl CleanTask {
    /// A task that fills `map` from the dirty section, then cleans `sources`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        sources: Vec<SourceSegment>,
        cleanable_end: Offset,
        map: OffsetMap,
        now_ms: i64,
        config: &super::super::LogConfig,
        producer_last_offsets: BTreeSet<Offset>,
        truncations: u64,
    ) -> CleanTask {
        assert!(!sources.is_empty(), "a cleaning has sources");
        let first_dirty = map.start();
        let source = sources
            .iter()
            .position(|s| s.end > first_dirty)
            .unwrap_or(sources.len());
        CleanTask {
            storage,
            dir,
            sources,
            groups: Vec::new(),
            cleanable_end,
            map,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            index_interval: config.index_interval_bytes,
            segment_bytes: config.segment_bytes,
            segment_index_bytes: u64::from(config.segment_index_bytes),
            producer_last_offsets,
            truncations,
            stats: TaskStats::default(),
            phase: Phase::Map { source, pos: 0 },
            read_end: Offset(i64::MIN),
        }
    }

    /// The offset map's range: `[first dirty, next first dirty)`.
    pub fn dirty_range(&self) -> (Offset, Offset) {
        (self.map.start(), self.map.end())
    }

    pub fn stats(&self) -> TaskStats {
        self.stats
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Does a bounded amount of the work: reads at most about [`CLEAN_STEP_BYTES`] of source
    /// segments (or syncs the directory). An error leaves the task unusable: hand it to
    /// `PartitionLog::abort_clean`.
    pub fn step(&mut self) -> io::Result<CleanStep> {
        let before = self.stats;
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Map { source, pos } => self.phase = self.map_step(source, pos)?,
            Phase::Write {
                group,
                source,
                pos,
                writer,
            } => self.phase = self.write_step(group, source, pos, writer)?,
            Phase::SyncDir => self.storage.sync_dir(&self.dir)?,
            Phase::Done => {}
        }
        Ok(CleanStep {
            read_bytes: self.stats.read_bytes - before.read_bytes,
            written_bytes: self.stats.written_bytes - before.written_bytes,
            done: self.is_done(),
        })
    }

    /// Adds the batches of one chunk of `source` to the offset map.
    fn map_step(&mut self, source: usize, pos: u64) -> io::Result<Phase> {
        let Some(src) = self.sources.get(source).cloned() else {
            // Every dirty batch is in the map: the next dirty section starts past the range.
            self.map.cover_to(self.cleanable_end);
            return Ok(self.start_writing());
        };
        let chunk = read_chunk(&*src.log, pos, src.size)?;
        self.stats.read_bytes += chunk.len() as u64;
        let first_dirty = self.map.start();
        let mut used = 0;
        for item in BatchIter::new(&chunk) {
            let (at, header) = item.map_err(invalid)?;
            let raw = &chunk[at..at + header.total_size()];
            self.check_batch(source, &header, raw)?;
            used = at + header.total_size();
            if header.last_offset() < first_dirty {
                continue;
            }
            let records = keyed_records(&header, raw)?;
            let keys = records.iter().map(|(k, o)| (k, *o));
            if !self.map.add_batch(keys, header.next_offset()) {
                // The budget is spent: the dirty section this cleaning covers ends here.
                return Ok(self.start_writing());
            }
        }
        let pos = advance(pos, used, src.size)?;
        Ok(if pos >= src.size {
            Phase::Map {
                source: source + 1,
                pos: 0,
            }
        } else {
            Phase::Map { source, pos }
        })
    }

    /// Ends the map phase: keeps only the sources the map reaches into (beyond it nothing could
    /// be superseded) and groups them into output segments.
    fn start_writing(&mut self) -> Phase {
        let end = self.map.end();
        let keep = self
            .sources
            .iter()
            .take_while(|s| s.base_offset < end)
            .count()
            .max(1);
        self.sources.truncate(keep);
        self.groups = group_sources(&self.sources, self.segment_bytes, self.segment_index_bytes);
        self.read_end = Offset(i64::MIN);
        Phase::Write {
            group: 0,
            source: 0,
            pos: 0,
            writer: None,
        }
    }

    /// Cleans one chunk of `source` into `group`'s output.
    fn write_step(
        &mut self,
        group: usize,
        source: usize,
        pos: u64,
        mut writer: Option<SegmentWriter>,
    ) -> io::Result<Phase> {
        let src = self.sources[source].clone();
        let chunk = read_chunk(&*src.log, pos, src.size)?;
        self.stats.read_bytes += chunk.len() as u64;
        let mut used = 0;
        for item in BatchIter::new(&chunk) {
            let (at, header) = item.map_err(invalid)?;
            let raw = &chunk[at..at + header.total_size()];
            self.check_batch(source, &header, raw)?;
            used = at + header.total_size();
            self.clean_batch(&header, raw, group, &mut writer)?;
        }
        let pos = advance(pos, used, src.size)?;
        if pos < src.size {
            return Ok(Phase::Write {
                group,
                source,
                pos,
                writer,
            });
        }
        if source + 1 < self.groups[group].sources.end {
            return Ok(Phase::Write {
                group,
                source: source + 1,
                pos: 0,
                writer,
            });
        }
        // The group is complete.
        if writer.is_none() && group == 0 {
            // The first output always exists (it keeps the log start where it is), even empty.
            writer = Some(self.create_writer(0)?);
        }
        self.groups[group].output = writer.map(SegmentWriter::finish).transpose()?;
        Ok(if group + 1 < self.groups.len() {
            Phase::Write {
                group: group + 1,
                source: source + 1,
                pos: 0,
                writer: None,
            }
        } else {
            Phase::SyncDir
        })
    }

    /// Checks what the cleaning relies on in a source batch read from disk: its CRC, and that
    /// it lies inside its segment after the batch before it (the base offset is outside the
    /// CRC). An error aborts the cleaning; nothing here panics on bad data.
    fn check_batch(&mut self, source: usize, header: &BatchHeader, raw: &[u8]) -> io::Result<()> {
        let src = &self.sources[source];
        if compute_crc(raw) != header.crc
            || header.base_offset < src.base_offset.max(self.read_end)
            || header.next_offset() > src.end
            || header.last_offset_delta < 0
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "corrupt or misplaced batch at offset {} in segment {}",
                    header.base_offset, src.base_offset
                ),
            ));
        }
        self.read_end = header.next_offset();
        Ok(())
    }

    fn create_writer(&self, group: usize) -> io::Result<SegmentWriter> {
        let base = self.sources[self.groups[group].sources.start].base_offset;
        SegmentWriter::create(&*self.storage, &self.dir, base, self.index_interval)
    }

    /// Judges one batch and writes what survives of it.
    fn clean_batch(
        &mut self,
        header: &BatchHeader,
        raw: &[u8],
        group: usize,
        writer: &mut Option<SegmentWriter>,
    ) -> io::Result<()> {
        let records = if header.is_control() {
            Vec::new()
        } else {
            decode_batch(raw).map_err(invalid)?.records
        };
        let rules = RetainRules {
            map: &self.map,
            now_ms: self.now_ms,
            delete_retention_ms: self.delete_retention_ms,
            producer_last_offsets: &self.producer_last_offsets,
        };
        let fate = rules.judge(header, records, &mut self.stats.records);
        let rewritten;
        let bytes = match fate {
            BatchFate::Drop => {
                self.stats.batches_dropped += 1;
                return Ok(());
            }
            BatchFate::Verbatim => {
                self.stats.batches_copied += 1;
                raw
            }
            BatchFate::Rewrite {
                records,
                delete_horizon_ms,
            } => {
                self.stats.batches_rewritten += 1;
                rewritten = rewrite(header, &records, delete_horizon_ms)?;
                &rewritten[..]
            }
        };
        let new_header = BatchHeader::parse(bytes).map_err(invalid)?;
        if writer.is_none() {
            *writer = Some(self.create_writer(group)?);
        }
        let w = writer.as_mut().expect("created above");
        w.append(&new_header, bytes)?;
        self.stats.written_bytes += bytes.len() as u64;
        Ok(())
    }
}

/// Re-encodes a batch with its surviving records.
fn rewrite(header: &BatchHeader, records: &[Record], horizon: Option<i64>) -> io::Result<Vec<u8>> {
    let bytes = encode_batch(header, records, horizon).map_err(invalid)?;
    let new = BatchHeader::parse(&bytes).map_err(invalid)?;
    assert!(
        new.base_offset == header.base_offset && new.last_offset_delta == header.last_offset_delta,
        "a rewritten batch keeps its offsets: {header:?} became {new:?}"
    );
    Ok(bytes)
}

/// The keyed records of a data batch as `(key, offset)` (none for a control batch).
fn keyed_records(header: &BatchHeader, raw: &[u8]) -> io::Result<Vec<(bytes::Bytes, Offset)>> {
    if header.is_control() {
        return Ok(Vec::new());
    }
    let decoded = decode_batch(raw).map_err(invalid)?;
    Ok(decoded
        .records
        .into_iter()
        .filter_map(|r| r.key.map(|k| (k, r.offset)))
        .collect())
}

/// Groups consecutive sources so each group's output fits one segment: its sources' bytes fit
/// `segment.bytes`, their index files `segment.index.bytes` (the output has no more bytes, so
/// no more index entries, than its sources), and its offsets the index's relative offsets.
pub fn group_sources(
    sources: &[SourceSegment],
    segment_bytes: u64,
    index_bytes: u64,
) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut start = 0;
    while start < sources.len() {
        let first = &sources[start];
        let (mut size, mut oi, mut ti) =
            (first.size, first.offset_index_bytes, first.time_index_bytes);
        let mut end = start + 1;
        while let Some(next) = sources.get(end) {
            let fits = size + next.size <= segment_bytes
                && oi + next.offset_index_bytes <= index_bytes
                && ti + next.time_index_bytes <= index_bytes
                && next.end.0 - first.base_offset.0 <= i64::from(i32::MAX);
            if !fits {
                break;
            }
            (size, oi, ti) = (
                size + next.size,
                oi + next.offset_index_bytes,
                ti + next.time_index_bytes,
            );
            end += 1;
        }
        groups.push(Group {
            sources: start..end,
            output: None,
        });
        start = end;
    }
    groups
}

/// Reads whole batches of a segment from `pos`: about [`CLEAN_STEP_BYTES`], or the one batch
/// there if it is larger.
fn read_chunk(file: &dyn StorageFile, pos: u64, size: u64) -> io::Result<Vec<u8>> {
    if pos >= size {
        return Ok(Vec::new());
    }
    let want = (size - pos).min(CLEAN_STEP_BYTES as u64) as usize;
    let chunk = read_vec(file, pos, want)?;
    if BatchIter::new(&chunk).next().is_some() || (chunk.len() as u64) < want as u64 {
        return truncated_check(chunk, want);
    }
    let header = BatchHeader::parse(&chunk).map_err(invalid)?;
    let len = header.total_size().min((size - pos) as usize);
    truncated_check(read_vec(file, pos, len)?, len)
}

fn truncated_check(chunk: Vec<u8>, want: usize) -> io::Result<Vec<u8>> {
    if chunk.len() < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "segment shorter than its size",
        ));
    }
    Ok(chunk)
}

/// The position after `used` bytes of whole batches; none at all (in a non-empty rest) is a
/// batch that does not fit its segment.
fn advance(pos: u64, used: usize, size: u64) -> io::Result<u64> {
    if used == 0 && pos < size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no whole batch at position {pos}"),
        ));
    }
    Ok(pos + used as u64)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
