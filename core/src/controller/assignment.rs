//! Replica placement for new partitions (CreateTopics, CreatePartitions).
//!
//! Deterministic and even, counted cluster-wide over the committed image plus the partitions
//! placed earlier in the same batch:
//!
//! 1. the preferred leader (first replica) is the unfenced broker that is preferred leader of
//!    the fewest partitions (ties: lowest id);
//! 2. each follower is the unfenced broker, not yet chosen for this partition, holding the
//!    fewest replicas (ties: lowest id).
//!
//! Kafka's KRaft `StripedReplicaPlacer` randomises the start broker and is rack-aware; we keep
//! it deterministic (the simulator needs reproducible metadata) and rack-blind for now.

use std::collections::BTreeMap;

use super::changes::Changes;
use crate::types::NodeId;

/// Cluster load as placement counts it.
#[derive(Debug)]
pub(super) struct Placement {
    /// Unfenced brokers: the only candidates.
    brokers: Vec<NodeId>,
    /// Partitions each broker is preferred leader of.
    leaders: BTreeMap<NodeId, usize>,
    /// Replicas each broker holds.
    replicas: BTreeMap<NodeId, usize>,
}

impl Placement {
    /// Counts the load of every partition in the overlay.
    pub fn new(changes: &Changes<'_>) -> Placement {
        let mut placement = Placement {
            brokers: changes.unfenced_brokers(),
            leaders: BTreeMap::new(),
            replicas: BTreeMap::new(),
        };
        for (topic, index) in changes.all_partitions() {
            if let Some(p) = changes.partition(&topic, index) {
                placement.record(&p.replicas);
            }
        }
        placement
    }

    /// How many brokers can take replicas.
    pub fn live_brokers(&self) -> usize {
        self.brokers.len()
    }

    /// Counts a partition placed by someone else (an explicit assignment).
    pub fn record(&mut self, replicas: &[NodeId]) {
        if let Some(first) = replicas.first() {
            *self.leaders.entry(*first).or_default() += 1;
        }
        for r in replicas {
            *self.replicas.entry(*r).or_default() += 1;
        }
    }

    /// Places one partition with `replication_factor` replicas, preferred leader first.
    /// `None` when there are not that many unfenced brokers (or the factor is 0).
    pub fn place(&mut self, replication_factor: usize) -> Option<Vec<NodeId>> {
        if replication_factor == 0 || replication_factor > self.brokers.len() {
            return None;
        }
        let count = |map: &BTreeMap<NodeId, usize>, b: NodeId| map.get(&b).copied().unwrap_or(0);
        let leader = self
            .brokers
            .iter()
            .copied()
            .min_by_key(|b| (count(&self.leaders, *b), *b))?;
        let mut chosen = vec![leader];
        while chosen.len() < replication_factor {
            let next = self
                .brokers
                .iter()
                .copied()
                .filter(|b| !chosen.contains(b))
                .min_by_key(|b| (count(&self.replicas, *b), *b))?;
            chosen.push(next);
        }
        self.record(&chosen);
        Some(chosen)
    }
}
