//! Moving the log start offset: whole segments at the front of the log are deleted, for time and
//! size retention ([`PartitionLog::enforce_retention`]) or because every record in them is
//! below an offset the caller knows to be superseded ([`PartitionLog::delete_segments_below`]:
//! the offsets topic's snapshots, and a follower following its leader's log start). A follower
//! whose whole log lies below its leader's log start starts afresh there
//! ([`PartitionLog::truncate_fully_and_start_at`]).
//!
//! Invariants (kept by the one path both take, `delete_front_segments`):
//! - Only whole segments go, oldest first, never the active one: the log start offset is always
//!   the first remaining segment's base offset, and the log end offset does not move.
//! - Before any segment goes, a producer snapshot lies at or above the new log start (best
//!   effort: a full disk makes space win), so producers whose batches all go stay known.
//! - After: the flushed offset is at least the new log start, the idempotent-producer state and
//!   its snapshots below the start are dropped, and the leader epoch cache's first entry moves up
//!   to the new start (KIP-101: epochs whose data is gone go too).
//! - A failure part-way leaves a shorter prefix deleted, never a hole: segment files go in offset
//!   order, each segment's `.log` last, and the state above records exactly the segments whose
//!   files are gone before the error is returned.
//!
//! Crash safety: directory entries removed here are not fsynced at once (the next group commit
//! syncs the directory: `dir_generation`). A power loss before that may bring back a deleted
//! segment; the log start then moves back to it, which is harmless — deleted data was either
//! expired or superseded, and the segments come back whole, in order, below the ones kept.

use crate::types::Offset;

use super::partition_log::PartitionLog;
use super::recovery::{Checkpoint, write_recovery_point};
use super::segment::{Segment, log_path};
use super::{LogError, RetentionReport, io_err};

impl PartitionLog {
    /// With `cleanup.policy` including `delete`: deletes whole non-active segments whose newest
    /// timestamp is older than `retention.ms`, then the oldest non-active segments while the log
    /// is bigger than `retention.bytes`, advancing the log start offset (a `compact`-only log
    /// keeps every segment: the cleaner bounds it). An empty segment (the cleaner's, its batches
    /// all gone) holds nothing to keep: with a `retention.ms` it counts as expired, so that it
    /// does not hold back time retention for ever for want of a timestamp. Last, forgets idle
    /// producers (`producer.id.expiration.ms`).
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionReport, LogError> {
        self.check_not_failed()?;
        // Which segments go: the oldest, while expired or while the log is too big, never the
        // active one.
        let mut total = self.size_bytes();
        let mut doomed = 0;
        let candidates = if self.config.cleanup_policy.delete {
            self.segments.len() - 1
        } else {
            0
        };
        for seg in self.segments.values().take(candidates) {
            let expired = self.config.retention_ms >= 0
                && (seg.is_empty()
                    || seg.max_timestamp >= 0
                        && now_ms.saturating_sub(seg.max_timestamp) > self.config.retention_ms);
            let too_big = self.config.retention_bytes >= 0
                && total.saturating_sub(seg.size) >= self.config.retention_bytes as u64;
            if !(expired || too_big) {
                break;
            }
            total -= seg.size;
            doomed += 1;
        }
        let report = self.delete_front_segments(doomed)?;
        let expired = self.producers.remove_expired(now_ms);
        if expired > 0 {
            tracing::info!(dir = %self.dir.display(), expired, "idle producers expired (producer.id.expiration.ms)");
        }
        self.assert_invariants();
        Ok(report)
    }

    /// Deletes every whole non-active segment whose records all lie below `offset` (a segment's
    /// records lie below the next segment's base: it ends there or, after compaction, before),
    /// and advances the log start offset to the first segment kept. The log start offset may
    /// stay below `offset`: the segment holding it is kept.
    ///
    /// The caller vouches that nothing below `offset` is needed any more, and passes only an
    /// offset below the high watermark (committed data): the log does not know the high
    /// watermark, and a leader must never lose data a new leader could still be missing. Used
    /// by the group coordinator once a snapshot of its partition is committed, and by a follower
    /// whose leader's log start moved (Kafka's `maybeIncrementLogStartOffset`).
    pub fn delete_segments_below(&mut self, offset: Offset) -> Result<RetentionReport, LogError> {
        self.check_not_failed()?;
        // A segment is deletable when the next one starts at or below `offset`; the active
        // segment has no next one, so it always stays.
        let doomed = self
            .segments
            .keys()
            .skip(1)
            .take_while(|next_base| **next_base <= offset)
            .count();
        let report = self.delete_front_segments(doomed)?;
        assert!(
            report.deleted_segments == 0 || self.log_start_offset <= offset,
            "deleting below {offset} moved the log start past it, to {}",
            self.log_start_offset
        );
        Ok(report)
    }

    /// Deletes the first `count` segments (fewer than there are) and moves the log start offset,
    /// the producer state and the epoch cache to the first segment kept (see the module docs).
    fn delete_front_segments(&mut self, count: usize) -> Result<RetentionReport, LogError> {
        assert!(
            count < self.segments.len(),
            "the active segment is never deleted ({count} of {} segments)",
            self.segments.len()
        );
        let mut report = RetentionReport {
            log_start_offset: self.log_start_offset,
            ..Default::default()
        };
        if count == 0 {
            return Ok(report);
        }
        let doomed: Vec<Offset> = self.segments.keys().take(count).copied().collect();
        let new_start = *self
            .segments
            .keys()
            .nth(count)
            .expect("a segment follows the doomed ones");
        // Producers whose batches are all in the doomed segments must stay known after a
        // restart. If no snapshot can be written (a full disk), space wins: deletion goes on,
        // and only a restart before the next snapshot would forget them.
        if !self.ensure_producer_snapshot_from(new_start) {
            self.check_not_failed()?;
            tracing::warn!(dir = %self.dir.display(), "log start moves without a producer snapshot at the new log start");
        }
        let mut failure = None;
        for base in doomed {
            let size = self.segments.get(&base).map_or(0, |s| s.size);
            if let Err(e) = self.delete_segment_files(base) {
                // The segments deleted so far are gone: record that before answering.
                failure = Some(e);
                break;
            }
            self.segments.remove(&base);
            report.deleted_segments += 1;
            report.deleted_bytes += size;
        }
        if report.deleted_segments > 0 {
            self.log_start_offset = *self
                .segments
                .keys()
                .next()
                .expect("the active segment remains");
            self.flushed_offset = self.flushed_offset.max(self.log_start_offset);
            self.dir_generation += 1;
            report.log_start_offset = self.log_start_offset;
            self.assert_invariants();
            self.producers.on_log_start_moved(self.log_start_offset);
            self.delete_producer_snapshots_below(self.log_start_offset);
            // Epochs whose data is gone go too; the one covering the new start now starts there.
            // If this write fails the old entries stay: harmless, and recovery redoes it.
            self.epochs.truncate_from_start(self.log_start_offset)?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
    /// Replaces the whole log by an empty one that starts at `offset`, if `offset` is past the
    /// log end (Kafka's `truncateFullyAndStartAt`, which its fetcher calls when the leader's log
    /// start is beyond the follower's log end: the follower holds nothing the leader still
    /// serves, and can only fetch from there). Every segment, producer snapshot and epoch entry
    /// goes; the producer state starts empty at `offset`. Returns whether the log was replaced.
    ///
    /// Order, for crashes: the recovery point drops to 0 (trust nothing), producer snapshots go
    /// (durably), then the old segments oldest first and the directory is synced (a crash
    /// leaves a suffix of them: a shorter valid log, which a follower fetches again and is sent
    /// here again), then the new segment is created and synced, and last the recovery point and
    /// the epoch checkpoint are written. If a step fails the log is failed until a restart's
    /// recovery brings it in line, as for a truncation.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) -> Result<bool, LogError> {
        self.check_not_failed()?;
        if offset <= self.log_end_offset() {
            return Ok(false);
        }
        // A flush plan begun before this cannot vouch for the new log.
        self.truncations += 1;
        let result = self.start_afresh_at(offset);
        if result.is_err() {
            self.failed = true;
        }
        result.map(|()| true)
    }

    /// The body of [`Self::truncate_fully_and_start_at`].
    fn start_afresh_at(&mut self, offset: Offset) -> Result<(), LogError> {
        let nothing = Checkpoint {
            recovery_point: Offset::ZERO,
            indexes_durable_below: Offset::ZERO,
        };
        write_recovery_point(&*self.storage, &self.dir, nothing)?;
        self.checkpointed = Offset::ZERO;
        self.delete_producer_snapshots_above(Offset(i64::MIN))?;
        let old: Vec<Offset> = self.segments.keys().copied().collect();
        for base in old {
            self.delete_segment_files(base)?;
            self.segments.remove(&base);
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(io_err("sync log dir", &self.dir))?;
        let gaps = self.gaps_allowed();
        let mut seg = Segment::create(&*self.storage, &self.dir, offset)
            .map_err(io_err("create segment", &log_path(&self.dir, offset)))?;
        seg.gaps = gaps;
        self.segments.insert(offset, seg);
        self.storage
            .sync_dir(&self.dir)
            .map_err(io_err("sync log dir", &self.dir))?;
        self.dir_generation += 1;
        self.dir_synced_generation = self.dir_generation;
        self.log_start_offset = offset;
        self.flushed_offset = offset;
        write_recovery_point(&*self.storage, &self.dir, self.checkpoint())?;
        self.checkpointed = offset;
        self.epochs.replace(Vec::new())?;
        self.producers.truncate_fully_and_start_at(offset);
        self.assert_invariants();
        Ok(())
    }
}
