//! Tests of the group coordinator: a small driver ([`Harness`]) that appends every output's
//! records to an in-memory log and commits them (moves the high watermark) when told, then
//! the flows (`flows.rs`), offsets and admin (`offsets.rs`), snapshots (`snapshot.rs`), and a
//! proptest over random request and timer sequences (`prop.rs`).

pub(super) mod findings;
mod flows;
mod offsets;
mod prop;
mod snapshot;

use std::collections::BTreeMap;

use bytes::Bytes;

use super::*;

pub(super) struct Harness {
    pub c: GroupCoordinator,
    pub now: Now,
    /// Every appended batch: (last offset, records).
    pub log: Vec<(Offset, Vec<GroupRecord>)>,
    pub log_end: i64,
    /// The high watermark last passed to the coordinator.
    hw: i64,
    /// Move the high watermark to the log end after every append.
    pub auto_commit: bool,
    pub replies: BTreeMap<RequestId, Response>,
    /// Every `superseded_below` reported, in order.
    pub superseded: Vec<Offset>,
    /// Fail the next append (NOT_ENOUGH_REPLICAS) instead of making it.
    pub fail_next_append: bool,
    next_id: u64,
}

pub(super) fn config() -> GroupConfig {
    GroupConfig::default()
}

pub(super) const SESSION_MS: i32 = 10_000;
pub(super) const REBALANCE_MS: i32 = 20_000;

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(config())
    }

    pub fn with_config(config: GroupConfig) -> Harness {
        Harness::loaded(config, Vec::new())
    }

    /// A coordinator that loaded `records` (one committed batch, as read from the log).
    pub fn loaded(config: GroupConfig, records: Vec<GroupRecord>) -> Harness {
        let mut c = GroupCoordinator::new(config, LeaderEpoch(1), 42);
        let now = Now {
            instant: Instant::from_millis(1_000),
            wall_ms: 1_700_000_000_000,
        };
        let mut log = Vec::new();
        let log_end = records.len() as i64;
        if !records.is_empty() {
            c.replay(Offset(log_end - 1), &records);
            log.push((Offset(log_end - 1), records));
        }
        let out = c.on_loaded(now, Offset(log_end));
        let mut h = Harness {
            c,
            now,
            log,
            log_end,
            hw: log_end,
            auto_commit: true,
            replies: BTreeMap::new(),
            superseded: Vec::new(),
            fail_next_append: false,
            next_id: 0,
        };
        h.absorb(out);
        h
    }

    /// Sends the output's replies to the mailbox and appends its records.
    pub fn absorb(&mut self, out: Output) {
        if let Some(below) = out.superseded_below {
            assert!(
                below.0 <= self.high_watermark(),
                "only committed offsets are superseded"
            );
            self.superseded.push(below);
        }
        for (id, response) in out.replies {
            assert!(
                self.replies.insert(id, response).is_none(),
                "one reply per request ({id:?})"
            );
        }
        if !out.records.is_empty() && self.fail_next_append {
            self.fail_next_append = false;
            let out = self
                .c
                .on_append_failed(self.now, ErrorCode::NOT_ENOUGH_REPLICAS);
            self.absorb(out);
            return;
        }
        for record in &out.records {
            // As the driver would: every record the coordinator writes encodes, and reads back
            // the same (pair assertion).
            let key = record.encode_key();
            let value = record.encode_value();
            assert_eq!(
                GroupRecord::decode(&key, value.as_deref()).as_ref(),
                Ok(record),
                "a written record reads back the same"
            );
        }
        if !out.records.is_empty() {
            self.log_end += out.records.len() as i64;
            let last = Offset(self.log_end - 1);
            self.c.replay(last, &out.records);
            self.log.push((last, out.records));
            if self.auto_commit {
                self.commit_all();
            }
        }
    }

    /// The high watermark the coordinator was last told.
    pub fn high_watermark(&self) -> i64 {
        self.hw
    }

    pub fn commit_to(&mut self, high_watermark: i64) {
        self.hw = self.hw.max(high_watermark);
        let out = self.c.on_high_watermark(self.now, Offset(high_watermark));
        self.absorb(out);
    }

    pub fn commit_all(&mut self) {
        self.commit_to(self.log_end);
    }

    pub fn send(&mut self, request: Request) -> RequestId {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        let out = self.c.handle(self.now, id, request);
        self.absorb(out);
        id
    }

    /// Moves time forward by `ms`, firing every deadline on the way, in order.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now.instant.saturating_add_millis(ms);
        loop {
            let next = self.c.next_deadline().filter(|d| *d <= target);
            let to = next.unwrap_or(target);
            let delta_ms = (to.0 - self.now.instant.0) / 1_000_000;
            self.now.instant = to;
            self.now.wall_ms += delta_ms as i64;
            if next.is_none() {
                break;
            }
            let out = self.c.tick(self.now);
            self.absorb(out);
        }
    }

    pub fn take(&mut self, id: RequestId) -> Option<Response> {
        self.replies.remove(&id)
    }

    pub fn join_reply(&mut self, id: RequestId) -> JoinGroupResponse {
        match self.take(id) {
            Some(Response::JoinGroup(r)) => r,
            other => panic!("expected a JoinGroup reply for {id:?}, got {other:?}"),
        }
    }

    pub fn sync_reply(&mut self, id: RequestId) -> SyncGroupResponse {
        match self.take(id) {
            Some(Response::SyncGroup(r)) => r,
            other => panic!("expected a SyncGroup reply for {id:?}, got {other:?}"),
        }
    }

    pub fn join(&mut self, group: &str, member_id: &str, version: i16) -> RequestId {
        self.send(join_request(group, member_id, None, version, &["range"]))
    }

    /// A dynamic member's full KIP-394 dance; returns its parked join.
    pub fn join_new(&mut self, group: &str) -> (String, RequestId) {
        let first = self.join(group, "", 5);
        let r = self.join_reply(first);
        assert_eq!(r.error_code, ErrorCode::MEMBER_ID_REQUIRED);
        let id = self.join(group, &r.member_id, 5);
        (r.member_id, id)
    }

    pub fn sync(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> RequestId {
        self.send(Request::SyncGroup(SyncGroup {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        }))
    }

    pub fn heartbeat(&mut self, group: &str, member: &str, generation: i32) -> ErrorCode {
        let id = self.send(Request::Heartbeat(Heartbeat {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
        }));
        match self.take(id) {
            Some(Response::Heartbeat(e)) => e,
            other => panic!("heartbeat reply: {other:?}"),
        }
    }

    /// A Stable group of `n` dynamic members, each assigned its own id as bytes; returns the
    /// member ids (the leader first) and the generation.
    pub fn stable_group(&mut self, group: &str, n: usize) -> (Vec<String>, i32) {
        let joins: Vec<(String, RequestId)> = (0..n).map(|_| self.join_new(group)).collect();
        // Each joiner during the initial delay extends it (KIP-134).
        while !self.replies.contains_key(&joins[0].1) {
            self.advance(1_000);
        }
        let replies: Vec<JoinGroupResponse> =
            joins.iter().map(|(_, id)| self.join_reply(*id)).collect();
        let leader = replies[0].leader.clone();
        let generation = replies[0].generation_id;
        let mut members: Vec<String> = joins.iter().map(|(m, _)| m.clone()).collect();
        members.sort_by_key(|m| *m != leader);
        let assignments: Vec<(String, Bytes)> = members
            .iter()
            .map(|m| (m.clone(), Bytes::from(m.clone())))
            .collect();
        let mut syncs = Vec::new();
        for m in &members {
            let mine = if *m == leader {
                assignments.clone()
            } else {
                Vec::new()
            };
            syncs.push(self.sync(group, m, generation, mine));
        }
        for (m, id) in members.iter().zip(syncs) {
            let r = self.sync_reply(id);
            assert_eq!(r.error_code, ErrorCode::NONE);
            assert_eq!(r.assignment, Bytes::from(m.clone()));
        }
        assert_eq!(self.c.group_state(group), Some(GroupState::Stable));
        (members, generation)
    }

    pub fn commit(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> RequestId {
        self.send(Request::OffsetCommit(commit_request(
            group, generation, member, topic, partition, offset,
        )))
    }

    pub fn commit_error(&mut self, id: RequestId) -> Option<ErrorCode> {
        match self.take(id)? {
            Response::OffsetCommit(r) => Some(r.topics[0].1[0].1),
            other => panic!("commit reply: {other:?}"),
        }
    }

    pub fn fetch(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        require_stable: bool,
    ) -> FetchedPartition {
        let id = self.send(Request::OffsetFetch(OffsetFetch {
            groups: vec![FetchGroup {
                group_id: group.into(),
                topics: Some(vec![(topic.into(), vec![partition])]),
            }],
            require_stable,
        }));
        match self.take(id) {
            Some(Response::OffsetFetch(mut r)) => r.groups.remove(0).topics.remove(0).1.remove(0),
            other => panic!("fetch reply: {other:?}"),
        }
    }

    /// A fresh coordinator that loads this log: load = replay.
    pub fn reload(&self) -> GroupCoordinator {
        self.reload_from(Offset::ZERO)
    }

    /// The first offset of every batch in the log: where a log start can be (segments start
    /// at batch boundaries).
    pub fn batch_starts(&self) -> Vec<Offset> {
        self.log
            .iter()
            .map(|(last, records)| Offset(last.0 + 1 - records.len() as i64))
            .collect()
    }

    /// A fresh coordinator that loads the batches at or after `start` (a log whose start moved
    /// there).
    pub fn reload_from(&self, start: Offset) -> GroupCoordinator {
        let mut c = GroupCoordinator::new(self.c.config().clone(), LeaderEpoch(2), 7);
        let batches = self.batch_starts().into_iter().zip(&self.log);
        for (_, (last, records)) in batches.filter(|(first, _)| *first >= start) {
            // Through the bytes, as a load from the partition would.
            let decoded: Vec<GroupRecord> = records
                .iter()
                .map(|r| GroupRecord::decode(&r.encode_key(), r.encode_value().as_deref()).unwrap())
                .collect();
            c.replay(*last, &decoded);
        }
        let _ = c.on_loaded(self.now, Offset(self.log_end));
        c
    }
}

pub(super) fn join_request(
    group: &str,
    member_id: &str,
    instance: Option<&str>,
    version: i16,
    protocols: &[&str],
) -> Request {
    Request::JoinGroup(JoinGroup {
        api_version: version,
        group_id: group.into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        member_id: member_id.into(),
        group_instance_id: instance.map(Into::into),
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| Protocol {
                name: (*p).into(),
                metadata: subscription(&["t"]),
            })
            .collect(),
        client_id: "client".into(),
        client_host: "/10.0.0.1".into(),
    })
}

/// A `ConsumerProtocolSubscription` v0 for `topics`.
pub(super) fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

pub(super) fn commit_request(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommit {
    OffsetCommit {
        api_version: 9,
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        topics: vec![CommitTopic {
            name: topic.into(),
            partitions: vec![CommitPartition {
                partition,
                offset,
                leader_epoch: 3,
                metadata: Some("m".into()),
            }],
        }],
    }
}

#[test]
fn partition_for_is_javas_hash() {
    assert_eq!(partition_for("test", 50), 48);
    assert_eq!(partition_for("my-group", 50), 12);
    assert_eq!(partition_for("console-consumer-12345", 50), 6);
    assert_eq!(partition_for("é", 50), 33);
    assert_eq!(partition_for("", 50), 0);
}
