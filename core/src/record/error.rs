//! Why the records of a batch could not be decoded, checked or re-encoded.

use thiserror::Error;

use crate::batch::BatchError;
use crate::error::ErrorCode;
use crate::types::Offset;

/// `UNSUPPORTED_COMPRESSION_TYPE`: a codec this broker does not know (attribute bits 0-2 above 4).
const UNSUPPORTED_COMPRESSION_TYPE: ErrorCode = ErrorCode(76);

/// Each variant maps to the Kafka error code a producer expects ([`RecordError::error_code`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// The 61-byte header itself is unreadable (too short, bad `batchLength`, not magic v2).
    #[error("batch header: {0}")]
    Batch(#[from] BatchError),
    #[error("malformed varint at byte {at} of the records")]
    BadVarint { at: usize },
    #[error("{field} runs past the end of the records (at byte {at})")]
    PastEnd { field: &'static str, at: usize },
    #[error("{field} has the negative length {len}")]
    NegativeLength { field: &'static str, len: i32 },
    #[error("record declares {declared} bytes but its fields take {read}")]
    RecordSizeMismatch { declared: i32, read: usize },
    #[error("recordCount {0} is negative")]
    BadRecordCount(i32),
    #[error("batch declares {declared} records but holds {found}")]
    RecordCountMismatch { declared: i32, found: i32 },
    #[error("{0} bytes follow the last declared record")]
    TrailingBytes(usize),
    #[error("offsetDelta {offset_delta} outside [0, lastOffsetDelta {last_offset_delta}]")]
    OffsetDeltaOutOfRange {
        offset_delta: i32,
        last_offset_delta: i32,
    },
    #[error("offsetDelta {offset_delta} does not follow the previous record's {previous}")]
    OffsetDeltaNotIncreasing { offset_delta: i32, previous: i32 },
    #[error("baseOffset {base_offset} plus offsetDelta {offset_delta} overflows")]
    OffsetOverflow { base_offset: i64, offset_delta: i32 },
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
    #[error("{codec} decompression failed: {reason}")]
    Decompression { codec: &'static str, reason: String },
    #[error("{codec} compression failed: {reason}")]
    Compression { codec: &'static str, reason: String },
    #[error("decoded batch needs more than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// A keyless record where the topic's `cleanup.policy` includes `compact`.
    #[error("record at offset {} has no key (compacted topics need one)", .offset.0)]
    MissingKey { offset: Offset },
    /// `encode_batch` was given a record outside the batch's offset span.
    #[error("record offset {} outside the batch's [{}, {}]", .offset.0, .base.0, .last.0)]
    OffsetOutsideBatch {
        offset: Offset,
        base: Offset,
        last: Offset,
    },
    /// `encode_batch` was given records out of offset order, or twice the same offset.
    #[error("record offset {} does not follow {}", .offset.0, .previous.0)]
    OffsetsNotIncreasing { offset: Offset, previous: Offset },
    #[error("encoded batch of {0} bytes does not fit batchLength")]
    EncodedTooLarge(usize),
}

impl RecordError {
    /// The error code for a produce response (or a log line, for the cleaner's own errors).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            RecordError::Batch(e) => e.error_code(),
            RecordError::BadVarint { .. }
            | RecordError::PastEnd { .. }
            | RecordError::NegativeLength { .. }
            | RecordError::RecordSizeMismatch { .. }
            | RecordError::BadRecordCount(_)
            | RecordError::RecordCountMismatch { .. }
            | RecordError::TrailingBytes(_)
            | RecordError::OffsetDeltaOutOfRange { .. }
            | RecordError::OffsetDeltaNotIncreasing { .. }
            | RecordError::OffsetOverflow { .. }
            | RecordError::Decompression { .. } => ErrorCode::CORRUPT_MESSAGE,
            RecordError::UnknownCodec(_) => UNSUPPORTED_COMPRESSION_TYPE,
            // A Java producer splits a batch refused as too large and retries the halves.
            RecordError::TooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
            RecordError::MissingKey { .. } => ErrorCode::INVALID_RECORD,
            // Only `encode_batch` returns these: a caller's bug, not the client's.
            RecordError::Compression { .. }
            | RecordError::OffsetOutsideBatch { .. }
            | RecordError::OffsetsNotIncreasing { .. }
            | RecordError::EncodedTooLarge(_) => ErrorCode::UNKNOWN_SERVER_ERROR,
        }
    }
}
