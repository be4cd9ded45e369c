//! [`PartitionLog::begin_clean`]: whether a cleaning is due and over which segments (the rules
//! are in the parent module's docs). Cheap: segment metadata, the cleaner checkpoint file, and
//! at most one batch header read.

use std::collections::BTreeSet;

use crate::batch::{BatchHeader, HEADER_LEN};
use crate::storage::read_vec;
use crate::types::Offset;

use super::super::segment::{Segment, log_path};
use super::super::{LogError, PartitionLog, io_err};
use super::checkpoint::read_cleaner_checkpoint;
use super::offset_map::OffsetMap;
use super::task::{CleanTask, SourceSegment};

/// The cleanable range of a log and how dirty it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanable {
    /// The first uncleanable offset: the cleanable segments are those before it.
    pub end: Offset,
    /// Where the dirty section starts (the cleaner checkpoint, clamped to the range).
    pub first_dirty: Offset,
    /// Bytes of the cleanable segments.
    pub cleanable_bytes: u64,
    /// Bytes of the cleanable segments at or after the one holding `first_dirty`.
    pub dirty_bytes: u64,
}

impl Cleanable {
    /// `dirty / cleanable` (0 for an empty range).
    pub fn dirty_ratio(&self) -> f64 {
        if self.cleanable_bytes == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / self.cleanable_bytes as f64
        }
    }
}

impl PartitionLog {
    /// Starts a cleaning if one is due (module docs, "When"): picks the cleanable range,
    /// snapshots what the cleaning needs (the source segments' files, the producers' last
    /// batches, the settings) and returns the [`CleanTask`] to run with [`CleanTask::step`]
    /// outside the log's lock, then hand to [`PartitionLog::finish_clean`] (or
    /// [`PartitionLog::abort_clean`] if a step failed). `None` when the log is not compacted or
    /// nothing is due. `high_watermark`: nothing at or above it is touched.
    /// `dedupe_budget_bytes`: the offset map's memory (`log.cleaner.dedupe.buffer.size`).
    pub fn begin_clean(
        &mut self,
        now_ms: i64,
        high_watermark: Offset,
        dedupe_budget_bytes: usize,
    ) -> Result<Option<CleanTask>, LogError> {
        self.check_not_failed()?;
        if !self.config.cleanup_policy.compact {
            return Ok(None);
        }
        let Some(range) = self.cleanable_range(now_ms, high_watermark) else {
            return Ok(None);
        };
        if range.dirty_bytes == 0 || !self.clean_due(&range, now_ms)? {
            return Ok(None);
        }
        let mut sources = Vec::new();
        let mut bases = self.segments.keys().copied().skip(1);
        for seg in self.segments.values() {
            let Some(end) = bases.next().filter(|e| *e <= range.end) else {
                break;
            };
            sources.push(SourceSegment {
                base_offset: seg.base_offset,
                log: seg.log.clone(),
                size: seg.size,
                end,
                offset_index_bytes: seg.offset_index.size_bytes(),
                time_index_bytes: seg.time_index.size_bytes(),
            });
        }
        let producer_last_offsets: BTreeSet<Offset> = self
            .producers
            .producers()
            .filter_map(|(_, e)| e.last_data_offset())
            .collect();
        Ok(Some(CleanTask::new(
            self.storage.clone(),
            self.dir.clone(),
            sources,
            range.end,
            OffsetMap::new(range.first_dirty, dedupe_budget_bytes),
            now_ms,
            &self.config,
            producer_last_offsets,
            self.truncations,
        )))
    }

    /// The cleanable range: whole sealed segments from the log start, ending at the first of
    /// the active segment, the segment holding the high watermark, the first segment not yet
    /// durable by the recovery point on disk, the first one holding a batch younger than
    /// `min.compaction.lag.ms`, and the first one recovery found corrupt. `None` if empty.
    pub fn cleanable_range(&self, now_ms: i64, high_watermark: Offset) -> Option<Cleanable> {
        let limit = high_watermark.min(self.checkpointed);
        let min_lag = self.config.min_compaction_lag_ms.max(0);
        let mut end = self.log_start_offset;
        let mut sizes = Vec::new();
        let mut bases = self.segments.keys().copied().skip(1);
        for seg in self.segments.values() {
            let Some(next) = bases.next() else { break };
            let too_young =
                seg.max_timestamp >= 0 && now_ms.saturating_sub(seg.max_timestamp) < min_lag;
            if next > limit || too_young || !seg.corrupt.is_empty() {
                break;
            }
            sizes.push((seg.base_offset, next, seg.size));
            end = next;
        }
        if sizes.is_empty() {
            return None;
        }
        let checkpoint = read_cleaner_checkpoint(&*self.storage, &self.dir);
        let first_dirty = checkpoint
            .unwrap_or(self.log_start_offset)
            .clamp(self.log_start_offset, end);
        let cleanable_bytes = sizes.iter().map(|(_, _, s)| s).sum();
        let dirty_bytes = sizes
            .iter()
            .filter(|(_, next, _)| *next > first_dirty)
            .map(|(_, _, s)| s)
            .sum();
        Some(Cleanable {
            end,
            first_dirty,
            cleanable_bytes,
            dirty_bytes,
        })
    }

    /// Whether the range is dirty enough (`min.cleanable.dirty.ratio`) or its oldest dirty
    /// batch is older than `max.compaction.lag.ms` (judged by that batch's `maxTimestamp`, so
    /// never early).
    fn clean_due(&self, range: &Cleanable, now_ms: i64) -> Result<bool, LogError> {
        if range.dirty_ratio() >= self.config.min_cleanable_dirty_ratio {
            return Ok(true);
        }
        let base = self.segment_base_holding(range.first_dirty);
        let Some(seg) = self.segments.get(&base) else {
            return Ok(false);
        };
        let Some(ts) = first_batch_timestamp_from(seg, range.first_dirty)? else {
            return Ok(false);
        };
        Ok(ts >= 0 && now_ms.saturating_sub(ts) > self.config.max_compaction_lag_ms)
    }
}

/// The `maxTimestamp` of the first batch of `seg` that ends at or after `offset`.
fn first_batch_timestamp_from(seg: &Segment, offset: Offset) -> Result<Option<i64>, LogError> {
    let path = log_path(std::path::Path::new(""), seg.base_offset);
    let Some(pos) = seg.position_of(offset).map_err(io_err("read", &path))? else {
        return Ok(None);
    };
    let raw = read_vec(&*seg.log, pos, HEADER_LEN).map_err(io_err("read", &path))?;
    Ok(BatchHeader::parse(&raw).ok().map(|h| h.max_timestamp))
}
