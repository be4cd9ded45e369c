//! unseen: a durably acknowledged value that no read ever returned.
//!
//! Jepsen's `unseen` counts, over time, acknowledged values that no poll has returned yet; the
//! count at the end of the run is the one that matters (a poller that merely lags catches up
//! during the final reads). We report the end state: each durable ack whose value appears in no
//! `Ok` poll at all, final or not. It overlaps with lost-write on purpose, as in Jepsen:
//! lost-write judges the final log offset by offset, unseen only asks "did anyone ever see it?",
//! so a value read once and later lost shows under lost-write alone, and an unseen value with a
//! clean lost-write points at the final read itself.
//!
//! Deviation from Jepsen: only durable acks count (`acks=-1`, or `acks=1` marked
//! `leader_survived`); an `acks=0`/`acks=1` value may legitimately vanish with its leader.

use std::collections::BTreeSet;
use std::fmt;

use strata_core::types::Offset;

use super::Analysis;
use crate::history::{Call, OpIndex, OpKind, TopicPartition, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unseen {
    pub value: Value,
    pub tp: TopicPartition,
    pub acked: Offset,
    pub ack: OpIndex,
}

impl Unseen {
    pub fn ops(&self) -> Vec<OpIndex> {
        vec![self.ack]
    }
}

impl fmt::Display for Unseen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "value {} acknowledged at {}@{} ({}) was never read",
            self.value, self.tp, self.acked, self.ack
        )
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<Unseen> {
    let read: BTreeSet<Value> = analysis.reads.iter().map(|r| r.value).collect();
    let mut anomalies = Vec::new();
    for op in analysis.history.completed() {
        if op.outcome() != OpKind::Ok {
            continue;
        }
        let Call::Send { tp, .. } = op.call() else {
            continue;
        };
        for (acked, value) in op.durable_acks() {
            if !read.contains(&value) {
                anomalies.push(Unseen {
                    value,
                    tp: tp.clone(),
                    acked,
                    ack: op.index(),
                });
            }
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};
    use crate::history::Acks;

    fn run(b: &Builder) -> Vec<Unseen> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_when_every_acknowledged_value_was_read_somewhere() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1, 2], 0);
        b.send_info(1, "t", 0, &[3]); // never appears: fine, it was indefinite
        b.poll_ok(2, "t", 0, 0, &[(0, 1)], 2);
        b.final_read(9, "t", 0, &[(1, 2)], 2);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_an_acknowledged_value_no_read_returned() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1], 0);
        let ack = b.send_ok(1, "t", 0, &[2], 1);
        b.send_ok_acks(1, "t", 0, &[3], 2, Acks::Leader); // not durable: may vanish
        b.final_read(9, "t", 0, &[(0, 1)], 1);
        assert_eq!(
            run(&b),
            vec![Unseen {
                value: Value(2),
                tp: tp("t", 0),
                acked: Offset(1),
                ack
            }]
        );
    }
}
