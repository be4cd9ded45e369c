//! Tests of [`PartitionLog::delete_segments_below`]: which segments go at every kind of
//! boundary, and that the log start offset, the leader epoch cache and the producer state move
//! as they do for retention and survive a restart. (Retention itself is tested in `tests`.)

use std::sync::Arc;

use super::tests::{dir, read_all, small_config};
use super::tests_producers::pbatch;
use super::*;
use crate::storage::MemStorage;
use crate::types::{LeaderEpoch, ProducerId};

fn open(s: &MemStorage) -> PartitionLog {
    PartitionLog::open(Arc::new(s.clone()), dir(), small_config(), 0)
        .expect("open")
        .0
}

/// A log of 40 two-record batches of producer 7: epoch 1 writes the first 20, epoch 2 the
/// rest. Several segments.
fn filled(s: &MemStorage) -> PartitionLog {
    let mut log = open(s);
    for i in 0..40 {
        let epoch = LeaderEpoch(if i < 20 { 1 } else { 2 });
        log.append(&pbatch(7, 0, 2 * i, 2), epoch, 0)
            .expect("append");
    }
    assert!(log.segment_count() >= 4, "several segments");
    log
}

fn bases(log: &PartitionLog) -> Vec<Offset> {
    log.segments.keys().copied().collect()
}

/// At every kind of boundary, exactly the segments that end at or below the offset go: the
/// log start becomes the base of the segment holding the offset (the active segment's when the
/// offset is at or past it), the log end does not move, and what is kept reads as before.
#[test]
fn only_whole_segments_ending_at_or_below_the_offset_go() {
    let reference = filled(&MemStorage::new());
    let b = bases(&reference);
    let end = reference.log_end_offset();
    let active = *b.last().expect("a segment");
    let cases = [
        ("zero", Offset(0)),
        ("inside the first segment", Offset(b[1].0 - 1)),
        ("the second segment's base", b[1]),
        ("just past it", b[1].next()),
        ("inside the third segment", Offset(b[2].0 + 1)),
        ("the active segment's base", active),
        ("the log end", end),
        ("beyond the log end", Offset(end.0 + 1_000)),
    ];
    for (name, offset) in cases {
        let s = MemStorage::new();
        let mut log = filled(&s);
        let before = read_all(&log, Offset(0));
        let expected_start = *b
            .iter()
            .rev()
            .find(|base| **base <= offset)
            .unwrap_or(&b[0]);
        let report = log.delete_segments_below(offset).expect("delete");
        assert_eq!(log.log_start_offset(), expected_start, "{name}");
        assert_eq!(report.log_start_offset, expected_start, "{name}");
        assert_eq!(
            report.deleted_segments,
            b.iter().filter(|base| **base < expected_start).count(),
            "{name}"
        );
        assert!(log.log_start_offset() <= offset.max(b[0]), "{name}");
        assert_eq!(log.log_end_offset(), end, "{name}: the log end stays");
        assert!(log.segment_count() >= 1, "{name}: the active segment stays");
        let kept: Vec<_> = before
            .iter()
            .copied()
            .filter(|(base, _)| *base >= expected_start)
            .collect();
        assert_eq!(read_all(&log, expected_start), kept, "{name}");
        if expected_start > Offset(0) {
            assert!(
                matches!(
                    log.read(Offset(expected_start.0 - 1), 100, end),
                    Err(LogError::OffsetOutOfRange { .. })
                ),
                "{name}: below the log start is out of range"
            );
        }
        // Idempotent: the same offset again deletes nothing.
        let again = log.delete_segments_below(offset).expect("again");
        assert_eq!(again.deleted_segments, 0, "{name}");
        assert_eq!(again.log_start_offset, expected_start, "{name}");
    }
}

/// As for retention: the epoch cache's first entry moves up to the new log start, producers
/// whose batches went stay known, and all of it — with the log start — survives a restart.
#[test]
fn the_log_start_epochs_and_producers_move_and_survive_a_restart() {
    let s = MemStorage::new();
    let mut log = filled(&s);
    let b = bases(&log);
    let epoch2_start = log
        .epoch_start_offset(LeaderEpoch(2))
        .expect("epoch 2 wrote");
    // Cut inside epoch 2: epoch 1's data goes entirely.
    let target = *b
        .iter()
        .find(|base| **base > epoch2_start)
        .expect("a segment starts inside epoch 2");
    let report = log.delete_segments_below(target).expect("delete");
    assert!(report.deleted_segments > 0);
    assert_eq!(log.log_start_offset(), target);
    let entries = log.leader_epoch_entries().to_vec();
    assert_eq!(entries, [EpochEntry::new(2, target.0)]);
    let last_seq = |log: &PartitionLog| {
        log.producer_state()
            .entry(ProducerId(7))
            .map(|e| e.last_seq().0)
    };
    assert_eq!(last_seq(&log), Some(79));
    let kept = read_all(&log, target);
    drop(log);

    let log = open(&s);
    assert_eq!(
        log.log_start_offset(),
        target,
        "the log start is the first file"
    );
    assert_eq!(log.leader_epoch_entries(), entries);
    assert_eq!(last_seq(&log), Some(79), "producer state survives");
    assert_eq!(read_all(&log, target), kept);
}

/// A failed log refuses, as every other operation does.
#[test]
fn a_failed_log_refuses() {
    let s = MemStorage::new();
    let mut log = filled(&s);
    let start = log.log_start_offset();
    log.fail();
    assert!(matches!(
        log.delete_segments_below(log.log_end_offset()),
        Err(LogError::Failed(_))
    ));
    assert_eq!(log.log_start_offset(), start);
}
