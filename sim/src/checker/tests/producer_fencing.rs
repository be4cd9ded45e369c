//! Each producer-state anomaly on a hand-made bad history, and the cross-epoch copies a resending
//! producer may leave (the duplicate checker's one exception) on good and bad ones.

use super::*;
use crate::checker::testkit::{Builder, tp};
use crate::checker::{check_all, duplicate};

fn run(b: &Builder) -> Found {
    check(&Analysis::new(&b.history))
}

fn duplicates(b: &Builder) -> Vec<Value> {
    duplicate::check(&Analysis::new(&b.history))
        .into_iter()
        .map(|d| d.value)
        .collect()
}

fn stamp(base: i64, last: i64, pid: i64, epoch: i16, seq: i32) -> BatchStamp {
    BatchStamp {
        base_offset: Offset(base),
        last_offset: Offset(last),
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
    }
}

/// librdkafka's epoch bump: value 2 was possibly written under epoch 0, then resent under epoch
/// 1 from sequence 0. One copy per epoch, in epoch order: nothing to report, by any checker.
#[test]
fn quiet_on_one_copy_per_epoch_from_a_resending_producer() {
    let mut b = Builder::new();
    b.resend_ok(1, "t", 0, &[1], 0, false);
    b.resend_info(1, "t", 0, &[2]);
    b.resend_ok(1, "t", 0, &[3, 4], 3, false);
    b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 1), (1, 2), (2, 2), (3, 3), (4, 4)],
        &[
            (0, 0, 7, 0, 0),
            (1, 1, 7, 0, 1),
            (2, 2, 7, 1, 0),
            (3, 4, 7, 1, 1),
        ],
        5,
    );
    assert_eq!(run(&b), Found::default());
    let report = check_all(&b.history);
    assert!(report.is_valid(), "{}", report.render(&b.history, 5));

    // The same when the resent batch was acknowledged as a possible duplicate.
    let mut b = Builder::new();
    b.resend_ok(1, "t", 0, &[2], 1, true);
    b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 2), (1, 2)],
        &[(0, 0, 7, 0, 0), (1, 1, 7, 1, 0)],
        2,
    );
    let report = check_all(&b.history);
    assert!(report.is_valid(), "{}", report.render(&b.history, 5));
}

/// A retry under one identity written twice: the dedup window should have caught it.
#[test]
fn reports_a_value_twice_under_one_epoch() {
    let mut b = Builder::new();
    b.resend_info(1, "t", 0, &[5]);
    let read = b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 5), (1, 5)],
        &[(0, 0, 7, 3, 0), (1, 1, 7, 3, 0)],
        2,
    );
    let found = run(&b);
    assert_eq!(
        found.same_epoch_duplicates,
        vec![SameEpochDuplicate {
            value: Value(5),
            tp: tp("t", 0),
            producer_id: 7,
            producer_epoch: 3,
            at: vec![(Offset(0), read), (Offset(1), read)],
        }]
    );
    // The same sequence again is no continuation either.
    assert_eq!(found.sequence_gaps.len(), 1);
    assert_eq!(duplicates(&b), vec![Value(5)], "not a cross-epoch copy");
}

/// A late retry of an old epoch written after the new epoch: fencing failed.
#[test]
fn reports_an_old_epoch_written_after_a_newer_one() {
    let mut b = Builder::new();
    b.resend_ok(1, "t", 0, &[1], 0, false);
    b.resend_info(1, "t", 0, &[2]);
    let read = b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 1), (1, 2), (2, 3)],
        &[(0, 0, 7, 1, 0), (1, 1, 7, 0, 0), (2, 2, 7, 1, 1)],
        3,
    );
    let found = run(&b);
    assert_eq!(
        found.fenced_epoch_writes,
        vec![FencedEpochWrite {
            tp: tp("t", 0),
            newer: (stamp(0, 0, 7, 1, 0), read),
            older: (stamp(1, 1, 7, 0, 0), read),
        }]
    );
    assert_eq!(found.sequence_gaps, vec![], "epoch 1 continues at 2");
    assert_eq!(found.same_epoch_duplicates, vec![]);
    // Another producer id's epochs are its own.
    let mut b = Builder::new();
    b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 1), (1, 2)],
        &[(0, 0, 7, 1, 0), (1, 1, 8, 0, 0)],
        2,
    );
    assert_eq!(run(&b), Found::default());
}

/// Copies of a resent value in the wrong epoch order are no legitimate resend.
#[test]
fn a_cross_epoch_copy_in_the_wrong_order_is_a_duplicate_and_a_fenced_write() {
    let mut b = Builder::new();
    b.resend_info(1, "t", 0, &[5]);
    b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 5), (1, 5)],
        &[(0, 0, 7, 1, 0), (1, 1, 7, 0, 0)],
        2,
    );
    assert_eq!(duplicates(&b), vec![Value(5)]);
    assert_eq!(run(&b).fenced_epoch_writes.len(), 1);
}

/// Cross-epoch copies are allowed only for a resending producer whose send may have been
/// written before it was resent.
#[test]
fn a_cross_epoch_copy_is_a_duplicate_unless_the_producer_resent_a_possibly_written_batch() {
    type Stamps<'a> = &'a [(i64, i64, i64, i16, i32)];
    let log: (&[(i64, u64)], Stamps<'_>) = (&[(0, 5), (1, 5)], &[(0, 0, 7, 0, 0), (1, 1, 7, 1, 0)]);
    // A producer that never resends.
    let mut b = Builder::new();
    b.send_info(1, "t", 0, &[5]);
    b.final_read_stamped(9, "t", 0, log.0, log.1, 2);
    assert_eq!(duplicates(&b), vec![Value(5)]);
    // A resending producer whose send was acknowledged without any resend.
    let mut b = Builder::new();
    b.resend_ok(1, "t", 0, &[5], 1, false);
    b.final_read_stamped(9, "t", 0, log.0, log.1, 2);
    assert_eq!(duplicates(&b), vec![Value(5)]);
    // Under two producer ids.
    let mut b = Builder::new();
    b.resend_info(1, "t", 0, &[5]);
    b.final_read_stamped(9, "t", 0, log.0, &[(0, 0, 7, 0, 0), (1, 1, 8, 1, 0)], 2);
    assert_eq!(duplicates(&b), vec![Value(5)]);
    // Without producer fields.
    let mut b = Builder::new();
    b.resend_info(1, "t", 0, &[5]);
    b.final_read(9, "t", 0, log.0, 2);
    assert_eq!(duplicates(&b), vec![Value(5)]);
    // The good case, for contrast.
    let mut b = Builder::new();
    b.resend_info(1, "t", 0, &[5]);
    b.final_read_stamped(9, "t", 0, log.0, log.1, 2);
    assert_eq!(duplicates(&b), vec![]);
}

/// Within an epoch each batch continues the last sequence; a newer epoch starts at 0.
#[test]
fn reports_sequence_gaps_and_a_new_epoch_not_starting_at_zero() {
    let mut b = Builder::new();
    let read = b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)],
        &[
            (0, 1, 7, 0, 0),
            (2, 2, 7, 0, 3), // skips sequence 2
            (3, 3, 7, 1, 4), // a new epoch at 4
            (4, 4, 7, 1, 5), // follows
        ],
        5,
    );
    let found = run(&b);
    assert_eq!(
        found.sequence_gaps,
        vec![
            SequenceGap {
                tp: tp("t", 0),
                previous: (stamp(0, 1, 7, 0, 0), read),
                next: (stamp(2, 2, 7, 0, 3), read),
            },
            SequenceGap {
                tp: tp("t", 0),
                previous: (stamp(2, 2, 7, 0, 3), read),
                next: (stamp(3, 3, 7, 1, 4), read),
            },
        ]
    );
    // Sequences wrap from i32::MAX to 0.
    let mut b = Builder::new();
    b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 1), (1, 2), (2, 3)],
        &[(0, 1, 7, 0, i32::MAX - 1), (2, 2, 7, 0, 0)],
        3,
    );
    assert_eq!(run(&b), Found::default());
}

/// Where the reads did not cover every offset between two batches, no gap is judged.
#[test]
fn quiet_about_sequences_across_a_hole_in_the_reads() {
    let mut b = Builder::new();
    b.final_read_stamped(
        9,
        "t",
        0,
        &[(0, 1), (2, 3)],
        &[(0, 0, 7, 0, 0), (2, 2, 7, 0, 2)],
        3,
    );
    assert_eq!(run(&b), Found::default());
}

#[test]
fn a_sequence_refusal_is_an_anomaly() {
    assert_eq!(check_refusals(0), None);
    assert_eq!(check_refusals(2), Some(SequenceRefused { count: 2 }));
}
