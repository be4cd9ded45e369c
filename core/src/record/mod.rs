//! Records inside a v2 batch: decoding (all four codecs) and re-encoding, for the log cleaner
//! (issue #16) and for the keyed-record check of compacted topics.
//!
//! Everywhere else a batch stays opaque bytes with a parsed header ([`crate::batch`]): the broker
//! never rebuilds a batch from records. **The log cleaner is the one exception**: it decodes a
//! batch ([`decode_batch`]), keeps some of its records, and writes them into a new batch
//! ([`encode_batch`]) that keeps the original's offset span, producer fields and attributes.
//! The produce path only reads records, to refuse keyless ones on compacted topics
//! ([`require_keys`]).
//!
//! ## The records region (KIP-98, `DefaultRecord`)
//!
//! After the 61-byte batch header (layout in [`crate::batch`]) come `recordCount` records, the
//! whole region compressed with the batch's codec (`compression.rs`). Each record, with varints
//! and varlongs zigzag-encoded (`varint.rs`):
//!
//! ```text
//! field            type      meaning
//! length           varint    bytes of the record after this field
//! attributes       int8      unused by Kafka today (kept as read)
//! timestampDelta   varlong   timestamp - baseTimestamp (wrapping, as Java longs)
//! offsetDelta      varint    offset - baseOffset, in [0, lastOffsetDelta], increasing
//! keyLength        varint    -1 (any negative, when reading) = null key
//! key              bytes
//! valueLength      varint    -1 (any negative, when reading) = null value: a tombstone
//! value            bytes
//! headerCount      varint    >= 0
//! headers          per header:
//!   keyLength      varint    >= 0
//!   key            bytes     (UTF-8 in Kafka, not checked here)
//!   valueLength    varint    -1 (any negative, when reading) = null
//!   value          bytes
//! ```
//!
//! Invariants of a decoded batch (each violation is a [`RecordError`], never a panic): exactly
//! `recordCount` records fill the records region with no byte left over; every record's fields
//! fill exactly its `length`; offset deltas lie in `[0, lastOffsetDelta]` and strictly increase
//! (the cleaner leaves gaps, so they need not be dense); at most a bounded amount of memory is
//! used ([`MAX_DECODED_BYTES`]). A record's `timestamp` is Kafka's `Record.timestamp()`:
//! baseTimestamp + delta under CreateTime, the batch's maxTimestamp under LogAppendTime.
//! Control batches decode like any other.
//!
//! ## Limits
//!
//! Decoding never trusts a count or a length before the bytes are there: `Vec`s are sized by
//! what the remaining bytes can hold, decompression stops at the memory limit (default
//! [`MAX_DECODED_BYTES`], 64 MiB, counting the decompressed region plus every decoded `Record`
//! and `Header`; [`decode_batch_limited`] takes another), raw snappy blocks are checked against
//! it by their declared length before being inflated, and zstd frames asking for a window over
//! 2^[`ZSTD_WINDOW_LOG_MAX`] bytes are refused. Over the limit is [`RecordError::TooLarge`]
//! (`MESSAGE_TOO_LARGE`, so a Java producer splits the batch and retries).
//!
//! ## KIP-534: the delete horizon
//!
//! Attribute bit 6 of a batch says baseTimestamp holds the *delete horizon*: the time after
//! which the cleaner may drop the batch's tombstones (and the markers of aborted transactions).
//! The cleaner sets it when it first rewrites a batch holding tombstones
//! (`encode_batch(.., Some(now + delete.retention.ms))`); [`delete_horizon`] reads it back.

mod compression;
mod decode;
mod encode;
mod error;
mod lz4;
mod snappy;
mod varint;

#[cfg(test)]
mod tests;

use bytes::Bytes;

use crate::batch::BatchHeader;
use crate::types::Offset;

pub use compression::{Codec, ZSTD_WINDOW_LOG_MAX};
pub use decode::{MAX_DECODED_BYTES, decode_batch, decode_batch_limited, require_keys};
pub use encode::encode_batch;
pub use error::RecordError;

/// Attribute bit 6 (KIP-534): baseTimestamp is the batch's delete horizon.
pub const ATTR_DELETE_HORIZON: i16 = 1 << 6;

/// One record header, as on the wire: key bytes (UTF-8 not checked) and a nullable value.
/// A record's headers keep their order and duplicates (Kafka allows repeated keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// One record of a v2 batch, with absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: Offset,
    pub timestamp: i64,
    /// The record's attributes byte (unused by Kafka today; kept as read).
    pub attributes: i8,
    pub key: Option<Bytes>,
    /// `None`: a tombstone.
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// A batch's header and all its records, in offset order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    pub header: BatchHeader,
    pub records: Vec<Record>,
}

/// KIP-534: the batch's delete horizon (attribute bit 6 set: its baseTimestamp), else `None`.
pub fn delete_horizon(header: &BatchHeader) -> Option<i64> {
    (header.attributes & ATTR_DELETE_HORIZON != 0).then_some(header.base_timestamp)
}
