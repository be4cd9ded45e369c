//! nonmonotonic-send: one producer's successive acknowledged sends to a partition whose offsets
//! do not increase.
//!
//! For each process and partition, in completion order, the base offset of each durably
//! acknowledged send must be above the last offset of the previous one. Indefinite and failed
//! sends in between change nothing (their offsets are unknown). As Jepsen, this assumes a process
//! has one send in flight at a time (the history's recording contract).
//!
//! Deviation from Jepsen: Jepsen compares positions in its version order, and counts `info` sends
//! whose offsets it knows; we compare acknowledged offsets directly and only durable ones: an
//! `acks=1` offset may be truncated and reused by a new leader, so a later send getting a lower
//! offset is then legal.

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::Offset;

use super::Analysis;
use crate::history::{Call, OpIndex, OpKind, ProcessId, TopicPartition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonmonotonicSend {
    pub process: ProcessId,
    pub tp: TopicPartition,
    /// The earlier send's completion and its last offset.
    pub previous: (OpIndex, Offset),
    /// The later send's completion and its first offset, at or below `previous.1`.
    pub next: (OpIndex, Offset),
}

impl NonmonotonicSend {
    pub fn ops(&self) -> Vec<OpIndex> {
        vec![self.previous.0, self.next.0]
    }
}

impl fmt::Display for NonmonotonicSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent to {} at offset {} ({}) after offset {} ({})",
            self.process, self.tp, self.next.1, self.next.0, self.previous.1, self.previous.0
        )
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<NonmonotonicSend> {
    let mut last: BTreeMap<(ProcessId, &TopicPartition), (OpIndex, Offset)> = BTreeMap::new();
    let mut anomalies = Vec::new();
    for op in analysis.history.completed() {
        if op.outcome() != OpKind::Ok {
            continue;
        }
        let Call::Send { tp, .. } = op.call() else {
            continue;
        };
        let acks = op.durable_acks();
        let (Some(&(first, _)), Some(&(final_offset, _))) = (acks.first(), acks.last()) else {
            continue;
        };
        let key = (op.process(), tp);
        if let Some(&previous) = last.get(&key).filter(|previous| first <= previous.1) {
            anomalies.push(NonmonotonicSend {
                process: op.process(),
                tp: tp.clone(),
                previous,
                next: (op.index(), first),
            });
        }
        last.insert(key, (op.index(), final_offset));
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};
    use crate::history::Acks;

    fn run(b: &Builder) -> Vec<NonmonotonicSend> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_when_offsets_increase_per_producer_and_partition() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1, 2], 0);
        b.send_ok(2, "t", 0, &[3], 2);
        b.send_info(1, "t", 0, &[4]);
        b.send_ok(1, "t", 0, &[5], 5);
        // Another partition has its own offsets.
        b.send_ok(1, "t", 1, &[6], 0);
        // A non-durable ack after truncation may go back.
        b.send_ok_acks(1, "t", 0, &[7], 3, Acks::Leader);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_a_send_acknowledged_below_the_previous_one() {
        let mut b = Builder::new();
        let first = b.send_ok(1, "t", 0, &[1, 2], 10);
        b.send_ok(2, "t", 0, &[3], 12);
        let second = b.send_ok(1, "t", 0, &[4], 11);
        assert_eq!(
            run(&b),
            vec![NonmonotonicSend {
                process: ProcessId(1),
                tp: tp("t", 0),
                previous: (first, Offset(11)),
                next: (second, Offset(11)),
            }]
        );
    }
}
