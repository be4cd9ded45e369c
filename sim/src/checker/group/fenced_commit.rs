//! group-fenced-commit-accepted and group-fenced-commit-written: a commit from a fenced
//! generation is refused and writes nothing (`groups.md` §5, invariant 2).
//!
//! Kafka's classic group fences OffsetCommit by generation (`ClassicGroup.validateOffsetCommit`
//! in apache/kafka): a generation other than the group's current one is answered
//! `ILLEGAL_GENERATION` (22), and a refused commit appends no record. A group's generation only
//! grows, and a `Joined` outcome of generation `g'` means SyncGroup answered after the
//! generation's `GroupMetadata` record was committed (recording contract), so from that moment
//! on the group's generation is at least `g'`, across any coordinator failover.
//!
//! A commit `c` of generation `g ≥ 0` in group `G` is *fenced* when some `Joined` outcome of `G`
//! with a generation `g' > g` completed before `c` was invoked. A commit concurrent with that
//! join may legitimately be accepted (the coordinator may have handled it first). Commits with
//! generation −1 (admin tools, assign-mode consumers; Kafka accepts them while the group is Empty)
//! are not judged. The rule assumes a group is never deleted during a run (a deleted group
//! starts again at generation 0; offsets expire only after `offsets.retention.minutes` = 7 days
//! of emptiness, far longer than a run).
//!
//! - **group-fenced-commit-accepted**: a fenced commit's outcome is `Committed`.
//! - **group-fenced-commit-written**: some `Fetched` read, of any group, returned a fenced
//!   commit's tag, whatever the commit's outcome (a refused or timed-out fenced commit must not
//!   be written either). Reported once per commit, at the first read that showed it.
//!
//! Each anomaly cites the join that fenced the commit that completed first.

use std::fmt;

use super::{Commit, commits};
use crate::group_history::{GroupHistory, GroupOp, GroupOpIndex, GroupOutcome};
use crate::history::TopicPartition;

/// The join that fenced a commit: its op, member id and generation.
pub type Fence = (GroupOpIndex, String, i32);

/// A commit of a fenced generation that was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedCommitAccepted {
    pub group: String,
    pub commit: GroupOpIndex,
    pub member_id: String,
    pub generation: i32,
    pub fenced_by: Fence,
}

impl FencedCommitAccepted {
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        vec![self.fenced_by.0, self.commit]
    }
}

impl fmt::Display for FencedCommitAccepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (join, member, generation) = &self.fenced_by;
        write!(
            f,
            "group {}: commit {} by member {} of generation {} was acknowledged, but member \
             {member} had joined generation {generation} ({join}) before it was invoked",
            self.group, self.commit, self.member_id, self.generation
        )
    }
}

/// A read that returned a fenced commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedCommitWritten {
    pub group: String,
    pub commit: GroupOpIndex,
    pub generation: i32,
    pub tag: u64,
    pub fenced_by: Fence,
    /// The first read that returned the commit's tag, and for which partition.
    pub read: GroupOpIndex,
    pub tp: TopicPartition,
}

impl FencedCommitWritten {
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        vec![self.fenced_by.0, self.commit, self.read]
    }
}

impl fmt::Display for FencedCommitWritten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (join, member, generation) = &self.fenced_by;
        write!(
            f,
            "group {}: read {} returned {} of commit {} (tag {}) of generation {}, which was \
             fenced: member {member} had joined generation {generation} ({join}) before it was \
             invoked",
            self.group, self.read, self.tp, self.commit, self.tag, self.generation
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub accepted: Vec<FencedCommitAccepted>,
    pub written: Vec<FencedCommitWritten>,
}

/// One `Joined` outcome.
struct Join<'h> {
    index: GroupOpIndex,
    op: &'h GroupOp,
    member_id: &'h str,
    generation: i32,
}

pub fn check(history: &GroupHistory) -> Found {
    let joins: Vec<Join<'_>> = history
        .indexed()
        .filter_map(|(index, op)| match &op.outcome {
            GroupOutcome::Joined {
                member_id,
                generation,
                ..
            } => Some(Join {
                index,
                op,
                member_id,
                generation: *generation,
            }),
            _ => None,
        })
        .collect();
    let mut found = Found::default();
    for commit in commits(history) {
        let Some(fence) = fence(&joins, &commit) else {
            continue;
        };
        if commit.acknowledged() {
            found.accepted.push(FencedCommitAccepted {
                group: commit.op.group.clone(),
                commit: commit.index,
                member_id: commit.member_id.to_string(),
                generation: commit.generation,
                fenced_by: fence.clone(),
            });
        }
        if let Some((read, tp)) = first_read_of(history, commit.tag) {
            found.written.push(FencedCommitWritten {
                group: commit.op.group.clone(),
                commit: commit.index,
                generation: commit.generation,
                tag: commit.tag,
                fenced_by: fence,
                read,
                tp: tp.clone(),
            });
        }
    }
    found
}

/// The join of a newer generation of `commit`'s group that completed first before `commit`
/// was invoked, if any.
fn fence(joins: &[Join<'_>], commit: &Commit<'_>) -> Option<Fence> {
    if commit.generation < 0 {
        return None;
    }
    joins
        .iter()
        .filter(|j| {
            j.op.group == commit.op.group
                && j.generation > commit.generation
                && j.op.completed_before(commit.op.invoked)
        })
        .min_by_key(|j| (j.op.completed, j.index))
        .map(|j| (j.index, j.member_id.to_string(), j.generation))
}

/// The first read of the history that returned `tag`, and its partition.
fn first_read_of(history: &GroupHistory, tag: u64) -> Option<(GroupOpIndex, &TopicPartition)> {
    history.indexed().find_map(|(index, op)| {
        let GroupOutcome::Fetched(reads) = &op.outcome else {
            return None;
        };
        reads
            .iter()
            .find(|(_, read)| read.is_some_and(|r| r.tag == Some(tag)))
            .map(|(tp, _)| (index, tp))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::group::testkit::{Builder, read, tp};

    fn fence(join: GroupOpIndex, member: &str, generation: i32) -> Fence {
        (join, member.to_string(), generation)
    }

    #[test]
    fn quiet_on_current_concurrent_refused_and_admin_commits() {
        let mut b = Builder::new();
        b.joined(1, "g", "a", 1, &[("t", 0), ("t", 1)]);
        b.commit_ok(1, "g", "a", 1, &[("t", 0, 10)], 1);
        // Generation 1's commit races the join of generation 2: either order is legal.
        b.start(1);
        b.start(2);
        b.commit_ok(1, "g", "a", 1, &[("t", 0, 11)], 2);
        b.joined(2, "g", "b", 2, &[("t", 1)]);
        b.fetched(9, "g", &[(("t", 0), read(11, 2))]);
        // After it, generation 1 is refused and never read.
        b.commit_refused(1, "g", "a", 1, &[("t", 0, 12)], 3);
        b.commit_ok(2, "g", "b", 2, &[("t", 1, 20)], 4);
        // Generation -1 (an admin commit) is not fenced by generations.
        b.commit_ok(3, "g", "admin", -1, &[("t", 1, 21)], 5);
        // Another group's generations fence nothing here.
        b.joined(4, "h", "x", 7, &[("t", 0)]);
        b.commit_ok(2, "g", "b", 2, &[("t", 1, 22)], 6);
        b.fetched(9, "g", &[(("t", 0), read(11, 2)), (("t", 1), read(22, 6))]);
        assert_eq!(check(&b.history), Found::default());
    }

    #[test]
    fn reports_an_acknowledged_commit_of_a_fenced_generation() {
        let mut b = Builder::new();
        b.joined(1, "g", "a", 1, &[("t", 0)]);
        let join2 = b.joined(2, "g", "b", 2, &[("t", 0)]);
        b.joined(2, "g", "b", 3, &[("t", 0)]);
        let commit = b.commit_ok(1, "g", "a", 1, &[("t", 0, 10)], 7);
        let found = check(&b.history);
        assert_eq!(
            found.accepted,
            vec![FencedCommitAccepted {
                group: "g".to_string(),
                commit,
                member_id: "a".to_string(),
                generation: 1,
                fenced_by: fence(join2, "b", 2),
            }]
        );
        assert!(found.written.is_empty());
        assert_eq!(
            found.accepted[0].to_string(),
            format!(
                "group g: commit {commit} by member a of generation 1 was acknowledged, but \
                 member b had joined generation 2 ({join2}) before it was invoked"
            )
        );
    }

    #[test]
    fn reports_a_read_of_a_fenced_commit_whatever_its_outcome() {
        let mut b = Builder::new();
        b.joined(1, "g", "a", 1, &[("t", 0), ("t", 1)]);
        let join2 = b.joined(2, "g", "b", 2, &[("t", 0), ("t", 1)]);
        let refused = b.commit_refused(1, "g", "a", 1, &[("t", 0, 10)], 7);
        let timed_out = b.commit_info(1, "g", "a", 1, &[("t", 1, 30)], 8);
        b.fetched(9, "g", &[(("t", 0), None)]);
        let first = b.fetched(9, "g", &[(("t", 1), read(30, 8)), (("t", 0), read(10, 7))]);
        b.fetched(9, "g", &[(("t", 0), read(10, 7))]);
        let found = check(&b.history);
        let written = |commit, tag, tp_| FencedCommitWritten {
            group: "g".to_string(),
            commit,
            generation: 1,
            tag,
            fenced_by: fence(join2, "b", 2),
            read: first,
            tp: tp_,
        };
        assert_eq!(
            found.written,
            vec![
                written(refused, 7, tp("t", 0)),
                written(timed_out, 8, tp("t", 1))
            ]
        );
        assert!(found.accepted.is_empty());
    }
}
