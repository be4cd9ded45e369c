//! Tests of the partition log: round trips, index lookups, recovery from every truncation point,
//! corruption, retention boundaries, timestamp lookups. The shared fixtures (`dir`, `small_config`,
//! `read_all`) live here; one file per topic beside this one.

mod clean_shutdown;
mod epochs;
mod gaps;
mod invariants;
mod log_start;
mod producers;
mod sealed_index;

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;

use super::partition_log::SCRATCH_KEPT;
use super::*;
use crate::batch::{BatchIter, build_batch};
use crate::storage::{MemStorage, Storage};
use crate::types::LeaderEpoch;

const EPOCH: LeaderEpoch = LeaderEpoch(3);

pub(super) fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

fn open(storage: &MemStorage, config: LogConfig) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(Arc::new(storage.clone()), dir(), config, 0).expect("open")
}

/// The message `f` panics with (it must panic), for tables of broken states that each check
/// must catch with its own message.
pub(super) fn panic_message(f: impl FnOnce()) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .expect_err("the broken state must be caught");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|m| m.to_string()))
        .unwrap_or_default()
}

/// A batch of `n` records whose values name their batch and position; timestamps `ts`.
fn batch(tag: usize, n: usize, ts: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("b{tag}-r{i}-{}", "x".repeat(tag % 40)).into_bytes())
        .collect();
    let recs: Vec<(&[u8], Option<&[u8]>)> = values.iter().map(|v| (v.as_slice(), None)).collect();
    build_batch(&recs, ts)
}

fn flush(log: &mut PartitionLog) {
    if let Some(plan) = log.begin_flush() {
        plan.execute().expect("flush");
        log.complete_flush(&plan);
    }
}

/// Reads everything from `from` to the log end, following read results across segments.
pub(super) fn read_all(log: &PartitionLog, from: Offset) -> Vec<(Offset, Offset)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.log_end_offset() {
        let r = log.read(at, 700, log.log_end_offset()).expect("read");
        assert!(
            !r.records.is_empty(),
            "read at {at} returned nothing before the log end"
        );
        for item in BatchIter::new(&r.records) {
            let (_, h) = item.expect("whole batches");
            out.push((h.base_offset, h.last_offset()));
            at = h.next_offset();
        }
    }
    out
}

#[test]
fn append_assigns_dense_offsets_and_reads_back() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    let mut expect = Vec::new();
    for i in 0..40 {
        let info = log
            .append(&batch(i, 1 + i % 4, 1000 + i as i64), EPOCH, 5)
            .expect("append");
        assert_eq!(
            info.first_offset,
            expect
                .last()
                .map_or(Offset(0), |(_, l): &(Offset, Offset)| l.next())
        );
        expect.push((info.first_offset, info.last_offset));
    }
    assert!(log.segment_count() > 1, "2 kB segments must have rolled");
    assert_eq!(read_all(&log, Offset(0)), expect);
    // Reading from the middle of a batch starts with that batch.
    let (b, l) = expect[10];
    if l > b {
        let r = log.read(l, 1, log.log_end_offset()).expect("read");
        let (_, h) = BatchIter::new(&r.records)
            .next()
            .expect("one")
            .expect("whole");
        assert_eq!(h.base_offset, b);
        assert_eq!(h.partition_leader_epoch, EPOCH);
    }
}

/// Issue 14: a partition does not keep its largest batch's copy after the append.
#[test]
fn a_large_append_leaves_no_large_buffer_behind() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    log.append(&batch(1, 3, 1000), EPOCH, 5).expect("small");
    let small = log.scratch.capacity();
    assert!(small > 0 && small <= SCRATCH_KEPT, "a small buffer is kept");
    let value = vec![b'v'; 4 * SCRATCH_KEPT];
    log.append(&build_batch(&[(&value[..], None)], 1000), EPOCH, 5)
        .expect("large");
    assert!(log.scratch.capacity() <= SCRATCH_KEPT);
    assert_eq!(read_all(&log, Offset(0)).len(), 2, "both written");
}

#[test]
fn reads_respect_upper_bound_and_range() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    log.append(&batch(0, 3, 1), EPOCH, 0).expect("append");
    log.append(&batch(1, 3, 1), EPOCH, 0).expect("append");
    assert!(
        log.read(Offset(0), 1 << 20, Offset(0))
            .expect("read")
            .records
            .is_empty()
    );
    let r = log.read(Offset(0), 1 << 20, Offset(4)).expect("read");
    assert_eq!(
        BatchIter::new(&r.records).count(),
        1,
        "the second batch ends beyond the bound"
    );
    assert!(matches!(
        log.read(Offset(7), 100, Offset(6)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(
        log.read(Offset(6), 100, Offset(6))
            .expect("read at the end")
            .records
            .is_empty()
    );
}

#[test]
fn flush_covers_everything_appended() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    assert_eq!(log.flushed_offset(), Offset(0));
    for i in 0..30 {
        log.append(&batch(i, 2, 0), EPOCH, 0).expect("append");
    }
    let plan = log.begin_flush().expect("something to flush");
    assert_eq!(plan.up_to, Offset(60));
    log.append(&batch(99, 2, 0), EPOCH, 0)
        .expect("append during flush");
    plan.execute().expect("sync");
    log.complete_flush(&plan);
    assert_eq!(log.flushed_offset(), Offset(60));
    flush(&mut log);
    assert_eq!(log.flushed_offset(), Offset(62));
    assert!(log.begin_flush().is_none());
}

#[test]
fn failed_log_refuses_everything() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    log.append(&batch(0, 1, 0), EPOCH, 0).expect("append");
    log.fail();
    assert_eq!(
        log.append(&batch(1, 1, 0), EPOCH, 0)
            .unwrap_err()
            .error_code(),
        crate::ErrorCode::KAFKA_STORAGE_ERROR
    );
    assert!(log.read(Offset(0), 100, Offset(1)).is_err());
    assert!(log.begin_flush().is_none());
}

#[test]
fn invalid_batches_are_refused_with_kafka_codes() {
    let s = MemStorage::new();
    let (mut log, _) = open(
        &s,
        LogConfig {
            max_message_bytes: 100,
            ..LogConfig::default()
        },
    );
    let big = batch(1, 20, 0);
    assert_eq!(
        log.append(&big, EPOCH, 0).unwrap_err().error_code(),
        crate::ErrorCode::MESSAGE_TOO_LARGE
    );
    let mut bad = batch(1, 1, 0);
    let n = bad.len();
    bad[n - 2] ^= 0xff;
    assert_eq!(
        log.append(&bad, EPOCH, 0).unwrap_err().error_code(),
        crate::ErrorCode::CORRUPT_MESSAGE
    );
    assert_eq!(log.log_end_offset(), Offset(0), "nothing was written");
}

#[test]
fn log_append_time_is_stamped() {
    let s = MemStorage::new();
    let cfg = LogConfig {
        message_timestamp_type: crate::batch::TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let (mut log, _) = open(&s, cfg);
    let info = log.append(&batch(0, 2, 5), EPOCH, 777).expect("append");
    assert_eq!(info.log_append_time_ms, 777);
    let r = log.read(Offset(0), 1000, Offset(2)).expect("read");
    let h = crate::batch::validate_batch(&r.records).expect("valid after stamping");
    assert_eq!(h.max_timestamp, 777);
}

#[test]
fn reopen_after_clean_close_keeps_everything() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    for i in 0..50 {
        log.append(&batch(i, 2, i as i64), EPOCH, 0)
            .expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    let before = read_all(&log, Offset(0));
    drop(log);
    let (log, report) = open(&s, small_config());
    assert_eq!(report.truncated_bytes, 0);
    assert!(report.corrupt_batches.is_empty());
    assert_eq!(read_all(&log, Offset(0)), before);
    assert_eq!(log.flushed_offset(), Offset(100));
}

/// Recovery of every possible truncation point of the active segment: the log comes back with
/// exactly the whole batches before the cut, and accepts appends again.
#[test]
fn recovery_from_every_truncation_point() {
    let s = MemStorage::new();
    let (mut log, _) = open(
        &s,
        LogConfig {
            index_interval_bytes: 100,
            ..LogConfig::default()
        },
    );
    let mut ends = vec![(0u64, Offset(0))];
    for i in 0..6 {
        log.append(&batch(i, 1 + i % 3, 10), EPOCH, 0)
            .expect("append");
        ends.push((log.size_bytes(), log.log_end_offset()));
    }
    flush(&mut log);
    drop(log);
    let seg = dir().join(format!("{:020}.log", 0));
    let full = s.file(&seg).expect("segment").contents();
    for cut in 0..=full.len() {
        let copy = s.deep_clone();
        copy.file(&seg)
            .expect("segment")
            .replace(full[..cut].to_vec());
        let (mut log, report) = open(&copy, LogConfig::default());
        let (size, leo) = *ends
            .iter()
            .rev()
            .find(|(size, _)| *size <= cut as u64)
            .expect("0 is always there");
        assert_eq!(log.log_end_offset(), leo, "cut at {cut}");
        assert_eq!(log.size_bytes(), size, "cut at {cut}");
        assert_eq!(report.truncated_bytes, cut as u64 - size, "cut at {cut}");
        assert_eq!(
            read_all(&log, Offset(0)).len(),
            ends.iter().filter(|(s, _)| *s > 0 && *s <= size).count()
        );
        let info = log
            .append(&batch(9, 1, 0), EPOCH, 0)
            .expect("append after recovery");
        assert_eq!(info.first_offset, leo);
    }
}

/// A byte flipped in fsynced data is reported at recovery and never served; the data after it
/// stays readable. A torn tail after it is still cut.
#[test]
fn corrupt_batch_below_recovery_point_is_kept_and_refused() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    for i in 0..5 {
        log.append(&batch(i, 2, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    drop(log);
    let seg = dir().join(format!("{:020}.log", 0));
    let mut bytes = s.file(&seg).expect("segment").contents();
    let h0 = crate::batch::BatchHeader::parse(&bytes).expect("header");
    let second = h0.total_size();
    bytes[second + 70] ^= 0x10; // a payload byte of the batch at offsets 2..=3
    let len = bytes.len();
    bytes.truncate(len - 5); // and tear the last batch
    s.file(&seg).expect("segment").replace(bytes);

    let (log, report) = open(&s, LogConfig::default());
    assert_eq!(
        report
            .corrupt_batches
            .iter()
            .filter(|c| c.offset == Offset(2))
            .count(),
        1,
        "{report:?}"
    );
    assert!(report.truncated_bytes > 0);
    assert_eq!(log.log_end_offset(), Offset(8));
    // Offsets 0..2 readable, the corrupt batch refused, 4.. readable again.
    let r = log.read(Offset(0), 1 << 20, Offset(8)).expect("read");
    assert_eq!(r.corrupt_at, Some(Offset(2)));
    assert_eq!(BatchIter::new(&r.records).count(), 1);
    assert!(matches!(
        log.read(Offset(2), 1 << 20, Offset(8)),
        Err(LogError::Corrupt { .. })
    ));
    assert!(matches!(
        log.read(Offset(3), 1 << 20, Offset(8)),
        Err(LogError::Corrupt { .. })
    ));
    let r = log
        .read(Offset(4), 1 << 20, Offset(8))
        .expect("read after the corrupt batch");
    assert_eq!(BatchIter::new(&r.records).count(), 2);
}

/// Without a recovery point (crash before any checkpoint), a bad batch followed by garbage is a
/// torn tail and is cut.
#[test]
fn bad_batch_above_recovery_point_is_a_torn_tail() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    for i in 0..4 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append");
    }
    drop(log);
    let seg = dir().join(format!("{:020}.log", 0));
    let mut bytes = s.file(&seg).expect("segment").contents();
    let h0 = crate::batch::BatchHeader::parse(&bytes).expect("header");
    bytes[h0.total_size() + 65] ^= 1;
    s.file(&seg).expect("segment").replace(bytes);
    let (log, report) = open(&s, LogConfig::default());
    assert_eq!(log.log_end_offset(), Offset(1));
    assert!(report.corrupt_batches.is_empty());
    assert!(report.truncated_bytes > 0);
}

#[test]
fn garbage_index_is_rebuilt() {
    let s = MemStorage::new();
    let cfg = LogConfig {
        index_interval_bytes: 50,
        segment_bytes: 1500,
        ..LogConfig::default()
    };
    let (mut log, _) = open(&s, cfg.clone());
    for i in 0..30 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    let before = read_all(&log, Offset(0));
    drop(log);
    let idx = dir().join(format!("{:020}.index", 0));
    s.file(&idx).expect("index").replace(vec![0xff; 24]);
    let (log, report) = open(&s, cfg);
    assert_eq!(report.rebuilt_indexes, 1);
    assert_eq!(read_all(&log, Offset(0)), before);
}

#[test]
fn retention_applies_only_with_the_delete_policy() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    for i in 0..100 {
        log.append(&batch(i, 2, 1_000 + i as i64), EPOCH, 0)
            .expect("append");
    }
    let segments = log.segment_count();
    assert!(segments >= 4);
    let mut cfg = small_config();
    cfg.retention_ms = 10;
    cfg.retention_bytes = 1;
    cfg.cleanup_policy = super::CleanupPolicy::COMPACT;
    log.set_config(cfg.clone());
    let report = log.enforce_retention(1_000_000).expect("retention");
    assert_eq!(report.deleted_segments, 0, "compact alone never deletes");
    assert_eq!(log.segment_count(), segments);
    cfg.cleanup_policy = super::CleanupPolicy::parse("compact, delete").expect("valid");
    log.set_config(cfg);
    let report = log.enforce_retention(1_000_000).expect("retention");
    assert_eq!(
        report.deleted_segments,
        segments - 1,
        "compact,delete deletes too"
    );
}

#[test]
fn cleanup_policy_parses_kafka_lists() {
    use super::CleanupPolicy;
    for (text, delete, compact, shown) in [
        ("delete", true, false, "delete"),
        ("compact", false, true, "compact"),
        ("compact,delete", true, true, "compact,delete"),
        ("delete, compact", true, true, "compact,delete"),
    ] {
        let p = CleanupPolicy::parse(text).expect(text);
        assert_eq!((p.delete, p.compact), (delete, compact), "{text}");
        assert_eq!(p.to_string(), shown);
    }
    for bad in ["", "compact,", "delete,delete", "Compact", "none"] {
        assert_eq!(CleanupPolicy::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn retention_by_bytes_and_time_keeps_the_active_segment() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    for i in 0..100 {
        log.append(&batch(i, 2, 1_000 + i as i64), EPOCH, 0)
            .expect("append");
    }
    let segments = log.segment_count();
    assert!(segments >= 4);
    // retention.bytes: keep the newest segments whose total fits.
    let mut cfg = small_config();
    cfg.retention_bytes = 3_000;
    log.set_config(cfg);
    let report = log.enforce_retention(2_000).expect("retention");
    assert!(report.deleted_segments > 0);
    assert!(
        log.size_bytes() <= 3_000 + 2_000,
        "at most one segment over the limit"
    );
    assert!(log.size_bytes() > 0);
    assert_eq!(log.log_start_offset(), report.log_start_offset);
    assert!(
        log.read(Offset(0), 10, log.log_end_offset()).is_err(),
        "deleted offsets are out of range"
    );
    // retention.ms far in the future: everything but the active segment goes.
    let mut cfg = small_config();
    cfg.retention_ms = 10;
    log.set_config(cfg);
    log.enforce_retention(1_000_000).expect("retention");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(
        log.log_start_offset(),
        log.segments.keys().next().copied().expect("one")
    );
    // Not expired yet: nothing deleted.
    let (mut log2, _) = open(&MemStorage::new(), small_config());
    for i in 0..40 {
        log2.append(&batch(i, 2, 1_000), EPOCH, 0).expect("append");
    }
    let mut cfg = small_config();
    cfg.retention_ms = 500;
    log2.set_config(cfg);
    assert_eq!(
        log2.enforce_retention(1_500)
            .expect("retention")
            .deleted_segments,
        0,
        "age 500 is not past 500"
    );
    assert!(
        log2.enforce_retention(1_501)
            .expect("retention")
            .deleted_segments
            > 0
    );
}

#[test]
fn truncate_to_cuts_at_batch_start() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    for i in 0..30 {
        log.append(&batch(i, 3, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.truncate_to(Offset(40)).expect("truncate");
    assert_eq!(
        log.log_end_offset(),
        Offset(39),
        "offset 40 is inside the batch 39..=41"
    );
    assert!(log.flushed_offset() <= Offset(39));
    let info = log.append(&batch(99, 1, 0), EPOCH, 0).expect("append");
    assert_eq!(info.first_offset, Offset(39));
    assert_eq!(
        read_all(&log, Offset(0)).last().map(|b| b.0),
        Some(Offset(39))
    );
}

#[test]
fn offset_for_timestamp_is_record_precise() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    let mut stamps = Vec::new();
    for i in 0..30i64 {
        // one record per batch, timestamps increasing by 10
        log.append(&batch(i as usize, 1, 100 + i * 10), EPOCH, 0)
            .expect("append");
        stamps.push((Offset(i), 100 + i * 10));
    }
    for target in [0, 100, 101, 150, 155, 390, 391, 10_000] {
        let expect = stamps
            .iter()
            .find(|(_, ts)| *ts >= target)
            .map(|(o, ts)| TimestampOffset {
                offset: *o,
                timestamp: *ts,
            });
        assert_eq!(
            log.offset_for_timestamp(target).expect("lookup"),
            expect,
            "target {target}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Reads from any offset return the batch containing it, for any mix of batch sizes,
    /// segment sizes and index intervals, before and after a reopen.
    #[test]
    fn read_from_any_offset(sizes in proptest::collection::vec(1usize..6, 1..60), seg in 300u64..3_000, interval in 1u32..500, probes in proptest::collection::vec(any::<u16>(), 1..20)) {
        let s = MemStorage::new();
        let cfg = LogConfig { segment_bytes: seg, index_interval_bytes: interval, ..LogConfig::default() };
        let (mut log, _) = open(&s, cfg.clone());
        let mut ranges = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let info = log.append(&batch(i, *n, i as i64), EPOCH, 0).expect("append");
            ranges.push((info.first_offset, info.last_offset));
        }
        flush(&mut log);
        log.checkpoint_recovery_point().expect("checkpoint");
        let reopened = open(&s, cfg).0;
        for l in [&log, &reopened] {
            prop_assert_eq!(read_all(l, Offset(0)), ranges.clone());
            for p in &probes {
                let off = Offset(i64::from(*p) % l.log_end_offset().0);
                let r = l.read(off, 1, l.log_end_offset()).expect("read");
                let (_, h) = BatchIter::new(&r.records).next().expect("a batch").expect("whole");
                prop_assert!(h.base_offset <= off && off <= h.last_offset());
            }
        }
    }
}

/// Overlapping group commits may complete out of order without losing a pending directory sync.
#[test]
fn overlapping_flushes_complete_in_any_order() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    for i in 0..20 {
        log.append(&batch(i, 2, 0), EPOCH, 0).expect("append");
    }
    let older = log.begin_flush().expect("plan");
    for i in 20..40 {
        log.append(&batch(i, 2, 0), EPOCH, 0).expect("append");
    }
    let newer = log.begin_flush().expect("plan");
    assert!(newer.up_to > older.up_to);
    newer.execute().expect("sync");
    log.complete_flush(&newer);
    older.execute().expect("sync");
    log.complete_flush(&older);
    assert_eq!(log.flushed_offset(), newer.up_to);
    log.roll().expect("roll");
    let with_dir = log
        .begin_flush()
        .expect("the new segment needs a directory sync");
    log.roll().ok();
    log.append(&batch(99, 1, 0), EPOCH, 0).expect("append");
    log.roll().expect("roll again: another directory change");
    log.complete_flush(&with_dir);
    let again = log
        .begin_flush()
        .expect("the later directory change is still pending");
    assert!(!again.dirs.is_empty());
}

#[test]
fn max_timestamp_finds_the_first_record_with_it() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, small_config());
    assert_eq!(log.max_timestamp().expect("lookup"), None);
    for (i, ts) in [50, 900, 20, 900, 300].iter().enumerate() {
        log.append(&batch(i, 1, *ts), EPOCH, 0).expect("append");
    }
    assert_eq!(
        log.max_timestamp().expect("lookup"),
        Some(TimestampOffset {
            offset: Offset(1),
            timestamp: 900
        })
    );
}

/// Fuzz finding (log_ops): a power loss takes the whole unsynced tail of a segment that a rolled
/// segment follows. The later segment holds nothing acknowledged: recovery removes it instead of
/// reporting a permanent hole.
#[test]
fn lost_unflushed_tail_before_a_rolled_segment_is_not_a_hole() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    for i in 0..3 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    let durable = log.size_bytes();
    for i in 3..6 {
        log.append(&batch(i, 1, 0), EPOCH, 0)
            .expect("append, never flushed");
    }
    log.roll().expect("roll");
    log.append(&batch(6, 1, 0), EPOCH, 0)
        .expect("append in the new segment");
    drop(log);
    // The crash keeps the new segment but loses segment 0's unsynced tail.
    let seg0 = dir().join(format!("{:020}.log", 0));
    let bytes = s.file(&seg0).expect("segment").contents();
    s.file(&seg0)
        .expect("segment")
        .replace(bytes[..durable as usize].to_vec());
    let (log, report) = open(&s, LogConfig::default());
    assert_eq!(log.log_end_offset(), Offset(3));
    assert!(report.corrupt_batches.is_empty(), "{report:?}");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(read_all(&log, Offset(0)).len(), 3);
}

/// Fuzz finding (segment_recovery): a corrupt batch kept by recovery whose `baseOffset` (outside
/// the CRC) is damaged too must still be refused, and the data after it stay readable.
#[test]
fn kept_corrupt_batch_with_damaged_base_offset_is_refused() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    for i in 0..5 {
        log.append(&batch(i, 2, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    drop(log);
    let seg = dir().join(format!("{:020}.log", 0));
    let mut bytes = s.file(&seg).expect("segment").contents();
    let second = crate::batch::BatchHeader::parse(&bytes)
        .expect("header")
        .total_size();
    bytes[second + 70] ^= 0x10; // payload
    bytes[second..second + 8].copy_from_slice(&1_000_000i64.to_be_bytes()); // baseOffset
    s.file(&seg).expect("segment").replace(bytes);
    let (log, report) = open(&s, LogConfig::default());
    assert_eq!(report.corrupt_batches.len(), 1, "{report:?}");
    assert_eq!(log.log_end_offset(), Offset(10));
    for at in [2, 3] {
        assert!(
            matches!(
                log.read(Offset(at), 1 << 20, Offset(10)),
                Err(LogError::Corrupt {
                    offset: Offset(2),
                    ..
                })
            ),
            "read at {at}"
        );
    }
    let r = log.read(Offset(0), 1 << 20, Offset(10)).expect("read");
    assert_eq!(
        (BatchIter::new(&r.records).count(), r.corrupt_at),
        (1, Some(Offset(2)))
    );
    let r = log.read(Offset(4), 1 << 20, Offset(10)).expect("read");
    assert_eq!(BatchIter::new(&r.records).count(), 3);
}

/// Fuzz finding (index_files): sorted, in-bounds but wrong `.index` entries of a trusted sealed
/// segment, and a `.timeindex` whose last timestamp is too low, are not believed.
#[test]
fn lying_indexes_of_trusted_segments_are_not_believed() {
    let s = MemStorage::new();
    let cfg = LogConfig {
        index_interval_bytes: 50,
        segment_bytes: 1500,
        ..LogConfig::default()
    };
    let (mut log, _) = open(&s, cfg.clone());
    for i in 0..40 {
        log.append(&batch(i, 1, 100 + i as i64), EPOCH, 0)
            .expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    assert!(log.segment_count() > 2);
    let before = read_all(&log, Offset(0));
    let stamps: Vec<_> = (0..40)
        .map(|t| log.offset_for_timestamp(100 + t).expect("lookup"))
        .collect();
    drop(log);
    // Shift every .index position of segment 0 by one byte (still sorted, still in bounds)...
    let idx = dir().join(format!("{:020}.index", 0));
    let mut raw = s.file(&idx).expect("index").contents();
    for e in raw.chunks_exact_mut(8) {
        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        e[4..8].copy_from_slice(&(pos + 1).to_be_bytes());
    }
    s.file(&idx).expect("index").replace(raw);
    // ...and lower the last .timeindex timestamp of segment 0.
    let tidx = dir().join(format!("{:020}.timeindex", 0));
    let mut raw = s.file(&tidx).expect("timeindex").contents();
    let n = raw.len();
    raw[n - 12..n - 4].copy_from_slice(&0i64.to_be_bytes());
    s.file(&tidx).expect("timeindex").replace(raw);
    let (log, report) = open(&s, cfg);
    assert!(report.rebuilt_indexes >= 1, "{report:?}");
    assert_eq!(read_all(&log, Offset(0)), before);
    let after: Vec<_> = (0..40)
        .map(|t| log.offset_for_timestamp(100 + t).expect("lookup"))
        .collect();
    assert_eq!(after, stamps);
}

/// A lying `.index` entry in the middle of a trusted segment (its tail still checks out) is
/// caught when a read relies on it.
#[test]
fn lying_middle_index_entry_is_verified_on_use() {
    let s = MemStorage::new();
    let cfg = LogConfig {
        index_interval_bytes: 50,
        segment_bytes: 3000,
        ..LogConfig::default()
    };
    let (mut log, _) = open(&s, cfg.clone());
    for i in 0..40 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    let before = read_all(&log, Offset(0));
    drop(log);
    let idx = dir().join(format!("{:020}.index", 0));
    let mut raw = s.file(&idx).expect("index").contents();
    assert!(raw.len() >= 24, "several entries");
    let pos = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
    raw[4..8].copy_from_slice(&(pos + 3).to_be_bytes()); // first entry only
    s.file(&idx).expect("index").replace(raw);
    let (log, _) = open(&s, cfg);
    assert_eq!(read_all(&log, Offset(0)), before);
    for o in 0..log.log_end_offset().0 {
        let r = log.read(Offset(o), 1, log.log_end_offset()).expect("read");
        let (_, h) = BatchIter::new(&r.records)
            .next()
            .expect("a batch")
            .expect("whole");
        assert!(h.base_offset <= Offset(o) && Offset(o) <= h.last_offset());
    }
}

/// Found by the simulated disk: a crash kept a rolled segment's `.log` creation but lost its
/// index files' creations; recovery must still remove that segment (and open).
#[test]
fn removing_a_later_segment_tolerates_missing_index_files() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    for i in 0..3 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    let durable = log.size_bytes() as usize;
    log.append(&batch(3, 1, 0), EPOCH, 0)
        .expect("append, never flushed");
    log.roll().expect("roll");
    log.append(&batch(4, 1, 0), EPOCH, 0)
        .expect("append in the new segment");
    drop(log);
    let seg0 = dir().join(format!("{:020}.log", 0));
    let bytes = s.file(&seg0).expect("segment").contents();
    s.file(&seg0)
        .expect("segment")
        .replace(bytes[..durable].to_vec());
    for ext in ["index", "timeindex"] {
        s.remove_file(&dir().join(format!("{:020}.{ext}", 4)))
            .expect("remove");
    }
    let (log, report) = open(&s, LogConfig::default());
    assert_eq!(log.log_end_offset(), Offset(3));
    assert_eq!(log.segment_count(), 1);
    assert!(report.corrupt_batches.is_empty());
}

/// Fuzz finding (log_ops): a flush plan begun before a truncation must not vouch for batches
/// appended after it, even when it completes later.
#[test]
fn flush_plan_overtaken_by_truncation_proves_nothing() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    for i in 0..4 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append");
    }
    let plan = log.begin_flush().expect("plan");
    assert_eq!(plan.up_to, Offset(4));
    plan.execute().expect("sync");
    log.truncate_to(Offset(1)).expect("truncate");
    for i in 10..13 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append again");
    }
    log.complete_flush(&plan);
    assert_eq!(
        log.flushed_offset(),
        Offset(0),
        "nothing appended after the truncation counts as flushed"
    );
    flush(&mut log);
    assert_eq!(log.flushed_offset(), Offset(4));
}

/// Fuzz finding (segment_recovery): the batch after a kept corrupt batch must not move the
/// offsets arbitrarily far (its base offset is outside its CRC); recovery must not panic.
#[test]
fn follower_of_corrupt_batch_with_damaged_base_offset() {
    let s = MemStorage::new();
    let cfg = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let (mut log, _) = open(&s, cfg.clone());
    for i in 0..5 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    drop(log);
    let seg = dir().join(format!("{:020}.log", 0));
    let mut bytes = s.file(&seg).expect("segment").contents();
    let first = crate::batch::BatchHeader::parse(&bytes)
        .expect("header")
        .total_size();
    let second = crate::batch::BatchHeader::parse(&bytes[first..])
        .expect("header")
        .total_size();
    bytes[first + 65] ^= 1; // batch 1's payload
    let third = first + second;
    bytes[third..third + 8].copy_from_slice(&(i64::MAX / 2).to_be_bytes()); // batch 2's baseOffset
    s.file(&seg).expect("segment").replace(bytes);
    let (log, report) = open(&s, cfg);
    assert!(!report.corrupt_batches.is_empty());
    assert!(
        log.log_end_offset() <= Offset(5),
        "log end {}",
        log.log_end_offset()
    );
    let r = log
        .read(Offset(0), 1 << 20, log.log_end_offset())
        .expect("read");
    assert_eq!(BatchIter::new(&r.records).count(), 1);
}

/// Fuzz finding (log_ops): after `truncate_to` below the checkpointed recovery point, batches
/// appended again are unsynced; a crash must not find them trusted as fsynced.
#[test]
fn truncation_lowers_the_recovery_point() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    for i in 0..6 {
        log.append(&batch(i, 1, 0), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    log.truncate_to(Offset(2)).expect("truncate");
    assert_eq!(
        super::recovery::read_checkpoint(&s, &dir()).map(|c| c.recovery_point),
        Some(Offset(2))
    );
    for i in 10..14 {
        log.append(&batch(i, 1, 0), EPOCH, 0)
            .expect("append again, never flushed");
    }
    drop(log);
    // A crash tears the first re-appended batch: with a stale recovery point (6) it would be
    // kept as "corruption of fsynced data"; it is a torn tail and is cut.
    let seg = dir().join(format!("{:020}.log", 0));
    let mut bytes = s.file(&seg).expect("segment").contents();
    let mut pos = 0;
    for _ in 0..2 {
        pos += crate::batch::BatchHeader::parse(&bytes[pos..])
            .expect("header")
            .total_size();
    }
    bytes[pos + 63] ^= 1;
    s.file(&seg).expect("segment").replace(bytes);
    let (log, report) = open(&s, LogConfig::default());
    assert!(report.corrupt_batches.is_empty(), "{report:?}");
    assert_eq!(log.log_end_offset(), Offset(2));
}

/// Fuzz finding (log_ops): truncating into a sealed segment makes it active again; its newest
/// timestamp must be recomputed from what remains, so lookups and its next seal are right.
#[test]
fn truncation_into_a_sealed_segment_recomputes_its_timestamps() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, LogConfig::default());
    for (i, ts) in [10, 20, 30, 40].iter().enumerate() {
        log.append(&batch(i, 1, *ts), EPOCH, 0).expect("append");
    }
    log.roll().expect("roll");
    log.append(&batch(9, 1, 50), EPOCH, 0).expect("append");
    log.truncate_to(Offset(2))
        .expect("truncate into the sealed segment");
    assert_eq!(
        log.max_timestamp().expect("lookup").map(|t| t.timestamp),
        Some(20)
    );
    assert_eq!(log.offset_for_timestamp(25).expect("lookup"), None);
    log.append(&batch(10, 1, 25), EPOCH, 0).expect("append");
    log.roll().expect("seal again");
    assert_eq!(
        log.offset_for_timestamp(25)
            .expect("lookup")
            .map(|t| t.offset),
        Some(Offset(2))
    );
}

/// Fuzz finding (segment_recovery): a `recovery-point` file with a negative offset is ignored,
/// not a panic.
#[test]
fn malformed_recovery_point_files_are_ignored() {
    for text in [
        "0\n-5\n3\n",
        "0\n-73709551615\n",
        "1\n5\n",
        "0\nx\n",
        "",
        "0\n7\n-9\n",
    ] {
        let s = MemStorage::new();
        let (mut log, _) = open(&s, LogConfig::default());
        log.append(&batch(0, 1, 0), EPOCH, 0).expect("append");
        flush(&mut log);
        drop(log);
        let f = s.open(&dir().join("recovery-point")).expect("open");
        f.write_at(text.as_bytes(), 0).expect("write");
        let (log, _) = open(&s, LogConfig::default());
        assert_eq!(log.log_end_offset(), Offset(1), "{text:?}");
    }
}

/// `Segment::check_invariants` (run by every `PartitionLog::assert_invariants`) catches a segment
/// whose bookkeeping went wrong, one field at a time.
#[test]
fn segment_invariants_catch_broken_bookkeeping() {
    let storage = MemStorage::new();
    let dir = std::path::Path::new("/seg");
    let fresh = || segment::Segment::create(&storage, dir, Offset(10)).expect("create");
    fresh().check_invariants();
    type Breakage = (&'static str, fn(&mut segment::Segment));
    let breakages: [Breakage; 4] = [
        ("synced beyond size", |s| s.synced_size = 1),
        ("ends past its base while empty", |s| {
            s.next_offset = Offset(11)
        }),
        ("next offset below its base", |s| s.next_offset = Offset(9)),
        ("last batch outside", |s| {
            s.last_batch_offset = Some(Offset(10))
        }),
    ];
    for (what, break_it) in breakages {
        let mut seg = fresh();
        break_it(&mut seg);
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| seg.check_invariants()));
        assert!(caught.is_err(), "{what}: not caught");
    }
}
