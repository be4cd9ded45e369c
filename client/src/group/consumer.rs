//! A subscribing consumer: `subscribe()`, `poll()`, `commit()`, rebalance callbacks and static
//! membership, on a [`GroupMember`] for the protocol and the partition leaders for the data.
//!
//! Eager rebalancing as Kafka's `ConsumerCoordinator` runs it with the range assignor: before
//! joining again the consumer commits its positions (with auto-commit on), calls
//! [`RebalanceListener::on_partitions_revoked`] with everything it held, joins, reads the
//! committed offsets of its new assignment (`auto_offset_reset` where there are none), then calls
//! [`RebalanceListener::on_partitions_assigned`]. Heartbeats go out from `poll()` once per
//! `heartbeat.interval.ms`, so a caller must poll more often than the session timeout (Kafka's
//! background heartbeat thread is a later refinement; the simulator relies on this to pause a
//! member past its session).
//!
//! Each step is public ([`GroupConsumer::rejoin`], [`GroupConsumer::init_positions`],
//! [`GroupConsumer::heartbeat_if_due`], [`GroupConsumer::fetch`]) so that a workload can
//! record them one by one; [`GroupConsumer::poll`] runs them in order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_core::error::ErrorCode;
use tokio::time::Instant;

use super::member::{CommittedOffset, GroupError, GroupMember, Joined, MemberConfig};
use crate::admin::{Admin, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::consumer::{ConsumedRecord, FetchConfig, fetched_partitions, start_fetch};
use crate::metadata::Router;

/// Where a partition without a committed offset starts (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

/// A subscribing consumer's settings.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    pub member: MemberConfig,
    pub fetch: FetchConfig,
    /// `auto.offset.reset` (Kafka's default: latest).
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit`: commit positions every `auto_commit_interval`, before a
    /// rebalance and on close (Kafka's default: on, every 5 s).
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
}

impl GroupConsumerConfig {
    pub fn new(group_id: impl Into<String>) -> GroupConsumerConfig {
        GroupConsumerConfig {
            member: MemberConfig::new(group_id),
            fetch: FetchConfig {
                max_wait_ms: 500,
                ..FetchConfig::default()
            },
            auto_offset_reset: OffsetReset::Latest,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

/// Told about partitions leaving and joining this consumer (Kafka's
/// `ConsumerRebalanceListener`).
pub trait RebalanceListener: Send {
    fn on_partitions_revoked(&mut self, _partitions: &[(String, i32)]) {}
    fn on_partitions_assigned(&mut self, _partitions: &[(String, i32)]) {}
}

/// One record with the partition it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub record: ConsumedRecord,
}

/// One leader's connection and the (topic, partition, position)s fetched from it.
type LeaderFetch = (Arc<crate::connection::Connection>, Vec<(String, i32, i64)>);

/// A consumer in a group (see the module docs).
pub struct GroupConsumer {
    member: GroupMember,
    config: GroupConsumerConfig,
    topics: Vec<String>,
    /// What the last join assigned (sorted).
    assignment: Vec<(String, i32)>,
    /// The next offset to fetch, for every assigned partition once positions are set.
    positions: BTreeMap<(String, i32), i64>,
    joined: bool,
    positions_ready: bool,
    last_heartbeat: Option<Instant>,
    last_auto_commit: Option<Instant>,
    listener: Option<Box<dyn RebalanceListener>>,
}

impl GroupConsumer {
    pub fn new(bootstrap: &[String], config: GroupConsumerConfig) -> GroupConsumer {
        let router = Router::new(bootstrap, config.member.connection.clone(), 1)
            .with_request_timeout(config.member.request_timeout);
        GroupConsumer::with_router(Arc::new(router), config)
    }

    pub fn with_router(router: Arc<Router>, config: GroupConsumerConfig) -> GroupConsumer {
        GroupConsumer {
            member: GroupMember::new(router, config.member.clone()),
            config,
            topics: Vec::new(),
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            joined: false,
            positions_ready: false,
            last_heartbeat: None,
            last_auto_commit: None,
            listener: None,
        }
    }

    pub fn set_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// Subscribes to `topics` (replacing the subscription); the next poll joins.
    pub fn subscribe(&mut self, topics: &[&str]) {
        self.topics = topics.iter().map(|t| t.to_string()).collect();
        self.topics.sort();
        self.topics.dedup();
        self.joined = false;
    }

    pub fn member(&self) -> &GroupMember {
        &self.member
    }

    pub fn member_mut(&mut self) -> &mut GroupMember {
        &mut self.member
    }

    /// The partitions of the last join (sorted).
    pub fn assignment(&self) -> &[(String, i32)] {
        &self.assignment
    }

    /// The next offset `poll` fetches for a partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_owned(), partition)).copied()
    }

    /// Every assigned partition's position, as a commit would send them.
    pub fn positions(&self) -> Vec<(String, i32, i64)> {
        self.positions
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect()
    }

    /// True until a join succeeded for the current subscription, and again after the
    /// coordinator asked for a rebalance or fenced the member.
    pub fn needs_join(&self) -> bool {
        !self.joined
    }

    /// True when the assignment's starting positions are not read yet.
    pub fn needs_positions(&self) -> bool {
        self.joined && !self.positions_ready
    }

    /// Revokes everything held (committing positions first with auto-commit on) and joins.
    pub async fn rejoin(&mut self) -> Result<Joined, GroupError> {
        if !self.assignment.is_empty() {
            if self.config.auto_commit && !self.positions.is_empty() {
                // Best effort, as Kafka's `onJoinPrepare`: a fenced member's commit fails.
                if let Err(e) = self.commit().await {
                    tracing::debug!(error = %e, "commit before rebalance failed");
                }
            }
            let revoked = std::mem::take(&mut self.assignment);
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&revoked);
            }
        }
        self.positions.clear();
        self.positions_ready = false;
        self.joined = false;
        let joined = self.member.join(&self.topics, &[]).await?;
        self.assignment = joined.assignment.clone();
        self.joined = true;
        self.last_heartbeat = Some(Instant::now());
        Ok(joined)
    }

    /// Reads the committed offsets of the assignment and starts each partition there (or per
    /// `auto_offset_reset`). Returns what was read, for a workload to record.
    pub async fn init_positions(
        &mut self,
    ) -> Result<Vec<((String, i32), Option<CommittedOffset>)>, GroupError> {
        let committed = self.member.committed(&self.assignment).await?;
        let mut positions = BTreeMap::new();
        for ((topic, partition), c) in &committed {
            let position = match c {
                Some(c) => c.offset,
                None => self.reset_position(topic, *partition).await?,
            };
            positions.insert((topic.clone(), *partition), position);
        }
        self.positions = positions;
        self.positions_ready = true;
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_assigned(&self.assignment);
        }
        Ok(committed)
    }

    /// Heartbeats if `heartbeat.interval.ms` passed since the last one (or the join). An error
    /// that needs a rejoin marks the consumer for one; every error is returned.
    pub async fn heartbeat_if_due(&mut self) -> Result<(), GroupError> {
        let interval = Duration::from_millis(self.config.member.heartbeat_interval_ms);
        if self
            .last_heartbeat
            .is_some_and(|at| at.elapsed() < interval)
        {
            return Ok(());
        }
        let result = self.member.heartbeat().await;
        match &result {
            Ok(()) => self.last_heartbeat = Some(Instant::now()),
            Err(e) if e.needs_rejoin() => self.joined = false,
            Err(_) => {}
        }
        result
    }

    /// One fetch round of every assigned partition, from each partition's leader.
    pub async fn fetch(&mut self) -> Result<Vec<ConsumerRecord>, GroupError> {
        if self.positions.is_empty() {
            // Nothing assigned: wait as a fetch would, so a poll loop does not spin.
            let wait = u64::try_from(self.config.fetch.max_wait_ms).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            return Ok(Vec::new());
        }
        let router = Arc::clone(self.member.router());
        // Partitions by leader, each leader's fetch written before any answer is awaited.
        let mut by_leader: BTreeMap<i32, LeaderFetch> = BTreeMap::new();
        for ((topic, partition), offset) in &self.positions {
            match router.leader_connection(topic, *partition, 0).await {
                Ok((leader, conn)) => by_leader
                    .entry(leader)
                    .or_insert_with(|| (conn, Vec::new()))
                    .1
                    .push((topic.clone(), *partition, *offset)),
                Err(e) => {
                    tracing::debug!(topic, partition, error = %e, "no leader to fetch from");
                    router.invalidate().await;
                }
            }
        }
        let timeout = self.config.member.request_timeout
            + Duration::from_millis(u64::try_from(self.config.fetch.max_wait_ms).unwrap_or(0));
        let mut in_flight = Vec::new();
        for (conn, wanted) in by_leader.into_values() {
            let positions: Vec<(&str, i32, i64)> = wanted
                .iter()
                .map(|(t, p, o)| (t.as_str(), *p, *o))
                .collect();
            match start_fetch(&conn, &positions, &self.config.fetch).await {
                Ok(f) => in_flight.push((conn, wanted, f)),
                Err(e) => {
                    tracing::debug!(broker = conn.addr(), error = %e, "fetch not sent");
                    router.invalidate().await;
                }
            }
        }
        let mut out = Vec::new();
        for (conn, wanted, f) in in_flight {
            let resp = match tokio::time::timeout(timeout, f.wait()).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => {
                    tracing::debug!(broker = conn.addr(), error = %e, "fetch failed");
                    router.invalidate().await;
                    continue;
                }
                Err(_) => {
                    conn.close("Fetch timed out");
                    router.invalidate().await;
                    continue;
                }
            };
            let positions: BTreeMap<(String, i32), i64> =
                wanted.into_iter().map(|(t, p, o)| ((t, p), o)).collect();
            let fetched = match fetched_partitions(&resp, &positions) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(broker = conn.addr(), error = %e, "undecodable fetch");
                    continue;
                }
            };
            for part in fetched {
                let key = (part.topic.clone(), part.partition);
                if !self.positions.contains_key(&key) {
                    continue; // revoked meanwhile, or not asked for
                }
                match part.error {
                    ErrorCode::NONE => {}
                    ErrorCode::OFFSET_OUT_OF_RANGE => {
                        let reset = self.reset_position(&part.topic, part.partition).await?;
                        self.positions.insert(key, reset);
                        continue;
                    }
                    _ => {
                        router.invalidate().await;
                        continue;
                    }
                }
                if let Some(from) = self.positions.get_mut(&key) {
                    *from = crate::consumer::advanced(*from, &part);
                }
                out.extend(part.records.into_iter().map(|record| ConsumerRecord {
                    topic: part.topic.clone(),
                    partition: part.partition,
                    record,
                }));
            }
        }
        Ok(out)
    }

    /// Joins if needed, heartbeats if due, auto-commits if due, fetches. An error that needs
    /// a rejoin is not returned: the next poll rejoins (as Kafka's `poll` does).
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, GroupError> {
        if self.needs_join() {
            match self.rejoin().await {
                Ok(_) => {}
                Err(e) if e.needs_rejoin() => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        if self.needs_positions() {
            self.init_positions().await?;
        }
        match self.heartbeat_if_due().await {
            Ok(()) => {}
            Err(e) if e.needs_rejoin() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        if self.config.auto_commit
            && self
                .last_auto_commit
                .is_none_or(|at| at.elapsed() >= self.config.auto_commit_interval)
        {
            self.last_auto_commit = Some(Instant::now());
            if let Err(e) = self.commit().await {
                tracing::debug!(error = %e, "auto-commit failed");
                if e.needs_rejoin() {
                    self.joined = false;
                    return Ok(Vec::new());
                }
            }
        }
        self.fetch().await
    }

    /// Commits every assigned partition's position (no metadata).
    pub async fn commit(&mut self) -> Result<(), GroupError> {
        self.commit_with_metadata("").await
    }

    /// Commits every assigned partition's position with `metadata`.
    pub async fn commit_with_metadata(&mut self, metadata: &str) -> Result<(), GroupError> {
        let offsets = self.positions();
        if offsets.is_empty() {
            return Ok(());
        }
        let result = self.member.commit(&offsets, metadata).await;
        if let Err(e) = &result
            && e.needs_rejoin()
        {
            self.joined = false;
        }
        result
    }

    /// Commits (with auto-commit on) and leaves the group; a static member does not leave
    /// (its place waits for it until its session times out, KIP-345).
    pub async fn close(mut self) -> Result<(), GroupError> {
        if self.config.auto_commit
            && self.joined
            && let Err(e) = self.commit().await
        {
            tracing::debug!(error = %e, "commit on close failed");
        }
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_revoked(&self.assignment);
        }
        if self.config.member.group_instance_id.is_some() {
            return Ok(());
        }
        self.member.leave().await
    }

    /// Where a partition without a committed offset (or out of range) starts. (Borrows
    /// nothing of `self` across an await, so the consumer need not be `Sync`.)
    fn reset_position(
        &self,
        topic: &str,
        partition: i32,
    ) -> impl std::future::Future<Output = Result<i64, GroupError>> + Send + 'static {
        let timestamp = match self.config.auto_offset_reset {
            OffsetReset::Earliest => EARLIEST_TIMESTAMP,
            OffsetReset::Latest => LATEST_TIMESTAMP,
        };
        let router = Arc::clone(self.member.router());
        let timeout = self.config.member.request_timeout;
        let topic = topic.to_owned();
        async move { list_reset_offset(router, &topic, partition, timestamp, timeout).await }
    }
}

async fn list_reset_offset(
    router: Arc<Router>,
    topic: &str,
    partition: i32,
    timestamp: i64,
    timeout: Duration,
) -> Result<i64, GroupError> {
    let (_, conn) = router.leader_connection(topic, partition, 0).await?;
    let admin = Admin::new(&conn);
    let lookup = admin.list_offset(topic, partition, timestamp);
    match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok((offset, _))) => Ok(offset.max(0)),
        Ok(Err(e)) => {
            router.invalidate().await;
            Err(GroupError::Router(e.into()))
        }
        Err(_) => {
            conn.close("ListOffsets timed out");
            Err(GroupError::Timeout("ListOffsets".to_owned()))
        }
    }
}
