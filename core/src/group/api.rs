//! The coordinator's requests and replies: plain structs with the Kafka fields it needs (names as
//! in the Kafka schemas), independent of the codec. The node translates from and to the
//! `kafka-protocol` messages, validates what only it knows (topic and partition existence,
//! request size) and splits multi-group requests by coordinator partition.

use bytes::Bytes;

use crate::error::ErrorCode;

/// The driver's handle on a request, echoed with its reply (e.g. connection and correlation id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// `""`: the member id of a member that has none yet (`JoinGroupRequest.UNKNOWN_MEMBER_ID`).
pub const UNKNOWN_MEMBER_ID: &str = "";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    JoinGroup(JoinGroup),
    SyncGroup(SyncGroup),
    Heartbeat(Heartbeat),
    LeaveGroup(LeaveGroup),
    OffsetCommit(OffsetCommit),
    OffsetFetch(OffsetFetch),
    ListGroups(ListGroups),
    DescribeGroups(DescribeGroups),
    DeleteGroups(DeleteGroups),
    OffsetDelete(OffsetDelete),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
    Heartbeat(ErrorCode),
    LeaveGroup(LeaveGroupResponse),
    OffsetCommit(OffsetCommitResponse),
    OffsetFetch(OffsetFetchResponse),
    ListGroups(ListGroupsResponse),
    DescribeGroups(Vec<DescribedGroup>),
    DeleteGroups(Vec<(String, ErrorCode)>),
    OffsetDelete(OffsetDeleteResponse),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroup {
    /// The request's API version: v4+ first joins get `MEMBER_ID_REQUIRED` (KIP-394).
    pub api_version: i16,
    pub group_id: String,
    pub session_timeout_ms: i32,
    /// v0 has none: the node passes the session timeout (Kafka's `JoinGroupRequest`, KAFKA-8653).
    pub rebalance_timeout_ms: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// From the request header and the connection: stored in GroupMetadata, shown by Describe.
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinGroupResponse {
    pub error_code: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// v9+: the static leader rejoining a Stable group need not compute an assignment.
    pub skip_assignment: bool,
    pub member_id: String,
    /// Only the leader gets the members (with their metadata for the selected protocol).
    pub members: Vec<JoinedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+ (None before): checked against the group's.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncGroupResponse {
    pub error_code: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroup {
    pub group_id: String,
    /// v0–2: one member (the node fills `member_id`); v3+: a batch (KIP-345).
    pub members: Vec<LeavingMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaveGroupResponse {
    pub error_code: ErrorCode,
    /// Per member, in request order: (member id, instance id, error).
    pub members: Vec<(String, Option<String>, ErrorCode)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// v9+: an absent group with generation >= 0 gets `GROUP_ID_NOT_FOUND` (else
    /// `ILLEGAL_GENERATION`).
    pub api_version: i16,
    pub group_id: String,
    /// -1: a standalone commit (assign() mode, admin tools).
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: Vec<CommitTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitTopic {
    pub name: String,
    pub partitions: Vec<CommitPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    /// Null metadata is stored as "" (Kafka's `OffsetAndMetadata.NO_METADATA`).
    pub metadata: Option<String>,
}

/// Per topic, per partition: the error (NONE when committed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetCommitResponse {
    pub topics: Vec<(String, Vec<(i32, ErrorCode)>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetFetch {
    pub groups: Vec<FetchGroup>,
    /// KIP-447: partitions with a commit not yet committed get `UNSTABLE_OFFSET_COMMIT`.
    pub require_stable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchGroup {
    pub group_id: String,
    /// `None`: every committed offset of the group.
    pub topics: Option<Vec<(String, Vec<i32>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchResponse {
    pub groups: Vec<FetchedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedGroup {
    pub group_id: String,
    pub error_code: ErrorCode,
    pub topics: Vec<(String, Vec<FetchedPartition>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error_code: ErrorCode,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListGroups {
    /// v4+ (KIP-518): only groups in these states (Kafka's names, case-insensitive); empty = all.
    pub states_filter: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListGroupsResponse {
    pub error_code: ErrorCode,
    pub groups: Vec<ListedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub group_state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroups {
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub error_code: ErrorCode,
    pub group_state: String,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_metadata: Bytes,
    pub member_assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroups {
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDelete {
    pub group_id: String,
    pub topics: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetDeleteResponse {
    pub error_code: ErrorCode,
    pub topics: Vec<(String, Vec<(i32, ErrorCode)>)>,
}
