//! The broker in-process on an ephemeral port with a temp data dir, spoken to with raw
//! `kafka-protocol` frames over TCP: ApiVersions (including the KIP-511 fallback), CreateTopics,
//! Produce, Fetch (and its KIP-227 sessions), ListOffsets, pipelining, restart recovery, InitProducerId across restarts, and
//! bad input that must close only the offending connection.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod common;
use common::{Running, call, create, frame, produce_req, read_frame, topic};

async fn start(dir: &std::path::Path) -> Running {
    common::start(dir, &[]).await
}

fn fetch_req(name: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

async fn latest(s: &mut TcpStream, name: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let resp: ListOffsetsResponse = call(s, ApiKey::ListOffsets, 8, &req).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

#[tokio::test]
async fn produce_fetch_list_offsets_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");

    let av: ApiVersionsResponse = call(
        &mut s,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
    .await;
    assert_eq!(av.error_code, 0);
    let produce = av
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("produce");
    assert_eq!((produce.min_version, produce.max_version), (3, 11));

    assert_eq!(create(&mut s, "orders", 2).await, 0);
    assert_eq!(
        create(&mut s, "orders", 2).await,
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(
        create(&mut s, "bad/name", 1).await,
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    assert_eq!(create(&mut s, "zero", 0).await, 37, "INVALID_PARTITIONS");

    let batch = strata_core::batch::build_batch(&[(b"one", None), (b"two", Some(b"k"))], 1_000);
    let resp: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        11,
        &produce_req("orders", 0, batch.clone(), -1),
    )
    .await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let resp: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        11,
        &produce_req("orders", 0, batch.clone(), 1),
    )
    .await;
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 2);
    let resp: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        11,
        &produce_req("orders", 9, batch.clone(), 1),
    )
    .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let resp: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        11,
        &produce_req("orders", 0, batch.clone(), 2),
    )
    .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );
    let mut corrupt = batch.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let resp: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        11,
        &produce_req("orders", 0, corrupt, 1),
    )
    .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );

    let resp: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &fetch_req("orders", 0, 0)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark, p.log_start_offset),
        (0, 4, 0)
    );
    let records = p.records.clone().expect("records");
    assert_eq!(records.len(), 2 * batch.len());
    assert_eq!(
        &records[16..batch.len()],
        &batch[16..],
        "magic, CRC and records untouched"
    );
    assert_eq!(
        &records[batch.len()..batch.len() + 8],
        &2i64.to_be_bytes(),
        "second batch at offset 2"
    );
    let resp: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &fetch_req("orders", 5, 0)).await;
    assert_eq!(
        resp.responses[0].partitions[0].error_code, 1,
        "OFFSET_OUT_OF_RANGE"
    );
    let resp: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &fetch_req("orders", 4, 0)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
    assert_eq!(latest(&mut s, "orders").await, 4);

    // ListOffsets by time: build_batch stamps 1_000 ms.
    let by_time = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(500),
                    ListOffsetsPartition::default()
                        .with_partition_index(1)
                        .with_timestamp(-2),
                ]),
        ]);
    let resp: ListOffsetsResponse = call(&mut s, ApiKey::ListOffsets, 5, &by_time).await;
    let ps = &resp.topics[0].partitions;
    assert_eq!(
        (ps[0].error_code, ps[0].offset, ps[0].timestamp),
        (0, 0, 1_000)
    );
    assert_eq!((ps[1].error_code, ps[1].offset), (0, 0));

    // fsync.before.ack=false: acknowledged from the page cache, visible at once.
    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(topic("fast"))
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("fsync.before.ack"))
                    .with_value(Some(StrBytes::from_static_str("false"))),
            ]),
    ]);
    let resp: CreateTopicsResponse = call(&mut s, ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);
    let resp: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        11,
        &produce_req("fast", 0, batch.clone(), -1),
    )
    .await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(latest(&mut s, "fast").await, 2);

    // Pipelining: a long poll, then a produce that satisfies it, both sent before reading.
    let mut s2 = TcpStream::connect(server.addr).await.expect("connect");
    let mut both = frame(ApiKey::Fetch, 12, 1, &fetch_req("orders", 4, 5_000));
    both.extend_from_slice(&frame(ApiKey::Metadata, 12, 2, &MetadataRequest::default()));
    s2.write_all(&both).await.expect("write");
    s2.flush().await.expect("flush");
    let resp: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce_req("orders", 0, batch.clone(), -1),
    )
    .await;
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 4);
    let mut r1 = read_frame(&mut s2).await.expect("fetch response");
    assert_eq!(r1.get_i32(), 1, "responses in request order");
    let r2 = read_frame(&mut s2).await.expect("metadata response");
    assert_eq!(i32::from_be_bytes([r2[0], r2[1], r2[2], r2[3]]), 2);

    drop(s);
    drop(s2);
    server.stop().await;

    // Restart: topics and data come back.
    let server = start(dir.path()).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(latest(&mut s, "orders").await, 6);
    let md: MetadataResponse = call(
        &mut s,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await;
    assert_eq!(md.topics.len(), 2);
    assert_eq!(md.topics[1].partitions.len(), 2, "orders");
    assert_eq!(md.brokers[0].port, i32::from(server.addr.port()));
    drop(s);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_closes_only_that_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;

    // ApiVersions of a version we do not know: v0-shaped error 35 with our ranges (KIP-511).
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 5, 0xff, 0xff])
        .await
        .expect("write");
    s.flush().await.expect("flush");
    let mut resp = read_frame(&mut s).await.expect("fallback");
    assert_eq!(resp.get_i32(), 5);
    let body = ApiVersionsResponse::decode(&mut resp, 0).expect("v0 body");
    assert_eq!(body.error_code, 35);
    assert!(!body.api_keys.is_empty());

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown api key",
            vec![0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0],
        ),
        (
            "unsupported version",
            frame(ApiKey::Metadata, 13, 1, &MetadataRequest::default()).to_vec(),
        ),
        (
            "garbage body",
            vec![0, 0, 0, 12, 0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        ),
        ("oversized frame", vec![0x7f, 0xff, 0xff, 0xff]),
        ("negative size", vec![0xff, 0xff, 0xff, 0xff]),
    ];
    for (what, bytes) in cases {
        let mut bad = TcpStream::connect(server.addr).await.expect("connect");
        bad.write_all(&bytes).await.expect("write");
        bad.flush().await.expect("flush");
        assert!(
            read_frame(&mut bad).await.is_none(),
            "{what}: connection closed"
        );
    }
    // Truncated frame: the peer goes away mid-frame.
    let mut t = TcpStream::connect(server.addr).await.expect("connect");
    t.write_all(&[0, 0, 1, 0, 0, 18]).await.expect("write");
    drop(t);

    // The first connection and new ones still work.
    let av: ApiVersionsResponse = call(
        &mut s,
        ApiKey::ApiVersions,
        0,
        &ApiVersionsRequest::default(),
    )
    .await;
    assert_eq!(av.error_code, 0);
    let mut fresh = TcpStream::connect(server.addr).await.expect("connect");
    let md: MetadataResponse =
        call(&mut fresh, ApiKey::Metadata, 1, &MetadataRequest::default()).await;
    assert_eq!(md.brokers.len(), 1);
    drop(s);
    drop(fresh);
    server.stop().await;
}

/// A fresh producer id and epoch 0 for every idempotent InitProducerId, at every advertised
/// version, never repeated: not on other connections, not after a clean restart, not after a
/// restart without shutdown. A transactional id is refused (UNSUPPORTED_VERSION).
#[tokio::test]
async fn init_producer_id_never_repeats_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut seen = std::collections::BTreeSet::new();
    let mut previous_max = -1;
    for round in 0..3 {
        let server = start(dir.path()).await;
        let mut a = TcpStream::connect(server.addr).await.expect("connect");
        let mut b = TcpStream::connect(server.addr).await.expect("connect");
        let av: ApiVersionsResponse = call(
            &mut a,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default(),
        )
        .await;
        let k = av
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::InitProducerId as i16)
            .expect("InitProducerId is advertised");
        assert_eq!((k.min_version, k.max_version), (0, 5));
        let mut ids = Vec::new();
        for i in 0..60 {
            let version = i % 6;
            let s = if i % 2 == 0 { &mut a } else { &mut b };
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000);
            let resp: InitProducerIdResponse = call(s, ApiKey::InitProducerId, version, &req).await;
            assert_eq!(resp.error_code, 0, "round {round}, v{version}");
            assert_eq!(resp.producer_epoch, 0);
            assert!(resp.producer_id.0 >= 0);
            assert!(
                seen.insert(resp.producer_id.0),
                "producer id {} handed out twice (round {round})",
                resp.producer_id.0
            );
            ids.push(resp.producer_id.0);
        }
        assert!(
            ids.iter().all(|&id| id > previous_max),
            "round {round}: ids {ids:?} not all above {previous_max}, the largest before the restart"
        );
        previous_max = ids.iter().copied().max().expect("ids");
        let tx = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
            .with_transaction_timeout_ms(60_000);
        let resp: InitProducerIdResponse = call(&mut a, ApiKey::InitProducerId, 4, &tx).await;
        assert_eq!(resp.error_code, 35, "transactions are not supported");
        assert_eq!((resp.producer_id.0, resp.producer_epoch), (-1, -1));
        drop(a);
        drop(b);
        if round == 0 {
            server.stop().await;
        } else {
            server.abort().await;
        }
    }
}

/// A consumer's fetch of `partitions` of `name` (each from `offset`) in session `id` at
/// `epoch`: the partitions listed are those the request adds or updates.
fn session_fetch(name: &str, partitions: &[(i32, i64)], id: i32, epoch: i32) -> FetchRequest {
    let listed = partitions
        .iter()
        .map(|&(p, offset)| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(listed),
        ])
}

/// `(partition, records' bytes)` of every partition an answer lists.
fn listed(resp: &FetchResponse) -> Vec<(i32, usize)> {
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.records.as_ref().map_or(0, Bytes::len)))
        .collect()
}

/// A node with topic `many` of 4 partitions, one record in partition 0, and a consumer's
/// fetch session over all four (created by a full fetch that lists them all).
async fn with_session(dir: &std::path::Path) -> (Running, TcpStream, i32) {
    let server = start(dir).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(create(&mut s, "many", 4).await, 0);
    let batch = strata_core::batch::build_batch(&[(b"one", None)], 1_000);
    let _: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        11,
        &produce_req("many", 0, batch, -1),
    )
    .await;
    let all = [(0, 0), (1, 0), (2, 0), (3, 0)];
    let full: FetchResponse = call(
        &mut s,
        ApiKey::Fetch,
        12,
        &session_fetch("many", &all, 0, 0),
    )
    .await;
    assert_eq!(full.error_code, 0);
    assert!(full.session_id > 0, "a session was created");
    assert_eq!(
        listed(&full).len(),
        4,
        "a full answer lists every partition"
    );
    assert!(listed(&full)[0].1 > 0, "partition 0 has data");
    (server, s, full.session_id)
}

/// The partitions an incremental fetch in session `id` at `epoch` that lists `partitions`
/// answers.
async fn incremental(
    s: &mut TcpStream,
    partitions: &[(i32, i64)],
    id: i32,
    epoch: i32,
) -> Vec<i32> {
    let inc: FetchResponse = call(
        s,
        ApiKey::Fetch,
        12,
        &session_fetch("many", partitions, id, epoch),
    )
    .await;
    assert_eq!((inc.error_code, inc.session_id), (0, id));
    listed(&inc).iter().map(|l| l.0).collect()
}

/// KIP-227: an incremental fetch lists only the partitions with new data (or a new high
/// watermark), though the request lists none; a partition the request moves is read from its
/// new offset.
#[tokio::test]
async fn an_incremental_fetch_answers_only_changed_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, mut s, id) = with_session(dir.path()).await;
    // Nothing listed: partition 0 is read again from its cached offset 0.
    assert_eq!(
        incremental(&mut s, &[], id, 1).await,
        [0],
        "only the partition with records"
    );
    // Partition 0 moves past its data; partition 2 gets a record.
    let batch = strata_core::batch::build_batch(&[(b"two", None)], 1_000);
    let _: ProduceResponse = call(
        &mut s,
        ApiKey::Produce,
        11,
        &produce_req("many", 2, batch, -1),
    )
    .await;
    assert_eq!(
        incremental(&mut s, &[(0, 1)], id, 2).await,
        [2],
        "partition 2's data and high watermark; partition 0 unchanged"
    );
    assert!(incremental(&mut s, &[(2, 1)], id, 3).await.is_empty());
    drop(s);
    server.stop().await;
}

/// KIP-227 session errors: a replayed epoch and an unknown id are refused with no partitions;
/// epoch -1 closes the session (answered sessionless) and its id is unknown afterwards.
#[tokio::test]
async fn fetch_session_errors_and_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, mut s, id) = with_session(dir.path()).await;
    assert_eq!(incremental(&mut s, &[], id, 1).await, [0]);
    let stale: FetchResponse = call(
        &mut s,
        ApiKey::Fetch,
        12,
        &session_fetch("many", &[], id, 1),
    )
    .await;
    assert_eq!(
        (stale.error_code, stale.session_id),
        (71, 0),
        "INVALID_FETCH_SESSION_EPOCH"
    );
    assert!(stale.responses.is_empty());
    let unknown = id.wrapping_add(1).max(1);
    let gone: FetchResponse = call(
        &mut s,
        ApiKey::Fetch,
        12,
        &session_fetch("many", &[], unknown, 1),
    )
    .await;
    assert_eq!(gone.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    let all = [(0, 0), (1, 0), (2, 0), (3, 0)];
    let close: FetchResponse = call(
        &mut s,
        ApiKey::Fetch,
        12,
        &session_fetch("many", &all, id, -1),
    )
    .await;
    assert_eq!(
        (close.error_code, close.session_id, listed(&close).len()),
        (0, 0, 4)
    );
    let after: FetchResponse = call(
        &mut s,
        ApiKey::Fetch,
        12,
        &session_fetch("many", &[], id, 2),
    )
    .await;
    assert_eq!(
        after.error_code, 70,
        "FETCH_SESSION_ID_NOT_FOUND after the close"
    );
    drop(s);
    server.stop().await;
}
