//! replica-high-watermark-regression: a replica published a lower high watermark than it had
//! published before.
//!
//! Judges the harness's [`HighWatermarkSample`](crate::observation::HighWatermarkSample)s, not the client history. Not in Jepsen; one of
//! Strata's own claims (design §4: the high watermark never goes back). The consumer-side
//! [`high_watermark`](super::high_watermark) checker sees only what fetches return, and a leader
//! serves no fetch until its high watermark reached its epoch's start, so a drop at the start of
//! a leadership or in a follower (whose high watermark still decides an acks=-1 wait that started
//! when it led) stays invisible to clients until it costs an acknowledged write. Every value a
//! replica publishes is what its waiters act on: a drop means some waiter may have been answered
//! on a mark the replica no longer stands behind.
//!
//! Per replica incarnation: a restarted node (or a replica created again) starts from its
//! checkpoint or its log start and learns the mark again, which is not a regression. Reported
//! once per (node, replica, partition), at the first drop.

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::{Instant, NodeId, Offset};

use crate::history::TopicPartition;
use crate::observation::{At, Observations};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaHighWatermarkRegression {
    pub node: NodeId,
    pub replica: u64,
    pub tp: TopicPartition,
    /// The highest mark the replica had published before, and when.
    pub highest: (Instant, Offset),
    /// The first lower mark published after it, and when.
    pub lower: (Instant, Offset),
}

impl fmt::Display for ReplicaHighWatermarkRegression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} (replica {}) published high watermark {} of {} at {}, then {} at {}",
            self.node,
            self.replica,
            self.highest.1,
            self.tp,
            At(self.highest.0),
            self.lower.1,
            At(self.lower.0)
        )
    }
}

pub fn check(observations: &Observations) -> Vec<ReplicaHighWatermarkRegression> {
    let mut highest: BTreeMap<(NodeId, u64, &TopicPartition), (Instant, Offset)> = BTreeMap::new();
    let mut reported: BTreeMap<(NodeId, u64, &TopicPartition), ()> = BTreeMap::new();
    let mut anomalies = Vec::new();
    for s in &observations.high_watermarks {
        let key = (s.node, s.replica, &s.tp);
        match highest.get(&key) {
            Some(&top) if s.high_watermark < top.1 => {
                if reported.insert(key, ()).is_none() {
                    anomalies.push(ReplicaHighWatermarkRegression {
                        node: s.node,
                        replica: s.replica,
                        tp: s.tp.clone(),
                        highest: top,
                        lower: (s.at, s.high_watermark),
                    });
                }
            }
            Some(&top) if s.high_watermark == top.1 => {}
            _ => {
                highest.insert(key, (s.at, s.high_watermark));
            }
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::HighWatermarkSample;

    fn sample(at: u64, node: i32, replica: u64, hw: i64) -> HighWatermarkSample {
        HighWatermarkSample {
            at: Instant(at),
            node: NodeId(node),
            replica,
            tp: TopicPartition::new("t", 0),
            high_watermark: Offset(hw),
        }
    }

    fn run(samples: Vec<HighWatermarkSample>) -> Vec<ReplicaHighWatermarkRegression> {
        check(&Observations {
            high_watermarks: samples,
            ..Observations::default()
        })
    }

    #[test]
    fn quiet_when_every_replica_only_moves_forward() {
        assert!(run(vec![]).is_empty());
        assert!(
            run(vec![
                sample(1, 1, 0, 0),
                sample(2, 1, 0, 5),
                sample(3, 1, 0, 5),
                sample(4, 2, 1, 3),
                sample(5, 1, 0, 9),
            ])
            .is_empty()
        );
    }

    #[test]
    fn a_new_incarnation_starts_afresh() {
        // Node 1 restarts (replica 0 → 2) and learns its mark again from its checkpoint.
        assert!(
            run(vec![
                sample(1, 1, 0, 40),
                sample(9, 1, 2, 12),
                sample(10, 1, 2, 40)
            ])
            .is_empty()
        );
    }

    #[test]
    fn reports_a_drop_once_with_the_highest_mark_before_it() {
        // The mutant `08-high-watermark-goes-back`: a new leader publishes -1 until every ISR
        // member fetched, then a value below what it had as follower.
        let found = run(vec![
            sample(1, 1, 0, 10),
            sample(2, 1, 0, 30),
            sample(3, 1, 0, -1),
            sample(4, 1, 0, 20),
            sample(5, 1, 0, 35),
            sample(6, 2, 1, 30),
        ]);
        assert_eq!(
            found,
            vec![ReplicaHighWatermarkRegression {
                node: NodeId(1),
                replica: 0,
                tp: TopicPartition::new("t", 0),
                highest: (Instant(2), Offset(30)),
                lower: (Instant(3), Offset(-1)),
            }]
        );
        assert!(found[0].to_string().contains("published high watermark 30"));
    }

    #[test]
    fn the_same_partition_on_two_nodes_is_judged_apart() {
        // Node 2's lower mark is not a drop of node 1's.
        assert!(run(vec![sample(1, 1, 0, 50), sample(2, 2, 1, 10)]).is_empty());
        assert_eq!(run(vec![sample(1, 2, 1, 50), sample(2, 2, 1, 10)]).len(), 1);
    }
}
