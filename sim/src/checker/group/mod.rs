//! Checkers over consumer-group histories ([`GroupHistory`], the group workload).
//!
//! Each checker judges one claim of the group coordinator (`shared/groups.md` §5, the
//! invariants for the checkers) and returns the anomalies it found, each naming the group, the
//! generation or partition, and the ops that show it; [`check_all`] runs them all into a
//! [`GroupReport`], and [`GroupReport::render`] prints the anomalies followed by the ops they cite.
//! Like the other checkers they only read the history: they know nothing of coordinators,
//! leaders or `__consumer_offsets`.
//!
//! - [`ownership`]: one assignment per (group, generation), no partition with two owners
//!   (invariant 1): **group-split-ownership**, **group-split-assignment**.
//! - [`lost_commit`]: each (group, partition) is a register whose reads return the last
//!   acknowledged commit or one concurrent with or later than it (invariants 3 and 4):
//!   **group-lost-commit**, **group-stale-commit**, **group-unknown-commit**.
//! - [`fenced_commit`]: a commit of a generation older than a delivered one is refused and
//!   writes nothing (invariant 2): **group-fenced-commit-accepted**,
//!   **group-fenced-commit-written**.
//! - [`liveness`]: after the heal each group is Stable and owns every partition once
//!   (invariant 7): **group-not-stable**.
//!
//! Shared vocabulary, from the recording contract in [`crate::group_history`]:
//!
//! - A *commit* is a [`GroupCall::Commit`] op; it is *acknowledged* when its outcome is
//!   [`GroupOutcome::Committed`]. Its tag names it: tags are unique per run.
//! - A *read* is one `(partition, value)` of a [`GroupOutcome::Fetched`] op.
//! - Op `a` *precedes* op `b` in real time when `a` completed before `b` was invoked. An
//!   [`GroupOutcome::Info`] op precedes nothing: its completion is when the client gave up, and
//!   the request may still take effect later.

use std::fmt;

use super::{Named, Verdict};
use crate::group_history::{GroupCall, GroupHistory, GroupOp, GroupOpIndex, GroupOutcome};
use crate::history::TopicPartition;

pub mod fenced_commit;
pub mod liveness;
pub mod lost_commit;
pub mod ownership;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

/// How many anomalies of each name [`GroupReport::render`] prints in full.
const RENDER_PER_NAME: usize = 10;

/// The name of every anomaly [`check_all`] judges, in report order.
pub const GROUP_ANOMALIES: &[&str] = &[
    "group-split-ownership",
    "group-split-assignment",
    "group-lost-commit",
    "group-stale-commit",
    "group-unknown-commit",
    "group-fenced-commit-accepted",
    "group-fenced-commit-written",
    "group-not-stable",
];

/// One group anomaly of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAnomaly {
    SplitOwnership(ownership::SplitOwnership),
    SplitAssignment(ownership::SplitAssignment),
    LostCommit(lost_commit::LostCommit),
    StaleCommit(lost_commit::StaleCommit),
    UnknownCommit(lost_commit::UnknownCommit),
    FencedCommitAccepted(fenced_commit::FencedCommitAccepted),
    FencedCommitWritten(fenced_commit::FencedCommitWritten),
    NotStable(liveness::NotStable),
}

impl GroupAnomaly {
    pub fn name(&self) -> &'static str {
        match self {
            GroupAnomaly::SplitOwnership(_) => "group-split-ownership",
            GroupAnomaly::SplitAssignment(_) => "group-split-assignment",
            GroupAnomaly::LostCommit(_) => "group-lost-commit",
            GroupAnomaly::StaleCommit(_) => "group-stale-commit",
            GroupAnomaly::UnknownCommit(_) => "group-unknown-commit",
            GroupAnomaly::FencedCommitAccepted(_) => "group-fenced-commit-accepted",
            GroupAnomaly::FencedCommitWritten(_) => "group-fenced-commit-written",
            GroupAnomaly::NotStable(_) => "group-not-stable",
        }
    }

    /// The ops that show the anomaly.
    pub fn ops(&self) -> Vec<GroupOpIndex> {
        match self {
            GroupAnomaly::SplitOwnership(a) => a.ops(),
            GroupAnomaly::SplitAssignment(a) => a.ops(),
            GroupAnomaly::LostCommit(a) => a.ops(),
            GroupAnomaly::StaleCommit(a) => a.ops(),
            GroupAnomaly::UnknownCommit(a) => a.ops(),
            GroupAnomaly::FencedCommitAccepted(a) => a.ops(),
            GroupAnomaly::FencedCommitWritten(a) => a.ops(),
            GroupAnomaly::NotStable(a) => a.ops(),
        }
    }
}

impl fmt::Display for GroupAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            GroupAnomaly::SplitOwnership(a) => a.fmt(f),
            GroupAnomaly::SplitAssignment(a) => a.fmt(f),
            GroupAnomaly::LostCommit(a) => a.fmt(f),
            GroupAnomaly::StaleCommit(a) => a.fmt(f),
            GroupAnomaly::UnknownCommit(a) => a.fmt(f),
            GroupAnomaly::FencedCommitAccepted(a) => a.fmt(f),
            GroupAnomaly::FencedCommitWritten(a) => a.fmt(f),
            GroupAnomaly::NotStable(a) => a.fmt(f),
        }
    }
}

impl Named for GroupAnomaly {
    fn name(&self) -> &'static str {
        GroupAnomaly::name(self)
    }
}

/// The verdict on a group history: every anomaly every group checker found.
pub type GroupReport = Verdict<GroupAnomaly>;

impl GroupReport {
    /// A failure report: counts, then each anomaly (at most ten per name) followed by the ops it
    /// cites.
    pub fn render(&self, history: &GroupHistory) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if self.is_valid() {
            out.push_str("group history valid: no anomalies\n");
            return out;
        }
        let counts = self.counts();
        let summary: Vec<String> = counts
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        let _ = writeln!(out, "group history INVALID: {}", summary.join(" "));
        for name in counts.keys() {
            let of_name = self.named(name);
            for anomaly in of_name.iter().take(RENDER_PER_NAME) {
                let _ = writeln!(out, "\n{anomaly}");
                for line in history.render(&anomaly.ops()).lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
            if of_name.len() > RENDER_PER_NAME {
                let _ = writeln!(
                    out,
                    "\n... and {} more {name}",
                    of_name.len() - RENDER_PER_NAME
                );
            }
        }
        out
    }
}

/// Runs every group checker over `history`.
pub fn check_all(history: &GroupHistory) -> GroupReport {
    let mut anomalies = Vec::new();
    let owners = ownership::check(history);
    anomalies.extend(
        owners
            .split_ownerships
            .into_iter()
            .map(GroupAnomaly::SplitOwnership),
    );
    anomalies.extend(
        owners
            .split_assignments
            .into_iter()
            .map(GroupAnomaly::SplitAssignment),
    );
    let commits = lost_commit::check(history);
    anomalies.extend(commits.lost.into_iter().map(GroupAnomaly::LostCommit));
    anomalies.extend(commits.stale.into_iter().map(GroupAnomaly::StaleCommit));
    anomalies.extend(commits.unknown.into_iter().map(GroupAnomaly::UnknownCommit));
    let fenced = fenced_commit::check(history);
    anomalies.extend(
        fenced
            .accepted
            .into_iter()
            .map(GroupAnomaly::FencedCommitAccepted),
    );
    anomalies.extend(
        fenced
            .written
            .into_iter()
            .map(GroupAnomaly::FencedCommitWritten),
    );
    anomalies.extend(
        liveness::check(history)
            .into_iter()
            .map(GroupAnomaly::NotStable),
    );
    GroupReport { anomalies }
}

/// A commit op, unpacked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Commit<'h> {
    pub index: GroupOpIndex,
    pub op: &'h GroupOp,
    pub member_id: &'h str,
    pub generation: i32,
    pub offsets: &'h [(TopicPartition, i64)],
    pub tag: u64,
}

impl Commit<'_> {
    pub fn acknowledged(&self) -> bool {
        self.op.outcome == GroupOutcome::Committed
    }

    /// The offset this commit wrote for `tp`, if it names `tp`.
    pub fn offset_of(&self, tp: &TopicPartition) -> Option<i64> {
        self.offsets
            .iter()
            .find(|(t, _)| t == tp)
            .map(|(_, offset)| *offset)
    }
}

/// Every commit op of the history, in recording order.
pub(crate) fn commits(history: &GroupHistory) -> Vec<Commit<'_>> {
    history
        .indexed()
        .filter_map(|(index, op)| match &op.call {
            GroupCall::Commit {
                member_id,
                generation,
                offsets,
                tag,
            } => Some(Commit {
                index,
                op,
                member_id,
                generation: *generation,
                offsets,
                tag: *tag,
            }),
            _ => None,
        })
        .collect()
}

/// `a` precedes `b` in real time: `a` took effect, if at all, before `b` was invoked. An `Info`
/// op may still take effect after the client gave up on it, so it precedes nothing.
pub(crate) fn precedes(a: &GroupOp, b: &GroupOp) -> bool {
    !matches!(a.outcome, GroupOutcome::Info(_)) && a.completed_before(b.invoked)
}

pub(crate) fn partitions(tps: &[TopicPartition]) -> String {
    super::join(tps)
}
