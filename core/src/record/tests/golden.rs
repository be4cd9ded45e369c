//! Golden vectors: one batch per codec as real clients wrote it, captured from a strata node's
//! segment files by `golden/generate.py` (which says how to regenerate them).
//!
//! - `librdkafka-*`: confluent-kafka 2.16.2 / librdkafka 2.16.0, idempotent producer. librdkafka
//!   writes snappy as one *raw* block; LZ4 frames without content size.
//! - `kafka-python-*`: kafka-python 3.0.12, which writes snappy with the xerial framing of
//!   Kafka's Java client, and LZ4 frames with a content size. It cannot send a null header
//!   value, so its `g` header is empty.
//! - `librdkafka-gzip-logappend`: a topic with `message.timestamp.type=LogAppendTime`, so the
//!   broker set attribute bit 3 and maxTimestamp.
//!
//! Each holds the same five records (`RECORDS` in `generate.py`).

use super::*;
use crate::batch::{TimestampType, validate_batch};

const BASE_TS: i64 = 1_700_000_000_000;

struct Golden {
    name: &'static str,
    bytes: &'static [u8],
    codec: Codec,
    /// librdkafka sends a null header value; kafka-python an empty one.
    null_header_value: bool,
}

const fn golden(name: &'static str, bytes: &'static [u8], codec: Codec, rdkafka: bool) -> Golden {
    Golden {
        name,
        bytes,
        codec,
        null_header_value: rdkafka,
    }
}

const GOLDEN: &[Golden] = &[
    golden(
        "rdkafka-none",
        include_bytes!("golden/librdkafka-none.bin"),
        Codec::None,
        true,
    ),
    golden(
        "rdkafka-gzip",
        include_bytes!("golden/librdkafka-gzip.bin"),
        Codec::Gzip,
        true,
    ),
    golden(
        "rdkafka-snappy",
        include_bytes!("golden/librdkafka-snappy.bin"),
        Codec::Snappy,
        true,
    ),
    golden(
        "rdkafka-lz4",
        include_bytes!("golden/librdkafka-lz4.bin"),
        Codec::Lz4,
        true,
    ),
    golden(
        "rdkafka-zstd",
        include_bytes!("golden/librdkafka-zstd.bin"),
        Codec::Zstd,
        true,
    ),
    golden(
        "kp-gzip",
        include_bytes!("golden/kafka-python-gzip.bin"),
        Codec::Gzip,
        false,
    ),
    golden(
        "kp-snappy",
        include_bytes!("golden/kafka-python-snappy.bin"),
        Codec::Snappy,
        false,
    ),
    golden(
        "kp-lz4",
        include_bytes!("golden/kafka-python-lz4.bin"),
        Codec::Lz4,
        false,
    ),
    golden(
        "kp-zstd",
        include_bytes!("golden/kafka-python-zstd.bin"),
        Codec::Zstd,
        false,
    ),
];

const LOG_APPEND: &[u8] = include_bytes!("golden/librdkafka-gzip-logappend.bin");

/// The five records `generate.py` sends, at offsets 0..5.
fn expected(null_header_value: bool, timestamp: impl Fn(i64) -> i64) -> Vec<Record> {
    let h = |k: &'static str, v: Option<&'static str>| Header {
        key: Bytes::from(k),
        value: v.map(Bytes::from),
    };
    let g = if null_header_value { None } else { Some("") };
    let big = Bytes::from("strata golden value ".repeat(100));
    let mut r = vec![
        record(0, Some(b"k1"), Some(b"v1")),
        record(1, None, Some(b"v2")),
        record(2, Some(b"k3"), None),
        record(3, Some(b""), Some(b"")),
        record(4, Some(b"k5"), Some(&big)),
    ];
    r[0].headers = vec![
        h("h", Some("x")),
        h("h", Some("y")),
        h("g", g),
        h("h", Some("z")),
    ];
    for (rec, ts) in r.iter_mut().zip([10, 20, 5, 30, 40]) {
        rec.timestamp = timestamp(BASE_TS + ts);
    }
    r
}

#[test]
fn real_client_batches_decode() {
    for g in GOLDEN {
        let header = validate_batch(g.bytes).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(
            Codec::from_attributes(header.attributes),
            Ok(g.codec),
            "{}",
            g.name
        );
        assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
        let d = decode_batch(g.bytes).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(d.header, header);
        assert_eq!(
            d.records,
            expected(g.null_header_value, |t| t),
            "{}",
            g.name
        );
        assert_eq!(d.header.max_timestamp, BASE_TS + 40);
        assert_eq!(
            require_keys(g.bytes),
            Err(RecordError::MissingKey { offset: Offset(1) }),
            "{}",
            g.name
        );
    }
}

/// The cleaner's path on real batches: keep some records, rewrite, decode; the kept records and
/// the producer fields come back. With every record kept, an uncompressed rewrite is the bytes
/// librdkafka wrote.
#[test]
fn real_client_batches_rewrite() {
    for g in GOLDEN {
        let d = decode_batch(g.bytes).unwrap();
        let kept = vec![d.records[2].clone(), d.records[4].clone()];
        for horizon in [None, Some(BASE_TS + 86_400_000)] {
            let b = encode_batch(&d.header, &kept, horizon).unwrap();
            let v = validate_batch(&b).unwrap();
            assert_eq!(v.attributes & 0x07, g.codec.id());
            assert_eq!(v.last_offset_delta, 4);
            let p = (v.producer_id, v.producer_epoch, v.base_sequence);
            let h = d.header;
            assert_eq!(p, (h.producer_id, h.producer_epoch, h.base_sequence));
            assert_eq!(decode_batch(&b).unwrap().records, kept, "{}", g.name);
        }
        let all = encode_batch(&d.header, &d.records, None).unwrap();
        let again = decode_batch(&all).unwrap();
        assert_eq!(again.records, d.records, "{}", g.name);
        // Only the length and CRC may change (our compressor is not the client's).
        let mut h = again.header;
        (h.batch_length, h.crc) = (d.header.batch_length, d.header.crc);
        assert_eq!(h, d.header, "{}", g.name);
        if g.codec == Codec::None {
            assert_eq!(all, g.bytes, "{}", g.name);
        }
    }
}

/// Under LogAppendTime every record's timestamp is the batch's maxTimestamp (the broker's
/// append time), whatever deltas the client wrote, as Kafka's `DefaultRecordBatch` reads it.
#[test]
fn log_append_time_records_take_max_timestamp() {
    let header = validate_batch(LOG_APPEND).unwrap();
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    let append_time = header.max_timestamp;
    assert!(append_time > BASE_TS + 40, "stamped by the broker");
    let d = decode_batch(LOG_APPEND).unwrap();
    assert_eq!(d.records, expected(true, |_| append_time));
    let b = encode_batch(&d.header, &d.records[3..], None).unwrap();
    let again = decode_batch(&b).unwrap();
    assert_eq!(again.header.max_timestamp, append_time);
    assert_eq!(again.records, d.records[3..]);
}
