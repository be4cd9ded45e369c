//! Recorded histories of consumer-group operations (the group workload), judged by the
//! [`crate::checker::group`] checkers.
//!
//! Plain data, like [`crate::history`]: it depends on neither madsim nor the client, so the
//! Jepsen harness can record the same histories. Each operation is recorded once it completes,
//! with the time it was invoked and the time it completed (`None`: it never completed, the run
//! ended first, which counts as [`GroupOutcome::Info`]).
//!
//! # JSON lines
//!
//! [`GroupHistory::to_jsonl`] writes a first line
//! `{"subscribed":{"g":[{"topic":"t","partition":0}]}}`, then one [`GroupOp`] per line, e.g.
//! (each op is one line in the file, wrapped here to fit):
//!
//! ```text
//! {"process":3,"group":"g","invoked":1000,"completed":2000,
//!  "call":{"f":"commit","member_id":"m-1","generation":2,
//!          "offsets":[[{"topic":"t","partition":0},17]],"tag":5},
//!  "outcome":{"type":"committed"}}
//! {"process":3,"group":"g","invoked":2100,"completed":null,
//!  "call":{"f":"fetch-committed","partitions":[{"topic":"t","partition":0}]},
//!  "outcome":{"type":"info","value":"timeout"}}
//! ```
//!
//! `call.f` is `join`, `commit`, `fetch-committed` or `describe`; `outcome.type` is `joined`,
//! `committed`, `fetched`, `described`, `fail` (value: the Kafka error code) or `info` (value:
//! the reason). [`GroupHistory::from_jsonl`] reads it back.
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

use serde::{Deserialize, Serialize};
use strata_core::types::Instant;

pub use crate::history::JsonlError;
use crate::history::{ProcessId, TopicPartition};

/// The first line of a group history in JSON lines.
#[derive(Serialize, Deserialize)]
struct Subscribed {
    subscribed: BTreeMap<String, Vec<TopicPartition>>,
}

/// Position of a [`GroupOp`] in its [`GroupHistory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupOpIndex(pub usize);

impl fmt::Display for GroupOpIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g#{}", self.0)
    }
}

/// What a group operation asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedRead {
    pub offset: i64,
    /// The commit's tag, parsed from its metadata (`None`: not a tag).
    pub tag: Option<u64>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribedMember {
    pub member_id: String,
    /// Decoded from the member's assignment (consumer protocol).
    pub assignment: Vec<TopicPartition>,
}

/// How a group operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOp {
    pub process: ProcessId,
    pub group: String,
    #[serde(with = "crate::history::serde_instant")]
    pub invoked: Instant,
    /// `None`: never completed.
    #[serde(with = "crate::history::serde_instant::option")]
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
        if let Some(why) = self.violation(&op) {
            panic!("{why}");
        }
        self.ops.push(op);
        GroupOpIndex(self.ops.len() - 1)
    }

    /// The history as JSON lines: first `{"subscribed":{group:[partitions]}}`, then one
    /// [`GroupOp`] per line in recording order (see the module docs for the shape).
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        let header = Subscribed {
            subscribed: self.subscribed.clone(),
        };
        let header = serde_json::to_string(&header).expect("plain data always serializes");
        out.push_str(&header);
        out.push('\n');
        for op in &self.ops {
            let line = serde_json::to_string(op).expect("plain data always serializes");
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Reads back what [`GroupHistory::to_jsonl`] wrote. Blank lines are skipped; the
    /// `subscribed` line must come first. Every op is recorded through
    /// [`GroupHistory::record`]'s checks, returned as an error instead of a panic.
    pub fn from_jsonl(text: &str) -> Result<GroupHistory, JsonlError> {
        let mut history = GroupHistory::new();
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l))
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((line, header)) = lines.next() else {
            return Ok(history);
        };
        let header: Subscribed =
            serde_json::from_str(header).map_err(|source| JsonlError::Json { line, source })?;
        history.subscribed = header.subscribed;
        for (line, raw) in lines {
            let op: GroupOp =
                serde_json::from_str(raw).map_err(|source| JsonlError::Json { line, source })?;
            if let Some(why) = history.violation(&op) {
                return Err(JsonlError::Invalid { line, why });
            }
            history.ops.push(op);
        }
        Ok(history)
    }

    /// What recording `op` next would break in the recording contract, if anything.
    fn violation(&self, op: &GroupOp) -> Option<String> {
        if op.completed.is_some_and(|c| c < op.invoked) {
            return Some(format!("completion before invocation: {op:?}"));
        }
        let last = self.ops.iter().rev().find(|o| o.process == op.process)?;
        if last.completed.is_some_and(|c| c <= op.invoked) {
            None
        } else {
            Some(format!(
                "process {:?} invoked {op:?} while {last:?} was in flight",
                op.process
            ))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn op(
        process: u32,
        invoked: u64,
        completed: Option<u64>,
        call: GroupCall,
        outcome: GroupOutcome,
    ) -> GroupOp {
        GroupOp {
            process: ProcessId(process),
            group: "g".into(),
            invoked: Instant(invoked),
            completed: completed.map(Instant),
            call,
            outcome,
        }
    }

    /// A history with one op of every call and outcome kind, and one never completed.
    fn every_kind() -> GroupHistory {
        let mut h = GroupHistory::new();
        h.subscribed.insert("g".into(), vec![tp(0), tp(1)]);
        for o in join_commit_fetch()
            .into_iter()
            .chain(describes_and_lost_join())
        {
            h.record(o);
        }
        h
    }

    /// Process 1 joins, commits and fetches its commit back.
    fn join_commit_fetch() -> Vec<GroupOp> {
        vec![
            op(
                1,
                1,
                Some(2),
                GroupCall::Join {
                    member_id: String::new(),
                },
                GroupOutcome::Joined {
                    member_id: "m-1".into(),
                    generation: 1,
                    assignment: vec![tp(0), tp(1)],
                },
            ),
            op(
                1,
                3,
                Some(4),
                GroupCall::Commit {
                    member_id: "m-1".into(),
                    generation: 1,
                    offsets: vec![(tp(0), 17)],
                    tag: 5,
                },
                GroupOutcome::Committed,
            ),
            op(
                1,
                5,
                Some(6),
                GroupCall::FetchCommitted {
                    partitions: vec![tp(0), tp(1)],
                },
                GroupOutcome::Fetched(vec![
                    (
                        tp(0),
                        Some(CommittedRead {
                            offset: 17,
                            tag: Some(5),
                        }),
                    ),
                    (tp(1), None),
                ]),
            ),
        ]
    }

    /// A failed and a final describe by process 1, then a join by process 2 that never
    /// completed.
    fn describes_and_lost_join() -> Vec<GroupOp> {
        vec![
            op(
                1,
                7,
                Some(8),
                GroupCall::Describe { final_check: false },
                GroupOutcome::Fail(16),
            ),
            op(
                1,
                9,
                Some(10),
                GroupCall::Describe { final_check: true },
                GroupOutcome::Described {
                    state: "Stable".into(),
                    generation: 1,
                    members: vec![DescribedMember {
                        member_id: "m-1".into(),
                        assignment: vec![tp(0), tp(1)],
                    }],
                },
            ),
            op(
                2,
                11,
                None,
                GroupCall::Join {
                    member_id: "m-2".into(),
                },
                GroupOutcome::Info("timeout".into()),
            ),
        ]
    }

    #[test]
    fn jsonl_round_trips() {
        let h = every_kind();
        let text = h.to_jsonl();
        assert_eq!(text.lines().count(), h.ops.len() + 1);
        let back = GroupHistory::from_jsonl(&text).expect("reads back");
        assert_eq!(back, h);
        assert!(
            text.contains("\"outcome\":{\"type\":\"fail\",\"value\":16}"),
            "{text}"
        );
    }

    #[test]
    fn jsonl_refuses_an_op_invoked_while_another_is_in_flight() {
        let mut text = every_kind().to_jsonl();
        text.push_str(
            &serde_json::to_string(&op(
                2,
                12,
                Some(13),
                GroupCall::Describe { final_check: false },
                GroupOutcome::Fail(15),
            ))
            .expect("serializes"),
        );
        assert!(matches!(
            GroupHistory::from_jsonl(&text),
            Err(JsonlError::Invalid { line: 8, .. })
        ));
    }
}
