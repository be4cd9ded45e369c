//! group-not-stable: after the heal every group reaches Stable and every partition it subscribes
//! to has exactly one owner (`groups.md` §5, invariant 7; design §4's liveness phase).
//!
//! Once faults stop and the consumers keep polling, a classic group completes its rebalance:
//! the join phase ends, the leader's SyncGroup commits the assignment and the group is Stable
//! (`ClassicGroupState`). Kafka's DescribeGroups shows members' assignments in that state, and
//! the leader's assignor (range, round-robin, sticky) gives every subscribed partition to
//! exactly one member. Tansu #679 answered SyncGroup with empty assignments after a timer;
//! Redpanda's −1 rebalance timeout (kafka4beam/brod#465) looped forever: both leave a group that
//! never settles or owns nothing.
//!
//! For every group of [`GroupHistory::subscribed`], the last `Describe { final_check: true }` op
//! of the group (in recording order) must exist, be `Described` in state `"Stable"`, and its
//! members' assignments together must name every subscribed partition exactly once. Each
//! failure is one anomaly naming what is wrong: no final describe; a final describe that failed
//! or timed out; another state (the assignments are not judged then: Kafka shows them only in
//! Stable); a partition owned by no member; a partition owned twice (by two members, or listed
//! twice by one); a partition assigned that the group does not subscribe to.

use std::collections::BTreeMap;
use std::fmt;

use crate::group_history::{GroupCall, GroupHistory, GroupOpIndex, GroupOutcome};
use crate::history::TopicPartition;

/// What is wrong with a group after the heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No final describe of the group was recorded.
    NoFinalDescribe,
    /// The final describe did not answer (its outcome: `Fail` or `Info`).
    DescribeFailed(GroupOutcome),
    /// The group was in another state.
    State { state: String, generation: i32 },
    /// No member owns the partition.
    Unowned(TopicPartition),
    /// Several members own the partition (a member listing it twice appears twice).
    OwnedTwice(TopicPartition, Vec<String>),
    /// A member was assigned a partition the group does not subscribe to.
    NotSubscribed(TopicPartition, String),
}

/// A group that did not settle after the heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotStable {
    pub group: String,
    /// The final describe, if one was recorded.
    pub describe: Option<GroupOpIndex>,
    pub problem: Problem,
}

impl NotStable {
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        self.describe.into_iter().collect()
    }
}

impl fmt::Display for NotStable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.group)?;
        if let Some(describe) = self.describe {
            write!(f, " (final describe {describe})")?;
        }
        match &self.problem {
            Problem::NoFinalDescribe => write!(f, ": no final describe was recorded"),
            Problem::DescribeFailed(outcome) => write!(f, ": the describe failed: {outcome:?}"),
            Problem::State { state, generation } => {
                write!(
                    f,
                    ": in state {state} (generation {generation}), not Stable"
                )
            }
            Problem::Unowned(tp) => write!(f, ": no member owns {tp}"),
            Problem::OwnedTwice(tp, members) => {
                write!(f, ": {tp} is owned by {}", members.join(" and "))
            }
            Problem::NotSubscribed(tp, member) => {
                write!(
                    f,
                    ": member {member} owns {tp}, which the group does not subscribe to"
                )
            }
        }
    }
}

pub fn check(history: &GroupHistory) -> Vec<NotStable> {
    let mut anomalies = Vec::new();
    for (group, subscribed) in &history.subscribed {
        let describe = history
            .indexed()
            .filter(|(_, op)| {
                op.group == *group && op.call == GroupCall::Describe { final_check: true }
            })
            .last();
        let anomaly = |describe, problem| NotStable {
            group: group.clone(),
            describe,
            problem,
        };
        let Some((index, op)) = describe else {
            anomalies.push(anomaly(None, Problem::NoFinalDescribe));
            continue;
        };
        let GroupOutcome::Described {
            state,
            generation,
            members,
        } = &op.outcome
        else {
            let problem = Problem::DescribeFailed(op.outcome.clone());
            anomalies.push(anomaly(Some(index), problem));
            continue;
        };
        if state != "Stable" {
            let problem = Problem::State {
                state: state.clone(),
                generation: *generation,
            };
            anomalies.push(anomaly(Some(index), problem));
            continue;
        }
        let mut owners: BTreeMap<&TopicPartition, Vec<String>> =
            subscribed.iter().map(|tp| (tp, Vec::new())).collect();
        for member in members {
            for tp in &member.assignment {
                match owners.get_mut(tp) {
                    Some(of_tp) => of_tp.push(member.member_id.clone()),
                    None => anomalies.push(anomaly(
                        Some(index),
                        Problem::NotSubscribed(tp.clone(), member.member_id.clone()),
                    )),
                }
            }
        }
        for (tp, of_tp) in owners {
            match of_tp.len() {
                1 => {}
                0 => anomalies.push(anomaly(Some(index), Problem::Unowned(tp.clone()))),
                _ => anomalies.push(anomaly(Some(index), Problem::OwnedTwice(tp.clone(), of_tp))),
            }
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::group::testkit::{Builder, tp};

    fn not_stable(describe: Option<GroupOpIndex>, problem: Problem) -> NotStable {
        NotStable {
            group: "g".to_string(),
            describe,
            problem,
        }
    }

    #[test]
    fn quiet_when_the_last_final_describe_is_stable_and_owns_everything_once() {
        let mut b = Builder::new();
        b.subscribe("g", &[("t", 0), ("t", 1), ("u", 0)]);
        b.subscribe("h", &[]);
        // An earlier final describe caught the group mid-rebalance: only the last counts.
        b.described(9, "g", "PreparingRebalance", 3, &[]);
        b.op(
            9,
            "g",
            GroupCall::Describe { final_check: false },
            GroupOutcome::Fail(15),
        );
        b.described(
            9,
            "g",
            "Stable",
            4,
            &[("a", &[("t", 0), ("u", 0)]), ("b", &[("t", 1)])],
        );
        b.described(9, "h", "Empty", 0, &[]);
        // Groups without subscriptions are not judged.
        b.described(9, "x", "Dead", 0, &[]);
        // h subscribes nothing, but is Empty, not Stable.
        assert_eq!(
            check(&b.history),
            vec![NotStable {
                group: "h".to_string(),
                describe: Some(GroupOpIndex(3)),
                problem: Problem::State {
                    state: "Empty".to_string(),
                    generation: 0
                },
            }]
        );
        b.history.subscribed.remove("h");
        assert_eq!(check(&b.history), vec![]);
    }

    #[test]
    fn reports_a_group_never_described_after_the_heal() {
        let mut b = Builder::new();
        b.subscribe("g", &[("t", 0)]);
        b.op(
            9,
            "g",
            GroupCall::Describe { final_check: false },
            GroupOutcome::Described {
                state: "Stable".to_string(),
                generation: 1,
                members: vec![],
            },
        );
        let found = check(&b.history);
        assert_eq!(found, vec![not_stable(None, Problem::NoFinalDescribe)]);
        assert_eq!(
            found[0].to_string(),
            "group g: no final describe was recorded"
        );
    }

    #[test]
    fn reports_a_final_describe_that_failed_or_timed_out() {
        let mut b = Builder::new();
        b.subscribe("g", &[("t", 0)]);
        b.described(9, "g", "Stable", 1, &[("a", &[("t", 0)])]);
        let describe = b.final_describe(9, "g", GroupOutcome::Fail(15));
        assert_eq!(
            check(&b.history),
            vec![not_stable(
                Some(describe),
                Problem::DescribeFailed(GroupOutcome::Fail(15))
            )]
        );
        let timeout = GroupOutcome::Info("timeout".to_string());
        let describe = b.final_describe(9, "g", timeout.clone());
        assert_eq!(
            check(&b.history),
            vec![not_stable(Some(describe), Problem::DescribeFailed(timeout))]
        );
    }

    #[test]
    fn reports_a_group_left_rebalancing() {
        let mut b = Builder::new();
        b.subscribe("g", &[("t", 0)]);
        let describe = b.described(9, "g", "CompletingRebalance", 5, &[("a", &[])]);
        let found = check(&b.history);
        assert_eq!(
            found,
            vec![not_stable(
                Some(describe),
                Problem::State {
                    state: "CompletingRebalance".to_string(),
                    generation: 5
                }
            )]
        );
        assert_eq!(
            found[0].to_string(),
            format!(
                "group g (final describe {describe}): in state CompletingRebalance (generation \
                 5), not Stable"
            )
        );
    }

    #[test]
    fn reports_each_partition_owned_by_none_by_two_or_not_subscribed() {
        let mut b = Builder::new();
        b.subscribe("g", &[("t", 0), ("t", 1), ("t", 2), ("t", 3)]);
        let describe = b.described(
            9,
            "g",
            "Stable",
            2,
            &[
                ("a", &[("t", 0), ("t", 1), ("v", 9)]),
                ("b", &[("t", 1)]),
                ("c", &[("t", 3), ("t", 3)]),
            ],
        );
        let at = Some(describe);
        assert_eq!(
            check(&b.history),
            vec![
                not_stable(at, Problem::NotSubscribed(tp("v", 9), "a".to_string())),
                not_stable(
                    at,
                    Problem::OwnedTwice(tp("t", 1), vec!["a".to_string(), "b".to_string()])
                ),
                not_stable(at, Problem::Unowned(tp("t", 2))),
                not_stable(
                    at,
                    Problem::OwnedTwice(tp("t", 3), vec!["c".to_string(), "c".to_string()])
                ),
            ]
        );
    }
}
