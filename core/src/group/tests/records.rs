//! Round trips and hand-written byte vectors for the `__consumer_offsets` records.

use super::*;
use proptest::prelude::*;

fn commit(offset: i64, epoch: i32, metadata: &str, ts: i64) -> GroupRecord {
    GroupRecord::OffsetCommit {
        key: OffsetCommitKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        },
        value: Some(OffsetCommitValue {
            offset,
            leader_epoch: epoch,
            metadata: metadata.into(),
            commit_timestamp: ts,
            expire_timestamp: -1,
        }),
    }
}

#[test]
fn offset_commit_key_v1_and_value_v3_bytes() {
    let r = commit(5, 2, "m", 7);
    assert_eq!(
        r.encode_key(),
        [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0].to_vec()
    );
    let value = r.encode_value().unwrap();
    let expected: Vec<u8> = [
        &[0u8, 3][..],
        &5i64.to_be_bytes(),
        &2i32.to_be_bytes(),
        &[0, 1, b'm'],
        &7i64.to_be_bytes(),
    ]
    .concat();
    assert_eq!(value, expected);
    assert_eq!(
        GroupRecord::decode(&r.encode_key(), Some(&value)).unwrap(),
        r
    );
}

#[test]
fn older_and_flexible_offset_commit_values_decode_with_kafka_defaults() {
    let key = commit(0, 0, "", 0).encode_key();
    // v1: offset, metadata, commitTimestamp, expireTimestamp.
    let v1: Vec<u8> = [
        &[0u8, 1][..],
        &9i64.to_be_bytes(),
        &[0, 0],
        &3i64.to_be_bytes(),
        &4i64.to_be_bytes(),
    ]
    .concat();
    let GroupRecord::OffsetCommit { value: Some(v), .. } =
        GroupRecord::decode(&key, Some(&v1)).unwrap()
    else {
        panic!("an offset commit")
    };
    assert_eq!(
        (
            v.offset,
            v.leader_epoch,
            v.commit_timestamp,
            v.expire_timestamp
        ),
        (9, -1, 3, 4)
    );
    // v4 (flexible): compact string (length + 1), then an empty tagged-field section.
    let v4: Vec<u8> = [
        &[0u8, 4][..],
        &9i64.to_be_bytes(),
        &6i32.to_be_bytes(),
        &[3, b'a', b'b'],
        &3i64.to_be_bytes(),
        &[1, 0, 1, 0xff], // one tagged field: tag 0, size 1
    ]
    .concat();
    let GroupRecord::OffsetCommit { value: Some(v), .. } =
        GroupRecord::decode(&key, Some(&v4)).unwrap()
    else {
        panic!("an offset commit")
    };
    assert_eq!(
        (v.offset, v.leader_epoch, v.metadata.as_str()),
        (9, 6, "ab")
    );
}

/// Fuzz finding 4 (`group_records/v4-string-longer-than-v3-can-write`): a flexible (v4) value
/// carries compact strings of any length; one longer than a v3 string decoded but could not be
/// written again. Encoding is total: such a value is written as v4 and reads back the same.
#[test]
fn a_v4_value_with_strings_longer_than_v3_is_written_as_v4() {
    let long = "x".repeat(i16::MAX as usize + 1);
    let group_key = GroupRecord::GroupMetadata {
        group: "g".into(),
        value: None,
    }
    .encode_key();
    let bytes = crate::group::tests::findings::v4_group_metadata(&long);
    let record = GroupRecord::decode(&group_key, Some(&bytes)).unwrap();
    let value = record.encode_value().unwrap();
    assert_eq!(value, bytes, "v4, byte for byte as Kafka's flexible schema");
    assert_eq!(
        GroupRecord::decode(&group_key, Some(&value)).unwrap(),
        record
    );

    let commit = commit(1, 2, &long, 3);
    let value = commit.encode_value().unwrap();
    assert_eq!(value[..2], [0, 4]);
    assert_eq!(
        GroupRecord::decode(&commit.encode_key(), Some(&value)).unwrap(),
        commit
    );
    // Short strings stay v3.
    let short = GroupRecord::decode(
        &group_key,
        Some(&crate::group::tests::findings::v4_group_metadata("c")),
    )
    .unwrap();
    assert_eq!(short.encode_value().unwrap()[..2], [0, 3]);
}

/// Kafka writes a value with an explicit expire timestamp as v1 (the only version carrying
/// it); so do we, so that a value read from a v1 record survives being written again (a
/// snapshot re-emits what it read).
#[test]
fn a_value_with_an_expire_timestamp_is_written_as_v1_and_reads_back_the_same() {
    let GroupRecord::OffsetCommit {
        key,
        value: Some(mut v),
    } = commit(9, -1, "m", 3)
    else {
        panic!("an offset commit")
    };
    v.expire_timestamp = 4;
    let r = GroupRecord::OffsetCommit {
        key,
        value: Some(v),
    };
    let value = r.encode_value().unwrap();
    let expected: Vec<u8> = [
        &[0u8, 1][..],
        &9i64.to_be_bytes(),
        &[0, 1, b'm'],
        &3i64.to_be_bytes(),
        &4i64.to_be_bytes(),
    ]
    .concat();
    assert_eq!(value, expected);
    assert_eq!(
        GroupRecord::decode(&r.encode_key(), Some(&value)).unwrap(),
        r
    );
}

#[test]
fn group_metadata_key_v2_tombstone_and_v0_value() {
    let key = [0u8, 2, 0, 2, b'g', b'1'];
    assert_eq!(
        GroupRecord::decode(&key, None).unwrap(),
        GroupRecord::GroupMetadata {
            group: "g1".into(),
            value: None
        }
    );
    // v0: protocolType, generation, protocol (null), leader (null), no members.
    let v0: Vec<u8> = [
        &[0u8, 0, 0, 0][..],
        &3i32.to_be_bytes(),
        &[0xff, 0xff, 0xff, 0xff],
        &0i32.to_be_bytes(),
    ]
    .concat();
    let GroupRecord::GroupMetadata { value: Some(v), .. } =
        GroupRecord::decode(&key, Some(&v0)).unwrap()
    else {
        panic!("group metadata")
    };
    assert_eq!(v.generation, 3);
    assert_eq!(v.current_state_timestamp, -1);
    assert!(v.protocol.is_none() && v.members.is_empty());
}

#[test]
fn bad_input_is_an_error() {
    assert!(matches!(
        GroupRecord::decode(&[], None),
        Err(DecodeError::Truncated { .. })
    ));
    assert_eq!(
        GroupRecord::decode(&[0, 3, 0, 0], None),
        Err(DecodeError::UnknownKeyVersion(3))
    );
    assert_eq!(
        GroupRecord::decode(&[0, 2, 0, 0, 9], None),
        Err(DecodeError::Trailing(1))
    );
    assert_eq!(
        GroupRecord::decode(&[0, 2, 0, 1, 0xff], None),
        Err(DecodeError::NotUtf8)
    );
    let key = [0u8, 2, 0, 0];
    // A member count far beyond the input reserves nothing and fails cleanly.
    let huge: Vec<u8> = [
        &[0u8, 3, 0, 0][..],
        &0i32.to_be_bytes(),
        &[0xff, 0xff, 0xff, 0xff],
        &0i64.to_be_bytes(),
        &i32::MAX.to_be_bytes(),
    ]
    .concat();
    assert!(matches!(
        GroupRecord::decode(&key, Some(&huge)),
        Err(DecodeError::Truncated { .. })
    ));
    assert!(matches!(
        GroupRecord::decode(&key, Some(&[0, 9])),
        Err(DecodeError::UnknownValueVersion { .. })
    ));
}

fn string() -> impl Strategy<Value = String> {
    "[a-z0-9\\-é]{0,12}"
}

fn member() -> impl Strategy<Value = MemberMetadata> {
    (
        string(),
        proptest::option::of(string()),
        string(),
        string(),
        any::<i32>(),
        any::<i32>(),
        proptest::collection::vec(any::<u8>(), 0..20),
        proptest::collection::vec(any::<u8>(), 0..20),
    )
        .prop_map(
            |(
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                s,
                a,
            )| MemberMetadata {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription: Bytes::from(s),
                assignment: Bytes::from(a),
            },
        )
}

fn record() -> impl Strategy<Value = GroupRecord> {
    let commit = (
        string(),
        string(),
        any::<i32>(),
        proptest::option::of((any::<i64>(), any::<i32>(), string(), any::<i64>())),
    )
        .prop_map(
            |(group, topic, partition, value)| GroupRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group,
                    topic,
                    partition,
                },
                value: value.map(|(offset, leader_epoch, metadata, commit_timestamp)| {
                    OffsetCommitValue {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp,
                        expire_timestamp: -1,
                    }
                }),
            },
        );
    let metadata = (
        string(),
        proptest::option::of((
            string(),
            any::<i32>(),
            proptest::option::of(string()),
            proptest::option::of(string()),
            any::<i64>(),
            proptest::collection::vec(member(), 0..4),
        )),
    )
        .prop_map(|(group, value)| GroupRecord::GroupMetadata {
            group,
            value: value.map(
                |(
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp,
                    members,
                )| GroupMetadataValue {
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp,
                    members,
                },
            ),
        });
    prop_oneof![commit, metadata]
}

proptest! {
    #[test]
    fn records_round_trip(r in record()) {
        let key = r.encode_key();
        let value = r.encode_value();
        prop_assert_eq!(GroupRecord::decode(&key, value.as_deref()).unwrap(), r);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(key in proptest::collection::vec(any::<u8>(), 0..40), value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80))) {
        let _ = GroupRecord::decode(&key, value.as_deref());
    }

    #[test]
    fn every_truncation_of_a_valid_value_is_an_error(r in record(), cut in 0usize..200) {
        if let Some(value) = r.encode_value() {
            let cut = cut % value.len();
            prop_assert!(GroupRecord::decode(&r.encode_key(), Some(&value[..cut])).is_err());
        }
    }
}
