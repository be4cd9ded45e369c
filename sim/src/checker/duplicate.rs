//! duplicate: one value observed at two different positions.
//!
//! Observations as for inconsistent-offsets (reads and durable acks). Values are unique per run,
//! so a value at two offsets, or in two partitions, was appended twice: a retried send that the
//! broker failed to deduplicate, or a replica that copied a batch twice. A retry whose value
//! lands once is fine, as is the same value seen at the same offset by many reads.
//!
//! Jepsen checks per key (partition); we also catch a value in two partitions, which with unique
//! values can only be a duplicate.
//!
//! One exception: a producer that resends possibly written batches under a bumped epoch
//! (librdkafka's KIP-360 epoch bump, `Call::Send::resends`) may leave one copy per epoch, which
//! no broker can prevent. Such copies are allowed when the reads show each under the same
//! producer id and a different, growing epoch, and the send may have been written before it was
//! resent ([`super::producer_fencing::cross_epoch_copies`]); two copies under one epoch, or an
//! old-epoch copy after a newer one, are still reported (here and by producer-state).

use std::collections::BTreeMap;
use std::fmt;

use strata_core::types::Offset;

use super::{Analysis, Source, producer_fencing};
use crate::history::{OpIndex, TopicPartition, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub value: Value,
    /// Every position the value was seen at, with where it was seen.
    pub at: Vec<(TopicPartition, Offset, Vec<Source>)>,
}

impl Duplicate {
    pub fn ops(&self) -> Vec<OpIndex> {
        self.at
            .iter()
            .flat_map(|(_, _, sources)| sources.iter().map(|s| s.op()))
            .collect()
    }
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "value {} at {} positions:", self.value, self.at.len())?;
        for (tp, offset, sources) in &self.at {
            write!(f, " {tp}@{offset} ({})", super::join(sources))?;
        }
        Ok(())
    }
}

pub fn check(analysis: &Analysis<'_>) -> Vec<Duplicate> {
    let batches = producer_fencing::batches(analysis);
    let mut positions: BTreeMap<Value, Vec<(TopicPartition, Offset, Vec<Source>)>> =
        BTreeMap::new();
    for (tp, offsets) in &analysis.observed {
        for (offset, values) in offsets {
            for (value, sources) in values {
                positions
                    .entry(*value)
                    .or_default()
                    .push((tp.clone(), *offset, sources.clone()));
            }
        }
    }
    positions
        .into_iter()
        .filter(|(_, at)| at.len() > 1)
        .filter(|(value, at)| {
            let places: Vec<(TopicPartition, Offset)> =
                at.iter().map(|(tp, o, _)| (tp.clone(), *o)).collect();
            !producer_fencing::cross_epoch_copies(analysis, &batches, *value, &places)
        })
        .map(|(value, at)| Duplicate { value, at })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tp};

    fn run(b: &Builder) -> Vec<Duplicate> {
        check(&Analysis::new(&b.history))
    }

    #[test]
    fn quiet_when_a_retried_value_lands_once() {
        let mut b = Builder::new();
        b.send_info(1, "t", 0, &[1]);
        b.send_ok(1, "t", 0, &[1], 0); // the retry
        b.poll_ok(2, "t", 0, 0, &[(0, 1)], 1);
        b.poll_ok(3, "t", 0, 0, &[(0, 1)], 1); // seen twice at the same offset
        assert_eq!(run(&b), vec![]);
    }

    #[test]
    fn reports_a_value_read_at_two_offsets() {
        let mut b = Builder::new();
        b.send_info(1, "t", 0, &[1]);
        let ack = b.send_ok(1, "t", 0, &[1], 1); // the retry was appended again
        let read = b.poll_ok(2, "t", 0, 0, &[(0, 1), (1, 1)], 2);
        assert_eq!(
            run(&b),
            vec![Duplicate {
                value: Value(1),
                at: vec![
                    (tp("t", 0), Offset(0), vec![Source::Read(read)]),
                    (
                        tp("t", 0),
                        Offset(1),
                        vec![Source::Ack(ack), Source::Read(read)]
                    ),
                ],
            }]
        );
    }

    /// The workload records an idempotent send as one operation, whatever retries the producer
    /// made inside it. If the broker failed to deduplicate a retry (Redpanda #3039: the new
    /// leader took the retry for new data), the batch is in the log twice while the history
    /// shows one acknowledged send: the final read must still give it away, value by value.
    #[test]
    fn reports_a_retried_idempotent_batch_the_broker_wrote_twice() {
        let mut b = Builder::new();
        b.send_ok(1, "t", 0, &[1], 0);
        // One send, acknowledged once (at the retry's offset) after internal retries.
        let ack = b.send_ok(1, "t", 0, &[5, 6, 7], 4);
        let read = b.final_read(
            9,
            "t",
            0,
            &[(0, 1), (1, 5), (2, 6), (3, 7), (4, 5), (5, 6), (6, 7)],
            7,
        );
        let found = run(&b);
        let values: Vec<u64> = found.iter().map(|d| d.value.0).collect();
        assert_eq!(values, vec![5, 6, 7]);
        assert_eq!(
            found[0].at,
            vec![
                (tp("t", 0), Offset(1), vec![Source::Read(read)]),
                (
                    tp("t", 0),
                    Offset(4),
                    vec![Source::Ack(ack), Source::Read(read)]
                ),
            ]
        );
    }

    /// An acknowledgement without offset (`DUPLICATE_SEQUENCE_NUMBER` from an older broker)
    /// says nothing about position; reads alone still show the duplicate.
    #[test]
    fn reports_a_duplicate_behind_an_acknowledgement_without_offset() {
        let mut b = Builder::new();
        b.invoke_send(1, "t", 0, &[5], crate::history::Acks::All);
        let t = b.tick();
        b.history.ok(
            crate::history::ProcessId(1),
            t,
            crate::history::Reply::Send(crate::history::SendAck {
                base_offset: None,
                leader_survived: false,
                possible_duplicate: false,
            }),
        );
        b.final_read(9, "t", 0, &[(0, 5), (1, 5)], 2);
        assert_eq!(run(&b).len(), 1);
    }

    #[test]
    fn reports_a_value_in_two_partitions() {
        let mut b = Builder::new();
        b.poll_ok(2, "t", 0, 0, &[(0, 1)], 1);
        b.poll_ok(2, "t", 1, 0, &[(0, 1)], 1);
        let found = run(&b);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].at.len(), 2);
    }
}
