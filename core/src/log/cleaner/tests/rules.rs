//! Each rule of the cleaner (module docs) on a real log: latest value per key, tombstones and
//! their horizon (KIP-534), compaction lags, the dirty ratio, the high watermark and the active
//! segment, keyless records, producers' last batches, verbatim copies, the offset map's
//! budget, and cleanings that retention or truncation overtake.

use std::collections::BTreeMap;

use super::super::checkpoint::read_cleaner_checkpoint;
use super::super::records::delete_horizon;
use super::*;
use crate::storage::MemStorage;

fn new_log(config: LogConfig) -> (MemStorage, PartitionLog) {
    let s = MemStorage::new();
    let log = open(Arc::new(s.clone()), config);
    (s, log)
}

/// Appends `rounds` updates of keys `k0..k{keys}` (value `v<round>`), 3 records per batch.
fn updates(log: &mut PartitionLog, keys: usize, rounds: usize, ts: i64) {
    for round in 0..rounds {
        let names: Vec<String> = (0..keys).map(|k| format!("k{k}")).collect();
        let value = format!("v{round}");
        for chunk in names.chunks(3) {
            let recs: Vec<Kv> = chunk
                .iter()
                .map(|k| (Some(k.as_str()), Some(value.as_str())))
                .collect();
            append(log, &recs, ts);
        }
    }
}

fn expect_table(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

#[test]
fn only_the_newest_record_of_each_key_survives() {
    let (s, mut log) = new_log(config());
    updates(&mut log, 6, 5, 100);
    log.roll().expect("roll");
    settle(&mut log);
    let before = log.size_bytes();
    let end = log.log_end_offset();
    let report = clean(&mut log, 200, end).expect("due");
    assert!(
        !report.abandoned && report.stats.records.superseded == 24,
        "{report:?}"
    );
    let recs = records(&log);
    assert_eq!(recs.len(), 6, "one record per key: {:?}", kvs(&recs));
    let want: Vec<(&str, Option<&str>)> = (0..6)
        .map(|k| (["k0", "k1", "k2", "k3", "k4", "k5"][k], Some("v4")))
        .collect();
    assert_eq!(table(&recs), expect_table(&want));
    assert!(
        log.size_bytes() < before / 3,
        "{} -> {}",
        before,
        log.size_bytes()
    );
    assert_eq!(log.log_end_offset(), end, "offsets never change");
    assert_eq!(log.log_start_offset(), Offset(0));
    assert_eq!(read_cleaner_checkpoint(&s, &dir()), Some(end));
    assert_increasing(&log);
    // Nothing dirty is left: no cleaning is due.
    assert!(
        log.begin_clean(300, end, BIG_BUDGET)
            .expect("begin")
            .is_none()
    );
    assert!(
        s.paths()
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".cleaned"))
    );
    assert!(
        s.paths()
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".swap"))
    );
}

#[test]
fn a_tombstone_is_kept_until_its_horizon_then_dropped() {
    let (_s, mut log) = new_log(config());
    append(
        &mut log,
        &[(Some("a"), Some("1")), (Some("b"), Some("1"))],
        100,
    );
    append(&mut log, &[(Some("a"), None)], 100);
    log.roll().expect("roll");
    settle(&mut log);
    clean_all(&mut log, 5_000).expect("due");
    assert_eq!(
        kvs(&records(&log)),
        vec![
            (Some("b".into()), Some("1".into())),
            (Some("a".into()), None)
        ]
    );
    let (_, h) = batches(&log)
        .into_iter()
        .find(|(_, h)| h.base_offset == Offset(2))
        .expect("tombstone batch");
    assert_eq!(delete_horizon(&h), Some(6_000), "now + delete.retention.ms");
    // Something new to clean before the horizon: the tombstone stays.
    append(&mut log, &[(Some("c"), Some("1"))], 100);
    log.roll().expect("roll");
    settle(&mut log);
    clean_all(&mut log, 5_999).expect("due");
    assert_eq!(
        table(&records(&log)).get("a"),
        Some(&None),
        "kept until the horizon"
    );
    append(&mut log, &[(Some("d"), Some("1"))], 100);
    log.roll().expect("roll");
    settle(&mut log);
    let report = clean_all(&mut log, 6_000).expect("due");
    assert_eq!(report.stats.records.expired_tombstones, 1);
    assert_eq!(
        table(&records(&log)),
        expect_table(&[("b", Some("1")), ("c", Some("1")), ("d", Some("1"))])
    );
    assert_increasing(&log);
}

#[test]
fn nothing_at_or_above_the_high_watermark_or_in_the_active_segment_changes() {
    let (_s, mut log) = new_log(config());
    updates(&mut log, 3, 40, 100);
    settle(&mut log);
    assert!(log.segment_count() >= 4, "{}", log.segment_count());
    let bases: Vec<Offset> = log.segments.keys().copied().collect();
    let hw = Offset(bases[2].0 + 1);
    let above = |log: &PartitionLog| -> Vec<Vec<u8>> {
        batches(log)
            .into_iter()
            .filter(|(_, h)| h.last_offset() >= bases[2])
            .map(|(r, _)| r)
            .collect()
    };
    let kept = above(&log);
    let report = clean(&mut log, 200, hw).expect("due");
    assert_eq!(
        report.segments_cleaned, 2,
        "only the segments wholly below the high watermark"
    );
    assert_eq!(above(&log), kept);
    assert_eq!(report.dirty_range, (Offset(0), bases[2]));
    // The high watermark at the log end still leaves the active segment alone.
    let active: Vec<u8> = batches(&log)
        .into_iter()
        .filter(|(_, h)| h.base_offset >= *bases.last().expect("active"))
        .flat_map(|(r, _)| r)
        .collect();
    clean_all(&mut log, 200).expect("due");
    let after: Vec<u8> = batches(&log)
        .into_iter()
        .filter(|(_, h)| h.base_offset >= *bases.last().expect("active"))
        .flat_map(|(r, _)| r)
        .collect();
    assert_eq!(after, active);
    assert_increasing(&log);
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let cfg = LogConfig {
        min_compaction_lag_ms: 1_000,
        ..config()
    };
    let (_s, mut log) = new_log(cfg);
    updates(&mut log, 3, 4, 100);
    log.roll().expect("roll");
    let old_end = log.log_end_offset();
    updates(&mut log, 3, 4, 900);
    log.roll().expect("roll");
    settle(&mut log);
    let end = log.log_end_offset();
    // At 1_099 nothing is 1 s old; at 1_100 the first half is; at 1_900 everything is.
    assert!(clean(&mut log, 1_099, end).is_none());
    let report = clean(&mut log, 1_100, end).expect("due");
    assert_eq!(report.dirty_range.1, old_end);
    assert!(records(&log).iter().filter(|r| r.offset >= old_end).count() == 12);
    let report = clean(&mut log, 1_900, end).expect("due");
    assert_eq!(report.dirty_range, (old_end, end));
    assert_eq!(records(&log).len(), 3);
}

#[test]
fn the_dirty_ratio_and_max_compaction_lag_decide_when_to_clean() {
    let cfg = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        max_compaction_lag_ms: 10_000,
        ..config()
    };
    let (_s, mut log) = new_log(cfg);
    let keys: Vec<String> = (0..30).map(|k| format!("key-{k}")).collect();
    for k in &keys {
        append(&mut log, &[(Some(k.as_str()), Some("v"))], 100);
    }
    log.roll().expect("roll");
    settle(&mut log);
    clean_all(&mut log, 200).expect("all dirty: ratio 1");
    // A little new data: the ratio is far below one half.
    append(&mut log, &[(Some("key-0"), Some("w"))], 100);
    log.roll().expect("roll");
    settle(&mut log);
    let end = log.log_end_offset();
    let range = log.cleanable_range(200, end).expect("range");
    assert!(range.dirty_ratio() < 0.5, "{range:?}");
    assert!(clean(&mut log, 200, end).is_none(), "not dirty enough");
    // ... until the dirty batch is older than max.compaction.lag.ms.
    assert!(
        clean(&mut log, 10_100, end).is_none(),
        "exactly the lag is not older"
    );
    clean(&mut log, 10_101, end).expect("max.compaction.lag.ms forces it");
    assert_eq!(
        table(&records(&log)).get("key-0"),
        Some(&Some("w".to_string()))
    );
    // Enough new data brings the ratio over one half.
    for k in &keys {
        append(&mut log, &[(Some(k.as_str()), Some("x"))], 100);
    }
    log.roll().expect("roll");
    settle(&mut log);
    assert!(clean_all(&mut log, 200).is_some());
}

#[test]
fn a_delete_only_log_is_never_cleaned() {
    let (_s, mut log) = new_log(LogConfig {
        cleanup_policy: CleanupPolicy::DELETE,
        ..config()
    });
    updates(&mut log, 3, 10, 100);
    log.roll().expect("roll");
    settle(&mut log);
    assert!(clean_all(&mut log, 200).is_none());
}

#[test]
fn keyless_records_are_dropped() {
    let (_s, mut log) = new_log(config());
    append(
        &mut log,
        &[(None, Some("x")), (Some("a"), Some("1")), (None, Some("y"))],
        100,
    );
    append(&mut log, &[(None, Some("z"))], 100);
    log.roll().expect("roll");
    settle(&mut log);
    let report = clean_all(&mut log, 200).expect("due");
    assert_eq!(report.stats.records.keyless, 3);
    assert_eq!(report.stats.batches_dropped, 1);
    let recs = records(&log);
    assert_eq!(kvs(&recs), vec![(Some("a".into()), Some("1".into()))]);
    assert_eq!(recs[0].offset, Offset(1), "offsets kept");
}

#[test]
fn unchanged_batches_are_copied_byte_for_byte_and_indexed_as_the_log_indexes() {
    let (_s, mut log) = new_log(config());
    for i in 0..40 {
        let k = format!("unique-{i}");
        append(&mut log, &[(Some(k.as_str()), Some("value"))], 100 + i);
    }
    log.roll().expect("roll");
    settle(&mut log);
    let before: Vec<Vec<u8>> = batches(&log).into_iter().map(|(r, _)| r).collect();
    // Larger segments from now on: the small sealed ones merge.
    log.set_config(LogConfig {
        segment_bytes: 2_000,
        ..config()
    });
    let report = clean_all(&mut log, 1_000).expect("due");
    assert_eq!(report.stats.batches_copied, 40);
    assert_eq!(
        (report.stats.batches_rewritten, report.stats.batches_dropped),
        (0, 0)
    );
    let after: Vec<Vec<u8>> = batches(&log).into_iter().map(|(r, _)| r).collect();
    assert_eq!(after, before);
    assert!(
        report.segments_written < report.segments_cleaned,
        "small segments merge: {report:?}"
    );
    for seg in log.segments.values() {
        let sealed = seg.base_offset != log.active().base_offset;
        let walk = seg.walk_tail(sealed).expect("walk");
        assert!(
            walk.is_some(),
            "segment {}: .timeindex as the log writes it",
            seg.base_offset
        );
        let extent = crate::log::index::SegmentExtent {
            base: seg.base_offset,
            offsets: seg.next_offset.0 - seg.base_offset.0,
            size: seg.size,
        };
        assert_eq!(seg.offset_index.find_violation(extent).expect("read"), None);
        assert_eq!(seg.time_index.find_violation(extent).expect("read"), None);
        if sealed && seg.size > 400 {
            assert!(
                seg.offset_index.len() > 0,
                "entries every index.interval.bytes"
            );
        }
    }
    // Lookups through the new indexes.
    for (raw, h) in batches(&log) {
        let r = log
            .read(h.base_offset, 1, log.log_end_offset())
            .expect("read");
        assert_eq!(&r.records[..raw.len()], &raw[..]);
    }
    let found = log
        .offset_for_timestamp(120)
        .expect("lookup")
        .expect("found");
    assert_eq!(found.offset, Offset(20));
}

#[test]
fn a_small_offset_map_cleans_in_several_rounds() {
    let (s, mut log) = new_log(config());
    updates(&mut log, 9, 6, 100);
    log.roll().expect("roll");
    settle(&mut log);
    let end = log.log_end_offset();
    let budget = 4 * (2 + super::super::offset_map::ENTRY_OVERHEAD);
    let mut rounds = 0;
    while let Some(report) = clean_with(&mut log, 200, end, budget) {
        rounds += 1;
        assert!(
            report.map_bytes <= budget || report.map_keys <= 3,
            "{report:?}"
        );
        assert_eq!(
            read_cleaner_checkpoint(&s, &dir()),
            Some(report.dirty_range.1)
        );
        assert_increasing(&log);
        assert!(rounds < 100);
    }
    assert!(rounds > 3, "{rounds} rounds");
    let want: Vec<(String, Option<String>)> = (0..9)
        .map(|k| (format!("k{k}"), Some("v5".to_string())))
        .collect();
    assert_eq!(table(&records(&log)), want.into_iter().collect());
}

#[test]
fn a_cleaning_overtaken_by_retention_or_truncation_is_abandoned() {
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy {
            compact: true,
            delete: true,
        },
        retention_ms: 1_000,
        ..config()
    };
    let (s, mut log) = new_log(cfg);
    updates(&mut log, 3, 20, 100);
    log.roll().expect("roll");
    updates(&mut log, 3, 20, 5_000);
    log.roll().expect("roll");
    settle(&mut log);
    let before = batches(&log);
    let mut task = log
        .begin_clean(5_000, log.log_end_offset(), BIG_BUDGET)
        .expect("begin")
        .expect("due");
    run(&mut task);
    assert!(
        s.paths()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".cleaned"))
    );
    let deleted = log.enforce_retention(5_000).expect("retention");
    assert!(deleted.deleted_segments > 0);
    let after_retention = batches(&log);
    let report = log.finish_clean(task).expect("finish");
    assert!(report.abandoned);
    assert_eq!(batches(&log), after_retention);
    assert!(before.len() > after_retention.len());
    assert!(
        s.paths()
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".cleaned"))
    );
    // A truncation (even above the sources) abandons it too.
    let mut task = log
        .begin_clean(5_000, log.log_end_offset(), BIG_BUDGET)
        .expect("begin")
        .expect("due");
    run(&mut task);
    log.truncate_to(Offset(log.log_end_offset().0 - 1))
        .expect("truncate");
    assert!(log.finish_clean(task).expect("finish").abandoned);
    // A failed step: aborted, nothing left behind.
    let mut task = log
        .begin_clean(5_000, log.log_end_offset(), BIG_BUDGET)
        .expect("begin")
        .expect("due");
    task.step().expect("step");
    log.abort_clean(task).expect("abort");
    assert!(
        s.paths()
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".cleaned"))
    );
}

/// Module docs, "Why a horizon is set only under the map": with an offset map too small to
/// reach a tombstone, the tombstone must not get a horizon, or a later cleaning whose map again
/// stops short of it drops it while the older value — in the clean section, outside that map —
/// survives.
#[test]
fn a_tombstone_beyond_a_full_offset_map_waits_for_its_horizon() {
    let (_s, mut log) = new_log(config());
    append(&mut log, &[(Some("K"), Some("old"))], 100);
    append(&mut log, &[(Some("A"), Some("1"))], 100);
    append(&mut log, &[(Some("K"), None)], 100);
    log.roll().expect("roll");
    settle(&mut log);
    let end = log.log_end_offset();
    let one_key = 1 + super::super::offset_map::ENTRY_OVERHEAD;
    let r1 = clean_with(&mut log, 1_000, end, one_key).expect("due");
    assert_eq!(
        r1.dirty_range,
        (Offset(0), Offset(1)),
        "the map holds only the first batch"
    );
    let tombstone = |log: &PartitionLog| {
        let (_, h) = batches(log)
            .into_iter()
            .find(|(_, h)| h.base_offset == Offset(2))
            .expect("tombstone");
        delete_horizon(&h)
    };
    assert_eq!(tombstone(&log), None, "beyond the map: no horizon yet");
    let r2 = clean_with(&mut log, 100_000, end, one_key).expect("due");
    assert_eq!(r2.dirty_range, (Offset(1), Offset(2)));
    assert_eq!(
        table(&records(&log)).get("K"),
        Some(&None),
        "the tombstone still hides the old value"
    );
    let r3 = clean_with(&mut log, 100_000, end, one_key).expect("due");
    assert_eq!(r3.dirty_range.0, Offset(2));
    assert_eq!(
        tombstone(&log),
        Some(101_000),
        "under the map: horizon set, the old value gone"
    );
    assert_eq!(
        kvs(&records(&log)),
        vec![
            (Some("A".into()), Some("1".into())),
            (Some("K".into()), None)
        ]
    );
}

#[test]
fn compressed_batches_of_all_four_codecs_are_cleaned_and_keep_their_codec() {
    for codec in 1..=4i16 {
        let (_s, mut log) = new_log(config());
        for round in 0..4 {
            let v = format!("value-{round}-{}", "z".repeat(30));
            let recs: Vec<Kv> = vec![
                (Some("a"), Some(&v)),
                (Some("b"), Some(&v)),
                (Some("c"), None),
            ];
            let recs: Vec<Kv> = if round == 3 { recs[..1].to_vec() } else { recs };
            let b = kbatch_with(&recs, 100, -1, -1, codec);
            log.append(&b, EPOCH, 100).expect("append");
        }
        log.roll().expect("roll");
        settle(&mut log);
        let report = clean_all(&mut log, 1_000).expect("due");
        assert!(
            report.stats.batches_rewritten > 0,
            "codec {codec}: {report:?}"
        );
        let v3 = format!("value-3-{}", "z".repeat(30));
        let v2 = format!("value-2-{}", "z".repeat(30));
        let want = expect_table(&[("a", Some(&v3)), ("b", Some(&v2)), ("c", None)]);
        assert_eq!(table(&records(&log)), want, "codec {codec}");
        assert_eq!(records(&log).len(), 3, "codec {codec}");
        for (_, h) in batches(&log) {
            assert_eq!(
                h.compression_codec(),
                codec,
                "batch {} keeps its codec",
                h.base_offset
            );
        }
    }
}

/// Kafka keeps the last batch of an idempotent producer, emptied, so that its sequence state
/// survives cleaning: rebuilt from the log alone, the state still knows the batch, and a retry
/// of it is answered as a duplicate (KIP-98).
#[test]
fn a_producers_last_batch_is_kept_empty_and_its_retry_is_still_a_duplicate() {
    let (s, mut log) = new_log(config());
    let p7 = |seq: i32, v: &str| kbatch_with(&[(Some("a"), Some(v))], 100, 7, seq, 0);
    log.append(&p7(0, "1"), EPOCH, 100).expect("append");
    let last = log.append(&p7(1, "2"), EPOCH, 100).expect("append");
    let p8 = kbatch_with(&[(Some("a"), Some("3"))], 100, 8, 0, 0);
    log.append(&p8, EPOCH, 100).expect("append");
    log.roll().expect("roll");
    settle(&mut log);
    let report = clean_all(&mut log, 1_000).expect("due");
    assert_eq!(
        (report.stats.batches_dropped, report.stats.batches_rewritten),
        (1, 1)
    );
    let kept: Vec<(i64, i32, i32)> = batches(&log)
        .iter()
        .map(|(_, h)| (h.producer_id, h.base_sequence, h.record_count))
        .collect();
    assert_eq!(
        kept,
        vec![(7, 1, 0), (8, 0, 1)],
        "producer 7's last batch, emptied"
    );
    assert_eq!(table(&records(&log)), expect_table(&[("a", Some("3"))]));
    // Forget every snapshot: the state comes from the log alone.
    for p in s
        .paths()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".snapshot"))
    {
        s.remove_file(&p).expect("remove snapshot");
    }
    log.rebuild_producer_state(i64::MIN).expect("rebuild");
    let retry = log.append(&p7(1, "2"), EPOCH, 2_000).expect("retry");
    assert!(retry.duplicate, "{retry:?}");
    assert_eq!(retry.first_offset, last.first_offset);
    let next = log
        .append(&p7(2, "4"), EPOCH, 2_000)
        .expect("the next sequence follows");
    assert!(!next.duplicate);
}
