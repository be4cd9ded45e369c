//! A trusted sealed segment's `.timeindex` (below the recovery point, indexes durable) after disk
//! damage: the segment's newest timestamp and every entry a timestamp lookup relies on must come
//! from the batch headers, not from the file. CreateTime timestamps need not increase, so the last
//! batch says nothing about the segment's newest timestamp.

use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::build_batch;
use crate::log::*;
use crate::storage::MemStorage;
use crate::types::LeaderEpoch;

const EPOCH: LeaderEpoch = LeaderEpoch(1);

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

fn time_index(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.timeindex"))
}

fn open(storage: &MemStorage, config: LogConfig) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(Arc::new(storage.clone()), dir(), config, 0).expect("open")
}

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        retention_ms: 10_000,
        ..LogConfig::default()
    }
}

fn entry(timestamp: i64, relative_offset: u32) -> Vec<u8> {
    let mut e = timestamp.to_be_bytes().to_vec();
    e.extend_from_slice(&relative_offset.to_be_bytes());
    e
}

/// A log whose first segment holds one single-record batch per timestamp of `stamps` (offset =
/// position in `stamps`), sealed, flushed and checkpointed, then a second segment with one batch
/// at timestamp 0. Returns every lookup answer of the intact log.
fn sealed_log(s: &MemStorage, stamps: &[i64]) -> Vec<Option<TimestampOffset>> {
    let (mut log, _) = open(s, config());
    for &ts in stamps {
        log.append(&build_batch(&[(b"v", None)], ts), EPOCH, 0)
            .expect("append");
    }
    log.roll().expect("roll");
    log.append(&build_batch(&[(b"w", None)], 0), EPOCH, 0)
        .expect("append");
    let plan = log.begin_flush().expect("unflushed batches");
    plan.execute().expect("flush");
    log.complete_flush(&plan);
    log.checkpoint_recovery_point().expect("checkpoint");
    lookups(&log, stamps)
}

fn lookups(log: &PartitionLog, stamps: &[i64]) -> Vec<Option<TimestampOffset>> {
    let mut targets = vec![i64::MIN, -1, 0, 1];
    for ts in stamps {
        targets.extend([ts - 1, *ts, ts + 1]);
    }
    let mut out: Vec<_> = targets
        .into_iter()
        .map(|t| log.offset_for_timestamp(t).expect("lookup"))
        .collect();
    out.push(log.max_timestamp().expect("max timestamp lookup"));
    out
}

/// Fuzz finding `index_files/regression-timestamp-lookup-misses-a-segment`: the segment's last
/// batch has no timestamp, so an empty `.timeindex` passed the tail check and recovery took -1 for
/// the segment's newest timestamp: `offset_for_timestamp(0)` skipped it, `max_timestamp` did not
/// see it, and time retention would never delete it.
#[test]
fn empty_timeindex_behind_an_untimed_last_batch_is_not_believed() {
    let s = MemStorage::new();
    let stamps = [-1, 1130, 3160, 1000, -1];
    let before = sealed_log(&s, &stamps);
    assert_eq!(
        before[2],
        Some(TimestampOffset {
            offset: Offset(1),
            timestamp: 1130
        })
    );
    s.file(&time_index(0))
        .expect("timeindex")
        .replace(Vec::new());
    let (mut log, report) = open(&s, config());
    assert_eq!(lookups(&log, &stamps), before);
    assert_eq!(report.rebuilt_indexes, 1, "{report:?}");
    // Not yet expired: its newest record (3160) is younger than retention.ms at 13_000.
    let retained = log.enforce_retention(13_000).expect("retention");
    assert_eq!(retained.deleted_segments, 0);
    assert_eq!(
        log.enforce_retention(13_161)
            .expect("retention")
            .deleted_segments,
        1
    );
}

/// An entry `(T, o)` promises that no batch up to `o` is newer than `T`; checking only the batch
/// at `o` misses a newer one before it, and the lookup starts past it.
#[test]
fn timeindex_entry_below_an_earlier_batch_is_not_believed() {
    let s = MemStorage::new();
    let stamps = [100, 5000, 200, 300, 400];
    let before = sealed_log(&s, &stamps);
    // Written: (5000, 1). Damaged: (100, 0), (300, 3), (5000, 4): sorted, the batch at 3 is not
    // newer than 300, and the last entry covers the last batch.
    let lying = [entry(100, 0), entry(300, 3), entry(5000, 4)].concat();
    s.file(&time_index(0)).expect("timeindex").replace(lying);
    let (log, report) = open(&s, config());
    assert_eq!(lookups(&log, &stamps), before);
    assert_eq!(report.rebuilt_indexes, 1, "{report:?}");
}

/// A last entry above every batch: `max_timestamp` would look for a record that is not there.
#[test]
fn timeindex_newer_than_every_batch_is_not_believed() {
    let s = MemStorage::new();
    let stamps = [100, 5000, 200];
    let before = sealed_log(&s, &stamps);
    let lying = [entry(100, 0), entry(9000, 2)].concat();
    s.file(&time_index(0)).expect("timeindex").replace(lying);
    let (log, report) = open(&s, config());
    assert_eq!(lookups(&log, &stamps), before);
    assert_eq!(report.rebuilt_indexes, 1, "{report:?}");
}

/// What the log writes is what the check accepts: an intact sealed segment stays trusted.
#[test]
fn intact_timeindex_is_trusted() {
    let s = MemStorage::new();
    let stamps = [-1, 1130, 3160, 1000, -1, 5000, 4000];
    let before = sealed_log(&s, &stamps);
    let (log, report) = open(&s, config());
    assert_eq!(
        report,
        RecoveryReport {
            segments: 2,
            ..RecoveryReport::default()
        }
    );
    assert_eq!(lookups(&log, &stamps), before);
}
