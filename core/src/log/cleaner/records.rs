//! The cleaner's view of records inside a batch: `decode_batch`, `encode_batch` and
//! `delete_horizon` as `crate::record` provides them.
//!
//! TEMPORARY: until `crate::record` lands (issue #16, another branch), this file holds a minimal
//! stand-in with the same names and signatures that handles uncompressed batches only, so the
//! cleaner can be built and tested; it is replaced by re-exports of `crate::record` at the merge.

use bytes::Bytes;
use thiserror::Error;

use crate::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD, compute_crc};
use crate::types::Offset;

/// KIP-534: attribute bit 6, "the batch's baseTimestamp is its delete horizon".
const ATTR_DELETE_HORIZON: i16 = 1 << 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: Offset,
    pub timestamp: i64,
    pub attributes: i8,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    pub header: BatchHeader,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("malformed record")]
    Malformed,
    #[error("unsupported codec {0}")]
    Codec(i16),
}

pub fn delete_horizon(header: &BatchHeader) -> Option<i64> {
    (header.attributes & ATTR_DELETE_HORIZON != 0).then_some(header.base_timestamp)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<i64, RecordError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(RecordError::Malformed)?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(RecordError::Malformed)
    }
    fn bytes(&mut self) -> Result<Option<Bytes>, RecordError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| RecordError::Malformed)?;
        let end = self.pos.checked_add(len).ok_or(RecordError::Malformed)?;
        let b = self.buf.get(self.pos..end).ok_or(RecordError::Malformed)?;
        self.pos = end;
        Ok(Some(Bytes::copy_from_slice(b)))
    }
}

pub fn decode_batch(batch: &[u8]) -> Result<DecodedBatch, RecordError> {
    let header = BatchHeader::parse(batch).map_err(|_| RecordError::Malformed)?;
    if header.compression_codec() != 0 {
        return Err(RecordError::Codec(header.compression_codec()));
    }
    let body = batch
        .get(HEADER_LEN..header.total_size())
        .ok_or(RecordError::Malformed)?;
    let mut r = Reader { buf: body, pos: 0 };
    let mut records = Vec::new();
    for _ in 0..header.record_count.max(0) {
        let _len = r.varint()?;
        let attributes = *r.buf.get(r.pos).ok_or(RecordError::Malformed)? as i8;
        r.pos += 1;
        let ts_delta = r.varint()?;
        let off_delta = r.varint()?;
        let key = r.bytes()?;
        let value = r.bytes()?;
        let n = r.varint()?;
        let mut headers = Vec::new();
        for _ in 0..n.max(0) {
            let key = r.bytes()?.unwrap_or_default();
            headers.push(Header {
                key,
                value: r.bytes()?,
            });
        }
        records.push(Record {
            offset: Offset(header.base_offset.0 + off_delta),
            timestamp: header.base_timestamp + ts_delta,
            attributes,
            key,
            value,
            headers,
        });
    }
    Ok(DecodedBatch { header, records })
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
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

fn put_bytes(out: &mut Vec<u8>, b: &Option<Bytes>) {
    match b {
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

pub fn encode_batch(
    header: &BatchHeader,
    records: &[Record],
    delete_horizon_ms: Option<i64>,
) -> Result<Vec<u8>, RecordError> {
    if header.compression_codec() != 0 {
        return Err(RecordError::Codec(header.compression_codec()));
    }
    let base_ts = delete_horizon_ms
        .or(records.first().map(|r| r.timestamp))
        .unwrap_or(header.base_timestamp);
    let max_ts = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(header.max_timestamp);
    let mut body = Vec::new();
    for r in records {
        let mut rec = vec![r.attributes as u8];
        put_varint(&mut rec, r.timestamp - base_ts);
        put_varint(&mut rec, r.offset.0 - header.base_offset.0);
        put_bytes(&mut rec, &r.key);
        put_bytes(&mut rec, &r.value);
        put_varint(&mut rec, r.headers.len() as i64);
        for h in &r.headers {
            put_bytes(&mut rec, &Some(h.key.clone()));
            put_bytes(&mut rec, &h.value);
        }
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let mut attributes = header.attributes & !ATTR_DELETE_HORIZON;
    if delete_horizon_ms.is_some() {
        attributes |= ATTR_DELETE_HORIZON;
    }
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&header.base_offset.0.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&header.partition_leader_epoch.0.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&header.producer_id.to_be_bytes());
    b.extend_from_slice(&header.producer_epoch.to_be_bytes());
    b.extend_from_slice(&header.base_sequence.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(b)
}
