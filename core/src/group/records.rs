//! The `__consumer_offsets` records, byte for byte as Kafka writes them.
//!
//! Each record of the offsets topic is a key and a value (null = tombstone). Both start with an
//! int16 version, big-endian. Schemas: Kafka's `group-coordinator/src/main/resources/common/
//! message/{OffsetCommitKey,OffsetCommitValue,GroupMetadataKey,GroupMetadataValue}.json`; the
//! versions Kafka 4 writes come from `MetadataVersion.offsetCommitValueVersion` /
//! `groupMetadataValueVersion` (the highest non-flexible: 3) and
//! `GroupCoordinatorRecordHelpers` (keys 1 and 2). We write exactly those and read every version
//! 0..=4, so tools that read the topic (Kafka's offsets formatter, Burrow) understand it.
//!
//! Encodings: `int16/int32/int64` big-endian; `string` = int16 length + UTF-8 (nullable: length
//! -1 = null); `bytes` = int32 length + bytes; `[]T` = int32 count + elements. Flexible versions
//! (value v4) use *compact* forms instead — unsigned varint `length + 1` (0 = null) for strings,
//! bytes and arrays — and end every struct with tagged fields (unsigned varint count, then per
//! field: varint tag, varint size, data), which we skip.
//!
//! ```text
//! key v0/v1 OffsetCommitKey    version:int16 group:string topic:string partition:int32
//! key v2    GroupMetadataKey   version:int16 group:string
//!
//! OffsetCommitValue            version:int16 offset:int64
//!                              [v3+ leaderEpoch:int32] metadata:string commitTimestamp:int64
//!                              [v1 only: expireTimestamp:int64] [v4: tagged fields]
//! GroupMetadataValue           version:int16 protocolType:string generation:int32
//!                              protocol:string? leader:string?
//!                              [v2+ currentStateTimestamp:int64]
//!                              members:[]MemberMetadata [v4: tagged fields]
//!   MemberMetadata             memberId:string [v3+ groupInstanceId:string?] clientId:string
//!                              clientHost:string [v1+ rebalanceTimeout:int32]
//!                              sessionTimeout:int32 subscription:bytes assignment:bytes
//!                              [v4: tagged fields]
//! ```
//!
//! Written: keys v1 (offset commits) and v2 (group metadata); values v3 (both), except an offset
//! commit with an explicit `expireTimestamp` (only ever read from a v1 record), which is written
//! as v1 as Kafka does, and a value with a string longer than an int16 length can say (only
//! ever read from a v4 record: the coordinator refuses such strings in requests), which is
//! written as v4, so that re-emitting what was read keeps it. Encoding is total: every value
//! that decodes encodes again (keys are never flexible, so their strings always fit). Fields a version
//! lacks decode to Kafka's defaults (`leaderEpoch` -1, `expireTimestamp` -1,
//! `currentStateTimestamp` -1, `rebalanceTimeout` -1, `groupInstanceId` null).
//!
//! Decoding never panics: any malformed input is a [`DecodeError`]; trailing bytes are refused.

use bytes::Bytes;

/// The key version Kafka 4 writes for offset commits (`GroupCoordinatorRecordHelpers`).
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// The key version of group metadata.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// The value version Kafka 4 writes for both value types (highest non-flexible).
pub const VALUE_VERSION: i16 = 3;
/// The OffsetCommitValue version Kafka writes for a commit with an explicit expire timestamp
/// (the only one that carries it).
const OFFSET_COMMIT_VALUE_V1: i16 = 1;
/// The highest value version we read (v4: the first flexible one).
const MAX_VALUE_VERSION: i16 = 4;

/// Why a record of the offsets topic could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record truncated: needed {needed} more bytes at {at}")]
    Truncated { at: usize, needed: usize },
    #[error("unknown key version {0} (not a classic group record)")]
    UnknownKeyVersion(i16),
    #[error("unknown {kind} value version {version}")]
    UnknownValueVersion { kind: &'static str, version: i16 },
    #[error("negative length {0} for a non-nullable field")]
    NegativeLength(i64),
    #[error("a string is not UTF-8")]
    NotUtf8,
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("varint too long")]
    VarintTooLong,
}

/// The key of an offset commit: one (group, topic, partition).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffsetCommitKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed offset (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// The leader epoch of the committed record (KIP-320), -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    /// Wall-clock ms of the commit: KIP-211 expires standalone commits from it.
    pub commit_timestamp: i64,
    /// Only version 1 carries it (pre-KIP-211 per-commit retention); -1 otherwise.
    pub expire_timestamp: i64,
}

/// A classic group's persisted state (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Wall-clock ms of the group's last state change: KIP-211 counts retention from the time
    /// the group became Empty.
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

/// One member inside [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One record of the offsets topic. A `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    OffsetCommit {
        key: OffsetCommitKey,
        value: Option<OffsetCommitValue>,
    },
    GroupMetadata {
        group: String,
        value: Option<GroupMetadataValue>,
    },
}

impl GroupRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::OffsetCommit { key, .. } => &key.group,
            GroupRecord::GroupMetadata { group, .. } => group,
        }
    }

    /// The key bytes (OffsetCommitKey v1 or GroupMetadataKey v2).
    pub fn encode_key(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            GroupRecord::OffsetCommit { key, .. } => {
                w.i16(OFFSET_COMMIT_KEY_VERSION);
                w.string(&key.group);
                w.string(&key.topic);
                w.i32(key.partition);
            }
            GroupRecord::GroupMetadata { group, .. } => {
                w.i16(GROUP_METADATA_KEY_VERSION);
                w.string(group);
            }
        }
        w.bytes
    }

    /// The value bytes (version 3; an offset commit with an explicit `expireTimestamp`,
    /// version 1; a value whose strings do not fit an int16 length, version 4), `None` for a
    /// tombstone.
    pub fn encode_value(&self) -> Option<Vec<u8>> {
        let mut w = Writer::default();
        match self {
            GroupRecord::OffsetCommit { value, .. } => {
                let v = value.as_ref()?;
                if v.expire_timestamp >= 0 {
                    // Kafka's `offsetCommitValueVersion(expireTimestampMs.isPresent())`: only v1
                    // carries it. Only a v1 record read back has one (with no leader epoch, and
                    // a metadata string that fits v1's int16 length), and re-emitting it (a
                    // snapshot) must keep it.
                    w.i16(OFFSET_COMMIT_VALUE_V1);
                    w.i64(v.offset);
                    w.string(&v.metadata);
                    w.i64(v.commit_timestamp);
                    w.i64(v.expire_timestamp);
                    return Some(w.bytes);
                }
                w.version(fits_int16(&v.metadata));
                w.i64(v.offset);
                w.i32(v.leader_epoch);
                w.string(&v.metadata);
                w.i64(v.commit_timestamp);
                w.tagged_fields();
            }
            GroupRecord::GroupMetadata { value, .. } => {
                let v = value.as_ref()?;
                let fits = [&v.protocol_type]
                    .into_iter()
                    .chain(&v.protocol)
                    .chain(&v.leader)
                    .chain(v.members.iter().flat_map(|m| {
                        [&m.member_id, &m.client_id, &m.client_host]
                            .into_iter()
                            .chain(&m.group_instance_id)
                    }))
                    .all(|s| fits_int16(s));
                w.version(fits);
                w.string(&v.protocol_type);
                w.i32(v.generation);
                w.nullable_string(v.protocol.as_deref());
                w.nullable_string(v.leader.as_deref());
                w.i64(v.current_state_timestamp);
                w.array_len(v.members.len());
                for m in &v.members {
                    w.string(&m.member_id);
                    w.nullable_string(m.group_instance_id.as_deref());
                    w.string(&m.client_id);
                    w.string(&m.client_host);
                    w.i32(m.rebalance_timeout);
                    w.i32(m.session_timeout);
                    w.bytes(&m.subscription);
                    w.bytes(&m.assignment);
                    w.tagged_fields();
                }
                w.tagged_fields();
            }
        }
        Some(w.bytes)
    }

    /// Reads a record from its key and value bytes (`None`: a tombstone).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, DecodeError> {
        let mut r = Reader::new(key);
        let version = r.i16()?;
        match version {
            0 | 1 => {
                let key = OffsetCommitKey {
                    group: r.string()?,
                    topic: r.string()?,
                    partition: r.i32()?,
                };
                r.finish()?;
                let value = value.map(decode_offset_commit_value).transpose()?;
                Ok(GroupRecord::OffsetCommit { key, value })
            }
            2 => {
                let group = r.string()?;
                r.finish()?;
                let value = value.map(decode_group_metadata_value).transpose()?;
                Ok(GroupRecord::GroupMetadata { group, value })
            }
            v => Err(DecodeError::UnknownKeyVersion(v)),
        }
    }

    /// The encoded size of key and value: what the record costs in the log.
    pub fn encoded_len(&self) -> usize {
        self.encode_key().len() + self.encode_value().map_or(0, |v| v.len())
    }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).expect("lengths are bounded far below i32::MAX by the coordinator's limits")
}

fn decode_offset_commit_value(bytes: &[u8]) -> Result<OffsetCommitValue, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=MAX_VALUE_VERSION).contains(&version) {
        return Err(DecodeError::UnknownValueVersion {
            kind: "OffsetCommitValue",
            version,
        });
    }
    r.flexible = version >= 4;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
    r.tagged_fields()?;
    r.finish()?;
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

fn decode_group_metadata_value(bytes: &[u8]) -> Result<GroupMetadataValue, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=MAX_VALUE_VERSION).contains(&version) {
        return Err(DecodeError::UnknownValueVersion {
            kind: "GroupMetadataValue",
            version,
        });
    }
    r.flexible = version >= 4;
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    // Each member takes at least 16 bytes: never reserve more than the input could hold.
    let mut members = Vec::with_capacity(count.min(r.remaining() / 16));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    r.finish()?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// A string a non-flexible (int16-length) version can hold.
fn fits_int16(s: &str) -> bool {
    s.len() <= i16::MAX as usize
}

/// Writes values at version 3, or at version 4 (compact lengths, tagged fields) when
/// [`Writer::version`] is told the strings do not fit v3.
#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
    flexible: bool,
}

impl Writer {
    /// The value version: v3 when every string fits an int16 length, else v4.
    fn version(&mut self, fits_v3: bool) {
        self.flexible = !fits_v3;
        self.i16(if fits_v3 {
            VALUE_VERSION
        } else {
            MAX_VALUE_VERSION
        });
    }
    fn i16(&mut self, v: i16) {
        self.bytes.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.bytes.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_be_bytes());
    }
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.bytes.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.bytes.push(v as u8);
    }
    /// A length: compact (`len + 1`, 0 = null) when flexible, else int16 or int32 (`wide`).
    fn length(&mut self, len: Option<usize>, wide: bool) {
        if self.flexible {
            self.uvarint(len.map_or(0, |n| n as u64 + 1));
        } else if wide {
            self.i32(len.map_or(-1, len_i32));
        } else {
            let len = len.map_or(-1, |n| {
                i16::try_from(n).expect("the version was chosen so every string fits")
            });
            self.i16(len);
        }
    }
    fn string(&mut self, s: &str) {
        self.length(Some(s.len()), false);
        self.bytes.extend_from_slice(s.as_bytes());
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.length(None, false),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.length(Some(b.len()), true);
        self.bytes.extend_from_slice(b);
    }
    fn array_len(&mut self, n: usize) {
        self.length(Some(n), true);
    }
    /// An empty tagged-field section (flexible versions only).
    fn tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }
}

/// A bounds-checked reader: every read returns an error instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Compact encodings and tagged fields (flexible versions).
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            flexible: false,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let [b] = self.array()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong)
    }

    /// A length: `None` for null (-1, or compact 0).
    fn length(&mut self, wide: bool) -> Result<Option<usize>, DecodeError> {
        let len: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match len {
            -1 => Ok(None),
            n if n < -1 => Err(DecodeError::NegativeLength(n)),
            n => Ok(Some(
                usize::try_from(n).map_err(|_| DecodeError::NegativeLength(n))?,
            )),
        }
    }

    fn nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        let Some(len) = self.length(false)? else {
            return Ok(None);
        };
        let raw = self.take(len)?;
        let s = std::str::from_utf8(raw).map_err(|_| DecodeError::NotUtf8)?;
        Ok(Some(s.to_owned()))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.nullable_string()?
            .ok_or(DecodeError::NegativeLength(-1))
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.length(true)?.ok_or(DecodeError::NegativeLength(-1))?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    fn array_len(&mut self) -> Result<usize, DecodeError> {
        self.length(true)?.ok_or(DecodeError::NegativeLength(-1))
    }

    /// Skips a tagged-field section (flexible versions only).
    fn tagged_fields(&mut self) -> Result<(), DecodeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()?;
            let size = usize::try_from(size).map_err(|_| DecodeError::VarintTooLong)?;
            self.take(size)?;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

#[cfg(test)]
#[path = "tests/records.rs"]
mod tests;
