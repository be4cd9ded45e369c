//! group-split-ownership and group-split-assignment: at most one owner per partition per
//! generation, and one assignment per member per generation (`groups.md` §5, invariant 1).
//!
//! Judged on the `Joined` outcomes: a `Joined` is recorded only once SyncGroup answered, and the
//! classic coordinator answers SyncGroup only after the leader's assignment for that generation
//! is committed in a `GroupMetadata` record (`GroupMetadataManager.classicGroupSyncToCoordinator`
//! in apache/kafka). A generation therefore has exactly one assignment map, and every member of
//! it learns its own part of that one map.
//!
//! - **group-split-ownership**: two different member ids were told, for the same (group,
//!   generation), assignments that share a partition. Either two assignment maps were delivered
//!   for one generation (a generation reused after a failover, Tansu #625's two copies of the
//!   group), or the leader's map gave a partition twice and the coordinator passed it on.
//!   Reported once per pair of members, at the first pair of their joins that conflict, with
//!   every partition those two joins share.
//! - **group-split-assignment**: one member id was told two different assignments (compared as
//!   sets of partitions) for the same (group, generation). A member may legitimately join twice
//!   in one generation (Kafka answers a Stable group's known follower that rejoins with unchanged
//!   metadata with the current generation, no rebalance), but SyncGroup then returns the same
//!   assignment. Reported at the first join whose assignment differs from the member's first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::partitions;
use crate::group_history::{GroupHistory, GroupOpIndex, GroupOutcome};
use crate::history::TopicPartition;

/// Two members own a partition in one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitOwnership {
    pub group: String,
    pub generation: i32,
    /// Every partition both joins were assigned.
    pub partitions: Vec<TopicPartition>,
    /// The earlier join (member id, op), then the later.
    pub first: (String, GroupOpIndex),
    pub second: (String, GroupOpIndex),
}

impl SplitOwnership {
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        vec![self.first.1, self.second.1]
    }
}

impl fmt::Display for SplitOwnership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {} generation {}: members {} ({}) and {} ({}) were both assigned {}",
            self.group,
            self.generation,
            self.first.0,
            self.first.1,
            self.second.0,
            self.second.1,
            partitions(&self.partitions)
        )
    }
}

/// One member told two different assignments in one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitAssignment {
    pub group: String,
    pub generation: i32,
    pub member_id: String,
    /// The member's first join in the generation and its assignment (sorted).
    pub first: (GroupOpIndex, Vec<TopicPartition>),
    /// A later join with a different assignment (sorted).
    pub second: (GroupOpIndex, Vec<TopicPartition>),
}

impl SplitAssignment {
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        vec![self.first.0, self.second.0]
    }
}

impl fmt::Display for SplitAssignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {} generation {}: member {} was assigned [{}] ({}), then [{}] ({})",
            self.group,
            self.generation,
            self.member_id,
            partitions(&self.first.1),
            self.first.0,
            partitions(&self.second.1),
            self.second.0
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub split_ownerships: Vec<SplitOwnership>,
    pub split_assignments: Vec<SplitAssignment>,
}

/// One `Joined` outcome.
struct Join<'h> {
    index: GroupOpIndex,
    member_id: &'h str,
    assignment: BTreeSet<&'h TopicPartition>,
}

pub fn check(history: &GroupHistory) -> Found {
    let mut generations: BTreeMap<(&str, i32), Vec<Join<'_>>> = BTreeMap::new();
    for (index, op) in history.indexed() {
        if let GroupOutcome::Joined {
            member_id,
            generation,
            assignment,
        } = &op.outcome
        {
            generations
                .entry((op.group.as_str(), *generation))
                .or_default()
                .push(Join {
                    index,
                    member_id,
                    assignment: assignment.iter().collect(),
                });
        }
    }
    let mut found = Found::default();
    for ((group, generation), joins) in &generations {
        check_generation(group, *generation, joins, &mut found);
    }
    found
}

fn check_generation(group: &str, generation: i32, joins: &[Join<'_>], found: &mut Found) {
    let mut first_of: BTreeMap<&str, &Join<'_>> = BTreeMap::new();
    let mut reported_pairs: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (i, join) in joins.iter().enumerate() {
        match first_of.get(join.member_id) {
            Some(first) if first.assignment != join.assignment => {
                found.split_assignments.push(SplitAssignment {
                    group: group.to_string(),
                    generation,
                    member_id: join.member_id.to_string(),
                    first: (first.index, owned(&first.assignment)),
                    second: (join.index, owned(&join.assignment)),
                });
            }
            Some(_) => {}
            None => {
                first_of.insert(join.member_id, join);
            }
        }
        for earlier in &joins[..i] {
            if earlier.member_id == join.member_id {
                continue;
            }
            let pair = if earlier.member_id < join.member_id {
                (earlier.member_id, join.member_id)
            } else {
                (join.member_id, earlier.member_id)
            };
            let shared: Vec<&TopicPartition> = earlier
                .assignment
                .intersection(&join.assignment)
                .copied()
                .collect();
            if shared.is_empty() || !reported_pairs.insert(pair) {
                continue;
            }
            found.split_ownerships.push(SplitOwnership {
                group: group.to_string(),
                generation,
                partitions: shared.into_iter().cloned().collect(),
                first: (earlier.member_id.to_string(), earlier.index),
                second: (join.member_id.to_string(), join.index),
            });
        }
    }
}

fn owned(assignment: &BTreeSet<&TopicPartition>) -> Vec<TopicPartition> {
    assignment.iter().map(|tp| (*tp).clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::group::testkit::{Builder, tps};

    #[test]
    fn quiet_on_disjoint_assignments_and_rebalances() {
        let mut b = Builder::new();
        b.joined(1, "g", "a", 1, &[("t", 0), ("t", 1)]);
        b.joined(2, "g", "b", 2, &[("t", 1)]);
        b.joined(1, "g", "a", 2, &[("t", 0)]);
        // A follower rejoining a Stable generation learns the same assignment, in any order.
        b.joined(2, "g", "b", 3, &[("t", 0), ("t", 1)]);
        b.joined(2, "g", "b", 3, &[("t", 1), ("t", 0)]);
        // Another group's generation 3 is another assignment map.
        b.joined(3, "h", "c", 3, &[("t", 0), ("t", 1)]);
        assert_eq!(check(&b.history), Found::default());
    }

    #[test]
    fn reports_two_owners_of_a_partition_in_one_generation() {
        let mut b = Builder::new();
        b.joined(1, "g", "a", 1, &[("t", 0), ("t", 1)]);
        let a = b.joined(1, "g", "a", 2, &[("t", 0), ("t", 1), ("t", 2)]);
        b.joined(2, "g", "c", 2, &[("t", 3)]);
        let bee = b.joined(3, "g", "b", 2, &[("t", 2), ("t", 1)]);
        // The same pair conflicting again is one anomaly.
        b.joined(3, "g", "b", 2, &[("t", 2), ("t", 1)]);
        let found = check(&b.history);
        assert_eq!(
            found.split_ownerships,
            vec![SplitOwnership {
                group: "g".to_string(),
                generation: 2,
                partitions: tps(&[("t", 1), ("t", 2)]),
                first: ("a".to_string(), a),
                second: ("b".to_string(), bee),
            }]
        );
        assert!(found.split_assignments.is_empty());
        assert_eq!(
            found.split_ownerships[0].to_string(),
            format!(
                "group g generation 2: members a ({a}) and b ({bee}) were both assigned t-1 t-2"
            )
        );
    }

    #[test]
    fn reports_a_member_told_two_assignments_in_one_generation() {
        let mut b = Builder::new();
        let first = b.joined(1, "g", "a", 4, &[("t", 0)]);
        let second = b.joined(1, "g", "a", 4, &[("t", 0), ("t", 1)]);
        let found = check(&b.history);
        assert_eq!(
            found.split_assignments,
            vec![SplitAssignment {
                group: "g".to_string(),
                generation: 4,
                member_id: "a".to_string(),
                first: (first, tps(&[("t", 0)])),
                second: (second, tps(&[("t", 0), ("t", 1)])),
            }]
        );
        assert!(found.split_ownerships.is_empty());
    }
}
