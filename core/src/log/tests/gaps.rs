//! Offsets kept, gaps allowed (issue #16, log compaction; Kafka's rule): logs whose batches
//! have offset gaps — between batches, before a segment's first batch, at a segment's end and
//! so between segments, an empty segment — made the two ways a log gets them: a follower's
//! `append_replicated` of its leader's gapped batches, and segment files as the cleaner leaves
//! them. Reads at every offset, timestamp lookups, truncation into gaps, recovery (scanned,
//! trusted, torn, corrupt), the idempotent-producer state, and the invariant checks.

use std::path::PathBuf;

use bytes::Bytes;
use proptest::prelude::*;

use super::producers::pbatch;
use super::{batch, dir, flush, open};
use crate::batch::{BatchIter, assign_offset};
use crate::log::index::OffsetEntry;
use crate::log::*;
use crate::storage::{MemStorage, Storage};
use crate::types::LeaderEpoch;

const EPOCH: LeaderEpoch = LeaderEpoch(4);

/// One batch the log must hold: its offsets and (every record's) timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    base: Offset,
    last: Offset,
    ts: i64,
}

/// `(base offset, records, timestamp)` of a batch to write.
type Spec = (i64, usize, i64);

fn held(specs: &[Spec]) -> Vec<Held> {
    specs
        .iter()
        .map(|&(base, n, ts)| Held {
            base: Offset(base),
            last: Offset(base + n as i64 - 1),
            ts,
        })
        .collect()
}

/// A batch of `n` records at `ts`, stamped with base offset `base` and [`EPOCH`].
fn at(base: i64, n: usize, ts: i64) -> Vec<u8> {
    let mut b = batch(base as usize, n, ts);
    assign_offset(&mut b, Offset(base), EPOCH);
    b
}

/// Gaps are allowed only in a compacted log (`compact,delete` here, so time retention still
/// runs); any other demands dense offsets (`Segment::gaps`).
const GAPPED: CleanupPolicy = CleanupPolicy {
    delete: true,
    compact: true,
};

/// Small segments and a dense `.index`, so gaps fall at segment boundaries and index lookups.
fn gap_config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 90,
        cleanup_policy: GAPPED,
        ..LogConfig::default()
    }
}

/// A follower's log holding `specs`, each replicated on its own (as many fetches).
fn follower(s: &MemStorage, specs: &[Spec]) -> PartitionLog {
    let (mut log, _) = open(s, gap_config());
    for &(base, n, ts) in specs {
        log.append_replicated(Bytes::from(at(base, n, ts)), 0)
            .unwrap_or_else(|e| panic!("replicate {base}: {e}"));
    }
    log
}

/// A log with gaps inside segments, before the first batch of the log and of rolled segments.
const FOLLOWED: [Spec; 12] = [
    (3, 2, 100),
    (5, 1, 101),
    (9, 3, 102),
    (20, 1, 90),
    (21, 2, 103),
    (40, 4, 104),
    (50, 1, 104),
    (61, 2, 110),
    (63, 1, 111),
    (80, 3, 105),
    (100, 1, 120),
    (102, 2, 121),
];

/// Every read from every offset between the log start and the log end: a one-byte read serves
/// exactly the first batch whose last offset is at or after it (the one holding it, or the next
/// one after a gap), and reading on from there serves every later batch in order.
fn check_reads(log: &PartitionLog, held: &[Held]) {
    log.assert_invariants();
    let end = log.log_end_offset();
    for x in log.log_start_offset().0..=end.0 {
        let r = log
            .read(Offset(x), 1, end)
            .unwrap_or_else(|e| panic!("read at {x}: {e}"));
        let got = BatchIter::new(&r.records)
            .next()
            .map(|i| i.expect("whole").1)
            .map(|h| (h.base_offset, h.last_offset()));
        let expect = held
            .iter()
            .find(|h| h.last.0 >= x)
            .map(|h| (h.base, h.last));
        assert_eq!(got, expect, "read at {x}");
        let all: Vec<(Offset, Offset)> = held
            .iter()
            .filter(|h| h.last.0 >= x)
            .map(|h| (h.base, h.last))
            .collect();
        assert_eq!(read_on(log, Offset(x)), all, "reading on from {x}");
    }
}

/// Reads from `from` on, each read where the previous one ended, until the log end or a read
/// that serves nothing (a gap up to the log end).
fn read_on(log: &PartitionLog, from: Offset) -> Vec<(Offset, Offset)> {
    let (mut out, mut at) = (Vec::new(), from);
    while at < log.log_end_offset() {
        let r = log.read(at, 300, log.log_end_offset()).expect("read");
        if r.records.is_empty() {
            break;
        }
        for item in BatchIter::new(&r.records) {
            let (_, h) = item.expect("whole batches");
            assert!(h.base_offset >= at || out.is_empty(), "offsets increase");
            out.push((h.base_offset, h.last_offset()));
            at = h.next_offset();
        }
    }
    out
}

/// `offset_for_timestamp` (ListOffsets by time) and `max_timestamp` against a linear search.
fn check_timestamps(log: &PartitionLog, held: &[Held]) {
    for target in held.iter().flat_map(|h| [h.ts - 1, h.ts, h.ts + 1]) {
        let expect = held
            .iter()
            .find(|h| h.ts >= target)
            .map(|h| TimestampOffset {
                offset: h.base,
                timestamp: h.ts,
            });
        let got = log.offset_for_timestamp(target).expect("lookup");
        assert_eq!(got, expect, "offset_for_timestamp({target})");
    }
    let newest = held.iter().map(|h| h.ts).max();
    let expect = newest.and_then(|ts| held.iter().find(|h| h.ts == ts));
    let got = log.max_timestamp().expect("lookup");
    assert_eq!(
        got.map(|t| (t.offset, t.timestamp)),
        expect.map(|h| (h.base, h.ts))
    );
}

#[test]
fn a_follower_log_with_gaps_reads_at_every_offset() {
    let s = MemStorage::new();
    let log = follower(&s, &FOLLOWED);
    assert!(log.segment_count() > 3, "rolled: {}", log.segment_count());
    assert_eq!(log.log_start_offset(), Offset(0));
    assert_eq!(log.log_end_offset(), Offset(104));
    let held = held(&FOLLOWED);
    check_reads(&log, &held);
    check_timestamps(&log, &held);
    // A segment rolled for a batch after a gap starts at the log end, before that batch: no gap
    // between segments.
    let bases: Vec<Offset> = log.segments.keys().copied().collect();
    for (seg, next) in log.segments.values().zip(bases.iter().skip(1)) {
        assert_eq!(
            seg.next_offset, *next,
            "segment {} ends where the next begins",
            seg.base_offset
        );
    }
    // The first batch appended by a follower after a gap is its first offset.
    let mut log = log;
    let info = log
        .append_replicated(Bytes::from(at(110, 1, 130)), 0)
        .expect("replicate");
    assert_eq!(
        (info.first_offset, info.last_offset),
        (Offset(110), Offset(110))
    );
}

/// The read's upper bound (the high watermark) inside a gap: batches ending at or below it are
/// served, none past it; offsets outside the log are out of range, offsets in gaps are not.
#[test]
fn reads_stop_at_a_bound_in_a_gap_and_refuse_only_outside_the_log() {
    let s = MemStorage::new();
    let log = follower(&s, &FOLLOWED);
    let r = log.read(Offset(6), 1 << 20, Offset(15)).expect("read");
    let served: Vec<_> = BatchIter::new(&r.records)
        .map(|i| i.expect("whole").1.base_offset)
        .collect();
    assert_eq!(served, [Offset(9)]);
    let r = log
        .read(Offset(12), 1 << 20, Offset(15))
        .expect("read in a gap below the bound");
    assert!(r.records.is_empty());
    assert!(
        log.read(Offset(0), 1, Offset(3))
            .expect("read")
            .records
            .is_empty()
    );
    assert!(matches!(
        log.read(Offset(105), 1, Offset(104)),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

/// An `.index` entry is believed only if its batch starts exactly at the offset it names: one
/// that names an offset in the gap before its batch would make a lookup skip the batch holding
/// the offset asked for.
#[test]
fn an_index_entry_naming_a_gap_before_its_batch_is_not_believed() {
    let s = MemStorage::new();
    let specs = [(0, 2, 1), (2, 3, 1), (10, 1, 1)];
    let config = LogConfig {
        index_interval_bytes: 1 << 20,
        ..gap_config()
    };
    let (mut log, _) = open(&s, config);
    for &(base, n, ts) in &specs {
        log.append_replicated(Bytes::from(at(base, n, ts)), 0)
            .expect("replicate");
    }
    assert_eq!(log.segment_count(), 1);
    let seg = log.segments.values_mut().next().expect("a segment");
    let third = (at(0, 2, 1).len() + at(2, 3, 1).len()) as u32;
    let lie = OffsetEntry {
        relative_offset: 3,
        position: third,
    };
    seg.offset_index.append(lie).expect("index");
    check_reads(&log, &held(&specs));
}

/// The segment files a cleaner leaves: `segments` as `(name, batches)`, a recovery point.
fn write_cleaned(s: &MemStorage, segments: &[(i64, &[Spec])], recovery_point: i64) {
    for (name, specs) in segments {
        let bytes: Vec<u8> = specs.iter().flat_map(|&(b, n, ts)| at(b, n, ts)).collect();
        let path: PathBuf = dir().join(format!("{name:020}.log"));
        s.open(&path)
            .expect("open")
            .write_at(&bytes, 0)
            .expect("write");
    }
    let checkpoint = format!("0\n{recovery_point}\n0\n");
    let path = dir().join("recovery-point");
    s.open(&path)
        .expect("open")
        .write_at(checkpoint.as_bytes(), 0)
        .expect("write");
}

/// Segment 0 cleaned to a gap at its start, in its middle and at its end (before segment 20),
/// segment 12 emptied, the active segment 20 with a gap of its own.
const CLEANED: [(i64, &[Spec]); 3] = [
    (0, &[(2, 1, 50), (4, 2, 51), (8, 1, 52)]),
    (12, &[]),
    (20, &[(20, 2, 60), (25, 1, 61)]),
];

#[test]
fn cleaned_segments_with_gaps_between_them_recover_and_read() {
    let s = MemStorage::new();
    write_cleaned(&s, &CLEANED, 26);
    let (log, report) = open(&s, gap_config());
    assert!(report.corrupt_batches.is_empty(), "{report:?}");
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    assert_eq!(
        log.segment_count(),
        3,
        "the gaps lie below the recovery point: kept"
    );
    assert_eq!(log.segments[&Offset(0)].next_offset, Offset(9));
    assert_eq!(log.segments[&Offset(12)].next_offset, Offset(12));
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(0), Offset(26))
    );
    let all: Vec<Spec> = CLEANED
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    check_reads(&log, &held(&all));
    check_timestamps(&log, &held(&all));
    // The epoch cache is rebuilt from the headers: the epoch starts at the first batch.
    assert_eq!(log.leader_epoch_entries()[0].start_offset, Offset(2));
}

/// After a clean shutdown recovery trusts cleaned segments: the header walks accept the gaps,
/// and no scan looks at the payloads (a flipped payload byte is not reported at open, only
/// refused when read), as for any trusted segment.
#[test]
fn cleaned_segments_with_gaps_are_trusted_after_a_clean_shutdown() {
    let s = MemStorage::new();
    write_cleaned(&s, &CLEANED, 26);
    let (mut log, _) = open(&s, gap_config());
    let all: Vec<Spec> = CLEANED
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect();
    flush(&mut log);
    log.checkpoint_clean_shutdown().expect("checkpoint");
    drop(log);
    let path = dir().join(format!("{:020}.log", 0));
    let mut bytes = s.file(&path).expect("segment").contents();
    bytes[at(2, 1, 50).len() + 70] ^= 1;
    s.file(&path).expect("segment").replace(bytes);
    let (log, report) = open(&s, gap_config());
    assert_eq!(
        report,
        RecoveryReport {
            segments: 3,
            ..Default::default()
        }
    );
    for x in 3..=5 {
        let err = log.read(Offset(x), 1, Offset(26)).expect_err("corrupt");
        assert!(
            matches!(
                err,
                LogError::Corrupt {
                    offset: Offset(4),
                    ..
                }
            ),
            "{err}"
        );
    }
    let later: Vec<Spec> = all.iter().copied().filter(|b| b.0 > 5).collect();
    let held_later = held(&later);
    for x in 6..=26 {
        let expect = held_later
            .iter()
            .find(|h| h.last.0 >= x)
            .map(|h| (h.base, h.last));
        let r = log.read(Offset(x), 1, Offset(26)).expect("read");
        let got = BatchIter::new(&r.records)
            .next()
            .map(|i| i.expect("whole").1);
        assert_eq!(
            got.map(|h| (h.base_offset, h.last_offset())),
            expect,
            "read at {x}"
        );
    }
}

/// Above the recovery point a segment ending short of the next one lost its unsynced tail:
/// the later segments go (nothing after the tail was acknowledged). This is why the cleaner
/// installs segments only below the recovery point.
#[test]
fn a_gap_between_segments_above_the_recovery_point_is_a_lost_tail() {
    let s = MemStorage::new();
    write_cleaned(&s, &CLEANED, 5);
    let (log, report) = open(&s, gap_config());
    assert_eq!(log.segment_count(), 1, "{report:?}");
    assert_eq!(log.log_end_offset(), Offset(9));
    check_reads(&log, &held(CLEANED[0].1));
}

/// Time retention with an empty (cleaned) segment in front: it holds nothing and no timestamp,
/// and counts as expired rather than holding the log start back for ever.
#[test]
fn an_empty_cleaned_segment_does_not_hold_back_time_retention() {
    let s = MemStorage::new();
    write_cleaned(
        &s,
        &[(0, &[]), (10, &[(10, 1, 5)]), (20, &[(20, 1, 5)])],
        21,
    );
    let (mut log, _) = open(&s, gap_config());
    let mut config = gap_config();
    config.retention_ms = 1_000;
    log.set_config(config);
    let report = log.enforce_retention(500).expect("retention");
    assert_eq!(report.deleted_segments, 1);
    assert_eq!(log.log_start_offset(), Offset(10));
    let report = log.enforce_retention(2_000).expect("retention");
    assert_eq!(report.deleted_segments, 1);
    assert_eq!(log.log_start_offset(), Offset(20));
}

/// Truncation at every offset of a gapped log (KIP-101 follower truncation): every batch
/// ending at or after the offset goes, the log end becomes the end of the last batch kept (at
/// most the offset), the epoch cache and producer state follow it, and appends continue there.
#[test]
fn truncation_at_every_offset_keeps_exactly_the_batches_below() {
    let all = held(&FOLLOWED);
    for x in 0..104 {
        let s = MemStorage::new();
        let mut log = follower(&s, &FOLLOWED);
        log.maybe_assign_leader_epoch(LeaderEpoch(6))
            .expect("leader");
        log.truncate_to(Offset(x)).expect("truncate");
        let kept: Vec<Held> = all.iter().copied().filter(|h| h.last.0 < x).collect();
        let end = kept.last().map_or(Offset(0), |h| h.last.next());
        assert_eq!(log.log_end_offset(), end, "truncate_to({x})");
        assert!(
            log.segments
                .keys()
                .all(|b| *b == Offset(0) || *b < Offset(x))
        );
        check_reads(&log, &kept);
        let epochs: Vec<_> = log.leader_epoch_entries().iter().map(|e| e.epoch).collect();
        let expect = if kept.is_empty() { vec![] } else { vec![EPOCH] };
        assert_eq!(
            epochs, expect,
            "truncate_to({x}): entries at or above the end go"
        );
        // A follower continues at or after the new end; a leader assigns offsets from it.
        log.append_replicated(Bytes::from(at(x + 1, 1, 200)), 0)
            .expect("follower append after the cut");
        let info = log
            .append(&batch(0, 2, 300), LeaderEpoch(7), 0)
            .expect("leader append");
        assert_eq!(info.first_offset, Offset(x + 2));
        drop(log);
        let (log, report) = open(&s, gap_config());
        assert_eq!(report.truncated_bytes, 0, "{report:?}");
        assert_eq!(log.log_end_offset(), Offset(x + 4));
    }
}

/// Truncation into a gap between cleaned segments deletes the segments after it and leaves
/// the log ending where the segment holding the offset ends.
#[test]
fn truncation_into_a_gap_between_segments() {
    let s = MemStorage::new();
    write_cleaned(&s, &CLEANED, 26);
    let (mut log, _) = open(&s, gap_config());
    log.truncate_to(Offset(15)).expect("truncate");
    assert_eq!(log.segment_count(), 2);
    assert_eq!(
        log.log_end_offset(),
        Offset(12),
        "the empty segment 12 is the active one"
    );
    check_reads(&log, &held(CLEANED[0].1));
    log.truncate_to(Offset(6)).expect("truncate");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(
        log.log_end_offset(),
        Offset(6),
        "the end of the batch 4..=5, kept"
    );
    check_reads(&log, &held(&CLEANED[0].1[..2]));
}

/// A crash of a follower with a gapped log: the flushed part (below the recovery point) comes
/// back whole, gaps and all; a torn last batch is cut; the log takes appends again after it.
#[test]
fn a_gapped_log_recovers_after_a_crash_with_a_torn_tail() {
    let s = MemStorage::new();
    let mut log = follower(&s, &FOLLOWED[..8]);
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    for &(base, n, ts) in &FOLLOWED[8..] {
        log.append_replicated(Bytes::from(at(base, n, ts)), 0)
            .expect("replicate, never flushed");
    }
    let active = log.active().base_offset;
    drop(log);
    // The crash keeps all but the last 5 bytes of the last batch.
    let path = dir().join(format!("{:020}.log", active.0));
    let bytes = s.file(&path).expect("active").contents();
    s.file(&path)
        .expect("active")
        .replace(bytes[..bytes.len() - 5].to_vec());
    let (mut log, report) = open(&s, gap_config());
    assert!(report.truncated_bytes > 0, "{report:?}");
    assert!(report.corrupt_batches.is_empty(), "{report:?}");
    assert_eq!(log.log_end_offset(), Offset(101));
    check_reads(&log, &held(&FOLLOWED[..11]));
    log.append_replicated(Bytes::from(at(102, 2, 121)), 0)
        .expect("the fetcher resumes at the log end");
    check_reads(&log, &held(&FOLLOWED));
}

/// A corrupt batch after a gap, below the recovery point, with valid data after it: kept and
/// reported; every offset from the end of the batch before it to the batch after it is refused
/// (the corrupt batch's own base offset is not trusted), the rest reads.
#[test]
fn a_corrupt_batch_after_a_gap_is_kept_and_refused() {
    let s = MemStorage::new();
    let specs = [(0, 2, 1), (6, 3, 2), (12, 1, 3), (20, 2, 4)];
    let config = LogConfig {
        cleanup_policy: GAPPED,
        ..LogConfig::default()
    };
    let (mut log, _) = open(&s, config.clone());
    for &(base, n, ts) in &specs {
        log.append_replicated(Bytes::from(at(base, n, ts)), 0)
            .expect("replicate");
    }
    flush(&mut log);
    log.checkpoint_recovery_point().expect("checkpoint");
    drop(log);
    let path = dir().join(format!("{:020}.log", 0));
    let mut bytes = s.file(&path).expect("segment").contents();
    bytes[at(0, 2, 1).len() + 70] ^= 1;
    s.file(&path).expect("segment").replace(bytes);
    let (log, report) = open(&s, config);
    assert_eq!(report.corrupt_batches.len(), 1, "{report:?}");
    assert_eq!(report.corrupt_batches[0].offset, Offset(6));
    assert_eq!(log.log_end_offset(), Offset(22));
    for x in 2..12 {
        let err = log.read(Offset(x), 1, Offset(22)).expect_err("refused");
        assert!(
            matches!(
                err,
                LogError::Corrupt {
                    offset: Offset(2),
                    ..
                }
            ),
            "{x}: {err}"
        );
    }
    let later = held(&specs[2..]);
    for x in 12..22 {
        let expect = later.iter().find(|h| h.last.0 >= x).map(|h| h.base);
        let r = log.read(Offset(x), 1, Offset(22)).expect("read");
        let got = BatchIter::new(&r.records)
            .next()
            .map(|i| i.expect("whole").1.base_offset);
        assert_eq!(got, expect, "read at {x}");
    }
}

/// Idempotent producers across gaps (KIP-98): a follower's replicated batches with gaps
/// between them give the same producer state a leader's dense ones would; after it becomes
/// leader a retry is a duplicate with its original offsets, the next sequence is written at
/// the log end — also after a restart rebuilt the state from the log.
#[test]
fn producer_state_follows_batches_across_gaps() {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, gap_config());
    let mut offsets = Vec::new();
    for (i, base) in [4i64, 10, 30, 32, 50].iter().enumerate() {
        let mut b = pbatch(7, 0, 2 * i as i32, 2);
        assign_offset(&mut b, Offset(*base), EPOCH);
        log.append_replicated(Bytes::from(b), 0).expect("replicate");
        offsets.push((Offset(*base), Offset(base + 1)));
    }
    for reopen in [false, true] {
        if reopen {
            flush(&mut log);
            log.checkpoint_recovery_point().expect("checkpoint");
            drop(log);
            log = open(&s, gap_config()).0;
        }
        let entry = log.producer_state().entry(crate::types::ProducerId(7));
        assert_eq!(entry.map(|e| e.last_seq().0), Some(9));
        assert_eq!(log.producer_state().map_end_offset(), Offset(52));
        let retry = log
            .append(&pbatch(7, 0, 6, 2), LeaderEpoch(5), 0)
            .expect("retry");
        assert!(retry.duplicate);
        assert_eq!((retry.first_offset, retry.last_offset), offsets[3]);
    }
    let next = log
        .append(&pbatch(7, 0, 10, 2), LeaderEpoch(5), 0)
        .expect("next");
    assert_eq!((next.first_offset, next.duplicate), (Offset(52), false));
    let gap = log.append(&pbatch(7, 0, 20, 2), LeaderEpoch(5), 0);
    assert!(gap.is_err(), "a sequence gap is still out of order");
}

/// The invariant checks accept gaps but still catch segments that overlap or go back.
#[test]
fn invariant_checks_accept_gaps_and_catch_overlaps() {
    let s = MemStorage::new();
    write_cleaned(&s, &CLEANED, 26);
    let (log, _) = open(&s, gap_config());
    log.assert_invariants();
    for seg in log.segments.values() {
        seg.check_invariants();
    }
    let (mut log, _) = open(&s, gap_config());
    log.segments
        .get_mut(&Offset(0))
        .expect("segment 0")
        .next_offset = Offset(13);
    let message = super::panic_message(|| log.assert_invariants());
    assert!(message.contains("overlap"), "{message}");
    // A batch going back inside a segment is refused where it would be recorded.
    let (mut log, _) = open(&s, gap_config());
    let seg = log.segments.get_mut(&Offset(20)).expect("segment 20");
    let header = crate::batch::BatchHeader::parse(&at(24, 1, 0)).expect("header");
    let size = seg.size;
    let message = super::panic_message(|| {
        let _ = seg.on_batch(size, &header, None, None);
    });
    assert!(message.contains("strictly increase"), "{message}");
}

/// Batches of a random log: `(gap before it, records, timestamp)`; gaps are often 0, so logs
/// range from dense to gapped everywhere.
fn specs_strategy() -> impl Strategy<Value = Vec<Spec>> {
    let gap = prop_oneof![3 => Just(0i64), 1 => 1i64..30];
    proptest::collection::vec((gap, 1usize..4, 0i64..300), 1..30).prop_map(|raw| {
        let mut next = 0;
        raw.into_iter()
            .map(|(gap, n, ts)| {
                let base = next + gap;
                next = base + n as i64;
                (base, n, ts)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any dense-or-gapped replicated log, fetched in chunks of 1-3 batches, with any segment
    /// size and index density: a read at every offset serves the batches whose last offset is
    /// at or after it, in order — live, after a recovery that scans every segment, after a clean
    /// shutdown that trusts them, and after a truncation at any offset.
    #[test]
    fn every_read_serves_the_batches_ending_at_or_after_it(
        specs in specs_strategy(),
        chunk in 1usize..4,
        segment_bytes in prop_oneof![Just(250u64), Just(600), Just(1 << 20)],
        index_interval in prop_oneof![Just(1u32), Just(90), Just(4096)],
        cut in 0i64..200,
    ) {
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes: index_interval,
            cleanup_policy: GAPPED,
            ..LogConfig::default()
        };
        let s = MemStorage::new();
        let (mut log, _) = open(&s, config.clone());
        for fetch in specs.chunks(chunk) {
            let bytes: Vec<u8> = fetch.iter().flat_map(|&(b, n, ts)| at(b, n, ts)).collect();
            log.append_replicated(Bytes::from(bytes), 0).expect("replicate");
        }
        let all = held(&specs);
        check_reads(&log, &all);
        check_timestamps(&log, &all);
        drop(log);
        let (mut log, report) = open(&s, config.clone());
        prop_assert_eq!(report.truncated_bytes, 0);
        check_reads(&log, &all);
        flush(&mut log);
        log.checkpoint_clean_shutdown().expect("checkpoint");
        drop(log);
        let (mut log, _) = open(&s, config);
        check_reads(&log, &all);
        check_timestamps(&log, &all);
        log.truncate_to(Offset(cut)).expect("truncate");
        let kept: Vec<Held> = all.iter().copied().filter(|h| h.last.0 < cut).collect();
        check_reads(&log, &kept);
        prop_assert!(log.log_end_offset() <= Offset(cut));
    }
}
