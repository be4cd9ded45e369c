//! Each compaction anomaly on a hand-made bad history, and good histories (compacted, with
//! tombstones removed, with indefinite writes surviving) that pass.

use super::*;
use crate::history::ProcessId;
use crate::kv_history::{KvFinalRead, KvRecord};

use KvValue::{Tombstone, Value};

/// Builds a [`KvHistory`] send by send, then its final read.
struct Kv(KvHistory);

impl Kv {
    fn new() -> Kv {
        Kv(KvHistory::default())
    }

    fn send(&mut self, records: &[(&str, KvValue)], outcome: KvOutcome) -> &mut Kv {
        let records = records
            .iter()
            .map(|(k, v)| KvRecord {
                key: k.to_string(),
                value: *v,
            })
            .collect();
        let i = self.0.invoke(ProcessId(1), records);
        self.0.complete(i, outcome);
        self
    }

    fn ok(&mut self, base: i64, records: &[(&str, KvValue)]) -> &mut Kv {
        self.send(records, KvOutcome::Ok(Some(base)))
    }

    fn info(&mut self, records: &[(&str, KvValue)]) -> &mut Kv {
        self.send(records, KvOutcome::Info("timed out".into()))
    }

    fn fail(&mut self, records: &[(&str, KvValue)]) -> &mut Kv {
        self.send(records, KvOutcome::Fail("error code 6".into()))
    }

    fn read(&mut self, records: &[(i64, &str, KvValue)], high_watermark: i64) -> Vec<String> {
        self.0.final_read = Some(KvFinalRead {
            records: records
                .iter()
                .map(|(o, k, v)| KvRead {
                    offset: *o,
                    key: k.to_string(),
                    value: *v,
                })
                .collect(),
            log_start_offset: 0,
            high_watermark,
        });
        check(&self.0)
            .iter()
            .map(|a| a.name().to_string())
            .collect()
    }
}

/// a=1@0 b=2@1 a=3@2 b=tombstone@3 c=4@4 a=5@5 (b deleted; a's latest is 5).
fn six_writes() -> Kv {
    let mut kv = Kv::new();
    kv.ok(0, &[("a", Value(1)), ("b", Value(2))])
        .ok(2, &[("a", Value(3))])
        .ok(3, &[("b", Tombstone)])
        .ok(4, &[("c", Value(4)), ("a", Value(5))]);
    kv
}

#[test]
fn an_uncompacted_log_is_valid() {
    let found = six_writes().read(
        &[
            (0, "a", Value(1)),
            (1, "b", Value(2)),
            (2, "a", Value(3)),
            (3, "b", Tombstone),
            (4, "c", Value(4)),
            (5, "a", Value(5)),
        ],
        6,
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_compacted_log_with_its_tombstone_kept_or_removed_is_valid() {
    let kept = six_writes().read(
        &[(3, "b", Tombstone), (4, "c", Value(4)), (5, "a", Value(5))],
        6,
    );
    assert!(kept.is_empty(), "{kept:?}");
    let removed = six_writes().read(&[(4, "c", Value(4)), (5, "a", Value(5))], 6);
    assert!(removed.is_empty(), "{removed:?}");
}

#[test]
fn an_indefinite_write_may_supersede_the_latest_acknowledged_one() {
    let mut kv = six_writes();
    kv.info(&[("a", Value(6))]).info(&[("c", Tombstone)]);
    let found = kv.read(&[(5, "a", Value(5)), (6, "a", Value(6))], 8);
    assert!(found.is_empty(), "{found:?}");
    let mut kv = six_writes();
    kv.info(&[("a", Value(6))]).info(&[("c", Tombstone)]);
    let found = kv.read(&[(6, "a", Value(6)), (7, "c", Tombstone)], 8);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn lost_latest_when_a_key_ends_with_an_older_value() {
    let found = six_writes().read(&[(2, "a", Value(3)), (4, "c", Value(4))], 6);
    assert_eq!(found, vec!["compaction-lost-latest"]);
}

#[test]
fn lost_latest_when_a_key_with_a_live_value_vanishes() {
    let found = six_writes().read(&[(5, "a", Value(5))], 6);
    assert_eq!(found, vec!["compaction-lost-latest"]);
}

#[test]
fn lost_latest_when_a_later_record_no_unacknowledged_write_could_be() {
    // c's latest acknowledged is 4@4; the read ends c with a tombstone nobody sent unacked.
    let mut kv = six_writes();
    kv.fail(&[("c", Tombstone)]);
    let found = kv.read(&[(5, "a", Value(5)), (6, "c", Tombstone)], 7);
    assert!(
        found.contains(&"compaction-lost-latest".to_string()),
        "{found:?}"
    );
}

#[test]
fn lost_latest_when_a_value_vanishes_though_only_a_failed_tombstone_could_delete_it() {
    let mut kv = six_writes();
    kv.fail(&[("c", Tombstone)]);
    let found = kv.read(&[(5, "a", Value(5))], 7);
    assert_eq!(found, vec!["compaction-lost-latest"]);
}

#[test]
fn resurrected_when_a_value_older_than_an_acknowledged_tombstone_survives_it() {
    // b's tombstone @3 was removed, but b=2 @1, which it deleted, is still there.
    let found = six_writes().read(
        &[(1, "b", Value(2)), (4, "c", Value(4)), (5, "a", Value(5))],
        6,
    );
    assert_eq!(found, vec!["compaction-resurrected"]);
}

#[test]
fn resurrected_even_when_the_latest_acknowledged_record_is_a_later_value() {
    // b: 2@1, tombstone@3, 7@6: the read ends b with 2@1 (older than the tombstone).
    let mut kv = six_writes();
    kv.ok(6, &[("b", Value(7))]);
    let found = kv.read(
        &[(1, "b", Value(2)), (4, "c", Value(4)), (5, "a", Value(5))],
        7,
    );
    assert_eq!(found, vec!["compaction-resurrected"]);
}

#[test]
fn invented_records_are_caught() {
    // A value nobody sent.
    let found = six_writes().read(
        &[(4, "c", Value(4)), (5, "a", Value(5)), (6, "a", Value(99))],
        7,
    );
    assert!(
        found.contains(&"compaction-invented".to_string()),
        "{found:?}"
    );
    // A value under another key.
    let found = six_writes().read(
        &[(4, "c", Value(4)), (5, "a", Value(5)), (6, "c", Value(1))],
        7,
    );
    assert!(
        found.contains(&"compaction-invented".to_string()),
        "{found:?}"
    );
    // A failed send's value.
    let mut kv = six_writes();
    kv.fail(&[("d", Value(8))]);
    let found = kv.read(
        &[(4, "c", Value(4)), (5, "a", Value(5)), (6, "d", Value(8))],
        7,
    );
    assert_eq!(found, vec!["compaction-invented"]);
    // A value away from its acknowledged offset.
    let found = six_writes().read(
        &[(4, "c", Value(4)), (5, "a", Value(5)), (7, "b", Value(2))],
        8,
    );
    assert!(
        found.contains(&"compaction-invented".to_string()),
        "{found:?}"
    );
    // A tombstone of a key nobody deleted.
    let found = six_writes().read(
        &[(4, "c", Value(4)), (5, "a", Value(5)), (6, "x", Tombstone)],
        7,
    );
    assert_eq!(found, vec!["compaction-invented"]);
}

#[test]
fn order_is_caught_when_offsets_repeat_or_go_back() {
    let found = six_writes().read(
        &[(4, "c", Value(4)), (4, "c", Value(4)), (5, "a", Value(5))],
        6,
    );
    assert_eq!(found, vec!["compaction-order"]);
    let found = six_writes().read(&[(5, "a", Value(5)), (4, "c", Value(4))], 6);
    assert_eq!(found, vec!["compaction-order"]);
}

#[test]
fn nothing_is_judged_without_a_final_read() {
    assert!(check(&six_writes().0).is_empty());
}

#[test]
fn anomalies_name_themselves_in_the_catalogue() {
    let a = CompactionAnomaly::Order {
        offset: 1,
        previous: 2,
    };
    assert!(COMPACTION_ANOMALIES.contains(&a.name()));
    assert_eq!(a.to_string(), "final read @1 after @2");
}
