//! group-lost-commit, group-stale-commit and group-unknown-commit: each (group, partition) is a
//! register; an acknowledged commit is never lost nor replaced by an older value, and a read
//! returns only what some commit wrote (`groups.md` §5, invariants 3 and 4).
//!
//! Kafka's OffsetCommit is answered only once its `OffsetCommit` records are committed in
//! `__consumer_offsets` (the coordinator completes the reply when the high watermark passes the
//! batch), and OffsetFetch reads the committed offsets. So once a commit `c` is acknowledged,
//! every read of one of its partitions invoked later returns `c` or a commit that took effect
//! after it: one concurrent with `c`, invoked after it, or indefinite (`Info`). Redpanda #2597,
//! #5428 and #6301 returned −1 (no offset) around coordinator leader changes, and consumers reset
//! their positions.
//!
//! For every read `r` (one partition of a `Fetched` op of the group):
//!
//! - **group-unknown-commit**: `r` returned an offset, and its tag is absent (`None`), or names no
//!   commit of the history, or names a commit of another group, or one that did not write `r`'s
//!   partition, or one that wrote another offset for it. A value nobody committed: judged on
//!   every read, acknowledged commit or not. Such a read is judged by nothing else.
//! - **group-lost-commit**: `r` found no offset, yet some commit `c` of the partition was
//!   acknowledged before `r` was invoked.
//! - **group-stale-commit**: `r` returned commit `c'`, and some commit `c ≠ c'` of the partition
//!   was acknowledged before `r` was invoked while `c'` precedes `c` in real time (completed
//!   before `c` was invoked; an `Info` commit precedes nothing, see the [module
//!   docs](super)). Kafka does not check that offsets grow (Redpanda #2597: backward commits are
//!   legal), so this judges commits by time, not by offset value.
//!
//! Each read of a partition is reported at most once, citing the acknowledged commit it
//! contradicts that completed last (the freshest evidence).

use std::collections::BTreeMap;
use std::fmt;

use super::{Commit, commits, precedes};
use crate::group_history::{CommittedRead, GroupHistory, GroupOpIndex, GroupOutcome};
use crate::history::TopicPartition;

/// An acknowledged commit a later read did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostCommit {
    pub group: String,
    pub tp: TopicPartition,
    /// The acknowledged commit, its tag and the offset it wrote for `tp`.
    pub commit: (GroupOpIndex, u64, i64),
    /// The read that found no offset.
    pub read: GroupOpIndex,
}

impl LostCommit {
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        vec![self.commit.0, self.read]
    }
}

impl fmt::Display for LostCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (commit, tag, offset) = self.commit;
        write!(
            f,
            "group {} {}: commit {commit} (tag {tag}, offset {offset}) was acknowledged, \
             then read {} found no committed offset",
            self.group, self.tp, self.read
        )
    }
}

/// A read that returned a commit older than an acknowledged one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCommit {
    pub group: String,
    pub tp: TopicPartition,
    /// The acknowledged commit the read should have seen: op, tag, offset for `tp`.
    pub commit: (GroupOpIndex, u64, i64),
    /// The commit the read returned, which precedes `commit`: op, tag, offset for `tp`.
    pub older: (GroupOpIndex, u64, i64),
    pub read: GroupOpIndex,
}

impl StaleCommit {
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        vec![self.older.0, self.commit.0, self.read]
    }
}

impl fmt::Display for StaleCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (commit, tag, offset) = self.commit;
        let (older, older_tag, older_offset) = self.older;
        write!(
            f,
            "group {} {}: read {} returned commit {older} (tag {older_tag}, offset \
             {older_offset}), which completed before commit {commit} (tag {tag}, offset \
             {offset}) was invoked and acknowledged before the read",
            self.group, self.tp, self.read
        )
    }
}

/// Why a read's value is no commit's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// The metadata was not a tag.
    NoTag,
    /// No commit of the history carries the tag.
    NoSuchCommit,
    /// The tag's commit belongs to another group.
    OtherGroup { commit: GroupOpIndex, group: String },
    /// The tag's commit did not write the read's partition.
    PartitionNotCommitted { commit: GroupOpIndex },
    /// The tag's commit wrote another offset for the read's partition.
    OffsetDiffers {
        commit: GroupOpIndex,
        committed: i64,
    },
}

/// A read of a value no commit wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCommit {
    pub group: String,
    pub tp: TopicPartition,
    pub read: GroupOpIndex,
    pub value: CommittedRead,
    pub why: Unknown,
}

impl UnknownCommit {
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        match self.why {
            Unknown::NoTag | Unknown::NoSuchCommit => vec![self.read],
            Unknown::OtherGroup { commit, .. }
            | Unknown::PartitionNotCommitted { commit }
            | Unknown::OffsetDiffers { commit, .. } => vec![commit, self.read],
        }
    }
}

impl fmt::Display for UnknownCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {} {}: read {} returned offset {}",
            self.group, self.tp, self.read, self.value.offset
        )?;
        let tag = self.value.tag.unwrap_or_default();
        match &self.why {
            Unknown::NoTag => write!(f, " with metadata that is not a tag"),
            Unknown::NoSuchCommit => write!(f, " with tag {tag}, which no commit carries"),
            Unknown::OtherGroup { commit, group } => {
                write!(f, " with tag {tag}, of commit {commit} of group {group}")
            }
            Unknown::PartitionNotCommitted { commit } => write!(
                f,
                " with tag {tag}, of commit {commit}, which did not commit {}",
                self.tp
            ),
            Unknown::OffsetDiffers { commit, committed } => write!(
                f,
                " with tag {tag}, of commit {commit}, which committed offset {committed}"
            ),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub lost: Vec<LostCommit>,
    pub stale: Vec<StaleCommit>,
    pub unknown: Vec<UnknownCommit>,
}

pub fn check(history: &GroupHistory) -> Found {
    let all = commits(history);
    let mut by_tag: BTreeMap<u64, Commit<'_>> = BTreeMap::new();
    let mut acknowledged: BTreeMap<(&str, &TopicPartition), Vec<Commit<'_>>> = BTreeMap::new();
    for commit in &all {
        if let Some(other) = by_tag.insert(commit.tag, *commit) {
            panic!(
                "commits {} and {} share tag {}: tags are unique per run (recording contract)",
                other.index, commit.index, commit.tag
            );
        }
        if commit.acknowledged() {
            for (tp, _) in commit.offsets {
                acknowledged
                    .entry((commit.op.group.as_str(), tp))
                    .or_default()
                    .push(*commit);
            }
        }
    }

    let mut found = Found::default();
    for (index, op) in history.indexed() {
        let GroupOutcome::Fetched(reads) = &op.outcome else {
            continue;
        };
        for (tp, value) in reads {
            let group = op.group.as_str();
            let before: Vec<&Commit<'_>> = acknowledged
                .get(&(group, tp))
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c.op.completed_before(op.invoked))
                        .collect()
                })
                .unwrap_or_default();
            let Some(value) = value else {
                if let Some(c) = latest(before) {
                    found.lost.push(LostCommit {
                        group: group.to_string(),
                        tp: tp.clone(),
                        commit: described(c, tp),
                        read: index,
                    });
                }
                continue;
            };
            let returned = match resolve(&by_tag, group, tp, value) {
                Ok(returned) => returned,
                Err(why) => {
                    found.unknown.push(UnknownCommit {
                        group: group.to_string(),
                        tp: tp.clone(),
                        read: index,
                        value: *value,
                        why,
                    });
                    continue;
                }
            };
            let newer = before
                .into_iter()
                .filter(|c| c.index != returned.index && precedes(returned.op, c.op));
            if let Some(c) = latest(newer) {
                found.stale.push(StaleCommit {
                    group: group.to_string(),
                    tp: tp.clone(),
                    commit: described(c, tp),
                    older: described(&returned, tp),
                    read: index,
                });
            }
        }
    }
    found
}

/// The commit a read of `tp` in `group` returned, or why it is none.
fn resolve<'h>(
    by_tag: &BTreeMap<u64, Commit<'h>>,
    group: &str,
    tp: &TopicPartition,
    value: &CommittedRead,
) -> Result<Commit<'h>, Unknown> {
    let tag = value.tag.ok_or(Unknown::NoTag)?;
    let commit = *by_tag.get(&tag).ok_or(Unknown::NoSuchCommit)?;
    if commit.op.group != group {
        return Err(Unknown::OtherGroup {
            commit: commit.index,
            group: commit.op.group.clone(),
        });
    }
    match commit.offset_of(tp) {
        None => Err(Unknown::PartitionNotCommitted {
            commit: commit.index,
        }),
        Some(committed) if committed != value.offset => Err(Unknown::OffsetDiffers {
            commit: commit.index,
            committed,
        }),
        Some(_) => Ok(commit),
    }
}

/// The commit that completed last (the one recorded last among equals).
fn latest<'a, 'h: 'a>(commits: impl IntoIterator<Item = &'a Commit<'h>>) -> Option<&'a Commit<'h>> {
    commits
        .into_iter()
        .max_by_key(|c| (c.op.completed, c.index))
}

fn described(commit: &Commit<'_>, tp: &TopicPartition) -> (GroupOpIndex, u64, i64) {
    let offset = commit
        .offset_of(tp)
        .expect("only commits of the read's partition are judged");
    (commit.index, commit.tag, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::group::testkit::{Builder, commit_call, read, tp};

    #[test]
    fn quiet_on_a_register_that_moves_forward() {
        let mut b = Builder::new();
        b.fetched(9, "g", &[(("t", 0), None)]); // nothing committed yet
        b.commit_ok(1, "g", "a", 1, &[("t", 0, 10), ("t", 1, 20)], 1);
        b.fetched(9, "g", &[(("t", 0), read(10, 1)), (("t", 1), read(20, 1))]);
        // Two concurrent commits: a later read may return either.
        b.start(1);
        b.start(2);
        b.commit_ok(1, "g", "a", 1, &[("t", 0, 11)], 2);
        b.commit_ok(2, "g", "b", 1, &[("t", 0, 12)], 3);
        b.fetched(9, "g", &[(("t", 0), read(11, 2))]);
        b.fetched(9, "g", &[(("t", 0), read(12, 3))]);
        b.fetched(9, "g", &[(("t", 0), read(11, 2))]);
        // t-1 was written only by tag 1: still the value to read.
        b.fetched(9, "g", &[(("t", 1), read(20, 1))]);
        // A timed-out commit may take effect after a later acknowledged one.
        b.commit_info(1, "g", "a", 1, &[("t", 0, 13)], 4);
        b.commit_ok(2, "g", "b", 1, &[("t", 0, 14)], 5);
        b.fetched(9, "g", &[(("t", 0), read(13, 4))]);
        // A read concurrent with a commit may miss it.
        b.start(1);
        b.fetched(9, "g", &[(("t", 0), read(13, 4))]);
        b.commit_ok(1, "g", "a", 1, &[("t", 0, 15)], 6);
        // So may one that never completed.
        b.start(4);
        b.never_completed(4, "g", commit_call("d", 1, &[("t", 0, 16)], 7));
        b.commit_ok(1, "g", "a", 1, &[("t", 0, 17)], 8);
        b.fetched(9, "g", &[(("t", 0), read(16, 7))]);
        // Another group's commits are another register.
        b.fetched(8, "h", &[(("t", 0), None)]);
        assert_eq!(check(&b.history), Found::default());
    }

    #[test]
    fn reports_an_acknowledged_commit_that_a_later_read_did_not_find() {
        let mut b = Builder::new();
        // Two acknowledged commits are lost: the read cites the one that completed last.
        b.commit_ok(1, "g", "a", 1, &[("t", 0, 10)], 1);
        let second = b.commit_ok(1, "g", "a", 1, &[("t", 0, 11), ("t", 1, 5)], 2);
        let fetch = b.fetched(9, "g", &[(("t", 0), None), (("t", 1), read(5, 2))]);
        let found = check(&b.history);
        assert_eq!(
            found.lost,
            vec![LostCommit {
                group: "g".to_string(),
                tp: tp("t", 0),
                commit: (second, 2, 11),
                read: fetch,
            }]
        );
        assert!(found.stale.is_empty() && found.unknown.is_empty());
        assert_eq!(
            found.lost[0].to_string(),
            format!(
                "group g t-0: commit {second} (tag 2, offset 11) was acknowledged, then read \
                 {fetch} found no committed offset"
            )
        );
    }

    #[test]
    fn reports_a_read_of_a_commit_older_than_an_acknowledged_one() {
        let mut b = Builder::new();
        let older = b.commit_ok(1, "g", "a", 1, &[("t", 0, 10), ("t", 1, 30)], 1);
        let newer = b.commit_ok(2, "g", "b", 2, &[("t", 0, 5)], 2);
        // t-1 still holds tag 1 legitimately; t-0 went back to it.
        let fetch = b.fetched(9, "g", &[(("t", 1), read(30, 1)), (("t", 0), read(10, 1))]);
        let found = check(&b.history);
        assert_eq!(
            found.stale,
            vec![StaleCommit {
                group: "g".to_string(),
                tp: tp("t", 0),
                commit: (newer, 2, 5),
                older: (older, 1, 10),
                read: fetch,
            }]
        );
        assert!(found.lost.is_empty() && found.unknown.is_empty());
        assert_eq!(
            found.stale[0].to_string(),
            format!(
                "group g t-0: read {fetch} returned commit {older} (tag 1, offset 10), which \
                 completed before commit {newer} (tag 2, offset 5) was invoked and acknowledged \
                 before the read"
            )
        );
    }

    #[test]
    fn a_refused_commit_is_definite_so_reading_it_after_a_later_commit_is_stale() {
        let mut b = Builder::new();
        let refused = b.commit_refused(1, "g", "a", 1, &[("t", 0, 10)], 1);
        let acked = b.commit_ok(1, "g", "a", 2, &[("t", 0, 11)], 2);
        let fetch = b.fetched(9, "g", &[(("t", 0), read(10, 1))]);
        assert_eq!(
            check(&b.history).stale,
            vec![StaleCommit {
                group: "g".to_string(),
                tp: tp("t", 0),
                commit: (acked, 2, 11),
                older: (refused, 1, 10),
                read: fetch,
            }]
        );
    }

    #[test]
    fn reports_each_kind_of_value_no_commit_wrote() {
        let mut b = Builder::new();
        let other = b.commit_ok(1, "h", "x", 1, &[("t", 0, 7)], 70);
        let mine = b.commit_ok(2, "g", "a", 1, &[("t", 0, 10)], 1);
        let untagged = CommittedRead {
            offset: 10,
            tag: None,
        };
        let fetch = b.fetched(
            9,
            "g",
            &[
                (("t", 0), Some(untagged)),
                (("t", 1), read(10, 99)),
                (("t", 2), read(7, 70)),
                (("t", 3), read(10, 1)),
                (("t", 0), read(11, 1)),
            ],
        );
        let unknown = |tp_: TopicPartition, value: CommittedRead, why| UnknownCommit {
            group: "g".to_string(),
            tp: tp_,
            read: fetch,
            value,
            why,
        };
        let found = check(&b.history);
        assert_eq!(
            found.unknown,
            vec![
                unknown(tp("t", 0), untagged, Unknown::NoTag),
                unknown(
                    tp("t", 1),
                    CommittedRead {
                        offset: 10,
                        tag: Some(99)
                    },
                    Unknown::NoSuchCommit
                ),
                unknown(
                    tp("t", 2),
                    CommittedRead {
                        offset: 7,
                        tag: Some(70)
                    },
                    Unknown::OtherGroup {
                        commit: other,
                        group: "h".to_string()
                    }
                ),
                unknown(
                    tp("t", 3),
                    CommittedRead {
                        offset: 10,
                        tag: Some(1)
                    },
                    Unknown::PartitionNotCommitted { commit: mine }
                ),
                unknown(
                    tp("t", 0),
                    CommittedRead {
                        offset: 11,
                        tag: Some(1)
                    },
                    Unknown::OffsetDiffers {
                        commit: mine,
                        committed: 10
                    }
                ),
            ]
        );
        // An unknown value is judged by nothing else: no lost or stale report for t-0.
        assert!(found.lost.is_empty() && found.stale.is_empty());
        assert_eq!(
            found.unknown[4].to_string(),
            format!(
                "group g t-0: read {fetch} returned offset 11 with tag 1, of commit {mine}, \
                 which committed offset 10"
            )
        );
    }

    #[test]
    #[should_panic(expected = "share tag 1")]
    fn a_reused_tag_breaks_the_recording_contract() {
        let mut b = Builder::new();
        b.commit_ok(1, "g", "a", 1, &[("t", 0, 10)], 1);
        b.op(
            1,
            "g",
            commit_call("a", 1, &[("t", 0, 11)], 1),
            GroupOutcome::Committed,
        );
        check(&b.history);
    }
}
