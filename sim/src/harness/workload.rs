//! Workload clients on the client host. Every operation is recorded as invoke + ok / fail / info
//! (indefinite). Values are unique `u64`s, written as the 8-byte big-endian record value.
//!
//! Producers are Strata's own [`Producer`], idempotent (the default) with `acks=-1`: each has
//! [`SLOTS`] history processes sending concurrently, so up to five batches of a partition are in
//! flight, each batch one to three values. The producer retries (same producer id, epoch and
//! sequence, also to a new leader) until its delivery timeout, so an acknowledgement after
//! indefinite attempts is a definite ack at the returned offset, and the duplicate checker judges
//! the broker's deduplication. `Failed` is recorded as fail, `Indefinite` as info.
//!
//! Some producers (drawn from the seed, [`super::run::Options::resend_producers`]) *resend*
//! instead: on a lost sequence or a gap they bump the epoch and resend every unacknowledged
//! batch, possibly written ones included, as librdkafka and the Java client do
//! ([`ResetPolicy::ResendUnderNewEpoch`]), with a shorter delivery timeout so that gaps (and
//! hence epoch bumps with attempts of the old epoch still on the wire) happen often. Their
//! sends are recorded with `resends`, and an acknowledgement of a resent batch with
//! `possible_duplicate`: one copy per epoch is then legitimate, a second copy under one epoch or
//! an old-epoch copy after a newer epoch is not (`checker::producer_fencing`). Every poll
//! records each batch's producer id, epoch and base sequence for that checker.
//!
//! The consumer's requests go to each partition's leader, found with Metadata from any broker and
//! forgotten on any error (a new leader, a dead connection), as real clients do. A poll that
//! takes longer than [`OP_TIMEOUT`] is recorded as indefinite and its connection dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_client::{
    Admin, Connection, ConnectionConfig, Consumer, FetchConfig, ProduceOutcome, Producer,
    ProducerConfig, ResetPolicy,
};
use strata_core::types::{Instant, Offset};

use crate::history::{
    Acks, BatchStamp, Call, History, PollResult, ProcessId, Reply, SendAck, TopicPartition, Value,
};

pub const TOPIC: &str = "sim";

/// The workload's topics: the first `n` of `sim`, `sim2`, `sim3`, ...
pub fn topic_names(n: usize) -> Vec<String> {
    (0..n.max(1))
        .map(|i| {
            if i == 0 {
                TOPIC.to_string()
            } else {
                format!("{TOPIC}{}", i + 1)
            }
        })
        .collect()
}
/// Longest a poll may take before it is recorded as indefinite.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the workload tasks share.
pub struct Workload {
    pub history: Mutex<History>,
    /// Simulated start, the zero of history times.
    start: tokio::time::Instant,
    next_value: AtomicU64,
    /// Set to end the workload.
    pub stop: AtomicBool,
    /// Every broker's address (the bootstrap list).
    pub addrs: Vec<String>,
    pub partitions: i32,
    /// The topics written and read, each with `partitions` partitions.
    pub topics: Vec<String>,
    /// Known leader address per partition.
    leaders: Mutex<BTreeMap<TopicPartition, String>>,
    /// Rotates the broker asked for metadata.
    lookups: AtomicU64,
    /// Retries the producers made (summed when each producer stops): evidence that faults hit
    /// sends whose outcomes the retries then hid.
    pub producer_retries: AtomicU64,
    /// Possibly written batches the resending producers sent again under a new epoch.
    pub producer_resent: AtomicU64,
    /// Answers `OUT_OF_ORDER_SEQUENCE_NUMBER` / `UNKNOWN_PRODUCER_ID` to a partition's first
    /// unacknowledged batch, over every producer: a broker that keeps its producer state never
    /// sends one (see `strata_client::sequencer`), so the run reports each as an anomaly.
    pub sequence_refusals: AtomicU64,
}

impl Workload {
    pub fn new(addrs: Vec<String>, topics: Vec<String>, partitions: i32) -> Arc<Workload> {
        Arc::new(Workload {
            history: Mutex::new(History::new()),
            start: tokio::time::Instant::now(),
            next_value: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            addrs,
            partitions,
            topics,
            leaders: Mutex::new(BTreeMap::new()),
            lookups: AtomicU64::new(0),
            producer_retries: AtomicU64::new(0),
            producer_resent: AtomicU64::new(0),
            sequence_refusals: AtomicU64::new(0),
        })
    }

    /// Every partition of every topic, in a fixed order.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.topics
            .iter()
            .flat_map(|t| (0..self.partitions).map(move |p| TopicPartition::new(t.clone(), p)))
            .collect()
    }

    /// The leader's address for `tp`, asking one broker's Metadata if unknown.
    pub async fn leader(&self, tp: &TopicPartition) -> Option<String> {
        if let Some(a) = self.leaders.lock().expect("leaders lock").get(tp) {
            return Some(a.clone());
        }
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let n = self.lookups.fetch_add(1, Ordering::Relaxed) as usize;
        let addr = &self.addrs[n % self.addrs.len()];
        let lookup = async {
            let conn = Connection::connect(addr, ConnectionConfig::default())
                .await
                .ok()?;
            Admin::new(&conn).metadata(Some(&names)).await.ok()
        };
        let meta = tokio::time::timeout(Duration::from_secs(1), lookup)
            .await
            .ok()
            .flatten()?;
        let brokers: BTreeMap<i32, String> = meta
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let mut leaders = self.leaders.lock().expect("leaders lock");
        for t in &meta.topics {
            let Some(name) = &t.name else { continue };
            for p in &t.partitions {
                if let Some(a) = brokers.get(&p.leader_id.0) {
                    leaders.insert(
                        TopicPartition::new(name.as_str(), p.partition_index),
                        a.clone(),
                    );
                }
            }
        }
        leaders.get(tp).cloned()
    }

    /// Forgets `tp`'s leader (after any error talking to it).
    pub fn forget_leader(&self, tp: &TopicPartition) {
        self.leaders.lock().expect("leaders lock").remove(tp);
    }

    fn now(&self) -> Instant {
        Instant(self.start.elapsed().as_nanos() as u64)
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().expect("history lock poisoned")
    }

    pub fn invoke(&self, p: ProcessId, call: Call) {
        let now = self.now();
        self.history().invoke(p, now, call);
    }
    pub fn ok(&self, p: ProcessId, reply: Reply) {
        let now = self.now();
        self.history().ok(p, now, reply);
    }
    pub fn fail(&self, p: ProcessId, why: String) {
        let now = self.now();
        self.history().fail(p, now, why);
    }
    pub fn info(&self, p: ProcessId, why: String) {
        let now = self.now();
        self.history().info(p, now, why);
    }

    /// A value no one has written yet.
    pub fn next_value(&self) -> u64 {
        self.next_value.fetch_add(1, Ordering::Relaxed)
    }

    /// The high watermark in process `p`'s latest successful poll.
    pub fn last_high_watermark(&self, p: ProcessId) -> Option<i64> {
        let h = self.history();
        h.operations()
            .filter(|o| o.process() == p)
            .filter_map(|o| o.poll_result())
            .last()
            .map(|r| r.high_watermark.0)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// History processes per producer: sends in flight at once (the producer keeps them in order
/// per partition, at most five per partition).
pub const SLOTS: u32 = 5;

/// The workload's producer settings: idempotent with `acks=-1` (the defaults), timeouts short
/// enough for the fault phase.
pub fn producer_config(idempotent: bool) -> ProducerConfig {
    ProducerConfig {
        enable_idempotence: idempotent,
        acks: -1,
        timeout_ms: 3_000,
        request_timeout_ms: 4_000,
        delivery_timeout_ms: 12_000,
        retry_backoff_ms: 100,
        ..ProducerConfig::default()
    }
}

/// The resending producer's settings ([`ResetPolicy::ResendUnderNewEpoch`]): as
/// [`producer_config`], with request and delivery timeouts short enough that batches expire
/// during faults, leaving gaps that bump the epoch while older attempts may still arrive.
pub fn resending_producer_config() -> ProducerConfig {
    ProducerConfig {
        reset_policy: ResetPolicy::ResendUnderNewEpoch,
        request_timeout_ms: 2_000,
        delivery_timeout_ms: 5_000,
        ..producer_config(true)
    }
}

/// One producer with [`SLOTS`] processes (`base * 10 + slot`), sending until stopped; a
/// resending one if `resends`.
pub async fn run_producer(w: Arc<Workload>, base: u32, pause: Duration, resends: bool) {
    let config = if resends {
        resending_producer_config()
    } else {
        producer_config(true)
    };
    let producer = Arc::new(Producer::new(&w.addrs.join(","), config));
    let mut slots = Vec::new();
    for slot in 0..SLOTS {
        let (w, producer) = (w.clone(), producer.clone());
        let p = ProcessId(base * 10 + slot);
        slots.push(tokio::spawn(async move {
            let tps = w.partitions();
            while !w.stopped() {
                let first = w.next_value();
                let tp = &tps[(first % tps.len() as u64) as usize];
                // One to three values per batch.
                let mut values = vec![first];
                for _ in 0..first % 3 {
                    values.push(w.next_value());
                }
                send(&w, p, &producer, tp, &values).await;
                tokio::time::sleep(pause).await;
            }
        }));
    }
    for s in slots {
        s.await.expect("producer slot");
    }
    let stats = producer.stats();
    w.producer_retries
        .fetch_add(stats.retries, Ordering::Relaxed);
    w.producer_resent.fetch_add(stats.resent, Ordering::Relaxed);
    w.sequence_refusals
        .fetch_add(stats.sequence_refusals, Ordering::Relaxed);
}

/// Sends `values` as one batch to `tp` and records the outcome. Returns whether it was
/// acknowledged.
pub async fn send(
    w: &Workload,
    p: ProcessId,
    producer: &Producer,
    tp: &TopicPartition,
    values: &[u64],
) -> bool {
    matches!(
        send_recorded(w, p, producer, tp, values).await,
        ProduceOutcome::Ok { .. }
    )
}

/// As [`send`], returning the producer's outcome.
pub async fn send_recorded(
    w: &Workload,
    p: ProcessId,
    producer: &Producer,
    tp: &TopicPartition,
    values: &[u64],
) -> ProduceOutcome {
    let resends = producer.config().reset_policy == ResetPolicy::ResendUnderNewEpoch;
    w.invoke(
        p,
        Call::Send {
            tp: tp.clone(),
            values: values.iter().map(|v| Value(*v)).collect(),
            acks: match producer.config().acks {
                0 => Acks::None,
                1 => Acks::Leader,
                _ => Acks::All,
            },
            resends,
        },
    );
    let bytes: Vec<[u8; 8]> = values.iter().map(|v| v.to_be_bytes()).collect();
    let records: Vec<(&[u8], Option<&[u8]>)> = bytes.iter().map(|b| (&b[..], None)).collect();
    let outcome = producer.send(&tp.topic, tp.partition, &records).await;
    record_outcome(w, p, &outcome);
    outcome
}

/// Completes process `p`'s invoked send with `outcome`: ok (at its offset), fail, or info.
pub fn record_outcome(w: &Workload, p: ProcessId, outcome: &ProduceOutcome) {
    match outcome {
        ProduceOutcome::Ok {
            base_offset,
            possible_duplicate,
            ..
        } => {
            // An idempotent acknowledgement after indefinite attempts is still a definite one:
            // the broker wrote the batch once, at this offset (once per epoch if resent).
            let ack = SendAck {
                base_offset: (*base_offset >= 0).then_some(Offset(*base_offset)),
                leader_survived: false,
                possible_duplicate: *possible_duplicate,
            };
            w.ok(p, Reply::Send(ack));
        }
        ProduceOutcome::Failed(code) => w.fail(p, format!("error code {}", code.0)),
        ProduceOutcome::Indefinite(reason) => w.info(p, format!("{reason:?}")),
    }
}

/// Reads every partition from the start with `assign`, polling until stopped.
pub async fn run_consumer(w: Arc<Workload>, p: ProcessId) {
    let tps = w.partitions();
    w.invoke(
        p,
        Call::Assign {
            partitions: tps.clone(),
            seek_to_beginning: true,
        },
    );
    w.ok(p, Reply::Assign);
    let mut positions: Vec<i64> = vec![0; tps.len()];
    let mut conns = Connections::new();
    while !w.stopped() {
        for (i, tp) in tps.iter().enumerate() {
            if w.stopped() {
                break;
            }
            let Some(conn) = leader_connection(&w, &mut conns, tp).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if !poll_once(&w, p, &conn, tp, &mut positions[i], false).await {
                conns.retain(|_, c| !Arc::ptr_eq(c, &conn));
                w.forget_leader(tp);
            }
        }
    }
}

/// A connection per leader address.
pub type Connections = BTreeMap<String, Arc<Connection>>;

/// A connection to `tp`'s leader, reusing an open one.
pub async fn leader_connection(
    w: &Workload,
    conns: &mut Connections,
    tp: &TopicPartition,
) -> Option<Arc<Connection>> {
    let addr = w.leader(tp).await?;
    if let Some(c) = conns.get(&addr).filter(|c| !c.is_broken()) {
        return Some(c.clone());
    }
    match tokio::time::timeout(
        OP_TIMEOUT,
        Connection::connect(&addr, ConnectionConfig::default()),
    )
    .await
    {
        Ok(Ok(c)) => {
            let c = Arc::new(c);
            conns.insert(addr, c.clone());
            Some(c)
        }
        _ => {
            w.forget_leader(tp);
            None
        }
    }
}

/// One poll of one partition from `*position`, recorded; advances the position. Returns false
/// if the connection should be replaced or the leader looked up again.
pub async fn poll_once(
    w: &Workload,
    p: ProcessId,
    conn: &Arc<Connection>,
    tp: &TopicPartition,
    position: &mut i64,
    final_read: bool,
) -> bool {
    let config = FetchConfig {
        max_wait_ms: 200,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partition_max_bytes: 1 << 20,
    };
    let mut consumer = Consumer::new(conn.clone(), config);
    consumer.assign(&tp.topic, tp.partition, *position);
    w.invoke(
        p,
        Call::Poll {
            tp: tp.clone(),
            from_offset: Offset(*position),
            final_read,
        },
    );
    match tokio::time::timeout(OP_TIMEOUT, consumer.poll()).await {
        Ok(Ok(fetched)) => {
            let Some(f) = fetched.into_iter().find(|f| f.partition == tp.partition) else {
                w.info(p, "no entry for the partition".into());
                return true;
            };
            if !f.error.is_ok() {
                w.info(p, format!("error code {}", f.error.0));
                // Not the leader (any more), or out of range after a crash took
                // unacknowledged data: look the leader up again and retry.
                return false;
            }
            let mut records = Vec::new();
            let mut batches: Vec<BatchStamp> = Vec::new();
            for r in &f.records {
                if batches.last().map(|b| b.base_offset.0) != Some(r.batch.base_offset) {
                    batches.push(BatchStamp {
                        base_offset: Offset(r.batch.base_offset),
                        last_offset: Offset(
                            r.batch.base_offset + i64::from(r.batch.last_offset_delta),
                        ),
                        producer_id: r.batch.producer_id,
                        producer_epoch: r.batch.producer_epoch,
                        base_sequence: r.batch.base_sequence,
                    });
                }
                let value = r
                    .value
                    .as_deref()
                    .and_then(|v| <[u8; 8]>::try_from(v).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                records.push((Offset(r.offset), Value(value)));
            }
            if let Some(&(last, _)) = records.last() {
                *position = last.0 + 1;
            }
            w.ok(
                p,
                Reply::Poll(PollResult {
                    records,
                    high_watermark: Offset(f.high_watermark),
                    log_start_offset: Offset(f.log_start_offset),
                    batches,
                }),
            );
            true
        }
        Ok(Err(e)) => {
            w.info(p, format!("{e}"));
            false
        }
        Err(_) => {
            w.info(p, "timed out".into());
            false
        }
    }
}
