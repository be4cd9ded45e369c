//! The partition log: an append-only sequence of record batches in segment files.
//!
//! ## Layout of a log directory (`<log.dirs>/<topic>-<partition>/`)
//!
//! ```text
//! 00000000000000000000.log         batches, verbatim, back to back (see crate::batch)
//! 00000000000000000000.index       sparse offset -> position (see index)
//! 00000000000000000000.timeindex   sparse timestamp -> offset (see index)
//! 00000000000000052341.log         next segment, named by its base offset
//! ...
//! recovery-point                   text: "0\n<recovery point>\n<indexes durable below>\n"
//! leader-epoch-checkpoint          text: "0\n<count>\n<epoch> <start offset>\n..." (see
//!                                  leader_epoch_cache)
//! 00000000000000052341.snapshot    idempotent-producer state below offset 52341 (see
//!                                  producer_state for the format, producer_snapshots for when)
//! cleaner-offset-checkpoint        compacted logs: text "0\n<first dirty offset>\n" (see cleaner)
//! 00000000000000000000.swap        a cleaning's commit marker, present only while its swap runs
//! 00000000000000000000.log.cleaned a cleaning's output (also .index.cleaned, .timeindex.cleaned)
//!                                  before the swap renames it over the source (see cleaner)
//! ```
//!
//! ## Invariants
//! - Offsets are kept, gaps allowed (Kafka's rule since log compaction): batches' offsets
//!   strictly increase — each batch starts at or after the previous one's next offset (last
//!   offset + 1); a segment's base offset is at or below its first batch's base offset; segment
//!   `n+1` starts at or after segment `n`'s log end (its last batch's next offset, its base if
//!   it holds none). A gap never holds a record. A leader's appends are dense (it assigns the
//!   offsets from the log end); a follower copies its leader's gaps (`append_replicated` refuses
//!   only going back or overlapping); the cleaner makes them. Rolls start a segment exactly at
//!   the log end, so only the cleaner leaves a gap *between* segments (see "Recovery").
//! - An offset between the log start and the log end that falls in a gap is not out of range:
//!   a read there starts with the next batch (`PartitionLog::read`).
//! - The log end offset is the active segment's end: its last batch's next offset, or its base
//!   offset if it holds no batch. A truncation into a gap leaves it at the end of the last batch
//!   kept (at most the truncation offset: see `PartitionLog::truncate_to`).
//! - `log_start_offset <= flushed_offset <= log_end_offset`; everything below `flushed_offset`
//!   survives a crash (group commit: one [`FlushPlan`] fsyncs every file with unsynced bytes).
//! - Only the newest (active) segment is written; the log start moves only by deleting whole
//!   older segments (retention, or deletion below a superseded offset: see `retention`).
//! - Nothing corrupt is served: every batch is CRC-checked when it is read.
//! - The leader epoch cache ([`leader_epoch_cache`]) names, for each epoch that wrote here, its
//!   first offset. An epoch's entry is durable in `leader-epoch-checkpoint` before any of its
//!   batches is written; no entry starts beyond the log end offset (a new leader's entry may
//!   start exactly at it); truncation removes entries at or above the new log end, retention
//!   moves the first entry up to the new log start. Epochs in the log never go backwards: an
//!   append with an older epoch is refused ([`LogError::StaleLeaderEpoch`]).
//! - The idempotent-producer state ([`producer_state`]) reflects exactly the batches below the
//!   log end offset (`map_end_offset == log_end_offset` whenever the log has not failed): a
//!   leader checks a producer's batches against it before writing and commits them after; a
//!   follower applies what it replicates; a truncation rebuilds it from a snapshot and the log.
//!
//! ## Recovery (at open)
//! Segments that may hold bytes written after the last `recovery-point` checkpoint, and any
//! segment whose index is unsound, are scanned batch by batch and re-indexed. A segment the
//! checkpoint shows fsynced with durable indexes — a sealed one ending at or below
//! `indexes durable below`, or the active one when that offset lies above its base (written
//! only by a clean shutdown, `PartitionLog::checkpoint_clean_shutdown`, after syncing the
//! active segment's indexes) — is trusted after a walk of its batch headers that must reach
//! the end of its file, end at or below the next segment's base (exactly at `indexes durable
//! below` for the active segment) and match its `.timeindex` (`recovery::segment_matches`): no
//! CRC pass, no index rewrite, no fsync; damage to its data is found when a read CRC-checks
//! it. A scanned
//! segment is fsynced only if it holds bytes above the recovery point or was cut, and the
//! directory only if a segment starts at or above the recovery point or recovery removed
//! segments (the checkpoint's own directory sync covers the older ones). A batch that fails
//! validation above the recovery point starts a torn tail: it and everything after it is cut
//! (nothing there was acknowledged, because acknowledgement waits for the flush that would have
//! covered it). Below the recovery point a failed batch with intact framing is corruption of
//! fsynced data: it is kept, reported in the [`RecoveryReport`], and refused on every read with
//! `CORRUPT_MESSAGE`, while the valid data after it stays readable.
//!
//! Walks and scans accept a batch at or after the offset they expect (the previous batch's next
//! offset), never one that goes back; a scanned segment's batches are vouched for by their CRC,
//! a trusted one's by the checks above. A segment that ends short of the next segment's base is
//! read two ways, by where it ends. At or above the recovery point, it lost an unsynced tail in
//! a crash: nothing after it was acknowledged (acknowledgement waits for a flush covering every
//! file), so the later segments go too. Below the recovery point, the gap is the cleaner's and
//! is kept — so the cleaner must install a cleaned segment only once the recovery point is at or
//! above the next segment's base. The price: fsynced data the disk later loses at the very end
//! of a sealed segment is no longer told apart from such a gap (it reads as one).
//!
//! Then the leader epoch cache is loaded and brought in line with the recovered log: epochs of
//! batches above the recovery point that it lacks are assigned from their headers; a missing or
//! malformed checkpoint is rebuilt from every batch header; entries at or above the log end and
//! below the log start are cut (see `PartitionLog::recover_leader_epochs`).
//!
//! Last, the producer state is loaded from the newest sound snapshot at or below the log end and
//! the batches after it are replayed; snapshots above the log end are deleted first (see
//! `producer_snapshots`).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use crate::batch::{BatchError, TimestampType};
use crate::error::ErrorCode;
use crate::storage::{Storage, StorageFile};
use crate::types::{LeaderEpoch, Offset};

mod cleaner;
mod index;
pub mod leader_epoch_cache;
mod partition_log;
mod producer_snapshots;
pub mod producer_state;
mod recovery;
mod retention;
mod segment;
#[cfg(test)]
mod tests;

pub use cleaner::{
    CLEAN_STEP_BYTES, CLEANER_CHECKPOINT, CleanReport, CleanStep, CleanTask, Cleanable,
    DEFAULT_DEDUPE_BUFFER_BYTES, RetainStats, TaskStats, read_cleaner_checkpoint,
};
pub use leader_epoch_cache::{EpochEndOffset, EpochEntry, LeaderEpochCache};
pub use partition_log::PartitionLog;

/// `cleanup.policy`: what happens to data the log no longer needs to keep whole. `delete`
/// removes old segments by time and size (`retention.ms`, `retention.bytes`); `compact` keeps
/// the newest record of each key (the cleaner); both may be set (`compact,delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    /// Parses Kafka's list form: `delete`, `compact`, `compact,delete` (either order, spaces
    /// allowed, no repeats, not empty).
    pub fn parse(s: &str) -> Option<CleanupPolicy> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in s.split(',').map(str::trim) {
            let flag = match part {
                "delete" => &mut policy.delete,
                "compact" => &mut policy.compact,
                _ => return None,
            };
            if *flag {
                return None;
            }
            *flag = true;
        }
        Some(policy)
    }
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy::DELETE
    }
}

impl std::fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.compact, self.delete) {
            (true, true) => f.write_str("compact,delete"),
            (true, false) => f.write_str("compact"),
            _ => f.write_str("delete"),
        }
    }
}

/// Per-log settings, named after Kafka's topic configs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment when the active one would exceed this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes of log between two `.index` / `.timeindex` entries.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: largest `.index` file; a full index rolls the segment.
    pub segment_index_bytes: u32,
    /// `retention.ms`: delete non-active segments whose newest timestamp is older; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest non-active segments while the log is bigger; -1 = no limit.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch accepted, in bytes.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `producer.id.expiration.ms` (a broker setting in Kafka): an idempotent producer idle this
    /// long is forgotten by the partition.
    pub producer_id_expiration_ms: i64,
    /// `cleanup.policy`. Time and size retention apply only with `delete`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long the cleaner keeps a tombstone (a record with a null
    /// value) after the segment holding it was first cleaned, so consumers reading from the
    /// start see the delete.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean once dirty bytes (after the cleaned point) are at least
    /// this fraction of the log (unless `max.compaction.lag.ms` forces it).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long after it was
    /// written.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record is eligible for compaction at most this long after it
    /// was written, whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            producer_id_expiration_ms: producer_state::DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

/// What went wrong in a log operation.
#[derive(Debug, Error)]
pub enum LogError {
    #[error("invalid batch: {0}")]
    Batch(#[from] BatchError),
    #[error("io error during {op} on {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("offset {requested} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start_offset: Offset,
        log_end_offset: Offset,
    },
    #[error("corrupt batch at offset {offset} (segment {segment}, position {position})")]
    Corrupt {
        offset: Offset,
        segment: Offset,
        position: u64,
    },
    #[error("log at {0} has failed (an earlier fsync or write error) and refuses all operations")]
    Failed(PathBuf),
    /// A follower's replicated batches go back or overlap: the first must start at or after the
    /// log end offset and each next one at or after the previous one's next offset (gaps are
    /// allowed: Kafka's `UnexpectedAppendOffsetException` / `OffsetsOutOfOrderException`).
    #[error("replicated batch starts at offset {got}, expected at least {expected}")]
    OffsetMismatch { expected: Offset, got: Offset },
    /// A follower's replicated batch ends more than `i32::MAX` offsets above the log end offset:
    /// no segment starting at the log end could index it (relative offsets are 32-bit). Only a
    /// gap of over two billion offsets, which compaction alone could make, leads here.
    #[error("replicated batch at {base_offset} too far above the log end offset {log_end_offset}")]
    OffsetGapTooLarge {
        log_end_offset: Offset,
        base_offset: Offset,
    },
    /// An append stamped with (leader) or carrying (follower) a leader epoch older than the newest
    /// epoch already in the log: the appender is a fenced leader, or the follower must truncate
    /// again (KIP-101). Epochs in a log never go backwards.
    #[error("leader epoch {} is older than the log's latest epoch {}", .epoch.0, .latest.0)]
    StaleLeaderEpoch {
        epoch: LeaderEpoch,
        latest: LeaderEpoch,
    },
    /// A producer's batch broke the idempotence rules (KIP-98): out of order, fenced epoch.
    #[error("{0}")]
    Producer(#[from] producer_state::ProducerStateError),
}

/// Wraps an IO error with the operation and file it happened on.
fn io_err<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl LogError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            LogError::Batch(e) => e.error_code(),
            LogError::Io { .. } | LogError::Failed(_) => ErrorCode::KAFKA_STORAGE_ERROR,
            LogError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
            LogError::Corrupt { .. } => ErrorCode::CORRUPT_MESSAGE,
            // Only a follower's fetcher sees this, never a client; Kafka's exceptions for it have
            // no error code of their own either.
            LogError::OffsetMismatch { .. } | LogError::OffsetGapTooLarge { .. } => {
                ErrorCode::UNKNOWN_SERVER_ERROR
            }
            LogError::StaleLeaderEpoch { .. } => ErrorCode::FENCED_LEADER_EPOCH,
            LogError::Producer(e) => e.error_code(),
        }
    }
}

/// Result of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first batch appended (a leader's: the log end offset before the append; a
    /// follower's: its first batch's base offset, which may lie above it).
    pub first_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// The broker's timestamp if the log uses `LogAppendTime`, else -1 (Produce response field).
    pub log_append_time_ms: i64,
    /// Log start offset after the append (Produce response field).
    pub log_start_offset: Offset,
    /// Bytes written (0 for a duplicate).
    pub bytes: usize,
    /// The batches retried an idempotent producer's batch already in the log: nothing was
    /// written, and the offsets are the original batch's.
    pub duplicate: bool,
}

/// Result of a read: whole, CRC-checked batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Concatenated batches, starting with the first batch whose last offset is at or after the
    /// requested offset (the one holding it, or the next one if it falls in a gap).
    pub records: Bytes,
    /// The read stopped early because the batch at this offset is corrupt (it is not included).
    pub corrupt_at: Option<Offset>,
}

/// An offset found by timestamp (ListOffsets by time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub offset: Offset,
    pub timestamp: i64,
}

/// What recovery found and did at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found.
    pub segments: usize,
    /// Bytes cut from a torn or corrupt tail.
    pub truncated_bytes: u64,
    /// Corrupt batches found that are followed by valid data, and so were kept but are never served.
    pub corrupt_batches: Vec<CorruptBatch>,
    /// Index files rebuilt because they did not match their log.
    pub rebuilt_indexes: usize,
}

/// A corrupt batch found in the middle of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptBatch {
    pub segment: Offset,
    pub position: u64,
    /// The batch's stored base offset (which may itself be damaged).
    pub offset: Offset,
}

/// What a pass that moves the log start deleted (retention, or
/// [`PartitionLog::delete_segments_below`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted_segments: usize,
    pub deleted_bytes: u64,
    /// The log start offset after the pass.
    pub log_start_offset: Offset,
}

/// A group commit prepared by [`PartitionLog::begin_flush`]: the files and directories to sync so
/// that every offset below `up_to` is durable. The driver runs [`FlushPlan::execute`] wherever it
/// likes (off its reactor), then reports success with [`PartitionLog::complete_flush`] or failure
/// with [`PartitionLog::fail`].
#[derive(Debug)]
pub struct FlushPlan {
    /// Every offset below this is durable once the plan has executed.
    pub up_to: Offset,
    files: Vec<Arc<dyn StorageFile>>,
    dirs: Vec<PathBuf>,
    storage: Arc<dyn Storage>,
    /// `(segment base offset, log bytes covered)`, applied by `complete_flush`.
    segment_sizes: Vec<(Offset, u64)>,
    /// Segments whose indexes this plan syncs.
    sealed_indexes: Vec<Offset>,
    /// The directory generation `dirs` makes durable.
    dir_generation: u64,
    /// The log's truncation count when the plan began.
    truncations: u64,
}

impl FlushPlan {
    /// See [`Storage::latency_hint`].
    pub fn latency_hint(&self) -> std::time::Duration {
        self.storage.latency_hint()
    }

    pub fn execute(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        for d in &self.dirs {
            self.storage.sync_dir(d)?;
        }
        Ok(())
    }
}
