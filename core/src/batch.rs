//! Kafka record batches (magic v2), kept as raw bytes from socket to disk to socket.
//!
//! A batch is never rebuilt from decoded records: the broker reads its 61-byte header, checks it,
//! and patches the two fields the CRC does not cover (`baseOffset`, `partitionLeaderEpoch`).
//! The one exception is the log cleaner, which rewrites a batch of a compacted topic keeping only
//! some of its records (`crate::record`, `log::cleaner`): the rewritten batch keeps its offset
//! span, so a stored batch may hold fewer records than offsets (even none), and offsets may have
//! gaps between batches.
//!
//! ## Layout (big-endian, KIP-98)
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            assigned by the broker (patched in place)
//!      8     4  batchLength           bytes after this field
//!     12     4  partitionLeaderEpoch  stamped by the broker (patched in place)
//!     16     1  magic                 must be 2
//!     17     4  crc                   CRC-32C of bytes 21..end
//!     21     2  attributes            bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordCount
//!     61     …  records (possibly compressed; never decoded here)
//! ```
//!
//! We parse this header ourselves rather than with `kafka-protocol`'s `decode_batch_info`, which
//! does not expose `lastOffsetDelta` or `maxTimestamp` and needs an owned buffer.

use thiserror::Error;

use crate::error::ErrorCode;
use crate::types::{LeaderEpoch, Offset};

/// Bytes before `batchLength` counts from: `baseOffset` + `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, up to and including `recordCount`.
pub const HEADER_LEN: usize = 61;
/// Where the CRC-covered region starts.
const CRC_START: usize = 21;
const MAGIC_V2: i8 = 2;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

/// Why a batch was refused. Each maps to the Kafka error code a producer expects.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("record set ends in the middle of a batch ({remaining} bytes left over)")]
    Truncated { remaining: usize },
    #[error("batch length {0} is smaller than a v2 header")]
    BadLength(i32),
    #[error("magic {0} is not supported (only v2 record batches)")]
    BadMagic(i8),
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch has {0} records")]
    BadRecordCount(i32),
    #[error("lastOffsetDelta {last_offset_delta} does not match record count {record_count}")]
    OffsetDeltaMismatch {
        last_offset_delta: i32,
        record_count: i32,
    },
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
    #[error("control or transactional batches are not accepted from producers")]
    NotAcceptedFromProducer,
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("empty record set")]
    Empty,
}

impl BatchError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            BatchError::Truncated { .. }
            | BatchError::BadLength(_)
            | BatchError::CrcMismatch { .. } => ErrorCode::CORRUPT_MESSAGE,
            BatchError::BadMagic(_) => ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,
            BatchError::UnknownCompression(_) => ErrorCode::UNSUPPORTED_COMPRESSION_TYPE,
            BatchError::BadRecordCount(_)
            | BatchError::OffsetDeltaMismatch { .. }
            | BatchError::NotAcceptedFromProducer
            | BatchError::Empty => ErrorCode::INVALID_RECORD,
            BatchError::TooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
        }
    }
}

/// Timestamp semantics of a batch (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The parsed fixed header of one v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    pub batch_length: i32,
    pub partition_leader_epoch: LeaderEpoch,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Reads the header at the start of `buf`. Checks only that the bytes are there and that
    /// `batchLength` and `magic` are plausible; the CRC and the rest are checked by
    /// [`validate_batch`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                remaining: buf.len(),
            });
        }
        let batch_length = be_i32(buf, 8);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(batch_length));
        }
        let magic = buf[16] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        Ok(BatchHeader {
            base_offset: Offset(be_i64(buf, 0)),
            batch_length,
            partition_leader_epoch: LeaderEpoch(be_i32(buf, 12)),
            magic,
            crc: u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        })
    }

    /// Whole size of the batch on disk and on the wire.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset.0 + i64::from(self.last_offset_delta))
    }

    /// Offset right after the batch.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().next()
    }

    pub fn compression_codec(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// The producer id, if the batch came from an idempotent producer (`-1` means none).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// CRC-32C of the region the batch's `crc` field covers.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Checks one complete batch (exactly `header.total_size()` bytes): CRC and header consistency.
/// Used on every batch we store and on every batch we serve.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() < header.total_size() {
        return Err(BatchError::Truncated {
            remaining: batch.len(),
        });
    }
    let batch = &batch[..header.total_size()];
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    // Zero records is a stored batch the cleaner emptied (an idempotent producer's last batch,
    // kept for its sequence state); producers must send at least one (`validate_produce`).
    if header.record_count < 0 {
        return Err(BatchError::BadRecordCount(header.record_count));
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::OffsetDeltaMismatch {
            last_offset_delta: header.last_offset_delta,
            record_count: header.record_count,
        });
    }
    if header.compression_codec() > 4 {
        return Err(BatchError::UnknownCompression(header.compression_codec()));
    }
    Ok(header)
}

/// Validates a producer's record set: one or more whole v2 batches, each under
/// `max_message_bytes`, with dense offsets (`lastOffsetDelta + 1 == recordCount`, as Kafka's
/// `LogValidator` demands of client batches), no control or transactional batches, and nothing
/// left over. Returns the headers in order.
pub fn validate_produce(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        let header = BatchHeader::parse(rest)?;
        if header.total_size() > max_message_bytes {
            return Err(BatchError::TooLarge {
                size: header.total_size(),
                max: max_message_bytes,
            });
        }
        let header = validate_batch(rest)?;
        if header.record_count < 1 {
            return Err(BatchError::BadRecordCount(header.record_count));
        }
        if i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count) {
            return Err(BatchError::OffsetDeltaMismatch {
                last_offset_delta: header.last_offset_delta,
                record_count: header.record_count,
            });
        }
        if header.is_control() || header.is_transactional() {
            return Err(BatchError::NotAcceptedFromProducer);
        }
        pos += header.total_size();
        headers.push(header);
    }
    Ok(headers)
}

/// Stamps `baseOffset` and `partitionLeaderEpoch` into a batch in place. Neither is covered by the
/// CRC, so the batch stays valid.
pub fn assign_offset(batch: &mut [u8], base_offset: Offset, leader_epoch: LeaderEpoch) {
    assert!(
        batch.len() >= HEADER_LEN,
        "assign_offset on a batch shorter than its header"
    );
    batch[0..8].copy_from_slice(&base_offset.0.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.0.to_be_bytes());
}

/// Turns a batch into a `LogAppendTime` batch stamped with `now_ms` (topic config
/// `message.timestamp.type=LogAppendTime`): sets attribute bit 3 and `maxTimestamp`, then
/// recomputes the CRC, as Kafka's `LogValidator` does for v2 batches.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    assert!(
        batch.len() >= HEADER_LEN,
        "set_log_append_time on a batch shorter than its header"
    );
    let attributes = be_i16(batch, 21) | ATTR_TIMESTAMP_TYPE;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Walks a buffer of consecutive batches, yielding `(position, header)` for each batch that is
/// wholly inside the buffer. Stops (without error) at a partial trailing batch; `Err` on a header
/// that cannot be a batch, after which the iterator is exhausted. Does not check CRCs.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter { buf, pos: 0 }
    }

    /// Bytes of whole batches walked so far (the buffer's length after an error).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(usize, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.len() < HEADER_LEN {
            return None;
        }
        match BatchHeader::parse(rest) {
            Err(e) => {
                // Fuse: a header that cannot be a batch ends the walk.
                self.pos = self.buf.len();
                Some(Err(e))
            }
            Ok(h) if h.total_size() > rest.len() => None,
            Ok(h) => {
                let at = self.pos;
                self.pos += h.total_size();
                Some(Ok((at, h)))
            }
        }
    }
}

/// Builds an uncompressed v2 batch of `values` (null keys, no headers) for tests, benchmarks and
/// the project's own client. Offsets start at 0; the broker assigns real ones.
pub fn build_batch(values: &[(&[u8], Option<&[u8]>)], timestamp_ms: i64) -> Vec<u8> {
    build_batch_with_producer(values, timestamp_ms, -1, -1, -1)
}

/// As [`build_batch`], with an idempotent producer's id, epoch and base sequence.
/// Each element of `records` is `(value, key)`.
pub fn build_batch_with_producer(
    records: &[(&[u8], Option<&[u8]>)],
    timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch has at least one record");
    let mut body = Vec::new();
    for (i, (value, key)) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0u8); // record attributes
        put_varlong(&mut rec, 0); // timestamp delta
        put_varlong(&mut rec, i as i64); // offset delta
        match key {
            Some(k) => {
                put_varlong(&mut rec, k.len() as i64);
                rec.extend_from_slice(k);
            }
            None => put_varlong(&mut rec, -1),
        }
        put_varlong(&mut rec, value.len() as i64);
        rec.extend_from_slice(value);
        put_varlong(&mut rec, 0); // header count
        put_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let count = records.len() as i32;
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        build_batch(&[(b"v1", Some(b"k1")), (b"v2", None)], 1_700_000_000_000)
    }

    #[test]
    fn built_batch_validates() {
        let b = sample();
        let h = validate_batch(&b).expect("valid");
        assert_eq!(h.record_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(validate_produce(&b, 1 << 20).expect("valid").len(), 1);
    }

    #[test]
    fn assign_offset_keeps_crc_valid() {
        let mut b = sample();
        assign_offset(&mut b, Offset(42), LeaderEpoch(7));
        let h = validate_batch(&b).expect("still valid");
        assert_eq!(h.base_offset, Offset(42));
        assert_eq!(h.last_offset(), Offset(43));
        assert_eq!(h.partition_leader_epoch, LeaderEpoch(7));
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let mut b = sample();
        set_log_append_time(&mut b, 99);
        let h = validate_batch(&b).expect("valid");
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 99);
    }

    #[test]
    fn corruption_is_corrupt_message() {
        let mut b = sample();
        let last = b.len() - 1;
        b[last] ^= 0x01;
        let e = validate_produce(&b, 1 << 20).unwrap_err();
        assert!(matches!(e, BatchError::CrcMismatch { .. }));
        assert_eq!(e.error_code(), ErrorCode::CORRUPT_MESSAGE);
    }

    #[test]
    fn truncated_and_trailing_bytes_are_refused() {
        let b = sample();
        assert_eq!(
            validate_produce(&b[..b.len() - 1], 1 << 20)
                .unwrap_err()
                .error_code(),
            ErrorCode::CORRUPT_MESSAGE
        );
        let mut two = b.clone();
        two.extend_from_slice(&[0u8; 5]);
        assert_eq!(
            validate_produce(&two, 1 << 20).unwrap_err().error_code(),
            ErrorCode::CORRUPT_MESSAGE
        );
        assert_eq!(
            validate_produce(&[], 1 << 20).unwrap_err().error_code(),
            ErrorCode::INVALID_RECORD
        );
    }

    #[test]
    fn oversized_batch_is_message_too_large() {
        let big = vec![7u8; 2000];
        let b = build_batch(&[(&big, None)], 0);
        assert_eq!(
            validate_produce(&b, 1000).unwrap_err().error_code(),
            ErrorCode::MESSAGE_TOO_LARGE
        );
    }

    #[test]
    fn bad_magic_and_control_batches_are_refused() {
        let mut b = sample();
        b[16] = 1;
        assert_eq!(
            validate_produce(&b, 1 << 20).unwrap_err().error_code(),
            ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
        );
        let mut c = sample();
        c[22] |= 1 << 5;
        let crc = compute_crc(&c);
        c[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            validate_produce(&c, 1 << 20).unwrap_err(),
            BatchError::NotAcceptedFromProducer
        );
    }

    #[test]
    fn iter_stops_at_partial_batch() {
        let mut buf = sample();
        buf.extend_from_slice(&sample());
        let full = buf.len();
        buf.extend_from_slice(&sample()[..30]);
        let mut it = BatchIter::new(&buf);
        assert!(it.by_ref().all(|r| r.is_ok()));
        assert_eq!(it.position(), full);
    }

    proptest! {
        #[test]
        fn any_single_byte_flip_in_crc_region_is_detected(idx in 21usize..200, bit in 0u8..8) {
            let b = build_batch(&[(&[1u8; 150], None)], 5);
            let idx = idx % b.len();
            prop_assume!(idx >= 21);
            let mut c = b.clone();
            c[idx] ^= 1 << bit;
            prop_assert!(validate_batch(&c).is_err());
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate_produce(&data, 1 << 20);
            let _ = BatchIter::new(&data).count();
        }
    }
}
