//! Tests of the producer state (KIP-98 idempotence). Each names the rule it checks.

use proptest::prelude::*;

use super::*;
use crate::batch::{self, BatchHeader};
use crate::types::LeaderEpoch;

const PID: i64 = 7;
const DAY: i64 = DEFAULT_PRODUCER_ID_EXPIRATION_MS;

/// A producer batch of `count` records, as a producer sends it (offsets 0).
fn raw(pid: i64, epoch: i16, seq: i32, count: usize, ts: i64) -> Vec<u8> {
    let values: Vec<(&[u8], Option<&[u8]>)> = (0..count).map(|_| (&b"v"[..], None)).collect();
    batch::build_batch_with_producer(&values, ts, pid, epoch, seq)
}

fn header(pid: i64, epoch: i16, seq: i32, count: usize) -> BatchHeader {
    BatchHeader::parse(&raw(pid, epoch, seq, count, 1_000)).unwrap()
}

/// A leader's producer state and a follower fed with what the leader wrote.
struct Pair {
    leader: ProducerStateManager,
    follower: ProducerStateManager,
    log_end: Offset,
    /// Every batch the leader wrote, with its offsets, as a follower fetches it.
    written: Vec<BatchHeader>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Appended(i64, i64),
    Duplicate(i64, i64),
    Refused(ErrorCode),
}

impl Pair {
    fn new() -> Pair {
        Pair {
            leader: ProducerStateManager::new(DAY),
            follower: ProducerStateManager::new(DAY),
            log_end: Offset::ZERO,
            written: Vec::new(),
        }
    }

    /// Produces a request of batches `(epoch, seq, count, ts)` of one producer the way the log
    /// will: check, write at the log end, commit; the follower applies what was written.
    fn produce(&mut self, pid: i64, batches: &[(i16, i32, usize, i64)]) -> Outcome {
        let raws: Vec<Vec<u8>> = batches
            .iter()
            .map(|&(e, s, c, ts)| raw(pid, e, s, c, ts))
            .collect();
        let headers: Vec<BatchHeader> = raws
            .iter()
            .map(|r| batch::validate_batch(r).unwrap())
            .collect();
        match self.leader.check_leader_batches(&headers) {
            Err(e) => Outcome::Refused(e.error_code()),
            Ok(AppendCheck::Duplicate(m)) => Outcome::Duplicate(m.first_offset.0, m.last_offset.0),
            Ok(AppendCheck::New(staged)) => {
                let first = self.log_end;
                let mut next = first;
                for mut r in raws {
                    batch::assign_offset(&mut r, next, LeaderEpoch(0));
                    let h = batch::validate_batch(&r).unwrap();
                    next = h.next_offset();
                    self.written.push(h);
                    self.follower.apply_replicated(&h);
                }
                self.leader.commit(staged, first, Offset(next.0 - 1), -1);
                self.log_end = next;
                Outcome::Appended(first.0, next.0 - 1)
            }
        }
    }

    fn one(&mut self, epoch: i16, seq: i32, count: usize) -> Outcome {
        self.produce(PID, &[(epoch, seq, count, 1_000)])
    }
}

/// Same producers and map end: what leader and follower must agree on.
fn same_state(a: &ProducerStateManager, b: &ProducerStateManager) -> bool {
    a.map_end_offset() == b.map_end_offset() && a.producers().eq(b.producers())
}

/// What a check answers, without the staged append's private version.
fn check_kind(state: &ProducerStateManager, h: &BatchHeader) -> Outcome {
    match state.check_leader_append(h) {
        Err(e) => Outcome::Refused(e.error_code()),
        Ok(AppendCheck::Duplicate(m)) => Outcome::Duplicate(m.first_offset.0, m.last_offset.0),
        Ok(AppendCheck::New(s)) => Outcome::Appended(-1, s.offset_count()),
    }
}

use Outcome::{Appended, Duplicate, Refused};
const OOO: Outcome = Refused(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
const FENCED: Outcome = Refused(ErrorCode::INVALID_PRODUCER_EPOCH);

/// Table: appends that set up the state (each must be appended), then a probe and its outcome.
#[test]
fn kip98_sequence_and_epoch_rules() {
    type Batch = (i16, i32, usize);
    let five: &[Batch] = &[(0, 0, 2), (0, 2, 2), (0, 4, 2), (0, 6, 2), (0, 8, 2)];
    let six: &[Batch] = &[
        (0, 0, 2),
        (0, 2, 2),
        (0, 4, 2),
        (0, 6, 2),
        (0, 8, 2),
        (0, 10, 2),
    ];
    let cases: &[(&str, &[Batch], Batch, Outcome)] = &[
        (
            "KIP-98: a new producer's first batch at sequence 0 is appended",
            &[],
            (0, 0, 3),
            Appended(0, 2),
        ),
        (
            "KIP-98: the next batch in sequence is appended",
            &[(0, 0, 3)],
            (0, 3, 2),
            Appended(3, 4),
        ),
        (
            "KIP-98: a retry of the last batch answers its offsets",
            five,
            (0, 8, 2),
            Duplicate(8, 9),
        ),
        (
            "KIP-98: a retry of the 2nd-last cached batch answers its offsets",
            five,
            (0, 6, 2),
            Duplicate(6, 7),
        ),
        (
            "KIP-98: a retry of the 3rd-last cached batch answers its offsets",
            five,
            (0, 4, 2),
            Duplicate(4, 5),
        ),
        (
            "KIP-98: a retry of the 4th-last cached batch answers its offsets",
            five,
            (0, 2, 2),
            Duplicate(2, 3),
        ),
        (
            "KIP-98: a retry of the oldest of 5 cached batches answers its offsets",
            five,
            (0, 0, 2),
            Duplicate(0, 1),
        ),
        (
            "KAFKA-5494: a retry older than the 5 cached batches is out of order",
            six,
            (0, 0, 2),
            OOO,
        ),
        (
            "findDuplicateBatch: the same first but another last sequence is no duplicate",
            &[(0, 0, 2)],
            (0, 0, 3),
            OOO,
        ),
        (
            "KIP-98: a gap in the sequence is out of order",
            &[(0, 0, 1)],
            (0, 2, 1),
            OOO,
        ),
        (
            "KIP-98: a sequence behind the last, not cached, is out of order",
            &[(0, 0, 3)],
            (0, 1, 1),
            OOO,
        ),
        (
            "KIP-98: an older epoch is INVALID_PRODUCER_EPOCH",
            &[(0, 0, 1), (1, 0, 1)],
            (0, 1, 1),
            FENCED,
        ),
        (
            "KIP-98: a retry from an older epoch is fenced, not a duplicate",
            &[(0, 0, 1), (1, 0, 1)],
            (0, 0, 1),
            FENCED,
        ),
        (
            "KIP-360: a new epoch starting at 0 is appended",
            &[(0, 0, 3)],
            (1, 0, 1),
            Appended(3, 3),
        ),
        (
            "KIP-360: a new epoch not starting at 0 is out of order",
            &[(0, 0, 3)],
            (1, 3, 1),
            OOO,
        ),
        (
            "KIP-360: an unknown producer is accepted at any sequence",
            &[],
            (0, 42, 1),
            Appended(0, 0),
        ),
        (
            "KIP-360: an unknown producer is accepted at any epoch",
            &[],
            (9, 42, 1),
            Appended(0, 0),
        ),
        (
            "KIP-98: after an unknown producer's first batch its sequence is checked",
            &[(0, 42, 1)],
            (0, 44, 1),
            OOO,
        ),
        (
            "KIP-98: the sequence wraps from i32::MAX to 0",
            &[(0, i32::MAX - 1, 2)],
            (0, 0, 1),
            Appended(2, 2),
        ),
        (
            "KIP-98: a batch may span the wrap",
            &[(0, i32::MAX - 1, 1)],
            (0, i32::MAX, 3),
            Appended(1, 3),
        ),
        (
            "KIP-98: after a wrapping batch the sequence continues from it",
            &[(0, i32::MAX, 3)],
            (0, 2, 1),
            Appended(3, 3),
        ),
        (
            "KIP-98: a retry of a wrapping batch answers its offsets",
            &[(0, i32::MAX, 3)],
            (0, i32::MAX, 3),
            Duplicate(0, 2),
        ),
        (
            "KIP-98: i32::MAX is not followed by i32::MAX + 1 in i64",
            &[(0, i32::MAX, 1)],
            (0, 1, 1),
            OOO,
        ),
        (
            "LogValidator: a negative base sequence is INVALID_RECORD",
            &[(0, 0, 1)],
            (0, -1, 1),
            Refused(ErrorCode::INVALID_RECORD),
        ),
    ];
    for (name, setup, probe, expected) in cases {
        let mut p = Pair::new();
        for &(e, s, c) in *setup {
            assert!(
                matches!(p.one(e, s, c), Appended(..)),
                "{name}: setup batch {:?} was not appended",
                (e, s, c)
            );
        }
        let (e, s, c) = *probe;
        assert_eq!(p.one(e, s, c), *expected, "{name}");
        assert!(
            same_state(&p.leader, &p.follower),
            "{name}: follower diverged"
        );
    }
}

#[test]
fn kip98_a_refused_or_duplicate_batch_changes_nothing() {
    let mut p = Pair::new();
    p.one(0, 0, 2);
    let before = p.leader.clone();
    assert_eq!(p.one(0, 5, 1), OOO);
    assert_eq!(p.one(0, 0, 2), Duplicate(0, 1));
    assert!(same_state(&p.leader, &before));
    assert_eq!(p.log_end, Offset(2));
}

#[test]
fn kip98_batches_of_one_request_are_checked_in_order() {
    let mut p = Pair::new();
    assert_eq!(
        p.produce(PID, &[(0, 0, 2, 5), (0, 2, 3, 6)]),
        Appended(0, 4)
    );
    let e = p.leader.entry(ProducerId(PID)).unwrap();
    assert_eq!(e.batches().len(), 2);
    assert_eq!(e.last_seq(), Sequence(4));
    assert_eq!(e.last_timestamp_ms(), 6);
    // A gap in the second batch refuses the whole request; nothing is staged.
    assert_eq!(p.produce(PID, &[(0, 5, 1, 7), (0, 7, 1, 7)]), OOO);
    assert_eq!(p.leader.map_end_offset(), Offset(5));
    // A duplicate anywhere answers for the whole request (UnifiedLog returns at the first one).
    assert_eq!(
        p.produce(PID, &[(0, 5, 1, 7), (0, 2, 3, 6)]),
        Duplicate(2, 4)
    );
    assert_eq!(p.log_end, Offset(5));
    // KIP-360 as Kafka has it: an unknown producer's whole first request is accepted, gaps and
    // all, since checkSequence compares against the committed entry's NO_PRODUCER_EPOCH.
    assert_eq!(
        p.produce(99, &[(0, 42, 1, 7), (0, 50, 1, 7)]),
        Appended(5, 6)
    );
    assert_eq!(p.produce(99, &[(0, 52, 1, 7)]), OOO);
}

#[test]
fn kip98_batches_without_producer_only_take_offsets() {
    let mut s = ProducerStateManager::new(DAY);
    let plain = BatchHeader::parse(&batch::build_batch(&[(b"a", None), (b"b", None)], 1)).unwrap();
    let idem = header(PID, 0, 0, 1);
    let AppendCheck::New(staged) = s.check_leader_batches(&[plain, idem, plain]).unwrap() else {
        panic!("appended");
    };
    assert_eq!(staged.offset_count(), 5);
    s.commit(staged, Offset(10), Offset(14), -1);
    assert_eq!(s.map_end_offset(), Offset(15));
    let m = *s.entry(ProducerId(PID)).unwrap().batches().next().unwrap();
    assert_eq!((m.first_offset, m.last_offset), (Offset(12), Offset(12)));
}

#[test]
fn kip98_log_append_time_is_the_batch_timestamp() {
    let mut s = ProducerStateManager::new(DAY);
    let AppendCheck::New(staged) = s.check_leader_append(&header(PID, 0, 0, 1)).unwrap() else {
        panic!("appended");
    };
    s.commit(staged, Offset(0), Offset(0), 77);
    let AppendCheck::Duplicate(m) = s.check_leader_append(&header(PID, 0, 0, 1)).unwrap() else {
        panic!("duplicate");
    };
    assert_eq!(m.timestamp_ms, 77);
    assert_eq!(s.entry(ProducerId(PID)).unwrap().last_timestamp_ms(), 77);
}

#[test]
fn transactional_batches_are_refused_for_now() {
    let mut r = raw(PID, 0, 0, 1, 0);
    r[22] |= 1 << 4;
    let h = BatchHeader::parse(&r).unwrap();
    let s = ProducerStateManager::new(DAY);
    assert_eq!(
        s.check_leader_append(&h).unwrap_err().error_code(),
        ErrorCode::INVALID_RECORD
    );
}

#[test]
fn producer_id_expiration_ms_removes_idle_producers() {
    let mut p = Pair::new();
    p.leader = ProducerStateManager::new(100);
    assert_eq!(p.produce(PID, &[(0, 0, 1, 1_000)]), Appended(0, 0));
    assert_eq!(p.leader.remove_expired(1_099), 0);
    assert!(p.leader.entry(ProducerId(PID)).is_some());
    assert_eq!(p.leader.remove_expired(1_100), 1);
    assert!(p.leader.entry(ProducerId(PID)).is_none());
    // Expired is unknown (KIP-360): any sequence is accepted again, and then checked.
    assert_eq!(p.produce(PID, &[(0, 9, 1, 2_000)]), Appended(1, 1));
    assert_eq!(p.produce(PID, &[(0, 9, 1, 2_000)]), Duplicate(1, 1));
    assert_eq!(p.produce(PID, &[(0, 11, 1, 2_000)]), OOO);
}

#[test]
fn kafka_7190_retention_keeps_producers() {
    let mut p = Pair::new();
    p.one(0, 0, 3);
    p.leader.on_log_start_moved(Offset(100));
    assert_eq!(p.leader.map_end_offset(), Offset(100));
    p.log_end = Offset(100);
    // The producer is still known: its retry is a duplicate and a gap is out of order.
    assert_eq!(p.one(0, 0, 3), Duplicate(0, 2));
    assert_eq!(p.one(0, 4, 1), OOO);
    assert_eq!(p.one(0, 3, 1), Appended(100, 100));
}

#[test]
fn kip101_truncation_below_no_cached_batch_is_exact() {
    let mut p = Pair::new();
    p.one(0, 0, 3);
    p.log_end = Offset(10);
    p.leader.on_log_start_moved(Offset(10));
    assert_eq!(p.leader.truncate_to(Offset(20)), Truncation::Exact);
    assert_eq!(p.leader.truncate_to(Offset(5)), Truncation::Exact);
    assert_eq!(p.leader.map_end_offset(), Offset(5));
    assert!(!p.leader.rebuild_needed());
}

/// Truncation that removes cached batches needs a rebuild; a rebuild from a snapshot plus the
/// surviving tail gives the state the truncated log would have produced from scratch.
#[test]
fn kip101_truncation_then_rebuild_from_snapshot_and_tail() {
    let mut p = Pair::new();
    for i in 0..4 {
        p.one(0, i * 2, 2);
    }
    let snap = p.leader.snapshot(); // covers offsets < 8
    for i in 4..9 {
        p.one(0, i * 2, 2);
    }
    p.produce(8, &[(3, 0, 1, 1_000)]);
    assert_eq!(p.leader.truncate_to(Offset(12)), Truncation::RebuildNeeded);
    assert!(p.leader.rebuild_needed());
    let (mut rebuilt, from) = ProducerStateManager::load_snapshot(&snap, DAY, 1_000).unwrap();
    assert_eq!(from, Offset(8));
    let mut scratch = ProducerStateManager::new(DAY);
    for h in p.written.iter().filter(|h| h.last_offset() < Offset(12)) {
        // Replaying from the log start is harmless: batches below the snapshot are skipped.
        rebuilt.apply_replicated(h);
        scratch.apply_replicated(h);
    }
    assert!(same_state(&rebuilt, &scratch));
    assert_eq!(rebuilt.map_end_offset(), Offset(12));
    // The rebuilt leader deduplicates the surviving batches and accepts the cut ones anew.
    assert_eq!(
        check_kind(&rebuilt, &header(PID, 0, 10, 2)),
        Duplicate(10, 11)
    );
    assert_eq!(
        check_kind(&rebuilt, &header(PID, 0, 12, 2)),
        Appended(-1, 2)
    );
    assert!(rebuilt.entry(ProducerId(8)).is_none());
}

#[test]
#[should_panic(expected = "requires a rebuild")]
fn a_state_that_needs_a_rebuild_refuses_to_check() {
    let mut p = Pair::new();
    p.one(0, 0, 1);
    assert_eq!(p.leader.truncate_to(Offset(0)), Truncation::RebuildNeeded);
    let _ = p.leader.check_leader_append(&header(PID, 0, 1, 1));
}

#[test]
#[should_panic(expected = "changed between check and commit")]
fn a_commit_after_another_change_is_a_bug() {
    let mut s = ProducerStateManager::new(DAY);
    let AppendCheck::New(a) = s.check_leader_append(&header(PID, 0, 0, 1)).unwrap() else {
        panic!("appended");
    };
    let AppendCheck::New(b) = s.check_leader_append(&header(PID, 0, 0, 1)).unwrap() else {
        panic!("appended");
    };
    s.commit(a, Offset(0), Offset(0), -1);
    s.commit(b, Offset(1), Offset(1), -1);
}

/// Producer 7 with three two-record batches at offsets 0..6 (sequences 0..6), timestamps 1_000.
fn three_batches() -> Pair {
    let mut p = Pair::new();
    for seq in [0, 2, 4] {
        assert_eq!(
            p.one(0, seq, 2),
            Appended(i64::from(seq), i64::from(seq) + 1)
        );
    }
    p
}

fn entry_mut(state: &mut ProducerStateManager, pid: i64) -> &mut ProducerStateEntry {
    state
        .producers
        .get_mut(&ProducerId(pid))
        .expect("a producer")
}

/// What the rules build holds the asserted invariants, leader and follower alike: epoch bumps,
/// eviction past five batches, a KIP-360 sequence gap inside one request (which is why
/// contiguous sequences are not asserted), a snapshot round trip, expiry.
#[test]
fn states_the_rules_build_hold_the_invariants() {
    let mut p = three_batches();
    for seq in [6, 8, 10, 12] {
        p.one(0, seq, 2);
    }
    p.one(1, 0, 1);
    assert_eq!(
        p.produce(99, &[(0, 42, 1, 7), (0, 50, 1, 7)]),
        Appended(15, 16)
    );
    let gap: Vec<_> = p
        .leader
        .entry(ProducerId(99))
        .expect("99")
        .batches()
        .copied()
        .collect();
    assert!(!gap[0].last_seq.is_followed_by(gap[1].first_seq), "{gap:?}");
    for state in [&p.leader, &p.follower] {
        state.check_invariants();
    }
    let (loaded, _) = ProducerStateManager::load_snapshot(&p.leader.snapshot(), DAY, 0).unwrap();
    loaded.check_invariants();
    assert_eq!(p.leader.remove_expired(1_000 + DAY), 2);
    p.leader.check_invariants();
}

#[test]
#[should_panic(
    expected = "producer 7: cached batches in strictly increasing offset order: \
                           BatchMetadata { first_seq: Sequence(2), last_seq: Sequence(3), \
                           first_offset: Offset(2), last_offset: Offset(3), timestamp_ms: 1000 \
                           } then BatchMetadata { first_seq: Sequence(0)"
)]
fn cached_batches_out_of_offset_order_are_caught() {
    let mut p = three_batches();
    entry_mut(&mut p.leader, PID).batches.swap(0, 1);
    p.leader.check_invariants();
}

/// Each invariant, broken by hand in a sound state, is caught with its own message.
#[test]
fn every_producer_invariant_is_caught() {
    type Breakage = (&'static str, fn(&mut ProducerStateManager));
    let breakages: [Breakage; 7] = [
        ("producer 7: at most 5 cached batches, has 6", |s| {
            let e = entry_mut(s, PID);
            for _ in 0..3 {
                let last = *e.batches.back().expect("a batch");
                e.batches.push_back(last);
            }
        }),
        ("lies in [0, map end 5)", |s| s.map_end_offset = Offset(5)),
        ("ends at or after it starts", |s| {
            entry_mut(s, PID).batches[0].first_offset = Offset(2);
        }),
        ("matches its offset range", |s| {
            entry_mut(s, PID).batches[1].last_seq = Sequence(9);
        }),
        ("the last timestamp is the newest batch's", |s| {
            entry_mut(s, PID).last_timestamp_ms = 5;
        }),
        ("producer id -3 is not negative", |s| {
            let e = entry_mut(s, PID).clone();
            s.producers.insert(ProducerId(-3), e);
        }),
        ("the map end offset (-1) and", |s| {
            s.map_end_offset = Offset(-1)
        }),
    ];
    for (expected, break_it) in breakages {
        let mut state = three_batches().leader;
        state.check_invariants();
        break_it(&mut state);
        let message = crate::log::tests::panic_message(|| state.check_invariants());
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
}

#[test]
fn snapshot_round_trip_and_file_name() {
    let mut p = Pair::new();
    for i in 0..7 {
        p.one(0, i, 1);
    }
    p.produce(3, &[(2, 100, 4, 5_000)]);
    let bytes = p.leader.snapshot();
    let (loaded, offset) = ProducerStateManager::load_snapshot(&bytes, DAY, 5_000).unwrap();
    assert_eq!(offset, Offset(11));
    assert!(same_state(&loaded, &p.leader));
    assert_eq!(loaded.entry(ProducerId(PID)).unwrap().batches().len(), 5);
    assert_eq!(loaded.snapshot(), bytes);
    assert_eq!(snapshot_file_name(offset), "00000000000000000011.snapshot");
    // Empty state: header only.
    let empty = ProducerStateManager::new(DAY).snapshot();
    assert_eq!(empty.len(), 18);
    assert!(ProducerStateManager::load_snapshot(&empty, DAY, 0).is_ok());
}

#[test]
fn snapshot_load_drops_expired_producers() {
    let mut p = Pair::new();
    p.produce(1, &[(0, 0, 1, 1_000)]);
    p.produce(2, &[(0, 0, 1, 5_000)]);
    let (loaded, _) =
        ProducerStateManager::load_snapshot(&p.leader.snapshot(), 2_000, 3_000).unwrap();
    assert!(loaded.entry(ProducerId(1)).is_none());
    assert!(loaded.entry(ProducerId(2)).is_some());
}

/// A snapshot whose CRC is recomputed after an edit, to reach the checks behind the CRC.
fn with_crc(mut b: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&b[6..]);
    b[2..6].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn snapshot_checks_behind_the_crc() {
    let mut p = Pair::new();
    p.one(0, 0, 2);
    p.one(0, 2, 2);
    let good = p.leader.snapshot();
    // (what, where, new bytes, the error it must give)
    let edits: &[(usize, &[u8], &str)] = &[
        (0, &[0, 2], "unknown version"),
        (6, &[0x80], "negative map end offset"),
        (
            6,
            &[0, 0, 0, 0, 0, 0, 0, 3],
            "batch offsets outside the snapshot",
        ),
        (14, &[0, 0, 0, 2], "truncated"),
        (14, &[0, 0, 0, 9], "more producers than bytes"),
        (
            18,
            &[0xff],
            "producer ids not positive and strictly increasing",
        ),
        (36, &[6], "too many batches for a producer"),
        (
            37 + 4,
            &[0, 0, 0, 9],
            "batch sequence range does not match its offsets",
        ),
        (28, &[1], "last timestamp is not the last batch's"),
        // The second batch moved to offsets 1..=2, overlapping the first (0..=1).
        (
            37 + 32 + 8,
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2],
            "batches not in offset order",
        ),
    ];
    for (at, bytes, expected) in edits {
        let mut b = good.clone();
        b[*at..*at + bytes.len()].copy_from_slice(bytes);
        assert_eq!(
            ProducerStateManager::load_snapshot(&with_crc(b), DAY, 0).unwrap_err(),
            ProducerStateError::CorruptSnapshot(expected),
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(ProducerStateManager::load_snapshot(&with_crc(trailing), DAY, 0).is_err());
    assert!(ProducerStateManager::load_snapshot(&good[..good.len() - 1], DAY, 0).is_err());
    assert_eq!(
        ProducerStateManager::load_snapshot(&good[..5], DAY, 0)
            .unwrap_err()
            .error_code(),
        ErrorCode::KAFKA_STORAGE_ERROR
    );
}

/// One produce request in a random history: a producer, its epoch, how its sequence relates to
/// the producer's last one, the batch sizes, and a timestamp.
#[derive(Debug, Clone)]
struct Step {
    pid: i64,
    epoch: i16,
    seq: SeqChoice,
    counts: Vec<usize>,
    ts: i64,
}

#[derive(Debug, Clone)]
enum SeqChoice {
    Next,
    RetryOfRecent(usize),
    Gap(i32),
    Zero,
    Any(i32),
}

fn step() -> impl Strategy<Value = Step> {
    let seq = prop_oneof![
        6 => Just(SeqChoice::Next),
        2 => (0usize..7).prop_map(SeqChoice::RetryOfRecent),
        1 => (1i32..4).prop_map(SeqChoice::Gap),
        1 => Just(SeqChoice::Zero),
        1 => prop_oneof![Just(i32::MAX - 2), 0..i32::MAX].prop_map(SeqChoice::Any),
    ];
    (
        0i64..3,
        prop_oneof![8 => Just(0i16), 2 => 0i16..3],
        seq,
        proptest::collection::vec(1usize..4, 1..3),
        0i64..10_000,
    )
        .prop_map(|(pid, epoch, seq, counts, ts)| Step {
            pid,
            epoch,
            seq,
            counts,
            ts,
        })
}

proptest! {
    /// KIP-98 replication: a follower applying what the leader committed ends with the leader's
    /// state, so after a failover it answers every retry as the old leader would; the snapshot
    /// round-trips that state.
    #[test]
    fn follower_rebuilds_the_leaders_state(steps in proptest::collection::vec(step(), 1..60)) {
        let mut p = Pair::new();
        // Per producer: the sequence ranges of its batches, to aim retries and gaps.
        let mut sent: BTreeMap<i64, Vec<(i32, usize)>> = BTreeMap::new();
        for s in &steps {
            let history = sent.entry(s.pid).or_default();
            let next = history.last().map_or(0, |&(seq, n)| Sequence(seq).increment(n as i32).0);
            let (first, counts) = match s.seq {
                SeqChoice::Next => (next, s.counts.clone()),
                SeqChoice::RetryOfRecent(k) if !history.is_empty() => {
                    let (seq, n) = history[history.len() - 1 - k % history.len()];
                    (seq, vec![n])
                }
                SeqChoice::RetryOfRecent(_) => (0, s.counts.clone()),
                SeqChoice::Gap(g) => (Sequence(next).increment(g).0, s.counts.clone()),
                SeqChoice::Zero => (0, s.counts.clone()),
                SeqChoice::Any(seq) => (seq, s.counts.clone()),
            };
            let mut batches = Vec::new();
            let mut seq = Sequence(first);
            for &n in &counts {
                batches.push((s.epoch, seq.0, n, s.ts));
                seq = seq.increment(n as i32);
            }
            if let Appended(..) = p.produce(s.pid, &batches) {
                let history = sent.entry(s.pid).or_default();
                let mut seq = Sequence(first);
                for &n in &counts {
                    history.push((seq.0, n));
                    seq = seq.increment(n as i32);
                }
            }
            prop_assert!(same_state(&p.leader, &p.follower));
            p.leader.check_invariants();
            p.follower.check_invariants();
        }
        // The follower, promoted, answers every probe as the leader does.
        for pid in 0..3 {
            for seq in [0, 1, 2, 3, 5, 8, i32::MAX - 2] {
                for epoch in 0..3 {
                    let h = header(pid, epoch, seq, 1 + (seq as usize % 2));
                    prop_assert_eq!(check_kind(&p.leader, &h), check_kind(&p.follower, &h));
                }
            }
        }
        let (loaded, offset) = ProducerStateManager::load_snapshot(&p.leader.snapshot(), DAY, 0).unwrap();
        prop_assert_eq!(offset, p.log_end);
        prop_assert!(same_state(&loaded, &p.leader));
        loaded.check_invariants();
        // Recovery from scratch: replaying the whole log gives the same state.
        let mut recovered = ProducerStateManager::new(DAY);
        for h in &p.written {
            recovered.apply_replicated(h);
        }
        prop_assert!(same_state(&recovered, &p.leader));
    }

    /// Loading arbitrary bytes never panics, and whatever it accepts holds the asserted
    /// invariants.
    #[test]
    fn snapshot_load_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok((state, _)) = ProducerStateManager::load_snapshot(&bytes, DAY, 0) {
            state.check_invariants();
        }
        // Past the CRC too.
        if bytes.len() >= 6 {
            let mut b = bytes.clone();
            b[0..2].copy_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
            if let Ok((state, _)) = ProducerStateManager::load_snapshot(&with_crc(b), DAY, 0) {
                state.check_invariants();
            }
        }
    }

    #[test]
    fn any_bit_flip_in_a_snapshot_is_refused(idx in 0usize..1000, bit in 0u8..8) {
        let mut p = Pair::new();
        p.one(0, 0, 2);
        p.produce(9, &[(1, 5, 3, 44)]);
        let mut b = p.leader.snapshot();
        let idx = idx % b.len();
        b[idx] ^= 1 << bit;
        prop_assert!(ProducerStateManager::load_snapshot(&b, DAY, 0).is_err());
    }
}
