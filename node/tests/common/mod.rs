//! A real node for the integration tests: bound on an ephemeral port with its data in a
//! directory of the test's, run in the test's runtime, stopped cleanly or aborted.
// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_node::memory_pool::MemoryPool;
use strata_node::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

pub struct Running {
    pub addr: SocketAddr,
    /// The node's `queued.max.request.bytes` pool.
    pub pool: MemoryPool,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts a node on `127.0.0.1:0` with its log under `dir` and `settings` on top of the
/// embedded defaults.
pub async fn start(dir: &std::path::Path, settings: &[(&str, &str)]) -> Running {
    let mut config = Config::default()
        .with("listeners", "127.0.0.1:0")
        .and_then(|c| c.with("log.dirs", &dir.display().to_string()))
        .expect("valid config");
    for (key, value) in settings {
        config = config.with(key, value).expect("valid setting");
    }
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    let pool = server.memory_pool().clone();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        pool,
        stop,
        task,
    }
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("clean shutdown");
    }

    /// Stops the server without its shutdown (no final flush or checkpoint). Not a power loss:
    /// the page cache keeps what was written.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

// Raw Kafka frames over TCP.

pub fn frame<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("test")))
        .encode(&mut buf, key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf
}

/// Reads one response frame; `None` if the connection closed.
pub async fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

pub async fn call<Req: Encodable, Resp: Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    s.write_all(&frame(key, version, 7, req))
        .await
        .expect("write");
    s.flush().await.expect("flush");
    let mut resp = read_frame(s).await.expect("response");
    let header =
        ResponseHeader::decode(&mut resp, key.response_header_version(version)).expect("header");
    assert_eq!(header.correlation_id, 7);
    Resp::decode(&mut resp, version).expect("body")
}

pub fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub async fn create(s: &mut TcpStream, name: &str, partitions: i32) -> i16 {
    let req = CreateTopicsRequest::default().with_topics(vec![
        CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let resp: CreateTopicsResponse = call(s, ApiKey::CreateTopics, 7, &req).await;
    resp.topics[0].error_code
}

pub fn produce_req(name: &str, partition: i32, batch: Vec<u8>, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ])
}
