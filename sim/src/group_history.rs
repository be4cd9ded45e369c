//! Recorded histories of consumer-group operations (the group workload), judged by the
//! [`crate::checker::group`] checkers.
//!
//! Plain data, like [`crate::history`]: it depends on neither madsim nor the client, so the
//! Jepsen harness can record the same histories. Each operation is recorded once it completes,
//! with the time it was invoked and the time it completed (`None`: it never completed, the run
//! ended first, which counts as [`GroupOutcome::Info`]).
//!
//! # Recording contract
//!
//! - A process is one consumer incarnation (a restarted consumer is a new process). A process
//!   has at most one operation in flight; its operations are recorded in invocation order.
//! - Times are logical nanoseconds (simulated time under madsim) and never go back.
//! - Every commit carries a `tag` unique per run, written as the commit's metadata string
//!   (decimal). An OffsetFetch read reports the tag it found in the metadata, so a read names
//!   the commit it returns. A metadata string that is not a tag is reported as `tag: None`.
//! - [`GroupCall::Join`] is a JoinGroup *and* its SyncGroup: it is `Joined` only once the
//!   SyncGroup answered with an assignment (the coordinator answers SyncGroup only after the
//!   generation's metadata is committed, so a `Joined` generation survives any failover).
//! - The final describe of each group (after the heal, design §4's liveness phase) is recorded
//!   with `final_check: true`, once the group had time to settle.

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::Instant;

use crate::history::{ProcessId, TopicPartition};

/// Position of a [`GroupOp`] in its [`GroupHistory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupOpIndex(pub usize);

impl fmt::Display for GroupOpIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g#{}", self.0)
    }
}

/// What a group operation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCall {
    /// JoinGroup then SyncGroup, as `member_id` (empty: a first join).
    Join { member_id: String },
    /// OffsetCommit as (`member_id`, `generation`), metadata = `tag`.
    Commit {
        member_id: String,
        generation: i32,
        offsets: Vec<(TopicPartition, i64)>,
        tag: u64,
    },
    /// OffsetFetch of these partitions.
    FetchCommitted { partitions: Vec<TopicPartition> },
    /// DescribeGroups; `final_check` marks the liveness check after the heal.
    Describe { final_check: bool },
}

/// What a committed offset read returned for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedRead {
    pub offset: i64,
    /// The commit's tag, parsed from its metadata (`None`: not a tag).
    pub tag: Option<u64>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    /// Decoded from the member's assignment (consumer protocol).
    pub assignment: Vec<TopicPartition>,
}

/// How a group operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOutcome {
    /// A Join whose SyncGroup succeeded.
    Joined {
        member_id: String,
        generation: i32,
        assignment: Vec<TopicPartition>,
    },
    /// A Commit answered with no error for every partition.
    Committed,
    /// A FetchCommitted; `None` for a partition with no committed offset.
    Fetched(Vec<(TopicPartition, Option<CommittedRead>)>),
    /// A Describe.
    Described {
        state: String,
        generation: i32,
        members: Vec<DescribedMember>,
    },
    /// Definitely not done: the broker answered this Kafka error code.
    Fail(i16),
    /// Unknown: a timeout, a lost connection, or never completed.
    Info(String),
}

impl GroupOutcome {
    pub fn is_ok(&self) -> bool {
        !matches!(self, GroupOutcome::Fail(_) | GroupOutcome::Info(_))
    }
}

/// One completed (or abandoned) group operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOp {
    pub process: ProcessId,
    pub group: String,
    pub invoked: Instant,
    /// `None`: never completed.
    pub completed: Option<Instant>,
    pub call: GroupCall,
    pub outcome: GroupOutcome,
}

impl GroupOp {
    /// Completed at or before `t` (an operation that never completed never did).
    pub fn completed_before(&self, t: Instant) -> bool {
        self.completed.is_some_and(|c| c < t)
    }
}

/// A group workload's history, with the partitions each group subscribes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupHistory {
    pub ops: Vec<GroupOp>,
    /// Every partition of the topics each group subscribes to.
    pub subscribed: BTreeMap<String, Vec<TopicPartition>>,
}

impl GroupHistory {
    pub fn new() -> GroupHistory {
        GroupHistory::default()
    }

    /// Records a completed (or abandoned) operation. Times never go back per process.
    pub fn record(&mut self, op: GroupOp) -> GroupOpIndex {
        if let Some(completed) = op.completed {
            assert!(
                completed >= op.invoked,
                "completion before invocation: {op:?}"
            );
        }
        if let Some(last) = self.ops.iter().rev().find(|o| o.process == op.process) {
            assert!(
                last.completed.is_some_and(|c| c <= op.invoked),
                "process {:?} invoked {op:?} while {last:?} was in flight",
                op.process
            );
        }
        self.ops.push(op);
        GroupOpIndex(self.ops.len() - 1)
    }

    pub fn op(&self, index: GroupOpIndex) -> &GroupOp {
        &self.ops[index.0]
    }

    /// Every operation with its index, in recording order.
    pub fn indexed(&self) -> impl Iterator<Item = (GroupOpIndex, &GroupOp)> {
        self.ops
            .iter()
            .enumerate()
            .map(|(i, op)| (GroupOpIndex(i), op))
    }

    /// A readable dump of the operations at `indices` (for anomaly reports).
    pub fn render(&self, indices: &[GroupOpIndex]) -> String {
        let mut out = String::new();
        for &i in indices {
            let op = self.op(i);
            out.push_str(&format!(
                "{i} p{} {} [{}..{}] {:?} -> {:?}\n",
                op.process.0,
                op.group,
                op.invoked.0,
                op.completed.map_or("-".to_string(), |c| c.0.to_string()),
                op.call,
                op.outcome
            ));
        }
        out
    }
}
