//! Another writer's batch for `group_coordinator` to load: records a Kafka broker of another
//! version may have left in the partition (older and flexible value versions, v1's expire
//! timestamp, members of a static group, tombstones). The driver appends one at the log end
//! before a load.

use bytes::Bytes;
use strata_core::group::GroupRecord;
use strata_core::group::records::{
    GroupMetadataValue, MemberMetadata, OffsetCommitKey, OffsetCommitValue,
};

use crate::group_clients::{GROUPS, STANDALONE, subscription};
use crate::group_model::Entry;
use crate::group_records::{encode_key_version, encode_value_version};

/// One record, picked by `sel`: its kind, value version, group, generation. Every kind of the
/// fixed findings (no protocol, generation `i32::MAX`, a string only v4 carries) is generated,
/// and groups of two members whatever `group.max.size` is (a group loaded above it rebalances).
pub fn foreign_batch(sel: u8, wall: i64) -> Vec<Entry> {
    let kinds = 7;
    let members = 2;
    let version = i16::from((sel >> 2) % 5);
    let group = GROUPS[usize::from(sel >> 5) % GROUPS.len()].to_string();
    let member = |id: &str, instance: Option<&str>, client_id: String| MemberMetadata {
        member_id: id.to_string(),
        group_instance_id: instance.map(str::to_string),
        client_id,
        client_host: "/10.0.0.9".to_string(),
        rebalance_timeout: 20_000,
        session_timeout: 10_000,
        subscription: subscription(&["t"]),
        assignment: Bytes::from_static(b"a"),
    };
    let metadata =
        |generation: i32, protocol: Option<&str>, client_id: String| GroupMetadataValue {
            protocol_type: "consumer".to_string(),
            generation,
            protocol: protocol.map(str::to_string),
            leader: Some("foreign-1".to_string()),
            current_state_timestamp: wall,
            members: [
                member("foreign-1", Some("i0"), "c".to_string()),
                member("foreign-2", None, client_id),
            ]
            .into_iter()
            .take(members)
            .collect(),
        };
    let record = match sel % kinds {
        0 => GroupRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: if sel & 0x80 != 0 {
                    STANDALONE.to_string()
                } else {
                    group
                },
                topic: "t".to_string(),
                partition: i32::from(sel & 3),
            },
            value: Some(OffsetCommitValue {
                offset: 7,
                leader_epoch: 2,
                metadata: "f".to_string(),
                commit_timestamp: wall - 1_000,
                // Only v1 carries it: half in the past, half in the future.
                expire_timestamp: if sel & 0x40 != 0 {
                    wall - 1
                } else {
                    wall + 60_000
                },
            }),
        },
        1 => GroupRecord::GroupMetadata {
            group,
            value: Some(metadata(
                [0, 3, 100][usize::from(sel >> 6) % 3],
                Some("range"),
                "c".to_string(),
            )),
        },
        2 => GroupRecord::GroupMetadata { group, value: None },
        3 => GroupRecord::OffsetCommit {
            key: OffsetCommitKey {
                group,
                topic: "t".to_string(),
                partition: 0,
            },
            value: None,
        },
        // Open findings: a Stable group with no selected protocol, a generation with no
        // successor, a member string only a flexible value can carry.
        4 => GroupRecord::GroupMetadata {
            group,
            value: Some(metadata(1, None, "c".to_string())),
        },
        5 => GroupRecord::GroupMetadata {
            group,
            value: Some(metadata(i32::MAX, Some("range"), "c".to_string())),
        },
        _ => {
            let long = "c".repeat(i16::MAX as usize + 1);
            let record = GroupRecord::GroupMetadata {
                group,
                value: Some(metadata(1, Some("range"), long)),
            };
            let key = encode_key_version(&record, 1);
            let value = encode_value_version(&record, 4);
            return vec![Entry::new(key, value)];
        }
    };
    // Key v1, the version Kafka writes: the cleaner compacts by key bytes, so a v0 key
    // outlives the v1 tombstone the coordinator writes for it and comes back once the
    // tombstone is cleaned (Kafka alike; decoding v0 keys is covered by `group_records`).
    let key = encode_key_version(&record, 1);
    vec![Entry::new(key, encode_value_version(&record, version))]
}
