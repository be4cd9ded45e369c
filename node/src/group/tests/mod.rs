//! The group APIs through dispatch on an in-memory single-node broker: the translation from
//! `kafka-protocol` messages to the coordinator and back, in both encodings, and the node's
//! own parts (topic checks, the offsets topic, load by replay after a restart).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strata_core::ErrorCode;
use strata_core::storage::MemStorage;

use super::OFFSETS_TOPIC;
use crate::broker::Broker;
use crate::config::Config;
use crate::dispatch::tests::round_trip;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn open(storage: &MemStorage) -> Arc<Broker> {
    open_with(storage, &[])
}

/// A broker on `storage` with `settings` on top of the tests' defaults.
fn open_with(storage: &MemStorage, settings: &[(&str, &str)]) -> Arc<Broker> {
    let mut config = Config::default()
        .with("log.dirs", "/mem")
        .and_then(|c| c.with("group.initial.rebalance.delay.ms", "0"))
        .and_then(|c| c.with("offsets.topic.num.partitions", "5"))
        .expect("config");
    for (name, value) in settings {
        config = config.with(name, value).expect("setting");
    }
    let broker = Broker::open(config, Arc::new(storage.clone())).expect("open");
    broker.start_flushers();
    broker
}

async fn find(broker: &Arc<Broker>, version: i16, key: &str) -> FindCoordinatorResponse {
    round_trip(
        broker,
        ApiKey::FindCoordinator,
        version,
        &FindCoordinatorRequest::default().with_key(s(key)),
    )
    .await
}

fn join(member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"sub")),
        ])
}

fn commit(generation: i32, member_id: &str, topic: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(7)
                        .with_committed_offset(offset),
                ]),
        ])
}

/// Offsets of group "g" for t/0 with OffsetFetch v`version` (v1–7 shape).
async fn fetch_v7(broker: &Arc<Broker>, version: i16) -> OffsetFetchResponse {
    round_trip(
        broker,
        ApiKey::OffsetFetch,
        version,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0]),
            ])),
    )
    .await
}

/// FindCoordinator creates the offsets topic and names this broker, one key (v0–3) or a batch
/// (v4+, KIP-699); transaction keys are refused.
#[tokio::test]
async fn find_coordinator_creates_the_offsets_topic() {
    let broker = open(&MemStorage::new());
    let r = find(&broker, 2, "g").await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.node_id.0, 1);
    assert_eq!(
        broker
            .topic(OFFSETS_TOPIC)
            .expect("created")
            .partitions
            .len(),
        5
    );
    let r: FindCoordinatorResponse = round_trip(
        &broker,
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s("a"), s("b")]),
    )
    .await;
    assert_eq!(r.coordinators.len(), 2);
    assert!(
        r.coordinators
            .iter()
            .all(|c| c.error_code == 0 && c.node_id.0 == 1)
    );
    let r: FindCoordinatorResponse = round_trip(
        &broker,
        ApiKey::FindCoordinator,
        6,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s("txn")]),
    )
    .await;
    assert_eq!(
        r.coordinators[0].error_code,
        ErrorCode::UNSUPPORTED_VERSION.0
    );
    // Clients cannot write the offsets topic.
    let batch = strata_core::batch::build_batch(&[(b"v", None)], 5);
    let produced: ProduceResponse = round_trip(
        &broker,
        ApiKey::Produce,
        8,
        &ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(s(OFFSETS_TOPIC)))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(batch))),
                    ]),
            ]),
    )
    .await;
    assert_eq!(
        produced.responses[0].partition_responses[0].error_code,
        ErrorCode::INVALID_TOPIC_EXCEPTION.0
    );
}

/// A whole group life through dispatch: KIP-394 join, sync, heartbeat, commits (unknown
/// partitions refused by the node), fetches in the single-group and batched shapes, the admin
/// APIs, a v1 leave, delete; then a restart that loads the committed offsets by replay.
#[tokio::test]
async fn group_life_and_reload() {
    let storage = MemStorage::new();
    let broker = open(&storage);
    broker
        .create_topic("t", 1, Default::default(), false)
        .expect("topic");
    assert_eq!(find(&broker, 3, "g").await.error_code, 0);

    // A request for a group before any coordinator exists answers in its own shape.
    let first: JoinGroupResponse = round_trip(&broker, ApiKey::JoinGroup, 5, &join("")).await;
    let first = if first.error_code == ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        round_trip(&broker, ApiKey::JoinGroup, 5, &join("")).await
    } else {
        first
    };
    assert_eq!(first.error_code, ErrorCode::MEMBER_ID_REQUIRED.0);
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let joined: JoinGroupResponse = round_trip(&broker, ApiKey::JoinGroup, 6, &join(&member)).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);

    let synced: SyncGroupResponse = round_trip(
        &broker,
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(1)
            .with_member_id(s(&member))
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(Bytes::from_static(b"t-0")),
            ]),
    )
    .await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"t-0");

    let hb: HeartbeatResponse = round_trip(
        &broker,
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(1)
            .with_member_id(s(&member)),
    )
    .await;
    assert_eq!(hb.error_code, 0);

    let committed: OffsetCommitResponse = round_trip(
        &broker,
        ApiKey::OffsetCommit,
        8,
        &commit(1, &member, "t", 42),
    )
    .await;
    let codes: Vec<(i32, i16)> = committed.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![(0, 0), (7, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0)]
    );
    let stale: OffsetCommitResponse = round_trip(
        &broker,
        ApiKey::OffsetCommit,
        2,
        &commit(0, &member, "t", 1),
    )
    .await;
    assert_eq!(
        stale.topics[0].partitions[0].error_code,
        ErrorCode::ILLEGAL_GENERATION.0
    );
    let unknown: OffsetCommitResponse = round_trip(
        &broker,
        ApiKey::OffsetCommit,
        9,
        &commit(1, &member, "nope", 1),
    )
    .await;
    assert!(
        unknown.topics[0]
            .partitions
            .iter()
            .all(|p| p.error_code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0)
    );

    for version in [1, 5, 7] {
        let f = fetch_v7(&broker, version).await;
        assert_eq!(f.error_code, 0, "v{version}");
        assert_eq!(f.topics[0].partitions[0].committed_offset, 42, "v{version}");
    }
    let batched: OffsetFetchResponse = round_trip(
        &broker,
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0]),
                ])),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("other")))
                .with_topics(None),
        ]),
    )
    .await;
    assert_eq!(batched.groups.len(), 2);
    assert_eq!(batched.groups[0].group_id.as_str(), "g");
    assert_eq!(
        batched.groups[0].topics[0].partitions[0].committed_offset,
        42
    );
    assert_eq!(batched.groups[1].group_id.as_str(), "other");
    assert!(batched.groups[1].topics.is_empty());

    let listed: ListGroupsResponse = round_trip(
        &broker,
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default(),
    )
    .await;
    assert_eq!(listed.error_code, 0);
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_state.as_str(), "Stable");
    let described: DescribeGroupsResponse = round_trip(
        &broker,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
    )
    .await;
    assert_eq!(described.groups[0].members.len(), 1);
    assert_eq!(described.groups[0].protocol_data.as_str(), "range");

    // v1: one member, one error, no member list.
    let left: LeaveGroupResponse = round_trip(
        &broker,
        ApiKey::LeaveGroup,
        1,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(&member)),
    )
    .await;
    assert_eq!(left.error_code, 0);
    let again: LeaveGroupResponse = round_trip(
        &broker,
        ApiKey::LeaveGroup,
        5,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_members(vec![MemberIdentity::default().with_member_id(s(&member))]),
    )
    .await;
    assert_eq!(again.members[0].error_code, ErrorCode::UNKNOWN_MEMBER_ID.0);

    // Restart: the committed offset comes back by replay.
    drop(broker);
    let broker = open(&storage);
    let mut fetched = fetch_v7(&broker, 7).await;
    for _ in 0..100 {
        if fetched.error_code != ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        fetched = fetch_v7(&broker, 7).await;
    }
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, 42);

    let deleted_offsets: OffsetDeleteResponse = round_trip(
        &broker,
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0),
                    ]),
            ]),
    )
    .await;
    assert_eq!(deleted_offsets.error_code, 0);
    assert_eq!(deleted_offsets.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        fetch_v7(&broker, 7).await.topics[0].partitions[0].committed_offset,
        -1
    );
    let deleted: DeleteGroupsResponse = round_trip(
        &broker,
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g")), GroupId(s("x"))]),
    )
    .await;
    assert_eq!(deleted.results[0].error_code, 0);
    assert_eq!(
        deleted.results[1].error_code,
        ErrorCode::GROUP_ID_NOT_FOUND.0
    );
}

/// The offsets partition's leadership ends while a commit waits for the high watermark (its
/// flusher stopped, so nothing becomes durable): the parked reply fails with NOT_COORDINATOR,
/// requests meanwhile get NOT_COORDINATOR, and leading again reloads the coordinator.
#[tokio::test]
async fn losing_leadership_fails_parked_commits_and_unloads() {
    use strata_core::replica::Role;
    let broker = open(&MemStorage::new());
    broker
        .create_topic("t", 1, Default::default(), false)
        .expect("topic");
    assert_eq!(find(&broker, 3, "g").await.error_code, 0);
    let partition =
        super::GroupCoordinators::partition_of(broker.as_ref(), "g").expect("partition");
    let offsets = broker
        .partition(OFFSETS_TOPIC, partition)
        .expect("offsets partition");
    // Wait until the coordinator is loaded (a fetch answers without error).
    for _ in 0..100 {
        if fetch_v7(&broker, 7).await.error_code == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    offsets.stop();
    let pending = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let r: OffsetCommitResponse =
                round_trip(&broker, ApiKey::OffsetCommit, 8, &commit(-1, "", "t", 5)).await;
            r
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !pending.is_finished(),
        "the commit waits for the high watermark"
    );
    offsets.set_role(Role::Remote {
        leader: None,
        leader_epoch: 1,
    });
    let r = pending.await.expect("the commit task");
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::NOT_COORDINATOR.0
    );
    assert_eq!(
        fetch_v7(&broker, 7).await.error_code,
        ErrorCode::NOT_COORDINATOR.0
    );
    // Leading again: a new coordinator loads the log (the unacknowledged commit was appended,
    // so it is there once the high watermark passes it) and answers.
    offsets.set_role(Role::Sole);
    let mut fetched = fetch_v7(&broker, 7).await;
    for _ in 0..100 {
        if fetched.error_code == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        fetched = fetch_v7(&broker, 7).await;
    }
    assert_eq!(
        fetched.error_code,
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0,
        "the reloaded coordinator waits for the high watermark to reach the log end (the \
         stopped flusher never moves it)"
    );
}

/// A standalone commit (generation -1) to group "g" of `offsets[p]` for t/`p`.
fn commit_all(offsets: &[i64]) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(
                    offsets
                        .iter()
                        .enumerate()
                        .map(|(p, offset)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p as i32)
                                .with_committed_offset(*offset)
                        })
                        .collect(),
                ),
        ])
}

/// Group "g"'s committed offsets of t/0..t/`n`, once its coordinator answers.
async fn committed(broker: &Arc<Broker>, n: i32) -> Vec<i64> {
    for _ in 0..200 {
        let r: OffsetFetchResponse = round_trip(
            broker,
            ApiKey::OffsetFetch,
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes((0..n).collect()),
                ])),
        )
        .await;
        if r.error_code == ErrorCode::NONE.0 {
            return r.topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the coordinator never answered");
}

/// (segments, bytes, log start offset) of group "g"'s offsets partition.
fn offsets_log(broker: &Arc<Broker>) -> (usize, u64, i64) {
    let partition =
        super::GroupCoordinators::partition_of(broker.as_ref(), "g").expect("partition");
    let p = broker
        .partition(OFFSETS_TOPIC, partition)
        .expect("offsets partition");
    let guard = p.log();
    let log = guard.as_ref().expect("a log");
    (
        log.segment_count(),
        log.size_bytes(),
        log.log_start_offset().0,
    )
}

/// The offsets topic stays bounded (GitHub issue: "the offsets topic must not grow without
/// bound"): with 1 KiB segments and a snapshot every 30 records, 1,500 commits of the same three
/// partitions (1,500 batches of three records, which would fill hundreds of such segments) never
/// leave more than a few (4, and 3 KB, when written), while OffsetFetch answers the latest
/// offsets; a restart loads them by replay from the moved log start.
#[tokio::test]
async fn the_offsets_topic_stays_bounded_and_reloads_the_latest_offsets() {
    let settings = [
        ("offsets.topic.segment.bytes", "1024"),
        ("offsets.snapshot.min.records", "30"),
    ];
    let storage = MemStorage::new();
    let broker = open_with(&storage, &settings);
    broker
        .create_topic("t", 3, Default::default(), false)
        .expect("topic");
    assert_eq!(find(&broker, 3, "g").await.error_code, 0);
    committed(&broker, 3).await; // loaded
    let mut most = (0, 0);
    let mut latest = vec![0; 3];
    for i in 0..1_500i64 {
        latest = vec![i * 10, i * 10 + 1, i * 10 + 2];
        let r: OffsetCommitResponse =
            round_trip(&broker, ApiKey::OffsetCommit, 8, &commit_all(&latest)).await;
        assert!(
            r.topics[0].partitions.iter().all(|p| p.error_code == 0),
            "commit {i}: {r:?}"
        );
        let (segments, bytes, _) = offsets_log(&broker);
        most = (most.0.max(segments), most.1.max(bytes));
    }
    assert_eq!(committed(&broker, 3).await, latest);
    let (segments, bytes, log_start) = offsets_log(&broker);
    assert!(log_start > 1_000, "the log start moved: {log_start}");
    assert!(
        most.0 <= 6 && most.1 <= 6 * 1024,
        "at most {} segments and {} bytes at any time, now {segments} and {bytes}",
        most.0,
        most.1
    );

    // A clean restart: the coordinator loads from the log start, and the offsets are there.
    broker.groups.shutdown();
    assert!(broker.flush_all().await);
    drop(broker);
    let broker = open_with(&storage, &settings);
    assert_eq!(offsets_log(&broker).2, log_start, "the log start survives");
    assert_eq!(committed(&broker, 3).await, latest);
}

/// `__consumer_offsets` is compacted (issue #16, as Kafka's): created with
/// `cleanup.policy=compact`, and with the coordinator's snapshots out of the way, a cleaner
/// round over 600 commits of the same three partitions (600 batches, dozens of 1 KiB segments)
/// leaves the partition a small fraction of what was written; the coordinator still answers
/// the latest offsets, and after a restart loads exactly them from the cleaned log.
#[tokio::test]
async fn the_offsets_topic_is_compacted_and_loads_the_latest_offsets_after_cleaning() {
    let settings = [
        ("offsets.topic.segment.bytes", "1024"),
        ("offsets.snapshot.min.records", "1000000"),
    ];
    let storage = MemStorage::new();
    let broker = open_with(&storage, &settings);
    broker
        .create_topic("t", 3, Default::default(), false)
        .expect("topic");
    assert_eq!(find(&broker, 3, "g").await.error_code, 0);
    committed(&broker, 3).await; // loaded
    let compacted = |broker: &Arc<Broker>| {
        let partition =
            super::GroupCoordinators::partition_of(broker.as_ref(), "g").expect("partition");
        let p = broker.partition(OFFSETS_TOPIC, partition).expect("offsets");
        let guard = p.log();
        guard.as_ref().expect("a log").config().cleanup_policy
    };
    assert!(compacted(&broker).compact && !compacted(&broker).delete);
    let mut latest = vec![0; 3];
    for i in 0..600i64 {
        latest = vec![i * 10, i * 10 + 1, i * 10 + 2];
        let r: OffsetCommitResponse =
            round_trip(&broker, ApiKey::OffsetCommit, 8, &commit_all(&latest)).await;
        assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 0));
    }
    let (segments, written, log_start) = offsets_log(&broker);
    assert_eq!(log_start, 0, "no snapshot deleted anything");
    assert!(segments > 20, "{segments} segments");

    // The cleaner takes only what the recovery checkpoint on disk says is durable (the
    // server's checkpoint loop writes it).
    assert!(broker.flush_all().await);
    broker.checkpoint_recovery_points(false);
    let (_stop_tx, mut stop) = crate::sync::watch::channel(false);
    crate::cleaner::clean_round(&broker, &broker.config.cleaner, &mut stop).await;
    let (_, cleaned, _) = offsets_log(&broker);
    println!(
        "__consumer_offsets: {segments} segments, {written} bytes before cleaning, {cleaned} after"
    );
    // What stays: the active segment (at most 1 KiB), and per cleaned segment the latest of
    // each of the few keys (rewritten into one batch each).
    assert!(
        cleaned * 4 < written,
        "{written} bytes before cleaning, {cleaned} after"
    );
    assert_eq!(committed(&broker, 3).await, latest);

    broker.groups.shutdown();
    assert!(broker.flush_all().await);
    drop(broker);
    let broker = open_with(&storage, &settings);
    assert_eq!(
        offsets_log(&broker).1,
        cleaned,
        "the cleaned log is what reopens"
    );
    assert_eq!(committed(&broker, 3).await, latest);
}
