//! Producing raw v2 batches to one topic-partition, with retries that respect indefinite outcomes.
//!
//! A produce attempt ends one of three ways, and the difference matters to every checker:
//!
//! - **Ok**: the broker acknowledged the batch at `base_offset`.
//! - **Failed**: the broker refused the batch with a definite error (e.g. `CORRUPT_MESSAGE`,
//!   `MESSAGE_TOO_LARGE`): it was not written.
//! - **Indefinite**: we cannot know. `NOT_LEADER_OR_FOLLOWER` (the old leader may have appended
//!   before it lost leadership), `REQUEST_TIMED_OUT` and `NOT_ENOUGH_REPLICAS_AFTER_APPEND` (the
//!   leader appended, replication did not finish in time), a connection lost after the request
//!   was written, and any `acks=0` send. The write may or may not have happened (design §2).
//!
//! Retries do not erase that: once one attempt was indefinite, a later definite failure is
//! reported as indefinite, and a later success is flagged `after_indefinite` (the batch may then
//! be in the log twice, since this producer is not idempotent).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_core::batch::build_batch;
use strata_core::error::ErrorCode;
use thiserror::Error;
use tokio::sync::Mutex;

use super::connection::{Connection, ConnectionConfig, ConnectionError, InFlight};

/// One record to produce: `(value, key)`.
pub type ValueAndKey<'a> = (&'a [u8], Option<&'a [u8]>);

/// Produce versions this client can speak: 3 is the first with v2 batches, 11 the last without
/// topic ids.
pub const PRODUCE_VERSIONS: (i16, i16) = (3, 11);

/// Why a produce attempt's outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndefiniteReason {
    /// The broker answered with an error that leaves the write undecided.
    Broker(ErrorCode),
    /// The connection broke after the request was written.
    ConnectionLost(String),
    /// `acks=0`: the broker never says.
    NoAcks,
}

/// The result of producing one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProduceOutcome {
    /// Acknowledged at `base_offset`. `after_indefinite`: an earlier attempt of the same batch
    /// was indefinite, so the batch may also be in the log at another offset.
    Ok {
        base_offset: i64,
        after_indefinite: bool,
    },
    /// Definitely not written.
    Failed(ErrorCode),
    /// May or may not have been written.
    Indefinite(IndefiniteReason),
}

impl ProduceOutcome {
    pub fn base_offset(&self) -> Option<i64> {
        match self {
            ProduceOutcome::Ok { base_offset, .. } => Some(*base_offset),
            _ => None,
        }
    }
}

/// Errors raised before anything was sent: the batch was definitely not written.
#[derive(Debug, Error)]
pub enum ProducerError {
    #[error("produce request could not be sent: {0}")]
    NotSent(ConnectionError),
    #[error("produce response has no entry for the partition")]
    MissingPartition,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `0`, `1` or `-1` (all in-sync replicas).
    pub acks: i16,
    /// How long the broker may wait for replication before answering `REQUEST_TIMED_OUT`.
    pub timeout_ms: i32,
    /// Attempts after the first one for retriable errors.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_backoff_ms: u64,
    /// Target size of one batch when [`Producer::produce_values`] splits values into batches.
    pub batch_bytes: usize,
    /// Settings of the connection the producer (re)opens.
    pub connection: ConnectionConfig,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            timeout_ms: 30_000,
            retries: 5,
            retry_backoff_ms: 100,
            batch_bytes: 256 * 1024,
            connection: ConnectionConfig::default(),
        }
    }
}

/// How the producer treats a broker error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Not written; trying again may succeed.
    RetriableDefinite,
    /// Maybe written; trying again may duplicate.
    RetriableIndefinite,
    /// Not written; trying again will not help.
    Fatal,
}

/// Classifies a produce error code (Kafka's `Errors` table, retriable column).
pub fn classify(code: ErrorCode) -> ErrorClass {
    match code {
        // KAFKA_STORAGE_ERROR: a broker whose fsync failed answers it for batches it appended but
        // could not make durable; they may still be on disk after its restart.
        ErrorCode::NOT_LEADER_OR_FOLLOWER
        | ErrorCode::REQUEST_TIMED_OUT
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::KAFKA_STORAGE_ERROR => ErrorClass::RetriableIndefinite,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::LEADER_NOT_AVAILABLE
        | ErrorCode::NOT_ENOUGH_REPLICAS => ErrorClass::RetriableDefinite,
        _ => ErrorClass::Fatal,
    }
}

/// Builds a Produce request carrying `records` (one or more whole v2 batches) for one partition.
pub fn produce_request(
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// Extracts `(error_code, base_offset)` of `partition` from a Produce response.
pub fn partition_result(resp: &ProduceResponse, partition: i32) -> Option<(ErrorCode, i64)> {
    resp.responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .map(|p| (ErrorCode(p.error_code), p.base_offset))
}

/// A producer for one broker. Reconnects after a connection loss.
pub struct Producer {
    addr: String,
    config: ProducerConfig,
    conn: Mutex<Option<Arc<Connection>>>,
}

impl Producer {
    pub fn new(addr: &str, config: ProducerConfig) -> Producer {
        Producer {
            addr: addr.to_string(),
            config,
            conn: Mutex::new(None),
        }
    }

    /// The live connection, opened if there is none or the last one broke.
    pub async fn connection(&self) -> Result<Arc<Connection>, ConnectionError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_broken()) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(Connection::connect(&self.addr, self.config.connection.clone()).await?);
        *guard = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Splits `values` (`(value, key)` pairs) into batches of about `batch_bytes` and produces
    /// them one after another, all stamped `timestamp_ms`. Returns each batch's record count and
    /// outcome, in order.
    pub async fn produce_values(
        &self,
        topic: &str,
        partition: i32,
        values: &[ValueAndKey<'_>],
        timestamp_ms: i64,
    ) -> Vec<(usize, ProduceOutcome)> {
        let mut out = Vec::new();
        for chunk in chunk_by_bytes(values, self.config.batch_bytes) {
            let batch = Bytes::from(build_batch(chunk, timestamp_ms));
            let outcome = self.produce_batch(topic, partition, batch).await;
            out.push((chunk.len(), outcome));
        }
        out
    }

    /// Produces one or more raw v2 batches, retrying as [`classify`] allows.
    pub async fn produce_batch(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
    ) -> ProduceOutcome {
        let mut indefinite: Option<IndefiniteReason> = None;
        let mut attempt = 0;
        loop {
            let result = self.attempt(topic, partition, records.clone()).await;
            let retriable = match &result {
                ProduceOutcome::Ok { base_offset, .. } => {
                    return ProduceOutcome::Ok {
                        base_offset: *base_offset,
                        after_indefinite: indefinite.is_some(),
                    };
                }
                ProduceOutcome::Failed(code) => classify(*code) == ErrorClass::RetriableDefinite,
                ProduceOutcome::Indefinite(IndefiniteReason::NoAcks) => return result,
                ProduceOutcome::Indefinite(reason) => {
                    indefinite = Some(reason.clone());
                    true
                }
            };
            if !retriable || attempt >= self.config.retries {
                return match indefinite {
                    Some(reason) => ProduceOutcome::Indefinite(reason),
                    None => result,
                };
            }
            attempt += 1;
            tokio::time::sleep(std::time::Duration::from_millis(
                self.config.retry_backoff_ms,
            ))
            .await;
        }
    }

    /// One attempt, no retry.
    async fn attempt(&self, topic: &str, partition: i32, records: Bytes) -> ProduceOutcome {
        let conn = match self.connection().await {
            Ok(c) => c,
            // Nothing was sent: a definite failure, retriable like a missing leader.
            Err(_) => return ProduceOutcome::Failed(ErrorCode::LEADER_NOT_AVAILABLE),
        };
        match start_produce(
            &conn,
            topic,
            partition,
            records,
            self.config.acks,
            self.config.timeout_ms,
        )
        .await
        {
            Ok(Some(in_flight)) => finish_produce(in_flight, partition).await,
            Ok(None) => ProduceOutcome::Indefinite(IndefiniteReason::NoAcks),
            Err(ProducerError::NotSent(e)) if e.is_indefinite() => {
                ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost(e.to_string()))
            }
            Err(ProducerError::NotSent(e)) if e.is_connection_lost() => {
                ProduceOutcome::Failed(ErrorCode::LEADER_NOT_AVAILABLE)
            }
            Err(_) => ProduceOutcome::Failed(ErrorCode::UNKNOWN_SERVER_ERROR),
        }
    }
}

/// Writes a Produce request without waiting. `None` for `acks=0`, which gets no response.
/// Benchmarks call this repeatedly to keep many requests in flight.
pub async fn start_produce(
    conn: &Connection,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> Result<Option<InFlight<ProduceResponse>>, ProducerError> {
    let version = conn
        .version_for(ApiKey::Produce, PRODUCE_VERSIONS)
        .map_err(ProducerError::NotSent)?;
    let req = produce_request(topic, partition, records, acks, timeout_ms);
    if acks == 0 {
        conn.send_without_response(&req, version)
            .await
            .map_err(ProducerError::NotSent)?;
        return Ok(None);
    }
    let in_flight = conn
        .start(&req, version)
        .await
        .map_err(ProducerError::NotSent)?;
    Ok(Some(in_flight))
}

/// Waits for a started Produce and turns the response into an outcome.
pub async fn finish_produce(
    in_flight: InFlight<ProduceResponse>,
    partition: i32,
) -> ProduceOutcome {
    match in_flight.wait().await {
        Ok(resp) => match partition_result(&resp, partition) {
            Some((code, base_offset)) if code.is_ok() => ProduceOutcome::Ok {
                base_offset,
                after_indefinite: false,
            },
            Some((code, _)) if classify(code) == ErrorClass::RetriableIndefinite => {
                ProduceOutcome::Indefinite(IndefiniteReason::Broker(code))
            }
            Some((code, _)) => ProduceOutcome::Failed(code),
            // The broker answered without our partition: a broken response, and the write
            // itself is undecided.
            None => ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost(
                "response without the partition".to_string(),
            )),
        },
        Err(e) if e.is_indefinite() => {
            ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost(e.to_string()))
        }
        // A response we could not decode: the broker did process something.
        Err(e) => ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost(e.to_string())),
    }
}

/// Splits values into runs whose payload is about `max_bytes` (at least one value per run).
pub fn chunk_by_bytes<'a, 'b>(
    values: &'a [ValueAndKey<'b>],
    max_bytes: usize,
) -> Vec<&'a [ValueAndKey<'b>]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, (v, k)) in values.iter().enumerate() {
        let len = v.len() + k.map_or(0, |k| k.len()) + 16;
        if i > start && size + len > max_bytes {
            chunks.push(&values[start..i]);
            start = i;
            size = 0;
        }
        size += len;
    }
    if start < values.len() {
        chunks.push(&values[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_codes_are_classified() {
        assert_eq!(
            classify(ErrorCode::NOT_LEADER_OR_FOLLOWER),
            ErrorClass::RetriableIndefinite
        );
        assert_eq!(
            classify(ErrorCode::REQUEST_TIMED_OUT),
            ErrorClass::RetriableIndefinite
        );
        assert_eq!(
            classify(ErrorCode::NOT_ENOUGH_REPLICAS),
            ErrorClass::RetriableDefinite
        );
        assert_eq!(classify(ErrorCode::CORRUPT_MESSAGE), ErrorClass::Fatal);
    }

    #[test]
    fn chunks_cover_all_values_in_order() {
        let v = [0u8; 100];
        let values: Vec<(&[u8], Option<&[u8]>)> = (0..50).map(|_| (&v[..], None)).collect();
        let chunks = chunk_by_bytes(&values, 1000);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 50);
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 9));
        let big = [0u8; 5000];
        let one: Vec<(&[u8], Option<&[u8]>)> = vec![(&big[..], None), (&big[..], None)];
        assert_eq!(chunk_by_bytes(&one, 1000).len(), 2);
    }

    #[test]
    fn request_carries_the_batch() {
        let batch = Bytes::from(build_batch(&[(b"x", None)], 1));
        let req = produce_request("t", 2, batch.clone(), -1, 1000);
        assert_eq!(req.topic_data[0].partition_data[0].index, 2);
        assert_eq!(req.topic_data[0].partition_data[0].records, Some(batch));
    }
}
