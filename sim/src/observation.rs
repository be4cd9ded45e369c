//! Observations of the nodes, made by the harness, for the cluster checkers.
//!
//! A [`History`](crate::history::History) records what clients saw; it cannot show two leaders
//! in one leader epoch, or two replicas that disagree below the high watermark, when no client
//! happens to read the wrong one. So the harness also samples each simulated node's in-process
//! broker state (design §4: "one leader per (partition, leader epoch), replicas byte-identical
//! below the high watermark") and hands the samples to
//! [`split_brain`](crate::checker::split_brain) and
//! [`replica_divergence`](crate::checker::replica_divergence).
//!
//! # Recording contract
//!
//! - [`LeaderClaim`]s may be recorded in any order; the checker orders them by `at` (ties keep
//!   recording order). Sample only brokers that serve requests: a claim is what the node would
//!   act on (accept produce requests as leader of that epoch).
//! - [`HighWatermarkSample`]s of one replica (same `node`, `replica`, `tp`) are recorded in the
//!   order that replica published them; samples of different replicas interleave freely.
//! - [`ReplicaCopy`]s are read once, at the end of the run, after the liveness phase healed
//!   every fault and the cluster converged. `batches` are in offset order, each the exact bytes
//!   of one record batch (v2, 61-byte header included) as the replica stores it.
//! - [`Observations::final_high_watermarks`] and [`Observations::final_isr`] come from each
//!   partition's leader at that same point, and have the same keys: a partition with a final
//!   high watermark has a final ISR.
//! - Partitions must not be compacted: Kafka compacts each replica on its own schedule, so
//!   compacted replicas are not byte-identical.
//!
//! Plain data, like the history: it depends on neither madsim nor the node, so the Jepsen harness
//! can fill it too (from broker admin endpoints) and run the same checkers.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use strata_core::types::{Instant, LeaderEpoch, NodeId, Offset};

use crate::history::TopicPartition;

/// A node said it leads `tp` in `leader_epoch` at simulated time `at` (sampled by the harness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderClaim {
    pub at: Instant,
    pub node: NodeId,
    pub tp: TopicPartition,
    pub leader_epoch: LeaderEpoch,
}

/// One batch of a replica's log: its offsets and its exact bytes (the v2 batch, header
/// included), so that two copies compare byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchCopy {
    pub base_offset: Offset,
    /// The batch's last offset (`base_offset + lastOffsetDelta`), inclusive.
    pub last_offset: Offset,
    pub bytes: Bytes,
}

impl BatchCopy {
    /// Whether the batch holds `offset`.
    pub fn contains(&self, offset: Offset) -> bool {
        self.base_offset <= offset && offset <= self.last_offset
    }
}

/// A replica's log, read at the end of a run after healing and convergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaCopy {
    pub node: NodeId,
    pub tp: TopicPartition,
    /// The first offset the replica serves (retention and DeleteRecords move it; it may fall
    /// inside a batch, whose earlier records are then still on disk but not served).
    pub log_start_offset: Offset,
    /// The offset after the last record the replica holds.
    pub log_end_offset: Offset,
    /// Every batch on disk, in offset order.
    pub batches: Vec<BatchCopy>,
}

impl ReplicaCopy {
    /// The batch holding `offset`, if the replica serves that offset (`log_start_offset <=
    /// offset < log_end_offset`) and some batch holds it.
    pub fn batch_at(&self, offset: Offset) -> Option<&BatchCopy> {
        if offset < self.log_start_offset || offset >= self.log_end_offset {
            return None;
        }
        // Batches are in offset order: the candidate is the last one starting at or before it.
        let after = self.batches.partition_point(|b| b.base_offset <= offset);
        let candidate = self.batches.get(after.checked_sub(1)?)?;
        candidate.contains(offset).then_some(candidate)
    }
}

/// A node published a new high watermark for its replica of `tp` (recorded by a watcher of the
/// replica's state, so every value that stayed published long enough for a task to wake on it
/// is seen, not only those a periodic sample happens to hit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HighWatermarkSample {
    pub at: Instant,
    pub node: NodeId,
    /// Which replica object of that node: distinct for every incarnation (a restart, or the
    /// replica created again), equal for every sample of one.
    pub replica: u64,
    pub tp: TopicPartition,
    pub high_watermark: Offset,
}

/// Everything the harness observed of the nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// Leadership as each node saw it, sampled during the whole run.
    pub leader_claims: Vec<LeaderClaim>,
    /// Every high watermark each replica published, in the order each replica published them.
    pub high_watermarks: Vec<HighWatermarkSample>,
    /// Every replica's log at the end of the run.
    pub replicas: Vec<ReplicaCopy>,
    /// The leader's high watermark per partition at the end.
    pub final_high_watermarks: BTreeMap<TopicPartition, Offset>,
    /// The replicas expected to hold everything below the high watermark: the ISR at the end.
    pub final_isr: BTreeMap<TopicPartition, Vec<NodeId>>,
}

impl Observations {
    pub fn is_empty(&self) -> bool {
        self.leader_claims.is_empty()
            && self.high_watermarks.is_empty()
            && self.replicas.is_empty()
            && self.final_high_watermarks.is_empty()
            && self.final_isr.is_empty()
    }
}

/// A simulated time shown as seconds with nine decimals, as history dumps show it.
pub(crate) struct At(pub Instant);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0.0 / 1_000_000_000,
            self.0.0 % 1_000_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(log_start: i64, log_end: i64, batches: &[(i64, i64)]) -> ReplicaCopy {
        ReplicaCopy {
            node: NodeId(1),
            tp: TopicPartition::new("t", 0),
            log_start_offset: Offset(log_start),
            log_end_offset: Offset(log_end),
            batches: batches
                .iter()
                .map(|&(base, last)| BatchCopy {
                    base_offset: Offset(base),
                    last_offset: Offset(last),
                    bytes: Bytes::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn batch_at_finds_the_batch_holding_a_served_offset() {
        // A hole at 4..6 (never happens without compaction, but batch_at must not invent one).
        let c = copy(1, 9, &[(0, 3), (6, 8)]);
        let base = |o: i64| c.batch_at(Offset(o)).map(|b| b.base_offset.0);
        assert_eq!(base(0), None, "below the log start");
        assert_eq!(base(1), Some(0), "a batch straddling the log start");
        assert_eq!(base(3), Some(0));
        assert_eq!(base(4), None, "in the hole");
        assert_eq!(base(6), Some(6));
        assert_eq!(base(8), Some(6));
        assert_eq!(base(9), None, "at the log end");
        assert_eq!(copy(0, 0, &[]).batch_at(Offset(0)), None);
    }
}
