//! split-brain and epoch-went-back: one leader per (partition, leader epoch), and a node's
//! leader epochs only go forward.
//!
//! Judges the harness's samples of leadership ([`LeaderClaim`]), not the client history. Not in
//! Jepsen (it cannot see inside the nodes); one of Strata's own claims (design §4).
//!
//! - *split-brain*: two different nodes claimed leadership of the same partition in the same
//!   leader epoch. The controller hands out each leader epoch once (KRaft bumps it on every
//!   leader change), so this holds across the whole run, not only for claims at the same time:
//!   a node that claims an epoch it was never given stamps that epoch on batches (KIP-101), and
//!   followers then truncate against the wrong leader's history.
//! - *epoch-went-back*: a node claimed a partition in an epoch lower than one it had claimed
//!   earlier. A node that acts on stale metadata (say, replayed from its own log after a restart,
//!   before catching up with the controller) accepts writes a newer leader will truncate.
//!   Reported once per (node, partition, lower epoch), at the first claim of that epoch after the
//!   higher one, so a stale node sampled many times gives one anomaly, not one per sample.

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::{Instant, LeaderEpoch, NodeId};

use crate::history::TopicPartition;
use crate::observation::{At, LeaderClaim, Observations};

/// One node's claims of one (partition, leader epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimSpan {
    pub node: NodeId,
    /// The first and last sample in which the node claimed it.
    pub first_at: Instant,
    pub last_at: Instant,
    /// How many samples claimed it.
    pub samples: usize,
}

impl fmt::Display for ClaimSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} ({}..={}, {} samples)",
            self.node,
            At(self.first_at),
            At(self.last_at),
            self.samples
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitBrain {
    pub tp: TopicPartition,
    pub leader_epoch: LeaderEpoch,
    /// Every node that claimed it, by node id.
    pub nodes: Vec<ClaimSpan>,
}

impl fmt::Display for SplitBrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} nodes claim to lead {} in leader epoch {}: {}",
            self.nodes.len(),
            self.tp,
            self.leader_epoch.0,
            self.nodes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochWentBack {
    pub tp: TopicPartition,
    pub node: NodeId,
    /// The highest epoch the node had claimed before, and when it first claimed it.
    pub earlier: (Instant, LeaderEpoch),
    /// The first later claim of the lower epoch.
    pub later: (Instant, LeaderEpoch),
}

impl fmt::Display for EpochWentBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} claimed {} in leader epoch {} at {}, then in lower epoch {} at {}",
            self.node,
            self.tp,
            self.earlier.1.0,
            At(self.earlier.0),
            self.later.1.0,
            At(self.later.0)
        )
    }
}

/// Both anomalies, each in a stable order (by partition, then epoch or node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub split_brains: Vec<SplitBrain>,
    pub epochs_went_back: Vec<EpochWentBack>,
}

pub fn check(observations: &Observations) -> Findings {
    // Time order; a stable sort keeps recording order for samples taken at the same instant.
    let mut claims: Vec<&LeaderClaim> = observations.leader_claims.iter().collect();
    claims.sort_by_key(|c| c.at);
    Findings {
        split_brains: split_brains(&claims),
        epochs_went_back: epochs_went_back(&claims),
    }
}

fn split_brains(claims: &[&LeaderClaim]) -> Vec<SplitBrain> {
    let mut by_epoch: BTreeMap<(&TopicPartition, LeaderEpoch), BTreeMap<NodeId, ClaimSpan>> =
        BTreeMap::new();
    for claim in claims {
        let spans = by_epoch.entry((&claim.tp, claim.leader_epoch)).or_default();
        let span = spans.entry(claim.node).or_insert(ClaimSpan {
            node: claim.node,
            first_at: claim.at,
            last_at: claim.at,
            samples: 0,
        });
        span.last_at = claim.at;
        span.samples += 1;
    }
    by_epoch
        .into_iter()
        .filter(|(_, spans)| spans.len() > 1)
        .map(|((tp, leader_epoch), spans)| SplitBrain {
            tp: tp.clone(),
            leader_epoch,
            nodes: spans.into_values().collect(),
        })
        .collect()
}

fn epochs_went_back(claims: &[&LeaderClaim]) -> Vec<EpochWentBack> {
    // Per (partition, node): the highest epoch claimed so far and when it was first claimed.
    let mut highest: BTreeMap<(&TopicPartition, NodeId), (Instant, LeaderEpoch)> = BTreeMap::new();
    let mut reported: BTreeMap<(&TopicPartition, NodeId, LeaderEpoch), EpochWentBack> =
        BTreeMap::new();
    for claim in claims {
        let key = (&claim.tp, claim.node);
        match highest.get(&key) {
            Some(&earlier) if claim.leader_epoch < earlier.1 => {
                reported
                    .entry((&claim.tp, claim.node, claim.leader_epoch))
                    .or_insert_with(|| EpochWentBack {
                        tp: claim.tp.clone(),
                        node: claim.node,
                        earlier,
                        later: (claim.at, claim.leader_epoch),
                    });
            }
            Some(&earlier) if claim.leader_epoch == earlier.1 => {}
            _ => {
                highest.insert(key, (claim.at, claim.leader_epoch));
            }
        }
    }
    reported.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::observation_testkit::claim;

    fn run(claims: Vec<LeaderClaim>) -> Findings {
        check(&Observations {
            leader_claims: claims,
            ..Observations::default()
        })
    }

    #[test]
    fn quiet_when_each_epoch_has_one_leader_and_epochs_go_forward() {
        let findings = run(vec![
            claim(10, 1, "t", 0, 1),
            claim(20, 1, "t", 0, 1),
            // Leadership moves to node 2 in a new epoch, then back to node 1 in a newer one.
            claim(30, 2, "t", 0, 2),
            claim(40, 1, "t", 0, 3),
            // Node 2 leads another partition in the same epoch number: epochs are per partition.
            claim(40, 2, "t", 1, 3),
            claim(50, 2, "u", 0, 3),
        ]);
        assert_eq!(findings, Findings::default());
    }

    #[test]
    fn reports_two_leaders_in_one_epoch_even_at_different_times() {
        let findings = run(vec![
            claim(10, 1, "t", 0, 4),
            claim(30, 1, "t", 0, 4),
            claim(20, 3, "t", 0, 4),
            claim(20, 2, "t", 0, 5),
        ]);
        let split = SplitBrain {
            tp: crate::checker::testkit::tp("t", 0),
            leader_epoch: LeaderEpoch(4),
            nodes: vec![
                ClaimSpan {
                    node: NodeId(1),
                    first_at: Instant(10),
                    last_at: Instant(30),
                    samples: 2,
                },
                ClaimSpan {
                    node: NodeId(3),
                    first_at: Instant(20),
                    last_at: Instant(20),
                    samples: 1,
                },
            ],
        };
        assert_eq!(findings.split_brains, vec![split.clone()]);
        assert_eq!(findings.epochs_went_back, vec![]);
        assert_eq!(
            split.to_string(),
            "2 nodes claim to lead t-0 in leader epoch 4: \
             node 1 (0.000000010s..=0.000000030s, 2 samples), \
             node 3 (0.000000020s..=0.000000020s, 1 samples)"
        );
    }

    #[test]
    fn reports_a_node_going_back_to_a_lower_epoch_once() {
        // Recorded out of order: the checker orders by time.
        let findings = run(vec![
            claim(50, 1, "t", 0, 2),
            claim(10, 1, "t", 0, 2),
            claim(20, 1, "t", 0, 5),
            claim(30, 1, "t", 0, 2),
            claim(40, 1, "t", 0, 5),
            // Node 2 claiming epoch 3 in between is node 2's history, not node 1's going back.
            claim(15, 2, "t", 0, 3),
        ]);
        assert_eq!(
            findings.epochs_went_back,
            vec![EpochWentBack {
                tp: crate::checker::testkit::tp("t", 0),
                node: NodeId(1),
                earlier: (Instant(20), LeaderEpoch(5)),
                later: (Instant(30), LeaderEpoch(2)),
            }]
        );
        assert_eq!(findings.split_brains, vec![]);
        assert_eq!(
            findings.epochs_went_back[0].to_string(),
            "node 1 claimed t-0 in leader epoch 5 at 0.000000020s, \
             then in lower epoch 2 at 0.000000030s"
        );
    }
}
