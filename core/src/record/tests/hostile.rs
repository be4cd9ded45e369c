//! Hostile input: truncations, lying counts and lengths, bad offset deltas, unknown codecs and
//! decompression bombs are errors with the right Kafka code, never panics or unbounded
//! allocations.

use std::mem::size_of;

use proptest::prelude::*;

use super::super::compression::{compress, decompress};
use super::super::varint::put_varint;
use super::*;
use crate::batch::{BatchError, HEADER_LEN, LOG_OVERHEAD};
use crate::error::ErrorCode;

/// A batch with `body` as its (already compressed) records region and the given counts.
fn raw(codec: i16, record_count: i32, last_offset_delta: i32, body: &[u8]) -> Vec<u8> {
    let mut b = encode_batch(&header(Codec::None, 0, last_offset_delta), &[], None).unwrap();
    b[21..23].copy_from_slice(&codec.to_be_bytes());
    b[57..61].copy_from_slice(&record_count.to_be_bytes());
    b.extend_from_slice(body);
    let batch_length = (b.len() - LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    b
}

/// One record's bytes (length first) from its fields after the length.
fn with_length(fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, fields.len() as i32);
    out.extend_from_slice(fields);
    out
}

/// attributes 0, timestampDelta 0, offsetDelta `delta`, key "k", null value, no headers.
fn minimal(delta: u8) -> Vec<u8> {
    with_length(&[0, 0, delta << 1, 2, b'k', 1, 0])
}

fn sample(codec: Codec) -> Vec<u8> {
    let records = [
        record(0, Some(b"k0"), Some(b"v0")),
        record(1, None, Some(b"v1")),
    ];
    encode_batch(&header(codec, 0, 1), &records, None).unwrap()
}

#[test]
fn every_truncation_is_an_error() {
    for codec in CODECS {
        let b = sample(codec);
        for len in 0..b.len() {
            assert!(decode_batch(&b[..len]).is_err(), "{codec:?} cut at {len}");
        }
        // The declared batchLength cut short (records region shortened, header intact).
        for cut in 1..b.len() - HEADER_LEN {
            let mut c = b[..b.len() - cut].to_vec();
            let batch_length = (c.len() - LOG_OVERHEAD) as i32;
            c[8..12].copy_from_slice(&batch_length.to_be_bytes());
            let e = decode_batch(&c).unwrap_err();
            assert_eq!(
                e.error_code(),
                ErrorCode::CORRUPT_MESSAGE,
                "{codec:?} cut {cut}: {e}"
            );
        }
    }
    let e = decode_batch(&sample(Codec::None)[..HEADER_LEN - 1]).unwrap_err();
    assert!(matches!(
        e,
        RecordError::Batch(BatchError::Truncated { .. })
    ));
}

#[test]
fn lying_record_counts_are_refused() {
    let one = minimal(0);
    let e = decode_batch(&raw(0, i32::MAX, i32::MAX, &one)).unwrap_err();
    assert_eq!(
        e,
        RecordError::RecordCountMismatch {
            declared: i32::MAX,
            found: 1
        }
    );
    let e = decode_batch(&raw(0, 0, 0, &one)).unwrap_err();
    assert_eq!(e, RecordError::TrailingBytes(one.len()));
    assert_eq!(e.error_code(), ErrorCode::CORRUPT_MESSAGE);
    let e = decode_batch(&raw(0, -1, 0, &one)).unwrap_err();
    assert_eq!(e, RecordError::BadRecordCount(-1));
    // The same lies inside a compressed region.
    let e = decode_batch(&raw(4, 5, 5, &compress(Codec::Zstd, &one).unwrap())).unwrap_err();
    assert_eq!(
        e,
        RecordError::RecordCountMismatch {
            declared: 5,
            found: 1
        }
    );
}

/// The error of decoding a batch of recordCount 1 whose records region is `region`.
fn refused(region: &[u8]) -> RecordError {
    decode_batch(&raw(0, 1, 0, region)).unwrap_err()
}

/// The field a `PastEnd` error names.
fn past_end(e: &RecordError) -> Option<&'static str> {
    match e {
        RecordError::PastEnd { field, .. } => Some(field),
        _ => None,
    }
}

#[test]
fn lying_lengths_are_refused() {
    let negative = |field, len| RecordError::NegativeLength { field, len };
    assert_eq!(refused(&[0x01]), negative("record", -1));
    // Record length 63, past the end of the region.
    assert_eq!(past_end(&refused(&[0x7e, 0, 0])), Some("record"));
    // A record whose fields take less than its length (a spare byte at the end).
    let e = refused(&with_length(&[0, 0, 0, 1, 1, 0, 9]));
    assert_eq!(
        e,
        RecordError::RecordSizeMismatch {
            declared: 7,
            read: 6
        }
    );
    // A key longer than its record.
    let e = refused(&with_length(&[0, 0, 0, 40, 1, 0]));
    assert_eq!(past_end(&e), Some("record key"));
    // Header count i32::MAX in a tiny record: no allocation from the count.
    let mut fields = vec![0, 0, 0, 1, 1];
    put_varint(&mut fields, i32::MAX);
    let e = refused(&with_length(&fields));
    assert!(matches!(e, RecordError::BadVarint { .. }), "{e}");
    // Negative header count, negative header key length.
    let e = refused(&with_length(&[0, 0, 0, 1, 1, 1]));
    assert_eq!(e, negative("header count", -1));
    let e = refused(&with_length(&[0, 0, 0, 1, 1, 2, 1, 1]));
    assert_eq!(e, negative("header key", -1));
    for e in [e, RecordError::BadVarint { at: 0 }] {
        assert_eq!(e.error_code(), ErrorCode::CORRUPT_MESSAGE);
    }
}

/// Any negative key or value length reads as null, as in Kafka's `DefaultRecord.readFrom`.
#[test]
fn negative_key_and_value_lengths_are_null() {
    // key length -3, value length -2, header value length -5.
    let fields = [0, 0, 0, 5, 3, 2, 2, b'h', 9];
    let d = decode_batch(&raw(0, 1, 0, &with_length(&fields))).unwrap();
    let r = &d.records[0];
    assert_eq!((r.key.clone(), r.value.clone()), (None, None));
    assert_eq!(
        r.headers,
        vec![Header {
            key: Bytes::from_static(b"h"),
            value: None
        }]
    );
}

#[test]
fn offset_deltas_must_lie_in_the_span_and_increase() {
    let two = |a: u8, b: u8| [minimal(a), minimal(b)].concat();
    let e = decode_batch(&raw(0, 2, 1, &two(0, 2))).unwrap_err();
    assert_eq!(
        e,
        RecordError::OffsetDeltaOutOfRange {
            offset_delta: 2,
            last_offset_delta: 1
        }
    );
    let e = decode_batch(&raw(0, 2, 5, &two(3, 3))).unwrap_err();
    assert_eq!(
        e,
        RecordError::OffsetDeltaNotIncreasing {
            offset_delta: 3,
            previous: 3
        }
    );
    let e = decode_batch(&raw(0, 2, 5, &two(3, 1))).unwrap_err();
    assert_eq!(
        e,
        RecordError::OffsetDeltaNotIncreasing {
            offset_delta: 1,
            previous: 3
        }
    );
    let negative = with_length(&[0, 0, 1, 2, b'k', 1, 0]);
    let e = decode_batch(&raw(0, 1, 5, &negative)).unwrap_err();
    assert_eq!(
        e,
        RecordError::OffsetDeltaOutOfRange {
            offset_delta: -1,
            last_offset_delta: 5
        }
    );
    // Gaps are fine: the cleaner leaves them.
    let d = decode_batch(&raw(0, 2, 5, &two(1, 4))).unwrap();
    let offsets: Vec<i64> = d.records.iter().map(|r| r.offset.0).collect();
    assert_eq!(offsets, [1, 4]);
    // baseOffset + offsetDelta past i64::MAX.
    let mut b = raw(0, 1, 5, &minimal(3));
    b[0..8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
    let e = decode_batch(&b).unwrap_err();
    assert_eq!(
        e,
        RecordError::OffsetOverflow {
            base_offset: i64::MAX - 1,
            offset_delta: 3
        }
    );
}

#[test]
fn unknown_codecs_are_unsupported_compression_type() {
    for codec in 5..8 {
        let e = decode_batch(&raw(codec, 1, 0, &minimal(0))).unwrap_err();
        assert_eq!(e, RecordError::UnknownCodec(codec));
        assert_eq!(e.error_code(), ErrorCode(76));
        assert_eq!(require_keys(&raw(codec, 1, 0, &minimal(0))).unwrap_err(), e);
        let mut h = header(Codec::None, 0, 0);
        h.attributes = codec;
        assert_eq!(encode_batch(&h, &[], None).unwrap_err(), e);
    }
}

/// 1 MiB of zeros compresses to a few hundred bytes with every codec; decoding under a 64 KiB
/// limit stops at the limit.
#[test]
fn decompression_bombs_stop_at_the_limit() {
    let zeros = vec![0u8; 1 << 20];
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let bomb = compress(codec, &zeros).unwrap();
        assert!(bomb.len() < 64 << 10, "{codec:?} compresses zeros");
        assert_eq!(decompress(codec, &bomb, 1 << 20).unwrap(), zeros);
        let e = decompress(codec, &bomb, 64 << 10).unwrap_err();
        assert_eq!(e, RecordError::TooLarge { limit: 64 << 10 }, "{codec:?}");
        let b = raw(codec.id(), 1, 0, &bomb);
        let e = decode_batch_limited(&b, 64 << 10).unwrap_err();
        assert_eq!(e, RecordError::TooLarge { limit: 64 << 10 });
        assert_eq!(e.error_code(), ErrorCode::MESSAGE_TOO_LARGE);
    }
}

/// The default limit: 65 MiB of zeros through gzip and zstd is refused.
#[test]
fn bombs_past_the_default_limit_are_refused() {
    let zeros = vec![0u8; MAX_DECODED_BYTES + (1 << 20)];
    for codec in [Codec::Gzip, Codec::Zstd] {
        let b = raw(codec.id(), 1, 0, &compress(codec, &zeros).unwrap());
        let e = decode_batch(&b).unwrap_err();
        assert_eq!(
            e,
            RecordError::TooLarge {
                limit: MAX_DECODED_BYTES
            },
            "{codec:?}"
        );
        assert_eq!(require_keys(&b).unwrap_err(), e);
    }
}

/// A raw snappy block declaring 2 GiB of output is refused before anything is allocated.
#[test]
fn snappy_declared_length_is_checked_first() {
    let mut block = Vec::new();
    let mut n: u64 = 1 << 31;
    while n >= 0x80 {
        block.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    block.push(n as u8);
    block.extend_from_slice(&[0; 8]);
    let e = decode_batch(&raw(2, 1, 0, &block)).unwrap_err();
    assert_eq!(
        e,
        RecordError::TooLarge {
            limit: MAX_DECODED_BYTES
        }
    );
}

/// A zstd frame header may ask for a window up to 2 GiB, which libzstd would allocate before
/// reading a block: more than 2^24 is refused, 2^23 (zstd level 19) is read.
#[test]
fn zstd_window_over_the_limit_is_refused() {
    // Magic, frame header descriptor 0 (no content size, no checksum), window descriptor
    // (exponent << 3: windowLog = 10 + exponent), then one empty last raw block.
    let frame = |window_log: u8| [0x28, 0xb5, 0x2f, 0xfd, 0, (window_log - 10) << 3, 1, 0, 0];
    assert_eq!(
        decompress(Codec::Zstd, &frame(23), 1 << 20).unwrap(),
        Vec::<u8>::new()
    );
    let too_big = frame(ZSTD_WINDOW_LOG_MAX as u8 + 1);
    let e = decompress(Codec::Zstd, &too_big, 1 << 20).unwrap_err();
    assert!(
        matches!(e, RecordError::Decompression { codec: "zstd", .. }),
        "{e}"
    );
    let e = decode_batch(&raw(4, 0, 0, &frame(30))).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::CORRUPT_MESSAGE);
}

/// The per-record charge bounds what a region of many tiny records costs in memory.
#[test]
fn record_structs_count_against_the_limit() {
    let n = 100;
    let mut body = Vec::new();
    for i in 0..n {
        let mut fields = vec![0, 0];
        put_varint(&mut fields, i);
        fields.extend_from_slice(&[2, b'k', 1, 0]);
        body.extend_from_slice(&with_length(&fields));
    }
    let b = raw(0, n, n - 1, &body);
    let exact = body.len() + n as usize * size_of::<Record>();
    assert_eq!(
        decode_batch_limited(&b, exact).unwrap().records.len(),
        n as usize
    );
    let e = decode_batch_limited(&b, exact - 1).unwrap_err();
    assert_eq!(e, RecordError::TooLarge { limit: exact - 1 });
}

proptest! {
    /// Random bytes as the records region, under every codec and counts: an error or records,
    /// never a panic; what decodes re-encodes and decodes the same.
    #[test]
    fn random_regions_never_panic(
        codec in 0i16..8,
        count in prop_oneof![0i32..4, any::<i32>()],
        last_offset_delta in prop_oneof![0i32..4, any::<i32>()],
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let b = raw(codec, count, last_offset_delta, &body);
        if let Ok(d) = decode_batch(&b) {
            let again = encode_batch(&d.header, &d.records, None).unwrap();
            prop_assert_eq!(decode_batch(&again).unwrap().records, d.records);
        }
        let _ = require_keys(&b);
    }

    /// Any one byte of a valid batch changed: an error or records, never a panic.
    #[test]
    fn flipped_bytes_never_panic(
        codec in 0usize..5,
        at in any::<prop::sample::Index>(),
        x in 1u8..,
    ) {
        let mut b = sample(CODECS[codec]);
        let i = at.index(b.len());
        b[i] ^= x;
        let _ = decode_batch(&b);
        let _ = require_keys(&b);
    }
}
