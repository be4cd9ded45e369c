//! `record_codec`: arbitrary bytes as one v2 batch for the record codec (`strata_core::record`),
//! the log cleaner's decode and rewrite and the produce path's keyed-record check.
//!
//! Properties: [`decode_batch_limited`] and [`require_keys`] never panic, and agree (a batch
//! that decodes passes `require_keys` exactly when every record has a key, else fails at the
//! first keyless offset; one that does not decode fails it too). What decodes is sound: as many
//! records as `recordCount`, offsets strictly increasing inside `[baseOffset, lastOffset]`, and
//! under `LogAppendTime` every timestamp is `maxTimestamp`. It round-trips through
//! [`encode_batch`], as the cleaner uses it: the whole batch with its own delete horizon, and
//! every other record with a horizon taken from the input (or none), decode back to the same
//! records; the rewrite keeps the header's offset span, leader epoch, producer fields and
//! attributes (bit 6 aside), carries a correct CRC, passes `validate_batch` when it holds a
//! record, and a second rewrite of it is the same bytes.
//!
//! Decoding is capped at [`LIMIT`] rather than the default 64 MiB so that a decompression bomb
//! costs milliseconds; a batch that decodes under it decodes the same under the default.

use strata_core::batch::{
    BatchHeader, TimestampType, build_batch_with_producer, compute_crc, validate_batch,
};
use strata_core::record::{
    ATTR_DELETE_HORIZON, Codec, DecodedBatch, Record, RecordError, decode_batch,
    decode_batch_limited, delete_horizon, encode_batch, require_keys,
};
use strata_core::{LeaderEpoch, Offset};

/// Memory cap for decoding in the target.
pub const LIMIT: usize = 4 << 20;

pub fn record_codec(data: &[u8]) {
    let decoded = decode_batch_limited(data, LIMIT);
    if matches!(decoded, Err(RecordError::TooLarge { .. })) {
        return;
    }
    check_require_keys(data, &decoded);
    let Ok(batch) = decoded else {
        return;
    };
    assert_eq!(
        decode_batch(data).as_ref(),
        Ok(&batch),
        "the limit only refuses, never changes what decodes"
    );
    check_sound(&batch);
    let whole = rewrite(&batch.header, &batch.records, delete_horizon(&batch.header));
    assert_eq!(
        whole.records, batch.records,
        "a rewrite of every record decodes to the same records"
    );
    let horizon = horizon_from(data);
    let kept: Vec<Record> = batch.records.iter().step_by(2).cloned().collect();
    let subset = rewrite(&batch.header, &kept, horizon);
    assert_eq!(subset.records, kept, "a kept subset decodes back");
}

/// `require_keys` agrees with `decode_batch` on the same bytes.
fn check_require_keys(data: &[u8], decoded: &Result<DecodedBatch, RecordError>) {
    let keys = require_keys(data);
    match decoded {
        Ok(batch) => {
            let first_keyless = batch.records.iter().find(|r| r.key.is_none());
            match first_keyless {
                None => assert_eq!(keys, Ok(()), "every record has a key"),
                Some(r) => assert_eq!(keys, Err(RecordError::MissingKey { offset: r.offset })),
            }
        }
        Err(e) => {
            let refused = keys.expect_err("a batch that does not decode fails require_keys");
            // require_keys stops at the first keyless record, which may come before the error.
            assert!(
                refused == *e || matches!(refused, RecordError::MissingKey { .. }),
                "require_keys: {refused}, decode: {e}"
            );
        }
    }
}

/// Counts, offsets and timestamps of a decoded batch.
fn check_sound(batch: &DecodedBatch) {
    let h = &batch.header;
    assert_eq!(batch.records.len() as i64, i64::from(h.record_count));
    let mut previous: Option<Offset> = None;
    for r in &batch.records {
        assert!(r.offset >= h.base_offset && r.offset <= h.last_offset());
        assert!(previous.is_none_or(|p| r.offset > p), "offsets increase");
        previous = Some(r.offset);
        if h.timestamp_type() == TimestampType::LogAppendTime {
            assert_eq!(r.timestamp, h.max_timestamp);
        }
    }
}

/// Encodes, checks the new header, decodes; and checks a second rewrite is stable.
fn rewrite(original: &BatchHeader, records: &[Record], horizon: Option<i64>) -> DecodedBatch {
    let bytes = encode_batch(original, records, horizon)
        .unwrap_or_else(|e| panic!("encode_batch refused a decoded batch's records: {e}"));
    let h = BatchHeader::parse(&bytes).expect("encode_batch writes a parseable header");
    assert_eq!(h.total_size(), bytes.len());
    assert_eq!(h.crc, compute_crc(&bytes), "encode_batch computes the CRC");
    if !records.is_empty() && h.last_offset_delta >= 0 {
        assert_eq!(validate_batch(&bytes).as_ref(), Ok(&h));
    }
    let kept = (
        h.base_offset,
        h.last_offset_delta,
        h.partition_leader_epoch,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.attributes & !ATTR_DELETE_HORIZON,
    );
    let want = (
        original.base_offset,
        original.last_offset_delta,
        original.partition_leader_epoch,
        original.producer_id,
        original.producer_epoch,
        original.base_sequence,
        original.attributes & !ATTR_DELETE_HORIZON,
    );
    assert_eq!(kept, want, "the rewrite keeps the batch's identity");
    assert_eq!(delete_horizon(&h), horizon);
    assert_eq!(h.record_count as usize, records.len());
    let decoded = decode_batch(&bytes).unwrap_or_else(|e| panic!("a rewrite does not decode: {e}"));
    let again = encode_batch(&h, &decoded.records, horizon).expect("rewrite of a rewrite");
    assert_eq!(again, bytes, "rewriting is stable");
    decoded
}

/// A delete horizon from the input's last 9 bytes (a flag, then the time), or none.
fn horizon_from(data: &[u8]) -> Option<i64> {
    let tail = data.len().checked_sub(9).map(|at| &data[at..])?;
    let mut t = [0u8; 8];
    t.copy_from_slice(&tail[1..]);
    (tail[0] & 1 == 1).then_some(i64::from_be_bytes(t))
}

/// Seeds: one batch per codec (keys, nulls, duplicate headers, a tombstone, gaps, a delete
/// horizon), one from `build_batch_with_producer`, an empty batch, a LogAppendTime control
/// batch, and the real clients' batches of core's golden tests.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for codec in [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ] {
        let header = seed_header(codec.id(), 3);
        let bytes = encode_batch(&header, &seed_records(), Some(1_800_000_000_000))
            .expect("seed batch encodes");
        out.push((format!("seed-{}", codec.name()), bytes));
    }
    let built = build_batch_with_producer(&[(b"v", Some(b"k")), (b"w", None)], 7, 3, 1, 0);
    out.push(("seed-build-batch".to_string(), built));
    let empty = encode_batch(&seed_header(4, 9), &[], None).expect("empty batch encodes");
    out.push(("seed-empty-zstd".to_string(), empty));
    let control = seed_header(1 | (1 << 3) | (1 << 4) | (1 << 5), 0);
    let marker = seed_record(10, Some(b"\0\0\0\x01"), Some(b"\0\0\0\0\0\x05"));
    let control = encode_batch(&control, &[marker], None).expect("control batch encodes");
    out.push(("seed-control-logappend-gzip".to_string(), control));
    for (name, bytes) in golden() {
        out.push((format!("seed-golden-{name}"), bytes.to_vec()));
    }
    out
}

fn golden() -> [(&'static str, &'static [u8]); 4] {
    [
        (
            "librdkafka-snappy",
            include_bytes!("../../core/src/record/tests/golden/librdkafka-snappy.bin"),
        ),
        (
            "librdkafka-lz4",
            include_bytes!("../../core/src/record/tests/golden/librdkafka-lz4.bin"),
        ),
        (
            "kafka-python-snappy",
            include_bytes!("../../core/src/record/tests/golden/kafka-python-snappy.bin"),
        ),
        (
            "kafka-python-lz4",
            include_bytes!("../../core/src/record/tests/golden/kafka-python-lz4.bin"),
        ),
    ]
}

fn seed_header(attributes: i16, last_offset_delta: i32) -> BatchHeader {
    BatchHeader {
        base_offset: Offset(10),
        batch_length: 0,
        partition_leader_epoch: LeaderEpoch(2),
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta,
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_009,
        producer_id: 77,
        producer_epoch: 1,
        base_sequence: 5,
        record_count: last_offset_delta + 1,
    }
}

fn seed_record(offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
    Record {
        offset: Offset(offset),
        timestamp: 1_700_000_000_000 + offset,
        attributes: 0,
        key: key.map(bytes::Bytes::copy_from_slice),
        value: value.map(bytes::Bytes::copy_from_slice),
        headers: Vec::new(),
    }
}

fn seed_records() -> Vec<Record> {
    let mut first = seed_record(10, Some(b"k1"), Some(b"v1"));
    first.headers = ["h", "h", "g"]
        .iter()
        .enumerate()
        .map(|(i, k)| strata_core::record::Header {
            key: bytes::Bytes::from(*k),
            value: (i != 2).then(|| bytes::Bytes::from(vec![b'x'; i + 1])),
        })
        .collect();
    vec![
        first,
        seed_record(11, None, Some(b"keyless")),
        seed_record(13, Some(b"k1"), None),
    ]
}
