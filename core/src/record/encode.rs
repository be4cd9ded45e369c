//! Writing a batch from records: the log cleaner's rewrite of a batch it keeps only some records
//! of (Kafka's `MemoryRecords.filterTo` / `buildRetainedRecordsInto`). The header's identity —
//! offsets span, leader epoch, producer fields, codec, timestamp type, transactional and control
//! bits — comes from the original batch; only recordCount, the timestamps, the delete-horizon bit,
//! the length and the CRC are new.

use super::compression::{self, Codec};
use super::error::RecordError;
use super::varint::{put_varint, put_varlong};
use super::{ATTR_DELETE_HORIZON, Record};
use crate::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD, TimestampType, compute_crc};
use crate::types::Offset;

const MAGIC_V2: u8 = 2;

/// Builds a batch holding `records` (a subset, in offset order, of the records of the batch
/// `header` describes), as Kafka's cleaner does:
///
/// - kept from `header`: baseOffset and lastOffsetDelta (the offset span stays even when its
///   last records are gone), partitionLeaderEpoch, producerId, producerEpoch, baseSequence, the
///   codec, timestamp type, transactional and control bits (and any other attribute bit but 6);
/// - each record keeps its offset, timestamp, attributes, key, value and headers;
/// - `delete_horizon_ms`: `Some(t)` sets attribute bit 6 (KIP-534) and stores `t` as
///   baseTimestamp, record timestamp deltas relative to it (possibly negative); `None` clears the
///   bit and takes the first record's timestamp (`header.base_timestamp` with no records);
/// - maxTimestamp: `header.max_timestamp` under LogAppendTime; under CreateTime the largest
///   record timestamp (`header.max_timestamp` with no records);
/// - `records` may be empty: Kafka keeps an empty batch (recordCount 0) as the last batch of an
///   idempotent producer so that its sequence state survives cleaning.
///
/// Errors if a record's offset is outside `[header.base_offset, header.last_offset()]` or the
/// offsets do not increase, or the header's codec is unknown (such a batch cannot have been
/// decoded).
pub fn encode_batch(
    header: &BatchHeader,
    records: &[Record],
    delete_horizon_ms: Option<i64>,
) -> Result<Vec<u8>, RecordError> {
    let codec = Codec::from_attributes(header.attributes)?;
    check_offsets(header, records)?;
    let base_timestamp = delete_horizon_ms
        .or(records.first().map(|r| r.timestamp))
        .unwrap_or(header.base_timestamp);
    let max_timestamp = match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(header.max_timestamp),
    };
    let mut body = Vec::new();
    for record in records {
        put_record(&mut body, header.base_offset, base_timestamp, record);
    }
    let region = compression::compress(codec, &body)?;
    let size = HEADER_LEN + region.len();
    let batch_length =
        i32::try_from(size - LOG_OVERHEAD).map_err(|_| RecordError::EncodedTooLarge(size))?;
    let record_count =
        i32::try_from(records.len()).map_err(|_| RecordError::EncodedTooLarge(size))?;
    let attributes = match delete_horizon_ms {
        Some(_) => header.attributes | ATTR_DELETE_HORIZON,
        None => header.attributes & !ATTR_DELETE_HORIZON,
    };
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(&header.base_offset.0.to_be_bytes());
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&header.partition_leader_epoch.0.to_be_bytes());
    b.push(MAGIC_V2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, computed last
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&header.producer_id.to_be_bytes());
    b.extend_from_slice(&header.producer_epoch.to_be_bytes());
    b.extend_from_slice(&header.base_sequence.to_be_bytes());
    b.extend_from_slice(&record_count.to_be_bytes());
    assert_eq!(b.len(), HEADER_LEN, "the v2 header is 61 bytes");
    b.extend_from_slice(&region);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(b)
}

/// Every record inside the header's offset span, offsets strictly increasing.
fn check_offsets(header: &BatchHeader, records: &[Record]) -> Result<(), RecordError> {
    let base = header.base_offset;
    let last = Offset(base.0.saturating_add(i64::from(header.last_offset_delta)));
    let mut previous: Option<Offset> = None;
    for record in records {
        let offset = record.offset;
        if offset < base || offset > last {
            return Err(RecordError::OffsetOutsideBatch { offset, base, last });
        }
        if let Some(previous) = previous
            && offset <= previous
        {
            return Err(RecordError::OffsetsNotIncreasing { offset, previous });
        }
        previous = Some(offset);
    }
    Ok(())
}

/// Appends one record (length first) as `DefaultRecord.writeTo` lays it out.
fn put_record(out: &mut Vec<u8>, base_offset: Offset, base_timestamp: i64, record: &Record) {
    let mut r = Vec::with_capacity(record_size_hint(record));
    r.push(record.attributes as u8);
    // Timestamps wrap as Java's longs do; decoding adds the delta back with the same wrap.
    put_varlong(&mut r, record.timestamp.wrapping_sub(base_timestamp));
    // In range: `check_offsets` put the offset in [base, base + lastOffsetDelta].
    put_varint(&mut r, (record.offset.0 - base_offset.0) as i32);
    put_nullable(&mut r, record.key.as_deref());
    put_nullable(&mut r, record.value.as_deref());
    put_varint(&mut r, record.headers.len() as i32);
    for header in &record.headers {
        put_varint(&mut r, header.key.len() as i32);
        r.extend_from_slice(&header.key);
        put_nullable(&mut r, header.value.as_deref());
    }
    put_varint(out, r.len() as i32);
    out.extend_from_slice(&r);
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

fn record_size_hint(record: &Record) -> usize {
    let fields =
        record.key.as_ref().map_or(0, |k| k.len()) + record.value.as_ref().map_or(0, |v| v.len());
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 10)
        .sum();
    32 + fields + headers
}
