//! The follower's side of a fetch session (KIP-227) with one leader: Kafka's
//! `FetchSessionHandler`. Sans-IO: the fetcher asks [`FollowerSession::plan`] what the next
//! Fetch lists, and reports how it ended ([`FollowerSession::on_answer`],
//! [`FollowerSession::on_failure`]).
//!
//! - The first request is full (session epoch 0, every partition): the leader answers with a new
//!   session id, or 0 when it has no slot (the next request then tries again).
//! - Later requests are incremental (the session's next epoch): they list only the partitions
//!   whose [`Position`] changed since the leader last accepted it, or that are new, and forget
//!   those this fetcher no longer fetches. The position includes our durable end (the tag
//!   `DURABLE_END_TAG`): a flush that moves it without moving the fetch offset resends the
//!   partition, so the leader always counts our latest durable end (acks=-1, ISR expansion).
//! - Any failure (no answer, a session error, an answer that names another session) makes the
//!   next request full again, closing our old session (its id with epoch 0), as Kafka's handler
//!   does.
//!
//! Invariant: `sent` is exactly what the leader's session holds for us — it changes only when
//! an answer shows the leader accepted the request that listed it (no error, our session id).

use std::collections::BTreeMap;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use strata_core::ErrorCode;

use crate::fetch_session::{next_epoch, with_durable_end};
use crate::handlers::topic_name;

/// A partition: topic name and index.
pub type Key = (String, i32);

/// What a fetch request says of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    pub current_leader_epoch: i32,
    pub partition_max_bytes: i32,
    /// Our durable log end, sent in `DURABLE_END_TAG`.
    pub durable_end: i64,
}

impl Position {
    fn to_request(&self, partition: i32) -> FetchPartition {
        let p = FetchPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(self.current_leader_epoch)
            .with_fetch_offset(self.fetch_offset)
            .with_log_start_offset(self.log_start_offset)
            .with_partition_max_bytes(self.partition_max_bytes);
        with_durable_end(p, self.durable_end)
    }
}

/// Our session with one leader.
#[derive(Debug, Default)]
pub struct FollowerSession {
    /// The leader's id for our session; 0 while we have none.
    id: i32,
    /// The epoch of the next request; 0 makes it full.
    next_epoch: i32,
    /// What the leader's session holds for each of our partitions.
    sent: BTreeMap<Key, Position>,
}

/// The session part of one Fetch request.
#[derive(Debug)]
pub struct SessionPlan {
    pub session_id: i32,
    pub session_epoch: i32,
    /// The partitions the request lists.
    pub topics: Vec<FetchTopic>,
    pub forgotten: Vec<ForgottenTopic>,
    /// Every partition fetched, listed or not: `sent` once the leader accepts.
    wanted: BTreeMap<Key, Position>,
}

impl SessionPlan {
    /// How many partitions the request lists.
    pub fn listed(&self) -> usize {
        self.topics.iter().map(|t| t.partitions.len()).sum()
    }
}

impl FollowerSession {
    /// The next request for `wanted` (every partition this fetcher fetches).
    pub fn plan(&self, wanted: BTreeMap<Key, Position>) -> SessionPlan {
        let full = self.next_epoch == 0;
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (key, position) in &wanted {
            if full || self.sent.get(key) != Some(position) {
                topics
                    .entry(key.0.as_str())
                    .or_default()
                    .push(position.to_request(key.1));
            }
        }
        let mut forgotten: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        if !full {
            for key in self.sent.keys().filter(|k| !wanted.contains_key(*k)) {
                forgotten.entry(key.0.as_str()).or_default().push(key.1);
            }
        }
        SessionPlan {
            session_id: self.id,
            session_epoch: self.next_epoch,
            topics: topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
            forgotten: forgotten
                .into_iter()
                .map(|(t, ps)| {
                    ForgottenTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
            wanted,
        }
    }

    /// The leader answered `plan`'s request with top-level `error` and `session_id`. Returns
    /// whether the answer's partitions may be applied (false: a session error, nothing to
    /// apply; the next request is full).
    pub fn on_answer(&mut self, plan: SessionPlan, error: ErrorCode, session_id: i32) -> bool {
        if error == ErrorCode::FETCH_SESSION_ID_NOT_FOUND {
            *self = FollowerSession::default();
            return false;
        }
        if error != ErrorCode::NONE {
            self.on_failure();
            return false;
        }
        if plan.session_epoch == 0 {
            // Full: a new session, or none (no slot; try again next time).
            self.id = session_id;
            self.next_epoch = if session_id > 0 { 1 } else { 0 };
            self.sent = if session_id > 0 {
                plan.wanted
            } else {
                BTreeMap::new()
            };
        } else if session_id == self.id {
            self.next_epoch = next_epoch(plan.session_epoch);
            self.sent = plan.wanted;
        } else {
            // The leader answered outside our session (it closed it): start over. The
            // partitions it listed are still answers to what we asked.
            *self = FollowerSession::default();
        }
        true
    }

    /// The request got no answer (connection lost, timeout): the next one is full and closes
    /// our session.
    pub fn on_failure(&mut self) {
        self.next_epoch = 0;
        self.sent.clear();
    }
}

#[cfg(test)]
#[path = "tests/fetch_session.rs"]
mod tests;
