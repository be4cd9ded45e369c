//! lost-write: a durably acknowledged value is not in the final read where it was acknowledged.
//!
//! For every durable ack (`acks=-1`, or `acks=1` whose leader the harness marked as surviving) of
//! value `v` at `(tp, o)`, the final read of `tp` must return `v` at `o`. The final read is the
//! union of the `Ok` polls flagged `final_read`.
//!
//! Deviation from Jepsen: Jepsen cannot count on a final read, so it infers what must have been
//! read from the highest offset any poll observed ("every acknowledged value below the highest
//! read must have been read by someone"). Our runs always end with a full final read after the
//! liveness phase (design §4), so the stronger, simpler rule applies: a durable value must be in
//! the final log at its acknowledged offset. Two harness problems are reported here too, because
//! they would otherwise hide or fake a loss: a partition with durable acks but no final read, and
//! a final read that stopped below the high watermark it was shown.

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::Offset;

use super::{Analysis, join};
use crate::history::{Call, OpIndex, OpKind, TopicPartition, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostWrite {
    /// The value is nowhere in the final read of its partition.
    Missing {
        value: Value,
        tp: TopicPartition,
        acked: Offset,
        ack: OpIndex,
        final_read: OpIndex,
    },
    /// The final read has the value, but not at the acknowledged offset.
    Moved {
        value: Value,
        tp: TopicPartition,
        acked: Offset,
        ack: OpIndex,
        found: Vec<Offset>,
        final_reads: Vec<OpIndex>,
    },
    /// Durable acks to a partition that the final read never read: nothing can be judged.
    NoFinalRead {
        tp: TopicPartition,
        durable_values: usize,
        first_ack: OpIndex,
    },
    /// The final read of a partition ended below the high watermark it reported: values above
    /// `read_up_to` were not judged fairly.
    IncompleteFinalRead {
        tp: TopicPartition,
        read_up_to: Offset,
        high_watermark: Offset,
        last_poll: OpIndex,
    },
}

impl LostWrite {
    pub fn ops(&self) -> Vec<OpIndex> {
        match self {
            LostWrite::Missing {
                ack, final_read, ..
            } => vec![*ack, *final_read],
            LostWrite::Moved {
                ack, final_reads, ..
            } => {
                let mut ops = vec![*ack];
                ops.extend(final_reads);
                ops
            }
            LostWrite::NoFinalRead { first_ack, .. } => vec![*first_ack],
            LostWrite::IncompleteFinalRead { last_poll, .. } => vec![*last_poll],
        }
    }
}

impl fmt::Display for LostWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostWrite::Missing {
                value,
                tp,
                acked,
                ack,
                final_read,
            } => write!(
                f,
                "value {value} acknowledged at {tp}@{acked} ({ack}) is missing from the final read (see {final_read})"
            ),
            LostWrite::Moved {
                value,
                tp,
                acked,
                ack,
                found,
                ..
            } => write!(
                f,
                "value {value} acknowledged at {tp}@{acked} ({ack}) is at offset(s) [{}] in the final read",
                join(found)
            ),
            LostWrite::NoFinalRead {
                tp,
                durable_values,
                first_ack,
            } => write!(
                f,
                "{tp} has {durable_values} durably acknowledged value(s) (first {first_ack}) but no final read"
            ),
            LostWrite::IncompleteFinalRead {
                tp,
                read_up_to,
                high_watermark,
                last_poll,
            } => write!(
                f,
                "final read of {tp} stopped at {read_up_to}, below its high watermark {high_watermark} ({last_poll})"
            ),
        }
    }
}

/// What the final read returned for one partition.
#[derive(Default)]
struct FinalLog {
    at: BTreeMap<Value, Vec<Offset>>,
    /// `(from_offset, end, op)` per final poll; `end` is one past its last record.
    polls: Vec<(Offset, Offset, OpIndex)>,
    high_watermark: Offset,
}

impl FinalLog {
    /// The final poll whose range covers `offset`, or the last one.
    fn covering(&self, offset: Offset) -> OpIndex {
        let covering = self
            .polls
            .iter()
            .find(|(from, end, _)| *from <= offset && offset < *end);
        covering
            .or(self.polls.last())
            .map(|(_, _, op)| *op)
            .expect("a final log has polls")
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<LostWrite> {
    let mut finals: BTreeMap<&TopicPartition, FinalLog> = BTreeMap::new();
    for op in analysis.history.completed() {
        let Call::Poll {
            tp,
            from_offset,
            final_read: true,
        } = op.call()
        else {
            continue;
        };
        let log = finals.entry(tp).or_default();
        let Some(result) = op.poll_result() else {
            continue;
        };
        for &(offset, value) in &result.records {
            log.at.entry(value).or_default().push(offset);
        }
        let end = result
            .records
            .iter()
            .map(|(o, _)| o.next())
            .max()
            .unwrap_or(*from_offset);
        log.polls
            .push((*from_offset, end.max(*from_offset), op.index()));
        log.high_watermark = log.high_watermark.max(result.high_watermark);
    }

    let mut anomalies = Vec::new();
    let mut unread: BTreeMap<&TopicPartition, (usize, OpIndex)> = BTreeMap::new();
    for op in analysis.history.completed() {
        if op.outcome() != OpKind::Ok {
            continue;
        }
        let Call::Send { tp, .. } = op.call() else {
            continue;
        };
        for (acked, value) in op.durable_acks() {
            let Some(log) = finals.get(tp).filter(|log| !log.polls.is_empty()) else {
                unread.entry(tp).or_insert((0, op.index())).0 += 1;
                continue;
            };
            match log.at.get(&value) {
                None => anomalies.push(LostWrite::Missing {
                    value,
                    tp: tp.clone(),
                    acked,
                    ack: op.index(),
                    final_read: log.covering(acked),
                }),
                Some(found) if !found.contains(&acked) => anomalies.push(LostWrite::Moved {
                    value,
                    tp: tp.clone(),
                    acked,
                    ack: op.index(),
                    found: found.clone(),
                    final_reads: found.iter().map(|o| log.covering(*o)).collect(),
                }),
                Some(_) => {}
            }
        }
    }
    for (tp, (durable_values, first_ack)) in unread {
        anomalies.push(LostWrite::NoFinalRead {
            tp: tp.clone(),
            durable_values,
            first_ack,
        });
    }
    for (tp, log) in &finals {
        let read_up_to = log
            .polls
            .iter()
            .map(|(_, end, _)| *end)
            .max()
            .unwrap_or(Offset::ZERO);
        let short = log.polls.last().filter(|_| read_up_to < log.high_watermark);
        if let Some(&(_, _, last_poll)) = short {
            anomalies.push(LostWrite::IncompleteFinalRead {
                tp: (*tp).clone(),
                read_up_to,
                high_watermark: log.high_watermark,
                last_poll,
            });
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};
    use crate::history::Acks;

    fn run(b: &Builder) -> Vec<LostWrite> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_when_every_durable_value_is_in_the_final_read() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1, 2], 0);
        b.send_ok(2, "t", 0, &[3], 2);
        // An indefinite send that landed, and one that did not: both fine.
        b.send_info(1, "t", 0, &[4]);
        b.send_info(2, "t", 0, &[5]);
        b.final_read(9, "t", 0, &[(0, 1), (1, 2), (2, 3), (3, 4)], 4);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn final_read_over_several_polls_counts_as_one() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1, 2, 3], 0);
        b.invoke_poll(9, "t", 0, 0, true);
        b.ok_poll(9, &[(0, 1)], 3, 0);
        b.invoke_poll(9, "t", 0, 1, true);
        b.ok_poll(9, &[(1, 2), (2, 3)], 3, 0);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_an_acks_all_value_missing_from_the_final_read() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1], 0);
        let ack = b.send_ok(1, "t", 0, &[2], 1);
        let fin = b.final_read(9, "t", 0, &[(0, 1)], 1);
        assert_eq!(
            run(&b),
            vec![LostWrite::Missing {
                value: Value(2),
                tp: tp("t", 0),
                acked: Offset(1),
                ack,
                final_read: fin
            }]
        );
    }

    #[test]
    fn reports_a_value_at_another_offset_than_acknowledged() {
        let mut b = Builder::new();
        let ack = b.send_ok(1, "t", 0, &[1], 0);
        let fin = b.final_read(9, "t", 0, &[(0, 7), (1, 1)], 2);
        assert_eq!(
            run(&b),
            vec![LostWrite::Moved {
                value: Value(1),
                tp: tp("t", 0),
                acked: Offset(0),
                ack,
                found: vec![Offset(1)],
                final_reads: vec![fin],
            }]
        );
    }

    #[test]
    fn acks_one_is_judged_only_when_the_leader_survived() {
        let mut b = Builder::new();
        b.send_ok_acks(1, "t", 0, &[1], 0, Acks::Leader);
        let survived = b.send_ok_acks(1, "t", 0, &[2], 1, Acks::Leader);
        b.send_ok_acks(1, "t", 0, &[3], 2, Acks::None);
        b.history.mark_leader_survived(survived);
        b.final_read(9, "t", 0, &[], 0);
        let lost: Vec<Value> = run(&b)
            .into_iter()
            .filter_map(|a| match a {
                LostWrite::Missing { value, .. } => Some(value),
                _ => None,
            })
            .collect();
        assert_eq!(lost, vec![Value(2)]);
    }

    #[test]
    fn reports_a_partition_without_final_read() {
        let mut b = Builder::new();
        let first_ack = b.send_ok(1, "t", 1, &[1, 2], 0);
        b.final_read(9, "t", 0, &[], 0);
        assert_eq!(
            run(&b),
            vec![LostWrite::NoFinalRead {
                tp: tp("t", 1),
                durable_values: 2,
                first_ack
            }]
        );
    }

    #[test]
    fn reports_a_final_read_that_stopped_short() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1], 0);
        let last_poll = b.final_read(9, "t", 0, &[(0, 1)], 5);
        assert_eq!(
            run(&b),
            vec![LostWrite::IncompleteFinalRead {
                tp: tp("t", 0),
                read_up_to: Offset(1),
                high_watermark: Offset(5),
                last_poll
            }]
        );
    }
}
