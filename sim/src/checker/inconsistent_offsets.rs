//! inconsistent-offsets: two different values observed at one `(topic, partition, offset)`.
//!
//! Observations are every record of every `Ok` poll plus every durable ack (as Jepsen: polls
//! always, sends only when they must have committed). An `acks=0`/`acks=1` ack is left out: a new
//! leader may truncate it and legitimately give its offset to another value. The same value seen
//! at the same offset any number of times is fine.

use std::fmt;

use strata_core::types::Offset;

use super::{Analysis, Source};
use crate::history::{OpIndex, TopicPartition, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InconsistentOffset {
    pub tp: TopicPartition,
    pub offset: Offset,
    /// Each value seen there, with where it was seen.
    pub values: Vec<(Value, Vec<Source>)>,
}

impl InconsistentOffset {
    pub fn ops(&self) -> Vec<OpIndex> {
        self.values
            .iter()
            .flat_map(|(_, sources)| sources.iter().map(|s| s.op()))
            .collect()
    }
}

impl fmt::Display for InconsistentOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} holds {} values:",
            self.tp,
            self.offset,
            self.values.len()
        )?;
        for (value, sources) in &self.values {
            write!(f, " {value} ({})", super::join(sources))?;
        }
        Ok(())
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<InconsistentOffset> {
    let mut anomalies = Vec::new();
    for (tp, offsets) in &analysis.observed {
        for (offset, values) in offsets {
            if values.len() > 1 {
                anomalies.push(InconsistentOffset {
                    tp: tp.clone(),
                    offset: *offset,
                    values: values.iter().map(|(v, s)| (*v, s.clone())).collect(),
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

    fn run(b: &Builder) -> Vec<InconsistentOffset> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_when_reads_and_acks_agree() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1, 2], 0);
        // The same value at the same offset, seen by several reads: fine.
        b.poll_ok(2, "t", 0, 0, &[(0, 1), (1, 2)], 2);
        b.poll_ok(3, "t", 0, 0, &[(0, 1), (1, 2)], 2);
        // Same offset in another partition is another offset.
        b.poll_ok(3, "t", 1, 0, &[(0, 9)], 1);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn quiet_when_a_non_durable_ack_is_overwritten_after_truncation() {
        let mut b = Builder::new();
        // acks=1 at offset 0, leader crashed, the new leader gave offset 0 to value 2.
        b.send_ok_acks(1, "t", 0, &[1], 0, Acks::Leader);
        b.send_ok(1, "t", 0, &[2], 0);
        b.poll_ok(2, "t", 0, 0, &[(0, 2)], 1);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_two_reads_disagreeing_on_an_offset() {
        let mut b = Builder::new();
        let r1 = b.poll_ok(2, "t", 0, 0, &[(0, 1), (1, 2)], 2);
        let r2 = b.poll_ok(3, "t", 0, 1, &[(1, 3)], 2);
        assert_eq!(
            run(&b),
            vec![InconsistentOffset {
                tp: tp("t", 0),
                offset: Offset(1),
                values: vec![
                    (Value(2), vec![Source::Read(r1)]),
                    (Value(3), vec![Source::Read(r2)])
                ],
            }]
        );
    }

    #[test]
    fn reports_a_read_disagreeing_with_a_durable_ack() {
        let mut b = Builder::new();
        let ack = b.send_ok(1, "t", 0, &[5], 3);
        let read = b.poll_ok(2, "t", 0, 3, &[(3, 6)], 4);
        let found = run(&b);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].offset, Offset(3));
        assert_eq!(
            found[0].values,
            vec![
                (Value(5), vec![Source::Ack(ack)]),
                (Value(6), vec![Source::Read(read)])
            ]
        );
    }
}
