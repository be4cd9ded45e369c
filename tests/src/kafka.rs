//! Strata's own client, wrapped for tests: connect, create topics, produce values and read a
//! partition back with exact offsets and error codes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_client::admin::{Admin, LATEST_TIMESTAMP};
use strata_client::consumer::ConsumedRecord;
use strata_client::{
    Connection, ConnectionConfig, Consumer, FetchConfig, ProduceOutcome, Producer, ProducerConfig,
};
use strata_core::error::ErrorCode;

/// Connects, retrying for a while (a broker that was just restarted may still be opening logs).
pub async fn connect(bootstrap: &str) -> Arc<Connection> {
    let mut last = None;
    for _ in 0..100 {
        match Connection::connect(bootstrap, ConnectionConfig::default()).await {
            Ok(c) => return Arc::new(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {bootstrap}: {last:?}");
}

/// Creates a topic with replication factor 1, panicking on any error.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let conn = connect(bootstrap).await;
    Admin::new(&conn)
        .create_topic(topic, partitions, 1, configs)
        .await
        .unwrap_or_else(|e| panic!("create topic {topic}: {e}"));
}

/// A producer with acks=-1 and no retries (tests want to see every outcome as it is).
pub fn producer(bootstrap: &str) -> Producer {
    Producer::new(
        bootstrap,
        ProducerConfig {
            retries: 0,
            ..ProducerConfig::default()
        },
    )
}

/// Produces one batch of `values`, panicking unless it is acknowledged; returns its base offset.
pub async fn produce_ok(p: &Producer, topic: &str, partition: i32, values: &[Vec<u8>]) -> i64 {
    let records: Vec<(&[u8], Option<&[u8]>)> = values.iter().map(|v| (&v[..], None)).collect();
    let batch = Bytes::from(strata_core::batch::build_batch(&records, now_ms()));
    match p.produce_batch(topic, partition, batch).await {
        ProduceOutcome::Ok { base_offset, .. } => base_offset,
        other => panic!("produce to {topic}-{partition}: {other:?}"),
    }
}

/// The high watermark from ListOffsets(latest).
pub async fn latest_offset(conn: &Connection, topic: &str, partition: i32) -> i64 {
    Admin::new(conn)
        .list_offset(topic, partition, LATEST_TIMESTAMP)
        .await
        .unwrap_or_else(|e| panic!("list offsets {topic}-{partition}: {e}"))
        .0
}

/// What reading a partition from an offset found.
#[derive(Debug)]
pub struct ReadResult {
    pub records: Vec<ConsumedRecord>,
    /// The first partition error that stopped the read, if any.
    pub error: Option<ErrorCode>,
    /// The next offset the reader would have fetched.
    pub position: i64,
}

/// Reads `topic`/`partition` from `from` until the high watermark or the first error.
pub async fn read_partition(
    conn: Arc<Connection>,
    topic: &str,
    partition: i32,
    from: i64,
) -> ReadResult {
    let mut consumer = Consumer::new(
        conn,
        FetchConfig {
            max_wait_ms: 100,
            ..FetchConfig::default()
        },
    );
    consumer.assign(topic, partition, from);
    let mut records = Vec::new();
    // Bounded: every round either advances or returns.
    for _ in 0..100_000 {
        let fetched = consumer
            .poll()
            .await
            .unwrap_or_else(|e| panic!("fetch {topic}-{partition}: {e}"));
        let Some(f) = fetched.into_iter().find(|f| f.partition == partition) else {
            panic!("fetch response without {topic}-{partition}");
        };
        let position = consumer.position(topic, partition).unwrap_or(from);
        if !f.error.is_ok() {
            return ReadResult {
                records,
                error: Some(f.error),
                position,
            };
        }
        let empty = f.records.is_empty();
        records.extend(f.records);
        if position >= f.high_watermark {
            return ReadResult {
                records,
                error: None,
                position,
            };
        }
        if empty {
            panic!(
                "fetch at {position} below high watermark {} returned nothing",
                f.high_watermark
            );
        }
    }
    panic!("read of {topic}-{partition} did not finish");
}

/// Wall-clock milliseconds, for record timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
