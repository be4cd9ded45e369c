//! The producer's IO: one task per partition drives that partition's [`Sequencer`] — looks the
//! leader up ([`Router`]), stamps and writes Produce requests, waits for their answers (each in a
//! small task of its own, bounded by `request_timeout_ms`), and hands outcomes back to the callers.
//!
//! Invariants:
//!
//! - A partition's requests are written by its task alone, in the order the sequencer gives
//!   them, on one connection at a time: wire order is sequence order.
//! - A partition's task lives as long as the [`Sender`] (its channel stays open) and then until
//!   its last batch is done. It never restarts: restarting would start sequences again at 0 under
//!   the same producer id and epoch, and a broker could take a new batch for a retry of an old one.
//! - A request that gets no answer within `request_timeout_ms` closes its connection: the attempt
//!   is indefinite, and nothing else waits on a socket that may be stuck.
//!
//! Runs under madsim: tasks and channels only, every `select!` biased.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use strata_core::batch::{HEADER_LEN, compute_crc, validate_produce};
use strata_core::error::ErrorCode;
use strata_core::types::{Instant, ProducerId, Sequence};
use tokio::sync::{mpsc, oneshot};

use super::connection::Connection;
use super::metadata::{Router, RouterError};
use super::outcome::{IndefiniteReason, ProduceOutcome};
use super::produce_request::{ProducerError, finish_attempt_with_leader, start_produce};
use super::producer_config::ProducerConfig;
use super::producer_id::init_producer_id;
use super::sequencer::{
    AttemptResult, BatchId, ProducerIdentity, SendOrder, Sequencer, SequencerStats,
};

/// Kafka's `COORDINATOR_NOT_AVAILABLE`: what a batch reports when no producer id could be had.
const COORDINATOR_NOT_AVAILABLE: ErrorCode = ErrorCode(15);
/// Kafka's other retriable InitProducerId errors.
const COORDINATOR_LOAD_IN_PROGRESS: ErrorCode = ErrorCode(14);
const NOT_COORDINATOR: ErrorCode = ErrorCode(16);
const CONCURRENT_TRANSACTIONS: ErrorCode = ErrorCode(51);

/// One attempt of one batch, as the producer saw it (see [`ProducerConfig::attempt_log`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// When the attempt ended, since the producer was created.
    pub at: Duration,
    pub topic: String,
    pub partition: i32,
    pub batch: BatchId,
    pub attempt: u32,
    /// The broker it was sent to (`-1`: no leader could be reached).
    pub broker: i32,
    /// The producer id, epoch and base sequence it carried.
    pub stamp: Option<(ProducerIdentity, Sequence)>,
    pub result: AttemptResult,
}

/// Counters over every partition of a producer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Produce requests written.
    pub attempts: u64,
    /// Of those, retries of a batch sent before.
    pub retries: u64,
    /// Epoch bumps or fresh producer ids after a lost sequence (see [`super::sequencer`]).
    pub resets: u64,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` / `UNKNOWN_PRODUCER_ID` on a partition's first
    /// unacknowledged batch: a broker that kept its producer state never answers it.
    pub sequence_refusals: u64,
    /// Possibly written batches resent under a new epoch (`ResetPolicy::ResendUnderNewEpoch`).
    pub resent: u64,
}

#[derive(Default)]
struct Counters {
    attempts: AtomicU64,
    retries: AtomicU64,
    resets: AtomicU64,
    sequence_refusals: AtomicU64,
    resent: AtomicU64,
}

/// A batch waiting for its partition task.
struct Queued {
    batch: Bytes,
    record_count: i32,
    reply: oneshot::Sender<ProduceOutcome>,
}

/// The outcome of a queued batch, once decided. Dropping it does not withdraw the batch.
pub struct Delivery(oneshot::Receiver<ProduceOutcome>);

impl Future for Delivery {
    type Output = ProduceOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ProduceOutcome> {
        Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                // The partition task ended without an answer (it panicked): anything may have
                // been sent.
                ProduceOutcome::Indefinite(IndefiniteReason::ConnectionLost(
                    "producer task ended".to_string(),
                ))
            })
        })
    }
}

/// What every partition task shares.
struct Shared {
    router: Router,
    config: ProducerConfig,
    /// The producer id and epoch new partitions start with; replaced only by a fresh id.
    identity: tokio::sync::Mutex<Option<ProducerIdentity>>,
    attempts: Mutex<VecDeque<AttemptRecord>>,
    counters: Counters,
    start: tokio::time::Instant,
}

impl Shared {
    fn now(&self) -> Instant {
        Instant(self.start.elapsed().as_nanos() as u64)
    }

    fn deadline_at(&self, at: Instant) -> tokio::time::Instant {
        self.start + Duration::from_nanos(at.0)
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    fn record(
        &self,
        topic: &str,
        partition: i32,
        order: &SendOrder,
        broker: i32,
        result: &AttemptResult,
    ) {
        let cap = self.config.attempt_log;
        if cap == 0 {
            return;
        }
        let mut log = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= cap {
            log.pop_front();
        }
        log.push_back(AttemptRecord {
            at: self.start.elapsed(),
            topic: topic.to_string(),
            partition,
            batch: order.batch,
            attempt: order.attempt,
            broker,
            stamp: order.stamp,
            result: result.clone(),
        });
    }

    /// The producer's identity, asking InitProducerId if there is none or it is `exclude`'s
    /// (a partition whose epoch was fenced or exhausted needs another id).
    async fn identity(&self, exclude: Option<ProducerId>) -> Result<ProducerIdentity, ErrorCode> {
        let mut cached = self.identity.lock().await;
        if let Some(id) = *cached
            && Some(id.producer_id) != exclude
        {
            return Ok(id);
        }
        let conn = match tokio::time::timeout(self.request_timeout(), self.router.any_connection())
            .await
        {
            Ok(Ok(conn)) => conn,
            _ => return Err(COORDINATOR_NOT_AVAILABLE),
        };
        match tokio::time::timeout(self.request_timeout(), init_producer_id(&conn)).await {
            Ok(Ok(id)) => {
                tracing::debug!(
                    producer_id = id.producer_id.0,
                    epoch = id.epoch.0,
                    "producer id"
                );
                *cached = Some(id);
                Ok(id)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "InitProducerId failed");
                Err(e.code())
            }
            Err(_) => {
                conn.close("InitProducerId timed out");
                Err(COORDINATOR_NOT_AVAILABLE)
            }
        }
    }
}

/// Queues batches to per-partition tasks.
pub struct Sender {
    shared: Arc<Shared>,
    partitions: Mutex<BTreeMap<(String, i32), mpsc::UnboundedSender<Queued>>>,
}

impl Sender {
    pub fn new(bootstrap: &[String], config: ProducerConfig) -> Sender {
        let router = Router::new(
            bootstrap,
            config.connection.clone(),
            config.connections_per_broker,
        )
        .with_request_timeout(Duration::from_millis(config.request_timeout_ms))
        .with_auto_create(true);
        Sender {
            shared: Arc::new(Shared {
                router,
                config,
                identity: tokio::sync::Mutex::new(None),
                attempts: Mutex::new(VecDeque::new()),
                counters: Counters::default(),
                start: tokio::time::Instant::now(),
            }),
            partitions: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    pub fn attempts(&self) -> Vec<AttemptRecord> {
        let log = self
            .shared
            .attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect()
    }

    pub fn stats(&self) -> ProducerStats {
        let c = &self.shared.counters;
        ProducerStats {
            attempts: c.attempts.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            sequence_refusals: c.sequence_refusals.load(Ordering::Relaxed),
            resent: c.resent.load(Ordering::Relaxed),
        }
    }

    pub async fn any_connection(&self) -> Result<Arc<Connection>, RouterError> {
        self.shared.router.any_connection().await
    }

    /// Queues one batch (see [`super::Producer::produce_batch`]). `Err` carries the outcome of a
    /// batch refused before it was queued.
    pub fn enqueue(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
    ) -> Result<Delivery, ProduceOutcome> {
        let record_count = match validate_produce(&batch, usize::MAX) {
            Ok(headers) if self.shared.config.enable_idempotence => {
                // One batch, and ours to stamp.
                match headers.as_slice() {
                    [h] if h.producer_id == -1 => h.record_count,
                    _ => return Err(ProduceOutcome::Failed(ErrorCode::INVALID_RECORD)),
                }
            }
            Ok(headers) => headers.iter().map(|h| h.record_count).sum::<i32>().max(1),
            Err(_) if self.shared.config.enable_idempotence => {
                return Err(ProduceOutcome::Failed(ErrorCode::CORRUPT_MESSAGE));
            }
            // Sent as it is: the broker's answer is the test.
            Err(_) => 1,
        };
        let (reply, rx) = oneshot::channel();
        let queued = Queued {
            batch,
            record_count,
            reply,
        };
        let mut parts = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let tx = parts
            .entry((topic.to_string(), partition))
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run_partition(
                    Arc::clone(&self.shared),
                    topic.to_string(),
                    partition,
                    rx,
                ));
                tx
            });
        match tx.send(queued) {
            Ok(()) => Ok(Delivery(rx)),
            // The task is gone (it panicked); never restart it (see the module docs).
            Err(_) => Err(ProduceOutcome::Failed(ErrorCode::UNKNOWN_SERVER_ERROR)),
        }
    }
}

/// A batch the task holds: the caller's bytes, the last stamped copy, and the caller's waiter.
struct Held {
    raw: Bytes,
    stamped: Option<((ProducerIdentity, Sequence), Bytes)>,
    reply: oneshot::Sender<ProduceOutcome>,
}

impl Held {
    fn bytes_for(&mut self, stamp: Option<(ProducerIdentity, Sequence)>) -> Bytes {
        let Some(stamp) = stamp else {
            return self.raw.clone();
        };
        if let Some((s, b)) = &self.stamped
            && *s == stamp
        {
            return b.clone();
        }
        let b = stamp_batch(&self.raw, stamp.0, stamp.1);
        self.stamped = Some((stamp, b.clone()));
        b
    }
}

/// A copy of `batch` (one v2 batch) carrying `identity` and `base_sequence`, its CRC recomputed
/// (the CRC covers the producer fields; offsets 43..57 of the header, see `strata_core::batch`).
pub fn stamp_batch(batch: &[u8], identity: ProducerIdentity, base_sequence: Sequence) -> Bytes {
    assert!(batch.len() >= HEADER_LEN, "a validated batch has a header");
    let mut b = batch.to_vec();
    b[43..51].copy_from_slice(&identity.producer_id.0.to_be_bytes());
    b[51..53].copy_from_slice(&identity.epoch.0.to_be_bytes());
    b[53..57].copy_from_slice(&base_sequence.0.to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// The end of one attempt, reported by its waiter task.
struct Answer {
    order: SendOrder,
    broker: i32,
    result: AttemptResult,
    /// The leader and leader epoch the broker answered as, if it named them.
    current_leader: Option<(i32, i32)>,
}

/// Whether InitProducerId may succeed if asked again (Kafka's retriable coordinator errors, a
/// timeout, or no broker reachable); anything else (`UNSUPPORTED_VERSION`, ...) is final.
fn id_error_is_retriable(code: ErrorCode) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS
            | COORDINATOR_NOT_AVAILABLE
            | NOT_COORDINATOR
            | CONCURRENT_TRANSACTIONS
            | ErrorCode::REQUEST_TIMED_OUT
            | ErrorCode::LEADER_NOT_AVAILABLE
    )
}

/// Whether the leader should be looked up again after `result` (Kafka clients refresh
/// Metadata on the same errors).
fn leader_may_have_moved(result: &AttemptResult) -> bool {
    match result {
        AttemptResult::Answered { code, .. } => matches!(
            *code,
            ErrorCode::NOT_LEADER_OR_FOLLOWER
                | ErrorCode::LEADER_NOT_AVAILABLE
                | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                | ErrorCode::KAFKA_STORAGE_ERROR
                | ErrorCode::REQUEST_TIMED_OUT
                | ErrorCode::FENCED_LEADER_EPOCH
        ),
        AttemptResult::NotSent(_) | AttemptResult::NoAnswer(_) => true,
        AttemptResult::NoAcks => false,
    }
}

/// One partition's task: see the module docs.
async fn run_partition(
    shared: Arc<Shared>,
    topic: String,
    partition: i32,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    let mut seq = Sequencer::new(shared.config.sequencer_config());
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<Answer>();
    let mut held: BTreeMap<BatchId, Held> = BTreeMap::new();
    let mut open = true;
    let mut last_identity: Option<ProducerIdentity> = None;
    let mut seen = SequencerStats::default();
    loop {
        seq.handle_timeout(shared.now());
        let stats = seq.stats().clone();
        if stats.sequence_refusals > seen.sequence_refusals {
            let new = stats.sequence_refusals - seen.sequence_refusals;
            shared
                .counters
                .sequence_refusals
                .fetch_add(new, Ordering::Relaxed);
            tracing::warn!(topic, partition, identity = ?seq.identity(), "the broker refused the sequence of the first unacknowledged batch");
        }
        if stats.resent > seen.resent {
            let new = stats.resent - seen.resent;
            shared.counters.resent.fetch_add(new, Ordering::Relaxed);
        }
        if stats.resets > seen.resets {
            let new = stats.resets - seen.resets;
            shared.counters.resets.fetch_add(new, Ordering::Relaxed);
            tracing::debug!(topic, partition, identity = ?seq.identity(), resent = stats.resent - seen.resent, "producer sequence reset");
        }
        seen = stats;
        while let Some((id, outcome)) = seq.poll_completion() {
            if let Some(h) = held.remove(&id) {
                // The caller may have stopped waiting; the outcome then goes nowhere.
                let _ = h.reply.send(outcome);
            }
        }
        if !open && seq.is_idle() {
            return;
        }
        if seq.needs_identity(shared.now()) {
            let exclude = last_identity.map(|i| i.producer_id);
            match shared.identity(exclude).await {
                Ok(id) => {
                    seq.set_identity(id);
                }
                Err(code) if id_error_is_retriable(code) => seq.on_route_failed(shared.now(), code),
                Err(code) => {
                    tracing::warn!(?code, "no producer id: failing queued batches");
                    seq.fail_unsequenced(code);
                }
            }
            continue;
        }
        if let Some(id) = seq.identity() {
            last_identity = Some(id);
        }
        if seq.wants_to_send(shared.now()) {
            send_ready(&shared, &topic, partition, &mut seq, &mut held, &answers_tx).await;
        }
        let deadline = seq.next_deadline(shared.now());
        let wake = shared.deadline_at(deadline.unwrap_or(Instant(u64::MAX / 4)));
        tokio::select! {
            biased;
            Some(a) = answers.recv() => {
                tracing::debug!(
                    topic, partition, broker = a.broker, batch = a.order.batch.0,
                    attempt = a.order.attempt, stamp = ?a.order.stamp, result = ?a.result,
                    "produce attempt ended"
                );
                shared.record(&topic, partition, &a.order, a.broker, &a.result);
                if let Some((leader, leader_epoch)) = a.current_leader {
                    // Before anything else is sent: the view never falls below an epoch that
                    // answered us (see `Router::observe_leader`).
                    shared.router.observe_leader(&topic, partition, leader, leader_epoch).await;
                }
                if leader_may_have_moved(&a.result) {
                    shared.router.invalidate().await;
                }
                seq.on_result(shared.now(), &a.order, a.result);
            }
            q = queue.recv(), if open => match q {
                Some(q) => {
                    let id = seq.enqueue(shared.now(), q.record_count);
                    held.insert(id, Held { raw: q.batch, stamped: None, reply: q.reply });
                }
                None => open = false,
            },
            () = tokio::time::sleep_until(wake), if deadline.is_some() => {}
        }
    }
}

/// Looks the leader up and writes every attempt the sequencer allows to it.
async fn send_ready(
    shared: &Arc<Shared>,
    topic: &str,
    partition: i32,
    seq: &mut Sequencer,
    held: &mut BTreeMap<BatchId, Held>,
    answers: &mpsc::UnboundedSender<Answer>,
) {
    let config = &shared.config;
    let route = tokio::time::timeout(
        shared.request_timeout(),
        shared
            .router
            .leader_connection(topic, partition, usize::try_from(partition).unwrap_or(0)),
    )
    .await;
    let (leader, conn) = match route {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::debug!(topic, partition, error = %e, "no leader to send to");
            let code = match e {
                RouterError::NoLeader { code, .. } => code,
                _ => ErrorCode::LEADER_NOT_AVAILABLE,
            };
            shared.router.invalidate().await;
            seq.on_route_failed(shared.now(), code);
            return;
        }
        Err(_) => {
            tracing::debug!(topic, partition, "leader lookup timed out");
            shared.router.invalidate().await;
            seq.on_route_failed(shared.now(), ErrorCode::LEADER_NOT_AVAILABLE);
            return;
        }
    };
    while let Some(order) = seq.poll_send(shared.now(), leader) {
        shared.counters.attempts.fetch_add(1, Ordering::Relaxed);
        if order.attempt > 1 {
            shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        let bytes = held
            .get_mut(&order.batch)
            .expect("every batch in the sequencer is held")
            .bytes_for(order.stamp);
        let started = start_produce(
            &conn,
            topic,
            partition,
            bytes,
            config.acks,
            config.timeout_ms,
        )
        .await;
        let in_flight = match started {
            Ok(Some(f)) => f,
            Ok(None) => {
                shared.record(topic, partition, &order, leader, &AttemptResult::NoAcks);
                seq.on_result(shared.now(), &order, AttemptResult::NoAcks);
                continue;
            }
            Err(e) => {
                let result = match e {
                    ProducerError::NotSent(e) if e.is_indefinite() => {
                        AttemptResult::NoAnswer(e.to_string())
                    }
                    _ => AttemptResult::NotSent(ErrorCode::LEADER_NOT_AVAILABLE),
                };
                shared.record(topic, partition, &order, leader, &result);
                shared.router.invalidate().await;
                seq.on_result(shared.now(), &order, result);
                return;
            }
        };
        let (answers, conn, timeout) =
            (answers.clone(), Arc::clone(&conn), shared.request_timeout());
        tokio::spawn(async move {
            let waited = finish_attempt_with_leader(in_flight, partition);
            let (result, current_leader) = match tokio::time::timeout(timeout, waited).await {
                Ok(r) => r,
                Err(_) => {
                    conn.close("request timed out");
                    (
                        AttemptResult::NoAnswer("request timed out".to_string()),
                        None,
                    )
                }
            };
            // The partition task outlives every waiter it spawned.
            let _ = answers.send(Answer {
                order,
                broker: leader,
                result,
                current_leader,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::batch::{build_batch, validate_batch};
    use strata_core::types::ProducerEpoch;

    #[test]
    fn stamping_sets_the_producer_fields_and_keeps_the_batch_valid() {
        let raw = build_batch(&[(b"a", None), (b"b", Some(b"k"))], 7);
        let id = ProducerIdentity {
            producer_id: ProducerId(42),
            epoch: ProducerEpoch(3),
        };
        let stamped = stamp_batch(&raw, id, Sequence(1000));
        let h = validate_batch(&stamped).expect("the CRC covers the new fields");
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, 1000)
        );
        assert_eq!(h.record_count, 2);
        assert_eq!(
            stamped[HEADER_LEN..],
            raw[HEADER_LEN..],
            "records untouched"
        );
        assert!(validate_batch(&raw).is_ok());
    }
}
