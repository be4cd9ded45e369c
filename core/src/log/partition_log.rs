//! [`PartitionLog`]: appends (a leader's and a follower's), group commit, reads, timestamp
//! lookups, truncation, and the leader epoch cache that follows all of them (retention, which
//! moves the log start offset, is in `retention.rs`).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{self, BatchError, BatchHeader, TimestampType};
use crate::storage::Storage;
use crate::types::{LeaderEpoch, Offset};

use super::leader_epoch_cache::{self, EpochEndOffset, EpochEntry, LeaderEpochCache};
use super::producer_state::{AppendCheck, ProducerStateManager, Truncation};
use super::segment::{Segment, index_path, log_path, time_index_path};
use super::{AppendInfo, FlushPlan, LogConfig, LogError, ReadResult, TimestampOffset, io_err};

/// The largest stamping buffer ([`PartitionLog::scratch`]) a log keeps between appends. A
/// larger one (a batch of up to `max.message.bytes`) is freed after its append: a broker with
/// 1,000 partitions would otherwise keep each partition's largest batch for ever (issue 14,
/// memory bounded by configuration, not by load).
pub(super) const SCRATCH_KEPT: usize = 16 * 1024;

/// One partition's log. See the module docs for layout and invariants.
#[derive(Debug)]
pub struct PartitionLog {
    /// The disk, through the storage seam.
    pub(super) storage: Arc<dyn Storage>,
    /// `<log.dirs>/<topic>-<partition>`.
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Segments by base offset; never empty; the last is the active one.
    pub(super) segments: BTreeMap<Offset, Segment>,
    /// First offset still in the log (the first segment's base offset).
    pub(super) log_start_offset: Offset,
    /// Every offset below this is fsynced.
    pub(super) flushed_offset: Offset,
    /// Bumped at every creation or removal in the directory.
    pub(super) dir_generation: u64,
    /// The `dir_generation` a completed flush last made durable. Generations, not a flag, so that
    /// overlapping flush plans may complete in any order without losing a pending directory sync.
    pub(super) dir_synced_generation: u64,
    /// The offset the `recovery-point` file holds (what recovery will trust as fsynced).
    pub(super) checkpointed: Offset,
    /// Bumped by every truncation: a flush plan begun before one cannot vouch for what was
    /// appended after it.
    pub(super) truncations: u64,
    /// An IO error made the log's durable state unknown: refuse everything (fsync EIO).
    pub(super) failed: bool,
    /// Reused buffer for stamping offsets into a copy of the producer's batches; kept between
    /// appends only while it is at most [`SCRATCH_KEPT`] bytes.
    pub(super) scratch: Vec<u8>,
    /// Which leader epoch wrote which offsets (KIP-101), persisted in `leader-epoch-checkpoint`.
    pub(super) epochs: LeaderEpochCache,
    /// The idempotent producers' state (KIP-98) over every batch below the log end offset.
    pub(super) producers: ProducerStateManager,
}

impl PartitionLog {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies new settings; they take effect on the next append / retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
        if self.config.cleanup_policy.compact {
            for seg in self.segments.values_mut() {
                seg.gaps = true;
            }
        }
    }

    /// Whether this log may hold offset gaps: compacted now, or ever (sticky; see
    /// `Segment::gaps`).
    pub(super) fn gaps_allowed(&self) -> bool {
        self.config.cleanup_policy.compact || self.segments.values().any(|s| s.gaps)
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> Offset {
        self.active().next_offset
    }

    /// Every offset below this is fsynced.
    pub fn flushed_offset(&self) -> Offset {
        self.flushed_offset
    }

    /// Total bytes of all segments' `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// Number of segments (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The idempotent producers' state (for tests, metrics and DescribeProducers).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    pub(super) fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// The base offset of the segment holding `offset` (the first segment's below the log
    /// start): where a walk of the batches from `offset` starts.
    pub(super) fn segment_base_holding(&self, offset: Offset) -> Offset {
        self.segments
            .range(..=offset)
            .next_back()
            .map_or(self.log_start_offset, |(b, _)| *b)
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    pub(super) fn check_not_failed(&self) -> Result<(), LogError> {
        if self.failed {
            Err(LogError::Failed(self.dir.clone()))
        } else {
            Ok(())
        }
    }

    pub(super) fn assert_invariants(&self) {
        let log_end = self.log_end_offset();
        assert!(
            self.log_start_offset <= self.flushed_offset && self.flushed_offset <= log_end,
            "log start {} <= flushed {} <= log end {log_end}",
            self.log_start_offset,
            self.flushed_offset
        );
        let first = self.segments.keys().next().copied();
        assert_eq!(
            first,
            Some(self.log_start_offset),
            "log start offset is the first segment's base"
        );
        if !self.failed {
            if let Some(latest) = self.epochs.latest_entry() {
                assert!(
                    latest.start_offset <= log_end,
                    "epoch entry {latest:?} starts beyond the log end {log_end}"
                );
            }
            assert!(
                !self.producers.rebuild_needed(),
                "the producer state was rebuilt after the truncation that needed it"
            );
            assert_eq!(
                self.producers.map_end_offset(),
                log_end,
                "the producer state covers exactly the log"
            );
            self.producers.check_invariants();
        }
        let mut previous_end = self.log_start_offset;
        for (base, seg) in &self.segments {
            assert_eq!(
                *base, seg.base_offset,
                "segments are keyed by their base offset"
            );
            // Offsets strictly increase across segments: each starts at or after the previous
            // one's last batch ends (a gap between them holds no record: the cleaner's, or a
            // segment emptied by it). Rolls start the next segment exactly at the log end.
            assert!(
                seg.base_offset >= previous_end,
                "segment {} starts before the previous one ends ({previous_end}): overlap",
                seg.base_offset
            );
            seg.check_invariants();
            previous_end = seg.next_offset;
        }
    }

    /// Validates a producer's record set, assigns offsets from the log end offset, stamps
    /// `leader_epoch` (and the broker time for `LogAppendTime` logs), and writes it to the active
    /// segment, rolling first if needed. The data is not fsynced here (see
    /// [`PartitionLog::begin_flush`]); two rare steps are: the first append of a leader epoch
    /// the cache lacks checkpoints it durably first, and a roll writes the producer snapshot
    /// durably (ARCHITECTURE.md, "Where every fsync runs").
    pub fn append(
        &mut self,
        records: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_not_failed()?;
        let headers = batch::validate_produce(records, self.config.max_message_bytes as usize)?;
        if let Some(latest) = self.epochs.latest_epoch()
            && leader_epoch < latest
        {
            // A leader older than an epoch already in the log has been replaced: fenced.
            return Err(LogError::StaleLeaderEpoch {
                epoch: leader_epoch,
                latest,
            });
        }
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        // Idempotence (KIP-98): checked before anything is written, committed after.
        let staged = match self.producers.check_leader_batches(&headers)? {
            AppendCheck::New(staged) => staged,
            AppendCheck::Duplicate(original) => {
                return Ok(AppendInfo {
                    first_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: if log_append_time {
                        original.timestamp_ms
                    } else {
                        -1
                    },
                    log_start_offset: self.log_start_offset,
                    bytes: 0,
                    duplicate: true,
                });
            }
        };
        let record_count = staged.offset_count();
        self.maybe_roll(records.len() as u64, record_count, now_ms)?;
        // The epoch's first offset is durable in the checkpoint before any of its data is
        // written (a no-op for every append of an epoch but the first).
        let prior_epochs =
            if leader_epoch.0 >= 0 && self.epochs.latest_epoch() != Some(leader_epoch) {
                let prior = self.epochs.entries().to_vec();
                self.epochs.assign(leader_epoch, self.log_end_offset())?;
                Some(prior)
            } else {
                None
            };

        let first_offset = self.log_end_offset();
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(records);
        let mut next = first_offset;
        let mut pos = 0;
        for h in &headers {
            let b = &mut scratch[pos..pos + h.total_size()];
            batch::assign_offset(b, next, leader_epoch);
            if log_append_time {
                batch::set_log_append_time(b, now_ms);
            }
            next = Offset(next.0 + i64::from(h.last_offset_delta) + 1);
            pos += h.total_size();
        }
        let result = self.write_batches(&scratch, now_ms);
        if scratch.capacity() <= SCRATCH_KEPT {
            self.scratch = scratch;
        }
        self.on_write_result(result, prior_epochs)?;
        assert_eq!(
            self.log_end_offset(),
            next,
            "append advanced the log end offset by the record count"
        );
        let log_append_time_ms = if log_append_time { now_ms } else { -1 };
        let last_offset = Offset(next.0 - 1);
        self.producers
            .commit(staged, first_offset, last_offset, log_append_time_ms);
        Ok(AppendInfo {
            first_offset,
            last_offset,
            log_append_time_ms,
            log_start_offset: self.log_start_offset,
            bytes: records.len(),
            duplicate: false,
        })
    }

    /// Appends a follower's copy of the leader's batches verbatim: they already carry their
    /// offsets, epochs and timestamps (Kafka's `appendAsFollower`). Each batch is checked as a
    /// stored batch is (header, CRC, record count); `max.message.bytes` is not applied, as Kafka
    /// does not for replication, so that a follower never stalls on data its leader accepted.
    /// Offsets are kept, gaps allowed (a compacted leader's log has them): the first batch must
    /// start at or after the log end offset and each next one at or after the previous one's
    /// next offset; going back or overlapping is refused ([`LogError::OffsetMismatch`], Kafka's
    /// `UnexpectedAppendOffsetException` / `OffsetsOutOfOrderException`), and so is an append
    /// spanning more than `i32::MAX` offsets from the log end ([`LogError::OffsetGapTooLarge`]:
    /// no segment's relative offsets could hold it). A segment rolled for it starts at the log
    /// end offset, so a gap before the first batch lies inside the new segment, never between
    /// segments. Each batch's `partitionLeaderEpoch` newer than the
    /// cache's latest is assigned to start at its base offset (checkpointed before the data is
    /// written); an older one is refused ([`LogError::StaleLeaderEpoch`]) unless every newer
    /// entry starts at or after that batch (entries that never got data, e.g. one this replica
    /// assigned as a leader at its log end), which Kafka's assign then replaces.
    pub fn append_replicated(
        &mut self,
        batches: Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_not_failed()?;
        let headers = validate_replicated(&batches)?;
        let log_end = self.log_end_offset();
        let (staged, next) = self.stage_replicated(&headers)?;
        let first_offset = headers.first().map_or(log_end, |h| h.base_offset);
        self.maybe_roll(batches.len() as u64, next.0 - log_end.0, now_ms)?;
        let prior_epochs = if staged != self.epochs.entries() {
            let prior = self.epochs.entries().to_vec();
            self.epochs.replace(staged)?;
            Some(prior)
        } else {
            None
        };
        let result = self.write_batches(&batches, now_ms);
        self.on_write_result(result, prior_epochs)?;
        assert_eq!(
            self.log_end_offset(),
            next,
            "a replicated append ends where its last batch ends"
        );
        // No checks: the leader made them. The same bookkeeping, so a follower that becomes
        // leader deduplicates as its leader did.
        for h in &headers {
            self.producers.apply_replicated(h);
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: Offset(next.0 - 1),
            log_append_time_ms: -1,
            log_start_offset: self.log_start_offset,
            bytes: batches.len(),
            duplicate: false,
        })
    }

    /// The checks of [`Self::append_replicated`] before anything is written: offsets (at or
    /// after the log end, increasing, within `i32::MAX` of the log end) and leader epochs. The
    /// epoch cache's entries with the batches' epochs assigned, and the offset after the last
    /// batch.
    fn stage_replicated(
        &self,
        headers: &[BatchHeader],
    ) -> Result<(Vec<EpochEntry>, Offset), LogError> {
        let log_end = self.log_end_offset();
        let mut next = log_end;
        let mut staged = self.epochs.entries().to_vec();
        // Only a compacted topic's leader has gaps to copy; on any other topic a batch that does
        // not start exactly at the log end means the leader's answer was damaged or misread, and
        // taking it would leave a permanent hole here.
        let gaps = self.gaps_allowed();
        for h in headers {
            if h.base_offset < next || (!gaps && h.base_offset != next) {
                return Err(LogError::OffsetMismatch {
                    expected: next,
                    got: h.base_offset,
                });
            }
            if h.base_offset.0.saturating_sub(log_end.0)
                >= i64::from(i32::MAX) - i64::from(h.last_offset_delta)
            {
                return Err(LogError::OffsetGapTooLarge {
                    log_end_offset: log_end,
                    base_offset: h.base_offset,
                });
            }
            let epoch = h.partition_leader_epoch;
            // -1: no epoch (a pre-KIP-101 message format); nothing to record.
            if epoch.0 >= 0 {
                if let Some(latest) = staged.last()
                    && epoch < latest.epoch
                    && staged
                        .iter()
                        .any(|e| e.epoch > epoch && e.start_offset < h.base_offset)
                {
                    return Err(LogError::StaleLeaderEpoch {
                        epoch,
                        latest: latest.epoch,
                    });
                }
                leader_epoch_cache::assign_entry(
                    &mut staged,
                    EpochEntry {
                        epoch,
                        start_offset: h.base_offset,
                    },
                );
            }
            next = h.next_offset();
        }
        Ok((staged, next))
    }

    /// After a failed write, puts back the epoch entries the append replaced (`prior`, if it
    /// changed them), so the cache names no epoch for data that was never written.
    fn on_write_result(
        &mut self,
        result: Result<(), LogError>,
        prior: Option<Vec<EpochEntry>>,
    ) -> Result<(), LogError> {
        if result.is_err()
            && let Some(prior) = prior
            && self.epochs.replace(prior).is_err()
        {
            self.failed = true;
        }
        result
    }

    /// A new leader records that its epoch starts at its log end offset, before it appends
    /// anything (Kafka's `maybeAssignEpochStartOffset` in `Partition.makeLeader`): from then on
    /// OffsetForLeaderEpoch for the previous epoch ends here, even before the first append.
    /// Nothing happens if `epoch` is already the latest; an older epoch is refused.
    pub fn maybe_assign_leader_epoch(&mut self, epoch: LeaderEpoch) -> Result<(), LogError> {
        self.check_not_failed()?;
        assert!(epoch.0 >= 0, "a leader epoch is never negative: {epoch:?}");
        if let Some(latest) = self.epochs.latest_epoch()
            && epoch < latest
        {
            return Err(LogError::StaleLeaderEpoch { epoch, latest });
        }
        self.epochs.assign(epoch, self.log_end_offset())?;
        Ok(())
    }

    /// OffsetForLeaderEpoch (KIP-101/279): the largest epoch `<= epoch` in this log and the
    /// offset where it ends. See [`LeaderEpochCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> EpochEndOffset {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The newest leader epoch in the log (the one a follower sends in OffsetForLeaderEpoch).
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.latest_epoch()
    }

    /// The offset where `epoch` starts in this log, if it has an entry (a leader's
    /// `leaderEpochStartOffset`, which a follower must reach to join the ISR).
    pub fn epoch_start_offset(&self, epoch: LeaderEpoch) -> Option<Offset> {
        self.epochs.start_offset_of(epoch)
    }

    /// The leader epoch cache's entries, oldest first (for tests, debugging and the follower
    /// truncation rule).
    pub fn leader_epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// Writes already-stamped batches at the end of the active segment and indexes them. On a
    /// write error the segment is cut back to where it was, so no partial batch stays visible.
    fn write_batches(&mut self, stamped: &[u8], now_ms: i64) -> Result<(), LogError> {
        let interval = self.config.index_interval_bytes;
        let dir = self.dir.clone();
        let seg = self.active_mut();
        let start = seg.size;
        let (base, next) = (seg.base_offset, seg.next_offset);
        if let Err(e) = seg.log.write_at(stamped, start) {
            if seg.truncate(start, next).is_err() {
                self.failed = true;
            }
            return Err(io_err("append", &log_path(&dir, base))(e));
        }
        let mut pos = 0usize;
        for item in batch::BatchIter::new(stamped) {
            let (_, h) = item.expect("batches were validated before stamping");
            if let Err(e) = seg.on_batch(start + pos as u64, &h, Some(interval), Some(now_ms)) {
                // All or nothing, as for the data: the batches indexed so far go too.
                if seg.truncate(start, next).is_err() {
                    self.failed = true;
                }
                return Err(io_err("index", &index_path(&dir, base))(e));
            }
            pos += h.total_size();
        }
        assert_eq!(pos, stamped.len(), "every stamped byte belongs to a batch");
        Ok(())
    }

    /// Starts a new segment if the next `bytes` (holding `records` offsets) would overflow the
    /// active one (`segment.bytes`, a full index, relative offsets past `i32::MAX`), or if it is
    /// older than `segment.ms`.
    fn maybe_roll(&mut self, bytes: u64, records: i64, now_ms: i64) -> Result<(), LogError> {
        let cfg = &self.config;
        let seg = self.active();
        if seg.is_empty() {
            return Ok(());
        }
        let full = seg.size + bytes > cfg.segment_bytes;
        let index_full = seg.offset_index.size_bytes() + 8 > u64::from(cfg.segment_index_bytes)
            || seg.time_index.size_bytes() + 12 > u64::from(cfg.segment_index_bytes);
        let offsets_full = seg.next_offset.0 + records - seg.base_offset.0 > i64::from(i32::MAX);
        let aged = seg
            .first_batch_time_ms
            .is_some_and(|t| now_ms.saturating_sub(t) > cfg.segment_ms);
        if full || index_full || offsets_full || aged {
            self.roll()?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset.
    pub fn roll(&mut self) -> Result<(), LogError> {
        self.check_not_failed()?;
        let base = self.log_end_offset();
        if self.active().base_offset == base {
            return Ok(()); // already empty
        }
        // Kafka's roll: the producer state at the new segment's base, so that recovery and a
        // truncation replay at most one segment (best effort: an older one, or the log, serves;
        // only a failed directory fsync fails the log).
        self.write_producer_snapshot();
        self.check_not_failed()?;
        let dir = self.dir.clone();
        self.active_mut()
            .seal()
            .map_err(io_err("seal", &time_index_path(&dir, base)))?;
        let mut seg = Segment::create(&*self.storage, &dir, base)
            .map_err(io_err("create segment", &log_path(&dir, base)))?;
        seg.gaps = self.gaps_allowed();
        self.segments.insert(base, seg);
        self.dir_generation += 1;
        Ok(())
    }

    /// Prepares a group commit covering everything appended so far; `None` if all is durable.
    ///
    /// Plans may overlap: a new plan may begin while an older one executes, and they may
    /// complete in any order. Each plan syncs every file with bytes not yet covered by a
    /// *completed* plan, so whichever completes establishes its own `up_to` on its own.
    pub fn begin_flush(&mut self) -> Option<FlushPlan> {
        if self.failed {
            return None;
        }
        let mut files = Vec::new();
        let mut segment_sizes = Vec::new();
        let mut sealed_indexes = Vec::new();
        for seg in self.segments.values() {
            if seg.size > seg.synced_size {
                files.push(seg.log.clone());
                segment_sizes.push((seg.base_offset, seg.size));
            }
            if seg.index_sync_pending {
                files.push(seg.offset_index.file().clone());
                files.push(seg.time_index.file().clone());
                sealed_indexes.push(seg.base_offset);
            }
        }
        let dirs = if self.dir_generation > self.dir_synced_generation {
            vec![self.dir.clone()]
        } else {
            Vec::new()
        };
        if files.is_empty() && dirs.is_empty() && self.flushed_offset == self.log_end_offset() {
            return None;
        }
        Some(FlushPlan {
            up_to: self.log_end_offset(),
            files,
            dirs,
            storage: self.storage.clone(),
            segment_sizes,
            sealed_indexes,
            dir_generation: self.dir_generation,
            truncations: self.truncations,
        })
    }

    /// Records that `plan` executed successfully.
    pub fn complete_flush(&mut self, plan: &FlushPlan) {
        if self.failed {
            return;
        }
        if plan.truncations != self.truncations {
            // A truncation overtook the plan: bytes it synced may since have been cut and
            // rewritten by new appends, so it proves nothing. The next plan covers them.
            return;
        }
        for (base, size) in &plan.segment_sizes {
            if let Some(seg) = self.segments.get_mut(base) {
                seg.synced_size = seg.synced_size.max((*size).min(seg.size));
            }
        }
        for base in &plan.sealed_indexes {
            if let Some(seg) = self.segments.get_mut(base) {
                seg.index_sync_pending = false;
            }
        }
        if !plan.dirs.is_empty() {
            self.dir_synced_generation = self.dir_synced_generation.max(plan.dir_generation);
        }
        // A truncation between plan and completion may have moved the log end below `up_to`.
        let up_to = plan
            .up_to
            .min(self.log_end_offset())
            .max(self.log_start_offset);
        self.flushed_offset = self.flushed_offset.max(up_to);
        self.assert_invariants();
    }

    /// Marks the log failed: every later operation returns [`LogError::Failed`]. Called when an
    /// fsync failed, since the kernel may have dropped the dirty pages it could not write.
    pub fn fail(&mut self) {
        self.failed = true;
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Reads whole, CRC-checked batches from the first one whose last offset is at or after
    /// `offset`: up to `max_bytes` but at least one batch (KIP-74), none reaching `upper_bound`
    /// (the high watermark). An offset in a gap (between batches, before a segment's first
    /// batch, after its last, or in an empty segment) is not out of range: the read starts with
    /// the next batch, in a later segment if need be (Kafka's fetch on a compacted log). The
    /// batches served come from one segment; the caller fetches again from where they end.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> Result<ReadResult, LogError> {
        self.check_not_failed()?;
        let log_end_offset = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        let upper_bound = upper_bound.min(log_end_offset);
        if offset >= upper_bound {
            return Ok(ReadResult::default());
        }
        let first = self.segment_base_holding(offset);
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            if seg.base_offset >= upper_bound {
                break;
            }
            let read = seg
                .read(offset, max_bytes, upper_bound)
                .map_err(io_err("read", &log_path(&self.dir, seg.base_offset)))?;
            if let (true, Some(at)) = (read.records.is_empty(), read.corrupt_at) {
                return Err(LogError::Corrupt {
                    offset: at,
                    segment: seg.base_offset,
                    position: 0,
                });
            }
            if !read.records.is_empty() {
                return Ok(ReadResult {
                    records: Bytes::from(read.records),
                    corrupt_at: read.corrupt_at,
                });
            }
            // Nothing at or after `offset` here below the bound: the segment ends first (a gap
            // at its end, or it is empty), or its next batch reaches the bound, and then so do
            // those of the later segments (their base is at or above that batch's end). In a
            // dense log (`Segment::gaps`) the segment holds every offset below its end, so
            // there a miss can only be a header damaged on its way from the disk that made the
            // walk overshoot: going on to the next segment would skip this one's remaining
            // batches, so the read answers nothing and the caller reads again.
            if !seg.gaps && offset < seg.next_offset {
                break;
            }
        }
        Ok(ReadResult::default())
    }

    /// The earliest offset whose record timestamp is at or after `timestamp_ms` (ListOffsets by
    /// time), with that record's timestamp; `None` if every record is older. Exact for
    /// uncompressed batches; for compressed ones the batch's first offset (see `segment`).
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        self.check_not_failed()?;
        for seg in self.segments.values() {
            let found = seg.find_timestamp(timestamp_ms).map_err(io_err(
                "timestamp lookup",
                &log_path(&self.dir, seg.base_offset),
            ))?;
            if let Some((offset, timestamp)) = found {
                return Ok(Some(TimestampOffset { offset, timestamp }));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (ListOffsets `-3`, KIP-734): the first one that has
    /// it, exact for uncompressed batches (see [`PartitionLog::offset_for_timestamp`]).
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        self.check_not_failed()?;
        let mut best: Option<&Segment> = None;
        for seg in self.segments.values() {
            if seg.max_timestamp >= 0 && best.is_none_or(|b| seg.max_timestamp > b.max_timestamp) {
                best = Some(seg);
            }
        }
        let Some(seg) = best else { return Ok(None) };
        let found = seg.find_timestamp(seg.max_timestamp).map_err(io_err(
            "timestamp lookup",
            &log_path(&self.dir, seg.base_offset),
        ))?;
        Ok(found.map(|(offset, timestamp)| TimestampOffset { offset, timestamp }))
    }

    /// Removes a segment's files, the `.log` last: until it goes the segment stays whole (its
    /// open handles keep serving, and recovery rebuilds indexes it finds missing).
    pub(super) fn delete_segment_files(&self, base: Offset) -> Result<(), LogError> {
        for path in [
            time_index_path(&self.dir, base),
            index_path(&self.dir, base),
            log_path(&self.dir, base),
        ] {
            match self.storage.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("delete segment", &path)(e)),
            }
        }
        Ok(())
    }

    /// Removes every batch that ends at or after `offset` (follower truncation, KIP-101). The log
    /// end offset becomes the next offset of the last batch kept (at most `offset`: below it when
    /// `offset` falls inside a batch, or in a gap), or the base offset of the segment that holds
    /// no batch any more. Kafka sets its log end offset to `offset` itself; here it stays what
    /// the segment files say, so a restart's recovery finds the same log end and the leader
    /// epoch cache and producer state (cut at that log end) agree with it. A follower then
    /// fetches from that log end: the leader serves from its first batch ending there or later.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        self.check_not_failed()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let offset = offset.max(self.log_start_offset);
        // Snapshots of the state past the cut go first, durably: data appended after the
        // truncation must never be read with a snapshot of the batches it replaced.
        self.delete_producer_snapshots_above(offset)?;
        // From here on the log is being changed: if a step fails, the segments, the recovery
        // point, the epoch cache and the producer state may disagree. Refuse everything until a
        // restart's recovery brings them in line again.
        let result = self.cut_to(offset);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// The body of [`Self::truncate_to`], after the snapshots are gone.
    fn cut_to(&mut self, offset: Offset) -> Result<(), LogError> {
        assert!(
            offset >= self.log_start_offset && offset <= self.log_end_offset(),
            "a cut at {offset} outside the log [{}, {}]",
            self.log_start_offset,
            self.log_end_offset()
        );
        // Drop whole segments that start at or after the cut, keeping at least the first.
        let doomed: Vec<Offset> = self
            .segments
            .range(offset..)
            .map(|(b, _)| *b)
            .filter(|b| *b > self.log_start_offset)
            .collect();
        let deleted_segments = !doomed.is_empty();
        for base in doomed {
            self.delete_segment_files(base)?;
            self.segments.remove(&base);
            self.dir_generation += 1;
        }
        let dir = self.dir.clone();
        let seg = self.active_mut();
        let base = seg.base_offset;
        let (pos, next) = seg
            .cut_point(offset)
            .map_err(io_err("truncate", &log_path(&dir, base)))?;
        seg.truncate(pos, next)
            .map_err(io_err("truncate", &log_path(&dir, base)))?;
        // The cut is made durable before anything else changes (cluster seed 20006): what it
        // removed may have been fsynced, and an undone cut brings it back after a power loss,
        // behind an epoch cache and a recovery point that already describe the new log — a
        // replica then keeps a batch of an old leader epoch below the high watermark where the
        // others hold the new leader's. Truncation is rare (a role change), so one fsync of
        // the segment, and of the directory if whole segments went, costs nothing that matters.
        seg.log
            .sync_data()
            .map_err(io_err("sync truncation", &log_path(&dir, base)))?;
        seg.synced_size = seg.size;
        if deleted_segments {
            self.storage
                .sync_dir(&dir)
                .map_err(io_err("sync truncation", &dir))?;
        }
        self.truncations += 1;
        // Offsets re-appended above the new end are dirty again, not clean.
        super::cleaner::truncate_cleaner_checkpoint(
            &*self.storage,
            &self.dir,
            self.log_end_offset(),
        )?;
        self.flushed_offset = self.flushed_offset.min(self.log_end_offset());
        // The recovery point on disk must not stay above the new log end: batches appended next
        // are unsynced, and recovery would take them for fsynced data. Lowered here, before any
        // append can happen (a crash before this leaves only the truncation to redo or undo).
        if self.checkpointed > self.log_end_offset() {
            super::recovery::write_recovery_point(&*self.storage, &self.dir, self.checkpoint())?;
            self.checkpointed = self.flushed_offset;
        }
        // After the log: a crash in between leaves entries at or above the log end, which
        // recovery removes. The cut may be below `offset` (a batch start, or a gap). If the
        // cache cannot follow, later appends would be credited to a wrong epoch (the caller
        // fails the log).
        self.epochs.truncate_from_end(self.log_end_offset())?;
        if self.producers.truncate_to(self.log_end_offset()) == Truncation::RebuildNeeded {
            // Truncation removed batches the state holds: a snapshot at or below the new end,
            // then the log after it.
            self.rebuild_producer_state(i64::MIN)?;
        }
        assert!(
            self.log_end_offset() <= offset,
            "the cut at {offset} left the log ending at {}",
            self.log_end_offset()
        );
        assert!(
            self.flushed_offset <= self.log_end_offset()
                && self.checkpointed <= self.log_end_offset(),
            "after a cut nothing above the log end counts as durable"
        );
        self.assert_invariants();
        Ok(())
    }

    /// Deletes the log's directory and everything in it (DeleteTopics).
    pub fn delete(self) -> Result<(), LogError> {
        self.storage
            .remove_dir_all(&self.dir)
            .map_err(io_err("delete log", &self.dir))
    }

    /// Persists `flushed_offset` as the recovery point (see the module docs). Call it on clean
    /// shutdown after the last flush, and periodically. Writes a temporary file, syncs it, renames
    /// it over the old one and syncs the directory, so a crash leaves the old or the new value.
    /// Also snapshots the producer state at the log end, so a restart replays nothing.
    pub fn checkpoint_recovery_point(&mut self) -> Result<(), LogError> {
        self.check_not_failed()?;
        super::recovery::write_recovery_point(&*self.storage, &self.dir, self.checkpoint())?;
        self.checkpointed = self.flushed_offset;
        self.checkpoint_producer_state();
        Ok(())
    }

    /// The checkpoint of a clean shutdown (Kafka's clean-shutdown marker, folded into
    /// `recovery-point`): once everything is flushed, also syncs the active segment's index files
    /// and records them durable up to the log end (`indexes_durable_below` above the active
    /// segment's base), so that the next open trusts the active segment as it trusts a sealed
    /// one: a walk of its batch headers instead of a scan, no index rebuild, no fsync
    /// (`recovery::segment_matches`). With anything unflushed, the same as
    /// [`Self::checkpoint_recovery_point`]. Appends may follow: they only add index entries at or
    /// above the log end, and the next checkpoint withdraws the claim.
    pub fn checkpoint_clean_shutdown(&mut self) -> Result<(), LogError> {
        self.check_not_failed()?;
        let end = self.log_end_offset();
        let pending = self.segments.values().any(|s| s.index_sync_pending);
        if self.flushed_offset != end || pending || self.active().base_offset == end {
            return self.checkpoint_recovery_point();
        }
        let active = self.active();
        for (index, path) in [
            (
                active.offset_index.file(),
                index_path(&self.dir, active.base_offset),
            ),
            (
                active.time_index.file(),
                time_index_path(&self.dir, active.base_offset),
            ),
        ] {
            index.sync_data().map_err(io_err("sync index", &path))?;
        }
        let clean = super::recovery::Checkpoint {
            recovery_point: end,
            indexes_durable_below: end,
        };
        super::recovery::write_recovery_point(&*self.storage, &self.dir, clean)?;
        self.checkpointed = end;
        self.checkpoint_producer_state();
        Ok(())
    }

    /// What a checkpoint written now says: the flushed offset, and the base of the first segment
    /// whose index files are not yet synced (the active one at the latest: its indexes are
    /// synced only after it is sealed).
    pub(super) fn checkpoint(&self) -> super::recovery::Checkpoint {
        let unsynced_indexes = self
            .segments
            .values()
            .find(|s| s.index_sync_pending)
            .map_or(self.active().base_offset, |s| s.base_offset);
        super::recovery::Checkpoint {
            recovery_point: self.flushed_offset,
            indexes_durable_below: unsynced_indexes.min(self.flushed_offset),
        }
    }
}

/// Checks a follower's record set: one or more whole v2 batches, each passing
/// [`batch::validate_batch`] (header, CRC, record count), with no more records than offsets
/// (`recordCount <= lastOffsetDelta + 1`), and nothing left over. Control and transactional
/// batches are the leader's to write and are accepted.
fn validate_replicated(records: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let header = batch::validate_batch(&records[pos..])?;
        if i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1 {
            return Err(BatchError::OffsetDeltaMismatch {
                last_offset_delta: header.last_offset_delta,
                record_count: header.record_count,
            });
        }
        pos += header.total_size();
        headers.push(header);
    }
    Ok(headers)
}
