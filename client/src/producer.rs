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
use strata_core::batch::build_batch;
use strata_core::error::ErrorCode;

use super::connection::{Connection, ConnectionError};
pub use super::outcome::{ErrorClass, IndefiniteReason, ProduceOutcome, classify};
pub use super::produce_request::{
    PRODUCE_VERSIONS, ProducerError, finish_attempt, finish_attempt_with_leader, finish_produce,
    produce_request, single_attempt_outcome, start_produce,
};
pub use super::producer_config::{ProducerConfig, ProducerConfigError};
use super::sender::{AttemptRecord, Delivery, ProducerStats, Sender};

/// One record to produce: `(value, key)`.
pub type ValueAndKey<'a> = (&'a [u8], Option<&'a [u8]>);

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
}
