//! `group_records`: the `__consumer_offsets` record formats (`strata_core::group::records`).
//!
//! Input: a mode byte, then
//! - **raw** (even mode): a key (`u16` length, bytes), a value-presence byte (odd: present),
//!   and the rest as the value: [`GroupRecord::decode`] never panics, and whatever it accepts
//!   re-encodes (`encode_key` / `encode_value`: key v1/v2, value v3) to bytes that decode to
//!   the same record, up to what v3 cannot carry (`expireTimestamp`, v1 only); re-encoding that
//!   is stable; input already in the written versions (key v1/v2, value v3) re-encodes byte for
//!   byte; a byte more or less on the key or the value is refused;
//! - **structured** (odd mode): a record built field by field (every field reachable: empty and
//!   non-UTF-8-free strings, nulls, extreme numbers, 0–3 members) and written by
//!   [`encode_value_version`] — this file's own writer of every version 0..=4 of Kafka's
//!   schemas — in the version the input names: it decodes to the record as that version carries
//!   it (missing fields at Kafka's defaults); core's own encoding is byte for byte this writer's
//!   v1/v2 key and v3 value; and the raw checks above hold on it.
//!
//! Strings longer than `i16::MAX` bytes do not fit the non-flexible `string` (int16 length) but
//! flexible v4 values can carry them: core writes such a value as v4 (finding 4, fixed), so
//! whatever decodes re-encodes.

use bytes::Bytes;
use strata_core::group::GroupRecord;
use strata_core::group::records::{
    GroupMetadataValue, MemberMetadata, OffsetCommitKey, OffsetCommitValue,
};

use crate::input::Reader;

/// What a target run tolerates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Check what open findings break (none is open in this target today: a record decoded
    /// from a v4 value with a string longer than `i16::MAX` bytes re-encodes, as v4). Off in
    /// the target unless `STRATA_FUZZ_OPEN_FINDINGS` is set.
    pub open_findings: bool,
}

pub fn group_records(data: &[u8]) {
    let open_findings = std::env::var_os("STRATA_FUZZ_OPEN_FINDINGS").is_some();
    run(data, Options { open_findings });
}

pub fn run(data: &[u8], options: Options) {
    let mut r = Reader::new(data);
    if r.u8().is_multiple_of(2) {
        let key = r.section();
        let present = r.u8() % 2 == 1;
        let value = r.rest();
        check_raw(key, present.then_some(value), options);
    } else {
        structured(&mut r, options);
    }
}

/// The raw-bytes properties of one key and value.
pub fn check_raw(key: &[u8], value: Option<&[u8]>, options: Options) {
    let Ok(record) = GroupRecord::decode(key, value) else {
        return;
    };
    let _ = options;
    let (k, v) = (record.encode_key(), record.encode_value());
    let again = GroupRecord::decode(&k, v.as_deref()).expect("an encoded record decodes");
    assert_eq!(
        again,
        written(&record),
        "decode(encode(r)) is r (as the version core writes carries it)"
    );
    assert_eq!(again.encode_key(), k, "re-encoding is stable (key)");
    assert_eq!(again.encode_value(), v, "re-encoding is stable (value)");
    assert_eq!(
        v.is_none(),
        value.is_none(),
        "a tombstone stays a tombstone"
    );
    let key_version = i16::from_be_bytes([key[0], key[1]]);
    if matches!(key_version, 1 | 2) {
        assert_eq!(
            k, key,
            "keys in the written versions re-encode byte for byte"
        );
    }
    if let Some(value) = value
        && value.get(..2) == Some(&[0, 3][..])
    {
        assert_eq!(
            v.as_deref(),
            Some(value),
            "v3 values re-encode byte for byte"
        );
    }
    // Self-delimiting: a byte more or a byte less is refused.
    let mut longer = key.to_vec();
    longer.push(0);
    assert!(
        GroupRecord::decode(&longer, value).is_err(),
        "a key with a trailing byte"
    );
    assert!(
        GroupRecord::decode(&key[..key.len() - 1], value).is_err(),
        "a key cut by a byte"
    );
    if let Some(value) = value {
        let mut longer = value.to_vec();
        longer.push(0);
        assert!(
            GroupRecord::decode(key, Some(&longer)).is_err(),
            "a value with a trailing byte"
        );
        assert!(
            GroupRecord::decode(key, Some(&value[..value.len() - 1])).is_err(),
            "a value cut by a byte"
        );
    }
}

/// The value version core writes: 3, except 1 for an offset commit with an expire timestamp
/// (only v1 carries it, as in Kafka) and 4 for a value with a string v3 cannot hold.
pub fn written_version(record: &GroupRecord) -> i16 {
    match record {
        GroupRecord::OffsetCommit { value: Some(v), .. } if v.expire_timestamp >= 0 => 1,
        _ if !encodable(record) => 4,
        _ => 3,
    }
}

/// The record as the version core writes carries it (`written_version`).
fn written(record: &GroupRecord) -> GroupRecord {
    as_version(record, written_version(record))
}

/// The record as value `version` carries it: fields the version lacks at Kafka's defaults.
pub fn as_version(record: &GroupRecord, version: i16) -> GroupRecord {
    let mut record = record.clone();
    match &mut record {
        GroupRecord::OffsetCommit { value: Some(v), .. } => {
            if version < 3 {
                v.leader_epoch = -1;
            }
            if version != 1 {
                v.expire_timestamp = -1;
            }
        }
        GroupRecord::GroupMetadata { value: Some(v), .. } => {
            if version < 2 {
                v.current_state_timestamp = -1;
            }
            for m in &mut v.members {
                if version < 3 {
                    m.group_instance_id = None;
                }
                if version < 1 {
                    m.rebalance_timeout = -1;
                }
            }
        }
        _ => {}
    }
    record
}

/// Every string fits the int16 length of the written (non-flexible) versions.
pub fn encodable(record: &GroupRecord) -> bool {
    let short = |s: &str| s.len() <= i16::MAX as usize;
    match record {
        GroupRecord::OffsetCommit { key, value } => {
            short(&key.group)
                && short(&key.topic)
                && value.as_ref().is_none_or(|v| short(&v.metadata))
        }
        GroupRecord::GroupMetadata { group, value } => {
            short(group)
                && value.as_ref().is_none_or(|v| {
                    short(&v.protocol_type)
                        && v.protocol.as_deref().is_none_or(short)
                        && v.leader.as_deref().is_none_or(short)
                        && v.members.iter().all(|m| {
                            short(&m.member_id)
                                && m.group_instance_id.as_deref().is_none_or(short)
                                && short(&m.client_id)
                                && short(&m.client_host)
                        })
                })
        }
    }
}

fn structured(r: &mut Reader<'_>, options: Options) {
    let flags = r.u8();
    let key_version = if flags & 1 == 0 { 1 } else { 0 };
    let value_version = i16::from((flags >> 1) % 5);
    let tombstone = flags & 0x10 != 0;
    let record = if flags & 0x20 == 0 {
        GroupRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: string(r),
                topic: string(r),
                partition: r.u32() as i32,
            },
            value: (!tombstone).then(|| OffsetCommitValue {
                offset: i64_of(r),
                leader_epoch: r.u32() as i32,
                metadata: string(r),
                commit_timestamp: i64_of(r),
                expire_timestamp: i64_of(r),
            }),
        }
    } else {
        let group = string(r);
        let value = (!tombstone).then(|| {
            let protocol_type = string(r);
            let generation = r.u32() as i32;
            let protocol = nullable(r);
            let leader = nullable(r);
            let current_state_timestamp = i64_of(r);
            let members = (0..r.u8() % 4)
                .map(|_| MemberMetadata {
                    member_id: string(r),
                    group_instance_id: nullable(r),
                    client_id: string(r),
                    client_host: string(r),
                    rebalance_timeout: r.u32() as i32,
                    session_timeout: r.u32() as i32,
                    subscription: Bytes::copy_from_slice(r.section()),
                    assignment: Bytes::copy_from_slice(r.section()),
                })
                .collect();
            GroupMetadataValue {
                protocol_type,
                generation,
                protocol,
                leader,
                current_state_timestamp,
                members,
            }
        });
        GroupRecord::GroupMetadata { group, value }
    };
    let key = encode_key_version(&record, key_version);
    let value = encode_value_version(&record, value_version);
    let decoded = GroupRecord::decode(&key, value.as_deref()).expect("a written record decodes");
    assert_eq!(
        decoded,
        as_version(&record, value_version),
        "decoded as v{value_version} carries it"
    );
    // Core's writer is this one at key v1/v2 and the value version it picks (`written_version`).
    assert_eq!(
        record.encode_key(),
        encode_key_version(&record, 1),
        "core's key bytes"
    );
    assert_eq!(
        record.encode_value(),
        encode_value_version(&record, written_version(&record)),
        "core's value bytes"
    );
    check_raw(&key, value.as_deref(), options);
}

/// A short string (up to 255 bytes, a fragment of the input made UTF-8).
fn string(r: &mut Reader<'_>) -> String {
    let n = usize::from(r.u8());
    String::from_utf8_lossy(r.bytes(n)).into_owned()
}

/// A string, or null for length byte 255.
fn nullable(r: &mut Reader<'_>) -> Option<String> {
    match r.u8() {
        255 => None,
        n => Some(String::from_utf8_lossy(r.bytes(usize::from(n))).into_owned()),
    }
}

fn i64_of(r: &mut Reader<'_>) -> i64 {
    ((u64::from(r.u32()) << 32) | u64::from(r.u32())) as i64
}

// --- Kafka's schemas, every version (independent of core's writer) ---------------------------

/// The key: OffsetCommitKey v0 or v1 (same layout), or GroupMetadataKey v2.
pub fn encode_key_version(record: &GroupRecord, offset_commit_version: i16) -> Vec<u8> {
    let mut w = Out::new(false);
    match record {
        GroupRecord::OffsetCommit { key, .. } => {
            w.i16(offset_commit_version);
            w.string(&key.group);
            w.string(&key.topic);
            w.i32(key.partition);
        }
        GroupRecord::GroupMetadata { group, .. } => {
            w.i16(2);
            w.string(group);
        }
    }
    w.buf
}

/// The value in `version` 0..=4 (4: flexible, with an empty tagged-field section and, for
/// members, one unknown tagged field to skip), `None` for a tombstone.
pub fn encode_value_version(record: &GroupRecord, version: i16) -> Option<Vec<u8>> {
    let mut w = Out::new(version >= 4);
    w.i16(version);
    match record {
        GroupRecord::OffsetCommit { value, .. } => {
            let v = value.as_ref()?;
            w.i64(v.offset);
            if version >= 3 {
                w.i32(v.leader_epoch);
            }
            w.string(&v.metadata);
            w.i64(v.commit_timestamp);
            if version == 1 {
                w.i64(v.expire_timestamp);
            }
            w.tagged_fields(false);
        }
        GroupRecord::GroupMetadata { value, .. } => {
            let v = value.as_ref()?;
            w.string(&v.protocol_type);
            w.i32(v.generation);
            w.nullable(v.protocol.as_deref());
            w.nullable(v.leader.as_deref());
            if version >= 2 {
                w.i64(v.current_state_timestamp);
            }
            w.len(v.members.len(), true);
            for m in &v.members {
                w.string(&m.member_id);
                if version >= 3 {
                    w.nullable(m.group_instance_id.as_deref());
                }
                w.string(&m.client_id);
                w.string(&m.client_host);
                if version >= 1 {
                    w.i32(m.rebalance_timeout);
                }
                w.i32(m.session_timeout);
                w.bytes(&m.subscription);
                w.bytes(&m.assignment);
                w.tagged_fields(true);
            }
            w.tagged_fields(false);
        }
    }
    Some(w.buf)
}

struct Out {
    buf: Vec<u8>,
    flexible: bool,
}

impl Out {
    fn new(flexible: bool) -> Out {
        Out {
            buf: Vec::new(),
            flexible,
        }
    }
    fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    /// A length (`None`: null): compact `n + 1` when flexible, else int16 or int32 (`wide`).
    fn len_or_null(&mut self, n: Option<usize>, wide: bool) {
        if self.flexible {
            self.uvarint(n.map_or(0, |n| n as u64 + 1));
        } else if wide {
            self.i32(n.map_or(-1, |n| i32::try_from(n).expect("test data fits an int32")));
        } else {
            let n = n.map_or(-1, |n| {
                i16::try_from(n).expect("writable strings fit an int16")
            });
            self.i16(n);
        }
    }
    fn len(&mut self, n: usize, wide: bool) {
        self.len_or_null(Some(n), wide);
    }
    fn string(&mut self, s: &str) {
        self.nullable(Some(s));
    }
    fn nullable(&mut self, s: Option<&str>) {
        self.len_or_null(s.map(str::len), false);
        if let Some(s) = s {
            self.buf.extend_from_slice(s.as_bytes());
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len(), true);
        self.buf.extend_from_slice(b);
    }
    /// Flexible versions end a struct with tagged fields; `one` writes an unknown one (tag 7,
    /// two bytes) that a reader must skip.
    fn tagged_fields(&mut self, one: bool) {
        if !self.flexible {
            return;
        }
        if one {
            self.uvarint(1);
            self.uvarint(7);
            self.uvarint(2);
            self.buf.extend_from_slice(&[0xab, 0xcd]);
        } else {
            self.uvarint(0);
        }
    }
}

/// Seeds: every record kind in every value version, raw and structured, plus tombstones.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, record) in sample_records() {
        let versions: &[i16] = if value_is_some(&record) {
            &[0, 1, 2, 3, 4]
        } else {
            &[3]
        };
        for &version in versions {
            let key_version = if version == 0 { 0 } else { 1 };
            let key = encode_key_version(&record, key_version);
            let mut raw = vec![0u8];
            raw.extend_from_slice(&(key.len() as u16).to_be_bytes());
            raw.extend_from_slice(&key);
            match encode_value_version(&record, version) {
                Some(v) => {
                    raw.push(1);
                    raw.extend_from_slice(&v);
                }
                None => raw.push(0),
            }
            out.push((format!("seed-raw-{name}-v{version}"), raw));
        }
    }
    // Structured: a commit with a v1 expire timestamp; a group of two members in v4.
    let mut commit = vec![1u8, 0b0000_0010];
    commit.extend([1, b'g', 1, b't', 0, 0, 0, 3]);
    commit.extend([0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 5, 1, b'm']);
    commit.extend([
        0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0, 0, 0, 1, 0x8c, 0, 0, 0, 0,
    ]);
    out.push(("seed-structured-commit-v1".to_string(), commit));
    let mut group = vec![1u8, 0b0010_0110];
    group.extend([2, b'g', b'1', 8]);
    group.extend(b"consumer");
    group.extend([0, 0, 0, 7, 5]);
    group.extend(b"range");
    group.extend([1, b'a', 0, 0, 0, 0, 0, 0, 0, 9, 2]);
    for (id, instance) in [(b'a', 255u8), (b'b', 1)] {
        group.extend([1, id, instance]);
        if instance == 1 {
            group.push(b'i');
        }
        group.extend([1, b'c', 2, b'/', b'h', 0, 0, 0x4e, 0x20, 0, 0, 0x27, 0x10]);
        group.extend([0, 2, 0, 1, 0, 1, id]);
    }
    out.push(("seed-structured-group-v4".to_string(), group));
    out
}

fn value_is_some(record: &GroupRecord) -> bool {
    match record {
        GroupRecord::OffsetCommit { value, .. } => value.is_some(),
        GroupRecord::GroupMetadata { value, .. } => value.is_some(),
    }
}

fn sample_records() -> Vec<(&'static str, GroupRecord)> {
    let key = OffsetCommitKey {
        group: "g".into(),
        topic: "t".into(),
        partition: 3,
    };
    let member = |id: &str, instance: Option<&str>| MemberMetadata {
        member_id: id.into(),
        group_instance_id: instance.map(Into::into),
        client_id: "c".into(),
        client_host: "/10.0.0.1".into(),
        rebalance_timeout: 20_000,
        session_timeout: 10_000,
        subscription: Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 255, 255, 255, 255]),
        assignment: Bytes::from_static(b"a"),
    };
    vec![
        (
            "commit",
            GroupRecord::OffsetCommit {
                key: key.clone(),
                value: Some(OffsetCommitValue {
                    offset: 42,
                    leader_epoch: 5,
                    metadata: "m".into(),
                    commit_timestamp: 1_700_000_000_000,
                    expire_timestamp: 1_700_000_600_000,
                }),
            },
        ),
        (
            "commit-tombstone",
            GroupRecord::OffsetCommit { key, value: None },
        ),
        (
            "group",
            GroupRecord::GroupMetadata {
                group: "g".into(),
                value: Some(GroupMetadataValue {
                    protocol_type: "consumer".into(),
                    generation: 7,
                    protocol: Some("range".into()),
                    leader: Some("a".into()),
                    current_state_timestamp: 1_700_000_000_000,
                    members: vec![member("a", None), member("b", Some("i"))],
                }),
            },
        ),
        (
            "group-empty",
            GroupRecord::GroupMetadata {
                group: "g".into(),
                value: Some(GroupMetadataValue {
                    protocol_type: String::new(),
                    generation: 0,
                    protocol: None,
                    leader: None,
                    current_state_timestamp: -1,
                    members: Vec::new(),
                }),
            },
        ),
        (
            "group-tombstone",
            GroupRecord::GroupMetadata {
                group: "g".into(),
                value: None,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_of_every_sample_decodes_as_that_version_carries_it() {
        for (name, record) in sample_records() {
            for version in 0..=4 {
                let key = encode_key_version(&record, 1);
                let value = encode_value_version(&record, version);
                let decoded = GroupRecord::decode(&key, value.as_deref()).unwrap();
                assert_eq!(decoded, as_version(&record, version), "{name} v{version}");
            }
        }
    }

    #[test]
    fn the_v1_expire_timestamp_survives_a_rewrite() {
        let (_, commit) = &sample_records()[0];
        let v1 = encode_value_version(commit, 1).unwrap();
        let key = encode_key_version(commit, 1);
        let decoded = GroupRecord::decode(&key, Some(&v1)).unwrap();
        assert_eq!(
            decoded,
            as_version(commit, 1),
            "v1 carries the expire timestamp"
        );
        assert_eq!(decoded.clone(), {
            let mut c = decoded.clone();
            if let GroupRecord::OffsetCommit { value: Some(v), .. } = &mut c {
                assert_eq!(v.expire_timestamp, 1_700_000_600_000);
            }
            c
        });
        // v3 cannot carry it, so core writes such a commit as v1 (a snapshot keeps it).
        assert_eq!(written_version(&decoded), 1);
        assert_eq!(written(&decoded), decoded, "the rewrite keeps it");
        check_raw(&key, Some(&v1), Options::default());
    }

    #[test]
    fn seeds_reach_the_structured_and_raw_paths() {
        let seeds = seeds();
        assert!(seeds.iter().any(|(n, _)| n.starts_with("seed-structured")));
        for (name, bytes) in &seeds {
            if let Some(rest) = bytes.strip_prefix(&[0]) {
                let mut r = Reader::new(rest);
                let key = r.section();
                let present = r.u8() % 2 == 1;
                let value = r.rest();
                assert!(
                    GroupRecord::decode(key, present.then_some(value)).is_ok(),
                    "raw seed {name} decodes"
                );
            }
            run(bytes, Options::default());
        }
    }

    #[test]
    fn a_flexible_value_may_carry_a_string_v3_cannot() {
        let record = GroupRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
            },
            value: Some(OffsetCommitValue {
                offset: 1,
                leader_epoch: 1,
                metadata: "m".repeat(i16::MAX as usize + 1),
                commit_timestamp: 0,
                expire_timestamp: -1,
            }),
        };
        let key = encode_key_version(&record, 1);
        let value = encode_value_version(&record, 4).unwrap();
        let decoded = GroupRecord::decode(&key, Some(&value)).unwrap();
        assert!(!encodable(&decoded), "v3 cannot carry it");
        assert_eq!(
            decoded.encode_value().unwrap()[..2],
            [0, 4],
            "written as v4"
        );
        check_raw(&key, Some(&value), Options::default());
    }
}
