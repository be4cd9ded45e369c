//! Request dispatch: header decoding, version checks, routing to handlers, response encoding.
//!
//! Rules (as Kafka's own broker):
//! - An unknown API key, or a version outside what we advertise, closes the connection — except
//!   ApiVersions, which answers a too-new version with a v0-shaped body carrying error 35
//!   (UNSUPPORTED_VERSION) and our supported ranges, so the client can retry with a version we
//!   know. That body is built by hand because the crate may not decode the request.
//! - The ApiVersions response header is always v0 (no tagged fields), whatever the version.
//! - A body that does not decode closes the connection.
//!
//! The protocol surface is [`SUPPORTED`]: data (Produce, Fetch, ListOffsets, Metadata,
//! OffsetForLeaderEpoch), idempotent producers (InitProducerId; transactional ids are refused,
//! see [`handlers::init_producer_id`]), admin (CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, ElectLeaders, DescribeCluster),
//! consumer groups (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete: see [`crate::group`])
//! and ApiVersions.
//!
//! Handlers split into a synchronous part, run in request order (appends happen here, so the
//! order of a connection's produce requests is the order of its appends), and an optional
//! asynchronous part (waiting for fsync, long polls, the controller, a producer id block) whose
//! result the connection writes back in request order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use strata_core::ErrorCode;
use thiserror::Error;

use crate::broker::Broker;
use crate::framing::{begin_frame, finish_frame};
use crate::handled::{Client, Handled};
use crate::handlers;
use crate::response_buf::{ChunkedBuf, Frame};

/// Every API we implement and the version range we advertise (and accept).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    // Topic configs only; broker resources are refused (static), see `handlers::alter_configs`.
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    // v3+ carry KIP-360's producer id and epoch; v4 and v5 only allow new error codes
    // (PRODUCER_FENCED, TRANSACTION_ABORTABLE) that only a transaction coordinator sends. v6
    // (KIP-939 two-phase commit) is not stable in Kafka 4.1 and the crate cannot decode it.
    (ApiKey::InitProducerId, 0, 5),
    // Consumer groups (classic protocol), see `crate::group`. OffsetCommit v10 and
    // OffsetFetch v10 use topic ids; DescribeGroups v6 changes unknown-group answers (KIP-1043).
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// The advertised range of `key`, if we implement it.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// A request that must close the connection.
#[derive(Debug, Error)]
pub enum DispatchError {
    #[error("frame of {0} bytes is too short for a request header")]
    Short(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {key:?} (we support {min}..={max})")]
    UnsupportedVersion {
        key: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("API {0:?} is not implemented")]
    NotImplemented(ApiKey),
    #[error("cannot decode {key:?} v{version}: {reason}")]
    Decode {
        key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode response to {key:?} v{version}: {reason}")]
    Encode {
        key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// A future producing an encoded response frame (or an error that closes the connection).
pub type PendingFrame = Pin<Box<dyn Future<Output = Result<Frame, DispatchError>> + Send>>;

/// What the connection does with a request.
pub enum Reply {
    /// Write this frame.
    Now(Frame),
    /// Write this frame once ready (in request order).
    Later(PendingFrame),
    /// Write nothing.
    None,
}

/// The fixed start of every request header (all header versions).
#[derive(Debug, Clone, Copy)]
struct HeaderPrefix {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
}

fn prefix(frame: &[u8]) -> Option<HeaderPrefix> {
    if frame.len() < 8 {
        return None;
    }
    Some(HeaderPrefix {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Handles one request frame (without its length prefix) from an unknown peer.
pub fn dispatch(broker: &Arc<Broker>, frame: Bytes) -> Result<Reply, DispatchError> {
    dispatch_from(broker, frame, None)
}

/// Handles one request frame (without its length prefix) from `peer`.
pub fn dispatch_from(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: Option<std::net::SocketAddr>,
) -> Result<Reply, DispatchError> {
    let p = prefix(&frame).ok_or(DispatchError::Short(frame.len()))?;
    let key = ApiKey::try_from(p.api_key).map_err(|_| DispatchError::UnknownApiKey(p.api_key))?;
    let (min, max) = supported_range(key).ok_or(DispatchError::NotImplemented(key))?;
    if key == ApiKey::ApiVersions && p.api_version > max {
        return Ok(Reply::Now(api_versions_fallback(p.correlation_id).into()));
    }
    if p.api_version < min || p.api_version > max {
        return Err(DispatchError::UnsupportedVersion {
            key,
            version: p.api_version,
            min,
            max,
        });
    }
    let version = p.api_version;
    let decode_err = |e: anyhow::Error| DispatchError::Decode {
        key,
        version,
        reason: e.to_string(),
    };
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(version))
        .map_err(decode_err)?;
    let request = RequestKind::decode(key, &mut body, version).map_err(decode_err)?;
    let correlation_id = header.correlation_id;
    let client = Client {
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        host: peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
    };
    Ok(match route(broker, request, version, &client) {
        Handled::Now(resp) => Reply::Now(encode_response(key, version, correlation_id, &resp)?),
        Handled::Later(fut) => Reply::Later(Box::pin(async move {
            let resp = fut.await;
            encode_response(key, version, correlation_id, &resp)
        })),
        Handled::NoResponse => Reply::None,
    })
}

fn route(broker: &Arc<Broker>, request: RequestKind, version: i16, client: &Client) -> Handled {
    match request {
        RequestKind::ApiVersions(_) => {
            Handled::Now(ResponseKind::ApiVersions(api_versions_response()))
        }
        RequestKind::Metadata(r) => Handled::Now(ResponseKind::Metadata(
            handlers::metadata::handle(broker, r, version),
        )),
        RequestKind::Produce(r) => handlers::produce::handle(broker, r),
        RequestKind::Fetch(r) => handlers::fetch::handle(broker, r, version),
        RequestKind::ListOffsets(r) => Handled::Now(ResponseKind::ListOffsets(
            handlers::list_offsets::handle(broker, r, version),
        )),
        RequestKind::CreateTopics(r) => handlers::admin::create_topics(broker, r, version),
        RequestKind::DeleteTopics(r) => handlers::admin::delete_topics(broker, r),
        RequestKind::CreatePartitions(r) => handlers::admin::create_partitions(broker, r),
        RequestKind::ElectLeaders(r) => handlers::admin::elect_leaders(broker, r, version),
        RequestKind::OffsetForLeaderEpoch(r) => Handled::Now(ResponseKind::OffsetForLeaderEpoch(
            handlers::offset_for_leader_epoch::handle(broker, r),
        )),
        RequestKind::DescribeCluster(r) => Handled::Now(ResponseKind::DescribeCluster(
            handlers::describe_cluster::handle(broker, r),
        )),
        RequestKind::DescribeConfigs(r) => Handled::Now(ResponseKind::DescribeConfigs(
            handlers::describe_configs::handle(broker, r),
        )),
        RequestKind::AlterConfigs(r) => handlers::alter_configs::handle_legacy(broker, r),
        RequestKind::IncrementalAlterConfigs(r) => {
            handlers::alter_configs::handle_incremental(broker, r)
        }
        RequestKind::InitProducerId(r) => handlers::init_producer_id::handle(broker, r),
        RequestKind::FindCoordinator(r) => Handled::Now(ResponseKind::FindCoordinator(
            handlers::find_coordinator::handle(broker, r, version),
        )),
        RequestKind::JoinGroup(r) => handlers::join_group::handle(broker, r, version, client),
        RequestKind::SyncGroup(r) => handlers::sync_group::handle(broker, r, version),
        RequestKind::Heartbeat(r) => handlers::heartbeat::handle(broker, r),
        RequestKind::LeaveGroup(r) => handlers::leave_group::handle(broker, r, version),
        RequestKind::OffsetCommit(r) => handlers::offset_commit::handle(broker, r, version),
        RequestKind::OffsetFetch(r) => handlers::offset_fetch::handle(broker, r, version),
        RequestKind::ListGroups(r) => handlers::list_groups::handle(broker, r, version),
        RequestKind::DescribeGroups(r) => handlers::describe_groups::handle(broker, r),
        RequestKind::DeleteGroups(r) => handlers::delete_groups::handle(broker, r),
        RequestKind::OffsetDelete(r) => handlers::offset_delete::handle(broker, r),
        // Unreachable: `dispatch` refuses keys outside SUPPORTED before decoding.
        _ => Handled::Now(ResponseKind::ApiVersions(
            ApiVersionsResponse::default().with_error_code(ErrorCode::UNSUPPORTED_VERSION.0),
        )),
    }
}

/// Encodes header + body into one frame. Fetch responses keep their record sets by reference
/// (see [`crate::response_buf`]).
pub fn encode_response(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Frame, DispatchError> {
    let encode_err = |e: anyhow::Error| DispatchError::Encode {
        key,
        version,
        reason: e.to_string(),
    };
    // ApiVersions responses always use header v0 (KIP-511).
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if let ResponseKind::Fetch(fetch) = body {
        let records = fetch
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.records.clone())
            .collect();
        let mut out = ChunkedBuf::new(records);
        header
            .encode(&mut out, header_version)
            .map_err(encode_err)?;
        fetch.encode(&mut out, version).map_err(encode_err)?;
        return Ok(out.finish());
    }
    let mut out = begin_frame(256);
    header
        .encode(&mut out, header_version)
        .map_err(encode_err)?;
    body.encode(&mut out, version).map_err(encode_err)?;
    finish_frame(&mut out);
    Ok(out.into())
}

/// Our ApiVersions response (error NONE).
pub fn api_versions_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        SUPPORTED
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect(),
    )
}

/// The reply to an ApiVersions request of a version newer than ours: header v0 + a v0 body with
/// error 35 and our ranges, written by hand (KIP-511).
pub fn api_versions_fallback(correlation_id: i32) -> BytesMut {
    let mut out = begin_frame(8 + SUPPORTED.len() * 6);
    out.put_i32(correlation_id);
    out.put_i16(ErrorCode::UNSUPPORTED_VERSION.0);
    out.put_i32(SUPPORTED.len() as i32);
    for &(k, min, max) in SUPPORTED {
        out.put_i16(k as i16);
        out.put_i16(min);
        out.put_i16(max);
    }
    finish_frame(&mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
        ProduceRequest, ProduceResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use strata_core::storage::MemStorage;

    pub(crate) fn request<T: Encodable>(
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &T,
    ) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .encode(&mut buf, key.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        buf.freeze()
    }

    /// A Produce of `batch` to partition 0 of topic `t`.
    pub(crate) fn produce_to_t0(acks: i16, batch: Vec<u8>) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(batch))),
                    ]),
            ])
    }

    pub(crate) async fn round_trip<T: Encodable, R: Decodable>(
        broker: &Arc<Broker>,
        key: ApiKey,
        version: i16,
        body: &T,
    ) -> R {
        let frame = match dispatch(broker, request(key, version, 42, body)).expect("dispatch") {
            Reply::Now(f) => f,
            Reply::Later(f) => f.await.expect("encode"),
            Reply::None => panic!("no response"),
        };
        let mut bytes = Bytes::from(frame.to_vec());
        assert_eq!(
            bytes.len() - 4,
            i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
        );
        let _ = bytes.split_to(4);
        let header = ResponseHeader::decode(&mut bytes, key.response_header_version(version))
            .expect("header");
        assert_eq!(header.correlation_id, 42);
        R::decode(&mut bytes, version).expect("body")
    }

    /// A request for 2^31 - 1 partitions is refused at once (found by the dispatch fuzzer,
    /// which hung while the broker created them one by one).
    #[tokio::test]
    async fn partition_counts_are_limited() {
        let config = Config::default()
            .with("log.dirs", "/mem")
            .and_then(|c| c.with("max.partitions", "10"))
            .expect("config");
        let broker = Broker::open(config, Arc::new(MemStorage::new())).expect("open");
        let create = |n: i32, topic: &'static str| {
            CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(topic)))
                    .with_num_partitions(n)
                    .with_replication_factor(1),
            ])
        };
        let huge: CreateTopicsResponse =
            round_trip(&broker, ApiKey::CreateTopics, 5, &create(i32::MAX, "huge")).await;
        assert_eq!(huge.topics[0].error_code, ErrorCode::INVALID_PARTITIONS.0);
        let ok: CreateTopicsResponse =
            round_trip(&broker, ApiKey::CreateTopics, 5, &create(10, "fits")).await;
        assert_eq!(ok.topics[0].error_code, 0);
        let over: CreateTopicsResponse =
            round_trip(&broker, ApiKey::CreateTopics, 5, &create(1, "one-more")).await;
        assert_eq!(over.topics[0].error_code, ErrorCode::INVALID_PARTITIONS.0);
    }

    #[tokio::test]
    async fn dispatch_round_trips_in_memory() {
        let config = Config::default().with("log.dirs", "/mem").expect("config");
        let broker = Broker::open(config, Arc::new(MemStorage::new())).expect("open");
        let name = TopicName(StrBytes::from_static_str("t"));
        let created: CreateTopicsResponse = round_trip(
            &broker,
            ApiKey::CreateTopics,
            5,
            &CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(name.clone())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            ]),
        )
        .await;
        assert_eq!(created.topics[0].error_code, 0);
        assert_eq!(created.topics[0].num_partitions, 1);
        assert!(
            created.topics[0]
                .configs
                .as_ref()
                .is_some_and(|c| !c.is_empty())
        );
        let produce = |acks: i16, value: &'static [u8]| {
            ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(5_000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(name.clone())
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(Bytes::from(strata_core::batch::build_batch(
                                    &[(value, None)],
                                    5,
                                )))),
                        ]),
                ])
        };
        let produced: ProduceResponse =
            round_trip(&broker, ApiKey::Produce, 8, &produce(-1, b"v")).await;
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
        assert_eq!(
            produced.responses[0].partition_responses[0].current_leader,
            Default::default(),
            "v8 has no current_leader"
        );
        let again: ProduceResponse =
            round_trip(&broker, ApiKey::Produce, 11, &produce(1, b"w")).await;
        let answered = &again.responses[0].partition_responses[0];
        assert_eq!((answered.error_code, answered.base_offset), (0, 1));
        assert_eq!(
            (
                answered.current_leader.leader_id.0,
                answered.current_leader.leader_epoch
            ),
            (broker.config.node_id, 0),
            "v10+ names the leader and its epoch"
        );
        assert_eq!(
            broker
                .partition("t", 0)
                .expect("partition")
                .state()
                .high_watermark,
            2
        );
        let md: MetadataResponse = round_trip(
            &broker,
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
        assert_eq!(md.topics.len(), 1);
        assert_eq!(md.controller_id.0, 1);
        // Unknown API key and unsupported versions close the connection.
        assert!(matches!(
            dispatch(&broker, Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 1])),
            Err(DispatchError::UnknownApiKey(_))
        ));
        assert!(matches!(
            dispatch(
                &broker,
                request(ApiKey::Metadata, 13, 1, &MetadataRequest::default())
            ),
            Err(DispatchError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            dispatch(&broker, Bytes::from_static(&[0, 3])),
            Err(DispatchError::Short(2))
        ));
    }

    #[test]
    fn advertised_ranges_are_within_the_crate() {
        for &(k, min, max) in SUPPORTED {
            let r = k.valid_versions();
            assert!(r.min <= min && max <= r.max, "{k:?}");
        }
    }

    #[test]
    fn api_versions_fallback_bytes() {
        let f = api_versions_fallback(0x01020304);
        let n = SUPPORTED.len();
        assert_eq!(f.len(), 4 + 4 + 2 + 4 + 6 * n);
        assert_eq!(&f[..4], &((f.len() - 4) as i32).to_be_bytes());
        assert_eq!(&f[4..8], &[1, 2, 3, 4]);
        assert_eq!(&f[8..10], &35i16.to_be_bytes());
        assert_eq!(&f[10..14], &(n as i32).to_be_bytes());
        // First entry: Produce 3..11.
        assert_eq!(&f[14..20], &[0, 0, 0, 3, 0, 11]);
        // And it decodes as an ApiVersions v0 response.
        let mut body = Bytes::copy_from_slice(&f[8..]);
        let r = ApiVersionsResponse::decode(&mut body, 0).expect("v0 decodes");
        assert_eq!(r.error_code, 35);
        assert_eq!(r.api_keys.len(), n);
    }

    #[tokio::test]
    async fn fsync_error_is_never_acknowledged() {
        let storage = MemStorage::new();
        let config = Config::default().with("log.dirs", "/mem").expect("config");
        let broker = Broker::open(config, Arc::new(storage.clone())).expect("open");
        broker
            .create_topic("t", 1, Default::default(), false)
            .expect("create");
        storage.fail_syncs(true);
        let batch = strata_core::batch::build_batch(&[(b"v", None)], 5);
        let produce = produce_to_t0(1, batch);
        let resp: ProduceResponse = round_trip(&broker, ApiKey::Produce, 11, &produce).await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            ErrorCode::KAFKA_STORAGE_ERROR.0
        );
        let p = broker.partition("t", 0).expect("partition");
        assert_eq!(
            p.state().high_watermark,
            0,
            "nothing acknowledged becomes visible"
        );
        // Later appends are refused by the failed log.
        let resp: ProduceResponse = round_trip(&broker, ApiKey::Produce, 11, &produce).await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code,
            ErrorCode::KAFKA_STORAGE_ERROR.0
        );
    }
}
