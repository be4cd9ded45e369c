//! The order in which each consumer saw records: the walk shared by nonmonotonic-poll and
//! poll-skip.
//!
//! For each process and partition we follow the consumer's position through the history, in
//! completion order. Every record of an `Ok` poll is a [`Step`] from the position before it: the
//! previous record this consumer saw of that partition, or, at the start of a chain, the
//! `from_offset` the poll was invoked with. A chain restarts (the position is forgotten) when
//! the consumer's position legitimately moves:
//!
//! - an `Assign` that completed `Ok` forgets the partitions no longer assigned, or all of them
//!   with `seek_to_beginning`; an indefinite `Assign` forgets all (we cannot tell what it did);
//! - a `Seek` that completed `Ok` or `Info` forgets that partition.
//!
//! Failed and indefinite polls returned nothing and move nothing. Final-read polls form their
//! own chains, so a harness may reuse a workload process for the final read from offset 0.

use std::collections::BTreeMap;

use strata_core::types::Offset;

use crate::history::{Call, History, OpIndex, OpKind, ProcessId, TopicPartition, Value};

/// Where a consumer was before a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// It had last seen `value` at `offset`, returned by poll `op`.
    Seen {
        offset: Offset,
        value: Value,
        op: OpIndex,
    },
    /// It had seen nothing since its chain started; poll `op` asked from `from_offset`.
    Start { from_offset: Offset, op: OpIndex },
}

impl Position {
    /// The highest offset the consumer has gone past.
    pub fn last(&self) -> Offset {
        match *self {
            Position::Seen { offset, .. } => offset,
            Position::Start { from_offset, .. } => Offset(from_offset.0.saturating_sub(1)),
        }
    }

    pub fn op(&self) -> OpIndex {
        match *self {
            Position::Seen { op, .. } | Position::Start { op, .. } => op,
        }
    }
}

/// One record a consumer was handed, and where it was before.
#[derive(Debug, Clone, Copy)]
pub struct Step<'h> {
    pub process: ProcessId,
    pub tp: &'h TopicPartition,
    pub before: Position,
    pub offset: Offset,
    pub value: Value,
    /// The poll that returned the record (its completion).
    pub op: OpIndex,
    /// The `log_start_offset` that poll reported: offsets below it may be gone legitimately.
    pub log_start_offset: Offset,
}

/// Every step of every consumer, in completion order.
pub fn steps(history: &History) -> Vec<Step<'_>> {
    type Chains<'h> = BTreeMap<(&'h TopicPartition, bool), Position>;
    let mut positions: BTreeMap<ProcessId, Chains<'_>> = BTreeMap::new();
    let mut steps = Vec::new();
    for op in history.completed() {
        let chains = positions.entry(op.process()).or_default();
        match (op.call(), op.outcome()) {
            (
                Call::Assign {
                    partitions,
                    seek_to_beginning,
                },
                OpKind::Ok,
            ) => {
                if *seek_to_beginning {
                    chains.clear();
                } else {
                    chains.retain(|(tp, _), _| partitions.contains(tp));
                }
            }
            (Call::Assign { .. }, OpKind::Info) => chains.clear(),
            (Call::Seek { tp, .. }, OpKind::Ok | OpKind::Info) => {
                chains.retain(|(t, _), _| *t != tp)
            }
            (
                Call::Poll {
                    tp,
                    from_offset,
                    final_read,
                },
                OpKind::Ok,
            ) => {
                let result = op.poll_result().expect("ok polls carry a result");
                let key = (tp, *final_read);
                let mut before = chains.get(&key).copied().unwrap_or(Position::Start {
                    from_offset: *from_offset,
                    op: op.index(),
                });
                for &(offset, value) in &result.records {
                    steps.push(Step {
                        process: op.process(),
                        tp,
                        before,
                        offset,
                        value,
                        op: op.index(),
                        log_start_offset: result.log_start_offset,
                    });
                    before = Position::Seen {
                        offset,
                        value,
                        op: op.index(),
                    };
                }
                if let Position::Seen { .. } = before {
                    chains.insert(key, before);
                }
            }
            _ => {}
        }
    }
    steps
}
