//! Tests of the record codec: round trips through every compression codec (proptest), batches
//! built by `crate::batch` and by real clients (golden vectors), hostile input, the keyed-record
//! check. Shared fixtures (a header template, record strategies) live here.

mod golden;
mod hostile;
mod keys;
mod roundtrip;
mod varint;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::batch::BatchHeader;
use crate::types::{LeaderEpoch, Offset};

/// Attribute bits of a batch's timestamp type, transactional and control flags.
pub(super) const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
pub(super) const ATTR_TRANSACTIONAL: i16 = 1 << 4;
pub(super) const ATTR_CONTROL: i16 = 1 << 5;

pub(super) const CODECS: [Codec; 5] = [
    Codec::None,
    Codec::Gzip,
    Codec::Snappy,
    Codec::Lz4,
    Codec::Zstd,
];

/// A header as a producer's batch would have it; `encode_batch` fills in the rest.
pub(super) fn header(codec: Codec, base_offset: i64, last_offset_delta: i32) -> BatchHeader {
    BatchHeader {
        base_offset: Offset(base_offset),
        batch_length: 0,
        partition_leader_epoch: LeaderEpoch(7),
        magic: 2,
        crc: 0,
        attributes: codec.id(),
        last_offset_delta,
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_500,
        producer_id: 4242,
        producer_epoch: 3,
        base_sequence: 100,
        record_count: last_offset_delta + 1,
    }
}

pub(super) fn record(offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
    Record {
        offset: Offset(offset),
        timestamp: 1_700_000_000_000 + offset,
        attributes: 0,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: Vec::new(),
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Header keys from a tiny alphabet, so that duplicates are common.
fn record_header() -> impl Strategy<Value = Header> {
    (
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 0..3),
        proptest::option::of(bytes(8)),
    )
        .prop_map(|(key, value)| Header {
            key: Bytes::from(key),
            value,
        })
}

/// Record fields but the offset: (timestamp - batch baseTimestamp, attributes, key, value,
/// headers). Keys and values are null, empty or short.
fn record_fields() -> impl Strategy<Value = (i64, i8, Option<Bytes>, Option<Bytes>, Vec<Header>)> {
    (
        prop_oneof![-1_000_000i64..1_000_000, any::<i64>()],
        any::<i8>(),
        proptest::option::of(bytes(24)),
        proptest::option::of(bytes(64)),
        proptest::collection::vec(record_header(), 0..4),
    )
}

/// A kept subset of a batch: its header (any codec, timestamp type, flags, producer fields) and
/// its records, offsets increasing with gaps inside the header's span, plus a delete horizon.
pub(super) fn batch_parts() -> impl Strategy<Value = (BatchHeader, Vec<Record>, Option<i64>)> {
    (
        0usize..5,
        any::<(bool, bool, bool)>(),
        (0i64..1 << 40, any::<i32>(), any::<i64>(), any::<i64>()),
        (any::<i64>(), any::<i16>(), any::<i32>()),
        proptest::collection::vec((1i64..4, record_fields()), 0..12),
        (0i32..4, proptest::option::of(any::<i64>())),
    )
        .prop_map(|(codec, flags, ids, producer, fields, (tail, horizon))| {
            let (base_offset, epoch, base_ts, max_ts) = ids;
            let mut h = header(CODECS[codec], base_offset, 0);
            let (log_append, transactional, control) = flags;
            for (on, bit) in [
                (log_append, ATTR_LOG_APPEND_TIME),
                (transactional, ATTR_TRANSACTIONAL),
                (control, ATTR_CONTROL),
            ] {
                if on {
                    h.attributes |= bit;
                }
            }
            h.partition_leader_epoch = LeaderEpoch(epoch);
            (h.base_timestamp, h.max_timestamp) = (base_ts, max_ts);
            (h.producer_id, h.producer_epoch, h.base_sequence) = producer;
            let mut delta = -1i64;
            let records: Vec<Record> = fields
                .into_iter()
                .map(|(gap, (ts, attributes, key, value, headers))| {
                    delta += gap;
                    Record {
                        offset: Offset(base_offset + delta),
                        // Under LogAppendTime a decoded record's timestamp is maxTimestamp.
                        timestamp: if log_append {
                            max_ts
                        } else {
                            base_ts.wrapping_add(ts)
                        },
                        attributes,
                        key,
                        value,
                        headers,
                    }
                })
                .collect();
            h.last_offset_delta = (delta.max(0) + i64::from(tail)) as i32;
            h.record_count = records.len() as i32;
            (h, records, horizon)
        })
}
