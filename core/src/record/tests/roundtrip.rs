//! `encode_batch` then `decode_batch` gives back what went in, under every codec; the batch is
//! valid and its header keeps what the cleaner must keep (Kafka's `buildRetainedRecordsInto`).

use proptest::prelude::*;

use super::*;
use crate::batch::{
    BatchHeader, HEADER_LEN, TimestampType, build_batch_with_producer, compute_crc, validate_batch,
};

/// The header fields `encode_batch` keeps from the original.
fn assert_kept(original: &BatchHeader, encoded: &BatchHeader, records: &[Record]) {
    assert_eq!(encoded.base_offset, original.base_offset);
    assert_eq!(encoded.last_offset_delta, original.last_offset_delta);
    assert_eq!(
        encoded.partition_leader_epoch,
        original.partition_leader_epoch
    );
    assert_eq!(encoded.magic, 2);
    assert_eq!(
        encoded.attributes & !ATTR_DELETE_HORIZON,
        original.attributes & !ATTR_DELETE_HORIZON
    );
    assert_eq!(encoded.producer_id, original.producer_id);
    assert_eq!(encoded.producer_epoch, original.producer_epoch);
    assert_eq!(encoded.base_sequence, original.base_sequence);
    assert_eq!(encoded.record_count as usize, records.len());
}

/// Checks one encode → parse/validate → decode → re-encode cycle.
fn check_round_trip(h: &BatchHeader, records: &[Record], horizon: Option<i64>) {
    let bytes = encode_batch(h, records, horizon).unwrap();
    let parsed = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(parsed.total_size(), bytes.len());
    assert_eq!(parsed.crc, compute_crc(&bytes), "CRC computed");
    if !records.is_empty() {
        // validate_batch refuses recordCount 0 (produce rules); the CRC is checked above.
        assert_eq!(validate_batch(&bytes).unwrap(), parsed);
    }
    assert_kept(h, &parsed, records);
    assert_eq!(delete_horizon(&parsed), horizon);
    let expected_base = horizon
        .or(records.first().map(|r| r.timestamp))
        .unwrap_or(h.base_timestamp);
    assert_eq!(parsed.base_timestamp, expected_base);
    let expected_max = match h.timestamp_type() {
        TimestampType::LogAppendTime => h.max_timestamp,
        TimestampType::CreateTime => records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(h.max_timestamp),
    };
    assert_eq!(parsed.max_timestamp, expected_max);
    let decoded = decode_batch(&bytes).unwrap();
    assert_eq!(decoded.header, parsed);
    assert_eq!(decoded.records, records);
    // Idempotent: what the cleaner rewrites, rewritten again, is the same bytes.
    assert_eq!(
        encode_batch(&parsed, &decoded.records, horizon).unwrap(),
        bytes
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_round_trips((h, records, horizon) in batch_parts()) {
        check_round_trip(&h, &records, horizon);
    }

    /// Every codec, on the same records: the decoded records do not depend on the codec.
    #[test]
    fn every_codec_round_trips((h, records, horizon) in batch_parts()) {
        for codec in CODECS {
            let mut h = h;
            h.attributes = (h.attributes & !0x07) | codec.id();
            check_round_trip(&h, &records, horizon);
        }
    }

    /// A kept subset of a decoded batch round trips: the cleaner's path.
    #[test]
    fn subset_of_a_decoded_batch_round_trips(
        (h, records, horizon) in batch_parts(),
        keep in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let full = decode_batch(&encode_batch(&h, &records, None).unwrap()).unwrap();
        let kept: Vec<Record> = full
            .records
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(r, _)| r.clone())
            .collect();
        check_round_trip(&full.header, &kept, horizon);
    }
}

/// Batches built by the project's own producer path decode to what was put in.
#[test]
fn build_batch_with_producer_decodes_to_its_input() {
    let input: [(&[u8], Option<&[u8]>); 4] = [
        (b"v0", Some(b"k0")),
        (b"", None),
        (b"v2", Some(b"")),
        (b"v3", Some(b"k3")),
    ];
    let b = build_batch_with_producer(&input, 1_700_000_000_123, 9, 2, 40);
    let d = decode_batch(&b).unwrap();
    assert_eq!(d.header, validate_batch(&b).unwrap());
    assert_eq!(d.records.len(), 4);
    for (i, (r, (value, key))) in d.records.iter().zip(input).enumerate() {
        assert_eq!(r.offset, Offset(i as i64));
        assert_eq!(r.timestamp, 1_700_000_000_123);
        assert_eq!(r.key.as_deref(), key);
        assert_eq!(r.value.as_deref(), Some(value));
        assert!(r.headers.is_empty());
    }
    // An untouched rewrite of an uncompressed batch is the same bytes.
    assert_eq!(encode_batch(&d.header, &d.records, None).unwrap(), b);
}

/// Kafka keeps an empty batch as the last batch of an idempotent producer: recordCount 0, the
/// offset span and the producer fields kept, timestamps from the original header.
#[test]
fn empty_batch_keeps_offset_span_and_producer_state() {
    for codec in CODECS {
        let h = header(codec, 500, 9);
        let b = encode_batch(&h, &[], None).unwrap();
        let p = BatchHeader::parse(&b).unwrap();
        assert_eq!(p.record_count, 0);
        assert_eq!(p.last_offset(), Offset(509));
        assert_eq!(
            (p.producer_id, p.producer_epoch, p.base_sequence),
            (4242, 3, 100)
        );
        assert_eq!(
            (p.base_timestamp, p.max_timestamp),
            (h.base_timestamp, h.max_timestamp)
        );
        assert_eq!(p.crc, compute_crc(&b));
        let d = decode_batch(&b).unwrap();
        assert!(d.records.is_empty());
        if codec == Codec::None {
            assert_eq!(b.len(), HEADER_LEN);
        }
    }
}

/// A rewrite keeps the offset span when its last records are gone (Kafka's
/// `overrideLastOffset`), and offsets keep their gaps.
#[test]
fn gaps_and_offset_span_are_kept() {
    let h = header(Codec::Lz4, 1000, 7);
    let kept = [
        record(1001, Some(b"a"), Some(b"1")),
        record(1004, Some(b"b"), None),
    ];
    let b = encode_batch(&h, &kept, None).unwrap();
    let d = decode_batch(&b).unwrap();
    assert_eq!(d.header.last_offset(), Offset(1007));
    assert_eq!(d.records, kept);
    assert_eq!(d.records[1].value, None, "a tombstone stays a tombstone");
}

/// KIP-534: with a horizon, baseTimestamp is the horizon and deltas may be negative; without,
/// the bit is cleared again.
#[test]
fn delete_horizon_sets_bit_6_and_base_timestamp() {
    let h = header(Codec::Zstd, 0, 1);
    let records = [
        record(0, Some(b"k"), None),
        record(1, Some(b"k2"), Some(b"v")),
    ];
    let horizon = 1_800_000_000_000;
    let b = encode_batch(&h, &records, Some(horizon)).unwrap();
    let p = BatchHeader::parse(&b).unwrap();
    assert_eq!(p.attributes & ATTR_DELETE_HORIZON, ATTR_DELETE_HORIZON);
    assert_eq!(p.base_timestamp, horizon);
    assert_eq!(delete_horizon(&p), Some(horizon));
    assert_eq!(p.max_timestamp, records[1].timestamp);
    assert_eq!(decode_batch(&b).unwrap().records, records);
    let again = encode_batch(&p, &records, None).unwrap();
    let q = BatchHeader::parse(&again).unwrap();
    assert_eq!(q.attributes & ATTR_DELETE_HORIZON, 0);
    assert_eq!(delete_horizon(&q), None);
    assert_eq!(q.base_timestamp, records[0].timestamp);
}

/// Control and transactional bits survive a rewrite (Kafka keeps them).
#[test]
fn control_and_transactional_bits_are_kept() {
    let mut h = header(Codec::None, 10, 0);
    h.attributes |= ATTR_TRANSACTIONAL | ATTR_CONTROL;
    // A COMMIT marker: key version 0 type 1, value version 0 coordinator epoch 5.
    let marker = record(10, Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 0, 0, 5]));
    let b = encode_batch(&h, std::slice::from_ref(&marker), None).unwrap();
    let p = validate_batch(&b).unwrap();
    assert!(p.is_control() && p.is_transactional());
    assert_eq!(decode_batch(&b).unwrap().records, vec![marker]);
}

/// Offsets outside the header's span or not increasing are refused.
#[test]
fn encode_refuses_bad_offsets() {
    let h = header(Codec::None, 100, 3);
    let cases = [
        vec![record(99, Some(b"k"), None)],
        vec![record(104, Some(b"k"), None)],
        vec![record(101, Some(b"k"), None), record(101, Some(b"k"), None)],
        vec![record(102, Some(b"k"), None), record(101, Some(b"k"), None)],
    ];
    for records in cases {
        let e = encode_batch(&h, &records, None).unwrap_err();
        assert!(
            matches!(
                e,
                RecordError::OffsetOutsideBatch { .. } | RecordError::OffsetsNotIncreasing { .. }
            ),
            "{records:?}: {e}"
        );
    }
}

/// Duplicate header keys keep their order and multiplicity.
#[test]
fn duplicate_header_keys_keep_order() {
    let mut r = record(0, Some(b"k"), Some(b"v"));
    r.headers = ["a", "b", "a", "a"]
        .iter()
        .enumerate()
        .map(|(i, k)| Header {
            key: Bytes::from(*k),
            value: (i != 2).then(|| Bytes::from(vec![i as u8])),
        })
        .collect();
    for codec in CODECS {
        let b = encode_batch(&header(codec, 0, 0), std::slice::from_ref(&r), None).unwrap();
        assert_eq!(decode_batch(&b).unwrap().records[0].headers, r.headers);
    }
}
