//! The [`ProducerConfig`]: the producer's settings under Kafka's names, and what it refuses.

use thiserror::Error;

use super::connection::ConnectionConfig;
use super::sequencer::{MAX_IN_FLIGHT_IDEMPOTENT, ResetPolicy, SequencerConfig};

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
    /// Longest a batch may take from [`Producer::send`][send] to its outcome, retries
    /// included [`delivery.timeout.ms`, 120 s].
    ///
    /// [send]: super::producer::Producer::send
    pub delivery_timeout_ms: u64,
    /// Pause before retrying [`retry.backoff.ms`, 100 ms].
    pub retry_backoff_ms: u64,
    /// Unresolved batches per partition [`max.in.flight.requests.per.connection`, 5].
    pub max_in_flight: usize,
    /// What an epoch bump after a lost sequence does with batches that may already be written:
    /// complete them indefinite (default), or resend them under the new epoch as librdkafka and
    /// the Java client do (see [`super::sequencer`]).
    pub reset_policy: ResetPolicy,
    /// Target size of one batch when [`Producer::produce_values`][produce_values] splits values
    /// into batches.
    ///
    /// [produce_values]: super::producer::Producer::produce_values
    pub batch_bytes: usize,
    /// Keep the last this many attempts for [`Producer::attempts`][attempts] (0: none). For
    /// simulations and tests that must show which broker saw which attempt.
    ///
    /// [attempts]: super::producer::Producer::attempts
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
