//! The partition log: an append-only sequence of record batches in segment files.
//!
//! PUBLIC API FIXED BY THE INTEGRATOR — the implementation (submodules) fills the bodies.
//! See ARCHITECTURE.md for the on-disk formats.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use crate::batch::{BatchError, TimestampType};
use crate::error::ErrorCode;
use crate::storage::{Storage, StorageFile};
use crate::types::{LeaderEpoch, Offset};

/// Per-log settings, named after Kafka's topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl LogError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            LogError::Batch(e) => e.error_code(),
            LogError::Io { .. } | LogError::Failed(_) => ErrorCode::KAFKA_STORAGE_ERROR,
            LogError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
            LogError::Corrupt { .. } => ErrorCode::CORRUPT_MESSAGE,
        }
    }
}

/// Result of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record appended.
    pub first_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// The broker's timestamp if the log uses `LogAppendTime`, else -1 (Produce response field).
    pub log_append_time_ms: i64,
    /// Log start offset after the append (Produce response field).
    pub log_start_offset: Offset,
    /// Bytes written.
    pub bytes: usize,
}

/// Result of a read: whole, CRC-checked batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Concatenated batches, starting with the batch that contains the requested offset.
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

/// What a retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted_segments: usize,
    pub deleted_bytes: u64,
    pub log_start_offset: Offset,
}

/// A group commit prepared by [`PartitionLog::begin_flush`]: the files and directories to sync so
/// that every offset below `up_to` is durable. The driver runs [`FlushPlan::execute`] wherever it
/// likes (off its reactor), then reports success with [`PartitionLog::complete_flush`] or failure
/// with [`PartitionLog::fail`].
#[derive(Debug)]
pub struct FlushPlan {
    pub up_to: Offset,
    files: Vec<Arc<dyn StorageFile>>,
    dirs: Vec<PathBuf>,
    storage: Arc<dyn Storage>,
}

impl FlushPlan {
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

/// One partition's log.
#[derive(Debug)]
pub struct PartitionLog {
    // filled by the implementation
}

#[allow(unused_variables)]
impl PartitionLog {
    /// Opens the log in `dir` (creating it if empty), recovering as described in the module docs.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(PartitionLog, RecoveryReport), LogError> {
        todo!()
    }

    pub fn dir(&self) -> &Path {
        todo!()
    }

    pub fn config(&self) -> &LogConfig {
        todo!()
    }

    /// Applies new settings (DescribeConfigs/AlterConfigs, CreatePartitions); takes effect on the
    /// next append / retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        todo!()
    }

    pub fn log_start_offset(&self) -> Offset {
        todo!()
    }

    pub fn log_end_offset(&self) -> Offset {
        todo!()
    }

    /// Every offset below this is fsynced.
    pub fn flushed_offset(&self) -> Offset {
        todo!()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }

    /// Validates a producer's record set, assigns offsets from the log end offset, stamps
    /// `leader_epoch`, and writes it to the active segment (rolling first if needed). No fsync.
    pub fn append(
        &mut self,
        records: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        todo!()
    }

    /// Prepares a group commit covering everything appended so far; `None` if all is flushed.
    pub fn begin_flush(&mut self) -> Option<FlushPlan> {
        todo!()
    }

    /// Records that `plan` executed successfully.
    pub fn complete_flush(&mut self, plan: &FlushPlan) {
        todo!()
    }

    /// Marks the log failed after an IO error that may have lost acknowledged-to-be data (fsync
    /// EIO): every later operation returns [`LogError::Failed`].
    pub fn fail(&mut self) {
        todo!()
    }

    /// Reads whole batches starting with the one containing `offset`, up to `max_bytes` (but at
    /// least one whole batch, KIP-74), never including a batch that ends at or beyond `upper_bound`
    /// (the high watermark).
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> Result<ReadResult, LogError> {
        todo!()
    }

    /// The earliest offset whose timestamp is at or after `timestamp_ms`, or `None`.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        todo!()
    }

    /// Deletes whole non-active segments past `retention.ms` / `retention.bytes`.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionReport, LogError> {
        todo!()
    }

    /// Removes every offset at or after `offset` (follower truncation, KIP-101).
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        todo!()
    }

    /// Deletes the log's directory and everything in it (DeleteTopics).
    pub fn delete(self) -> Result<(), LogError> {
        todo!()
    }
}
