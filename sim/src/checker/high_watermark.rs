//! high-watermark-regression: a consumer saw a partition's high watermark go back.
//!
//! For each process and partition, the high watermarks reported by its `Ok` polls, in completion
//! order, never decrease. Not in Jepsen: it is one of Strata's own claims (design §4). Kafka can
//! show a lower high watermark right after a leader change (the new leader learns the old high
//! watermark only from the next fetch round); we claim we do not, because a consumer that sees
//! the high watermark go back may have read records that are no longer committed.
//!
//! Per process on purpose: that is what one client observes in order. Assignments and seeks do
//! not reset it: the high watermark belongs to the partition, not to the consumer's position.

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::Offset;

use super::Analysis;
use crate::history::{Call, OpIndex, OpKind, ProcessId, TopicPartition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HighWatermarkRegression {
    pub process: ProcessId,
    pub tp: TopicPartition,
    /// The earlier poll and the high watermark it reported.
    pub previous: (OpIndex, Offset),
    /// The later poll and its lower high watermark.
    pub next: (OpIndex, Offset),
}

impl HighWatermarkRegression {
    pub fn ops(&self) -> Vec<OpIndex> {
        vec![self.previous.0, self.next.0]
    }
}

impl fmt::Display for HighWatermarkRegression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} saw the high watermark of {} go from {} ({}) back to {} ({})",
            self.process, self.tp, self.previous.1, self.previous.0, self.next.1, self.next.0
        )
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<HighWatermarkRegression> {
    let mut highest: BTreeMap<(ProcessId, &TopicPartition), (OpIndex, Offset)> = BTreeMap::new();
    let mut anomalies = Vec::new();
    for op in analysis.history.completed() {
        let (Call::Poll { tp, .. }, OpKind::Ok) = (op.call(), op.outcome()) else {
            continue;
        };
        let result = op.poll_result().expect("ok polls carry a result");
        let next = (op.index(), result.high_watermark);
        let key = (op.process(), tp);
        match highest.get(&key) {
            Some(&previous) if next.1 < previous.1 => {
                anomalies.push(HighWatermarkRegression {
                    process: op.process(),
                    tp: tp.clone(),
                    previous,
                    next,
                });
            }
            Some(&previous) if next.1 == previous.1 => {}
            _ => {
                highest.insert(key, next);
            }
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};

    fn run(b: &Builder) -> Vec<HighWatermarkRegression> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_when_each_consumer_sees_it_advance_or_stay() {
        let mut b = Builder::new();
        b.poll_ok(1, "t", 0, 0, &[], 3);
        b.poll_ok(1, "t", 0, 0, &[], 3);
        b.poll_info(1, "t", 0, 0);
        b.poll_ok(1, "t", 0, 0, &[], 5);
        // Another consumer may lag behind the first one; another partition has its own.
        b.poll_ok(2, "t", 0, 0, &[], 4);
        b.poll_ok(1, "t", 1, 0, &[], 1);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_a_high_watermark_going_back() {
        let mut b = Builder::new();
        b.poll_ok(1, "t", 0, 0, &[], 3);
        let high = b.poll_ok(1, "t", 0, 0, &[], 7);
        b.assign(1, &[("t", 0)], true);
        let low = b.poll_ok(1, "t", 0, 0, &[], 5);
        assert_eq!(
            run(&b),
            vec![HighWatermarkRegression {
                process: ProcessId(1),
                tp: tp("t", 0),
                previous: (high, Offset(7)),
                next: (low, Offset(5)),
            }]
        );
    }
}
