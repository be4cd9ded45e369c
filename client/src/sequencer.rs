//! The per-partition send state machine of the producer, sans-IO: which batch to send next, with
//! which producer id, epoch and sequence, and what each answer means. No sockets, no clock (every
//! input carries `now`), no tasks: [`super::sender`] drives it, and the unit tests below drive it
//! without a broker.
//!
//! ## Idempotence (KIP-98, with KIP-360's epoch bumps)
//!
//! Every batch of a partition gets a `baseSequence` when it is first sent, following the previous
//! batch's last sequence under the same `(producer id, epoch)` (the *identity*). Every retry of a
//! batch carries the same identity and sequence, whichever broker it goes to, so a broker that
//! already holds the batch (appended by it, or replicated from an earlier leader) answers with
//! the original offsets and writes nothing.
//!
//! Invariants, asserted where they are relied on:
//!
//! - At most `max_in_flight` (≤ 5, the batches a broker remembers per producer) batches are
//!   *unresolved*: the window is the first `max_in_flight` entries of the queue, acknowledged
//!   entries included until every entry before them is acknowledged too. So a retry is never older
//!   than the five batches the broker caches.
//! - Until the first batch under the current identity is acknowledged, only that batch is sent.
//!   A broker that does not know a producer accepts any first sequence (KIP-360), so a second
//!   batch pipelined behind a first one that is refused (say `NOT_ENOUGH_REPLICAS`) would be
//!   written ahead of it. Once one batch is acknowledged, every ISR replica knows the producer and
//!   enforces the order. (A producer idle for `producer.id.expiration.ms` is forgotten again; we
//!   do not guard that case.)
//! - The batches in flight form a prefix of the window's unacknowledged entries, and all go to one
//!   broker: after a leader change nothing goes to the new leader until the old one answered every
//!   attempt (a broker that does not know the producer accepts any sequence, so two brokers must
//!   never see the partition's batches at once).
//! - Go-back-N: after any failed attempt nothing new is sent until every attempt in flight is
//!   answered; then sending resumes from the first unacknowledged batch, in order, after
//!   `retry_backoff_ms` (Kafka's Java `Sender` retries the same way: later in-flight batches come
//!   back `OUT_OF_ORDER_SEQUENCE_NUMBER` and are resent after the failed one).
//! - A batch is *possibly written* once any attempt ended without a definite answer (no response,
//!   `NOT_LEADER_OR_FOLLOWER`, `REQUEST_TIMED_OUT`, ...). A possibly written batch is never sent
//!   under another identity: there it would not be recognised as a duplicate.
//!
//! ## Answers
//!
//! | answer | meaning |
//! |---|---|
//! | no error | acknowledged at `base_offset` (exactly once, even after indefinite attempts) |
//! | `DUPLICATE_SEQUENCE_NUMBER` | already written (older brokers): acknowledged, offset unknown (`-1`) |
//! | `NOT_LEADER_OR_FOLLOWER`, `REQUEST_TIMED_OUT`, `NOT_ENOUGH_REPLICAS_AFTER_APPEND`, `KAFKA_STORAGE_ERROR`, no response | possibly written; retried |
//! | `LEADER_NOT_AVAILABLE`, `NOT_ENOUGH_REPLICAS`, `UNKNOWN_TOPIC_OR_PARTITION`, not sent | not written; retried |
//! | `OUT_OF_ORDER_SEQUENCE_NUMBER` on a batch behind another unacknowledged one | a consequence of the earlier failure; retried |
//! | `OUT_OF_ORDER_SEQUENCE_NUMBER` or `UNKNOWN_PRODUCER_ID` on the first unacknowledged batch | the broker lost our sequence: **reset** with a bumped epoch |
//! | `INVALID_PRODUCER_EPOCH`, `PRODUCER_FENCED` | a newer epoch of our id exists there: **reset** with a fresh producer id |
//! | anything else | not written, will not be: failed |
//!
//! A batch fails for good after `retries` retries or once its delivery deadline
//! (`delivery_timeout_ms` after it was queued, Kafka's `delivery.timeout.ms`) has passed and no
//! attempt of it is in flight. Its outcome is `Indefinite` if it is possibly written, `Failed`
//! otherwise. A batch that had a sequence and fails leaves a gap in the sequence: that is a
//! **reset** too.
//!
//! ## Reset (our reading of KIP-360 for the idempotent producer)
//!
//! A reset waits until nothing is in flight. Then every unacknowledged batch that is possibly
//! written is completed `Indefinite` (resending it under a new identity could write it twice: the
//! Redpanda #3039 duplicate), every other one loses its sequence, and the partition continues
//! under a new identity from sequence 0: the same producer id with the epoch bumped locally (as
//! Kafka's Java client does for idempotent producers since 2.5; the broker accepts a newer epoch
//! starting at sequence 0 and from then on fences the older one), or a fresh producer id from
//! InitProducerId when the epoch is exhausted or was fenced. Kafka's client instead resends such
//! batches under the new epoch; we prefer an indefinite outcome to a possible duplicate.
//!
//! ## The resend policy (librdkafka's and the Java client's, opt-in)
//!
//! With [`ResetPolicy::ResendUnderNewEpoch`] a reset that bumps the epoch completes nothing: every
//! unacknowledged batch, possibly written ones included, loses its sequence and is sent again
//! under the bumped epoch from sequence 0, in queue order. This is what librdkafka's idempotent
//! producer does after `rd_kafka_idemp_drain_epoch_bump` (KIP-360: drain the requests in flight,
//! bump the epoch locally — a non-transactional producer does not ask InitProducerId — and
//! restart the sequences at the first unacknowledged message), and what the Java client does
//! since 2.5. A possibly written batch may then be in the log twice, once per epoch: its
//! outcome says so (`possible_duplicate` on `Ok`; `Indefinite` otherwise). The broker must still
//! write it at most once per epoch, and never under the old epoch once the new one is written
//! (fencing). A reset that needs a fresh producer id (the epoch was fenced or is exhausted)
//! behaves as under the default policy: librdkafka treats a fenced idempotent producer as fatal.
//! The simulator's workload uses this policy to show that the broker's producer-state rules hold
//! against clients that resend across epochs.
//!
//! ## Sequence refusals
//!
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` or `UNKNOWN_PRODUCER_ID` on the first unacknowledged batch is
//! counted in [`SequencerStats::sequence_refusals`], unless a batch ahead of it under the same
//! identity ended unacknowledged (it failed after a definite refusal, or expired): then the
//! sequence has a gap and the refusal is its consequence (a reset is due anyway). A broker that keeps its producer state
//! (no expiration, no acknowledged data lost) never answers it: every batch before that one
//! under the identity was acknowledged, so it is in every later leader's log, and the batch
//! either follows it or is a cached duplicate (at most five are unresolved). The simulator
//! counts these as anomalies: a dedup window or sequence check that is wrong shows up here
//! first, whatever the reset policy.
//!
//! Without idempotence the same machine sends batches without producer id; retries may then
//! write a batch twice, which the outcome says (`possible_duplicate`).

use std::collections::VecDeque;

use strata_core::error::ErrorCode;
use strata_core::types::{Instant, ProducerEpoch, ProducerId, Sequence};

use super::outcome::{ErrorClass, IndefiniteReason, ProduceOutcome, classify};

/// Batches a broker remembers per producer and partition (Kafka's `NUM_BATCHES_TO_RETAIN`), hence
/// the most an idempotent producer may have unresolved per partition.
pub const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

/// Kafka's `PRODUCER_FENCED` (90): a newer epoch of the producer id exists.
pub const PRODUCER_FENCED: ErrorCode = ErrorCode(90);

/// A batch handed to the sequencer, numbered in queueing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

/// The producer id and epoch a batch's sequence belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: ProducerId,
    pub epoch: ProducerEpoch,
}

impl ProducerIdentity {
    /// The same id with the next epoch, unless the epoch is exhausted.
    pub fn bumped(self) -> Option<ProducerIdentity> {
        (self.epoch.0 < i16::MAX).then(|| ProducerIdentity {
            producer_id: self.producer_id,
            epoch: ProducerEpoch(self.epoch.0 + 1),
        })
    }
}

/// What a reset that bumps the epoch does with the batches that may already be written (see the
/// module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResetPolicy {
    /// Complete them `Indefinite`: never written twice (our default).
    #[default]
    CompletePossiblyWritten,
    /// Resend them under the bumped epoch from sequence 0, as librdkafka and the Java client
    /// do: they may be written twice, once per epoch.
    ResendUnderNewEpoch,
}

/// The settings the state machine needs (from [`super::ProducerConfig`]).
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    pub idempotent: bool,
    /// Unresolved batches at most (≤ [`MAX_IN_FLIGHT_IDEMPOTENT`] when idempotent).
    pub max_in_flight: usize,
    /// Retries of one batch after its first attempt.
    pub retries: u32,
    pub retry_backoff_ms: u64,
    /// How long a batch may take from queueing to its outcome.
    pub delivery_timeout_ms: u64,
    /// What an epoch bump does with possibly written batches.
    pub reset_policy: ResetPolicy,
}

/// One attempt the driver must make: send batch `batch`, stamped with `stamp` if idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOrder {
    pub batch: BatchId,
    /// `(identity, baseSequence)` to write into the batch header; `None` without idempotence.
    pub stamp: Option<(ProducerIdentity, Sequence)>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// How an attempt ended, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The broker answered for our partition.
    Answered { code: ErrorCode, base_offset: i64 },
    /// Nothing reached a broker (no leader known, no connection, request not written).
    NotSent(ErrorCode),
    /// Written, but no answer (connection lost, request timeout, an undecodable response): the
    /// broker may have appended it, or may still.
    NoAnswer(String),
    /// `acks=0`: no answer will come.
    NoAcks,
}

#[derive(Debug)]
struct Entry {
    id: BatchId,
    record_count: i32,
    deadline: Instant,
    /// Assigned at the first send under the current identity.
    sequence: Option<Sequence>,
    attempts: u32,
    in_flight: bool,
    /// Acknowledged; kept while an earlier batch is unresolved, for the window.
    acked: bool,
    /// Set once an attempt may have written the batch.
    possibly_written: Option<IndefiniteReason>,
    /// The last definite refusal, reported if the batch fails.
    last_refusal: Option<ErrorCode>,
    /// Possibly written under an earlier identity and resent under a newer one
    /// ([`ResetPolicy::ResendUnderNewEpoch`]): it may be in the log twice.
    resent: bool,
}

/// Counters for tests and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequencerStats {
    pub attempts: u64,
    pub retries: u64,
    /// Resets that bumped the epoch or asked for a fresh producer id.
    pub resets: u64,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` / `UNKNOWN_PRODUCER_ID` answers to the first
    /// unacknowledged batch (see the module docs: a broker that keeps its state never sends one).
    pub sequence_refusals: u64,
    /// Possibly written batches resent under a new epoch.
    pub resent: u64,
}

/// The send state of one partition. See the module docs.
#[derive(Debug)]
pub struct Sequencer {
    config: SequencerConfig,
    identity: Option<ProducerIdentity>,
    next_sequence: Sequence,
    /// Unfinished batches in sequence order, plus acknowledged ones not yet at the front.
    entries: VecDeque<Entry>,
    in_flight: usize,
    /// The broker every attempt in flight went to.
    in_flight_to: Option<i32>,
    /// An attempt failed: send nothing until nothing is in flight, then go back to the front.
    going_back: bool,
    /// A batch was acknowledged under the current identity: the broker knows the producer, and
    /// the whole window may be used.
    confirmed: bool,
    /// A reset is due once nothing is in flight.
    reset_due: bool,
    /// A batch with a sequence under the current identity ended unacknowledged: every later
    /// sequence follows a gap, so a broker's refusal of it says nothing about its producer state.
    sequence_gap: bool,
    /// The reset must take a fresh producer id (the epoch was fenced).
    fresh_id_due: bool,
    backoff_until: Instant,
    /// Why the last attempt to reach a leader failed (reported by batches never sent).
    route_error: Option<ErrorCode>,
    next_id: u64,
    done: VecDeque<(BatchId, ProduceOutcome)>,
    stats: SequencerStats,
}

impl Sequencer {
    /// Panics on `max_in_flight == 0`, or above [`MAX_IN_FLIGHT_IDEMPOTENT`] when idempotent
    /// ([`super::ProducerConfig::validate`] refuses those first).
    pub fn new(config: SequencerConfig) -> Sequencer {
        assert!(config.max_in_flight >= 1, "max_in_flight is at least 1");
        assert!(
            !config.idempotent || config.max_in_flight <= MAX_IN_FLIGHT_IDEMPOTENT,
            "an idempotent producer has at most {MAX_IN_FLIGHT_IDEMPOTENT} batches in flight"
        );
        Sequencer {
            config,
            identity: None,
            next_sequence: Sequence(0),
            entries: VecDeque::new(),
            in_flight: 0,
            in_flight_to: None,
            going_back: false,
            confirmed: false,
            reset_due: false,
            sequence_gap: false,
            fresh_id_due: false,
            backoff_until: Instant(0),
            route_error: None,
            next_id: 0,
            done: VecDeque::new(),
            stats: SequencerStats::default(),
        }
    }

    /// Queues a batch of `record_count` records; its delivery deadline starts now.
    pub fn enqueue(&mut self, now: Instant, record_count: i32) -> BatchId {
        assert!(record_count >= 1, "a batch has at least one record");
        let id = BatchId(self.next_id);
        self.next_id += 1;
        self.entries.push_back(Entry {
            id,
            record_count,
            deadline: now.saturating_add_millis(self.config.delivery_timeout_ms),
            sequence: None,
            attempts: 0,
            in_flight: false,
            acked: false,
            possibly_written: None,
            last_refusal: None,
            resent: false,
        });
        id
    }

    /// The identity sequences are assigned under (`None`: not yet known).
    pub fn identity(&self) -> Option<ProducerIdentity> {
        self.identity
    }

    /// True when the driver must get a producer id ([`Sequencer::set_identity`]) before anything
    /// can be sent: idempotent, work queued, not backing off, and no identity (at the start, or
    /// after a reset that needs a fresh id).
    pub fn needs_identity(&self, now: Instant) -> bool {
        self.config.idempotent
            && self.identity.is_none()
            && now >= self.backoff_until
            && self.has_unsent()
    }

    /// Installs the identity that new sequences belong to. Only while no batch has a sequence.
    pub fn set_identity(&mut self, identity: ProducerIdentity) {
        assert!(
            self.config.idempotent,
            "only an idempotent producer has an identity"
        );
        assert!(
            self.entries.iter().all(|e| e.sequence.is_none()),
            "sequences belong to the identity they were assigned under"
        );
        self.identity = Some(identity);
        self.next_sequence = Sequence(0);
        self.confirmed = false;
    }

    pub fn stats(&self) -> &SequencerStats {
        &self.stats
    }

    /// No batch queued, in flight or awaiting collection.
    pub fn is_idle(&self) -> bool {
        self.entries.is_empty() && self.done.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn has_unsent(&self) -> bool {
        self.window().any(|e| !e.in_flight && !e.acked)
    }

    /// How many entries from the front may be unresolved: one until the broker knows the
    /// producer (see the module docs).
    fn window_len(&self) -> usize {
        if self.config.idempotent && !self.confirmed {
            1
        } else {
            self.config.max_in_flight
        }
    }

    fn window(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().take(self.window_len())
    }

    /// True when [`Sequencer::poll_send`] would give an attempt (to the right broker): the
    /// driver then looks the leader up.
    pub fn wants_to_send(&self, now: Instant) -> bool {
        !self.going_back
            && now >= self.backoff_until
            && (!self.config.idempotent || self.identity.is_some())
            && self.in_flight < self.config.max_in_flight
            && self.has_unsent()
    }

    /// The next attempt to send to `broker`, the partition's leader now. `None` if nothing may go
    /// (see [`Sequencer::wants_to_send`]), or if attempts to another broker are still in flight.
    pub fn poll_send(&mut self, now: Instant, broker: i32) -> Option<SendOrder> {
        if !self.wants_to_send(now) {
            return None;
        }
        if self.in_flight > 0 && self.in_flight_to != Some(broker) {
            return None;
        }
        let identity = self.identity;
        let idempotent = self.config.idempotent;
        let index = self
            .entries
            .iter()
            .take(self.window_len())
            .position(|e| !e.in_flight && !e.acked)
            .expect("wants_to_send saw an unsent batch in the window");
        debug_assert!(
            self.entries
                .iter()
                .take(index)
                .all(|e| e.in_flight || e.acked),
            "attempts in flight are a prefix of the window"
        );
        let entry = &mut self.entries[index];
        if idempotent && entry.sequence.is_none() {
            entry.sequence = Some(self.next_sequence);
            self.next_sequence = self.next_sequence.increment(entry.record_count);
        }
        entry.attempts += 1;
        entry.in_flight = true;
        self.in_flight += 1;
        self.in_flight_to = Some(broker);
        self.stats.attempts += 1;
        if entry.attempts > 1 {
            self.stats.retries += 1;
        }
        let stamp = match (idempotent, identity, entry.sequence) {
            (true, Some(id), Some(seq)) => Some((id, seq)),
            (false, _, _) => None,
            _ => unreachable!("an idempotent send has an identity and a sequence"),
        };
        Some(SendOrder {
            batch: entry.id,
            stamp,
            attempt: entry.attempts,
        })
    }

    /// The producer cannot get an id at all (InitProducerId refused for good, e.g.
    /// `UNSUPPORTED_VERSION`): every batch without a sequence fails with `code` now rather than
    /// at its delivery timeout.
    pub fn fail_unsequenced(&mut self, code: ErrorCode) {
        let mut index = 0;
        while index < self.entries.len() {
            let e = &self.entries[index];
            if e.sequence.is_none() && !e.in_flight && !e.acked {
                let outcome = self.failure(index, code);
                self.finish(index, outcome);
            } else {
                index += 1;
            }
        }
        self.pop_acked_front();
    }

    /// No leader, or no connection to it: nothing was sent. Backs off.
    pub fn on_route_failed(&mut self, now: Instant, code: ErrorCode) {
        self.route_error = Some(code);
        self.backoff_until = now.saturating_add_millis(self.config.retry_backoff_ms);
    }

    /// The end of the attempt `order` (from [`Sequencer::poll_send`]).
    pub fn on_result(&mut self, now: Instant, order: &SendOrder, result: AttemptResult) {
        let index = self
            .entries
            .iter()
            .position(|e| e.id == order.batch)
            .expect("a result belongs to a batch in flight");
        {
            let entry = &mut self.entries[index];
            assert!(entry.in_flight, "batch {:?} was not in flight", entry.id);
            assert_eq!(
                entry.attempts, order.attempt,
                "one attempt in flight per batch"
            );
            entry.in_flight = false;
        }
        self.in_flight -= 1;
        if self.in_flight == 0 {
            self.in_flight_to = None;
        }
        let idempotent = self.config.idempotent;
        match result {
            AttemptResult::NoAcks => {
                self.finish(index, ProduceOutcome::Indefinite(IndefiniteReason::NoAcks))
            }
            AttemptResult::Answered { code, base_offset } if code.is_ok() => {
                self.ack(index, base_offset)
            }
            AttemptResult::Answered { code, .. }
                if idempotent && code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER =>
            {
                self.ack(index, -1)
            }
            AttemptResult::Answered { code, .. } => {
                match idempotent_class(code, idempotent) {
                    Class::Retry(ErrorClass::RetriableIndefinite) => {
                        self.entries[index].possibly_written = Some(IndefiniteReason::Broker(code));
                    }
                    Class::Retry(_) => self.entries[index].last_refusal = Some(code),
                    Class::Reset { fresh_id } => {
                        self.entries[index].last_refusal = Some(code);
                        // Only the first unacknowledged batch, with every earlier sequence of
                        // the identity acknowledged, tells us the broker lost our sequence;
                        // behind an unresolved or failed batch it is that batch's consequence.
                        if index == 0 && !fresh_id && !self.sequence_gap {
                            self.stats.sequence_refusals += 1;
                        }
                        if fresh_id || index == 0 {
                            self.reset_due = true;
                            self.fresh_id_due |= fresh_id;
                        }
                    }
                    Class::Fatal => {
                        let outcome = self.failure(index, code);
                        self.finish(index, outcome);
                        self.go_back(now);
                        self.pop_acked_front();
                        self.maybe_resolve();
                        return;
                    }
                }
                self.retry_or_fail(index, now);
            }
            AttemptResult::NotSent(code) => {
                self.entries[index].last_refusal = Some(code);
                self.retry_or_fail(index, now);
            }
            AttemptResult::NoAnswer(reason) => {
                self.entries[index].possibly_written =
                    Some(IndefiniteReason::ConnectionLost(reason));
                self.retry_or_fail(index, now);
            }
        }
        self.maybe_resolve();
    }

    /// Fails every batch whose delivery deadline has passed and that has no attempt in flight.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut index = 0;
        let mut expired_any = false;
        while index < self.entries.len() {
            let e = &self.entries[index];
            if !e.in_flight && !e.acked && now >= e.deadline {
                let outcome = self.failure(index, self.route_error_or_default());
                self.finish(index, outcome);
                expired_any = true;
            } else {
                index += 1;
            }
        }
        if expired_any {
            self.pop_acked_front();
            self.maybe_resolve();
        }
    }

    /// The next time [`Sequencer::handle_timeout`] or a send is due, after `now`.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let backoff = (self.backoff_until > now && self.has_unsent()).then_some(self.backoff_until);
        let expiry = self
            .entries
            .iter()
            .filter(|e| !e.in_flight && !e.acked)
            .map(|e| e.deadline)
            .min();
        match (backoff, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next finished batch and its outcome.
    pub fn poll_completion(&mut self) -> Option<(BatchId, ProduceOutcome)> {
        self.done.pop_front()
    }

    fn ack(&mut self, index: usize, base_offset: i64) {
        let idempotent = self.config.idempotent;
        let entry = &mut self.entries[index];
        let after_indefinite = entry.possibly_written.is_some();
        entry.acked = true;
        self.confirmed = true;
        self.done.push_back((
            entry.id,
            ProduceOutcome::Ok {
                base_offset,
                after_indefinite,
                possible_duplicate: (after_indefinite && !idempotent) || entry.resent,
            },
        ));
        self.pop_acked_front();
    }

    fn pop_acked_front(&mut self) {
        while self.entries.front().is_some_and(|e| e.acked) {
            self.entries.pop_front();
        }
    }

    fn route_error_or_default(&self) -> ErrorCode {
        self.route_error.unwrap_or(ErrorCode::LEADER_NOT_AVAILABLE)
    }

    /// The outcome of a batch that will not be acknowledged.
    fn failure(&self, index: usize, fallback: ErrorCode) -> ProduceOutcome {
        let e = &self.entries[index];
        match &e.possibly_written {
            Some(reason) => ProduceOutcome::Indefinite(reason.clone()),
            None => ProduceOutcome::Failed(e.last_refusal.unwrap_or(fallback)),
        }
    }

    /// Removes an unacknowledged batch with its outcome. One that had a sequence leaves a gap.
    fn finish(&mut self, index: usize, outcome: ProduceOutcome) {
        let entry = self.entries.remove(index).expect("index in range");
        assert!(!entry.in_flight && !entry.acked);
        if self.config.idempotent && entry.sequence.is_some() {
            self.reset_due = true;
            self.sequence_gap = true;
            self.going_back = true;
        }
        self.done.push_back((entry.id, outcome));
    }

    fn go_back(&mut self, now: Instant) {
        self.going_back = true;
        self.backoff_until = now.saturating_add_millis(self.config.retry_backoff_ms);
    }

    fn retry_or_fail(&mut self, index: usize, now: Instant) {
        self.go_back(now);
        let e = &self.entries[index];
        if e.attempts > self.config.retries || now >= e.deadline {
            let outcome = self.failure(index, self.route_error_or_default());
            self.finish(index, outcome);
            self.pop_acked_front();
        }
    }

    /// Once nothing is in flight: reset if due, and resume sending from the front.
    fn maybe_resolve(&mut self) {
        if self.in_flight > 0 || (!self.going_back && !self.reset_due) {
            return;
        }
        if self.reset_due {
            self.reset();
        }
        self.going_back = false;
    }

    fn reset(&mut self) {
        assert_eq!(self.in_flight, 0, "a reset waits for every attempt");
        self.stats.resets += 1;
        let resend = self.config.reset_policy == ResetPolicy::ResendUnderNewEpoch
            && !self.fresh_id_due
            && self.identity.and_then(ProducerIdentity::bumped).is_some();
        let mut index = 0;
        while index < self.entries.len() {
            let e = &mut self.entries[index];
            if e.acked {
                self.entries.remove(index);
                continue;
            }
            if resend && e.sequence.is_some() && e.possibly_written.is_some() {
                // librdkafka's epoch bump: resent under the new epoch, possibly a second copy.
                e.resent = true;
                self.stats.resent += 1;
            } else if e.sequence.is_some()
                && let Some(reason) = e.possibly_written.clone()
            {
                // Under a new identity a copy already written would not be recognised.
                let e = self.entries.remove(index).expect("index in range");
                self.done
                    .push_back((e.id, ProduceOutcome::Indefinite(reason)));
                continue;
            }
            e.sequence = None;
            index += 1;
        }
        self.identity = if self.fresh_id_due {
            None
        } else {
            self.identity.and_then(ProducerIdentity::bumped)
        };
        self.next_sequence = Sequence(0);
        self.confirmed = false;
        self.reset_due = false;
        self.sequence_gap = false;
        self.fresh_id_due = false;
    }
}

enum Class {
    Retry(ErrorClass),
    /// The broker does not continue our sequence (see the module docs).
    Reset {
        fresh_id: bool,
    },
    Fatal,
}

fn idempotent_class(code: ErrorCode, idempotent: bool) -> Class {
    if idempotent {
        match code {
            ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER | ErrorCode::UNKNOWN_PRODUCER_ID => {
                return Class::Reset { fresh_id: false };
            }
            ErrorCode::INVALID_PRODUCER_EPOCH | PRODUCER_FENCED => {
                return Class::Reset { fresh_id: true };
            }
            _ => {}
        }
    }
    match classify(code) {
        ErrorClass::Fatal => Class::Fatal,
        c => Class::Retry(c),
    }
}

#[cfg(test)]
#[path = "tests/sequencer.rs"]
mod tests;
