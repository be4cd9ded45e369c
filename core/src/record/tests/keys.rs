//! `require_keys`: compacted topics refuse keyless records with `INVALID_RECORD`, as Kafka's
//! `LogValidator` does ("Compacted topic cannot accept message without key").

use super::*;
use crate::batch::build_batch_with_producer;
use crate::error::ErrorCode;

#[test]
fn keyed_batches_pass_under_every_codec() {
    let records = [
        record(0, Some(b"k"), Some(b"v")),
        record(1, Some(b""), None),
    ];
    for codec in CODECS {
        let b = encode_batch(&header(codec, 0, 1), &records, None).unwrap();
        assert_eq!(require_keys(&b), Ok(()), "{codec:?}");
    }
}

/// A null key anywhere, compressed or not, is `MissingKey` at its offset; an empty key is a key.
#[test]
fn a_keyless_record_is_invalid_record() {
    for codec in CODECS {
        let records = [
            record(40, Some(b"k"), Some(b"v")),
            record(41, None, Some(b"v")),
            record(42, Some(b"k"), Some(b"v")),
        ];
        let b = encode_batch(&header(codec, 40, 2), &records, None).unwrap();
        let e = require_keys(&b).unwrap_err();
        assert_eq!(
            e,
            RecordError::MissingKey { offset: Offset(41) },
            "{codec:?}"
        );
        assert_eq!(e.error_code(), ErrorCode::INVALID_RECORD);
    }
    let b = build_batch_with_producer(&[(b"v", Some(b"k")), (b"v", None)], 5, 1, 0, 0);
    assert_eq!(
        require_keys(&b),
        Err(RecordError::MissingKey { offset: Offset(1) })
    );
}

/// A malformed batch is refused as corrupt, not waved through.
#[test]
fn a_malformed_batch_is_corrupt_message() {
    let b = encode_batch(
        &header(Codec::Gzip, 0, 0),
        &[record(0, Some(b"k"), None)],
        None,
    )
    .unwrap();
    let cut = &b[..b.len() - 4];
    let mut patched = cut.to_vec();
    let batch_length = (patched.len() - crate::batch::LOG_OVERHEAD) as i32;
    patched[8..12].copy_from_slice(&batch_length.to_be_bytes());
    assert_eq!(
        require_keys(&patched).unwrap_err().error_code(),
        ErrorCode::CORRUPT_MESSAGE
    );
}
