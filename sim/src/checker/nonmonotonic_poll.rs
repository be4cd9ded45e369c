//! nonmonotonic-poll: a consumer handed a record at or before one it had already gone past.
//!
//! For each consumer and partition (see [`super::consumer`] for the walk and what restarts it),
//! each record must be at an offset above the previous record the consumer saw, or, at the start
//! of a chain, at or above the `from_offset` the poll asked for. Repeating an offset counts: a
//! consumer that gets offset 5 twice without seeking back has gone backwards. This covers
//! records within one poll and across successive polls, as Jepsen's `nonmonotonic-poll` and
//! `int-nonmonotonic-poll` together do.
//!
//! Deviation from Jepsen: Jepsen compares positions in its inferred version order; we compare
//! offsets directly (they are the order), which also works when an offset's value is disputed.

use std::fmt;

use strata_core::types::Offset;

use super::Analysis;
use super::consumer::{Position, steps};
use crate::history::{OpIndex, ProcessId, TopicPartition, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonmonotonicPoll {
    pub process: ProcessId,
    pub tp: TopicPartition,
    /// Where the consumer was.
    pub before: Position,
    /// The record it was then handed, and the poll that returned it.
    pub offset: Offset,
    pub value: Value,
    pub op: OpIndex,
}

impl NonmonotonicPoll {
    pub fn ops(&self) -> Vec<OpIndex> {
        vec![self.before.op(), self.op]
    }
}

impl fmt::Display for NonmonotonicPoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} polled {}@{} (value {}, {}) after ",
            self.process, self.tp, self.offset, self.value, self.op
        )?;
        match self.before {
            Position::Seen { offset, value, op } => {
                write!(f, "offset {offset} (value {value}, {op})")
            }
            Position::Start { from_offset, op } => {
                write!(f, "asking from offset {from_offset} ({op})")
            }
        }
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<NonmonotonicPoll> {
    steps(analysis.history)
        .into_iter()
        .filter(|step| step.offset <= step.before.last())
        .map(|step| NonmonotonicPoll {
            process: step.process,
            tp: step.tp.clone(),
            before: step.before,
            offset: step.offset,
            value: step.value,
            op: step.op,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};

    fn run(b: &Builder) -> Vec<NonmonotonicPoll> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_when_each_consumer_moves_forward() {
        let mut b = Builder::new();
        b.assign(1, &[("t", 0), ("t", 1)], false);
        b.poll_ok(1, "t", 0, 0, &[(0, 1), (1, 2)], 3);
        b.poll_info(1, "t", 0, 2);
        b.poll_ok(1, "t", 0, 2, &[], 3);
        b.poll_ok(1, "t", 0, 2, &[(2, 3)], 3);
        // Another consumer and another partition have their own positions.
        b.poll_ok(2, "t", 0, 0, &[(0, 1)], 3);
        b.poll_ok(1, "t", 1, 0, &[(0, 9)], 1);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn quiet_when_the_consumer_seeks_or_reassigns_back() {
        let mut b = Builder::new();
        b.poll_ok(1, "t", 0, 0, &[(0, 1), (1, 2)], 2);
        b.seek(1, "t", 0, 0);
        b.poll_ok(1, "t", 0, 0, &[(0, 1)], 2);
        b.assign(1, &[("t", 0)], true);
        b.poll_ok(1, "t", 0, 0, &[(0, 1)], 2);
        b.assign(1, &[("t", 1)], false);
        b.assign(1, &[("t", 0)], false);
        b.poll_ok(1, "t", 0, 0, &[(0, 1), (1, 2)], 2);
        // The final read from the start, by a process that polled before.
        b.final_read(1, "t", 0, &[(0, 1), (1, 2)], 2);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_a_repeat_across_polls_without_a_seek() {
        let mut b = Builder::new();
        let first = b.poll_ok(1, "t", 0, 0, &[(0, 1), (1, 2)], 2);
        let second = b.poll_ok(1, "t", 0, 2, &[(1, 2)], 2);
        assert_eq!(
            run(&b),
            vec![NonmonotonicPoll {
                process: ProcessId(1),
                tp: tp("t", 0),
                before: Position::Seen {
                    offset: Offset(1),
                    value: Value(2),
                    op: first
                },
                offset: Offset(1),
                value: Value(2),
                op: second,
            }]
        );
    }

    #[test]
    fn reports_going_backwards_within_a_poll() {
        let mut b = Builder::new();
        let poll = b.poll_ok(1, "t", 0, 0, &[(0, 1), (2, 3), (1, 2)], 3);
        let found = run(&b);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].offset, found[0].op), (Offset(1), poll));
        assert_eq!(found[0].before.last(), Offset(2));
    }

    #[test]
    fn reports_a_record_below_the_requested_position() {
        let mut b = Builder::new();
        let poll = b.poll_ok(1, "t", 0, 5, &[(4, 4), (5, 5)], 6);
        let found = run(&b);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].before,
            Position::Start {
                from_offset: Offset(5),
                op: poll
            }
        );
        assert_eq!(found[0].offset, Offset(4));
    }
}
