//! The sequencer's rules, table by table, then a randomized run against a model broker that
//! deduplicates as Kafka does (KIP-98 with KIP-360's unknown-producer rule) while the network
//! loses, delays and replays requests: every acknowledged batch must be in the log exactly once
//! at the acknowledged offset, no batch twice, nothing failed in the log.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const A: i32 = 1;
const B: i32 = 2;

fn config(idempotent: bool) -> SequencerConfig {
    SequencerConfig {
        idempotent,
        max_in_flight: 5,
        retries: u32::MAX,
        retry_backoff_ms: 100,
        delivery_timeout_ms: 10_000,
        reset_policy: ResetPolicy::default(),
    }
}

fn id(pid: i64, epoch: i16) -> ProducerIdentity {
    ProducerIdentity {
        producer_id: ProducerId(pid),
        epoch: ProducerEpoch(epoch),
    }
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn ok(offset: i64) -> AttemptResult {
    AttemptResult::Answered {
        code: ErrorCode::NONE,
        base_offset: offset,
    }
}

fn err(code: ErrorCode) -> AttemptResult {
    AttemptResult::Answered {
        code,
        base_offset: -1,
    }
}

/// An idempotent sequencer with identity (7, 0) whose first batch (one record, sequence 0) was
/// acknowledged, and `n` batches of `records` records queued.
fn started(n: usize, records: i32) -> (Sequencer, Vec<BatchId>) {
    let mut s = Sequencer::new(config(true));
    let first = s.enqueue(ms(0), 1);
    assert!(s.needs_identity(ms(0)));
    s.set_identity(id(7, 0));
    let o = s.poll_send(ms(0), A).expect("the first batch goes");
    s.on_result(ms(0), &o, ok(0));
    assert_eq!(s.poll_completion(), Some((first, acked(0, false))));
    let ids = (0..n).map(|_| s.enqueue(ms(0), records)).collect();
    (s, ids)
}

fn send_all(s: &mut Sequencer, now: Instant, broker: i32) -> Vec<SendOrder> {
    std::iter::from_fn(|| s.poll_send(now, broker)).collect()
}

fn seqs(orders: &[SendOrder]) -> Vec<(i16, i32)> {
    orders
        .iter()
        .map(|o| {
            let (id, seq) = o.stamp.expect("idempotent sends are stamped");
            (id.epoch.0, seq.0)
        })
        .collect()
}

fn completions(s: &mut Sequencer) -> Vec<(BatchId, ProduceOutcome)> {
    std::iter::from_fn(|| s.poll_completion()).collect()
}

fn acked(offset: i64, after_indefinite: bool) -> ProduceOutcome {
    ProduceOutcome::Ok {
        base_offset: offset,
        after_indefinite,
        possible_duplicate: false,
    }
}

#[test]
fn only_one_batch_goes_until_the_broker_knows_the_producer() {
    let mut s = Sequencer::new(config(true));
    let ids: Vec<BatchId> = (0..3).map(|_| s.enqueue(ms(0), 1)).collect();
    assert!(s.poll_send(ms(0), A).is_none(), "no identity yet");
    s.set_identity(id(7, 0));
    let first = send_all(&mut s, ms(0), A);
    assert_eq!(seqs(&first), vec![(0, 0)]);
    // Refused before the append: a second batch pipelined behind it could have been written
    // first by a broker that does not know the producer.
    s.on_result(ms(1), &first[0], err(ErrorCode::NOT_ENOUGH_REPLICAS));
    let again = send_all(&mut s, ms(200), A);
    assert_eq!(seqs(&again), vec![(0, 0)]);
    s.on_result(ms(201), &again[0], ok(0));
    assert_eq!(seqs(&send_all(&mut s, ms(201), A)), vec![(0, 1), (0, 2)]);
    assert_eq!(completions(&mut s), vec![(ids[0], acked(0, false))]);
}

#[test]
fn sequences_follow_record_counts_and_at_most_five_are_unresolved() {
    let (mut s, ids) = started(7, 3);
    let orders = send_all(&mut s, ms(0), A);
    assert_eq!(
        seqs(&orders),
        vec![(0, 1), (0, 4), (0, 7), (0, 10), (0, 13)],
        "five in flight, sequences advance by record count"
    );
    // The second batch is acknowledged first: the window still starts at the first.
    s.on_result(ms(1), &orders[1], ok(3));
    assert!(
        send_all(&mut s, ms(1), A).is_empty(),
        "the window holds five"
    );
    s.on_result(ms(2), &orders[0], ok(0));
    let more = send_all(&mut s, ms(2), A);
    assert_eq!(seqs(&more), vec![(0, 16), (0, 19)]);
    let done = completions(&mut s);
    assert_eq!(
        done,
        vec![(ids[1], acked(3, false)), (ids[0], acked(0, false))]
    );
}

#[test]
fn a_retry_keeps_its_sequence_and_goes_to_the_new_leader_only_after_the_old_one_answered() {
    let (mut s, ids) = started(3, 1);
    let first = send_all(&mut s, ms(0), A);
    assert_eq!(first.len(), 3);
    // Leadership moved: nothing goes to B while A's attempts are unanswered.
    assert!(s.poll_send(ms(0), B).is_none());
    s.on_result(
        ms(10),
        &first[0],
        AttemptResult::NoAnswer("timed out".into()),
    );
    s.on_result(ms(10), &first[1], err(ErrorCode::NOT_LEADER_OR_FOLLOWER));
    assert!(
        s.poll_send(ms(50), B).is_none(),
        "an attempt is still in flight"
    );
    s.on_result(
        ms(20),
        &first[2],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    assert!(s.poll_send(ms(50), B).is_none(), "backing off");
    let retries = send_all(&mut s, ms(200), B);
    assert_eq!(
        seqs(&retries),
        seqs(&first),
        "go-back-N: the same identity and sequences, from the first unacknowledged batch"
    );
    assert!(retries.iter().all(|o| o.attempt == 2));
    // B holds the first two (replicated from A) and answers with their original offsets.
    s.on_result(ms(201), &retries[0], ok(40));
    s.on_result(ms(201), &retries[1], ok(41));
    s.on_result(ms(201), &retries[2], ok(42));
    assert_eq!(
        completions(&mut s),
        vec![
            (ids[0], acked(40, true)),
            (ids[1], acked(41, true)),
            (ids[2], acked(42, false)),
        ],
        "after indefinite attempts, but not possible duplicates"
    );
    assert_eq!(s.stats().resets, 0);
    assert!(s.is_idle());
}

#[test]
fn out_of_order_behind_a_failed_batch_is_only_retried() {
    let (mut s, _) = started(2, 1);
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(1), &o[0], err(ErrorCode::NOT_ENOUGH_REPLICAS));
    s.on_result(ms(1), &o[1], err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
    let again = send_all(&mut s, ms(200), A);
    assert_eq!(seqs(&again), vec![(0, 1), (0, 2)]);
    assert_eq!(s.stats().resets, 0);
}

/// Cluster seed 505772: the batch ahead is refused `NOT_ENOUGH_REPLICAS` after its delivery
/// deadline, so it fails and leaves a gap; the batch behind it, pipelined in the same round, is
/// then rightly refused `OUT_OF_ORDER_SEQUENCE_NUMBER` as the first unacknowledged batch. That
/// refusal follows our own gap: a reset, not a broker that lost our sequence.
#[test]
fn out_of_order_behind_a_batch_that_expired_is_not_a_sequence_refusal() {
    let (mut s, ids) = started(2, 1);
    let o = send_all(&mut s, ms(0), A);
    assert_eq!(seqs(&o), vec![(0, 1), (0, 2)]);
    s.on_result(ms(10_001), &o[0], err(ErrorCode::NOT_ENOUGH_REPLICAS));
    s.on_result(
        ms(10_001),
        &o[1],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    assert_eq!(
        s.stats().sequence_refusals,
        0,
        "the refusal follows our own gap"
    );
    assert_eq!(s.stats().resets, 1, "the gap resets the sequence");
    assert_eq!(
        completions(&mut s),
        vec![
            (
                ids[0],
                ProduceOutcome::Failed(ErrorCode::NOT_ENOUGH_REPLICAS)
            ),
            (
                ids[1],
                ProduceOutcome::Failed(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
            ),
        ],
        "both expired: the second one's last refusal is reported"
    );
    // Under the bumped epoch a refusal of the first batch counts again.
    let late = s.enqueue(ms(10_001), 1);
    let o = send_all(&mut s, ms(10_101), A);
    assert_eq!(seqs(&o), vec![(1, 0)]);
    s.on_result(ms(10_102), &o[0], ok(5));
    assert_eq!(completions(&mut s), vec![(late, acked(5, false))]);
    s.enqueue(ms(10_102), 1);
    let o = send_all(&mut s, ms(10_102), A);
    s.on_result(
        ms(10_103),
        &o[0],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    assert_eq!(s.stats().sequence_refusals, 1);
}

#[test]
fn out_of_order_on_the_first_batch_bumps_the_epoch_and_never_resends_a_possibly_written_batch() {
    let (mut s, ids) = started(3, 2);
    let o = send_all(&mut s, ms(0), A);
    // Batch 0 was possibly written by an attempt whose answer was lost...
    s.on_result(
        ms(1),
        &o[0],
        AttemptResult::NoAnswer("connection reset".into()),
    );
    s.on_result(
        ms(1),
        &o[1],
        AttemptResult::NoAnswer("connection reset".into()),
    );
    s.on_result(
        ms(1),
        &o[2],
        AttemptResult::NoAnswer("connection reset".into()),
    );
    let o2 = send_all(&mut s, ms(200), B);
    assert_eq!(seqs(&o2), vec![(0, 1), (0, 3), (0, 5)]);
    // ...and B answers that it does not continue our sequence (it lost the state).
    s.on_result(
        ms(201),
        &o2[0],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    s.on_result(
        ms(201),
        &o2[1],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    s.on_result(
        ms(201),
        &o2[2],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    assert_eq!(s.stats().resets, 1);
    let done = completions(&mut s);
    assert_eq!(done.len(), 3, "every batch was possibly written: {done:?}");
    assert!(
        done.iter()
            .all(|(_, o)| matches!(o, ProduceOutcome::Indefinite(_)))
    );
    assert_eq!(done[0].0, ids[0]);
    assert_eq!(s.identity(), Some(id(7, 1)), "the epoch is bumped locally");
}

/// librdkafka's KIP-360 epoch bump (`rd_kafka_idemp_drain_epoch_bump`): after the in-flight
/// attempts drained, every unacknowledged batch, the possibly written ones too, goes again under
/// epoch + 1 with sequences from 0, and a possibly written one says it may be in the log twice.
#[test]
fn the_resend_policy_resends_possibly_written_batches_under_the_bumped_epoch_from_sequence_zero() {
    let mut s = Sequencer::new(SequencerConfig {
        reset_policy: ResetPolicy::ResendUnderNewEpoch,
        ..config(true)
    });
    let first = s.enqueue(ms(0), 1);
    s.set_identity(id(7, 0));
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(0), &o[0], ok(0));
    assert_eq!(completions(&mut s), vec![(first, acked(0, false))]);
    let ids: Vec<BatchId> = (0..3).map(|_| s.enqueue(ms(0), 2)).collect();
    let o = send_all(&mut s, ms(0), A);
    assert_eq!(seqs(&o), vec![(0, 1), (0, 3), (0, 5)]);
    // The first is possibly written; the others come back out of order behind it.
    s.on_result(
        ms(1),
        &o[0],
        AttemptResult::NoAnswer("connection reset".into()),
    );
    s.on_result(ms(1), &o[1], err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
    s.on_result(ms(1), &o[2], err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
    assert_eq!(s.stats().sequence_refusals, 0, "behind an unresolved batch");
    // Its retry is refused out of order: the broker says it lost our sequence.
    let o2 = send_all(&mut s, ms(200), A);
    assert_eq!(seqs(&o2), vec![(0, 1), (0, 3), (0, 5)]);
    s.on_result(
        ms(201),
        &o2[0],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    assert_eq!(
        s.stats().resets,
        0,
        "a reset waits for every attempt in flight"
    );
    s.on_result(
        ms(201),
        &o2[1],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    s.on_result(
        ms(202),
        &o2[2],
        err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
    );
    assert_eq!(s.stats().resets, 1);
    assert_eq!(s.stats().sequence_refusals, 1);
    assert_eq!(s.stats().resent, 1, "only the first was possibly written");
    assert!(completions(&mut s).is_empty(), "nothing ends at the reset");
    assert_eq!(s.identity(), Some(id(7, 1)), "the epoch is bumped locally");
    // Epoch 1 from sequence 0, one batch until the broker knows the new epoch, in queue order.
    let o3 = send_all(&mut s, ms(400), A);
    assert_eq!(seqs(&o3), vec![(1, 0)]);
    assert_eq!(o3[0].batch, ids[0]);
    assert_eq!(o3[0].attempt, 3);
    s.on_result(ms(401), &o3[0], ok(10));
    let o4 = send_all(&mut s, ms(401), A);
    assert_eq!(seqs(&o4), vec![(1, 2), (1, 4)]);
    s.on_result(ms(402), &o4[0], ok(12));
    s.on_result(ms(402), &o4[1], ok(14));
    assert_eq!(
        completions(&mut s),
        vec![
            (
                ids[0],
                ProduceOutcome::Ok {
                    base_offset: 10,
                    after_indefinite: true,
                    possible_duplicate: true,
                }
            ),
            (ids[1], acked(12, false)),
            (ids[2], acked(14, false)),
        ],
        "the resent batch may also be in the log under epoch 0"
    );
    assert!(s.is_idle());
}

/// A fenced epoch is not bumped but replaced: librdkafka treats it as fatal for an idempotent
/// producer, so the resend policy does not resend possibly written batches under a fresh id.
#[test]
fn the_resend_policy_does_not_resend_under_a_fresh_producer_id() {
    let mut s = Sequencer::new(SequencerConfig {
        reset_policy: ResetPolicy::ResendUnderNewEpoch,
        ..config(true)
    });
    let b = s.enqueue(ms(0), 1);
    s.set_identity(id(7, 0));
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(1), &o[0], AttemptResult::NoAnswer("timed out".into()));
    let o = send_all(&mut s, ms(200), A);
    s.on_result(ms(201), &o[0], err(ErrorCode::INVALID_PRODUCER_EPOCH));
    assert_eq!(s.stats().resent, 0);
    assert_eq!(
        completions(&mut s),
        vec![(
            b,
            ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost("timed out".into()))
        )]
    );
    assert_eq!(s.identity(), None, "a fresh producer id is due");
}

#[test]
fn a_reset_resends_batches_never_written_from_sequence_zero_under_the_new_epoch() {
    let (mut s, ids) = started(3, 1);
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(1), &o[0], err(ErrorCode::UNKNOWN_PRODUCER_ID));
    s.on_result(ms(1), &o[1], err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
    s.on_result(ms(1), &o[2], err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
    assert_eq!(s.stats().resets, 1);
    assert!(
        completions(&mut s).is_empty(),
        "nothing was possibly written"
    );
    // The new epoch is unknown to the broker until its first batch is acknowledged.
    let o2 = send_all(&mut s, ms(200), A);
    assert_eq!(seqs(&o2), vec![(1, 0)]);
    s.on_result(ms(201), &o2[0], ok(1));
    let o3 = send_all(&mut s, ms(201), A);
    assert_eq!(seqs(&o3), vec![(1, 1), (1, 2)]);
    assert_eq!(completions(&mut s), vec![(ids[0], acked(1, false))]);
}

#[test]
fn a_fenced_epoch_takes_a_fresh_producer_id() {
    let (mut s, _) = started(1, 1);
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(1), &o[0], err(ErrorCode::INVALID_PRODUCER_EPOCH));
    assert_eq!(s.identity(), None);
    assert!(!s.needs_identity(ms(50)), "backing off");
    assert!(s.needs_identity(ms(200)));
    s.set_identity(id(8, 0));
    assert_eq!(seqs(&send_all(&mut s, ms(200), A)), vec![(0, 0)]);
    let exhausted = id(9, i16::MAX);
    assert_eq!(
        exhausted.bumped(),
        None,
        "an exhausted epoch also needs a fresh id"
    );
}

#[test]
fn a_duplicate_sequence_answer_is_an_acknowledgement_without_offset() {
    let (mut s, ids) = started(1, 1);
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(1), &o[0], err(ErrorCode::DUPLICATE_SEQUENCE_NUMBER));
    assert_eq!(completions(&mut s), vec![(ids[0], acked(-1, false))]);
}

#[test]
fn a_fatal_refusal_fails_the_batch_and_later_batches_start_over_under_a_new_epoch() {
    let (mut s, ids) = started(2, 1);
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(1), &o[0], err(ErrorCode::MESSAGE_TOO_LARGE));
    assert!(
        s.poll_send(ms(500), A).is_none(),
        "waits for the batch in flight"
    );
    s.on_result(ms(2), &o[1], err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
    assert_eq!(
        completions(&mut s),
        vec![(ids[0], ProduceOutcome::Failed(ErrorCode::MESSAGE_TOO_LARGE))]
    );
    assert_eq!(seqs(&send_all(&mut s, ms(500), A)), vec![(1, 0)]);
}

#[test]
fn the_delivery_timeout_fails_unsent_batches_and_keeps_possibly_written_ones_indefinite() {
    let (mut s, ids) = started(2, 1);
    let o = send_all(&mut s, ms(0), A);
    s.on_result(
        ms(5_000),
        &o[0],
        AttemptResult::NoAnswer("request timed out".into()),
    );
    s.on_result(ms(5_000), &o[1], err(ErrorCode::NOT_LEADER_OR_FOLLOWER));
    // No leader is found again; both batches expire.
    s.on_route_failed(ms(6_000), ErrorCode::LEADER_NOT_AVAILABLE);
    assert_eq!(s.next_deadline(ms(6_000)), Some(ms(6_100)));
    s.handle_timeout(ms(10_000));
    let done = completions(&mut s);
    assert_eq!(
        done,
        vec![
            (
                ids[0],
                ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost(
                    "request timed out".into()
                ))
            ),
            (
                ids[1],
                ProduceOutcome::Indefinite(IndefiniteReason::Broker(
                    ErrorCode::NOT_LEADER_OR_FOLLOWER
                ))
            ),
        ]
    );
    assert!(s.is_idle());
    // A batch never sent fails definitely, with the reason no leader was reached.
    let late = s.enqueue(ms(10_000), 1);
    s.on_route_failed(ms(10_000), ErrorCode::LEADER_NOT_AVAILABLE);
    s.handle_timeout(ms(20_000));
    assert_eq!(
        completions(&mut s),
        vec![(
            late,
            ProduceOutcome::Failed(ErrorCode::LEADER_NOT_AVAILABLE)
        )]
    );
    // The reset after the expired batches bumped the epoch; nothing was left to resend.
    assert_eq!(s.identity(), Some(id(7, 1)));
}

#[test]
fn a_producer_without_id_fails_its_batches_at_once() {
    let mut s = Sequencer::new(config(true));
    let b = s.enqueue(ms(0), 1);
    assert!(s.needs_identity(ms(0)));
    s.fail_unsequenced(ErrorCode::UNSUPPORTED_VERSION);
    assert_eq!(
        completions(&mut s),
        vec![(b, ProduceOutcome::Failed(ErrorCode::UNSUPPORTED_VERSION))]
    );
    assert!(s.is_idle());
}

#[test]
fn retries_zero_reports_the_first_failure() {
    let mut s = Sequencer::new(SequencerConfig {
        retries: 0,
        ..config(true)
    });
    let b = s.enqueue(ms(0), 1);
    s.set_identity(id(1, 0));
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(1), &o[0], err(ErrorCode::NOT_ENOUGH_REPLICAS));
    assert_eq!(
        completions(&mut s),
        vec![(b, ProduceOutcome::Failed(ErrorCode::NOT_ENOUGH_REPLICAS))]
    );
}

#[test]
fn without_idempotence_a_retry_after_an_indefinite_attempt_is_a_possible_duplicate() {
    let mut s = Sequencer::new(config(false));
    let b = s.enqueue(ms(0), 1);
    assert!(!s.needs_identity(ms(0)));
    let o = send_all(&mut s, ms(0), A);
    assert_eq!(o[0].stamp, None);
    s.on_result(ms(1), &o[0], err(ErrorCode::REQUEST_TIMED_OUT));
    let o = send_all(&mut s, ms(200), A);
    s.on_result(ms(201), &o[0], ok(9));
    assert_eq!(
        completions(&mut s),
        vec![(
            b,
            ProduceOutcome::Ok {
                base_offset: 9,
                after_indefinite: true,
                possible_duplicate: true
            }
        )]
    );
}

#[test]
fn acks_zero_is_indefinite() {
    let mut s = Sequencer::new(config(false));
    let b = s.enqueue(ms(0), 1);
    let o = send_all(&mut s, ms(0), A);
    s.on_result(ms(0), &o[0], AttemptResult::NoAcks);
    assert_eq!(
        completions(&mut s),
        vec![(b, ProduceOutcome::Indefinite(IndefiniteReason::NoAcks))]
    );
}

// ---- Randomized run against a model broker ----

/// What the model broker remembers of one producer id on the partition.
#[derive(Default)]
struct ModelProducer {
    epoch: i16,
    /// `(first_seq, last_seq, offset)` of the last five batches.
    batches: Vec<(i32, i32, i64)>,
}

/// One partition with Kafka's producer-state rules (the broker side of KIP-98 / KIP-360).
#[derive(Default)]
struct ModelBroker {
    log: Vec<BatchId>,
    producers: BTreeMap<i64, ModelProducer>,
}

impl ModelBroker {
    fn append(
        &mut self,
        batch: BatchId,
        stamp: (ProducerIdentity, Sequence),
        count: i32,
    ) -> AttemptResult {
        let (identity, seq) = stamp;
        let (pid, epoch, first) = (identity.producer_id.0, identity.epoch.0, seq.0);
        let last = first + count - 1;
        let p = self.producers.entry(pid).or_default();
        let known = !p.batches.is_empty();
        if known
            && epoch == p.epoch
            && let Some(&(_, _, offset)) = p.batches.iter().find(|b| b.0 == first && b.1 == last)
        {
            return ok(offset);
        }
        if known && epoch < p.epoch {
            return err(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        let in_sequence = if !known {
            true
        } else if epoch > p.epoch {
            first == 0
        } else {
            p.batches.last().is_some_and(|b| b.1 + 1 == first)
        };
        if !in_sequence {
            return err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
        }
        let offset = self.log.len() as i64;
        for _ in 0..count {
            self.log.push(batch);
        }
        if epoch != p.epoch {
            p.batches.clear();
        }
        p.epoch = epoch;
        p.batches.push((first, last, offset));
        if p.batches.len() > 5 {
            p.batches.remove(0);
        }
        ok(offset)
    }
}

/// One seed: batches queued over time, a leader that moves, and a network that answers, loses
/// requests, loses answers, or holds requests and delivers them much later.
fn run_seed(seed: u64) -> (usize, usize, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = Sequencer::new(SequencerConfig {
        max_in_flight: rng.random_range(1..=5),
        ..config(true)
    });
    let mut broker = ModelBroker::default();
    let mut counts: BTreeMap<BatchId, i32> = BTreeMap::new();
    let mut outcomes: BTreeMap<BatchId, ProduceOutcome> = BTreeMap::new();
    let mut in_flight: Vec<SendOrder> = Vec::new();
    let mut held: Vec<(SendOrder, i32)> = Vec::new();
    let mut leader = A;
    let mut now = 0u64;
    let mut outage_until = 0u64;
    let total = rng.random_range(5..40);
    let mut queued = 0;
    let mut next_pid = 100;
    let fault_rate = rng.random_range(0.0..0.5);
    for _step in 0..100_000 {
        now += rng.random_range(0..50);
        let t = ms(now);
        if queued < total && rng.random_bool(0.3) {
            let count = rng.random_range(1..4);
            let b = s.enqueue(t, count);
            counts.insert(b, count);
            queued += 1;
        }
        if rng.random_bool(0.02) {
            leader = if leader == A { B } else { A };
        }
        // Sometimes no leader for a while, longer than the delivery timeout at times.
        if now >= outage_until && rng.random_bool(0.002) {
            outage_until = now + rng.random_range(1_000..15_000);
        }
        s.handle_timeout(t);
        if s.needs_identity(t) {
            s.set_identity(id(next_pid, 0));
            next_pid += 1;
        }
        if now < outage_until {
            if s.wants_to_send(t) {
                s.on_route_failed(t, ErrorCode::LEADER_NOT_AVAILABLE);
            }
        } else {
            while let Some(o) = s.poll_send(t, leader) {
                in_flight.push(o);
            }
        }
        // Answer the oldest attempt in flight, or deliver a held one.
        if !held.is_empty() && rng.random_bool(0.05) {
            let (o, count) = held.remove(0);
            let _ = broker.append(o.batch, o.stamp.expect("stamped"), count);
        }
        if in_flight.is_empty() || rng.random_bool(0.3) {
            while let Some((b, outcome)) = s.poll_completion() {
                assert!(
                    outcomes.insert(b, outcome).is_none(),
                    "one outcome per batch"
                );
            }
            if queued == total && s.is_idle() {
                break;
            }
            continue;
        }
        let o = in_flight.remove(0);
        let count = counts[&o.batch];
        let stamp = o.stamp.expect("stamped");
        let result = if !rng.random_bool(fault_rate) {
            broker.append(o.batch, stamp, count)
        } else {
            match rng.random_range(0..6) {
                // Lost on the way: never arrives.
                0 => AttemptResult::NoAnswer("lost request".into()),
                // Appended, answer lost.
                1 => {
                    let _ = broker.append(o.batch, stamp, count);
                    AttemptResult::NoAnswer("lost answer".into())
                }
                // Held in the network and delivered later (a clogged link healing).
                2 => {
                    held.push((o, count));
                    AttemptResult::NoAnswer("request timed out".into())
                }
                3 => err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
                4 => {
                    let _ = broker.append(o.batch, stamp, count);
                    err(ErrorCode::REQUEST_TIMED_OUT)
                }
                _ => err(ErrorCode::NOT_ENOUGH_REPLICAS),
            }
        };
        s.on_result(t, &o, result);
        while let Some((b, outcome)) = s.poll_completion() {
            assert!(
                outcomes.insert(b, outcome).is_none(),
                "one outcome per batch"
            );
        }
        if queued == total && s.is_idle() {
            break;
        }
    }
    while let Some((b, outcome)) = s.poll_completion() {
        outcomes.insert(b, outcome);
    }
    assert!(s.is_idle(), "seed {seed}: every batch finished");
    assert_eq!(outcomes.len(), total, "seed {seed}");
    // Late deliveries of everything still held: none may duplicate anything.
    for (o, count) in held.drain(..) {
        let _ = broker.append(o.batch, o.stamp.expect("stamped"), count);
    }
    let mut seen: BTreeMap<BatchId, (i64, usize)> = BTreeMap::new();
    let mut at = 0;
    while at < broker.log.len() {
        let b = broker.log[at];
        let n = counts[&b] as usize;
        assert!(
            seen.insert(b, (at as i64, n)).is_none(),
            "seed {seed}: batch {b:?} written twice"
        );
        at += n;
    }
    let mut acked_order = Vec::new();
    let mut acked = 0;
    for (b, outcome) in &outcomes {
        match outcome {
            ProduceOutcome::Ok {
                base_offset,
                possible_duplicate,
                ..
            } => {
                assert!(!possible_duplicate);
                assert_eq!(
                    seen.get(b).map(|x| x.0),
                    Some(*base_offset),
                    "seed {seed}: {b:?} acknowledged at {base_offset}"
                );
                acked_order.push((*base_offset, *b));
                acked += 1;
            }
            ProduceOutcome::Failed(_) => {
                assert!(
                    !seen.contains_key(b),
                    "seed {seed}: failed {b:?} is in the log"
                )
            }
            ProduceOutcome::Indefinite(_) => {}
        }
    }
    acked_order.sort();
    if std::env::var("SEQ_DEBUG").is_ok() {
        eprintln!(
            "log {:?}\noutcomes {outcomes:?}\nacked {acked_order:?}",
            broker.log
        );
    }
    assert!(
        acked_order.windows(2).all(|w| w[0].1 < w[1].1),
        "seed {seed}: acknowledged batches are in the log in the order they were queued"
    );
    (acked, total, s.stats().resets)
}

#[test]
fn randomized_runs_against_a_deduplicating_broker_never_write_twice() {
    let (mut acked, mut total, mut resets) = (0, 0, 0);
    let seeds: Vec<u64> = match std::env::var("SEQ_SEED") {
        Ok(s) => vec![s.parse().expect("a seed")],
        Err(_) => (0..400).collect(),
    };
    for seed in seeds {
        let (a, t, r) = run_seed(seed);
        acked += a;
        total += t;
        resets += r;
    }
    println!("{acked} of {total} batches acknowledged, {resets} resets");
    // The runs must exercise both paths: most batches acknowledged, and some resets.
    assert!(acked * 2 > total, "{acked} of {total} acknowledged");
    assert!(resets > 0, "no run reset its epoch");
}
