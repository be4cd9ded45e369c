//! G1a (aborted read): a read returned a value whose write definitely failed.
//!
//! A value is aborted when every send that carried it completed `Fail`. A send that completed
//! `Info` (or never completed) may have been appended, so a value with any such send, or with a
//! retry that succeeded, is not aborted. As Jepsen, every `Ok` poll counts as a read.

use std::fmt;

use strata_core::types::Offset;

use super::Analysis;
use crate::history::{OpIndex, OpKind, TopicPartition, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortedRead {
    pub value: Value,
    pub tp: TopicPartition,
    pub offset: Offset,
    /// The poll that returned it.
    pub read: OpIndex,
    /// The failed sends of the value (their completions).
    pub failed_sends: Vec<OpIndex>,
}

impl AbortedRead {
    pub fn ops(&self) -> Vec<OpIndex> {
        let mut ops = self.failed_sends.clone();
        ops.push(self.read);
        ops
    }
}

impl fmt::Display for AbortedRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "value {} read at {}@{} ({}) but its send failed ({})",
            self.value,
            self.tp,
            self.offset,
            self.read,
            super::join(&self.failed_sends)
        )
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<AbortedRead> {
    let mut anomalies = Vec::new();
    for read in &analysis.reads {
        let Some(sends) = analysis.sends_of.get(&read.value) else {
            continue;
        };
        if sends.iter().all(|send| send.outcome() == OpKind::Fail) {
            anomalies.push(AbortedRead {
                value: read.value,
                tp: read.tp.clone(),
                offset: read.offset,
                read: read.op.index(),
                failed_sends: sends.iter().map(|s| s.index()).collect(),
            });
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};

    fn run(b: &Builder) -> Vec<AbortedRead> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_for_indefinite_and_retried_sends() {
        let mut b = Builder::new();
        b.send_info(1, "t", 0, &[1]); // indefinite, then appears: fine
        b.send_fail(1, "t", 0, &[2]);
        b.send_ok(1, "t", 0, &[2], 1); // failed once, then retried successfully
        b.send_fail(1, "t", 0, &[3]); // failed and never read: fine
        b.invoke_send(1, "t", 0, &[4], crate::history::Acks::All); // never completed
        b.poll_ok(2, "t", 0, 0, &[(0, 1), (1, 2), (2, 4)], 3);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_a_read_of_a_failed_send() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1], 0);
        let failed = b.send_fail(1, "t", 0, &[2]);
        let read = b.poll_ok(2, "t", 0, 0, &[(0, 1), (1, 2)], 2);
        assert_eq!(
            run(&b),
            vec![AbortedRead {
                value: Value(2),
                tp: tp("t", 0),
                offset: Offset(1),
                read,
                failed_sends: vec![failed]
            }]
        );
    }
}
