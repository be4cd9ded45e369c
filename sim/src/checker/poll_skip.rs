//! poll-skip: a consumer under assign moved past offsets that the log is known to hold.
//!
//! For each consumer and partition (see [`super::consumer`] for the walk and what restarts it),
//! between the position before a record and the record itself, no offset may exist that some
//! read or durable ack shows holds a value. Offsets in the log need not be dense (transaction
//! markers take offsets no consumer sees), so a gap alone is not a skip: only a gap over an
//! offset observed elsewhere. Offsets below the `log_start_offset` of the poll that skipped them
//! may have been deleted legitimately (retention) and are not counted.
//!
//! As Jepsen's `poll-skip` plus `int-poll-skip`: within one poll and across successive polls of a
//! process. Deviation: at the start of a chain we also judge the first record against the
//! `from_offset` the poll asked for (a consumer that asked from 5 and got 7 while 5 and 6 exist
//! skipped), which Jepsen cannot as its client does not record positions.

use std::fmt;

use strata_core::types::Offset;

use super::consumer::{Position, steps};
use super::{Analysis, join};
use crate::history::{OpIndex, ProcessId, TopicPartition, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSkip {
    pub process: ProcessId,
    pub tp: TopicPartition,
    /// Where the consumer was.
    pub before: Position,
    /// The record it was then handed, and the poll that returned it.
    pub offset: Offset,
    pub value: Value,
    pub op: OpIndex,
    /// Offsets strictly between, known to hold a value.
    pub skipped: Vec<Offset>,
    /// A read or ack that shows the first skipped offset exists.
    pub witness: OpIndex,
}

impl PollSkip {
    pub fn ops(&self) -> Vec<OpIndex> {
        vec![self.before.op(), self.op, self.witness]
    }
}

impl fmt::Display for PollSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} skipped {}@[{}] (seen by {}): polled offset {} ({}) after ",
            self.process,
            self.tp,
            join(&self.skipped),
            self.witness,
            self.offset,
            self.op
        )?;
        match self.before {
            Position::Seen { offset, op, .. } => write!(f, "offset {offset} ({op})"),
            Position::Start { from_offset, op } => {
                write!(f, "asking from offset {from_offset} ({op})")
            }
        }
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<PollSkip> {
    let mut anomalies = Vec::new();
    for step in steps(analysis.history) {
        let skipped = analysis.known_between(
            step.tp,
            step.before.last(),
            step.offset,
            step.log_start_offset,
        );
        let Some(first) = skipped.first() else {
            continue;
        };
        let witness = analysis.observed[step.tp][first]
            .values()
            .flatten()
            .next()
            .expect("an observed offset has a source")
            .op();
        anomalies.push(PollSkip {
            process: step.process,
            tp: step.tp.clone(),
            before: step.before,
            offset: step.offset,
            value: step.value,
            op: step.op,
            skipped,
            witness,
        });
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};

    fn run(b: &Builder) -> Vec<PollSkip> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_when_consumers_read_every_known_offset() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1, 2, 3], 0);
        b.assign(2, &[("t", 0)], true);
        b.poll_ok(2, "t", 0, 0, &[(0, 1)], 3);
        b.poll_ok(2, "t", 0, 1, &[(1, 2), (2, 3)], 3);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn quiet_over_gaps_no_one_saw_a_value_in() {
        // Offset 1 is, say, a transaction marker: no read or ack shows a value there.
        let mut b = Builder::new();
        b.poll_ok(2, "t", 0, 0, &[(0, 1), (2, 3)], 3);
        b.final_read(9, "t", 0, &[(0, 1), (2, 3)], 3);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn quiet_when_skipped_offsets_are_below_the_log_start() {
        let mut b = Builder::new();
        b.poll_ok(3, "t", 0, 0, &[(0, 1), (1, 2)], 3);
        b.invoke_poll(2, "t", 0, 0, false);
        b.ok_poll(2, &[(2, 3)], 3, 2); // retention removed 0..2
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn quiet_when_the_consumer_seeks_forward() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1, 2, 3], 0);
        b.poll_ok(2, "t", 0, 0, &[(0, 1)], 3);
        b.seek(2, "t", 0, 2);
        b.poll_ok(2, "t", 0, 2, &[(2, 3)], 3);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_a_skip_across_successive_polls() {
        let mut b = Builder::new();
        let ack = b.send_ok(1, "t", 0, &[1, 2, 3, 4], 0);
        let first = b.poll_ok(2, "t", 0, 0, &[(0, 1)], 4);
        let second = b.poll_ok(2, "t", 0, 1, &[(3, 4)], 4);
        assert_eq!(
            run(&b),
            vec![PollSkip {
                process: ProcessId(2),
                tp: tp("t", 0),
                before: Position::Seen {
                    offset: Offset(0),
                    value: Value(1),
                    op: first
                },
                offset: Offset(3),
                value: Value(4),
                op: second,
                skipped: vec![Offset(1), Offset(2)],
                witness: ack,
            }]
        );
    }

    #[test]
    fn reports_a_skip_within_a_poll_shown_by_another_reader() {
        let mut b = Builder::new();
        let other = b.poll_ok(3, "t", 0, 0, &[(0, 1), (1, 2), (2, 3)], 3);
        let poll = b.poll_ok(2, "t", 0, 0, &[(0, 1), (2, 3)], 3);
        let found = run(&b);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].op, found[0].skipped.clone(), found[0].witness),
            (poll, vec![Offset(1)], other)
        );
    }

    #[test]
    fn reports_a_first_record_beyond_the_requested_position() {
        let mut b = Builder::new();
        b.final_read(9, "t", 0, &[(0, 1), (1, 2), (2, 3)], 3);
        let poll = b.poll_ok(2, "t", 0, 0, &[(2, 3)], 3);
        let found = run(&b);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].before,
            Position::Start {
                from_offset: Offset(0),
                op: poll
            }
        );
        assert_eq!(found[0].skipped, vec![Offset(0), Offset(1)]);
    }
}
