//! The property (#16, "Proof"): for any sequence of keyed appends (tombstones and
//! several keys per batch included), rolls and cleanings at random times with random high
//! watermarks, a read of the whole log from the log start returns, for every key, its newest
//! value (or nothing once its tombstone's horizon passed, never an older value), every record
//! as it was appended at its offset, offsets strictly increasing, and nothing at or above the
//! high watermark changed by a cleaning.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::storage::MemStorage;

#[derive(Debug, Clone)]
enum Op {
    /// Records `(key index, value or tombstone)`.
    Append(Vec<(u8, Option<u8>)>),
    Roll,
    /// Close and open the log again (a restart: recovery of cleaned, gapped segments).
    Reopen,
    /// Advance the clock by this much, then clean with the high watermark at this fraction
    /// (per mille) of the way from the log start to the log end; `settle` first or not.
    Clean {
        dt: i64,
        hw_permille: u16,
        settle: bool,
        budget: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0u8..6, prop::option::weighted(0.8, 0u8..50));
    prop_oneof![
        6 => prop::collection::vec(record, 1..5).prop_map(Op::Append),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        2 => (0i64..800, 0u16..=1000, any::<bool>(), prop_oneof![Just(BIG_BUDGET), 1usize..400])
            .prop_map(|(dt, hw_permille, settle, budget)| {
                Op::Clean { dt, hw_permille, settle, budget }
            }),
    ]
}

/// Every record ever appended: offset -> (key, value).
type Appended = BTreeMap<Offset, (String, Option<String>)>;

fn check_log(log: &PartitionLog, appended: &Appended) {
    assert_increasing(log);
    let recs = records(log);
    for r in &recs {
        let k = r
            .key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        let v = r
            .value
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let (ak, av) = appended.get(&r.offset).expect("a record that was appended");
        assert_eq!(
            (k.as_ref(), &v),
            (Some(ak), av),
            "record at {} as appended",
            r.offset
        );
    }
    let mut newest: BTreeMap<&String, &Option<String>> = BTreeMap::new();
    for (k, v) in appended.values() {
        newest.insert(k, v);
    }
    let found = table(&recs);
    for (k, v) in newest {
        match v {
            Some(_) => assert_eq!(found.get(k), Some(v), "{k}'s newest value"),
            None => assert!(
                matches!(found.get(k), None | Some(None)),
                "deleted {k} came back"
            ),
        }
    }
}

fn run_ops(ops: &[Op]) {
    let cfg = LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 100,
        delete_retention_ms: 500,
        ..config()
    };
    let storage = MemStorage::new();
    let mut log = open(Arc::new(storage.clone()), cfg.clone());
    let mut appended = Appended::new();
    let mut now = 1_000;
    for op in ops {
        match op {
            Op::Append(recs) => {
                let owned: Vec<(String, Option<String>)> = recs
                    .iter()
                    .map(|(k, v)| (format!("k{k}"), v.map(|v| format!("v{v}"))))
                    .collect();
                let kv: Vec<Kv> = owned
                    .iter()
                    .map(|(k, v)| (Some(k.as_str()), v.as_deref()))
                    .collect();
                let first = append(&mut log, &kv, now);
                for (i, (k, v)) in owned.into_iter().enumerate() {
                    appended.insert(Offset(first.0 + i as i64), (k, v));
                }
            }
            Op::Roll => log.roll().expect("roll"),
            Op::Reopen => {
                settle(&mut log);
                drop(log);
                log = open(Arc::new(storage.clone()), cfg.clone());
                check_log(&log, &appended);
            }
            Op::Clean {
                dt,
                hw_permille,
                settle: s,
                budget,
            } => {
                now += dt;
                if *s {
                    settle(&mut log);
                }
                let (start, end) = (log.log_start_offset().0, log.log_end_offset().0);
                let hw = Offset(start + (end - start) * i64::from(*hw_permille) / 1000);
                let above = |log: &PartitionLog| -> Vec<Vec<u8>> {
                    batches(log)
                        .into_iter()
                        .filter(|(_, h)| h.last_offset() >= hw)
                        .map(|(r, _)| r)
                        .collect()
                };
                let kept = above(&log);
                clean_with(&mut log, now, hw, *budget);
                assert_eq!(
                    above(&log),
                    kept,
                    "nothing at or above the high watermark {hw} changed"
                );
                check_log(&log, &appended);
            }
        }
    }
    // A last cleaning of everything, sealed, long after every horizon: one record per key.
    now += 10_000;
    log.roll().expect("roll");
    settle(&mut log);
    let end = log.log_end_offset();
    clean(&mut log, now, end);
    check_log(&log, &appended);
    let mut per_key: BTreeMap<Option<Bytes>, usize> = BTreeMap::new();
    for r in records(&log) {
        *per_key.entry(r.key).or_default() += 1;
    }
    assert!(per_key.values().all(|n| *n == 1), "{per_key:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_cleaned_log_reads_back_the_newest_value_of_every_key(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        run_ops(&ops);
    }
}
