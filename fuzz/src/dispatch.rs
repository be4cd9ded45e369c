//! `dispatch`: a request frame through the node's own header decoding and request dispatch — the
//! code a connection runs on every frame it reads — in memory (no sockets), against a broker over
//! `MemStorage`. The frame is arbitrary bytes after the length prefix; the seeds are valid
//! requests of every API key and version we advertise.
//!
//! Properties, beyond "no panic":
//! - every request that decodes encodes again to bytes that decode to the same request;
//! - a frame whose header and body decode for an advertised version is answered (a response, or
//!   nothing for an acks=0 Produce), never refused as a connection-closing error;
//! - every response frame's length prefix matches its size and it carries the request's
//!   correlation id.
//!
//! Time in the broker's runtime is paused and auto-advances, so long polls and produce timeouts
//! finish at once.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, ElectLeadersRequest, FetchRequest,
    InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, OffsetForLeaderEpochRequest,
    ProduceRequest, RequestHeader, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_core::storage::MemStorage;
use strata_node::Config;
use strata_node::broker::Broker;
use strata_node::config::Sources;
use strata_node::dispatch::SUPPORTED;
use strata_node::dispatch::{Reply, dispatch, supported_range};
use strata_node::response_buf::Frame;

struct Env {
    rt: tokio::runtime::Runtime,
    broker: Arc<Broker>,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime");
        let sources = Sources {
            data_dir: Some("/fuzz".into()),
            sets: vec![
                "num.partitions=2".into(),
                "log.segment.bytes=4096".into(),
                "max.partitions=64".into(),
            ],
            ..Default::default()
        };
        let config = Config::resolve(&sources).expect("valid settings");
        let broker = rt.block_on(async {
            let b = Broker::open(config, Arc::new(MemStorage::new()))
                .expect("a broker on an empty disk");
            b.start_flushers();
            b
        });
        Env { rt, broker }
    })
}

/// The correlation id of `frame` if the node must answer it: its header and body decode for a
/// version we advertise.
fn must_answer(frame: &Bytes) -> Option<i32> {
    if frame.len() < 8 {
        return None;
    }
    let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).ok()?;
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let (min, max) = supported_range(key)?;
    if version < min || version > max {
        return None;
    }
    let mut body = frame.clone();
    let header = RequestHeader::decode(&mut body, key.request_header_version(version)).ok()?;
    let request = RequestKind::decode(key, &mut body, version).ok()?;
    // decode(encode(x)) == x for every request the node accepts (the codec is the vendored
    // kafka-protocol; the node answers what it decoded, so a lossy round trip would mislead it).
    let mut encoded = bytes::BytesMut::new();
    request
        .encode(&mut encoded, version)
        .expect("a decoded request encodes again");
    let again =
        RequestKind::decode(key, &mut encoded.freeze(), version).expect("and decodes again");
    assert_eq!(
        again, request,
        "decode(encode(x)) == x for {key:?} v{version}"
    );
    Some(header.correlation_id)
}

fn check_frame(frame: &Frame, correlation_id: Option<i32>) {
    let bytes = frame.to_vec();
    assert!(
        bytes.len() >= 8,
        "a response frame has a length and a correlation id"
    );
    let len = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    assert_eq!(
        len as usize,
        bytes.len() - 4,
        "length prefix matches the frame"
    );
    if let Some(id) = correlation_id {
        let got = i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        assert_eq!(got, id, "the response carries the request's correlation id");
    }
}

pub fn dispatch_frame(data: &[u8]) {
    let env = env();
    let frame = Bytes::copy_from_slice(data);
    let answer = must_answer(&frame);
    // Handlers spawn tasks (a new partition's flusher): dispatch inside the runtime, as a
    // connection task does.
    let _inside = env.rt.enter();
    match dispatch(&env.broker, frame) {
        Ok(Reply::Now(f)) => check_frame(&f, answer),
        Ok(Reply::Later(pending)) => {
            let done = env
                .rt
                .block_on(tokio::time::timeout(Duration::from_secs(3600), pending));
            match done {
                Ok(Ok(f)) => check_frame(&f, answer),
                Ok(Err(e)) => assert!(
                    answer.is_none(),
                    "a well-formed request failed to encode: {e}"
                ),
                Err(_) => panic!("a response never came (even in paused time)"),
            }
        }
        Ok(Reply::None) => {}
        Err(e) => assert!(
            answer.is_none(),
            "a well-formed request closed the connection: {e}"
        ),
    }
}

/// A plausible consumer-group request: a first join (KIP-394 answers MEMBER_ID_REQUIRED from
/// v4; earlier versions wait out the initial rebalance delay in paused time), requests of an
/// unknown member, a standalone commit (generation -1) and the admin APIs.
fn group_seed(key: ApiKey, version: i16, topic: TopicName) -> RequestKind {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
    use kafka_protocol::messages::*;
    let group = || GroupId(StrBytes::from_static_str("fuzz-group"));
    let member = || StrBytes::from_static_str("fuzz-member");
    match key {
        // v4+ batch their keys (KIP-699) and have no single key.
        ApiKey::FindCoordinator if version >= 4 => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("fuzz-group")]),
        ),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("fuzz-group")),
        ),
        ApiKey::JoinGroup => RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(Bytes::from_static(b"m")),
                ]),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(member()),
        ),
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(member()),
        ),
        // v3+ name a batch of members (KIP-345), earlier versions one.
        ApiKey::LeaveGroup if version >= 3 => RequestKind::LeaveGroup(
            LeaveGroupRequest::default()
                .with_group_id(group())
                .with_members(vec![MemberIdentity::default().with_member_id(member())]),
        ),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(
            LeaveGroupRequest::default()
                .with_group_id(group())
                .with_member_id(member()),
        ),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default().with_committed_offset(1),
                        ]),
                ]),
        ),
        // v8+ batch their groups.
        ApiKey::OffsetFetch if version >= 8 => {
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default().with_group_id(group()),
            ]))
        }
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(group())
                .with_topics(Some(Vec::new())),
        ),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => {
            RequestKind::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![group()]))
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![group()]),
        ),
        _ => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(group())
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![OffsetDeleteRequestPartition::default()]),
                ]),
        ),
    }
}

/// Seed frames: a plausible request of every API key and version we advertise.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let topic = || TopicName(StrBytes::from_static_str("fuzz"));
    let batch = Bytes::from(strata_core::batch::build_batch(
        &[(b"v", Some(b"k"))],
        1_000,
    ));
    let mut out = Vec::new();
    for &(key, min, max) in SUPPORTED {
        for version in min..=max {
            let request = match key {
                ApiKey::Produce => RequestKind::Produce(
                    ProduceRequest::default()
                        .with_acks(-1)
                        .with_timeout_ms(1000)
                        .with_topic_data(vec![
                            TopicProduceData::default()
                                .with_name(topic())
                                .with_partition_data(vec![
                                    PartitionProduceData::default()
                                        .with_index(0)
                                        .with_records(Some(batch.clone())),
                                ]),
                        ]),
                ),
                ApiKey::Fetch => RequestKind::Fetch(
                    FetchRequest::default()
                        .with_max_wait_ms(100)
                        .with_min_bytes(1)
                        .with_max_bytes(1 << 20)
                        .with_topics(vec![
                            FetchTopic::default()
                                .with_topic(topic())
                                .with_partitions(vec![
                                    FetchPartition::default()
                                        .with_partition(0)
                                        .with_partition_max_bytes(1 << 20),
                                ]),
                        ]),
                ),
                ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
                ApiKey::Metadata => {
                    RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                        MetadataRequestTopic::default().with_name(Some(topic())),
                    ])))
                }
                ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
                ApiKey::CreateTopics => {
                    RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                        CreatableTopic::default()
                            .with_name(topic())
                            .with_num_partitions(2)
                            .with_replication_factor(1),
                    ]))
                }
                ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
                ApiKey::DescribeConfigs => {
                    RequestKind::DescribeConfigs(DescribeConfigsRequest::default())
                }
                ApiKey::CreatePartitions => {
                    RequestKind::CreatePartitions(CreatePartitionsRequest::default())
                }
                ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(
                    OffsetForLeaderEpochRequest::default().with_topics(vec![
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(StrBytes::from_static_str("fuzz")))
                            .with_partitions(vec![
                                OffsetForLeaderPartition::default().with_leader_epoch(0),
                            ]),
                    ]),
                ),
                ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
                ApiKey::DescribeCluster => {
                    RequestKind::DescribeCluster(DescribeClusterRequest::default())
                }
                // An idempotent producer's (no transactional id): the request that gets an id.
                ApiKey::InitProducerId => RequestKind::InitProducerId(
                    InitProducerIdRequest::default()
                        .with_transactional_id(None)
                        .with_transaction_timeout_ms(60_000),
                ),
                ApiKey::FindCoordinator
                | ApiKey::JoinGroup
                | ApiKey::SyncGroup
                | ApiKey::Heartbeat
                | ApiKey::LeaveGroup
                | ApiKey::OffsetCommit
                | ApiKey::OffsetFetch
                | ApiKey::ListGroups
                | ApiKey::DescribeGroups
                | ApiKey::DeleteGroups
                | ApiKey::OffsetDelete => group_seed(key, version, topic()),
                _ => continue,
            };
            let mut buf = bytes::BytesMut::new();
            let header = RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(7);
            if header
                .encode(&mut buf, key.request_header_version(version))
                .is_err()
                || request.encode(&mut buf, version).is_err()
            {
                continue;
            }
            out.push((format!("seed-{key:?}-v{version}"), buf.to_vec()));
        }
    }
    out
}
