//! Property tests: histories generated from a correct model of a Kafka partition log must pass
//! every checker, and the same histories with one durable value dropped from the final read must
//! be caught by lost-write.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::checker::lost_write::LostWrite;
use crate::checker::testkit::Builder;
use crate::checker::{Anomaly, check_all};
use crate::history::Value;

const PARTITIONS: i32 = 2;
const FINAL_READER: u32 = 99;

#[derive(Debug, Clone)]
enum Action {
    /// `outcome`: 0 ok, 1 indefinite but appended, 2 indefinite and not appended, 3 failed.
    Send {
        producer: u32,
        partition: i32,
        count: usize,
        outcome: u8,
    },
    Poll {
        consumer: u32,
        partition: i32,
        max: usize,
    },
    Seek {
        consumer: u32,
        partition: i32,
    },
    Assign {
        consumer: u32,
        seek_to_beginning: bool,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (1..4u32, 0..PARTITIONS, 1..4usize, 0..4u8)
            .prop_map(|(producer, partition, count, outcome)| Action::Send { producer, partition, count, outcome }),
        4 => (10..12u32, 0..PARTITIONS, 0..4usize)
            .prop_map(|(consumer, partition, max)| Action::Poll { consumer, partition, max }),
        1 => (10..12u32, 0..PARTITIONS).prop_map(|(consumer, partition)| Action::Seek { consumer, partition }),
        1 => (10..12u32, any::<bool>())
            .prop_map(|(consumer, seek_to_beginning)| Action::Assign { consumer, seek_to_beginning }),
    ]
}

/// Plays `actions` against a correct log and records the history; the final read leaves out
/// `drop` if given. Returns the builder and the durably acknowledged values.
fn play(actions: &[Action], drop: Option<Value>) -> (Builder, Vec<Value>) {
    let mut b = Builder::new();
    let mut logs: BTreeMap<i32, Vec<u64>> = (0..PARTITIONS).map(|p| (p, Vec::new())).collect();
    let mut positions: BTreeMap<(u32, i32), usize> = BTreeMap::new();
    let mut next_value = 0u64;
    let mut acked = Vec::new();
    for action in actions {
        match *action {
            Action::Send {
                producer,
                partition,
                count,
                outcome,
            } => {
                let values: Vec<u64> = (next_value..next_value + count as u64).collect();
                next_value += count as u64;
                let log = logs.get_mut(&partition).expect("every partition has a log");
                let base = log.len() as i64;
                if outcome <= 1 {
                    log.extend(&values);
                }
                match outcome {
                    0 => {
                        b.send_ok(producer, "t", partition, &values, base);
                        acked.extend(values.iter().map(|v| Value(*v)));
                    }
                    1 | 2 => {
                        b.send_info(producer, "t", partition, &values);
                    }
                    _ => {
                        b.send_fail(producer, "t", partition, &values);
                    }
                }
            }
            Action::Poll {
                consumer,
                partition,
                max,
            } => {
                let log = &logs[&partition];
                let position = positions.entry((consumer, partition)).or_insert(0);
                let end = (*position + max).min(log.len());
                let records: Vec<(i64, u64)> =
                    (*position..end).map(|o| (o as i64, log[o])).collect();
                b.poll_ok(
                    consumer,
                    "t",
                    partition,
                    *position as i64,
                    &records,
                    log.len() as i64,
                );
                *position = end;
            }
            Action::Seek {
                consumer,
                partition,
            } => {
                b.seek(consumer, "t", partition, 0);
                positions.insert((consumer, partition), 0);
            }
            Action::Assign {
                consumer,
                seek_to_beginning,
            } => {
                b.assign(consumer, &[("t", 0), ("t", 1)], seek_to_beginning);
                if seek_to_beginning {
                    positions.retain(|(c, _), _| *c != consumer);
                }
            }
        }
    }
    for (partition, log) in &logs {
        let mut from = 0;
        loop {
            let end = (from + 3).min(log.len());
            let records: Vec<(i64, u64)> = (from..end)
                .map(|o| (o as i64, log[o]))
                .filter(|(_, v)| Some(Value(*v)) != drop)
                .collect();
            b.invoke_poll(FINAL_READER, "t", *partition, from as i64, true);
            b.ok_poll(FINAL_READER, &records, log.len() as i64, 0);
            from = end;
            if from >= log.len() {
                break;
            }
        }
    }
    (b, acked)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn histories_of_a_correct_log_are_valid(actions in prop::collection::vec(action(), 0..60)) {
        let (b, _) = play(&actions, None);
        let report = check_all(&b.history);
        prop_assert!(report.is_valid(), "{}\n{}", report.render(&b.history, 5), b.history.dump_all());
    }

    #[test]
    fn a_durable_value_dropped_from_the_final_read_is_a_lost_write(
        actions in prop::collection::vec(action(), 1..60),
        pick in any::<prop::sample::Index>(),
    ) {
        let (_, acked) = play(&actions, None);
        prop_assume!(!acked.is_empty());
        let dropped = acked[pick.index(acked.len())];
        let (b, _) = play(&actions, Some(dropped));
        let report = check_all(&b.history);
        let caught = report.anomalies.iter().any(|a| {
            matches!(a, Anomaly::LostWrite(LostWrite::Missing { value, .. }) if *value == dropped)
        });
        prop_assert!(caught, "value {} not reported:\n{}", dropped, report.render(&b.history, 5));
    }
}
