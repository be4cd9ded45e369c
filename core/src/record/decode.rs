//! Reading the records of one v2 batch: header, decompression, then record by record with every
//! length and offset checked ([`RecordReader`]). [`decode_batch`] collects them; [`require_keys`]
//! only looks at keys.
//!
//! Memory is bounded by the limit given (default [`MAX_DECODED_BYTES`]): the decompressed
//! records region plus the in-memory size of every `Record` and `Header` built must stay under
//! it, and no `Vec` is sized from a count field beyond what the bytes left (and the limit) can
//! hold. Keys, values and header fields are slices of the one records buffer (`Bytes`), not
//! copies.

use std::mem::size_of;

use bytes::Bytes;

use super::compression::{self, Codec};
use super::error::RecordError;
use super::varint::Cursor;
use super::{DecodedBatch, Header, Record};
use crate::batch::{BatchError, BatchHeader, HEADER_LEN, TimestampType};
use crate::types::Offset;

/// What decoding one batch may hold in memory: the decompressed records region plus
/// `size_of::<Record>()` per record and `size_of::<Header>()` per header. 64 MiB is 64 times
/// Kafka's default `max.message.bytes`; a batch past it (a decompression bomb, or a record
/// count no batch of that size holds) is [`RecordError::TooLarge`].
pub const MAX_DECODED_BYTES: usize = 64 << 20;

/// Smallest record on the wire: length, attributes, timestampDelta, offsetDelta, key length,
/// value length and header count, one byte each.
const MIN_RECORD_BYTES: usize = 7;
/// Smallest record header on the wire: key length and value length.
const MIN_HEADER_BYTES: usize = 2;

/// Decodes every record of one whole v2 batch (see the module doc of [`super`]), with the
/// default memory limit [`MAX_DECODED_BYTES`]. Bytes past the batch's `total_size()` are
/// ignored; the CRC is not checked.
pub fn decode_batch(batch: &[u8]) -> Result<DecodedBatch, RecordError> {
    decode_batch_limited(batch, MAX_DECODED_BYTES)
}

/// As [`decode_batch`], holding at most `limit` bytes (decompressed records plus decoded
/// structs) in memory.
pub fn decode_batch_limited(batch: &[u8], limit: usize) -> Result<DecodedBatch, RecordError> {
    let mut reader = RecordReader::open(batch, limit)?;
    let mut records = Vec::with_capacity(reader.capacity_hint());
    while let Some(record) = reader.next_record()? {
        records.push(record);
    }
    Ok(DecodedBatch {
        header: reader.header,
        records,
    })
}

/// Checks every record of the batch has a non-null key, as Kafka's `LogValidator` demands of
/// appends to compacted topics: a keyless record is [`RecordError::MissingKey`]
/// (`INVALID_RECORD`). Decompresses if needed; a malformed batch is refused as by
/// [`decode_batch`].
pub fn require_keys(batch: &[u8]) -> Result<(), RecordError> {
    let mut reader = RecordReader::open(batch, MAX_DECODED_BYTES)?;
    while let Some(record) = reader.next_record()? {
        if record.key.is_none() {
            return Err(RecordError::MissingKey {
                offset: record.offset,
            });
        }
    }
    Ok(())
}

/// Reads the records of one batch one at a time.
pub(crate) struct RecordReader {
    header: BatchHeader,
    /// The (decompressed) records region.
    body: Bytes,
    /// Where the next record starts in `body`.
    pos: usize,
    /// Records read so far.
    read: i32,
    /// The previous record's offsetDelta: deltas must increase.
    previous_delta: Option<i32>,
    /// Bytes of the memory limit not yet taken.
    budget: usize,
    limit: usize,
}

impl RecordReader {
    /// Parses the header and decompresses the records region.
    pub(crate) fn open(batch: &[u8], limit: usize) -> Result<RecordReader, RecordError> {
        let header = BatchHeader::parse(batch)?;
        let whole =
            batch
                .get(..header.total_size())
                .ok_or(RecordError::Batch(BatchError::Truncated {
                    remaining: batch.len(),
                }))?;
        if header.record_count < 0 {
            return Err(RecordError::BadRecordCount(header.record_count));
        }
        let region = &whole[HEADER_LEN..];
        let body = match Codec::from_attributes(header.attributes)? {
            Codec::None if region.len() > limit => return Err(RecordError::TooLarge { limit }),
            Codec::None => Bytes::copy_from_slice(region),
            codec => Bytes::from(compression::decompress(codec, region, limit)?),
        };
        Ok(RecordReader {
            header,
            budget: limit - body.len(),
            body,
            pos: 0,
            read: 0,
            previous_delta: None,
            limit,
        })
    }

    /// How many records a `Vec` may be sized for without trusting `recordCount` alone.
    pub(crate) fn capacity_hint(&self) -> usize {
        let declared = usize::try_from(self.header.record_count).unwrap_or(0);
        declared
            .min(self.body.len() / MIN_RECORD_BYTES)
            .min(self.budget / size_of::<Record>())
    }

    /// Takes `bytes` of the memory limit.
    fn charge(&mut self, bytes: usize) -> Result<(), RecordError> {
        self.budget = self
            .budget
            .checked_sub(bytes)
            .ok_or(RecordError::TooLarge { limit: self.limit })?;
        Ok(())
    }

    /// The next record, or `None` after the last declared one (the records region must end
    /// there).
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>, RecordError> {
        if self.read == self.header.record_count {
            if self.pos < self.body.len() {
                return Err(RecordError::TrailingBytes(self.body.len() - self.pos));
            }
            return Ok(None);
        }
        if self.pos == self.body.len() {
            return Err(RecordError::RecordCountMismatch {
                declared: self.header.record_count,
                found: self.read,
            });
        }
        self.charge(size_of::<Record>())?;
        let mut cursor = Cursor::at(&self.body, self.pos);
        let len = cursor.read_varint()?;
        let len = usize::try_from(len).map_err(|_| RecordError::NegativeLength {
            field: "record",
            len,
        })?;
        let start = cursor.position();
        let bytes = cursor.read_bytes(len, "record")?;
        let record = self.parse_record(&bytes)?;
        self.pos = start + len;
        self.read += 1;
        Ok(Some(record))
    }

    /// Parses one record's fields (everything after its length).
    fn parse_record(&mut self, bytes: &Bytes) -> Result<Record, RecordError> {
        let mut c = Cursor::new(bytes);
        let attributes = c.read_i8("record attributes")?;
        let timestamp_delta = c.read_varlong()?;
        let offset_delta = c.read_varint()?;
        let offset = self.offset_of(offset_delta)?;
        let key = read_nullable(&mut c, "record key")?;
        let value = read_nullable(&mut c, "record value")?;
        let headers = self.read_headers(&mut c)?;
        if c.remaining() != 0 {
            return Err(RecordError::RecordSizeMismatch {
                declared: i32::try_from(bytes.len()).unwrap_or(i32::MAX),
                read: c.position(),
            });
        }
        let timestamp = match self.header.timestamp_type() {
            // As Kafka's `DefaultRecordBatch`: under LogAppendTime every record has the batch's
            // maxTimestamp, whatever deltas the producer wrote.
            TimestampType::LogAppendTime => self.header.max_timestamp,
            TimestampType::CreateTime => self.header.base_timestamp.wrapping_add(timestamp_delta),
        };
        Ok(Record {
            offset,
            timestamp,
            attributes,
            key,
            value,
            headers,
        })
    }

    /// Checks `offset_delta` lies in `[0, lastOffsetDelta]` after the previous record's, and
    /// gives the record's absolute offset.
    fn offset_of(&mut self, offset_delta: i32) -> Result<Offset, RecordError> {
        let last_offset_delta = self.header.last_offset_delta;
        if offset_delta < 0 || offset_delta > last_offset_delta {
            return Err(RecordError::OffsetDeltaOutOfRange {
                offset_delta,
                last_offset_delta,
            });
        }
        if let Some(previous) = self.previous_delta
            && offset_delta <= previous
        {
            return Err(RecordError::OffsetDeltaNotIncreasing {
                offset_delta,
                previous,
            });
        }
        self.previous_delta = Some(offset_delta);
        let base_offset = self.header.base_offset.0;
        base_offset
            .checked_add(i64::from(offset_delta))
            .map(Offset)
            .ok_or(RecordError::OffsetOverflow {
                base_offset,
                offset_delta,
            })
    }

    fn read_headers(&mut self, c: &mut Cursor<'_>) -> Result<Vec<Header>, RecordError> {
        let count = c.read_varint()?;
        let count = usize::try_from(count).map_err(|_| RecordError::NegativeLength {
            field: "header count",
            len: count,
        })?;
        let capacity = count
            .min(c.remaining() / MIN_HEADER_BYTES)
            .min(self.budget / size_of::<Header>());
        let mut headers = Vec::with_capacity(capacity);
        for _ in 0..count {
            self.charge(size_of::<Header>())?;
            let key_len = c.read_varint()?;
            let key_len = usize::try_from(key_len).map_err(|_| RecordError::NegativeLength {
                field: "header key",
                len: key_len,
            })?;
            let key = c.read_bytes(key_len, "header key")?;
            let value = read_nullable(c, "header value")?;
            headers.push(Header { key, value });
        }
        Ok(headers)
    }
}

/// A varint length then that many bytes; a negative length is null (Kafka reads any negative
/// key, value or header value length as null, and writes -1).
fn read_nullable(c: &mut Cursor<'_>, field: &'static str) -> Result<Option<Bytes>, RecordError> {
    let len = c.read_varint()?;
    match usize::try_from(len) {
        Ok(len) => c.read_bytes(len, field).map(Some),
        Err(_) => Ok(None),
    }
}
