//! Newtypes for the identifiers and positions Kafka names.

use std::fmt;

/// An offset in a partition log. Dense: every record has one, batches cover
/// `[base_offset, base_offset + last_offset_delta]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The epoch of a partition's leader, stamped into every batch it appends
/// (`partitionLeaderEpoch`, KIP-101).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

/// A broker's `node.id`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct NodeId(pub i32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Monotonic time in nanoseconds, supplied by the driver. Never read from the OS in `core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    pub fn from_millis(ms: u64) -> Instant {
        Instant(ms.saturating_mul(1_000_000))
    }

    pub fn saturating_add_millis(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms.saturating_mul(1_000_000)))
    }
}

/// An idempotent producer's id, handed out by InitProducerId (KIP-98). `-1` in a batch header
/// means the batch has no producer ([`ProducerId::NONE`], Kafka's `NO_PRODUCER_ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProducerId(pub i64);

impl ProducerId {
    /// Kafka's `RecordBatch.NO_PRODUCER_ID`.
    pub const NONE: ProducerId = ProducerId(-1);
}

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A producer id's epoch (KIP-98, bumped by KIP-360): a batch with an older epoch than the
/// partition has seen comes from a fenced producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProducerEpoch(pub i16);

impl ProducerEpoch {
    /// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`: also what a partition holds for a producer it
    /// does not know.
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
}

/// A record's sequence number within one (producer id, epoch, partition) (KIP-98): the first
/// record of a batch carries `baseSequence`, the next ones follow, wrapping from `i32::MAX` to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sequence(pub i32);

impl Sequence {
    /// Kafka's `RecordBatch.NO_SEQUENCE`.
    pub const NONE: Sequence = Sequence(-1);

    /// `self + n` with Kafka's wrap-around at `i32::MAX` (`DefaultRecordBatch.incrementSequence`):
    /// the sequence after `i32::MAX` is 0. `n` is a record count delta, never negative.
    pub fn increment(self, n: i32) -> Sequence {
        // In i64 so that no input overflows; for the inputs Kafka allows (both >= 0) this is
        // exactly `incrementSequence`.
        let sum = i64::from(self.0) + i64::from(n);
        if sum > i64::from(i32::MAX) {
            Sequence((sum - i64::from(i32::MAX) - 1) as i32)
        } else {
            Sequence(sum as i32)
        }
    }

    /// Whether `next` is the sequence right after `self`, wrapping at `i32::MAX` (Kafka's
    /// `ProducerAppendInfo.inSequence`).
    pub fn is_followed_by(self, next: Sequence) -> bool {
        i64::from(next.0) == i64::from(self.0) + 1 || (next.0 == 0 && self.0 == i32::MAX)
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
