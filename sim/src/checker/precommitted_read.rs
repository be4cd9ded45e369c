//! precommitted-read: a read returned a value it could not yet have been allowed to see.
//!
//! Three cases, all about one record of an `Ok` poll:
//!
//! - *before its send*: the poll completed before any send of the value was invoked (real-time
//!   order, from the recorded logical times), so the value came from nowhere yet;
//! - *never sent*: no send in the whole history carried the value (a corrupted or invented
//!   record);
//! - *beyond the high watermark*: the record's offset is at or above the high watermark reported
//!   in the same response, i.e. the broker handed out an uncommitted record (Kafka consumers
//!   read only below the high watermark).
//!
//! Deviation from Jepsen: Jepsen's `precommitted-read` is a transactional anomaly (a transaction
//! that observes its own uncommitted sends). We have no transactions yet; this checker instead
//! catches the non-transactional ways to read what is not committed, which Jepsen folds partly
//! into its graph analysis (a read before its write shows up as a cycle) and partly does not
//! check (it does not record high watermarks).

use std::fmt;

use strata_core::types::{Instant, Offset};

use super::Analysis;
use crate::history::{OpIndex, TopicPartition, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecommittedRead {
    pub value: Value,
    pub tp: TopicPartition,
    pub offset: Offset,
    /// The poll that returned it (its completion).
    pub read: OpIndex,
    pub kind: PrecommittedKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrecommittedKind {
    /// The read completed at `read_time`, before the first send of the value was invoked.
    BeforeSend {
        read_time: Instant,
        send: OpIndex,
        send_time: Instant,
    },
    /// No send carried the value.
    NeverSent,
    /// The response's high watermark was at or below the record's offset.
    BeyondHighWatermark { high_watermark: Offset },
}

impl PrecommittedRead {
    pub fn ops(&self) -> Vec<OpIndex> {
        match self.kind {
            PrecommittedKind::BeforeSend { send, .. } => vec![self.read, send],
            _ => vec![self.read],
        }
    }
}

impl fmt::Display for PrecommittedRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "value {} read at {}@{} ({}) ",
            self.value, self.tp, self.offset, self.read
        )?;
        match &self.kind {
            PrecommittedKind::BeforeSend {
                read_time,
                send,
                send_time,
            } => write!(
                f,
                "at t={}ns, before its send {send} was invoked at t={}ns",
                read_time.0, send_time.0
            ),
            PrecommittedKind::NeverSent => f.write_str("was never sent"),
            PrecommittedKind::BeyondHighWatermark { high_watermark } => {
                write!(
                    f,
                    "at or beyond the high watermark {high_watermark} of the same response"
                )
            }
        }
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<PrecommittedRead> {
    let mut anomalies = Vec::new();
    for read in &analysis.reads {
        let completion = read.op.completion.expect("reads come from completed polls");
        let result = read.op.poll_result().expect("reads come from ok polls");
        let mut report = |kind| {
            anomalies.push(PrecommittedRead {
                value: read.value,
                tp: read.tp.clone(),
                offset: read.offset,
                read: completion.index,
                kind,
            })
        };
        if read.offset >= result.high_watermark {
            report(PrecommittedKind::BeyondHighWatermark {
                high_watermark: result.high_watermark,
            });
        }
        match analysis
            .sends_of
            .get(&read.value)
            .and_then(|sends| sends.first())
        {
            None => report(PrecommittedKind::NeverSent),
            // Sends are in invocation order: the first was invoked earliest.
            Some(send) if completion.time < send.invoke.time => {
                report(PrecommittedKind::BeforeSend {
                    read_time: completion.time,
                    send: send.invoke.index,
                    send_time: send.invoke.time,
                })
            }
            Some(_) => {}
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};
    use crate::history::{Acks, ProcessId};

    fn run(b: &Builder) -> Vec<PrecommittedRead> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_for_reads_after_the_send_was_invoked_and_below_the_high_watermark() {
        let mut b = Builder::new();
        // A read concurrent with its send (invoked, not yet acknowledged) is fine.
        b.invoke_send(1, "t", 0, &[1], Acks::All);
        b.poll_ok(2, "t", 0, 0, &[(0, 1)], 1);
        b.ok_send(1, 0);
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_a_read_completed_before_its_send_was_invoked() {
        let mut b = Builder::new();
        let read = b.poll_ok(2, "t", 0, 0, &[(0, 1)], 1);
        let send = b.invoke_send(1, "t", 0, &[1], Acks::All);
        b.ok_send(1, 0);
        let read_time = b.history.op(read).time;
        let send_time = b.history.op(send).time;
        assert_eq!(
            run(&b),
            vec![PrecommittedRead {
                value: Value(1),
                tp: tp("t", 0),
                offset: Offset(0),
                read,
                kind: PrecommittedKind::BeforeSend {
                    read_time,
                    send,
                    send_time
                },
            }]
        );
    }

    #[test]
    fn reports_a_value_never_sent() {
        let mut b = Builder::new();
        let read = b.poll_ok(2, "t", 0, 0, &[(0, 99)], 1);
        let found = run(&b);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].read, &found[0].kind),
            (read, &PrecommittedKind::NeverSent)
        );
    }

    #[test]
    fn reports_a_record_at_or_beyond_the_reported_high_watermark() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1, 2], 0);
        let read = b.poll_ok(2, "t", 0, 0, &[(0, 1), (1, 2)], 1);
        assert_eq!(
            run(&b),
            vec![PrecommittedRead {
                value: Value(2),
                tp: tp("t", 0),
                offset: Offset(1),
                read,
                kind: PrecommittedKind::BeyondHighWatermark {
                    high_watermark: Offset(1)
                },
            }]
        );
        let _ = ProcessId(0);
    }
}
