//! How a produce ends, and what a broker's error code means for it: the outcome types the
//! sans-IO [`super::sequencer`] decides and the [`super::producer`] reports. See the producer's
//! module docs for the three ends (Ok, Failed, Indefinite).

use strata_core::error::ErrorCode;

/// Why a produce attempt's outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndefiniteReason {
    /// The broker answered with an error that leaves the write undecided.
    Broker(ErrorCode),
    /// The connection broke, or the request timed out, after the request was written.
    ConnectionLost(String),
    /// `acks=0`: the broker never says.
    NoAcks,
}

/// The result of producing one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProduceOutcome {
    /// Acknowledged at `base_offset` (`-1`: the broker answered `DUPLICATE_SEQUENCE_NUMBER`,
    /// written earlier at an offset it did not say).
    ///
    /// `after_indefinite`: an earlier attempt of the same batch was indefinite.
    /// `possible_duplicate`: the batch may also be in the log at another offset. A
    /// non-idempotent producer sets it after an indefinite attempt, an idempotent one only under
    /// [`ResetPolicy::ResendUnderNewEpoch`][resend] for a batch resent under a new epoch after an
    /// indefinite attempt; otherwise an idempotent producer's retries carry the same producer
    /// id, epoch and sequence, so the broker writes the batch once, and `Ok` after indefinite
    /// attempts is still exactly once.
    ///
    /// [resend]: super::sequencer::ResetPolicy::ResendUnderNewEpoch
    Ok {
        base_offset: i64,
        after_indefinite: bool,
        possible_duplicate: bool,
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
