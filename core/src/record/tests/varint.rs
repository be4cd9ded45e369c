//! Zigzag varints against the byte sequences of Kafka's `ByteUtilsTest`, round trips, and the
//! length limits Kafka enforces when reading.

use bytes::Bytes;
use proptest::prelude::*;

use super::super::error::RecordError;
use super::super::varint::{Cursor, put_varint, put_varlong};

fn read_varint(bytes: &[u8]) -> Result<(i32, usize), RecordError> {
    let buf = Bytes::copy_from_slice(bytes);
    let mut c = Cursor::new(&buf);
    let v = c.read_varint()?;
    Ok((v, c.position()))
}

fn read_varlong(bytes: &[u8]) -> Result<(i64, usize), RecordError> {
    let buf = Bytes::copy_from_slice(bytes);
    let mut c = Cursor::new(&buf);
    let v = c.read_varlong()?;
    Ok((v, c.position()))
}

#[test]
fn varints_match_kafka_byte_utils_test() {
    let cases: &[(i32, &[u8])] = &[
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (63, &[0x7e]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
        (-65, &[0x81, 0x01]),
        (8191, &[0xfe, 0x7f]),
        (-8192, &[0xff, 0x7f]),
        (8192, &[0x80, 0x80, 0x01]),
        (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
        (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (v, wire) in cases {
        let mut out = Vec::new();
        put_varint(&mut out, *v);
        assert_eq!(&out[..], *wire, "{v}");
        assert_eq!(read_varint(wire).unwrap(), (*v, wire.len()));
    }
    let mut out = Vec::new();
    put_varlong(&mut out, i64::MIN);
    assert_eq!(
        out,
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
    );
    assert_eq!(read_varlong(&out).unwrap(), (i64::MIN, 10));
}

/// Kafka refuses a 6-byte varint and an 11-byte varlong; a cut one is malformed too.
#[test]
fn overlong_and_cut_varints_are_malformed() {
    let six = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
    assert_eq!(read_varint(&six), Err(RecordError::BadVarint { at: 0 }));
    let eleven = [0x80; 11];
    assert_eq!(read_varlong(&eleven), Err(RecordError::BadVarint { at: 0 }));
    assert_eq!(
        read_varint(&[0x80, 0x80]),
        Err(RecordError::BadVarint { at: 0 })
    );
    assert_eq!(read_varint(&[]), Err(RecordError::BadVarint { at: 0 }));
    // A 5-byte varint whose last byte has bits past 32: Java's shift drops them.
    assert_eq!(
        read_varint(&[0xfe, 0xff, 0xff, 0xff, 0x7f]).unwrap(),
        (i32::MAX, 5)
    );
}

proptest! {
    #[test]
    fn varint_round_trips(v in any::<i32>()) {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        prop_assert!(out.len() <= 5);
        prop_assert_eq!(read_varint(&out).unwrap(), (v, out.len()));
    }

    #[test]
    fn varlong_round_trips(v in any::<i64>()) {
        let mut out = Vec::new();
        put_varlong(&mut out, v);
        prop_assert!(out.len() <= 10);
        prop_assert_eq!(read_varlong(&out).unwrap(), (v, out.len()));
    }
}
