//! One member of a consumer group, step by step: each call is one protocol exchange with the
//! group's coordinator and returns exactly what the broker answered, so a workload can record
//! every step (the simulator's group workload does) and [`super::GroupConsumer`] can build
//! `subscribe()`/`poll()` on top.
//!
//! The classic protocol as Kafka's `AbstractCoordinator` runs it: FindCoordinator, then
//! JoinGroup (a first v4+ join is answered `MEMBER_ID_REQUIRED` with an id to join again with,
//! KIP-394), then SyncGroup (the leader sends the range assignment it computed from the
//! members' subscriptions), then Heartbeats until one says `REBALANCE_IN_PROGRESS`. Commits
//! carry the member id and generation; the coordinator fences stale ones.
//!
//! Errors that mean "ask someone else" (`NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`, a lost
//! connection, a timeout) forget the coordinator, so the next call looks it up again.
//! `UNKNOWN_MEMBER_ID` and `FENCED_INSTANCE_ID` forget the member id (the next join is a first
//! join), `ILLEGAL_GENERATION` and `REBALANCE_IN_PROGRESS` keep it (the next join rejoins).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use strata_core::error::ErrorCode;
use thiserror::Error;

use super::assignor::{self, PROTOCOL_TYPE, RANGE, TopicPartitions};
use crate::connection::{Connection, ConnectionConfig, ConnectionError};
use crate::metadata::{Router, RouterError};

// Versions this client speaks (the broker's ranges are wider; the highest common one is used).
const FIND_COORDINATOR_VERSIONS: (i16, i16) = (1, 3);
const JOIN_GROUP_VERSIONS: (i16, i16) = (4, 9);
const SYNC_GROUP_VERSIONS: (i16, i16) = (3, 5);
const HEARTBEAT_VERSIONS: (i16, i16) = (3, 4);
const LEAVE_GROUP_VERSIONS: (i16, i16) = (3, 5);
const OFFSET_COMMIT_VERSIONS: (i16, i16) = (2, 8);
const OFFSET_FETCH_VERSIONS: (i16, i16) = (1, 7);
const DESCRIBE_GROUPS_VERSIONS: (i16, i16) = (0, 5);

/// How many `MEMBER_ID_REQUIRED` answers one join follows before giving up.
const MAX_JOIN_ROUNDS: usize = 3;

/// A group member's settings (Kafka's consumer config names in the docs).
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub group_id: String,
    /// `group.instance.id`: a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (Kafka's default 45 s).
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms`, sent as the rebalance timeout (Kafka's default 5 min).
    pub rebalance_timeout_ms: i32,
    /// `heartbeat.interval.ms` (Kafka's default 3 s).
    pub heartbeat_interval_ms: u64,
    /// `request.timeout.ms` for every request but JoinGroup, which the coordinator may hold
    /// for a whole rebalance (that one waits `rebalance_timeout_ms` + 5 s, as Kafka's does).
    pub request_timeout: Duration,
    pub connection: ConnectionConfig,
}

impl MemberConfig {
    pub fn new(group_id: impl Into<String>) -> MemberConfig {
        MemberConfig {
            group_id: group_id.into(),
            group_instance_id: None,
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            heartbeat_interval_ms: 3_000,
            request_timeout: Duration::from_secs(30),
            connection: ConnectionConfig::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum GroupError {
    /// The broker answered this error code.
    #[error("broker error {0:?}")]
    Kafka(ErrorCode),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error("{0} timed out")]
    Timeout(String),
    /// The answer made no sense (an undecodable assignment, a missing entry).
    #[error("protocol: {0}")]
    Protocol(String),
}

impl GroupError {
    /// The broker's error code, if the broker answered one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            GroupError::Kafka(code) => Some(*code),
            _ => None,
        }
    }

    /// True when a write (a commit, a join) may have taken effect anyway: the request may have
    /// been executed (lost connection, timeout), or the coordinator appended it and then lost
    /// its leadership or its ISR before the record was committed (`NOT_COORDINATOR`,
    /// `COORDINATOR_NOT_AVAILABLE`, `REQUEST_TIMED_OUT`: Kafka's mapping of append errors).
    pub fn is_indefinite(&self) -> bool {
        match self {
            GroupError::Kafka(code) => matches!(
                *code,
                ErrorCode::NOT_COORDINATOR
                    | ErrorCode::COORDINATOR_NOT_AVAILABLE
                    | ErrorCode::REQUEST_TIMED_OUT
                    | ErrorCode::UNKNOWN_SERVER_ERROR
            ),
            GroupError::Connection(e) => e.is_indefinite(),
            GroupError::Router(_) | GroupError::Protocol(_) => false,
            GroupError::Timeout(_) => true,
        }
    }

    /// True when the member must join (again) before it may heartbeat or commit.
    pub fn needs_rejoin(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ErrorCode::REBALANCE_IN_PROGRESS
                    | ErrorCode::ILLEGAL_GENERATION
                    | ErrorCode::UNKNOWN_MEMBER_ID
                    | ErrorCode::FENCED_INSTANCE_ID
            )
        )
    }
}

/// The outcome of a join: this member's place in a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub member_id: String,
    pub generation: i32,
    pub leader: bool,
    /// Sorted.
    pub assignment: TopicPartitions,
}

/// A committed offset read back (`metadata` as committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub metadata: Option<String>,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: String,
    pub protocol: String,
    /// (member id, assignment), in the broker's order.
    pub members: Vec<(String, TopicPartitions)>,
}

/// One member of a consumer group (see the module docs).
pub struct GroupMember {
    config: MemberConfig,
    router: Arc<Router>,
    coordinator: Option<Arc<Connection>>,
    member_id: String,
    generation: i32,
    protocol_name: Option<String>,
}

impl GroupMember {
    pub fn new(router: Arc<Router>, config: MemberConfig) -> GroupMember {
        GroupMember {
            config,
            router,
            coordinator: None,
            member_id: String::new(),
            generation: -1,
            protocol_name: None,
        }
    }

    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The member id the coordinator gave (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation of the last successful join (-1 before it).
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Forgets the coordinator: the next call looks it up again.
    pub fn forget_coordinator(&mut self) {
        if let Some(c) = self.coordinator.take() {
            c.close("coordinator forgotten");
        }
    }

    /// The coordinator's connection, looked up with FindCoordinator if not known.
    pub async fn coordinator(&mut self) -> Result<Arc<Connection>, GroupError> {
        if let Some(c) = self.coordinator.as_ref().filter(|c| !c.is_broken()) {
            return Ok(Arc::clone(c));
        }
        let conn = self.router.any_connection().await?;
        let version = conn.version_for(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSIONS)?;
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(self.config.group_id.clone()))
            .with_key_type(0);
        let resp = self
            .bounded("FindCoordinator", &conn, &req, version)
            .await?;
        if resp.error_code != 0 {
            return Err(GroupError::Kafka(ErrorCode(resp.error_code)));
        }
        let addr = format!("{}:{}", resp.host.as_str(), resp.port);
        let connect = Connection::connect(&addr, self.config.connection.clone());
        let conn = match tokio::time::timeout(self.config.request_timeout, connect).await {
            Ok(c) => Arc::new(c?),
            Err(_) => {
                return Err(GroupError::Timeout(format!(
                    "connect to coordinator {addr}"
                )));
            }
        };
        self.coordinator = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// JoinGroup then SyncGroup (computing the range assignment when this member leads).
    /// `topics` is the subscription, `owned` what the member holds now.
    pub async fn join(
        &mut self,
        topics: &[String],
        owned: &[(String, i32)],
    ) -> Result<Joined, GroupError> {
        let result = self.join_and_sync(topics, owned).await;
        self.noted(result)
    }

    async fn join_and_sync(
        &mut self,
        topics: &[String],
        owned: &[(String, i32)],
    ) -> Result<Joined, GroupError> {
        let conn = self.coordinator().await?;
        let join_version = conn.version_for(ApiKey::JoinGroup, JOIN_GROUP_VERSIONS)?;
        let metadata = assignor::encode_subscription(topics, owned);
        let join_timeout = Duration::from_millis(
            u64::try_from(self.config.rebalance_timeout_ms).unwrap_or(0) + 5_000,
        )
        .max(self.config.request_timeout);
        let mut rounds = 0;
        let joined = loop {
            rounds += 1;
            let req = JoinGroupRequest::default()
                .with_group_id(self.group_id())
                .with_session_timeout_ms(self.config.session_timeout_ms)
                .with_rebalance_timeout_ms(self.config.rebalance_timeout_ms)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_group_instance_id(self.instance_id())
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str(RANGE))
                        .with_metadata(metadata.clone()),
                ]);
            let resp =
                match tokio::time::timeout(join_timeout, conn.request(&req, join_version)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        conn.close("JoinGroup timed out");
                        return Err(GroupError::Timeout("JoinGroup".to_string()));
                    }
                };
            let code = ErrorCode(resp.error_code);
            if code == ErrorCode::MEMBER_ID_REQUIRED && rounds < MAX_JOIN_ROUNDS {
                self.member_id = resp.member_id.as_str().to_owned();
                continue;
            }
            if !code.is_ok() {
                return Err(GroupError::Kafka(code));
            }
            break resp;
        };
        self.member_id = joined.member_id.as_str().to_owned();
        let generation = joined.generation_id;
        let protocol_name = joined
            .protocol_name
            .as_ref()
            .map_or_else(|| RANGE.to_owned(), |p| p.as_str().to_owned());
        let leader = joined.leader.as_str() == self.member_id;
        let assignments = if leader {
            self.leader_assignments(&joined.members).await?
        } else {
            Vec::new()
        };
        let sync_version = conn.version_for(ApiKey::SyncGroup, SYNC_GROUP_VERSIONS)?;
        let req = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_group_instance_id(self.instance_id())
            .with_assignments(assignments);
        // Fields of v5+ (the coordinator checks them against the group's).
        let req = if sync_version >= 5 {
            req.with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
                .with_protocol_name(Some(StrBytes::from_string(protocol_name.clone())))
        } else {
            req
        };
        let resp = self.bounded("SyncGroup", &conn, &req, sync_version).await?;
        let code = ErrorCode(resp.error_code);
        if !code.is_ok() {
            return Err(GroupError::Kafka(code));
        }
        let assignment =
            assignor::decode_assignment(&resp.assignment).map_err(GroupError::Protocol)?;
        self.generation = generation;
        self.protocol_name = Some(protocol_name);
        Ok(Joined {
            member_id: self.member_id.clone(),
            generation,
            leader,
            assignment,
        })
    }

    /// The leader's SyncGroup assignments: range over every member's subscription, with the
    /// partition counts Metadata gives now.
    async fn leader_assignments(
        &self,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, GroupError> {
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in members {
            // A member whose metadata we cannot read subscribes to nothing (Kafka's leader
            // would fail the rebalance; leaving it empty keeps the others consuming).
            let topics = assignor::decode_subscription(&m.metadata).unwrap_or_default();
            subscriptions.insert(m.member_id.as_str().to_owned(), topics);
        }
        let mut partitions_per_topic = BTreeMap::new();
        let topics: std::collections::BTreeSet<&String> =
            subscriptions.values().flatten().collect();
        for topic in topics {
            let partitions = self.router.partitions(topic).await?;
            partitions_per_topic.insert(
                topic.clone(),
                i32::try_from(partitions.len()).unwrap_or(i32::MAX),
            );
        }
        Ok(
            assignor::range_assign(&subscriptions, &partitions_per_topic)
                .into_iter()
                .map(|(member, partitions)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_assignment(assignor::encode_assignment(&partitions))
                })
                .collect(),
        )
    }

    /// One heartbeat of the current generation.
    pub async fn heartbeat(&mut self) -> Result<(), GroupError> {
        let result = async {
            let conn = self.coordinator().await?;
            let version = conn.version_for(ApiKey::Heartbeat, HEARTBEAT_VERSIONS)?;
            let req = HeartbeatRequest::default()
                .with_group_id(self.group_id())
                .with_generation_id(self.generation)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_group_instance_id(self.instance_id());
            let resp = self.bounded("Heartbeat", &conn, &req, version).await?;
            match ErrorCode(resp.error_code) {
                code if code.is_ok() => Ok(()),
                code => Err(GroupError::Kafka(code)),
            }
        }
        .await;
        self.noted(result)
    }

    /// Commits `offsets` as this member of its current generation, each with `metadata`.
    pub async fn commit(
        &mut self,
        offsets: &[(String, i32, i64)],
        metadata: &str,
    ) -> Result<(), GroupError> {
        let (member_id, generation) = (self.member_id.clone(), self.generation);
        self.commit_as(&member_id, generation, offsets, metadata)
            .await
    }

    /// Commits as (`member_id`, `generation`) whatever this member's own are: assign()-mode
    /// commits (`""`, -1), or a deliberately stale commit in a test.
    pub async fn commit_as(
        &mut self,
        member_id: &str,
        generation: i32,
        offsets: &[(String, i32, i64)],
        metadata: &str,
    ) -> Result<(), GroupError> {
        let result = self
            .commit_inner(member_id, generation, offsets, metadata)
            .await;
        self.noted(result)
    }

    async fn commit_inner(
        &mut self,
        member_id: &str,
        generation: i32,
        offsets: &[(String, i32, i64)],
        metadata: &str,
    ) -> Result<(), GroupError> {
        let conn = self.coordinator().await?;
        let version = conn.version_for(ApiKey::OffsetCommit, OFFSET_COMMIT_VERSIONS)?;
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_string(metadata.to_owned()))),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member_id.to_owned()))
            .with_group_instance_id(self.instance_id())
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let resp = self.bounded("OffsetCommit", &conn, &req, version).await?;
        let mut answered = 0;
        for t in &resp.topics {
            for p in &t.partitions {
                answered += 1;
                if p.error_code != 0 {
                    return Err(GroupError::Kafka(ErrorCode(p.error_code)));
                }
            }
        }
        if answered != offsets.len() {
            return Err(GroupError::Protocol(format!(
                "OffsetCommit answered {answered} partitions of {}",
                offsets.len()
            )));
        }
        Ok(())
    }

    /// The committed offsets of `partitions` (`None`: nothing committed), in request order.
    pub async fn committed(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<((String, i32), Option<CommittedOffset>)>, GroupError> {
        let result = self.committed_inner(partitions).await;
        self.noted(result)
    }

    async fn committed_inner(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<((String, i32), Option<CommittedOffset>)>, GroupError> {
        let conn = self.coordinator().await?;
        let version = conn.version_for(ApiKey::OffsetFetch, OFFSET_FETCH_VERSIONS)?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            topics.entry(topic).or_default().push(*partition);
        }
        let req = OffsetFetchRequest::default()
            .with_group_id(self.group_id())
            .with_topics(Some(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partition_indexes(partitions)
                    })
                    .collect(),
            ))
            // No transactions here, so nothing is ever unstable; v7+ only.
            .with_require_stable(version >= 7);
        let resp = self.bounded("OffsetFetch", &conn, &req, version).await?;
        if resp.error_code != 0 {
            return Err(GroupError::Kafka(ErrorCode(resp.error_code)));
        }
        let mut out = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let found = resp
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == *partition)
                .ok_or_else(|| {
                    GroupError::Protocol(format!("OffsetFetch omits {topic}-{partition}"))
                })?;
            if found.error_code != 0 {
                return Err(GroupError::Kafka(ErrorCode(found.error_code)));
            }
            let committed = (found.committed_offset >= 0).then(|| CommittedOffset {
                offset: found.committed_offset,
                metadata: found.metadata.as_ref().map(|m| m.as_str().to_owned()),
            });
            out.push(((topic.clone(), *partition), committed));
        }
        Ok(out)
    }

    /// DescribeGroups of this member's group.
    pub async fn describe(&mut self) -> Result<GroupDescription, GroupError> {
        let result = async {
            let conn = self.coordinator().await?;
            let version = conn.version_for(ApiKey::DescribeGroups, DESCRIBE_GROUPS_VERSIONS)?;
            let req = DescribeGroupsRequest::default().with_groups(vec![self.group_id()]);
            let resp = self.bounded("DescribeGroups", &conn, &req, version).await?;
            let group = resp
                .groups
                .first()
                .ok_or_else(|| GroupError::Protocol("DescribeGroups answered no group".into()))?;
            if group.error_code != 0 {
                return Err(GroupError::Kafka(ErrorCode(group.error_code)));
            }
            let mut members = Vec::with_capacity(group.members.len());
            for m in &group.members {
                let assignment = assignor::decode_assignment(&m.member_assignment)
                    .map_err(GroupError::Protocol)?;
                members.push((m.member_id.as_str().to_owned(), assignment));
            }
            Ok(GroupDescription {
                state: group.group_state.as_str().to_owned(),
                protocol: group.protocol_data.as_str().to_owned(),
                members,
            })
        }
        .await;
        self.noted(result)
    }

    /// LeaveGroup (dynamic members; a static member leaves only by its session timing out,
    /// as Kafka's consumer does on close). Forgets the member id and generation.
    pub async fn leave(&mut self) -> Result<(), GroupError> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let result = async {
            let conn = self.coordinator().await?;
            let version = conn.version_for(ApiKey::LeaveGroup, LEAVE_GROUP_VERSIONS)?;
            let req = LeaveGroupRequest::default()
                .with_group_id(self.group_id())
                .with_members(vec![
                    MemberIdentity::default()
                        .with_member_id(StrBytes::from_string(self.member_id.clone()))
                        .with_group_instance_id(self.instance_id()),
                ]);
            let resp = self.bounded("LeaveGroup", &conn, &req, version).await?;
            let code = resp
                .members
                .iter()
                .map(|m| m.error_code)
                .find(|c| *c != 0)
                .unwrap_or(resp.error_code);
            match ErrorCode(code) {
                code if code.is_ok() => Ok(()),
                code => Err(GroupError::Kafka(code)),
            }
        }
        .await;
        self.member_id.clear();
        self.generation = -1;
        result
    }

    /// `result`, after applying what its error means for the member's state.
    fn noted<T>(&mut self, result: Result<T, GroupError>) -> Result<T, GroupError> {
        if let Err(e) = &result {
            self.after_error(e);
        }
        result
    }

    /// What an error means for the member's state (see the module docs).
    fn after_error(&mut self, e: &GroupError) {
        match e.code() {
            Some(
                ErrorCode::NOT_COORDINATOR
                | ErrorCode::COORDINATOR_NOT_AVAILABLE
                | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            ) => self.forget_coordinator(),
            Some(ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::FENCED_INSTANCE_ID) => {
                self.member_id.clear();
                self.generation = -1;
            }
            Some(_) => {}
            None => {
                if !matches!(e, GroupError::Protocol(_)) {
                    self.forget_coordinator();
                }
            }
        }
    }

    /// A request bounded by `request.timeout.ms`; on timeout the connection is given up.
    async fn bounded<R: Request>(
        &self,
        what: &str,
        conn: &Connection,
        req: &R,
        version: i16,
    ) -> Result<R::Response, GroupError> {
        match tokio::time::timeout(self.config.request_timeout, conn.request(req, version)).await {
            Ok(r) => Ok(r?),
            Err(_) => {
                conn.close(&format!("{what} timed out"));
                Err(GroupError::Timeout(what.to_owned()))
            }
        }
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.config.group_id.clone()))
    }

    fn instance_id(&self) -> Option<StrBytes> {
        self.config
            .group_instance_id
            .as_ref()
            .map(|i| StrBytes::from_string(i.clone()))
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}
