//! Producing to topic-partitions: the [`Producer`], its settings, its outcomes, and the raw
//! Produce request helpers that benchmarks and tests use directly.
//!
//! A produce ends one of three ways, and the difference matters to every checker:
//!
//! - **Ok**: the broker acknowledged the batch at `base_offset`.
//! - **Failed**: the batch was definitely not written (a definite refusal such as
//!   `CORRUPT_MESSAGE`, `MESSAGE_TOO_LARGE` or `NOT_ENOUGH_REPLICAS`, or it was never sent).
//! - **Indefinite**: we cannot know. `NOT_LEADER_OR_FOLLOWER` (the old leader may have appended
//!   before it lost leadership), `REQUEST_TIMED_OUT` and `NOT_ENOUGH_REPLICAS_AFTER_APPEND` (the
//!   leader appended, replication did not finish in time), a connection lost or a request timed
//!   out after the request was written, and any `acks=0` send. The write may or may not have
//!   happened (design §2).
//!
//! The [`Producer`] is idempotent by default (`enable_idempotence`, as in Kafka clients since
//! 3.0): it takes a producer id with InitProducerId and stamps every batch with it, an epoch and
//! per-partition sequence numbers, so a retry that reaches a broker already holding the batch is
//! answered with the original offsets instead of being written again. Its retries are then safe:
//! they go on (bounded by `delivery_timeout_ms`) across leader changes, up to five batches per
//! partition in flight. The rules live in [`super::sequencer`] (sans-IO) and the IO in
//! [`super::sender`].
//!
//! Retries do not erase an indefinite attempt: a later definite failure is reported as
//! indefinite, and a later success is flagged `after_indefinite`. Only without idempotence does
//! that success mean the batch may be in the log twice (`possible_duplicate`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_core::batch::build_batch;
use strata_core::error::ErrorCode;
use thiserror::Error;

use super::connection::{Connection, ConnectionConfig, ConnectionError, InFlight};
pub use super::outcome::{ErrorClass, IndefiniteReason, ProduceOutcome, classify};
use super::sender::{AttemptRecord, Delivery, ProducerStats, Sender};
use super::sequencer::{AttemptResult, MAX_IN_FLIGHT_IDEMPOTENT, ResetPolicy, SequencerConfig};

/// One record to produce: `(value, key)`.
pub type ValueAndKey<'a> = (&'a [u8], Option<&'a [u8]>);

/// Produce versions this client can speak: 3 is the first with v2 batches, 11 the last without
/// topic ids.
pub const PRODUCE_VERSIONS: (i16, i16) = (3, 11);

/// Errors raised before anything was sent: the batch was definitely not written.
#[derive(Debug, Error)]
pub enum ProducerError {
    #[error("produce request could not be sent: {0}")]
    NotSent(ConnectionError),
    #[error("produce response has no entry for the partition")]
    MissingPartition,
}

/// A [`ProducerConfig`] the producer refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProducerConfigError {
    #[error("an idempotent producer needs acks=-1 (all), not {0}")]
    IdempotenceNeedsAcksAll(i16),
    #[error(
        "an idempotent producer has 1..={MAX_IN_FLIGHT_IDEMPOTENT} batches in flight per partition, not {0}"
    )]
    IdempotenceInFlight(usize),
    #[error("max_in_flight must be at least 1")]
    NoInFlight,
    #[error("request_timeout_ms must be positive")]
    NoRequestTimeout,
    #[error("no bootstrap address")]
    NoBootstrap,
    #[error("connections_per_broker must be at least 1")]
    NoConnections,
}

/// Producer settings (Kafka's names in brackets).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Producer ids, epochs and sequence numbers, so that retries never write twice
    /// [`enable.idempotence`, default true]. Needs `acks = -1` and `max_in_flight <= 5`.
    pub enable_idempotence: bool,
    /// `0`, `1` or `-1` (all in-sync replicas) [`acks`, default -1].
    pub acks: i16,
    /// How long the broker may wait for replication before answering `REQUEST_TIMED_OUT` (the
    /// Produce request's `timeout_ms`).
    pub timeout_ms: i32,
    /// How long the producer waits for any response before it gives up on the connection (the
    /// attempt is then indefinite) [`request.timeout.ms`, 30 s].
    pub request_timeout_ms: u64,
    /// Retries of one batch after its first attempt [`retries`, unbounded]: the delivery
    /// timeout is what bounds them.
    pub retries: u32,
    /// Longest a batch may take from [`Producer::send`] to its outcome, retries included
    /// [`delivery.timeout.ms`, 120 s].
    pub delivery_timeout_ms: u64,
    /// Pause before retrying [`retry.backoff.ms`, 100 ms].
    pub retry_backoff_ms: u64,
    /// Unresolved batches per partition [`max.in.flight.requests.per.connection`, 5].
    pub max_in_flight: usize,
    /// What an epoch bump after a lost sequence does with batches that may already be written:
    /// complete them indefinite (default), or resend them under the new epoch as librdkafka and
    /// the Java client do (see [`super::sequencer`]).
    pub reset_policy: ResetPolicy,
    /// Target size of one batch when [`Producer::produce_values`] splits values into batches.
    pub batch_bytes: usize,
    /// Keep the last this many attempts for [`Producer::attempts`] (0: none). For simulations
    /// and tests that must show which broker saw which attempt.
    pub attempt_log: usize,
    /// Connections per broker; partitions share them round-robin by index (a benchmark's knob).
    pub connections_per_broker: usize,
    /// Settings of the connections the producer opens.
    pub connection: ConnectionConfig,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            enable_idempotence: true,
            acks: -1,
            timeout_ms: 30_000,
            request_timeout_ms: 30_000,
            retries: u32::MAX,
            delivery_timeout_ms: 120_000,
            retry_backoff_ms: 100,
            max_in_flight: MAX_IN_FLIGHT_IDEMPOTENT,
            reset_policy: ResetPolicy::default(),
            batch_bytes: 256 * 1024,
            attempt_log: 0,
            connections_per_broker: 1,
            connection: ConnectionConfig::default(),
        }
    }
}

impl ProducerConfig {
    /// Refuses what Kafka refuses: idempotence without `acks=-1` or with more than five batches
    /// in flight.
    pub fn validate(&self) -> Result<(), ProducerConfigError> {
        if self.max_in_flight == 0 {
            return Err(ProducerConfigError::NoInFlight);
        }
        if self.request_timeout_ms == 0 {
            return Err(ProducerConfigError::NoRequestTimeout);
        }
        if self.connections_per_broker == 0 {
            return Err(ProducerConfigError::NoConnections);
        }
        if self.enable_idempotence {
            if self.acks != -1 {
                return Err(ProducerConfigError::IdempotenceNeedsAcksAll(self.acks));
            }
            if self.max_in_flight > MAX_IN_FLIGHT_IDEMPOTENT {
                return Err(ProducerConfigError::IdempotenceInFlight(self.max_in_flight));
            }
        }
        Ok(())
    }

    pub(crate) fn sequencer_config(&self) -> SequencerConfig {
        SequencerConfig {
            idempotent: self.enable_idempotence,
            max_in_flight: self.max_in_flight,
            retries: self.retries,
            retry_backoff_ms: self.retry_backoff_ms,
            delivery_timeout_ms: self.delivery_timeout_ms,
            reset_policy: self.reset_policy,
        }
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

/// Strata's producer: routes each partition's batches to its leader (Metadata), pipelines up to
/// `max_in_flight` batches per partition, retries, and is idempotent by default (see the module
/// docs). Cheap to share by reference; one task per partition does the sending, and lives until
/// the producer is dropped and its batches are done.
pub struct Producer {
    sender: Sender,
}

impl Producer {
    /// A producer bootstrapping from `bootstrap` (`host:port`, or several separated by commas).
    /// Panics on a config [`ProducerConfig::validate`] refuses; see [`Producer::try_new`].
    pub fn new(bootstrap: &str, config: ProducerConfig) -> Producer {
        let addrs: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        match Producer::try_new(&addrs, config) {
            Ok(p) => p,
            Err(e) => panic!("invalid producer config: {e}"),
        }
    }

    /// A producer bootstrapping from any of `bootstrap`.
    pub fn try_new(
        bootstrap: &[String],
        config: ProducerConfig,
    ) -> Result<Producer, ProducerConfigError> {
        config.validate()?;
        if bootstrap.is_empty() {
            return Err(ProducerConfigError::NoBootstrap);
        }
        Ok(Producer {
            sender: Sender::new(bootstrap, config),
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        self.sender.config()
    }

    /// Produces `records` as one batch to `topic`-`partition` and waits for its outcome.
    /// Batches of one partition are written in the order of the calls. Dropping the future does
    /// not withdraw the batch: it is still sent (its outcome is then unknown to the caller).
    pub async fn send(
        &self,
        topic: &str,
        partition: i32,
        records: &[ValueAndKey<'_>],
    ) -> ProduceOutcome {
        if records.is_empty() {
            return ProduceOutcome::Failed(ErrorCode::INVALID_RECORD);
        }
        let batch = Bytes::from(build_batch(records, crate::clock::now_ms()));
        self.produce_batch(topic, partition, batch).await
    }

    /// Produces one raw v2 batch built by the caller (without producer id: the producer stamps
    /// its own id, epoch and sequence when idempotent, recomputing the CRC). Without idempotence
    /// `records` may hold several batches, sent as they are.
    pub async fn produce_batch(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
    ) -> ProduceOutcome {
        match self.enqueue(topic, partition, records) {
            Ok(delivery) => delivery.await,
            Err(outcome) => outcome,
        }
    }

    /// Queues one raw batch (as [`Producer::produce_batch`]) without waiting: call it several
    /// times to pipeline, then await the [`Delivery`]s. `Err` is the outcome of a batch refused
    /// before it was queued (not a single v2 batch without producer id, when idempotent).
    pub fn enqueue(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
    ) -> Result<Delivery, ProduceOutcome> {
        self.sender.enqueue(topic, partition, records)
    }

    /// Attempts, retries and resets so far, over every partition.
    pub fn stats(&self) -> ProducerStats {
        self.sender.stats()
    }

    /// Splits `values` (`(value, key)` pairs) into batches of about `batch_bytes`, all stamped
    /// `timestamp_ms`, queues them at once (so they are pipelined), and waits for every outcome.
    /// Returns each batch's record count and outcome, in order.
    pub async fn produce_values(
        &self,
        topic: &str,
        partition: i32,
        values: &[ValueAndKey<'_>],
        timestamp_ms: i64,
    ) -> Vec<(usize, ProduceOutcome)> {
        let mut queued = Vec::new();
        for chunk in chunk_by_bytes(values, self.config().batch_bytes) {
            let batch = Bytes::from(build_batch(chunk, timestamp_ms));
            queued.push((chunk.len(), self.sender.enqueue(topic, partition, batch)));
        }
        let mut out = Vec::new();
        for (n, q) in queued {
            let outcome = match q {
                Ok(delivery) => delivery.await,
                Err(outcome) => outcome,
            };
            out.push((n, outcome));
        }
        out
    }

    /// The last `attempt_log` attempts, oldest first (empty unless configured).
    pub fn attempts(&self) -> Vec<AttemptRecord> {
        self.sender.attempts()
    }

    /// A live connection to some broker of the cluster (for requests beside producing).
    pub async fn connection(&self) -> Result<Arc<Connection>, ConnectionError> {
        self.sender
            .any_connection()
            .await
            .map_err(|e| ConnectionError::Closed(e.to_string()))
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

/// Waits for a started Produce and says how the attempt ended.
pub async fn finish_attempt(in_flight: InFlight<ProduceResponse>, partition: i32) -> AttemptResult {
    finish_attempt_with_leader(in_flight, partition).await.0
}

/// [`finish_attempt`], with the leader and leader epoch the broker answered as, when it named
/// them (`current_leader`, Produce v10+; see `handlers/produce.rs`).
pub async fn finish_attempt_with_leader(
    in_flight: InFlight<ProduceResponse>,
    partition: i32,
) -> (AttemptResult, Option<(i32, i32)>) {
    match in_flight.wait().await {
        Ok(resp) => {
            let answered = resp
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == partition);
            match answered {
                Some(p) => {
                    let leader = &p.current_leader;
                    let named = (leader.leader_id.0 >= 0 && leader.leader_epoch >= 0)
                        .then_some((leader.leader_id.0, leader.leader_epoch));
                    let result = AttemptResult::Answered {
                        code: ErrorCode(p.error_code),
                        base_offset: p.base_offset,
                    };
                    (result, named)
                }
                // The broker answered without our partition: a broken response, and the write
                // itself is undecided.
                None => (
                    AttemptResult::NoAnswer("response without the partition".to_string()),
                    None,
                ),
            }
        }
        // Lost after it was written, or a response we could not decode (the broker did process
        // something): undecided either way.
        Err(e) => (AttemptResult::NoAnswer(e.to_string()), None),
    }
}

/// Waits for a started Produce and turns the response into the outcome of that one attempt.
pub async fn finish_produce(
    in_flight: InFlight<ProduceResponse>,
    partition: i32,
) -> ProduceOutcome {
    single_attempt_outcome(finish_attempt(in_flight, partition).await)
}

/// The outcome of a batch sent once, without producer id.
pub fn single_attempt_outcome(result: AttemptResult) -> ProduceOutcome {
    match result {
        AttemptResult::Answered { code, base_offset } if code.is_ok() => ProduceOutcome::Ok {
            base_offset,
            after_indefinite: false,
            possible_duplicate: false,
        },
        AttemptResult::Answered { code, .. }
            if classify(code) == ErrorClass::RetriableIndefinite =>
        {
            ProduceOutcome::Indefinite(IndefiniteReason::Broker(code))
        }
        AttemptResult::Answered { code, .. } | AttemptResult::NotSent(code) => {
            ProduceOutcome::Failed(code)
        }
        AttemptResult::NoAnswer(reason) => {
            ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost(reason))
        }
        AttemptResult::NoAcks => ProduceOutcome::Indefinite(IndefiniteReason::NoAcks),
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
