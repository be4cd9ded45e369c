//! The queue workload of Jepsen's Kafka test, with Strata's own client (exact outcomes), against
//! real processes: the same recording as `sim/src/harness/workload.rs` and `group_workload.rs`,
//! which do this under the simulator.
//!
//! - One topic ([`TOPIC`]), [`PARTITIONS`] partitions, RF 3, `min.insync.replicas=2`; a value
//!   `v` goes to partition `v % PARTITIONS` (the key → partition map), as an 8-byte big-endian
//!   record value. Values are unique per run.
//! - Producers: [`PRODUCERS`] producers of [`SLOTS`] history processes each; idempotent with
//!   `acks=-1`, or plain with `acks=1` when asked. `Failed` is recorded as fail, `Indefinite`
//!   (timeouts, NOT_LEADER_OR_FOLLOWER, a lost connection) as info, never fail.
//! - Consumers under `assign`: each polls every partition from offset 0 at its leader, as the
//!   simulator's do. Under `subscribe`: members of one group; each join is recorded in the
//!   [`GroupHistory`] and, in the [`History`], as an `Assign` of the new assignment followed by
//!   a `Seek` of every partition to the position the member starts from, so the poll-skip checker
//!   judges skips only within one generation. Members commit their positions (each commit tagged)
//!   and are recorded as the group workload records them.
//! - [`final_read`]: after the heal, every partition read from offset 0 to its high watermark
//!   as polls with `final_read: true`.
//!
//! Recording invariant: the history's clock is read while its lock is held, so times never go
//! back across threads (the History asserts it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use strata_client::group::{
    CommittedOffset, GroupConsumer, GroupConsumerConfig, GroupError, OffsetReset,
};
use strata_client::{
    Admin, Connection, ConnectionConfig, ConsumedRecord, Consumer, FetchConfig, ProduceOutcome,
    Producer, ProducerConfig,
};
use strata_core::types::{Instant, Offset};
use strata_sim::group_history::{CommittedRead, GroupCall, GroupHistory, GroupOp, GroupOutcome};
use strata_sim::history::{
    Acks, BatchStamp, Call, History, PollResult, ProcessId, Reply, SendAck, TopicPartition, Value,
};

use crate::nemesis::Clock;

/// The workload's topic.
pub const TOPIC: &str = "jepsen";
/// Its partitions.
pub const PARTITIONS: i32 = 6;
/// The consumer group of `subscribe` mode.
pub const GROUP: &str = "jepsen-group";
/// Producers, each with [`SLOTS`] history processes.
pub const PRODUCERS: u32 = 2;
/// Sends in flight per producer.
pub const SLOTS: u32 = 3;
/// Consumers (assign) or group members (subscribe).
pub const CONSUMERS: u32 = 2;
/// Longest a poll may take before it is recorded as indefinite.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the workload tasks share.
pub struct Workload {
    pub history: Arc<Mutex<History>>,
    pub groups: Arc<Mutex<GroupHistory>>,
    clock: Clock,
    next_value: AtomicU64,
    next_tag: AtomicU64,
    next_process: AtomicU32,
    pub stop: AtomicBool,
    pub addrs: Vec<String>,
    /// Producer `acks`: -1 or 1.
    pub acks: i16,
    leaders: Mutex<BTreeMap<i32, String>>,
    lookups: AtomicU64,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Workload {
    pub fn new(addrs: Vec<String>, acks: i16, clock: Clock) -> Arc<Workload> {
        let mut groups = GroupHistory::new();
        groups.subscribed.insert(GROUP.to_string(), partitions());
        Arc::new(Workload {
            history: Arc::new(Mutex::new(History::new())),
            groups: Arc::new(Mutex::new(groups)),
            clock,
            next_value: AtomicU64::new(1),
            next_tag: AtomicU64::new(1),
            next_process: AtomicU32::new(500),
            stop: AtomicBool::new(false),
            addrs,
            acks,
            leaders: Mutex::new(BTreeMap::new()),
            lookups: AtomicU64::new(0),
        })
    }

    fn now(&self) -> Instant {
        Instant((self.clock)())
    }

    fn invoke(&self, p: ProcessId, call: Call) {
        let mut h = locked(&self.history);
        let now = self.now();
        h.invoke(p, now, call);
    }

    fn ok(&self, p: ProcessId, reply: Reply) {
        let mut h = locked(&self.history);
        let now = self.now();
        h.ok(p, now, reply);
    }

    fn fail(&self, p: ProcessId, why: String) {
        let mut h = locked(&self.history);
        let now = self.now();
        h.fail(p, now, why);
    }

    fn info(&self, p: ProcessId, why: String) {
        let mut h = locked(&self.history);
        let now = self.now();
        h.info(p, now, why);
    }

    fn record_group(
        &self,
        process: ProcessId,
        invoked: Instant,
        call: GroupCall,
        outcome: GroupOutcome,
    ) {
        let mut g = locked(&self.groups);
        let completed = Some(self.now());
        g.record(GroupOp {
            process,
            group: GROUP.to_string(),
            invoked,
            completed,
            call,
            outcome,
        });
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The leader's address for `partition`, asking Metadata of one node in turn if unknown.
    async fn leader(&self, partition: i32) -> Option<String> {
        if let Some(a) = locked(&self.leaders).get(&partition) {
            return Some(a.clone());
        }
        let n = self.lookups.fetch_add(1, Ordering::Relaxed) as usize;
        let addr = &self.addrs[n % self.addrs.len()];
        let view = crate::cluster::metadata_from(addr, Some(&[TOPIC]))
            .await
            .ok()?;
        let mut leaders = locked(&self.leaders);
        for ((topic, p), leader) in &view.leaders {
            if topic == TOPIC
                && let Some(a) = view.brokers.get(leader)
            {
                leaders.insert(*p, a.clone());
            }
        }
        leaders.get(&partition).cloned()
    }

    fn forget_leader(&self, partition: i32) {
        locked(&self.leaders).remove(&partition);
    }
}

/// Every partition of the workload's topic.
pub fn partitions() -> Vec<TopicPartition> {
    (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect()
}

/// Creates the topic (RF 3, `min.insync.replicas=2`) and waits until every partition has a
/// leader, at most `budget`.
pub async fn create_topic(addrs: &[String], budget: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut created = false;
    loop {
        for addr in addrs {
            if !created {
                let attempt = async {
                    let conn = Connection::connect(addr, ConnectionConfig::default()).await?;
                    Admin::new(&conn)
                        .create_topic(TOPIC, PARTITIONS, 3, &[("min.insync.replicas", "2")])
                        .await?;
                    anyhow::Ok(())
                };
                match tokio::time::timeout(Duration::from_secs(10), attempt).await {
                    Ok(Ok(())) => created = true,
                    Ok(Err(e)) if format!("{e:?}").contains("TOPIC_ALREADY_EXISTS") => {
                        created = true
                    }
                    Ok(Err(e)) => tracing::info!(addr, error = %e, "CreateTopics"),
                    Err(_) => tracing::info!(addr, "CreateTopics timed out"),
                }
            }
            if created && let Ok(view) = crate::cluster::metadata_from(addr, Some(&[TOPIC])).await {
                let led = (0..PARTITIONS).all(|p| {
                    view.leaders
                        .get(&(TOPIC.to_string(), p))
                        .is_some_and(|&l| l > 0)
                });
                if led {
                    return Ok(());
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("topic {TOPIC} not created with leaders within {budget:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn producer_config(acks: i16) -> ProducerConfig {
    ProducerConfig {
        enable_idempotence: acks == -1,
        acks,
        timeout_ms: 3_000,
        request_timeout_ms: 4_000,
        delivery_timeout_ms: 12_000,
        retry_backoff_ms: 100,
        ..ProducerConfig::default()
    }
}

/// Producer `index`: [`SLOTS`] processes (`index * 10 + slot`) sending until stopped.
pub async fn run_producer(w: Arc<Workload>, index: u32) {
    let producer = Arc::new(Producer::new(&w.addrs.join(","), producer_config(w.acks)));
    let mut slots = Vec::new();
    for slot in 0..SLOTS {
        let (w, producer) = (w.clone(), producer.clone());
        let p = ProcessId(index * 10 + slot);
        slots.push(tokio::spawn(async move {
            while !w.stopped() {
                let first = w.next_value.fetch_add(1, Ordering::Relaxed);
                let partition = (first % PARTITIONS as u64) as i32;
                send(&w, p, &producer, partition, &[first]).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }
    for s in slots {
        if let Err(e) = s.await {
            tracing::error!(error = %e, "producer slot panicked");
        }
    }
}

async fn send(w: &Workload, p: ProcessId, producer: &Producer, partition: i32, values: &[u64]) {
    w.invoke(
        p,
        Call::Send {
            tp: TopicPartition::new(TOPIC, partition),
            values: values.iter().map(|v| Value(*v)).collect(),
            acks: if w.acks == 1 { Acks::Leader } else { Acks::All },
            resends: false,
        },
    );
    let bytes: Vec<[u8; 8]> = values.iter().map(|v| v.to_be_bytes()).collect();
    let records: Vec<(&[u8], Option<&[u8]>)> = bytes.iter().map(|b| (&b[..], None)).collect();
    let outcome = producer.send(TOPIC, partition, &records).await;
    match outcome {
        ProduceOutcome::Ok {
            base_offset,
            possible_duplicate,
            ..
        } => w.ok(
            p,
            Reply::Send(SendAck {
                base_offset: (base_offset >= 0).then_some(Offset(base_offset)),
                leader_survived: false,
                possible_duplicate,
            }),
        ),
        ProduceOutcome::Failed(code) => w.fail(p, format!("error code {}", code.0)),
        ProduceOutcome::Indefinite(reason) => w.info(p, format!("{reason:?}")),
    }
}

/// A connection per leader address.
type Connections = BTreeMap<String, Arc<Connection>>;

async fn leader_connection(
    w: &Workload,
    conns: &mut Connections,
    partition: i32,
) -> Option<Arc<Connection>> {
    let addr = w.leader(partition).await?;
    if let Some(c) = conns.get(&addr).filter(|c| !c.is_broken()) {
        return Some(c.clone());
    }
    match tokio::time::timeout(
        Duration::from_secs(2),
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
            w.forget_leader(partition);
            None
        }
    }
}

/// The outcome of one recorded poll.
enum Polled {
    /// Ok: the high watermark it reported.
    Ok(i64),
    /// Info: drop the connection and look the leader up again.
    Retry,
}

/// One poll of `partition` from `*position`, recorded; advances the position.
async fn poll_once(
    w: &Workload,
    p: ProcessId,
    conn: &Arc<Connection>,
    partition: i32,
    position: &mut i64,
    final_read: bool,
) -> Polled {
    let config = FetchConfig {
        max_wait_ms: 200,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partition_max_bytes: 1 << 20,
    };
    let mut consumer = Consumer::new(conn.clone(), config);
    consumer.assign(TOPIC, partition, *position);
    w.invoke(
        p,
        Call::Poll {
            tp: TopicPartition::new(TOPIC, partition),
            from_offset: Offset(*position),
            final_read,
        },
    );
    match tokio::time::timeout(OP_TIMEOUT, consumer.poll()).await {
        Ok(Ok(fetched)) => {
            let Some(f) = fetched.into_iter().find(|f| f.partition == partition) else {
                w.info(p, "no entry for the partition".into());
                return Polled::Retry;
            };
            if !f.error.is_ok() {
                w.info(p, format!("error code {}", f.error.0));
                return Polled::Retry;
            }
            let (records, batches) = recorded(&f.records);
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
            Polled::Ok(f.high_watermark)
        }
        Ok(Err(e)) => {
            w.info(p, format!("{e}"));
            Polled::Retry
        }
        Err(_) => {
            w.info(p, "timed out".into());
            Polled::Retry
        }
    }
}

/// The fetched `records` as the history holds them: (offset, value) pairs (a value not of 8
/// bytes reads as 0) and a stamp per batch they came in.
fn recorded(records: &[ConsumedRecord]) -> (Vec<(Offset, Value)>, Vec<BatchStamp>) {
    let mut out = Vec::new();
    let mut batches: Vec<BatchStamp> = Vec::new();
    for r in records {
        if batches.last().map(|b| b.base_offset.0) != Some(r.batch.base_offset) {
            batches.push(BatchStamp {
                base_offset: Offset(r.batch.base_offset),
                last_offset: Offset(r.batch.base_offset + i64::from(r.batch.last_offset_delta)),
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
        out.push((Offset(r.offset), Value(value)));
    }
    (out, batches)
}

/// Polls `partition` once at its leader and records it; on trouble forgets the leader.
async fn poll_partition(
    w: &Workload,
    p: ProcessId,
    conns: &mut Connections,
    partition: i32,
    position: &mut i64,
    final_read: bool,
) -> Option<i64> {
    let Some(conn) = leader_connection(w, conns, partition).await else {
        tokio::time::sleep(Duration::from_millis(100)).await;
        return None;
    };
    match poll_once(w, p, &conn, partition, position, final_read).await {
        Polled::Ok(hw) => Some(hw),
        Polled::Retry => {
            conns.retain(|_, c| !Arc::ptr_eq(c, &conn));
            w.forget_leader(partition);
            None
        }
    }
}

/// An `assign` consumer: every partition from offset 0, polled in turn until stopped.
pub async fn run_assign_consumer(w: Arc<Workload>, index: u32) {
    let p = ProcessId(100 + index);
    w.invoke(
        p,
        Call::Assign {
            partitions: partitions(),
            seek_to_beginning: true,
        },
    );
    w.ok(p, Reply::Assign);
    let mut positions = vec![0i64; PARTITIONS as usize];
    let mut conns = Connections::new();
    while !w.stopped() {
        for (i, position) in positions.iter_mut().enumerate() {
            if w.stopped() {
                break;
            }
            poll_partition(&w, p, &mut conns, i as i32, position, false).await;
        }
    }
}

fn group_config() -> GroupConsumerConfig {
    let mut c = GroupConsumerConfig::new(GROUP);
    c.member.session_timeout_ms = 6_000;
    c.member.rebalance_timeout_ms = 10_000;
    c.member.heartbeat_interval_ms = 500;
    c.member.request_timeout = Duration::from_secs(5);
    c.fetch.max_wait_ms = 200;
    c.auto_offset_reset = OffsetReset::Earliest;
    c.auto_commit = false;
    c
}

fn failed(e: &GroupError) -> GroupOutcome {
    match e.code() {
        Some(code) if !e.is_indefinite() => GroupOutcome::Fail(code.0),
        _ => GroupOutcome::Info(e.to_string()),
    }
}

/// What `GroupConsumer::init_positions` and `GroupMember::committed` answer.
type CommittedReads =
    std::result::Result<Vec<((String, i32), Option<CommittedOffset>)>, GroupError>;

fn fetched(result: &CommittedReads) -> GroupOutcome {
    match result {
        Err(e) => failed(e),
        Ok(reads) => GroupOutcome::Fetched(
            reads
                .iter()
                .map(|((t, p), c)| {
                    (
                        TopicPartition::new(t.clone(), *p),
                        c.as_ref().map(|c| CommittedRead {
                            offset: c.offset,
                            tag: c.metadata.as_deref().and_then(|m| m.parse().ok()),
                        }),
                    )
                })
                .collect(),
        ),
    }
}

/// A `subscribe` member: joins, polls its assignment at the leaders, commits (a third of the
/// rounds), until stopped. A process per incarnation of its membership (see the module docs).
pub async fn run_group_member(w: Arc<Workload>, index: u32) {
    let p = ProcessId(200 + index);
    let g = ProcessId(w.next_process.fetch_add(1, Ordering::Relaxed));
    let mut consumer = GroupConsumer::new(&w.addrs, group_config());
    consumer.subscribe(&[TOPIC]);
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut conns = Connections::new();
    let mut round = 0u64;
    while !w.stopped() {
        if consumer.needs_join() {
            join(&w, g, &mut consumer).await;
            positions.clear();
            continue;
        }
        if consumer.needs_positions() {
            start_generation(&w, p, g, &mut consumer, &mut positions).await;
            continue;
        }
        if let Err(e) = consumer.heartbeat_if_due().await
            && !e.needs_rejoin()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if consumer.needs_join() {
            continue;
        }
        if positions.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        for (&partition, position) in positions.iter_mut() {
            poll_partition(&w, p, &mut conns, partition, position, false).await;
        }
        round += 1;
        if round.is_multiple_of(3) {
            commit(&w, g, &mut consumer, &positions).await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer.close()).await;
}

/// (Re)joins the group as group process `g`, recorded; on failure waits 300 ms.
async fn join(w: &Workload, g: ProcessId, consumer: &mut GroupConsumer) {
    let invoked = w.now();
    let member_id = consumer.member().member_id().to_string();
    let result = consumer.rejoin().await;
    let outcome = match &result {
        Ok(j) => GroupOutcome::Joined {
            member_id: j.member_id.clone(),
            generation: j.generation,
            assignment: j
                .assignment
                .iter()
                .map(|(t, p)| TopicPartition::new(t.clone(), *p))
                .collect(),
        },
        Err(e) => failed(e),
    };
    w.record_group(g, invoked, GroupCall::Join { member_id }, outcome);
    if result.is_err() {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Starts a generation: fetches the committed positions of the new assignment (recorded as
/// group process `g`; on failure waits 300 ms and leaves `positions` as they are), then records
/// as process `p` an `Assign` of the assignment and a `Seek` of each partition to where it
/// starts, which becomes `positions`.
async fn start_generation(
    w: &Workload,
    p: ProcessId,
    g: ProcessId,
    consumer: &mut GroupConsumer,
    positions: &mut BTreeMap<i32, i64>,
) {
    let invoked = w.now();
    let assigned: Vec<TopicPartition> = consumer
        .assignment()
        .iter()
        .map(|(t, p)| TopicPartition::new(t.clone(), *p))
        .collect();
    let result = consumer.init_positions().await;
    w.record_group(
        g,
        invoked,
        GroupCall::FetchCommitted {
            partitions: assigned.clone(),
        },
        fetched(&result),
    );
    if result.is_err() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        return;
    }
    // The new generation's assignment, then where each partition starts.
    w.invoke(
        p,
        Call::Assign {
            partitions: assigned,
            seek_to_beginning: false,
        },
    );
    w.ok(p, Reply::Assign);
    positions.clear();
    for (topic, partition, offset) in consumer.positions() {
        if topic != TOPIC {
            continue;
        }
        w.invoke(
            p,
            Call::Seek {
                tp: TopicPartition::new(TOPIC, partition),
                offset: Offset(offset),
            },
        );
        w.ok(p, Reply::Seek);
        positions.insert(partition, offset);
    }
}

async fn commit(
    w: &Workload,
    g: ProcessId,
    consumer: &mut GroupConsumer,
    positions: &BTreeMap<i32, i64>,
) {
    let offsets: Vec<(String, i32, i64)> = positions
        .iter()
        .map(|(p, o)| (TOPIC.to_string(), *p, *o))
        .collect();
    let tag = w.next_tag.fetch_add(1, Ordering::Relaxed);
    let member_id = consumer.member().member_id().to_string();
    let generation = consumer.member().generation();
    let invoked = w.now();
    let result = consumer
        .member_mut()
        .commit(&offsets, &tag.to_string())
        .await;
    let call = GroupCall::Commit {
        member_id,
        generation,
        offsets: offsets
            .iter()
            .map(|(t, p, o)| (TopicPartition::new(t.clone(), *p), *o))
            .collect(),
        tag,
    };
    let outcome = match &result {
        Ok(()) => GroupOutcome::Committed,
        Err(e) => failed(e),
    };
    w.record_group(g, invoked, call, outcome);
}

/// After the heal, while members still run: DescribeGroups (recorded, `final_check`) until the
/// group is Stable with every partition owned once, at most `budget`.
pub async fn group_final_check(w: &Workload, budget: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + budget;
    let g = ProcessId(w.next_process.fetch_add(1, Ordering::Relaxed));
    let router = Arc::new(
        strata_client::metadata::Router::new(&w.addrs, ConnectionConfig::default(), 1)
            .with_request_timeout(Duration::from_secs(5)),
    );
    let mut observer = strata_client::GroupMember::new(router, group_config().member);
    let all: std::collections::BTreeSet<(String, i32)> =
        (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect();
    loop {
        let invoked = w.now();
        let result = observer.describe().await;
        let settled = result.as_ref().is_ok_and(|d| {
            let owned: Vec<(String, i32)> = d
                .members
                .iter()
                .flat_map(|(_, a)| a.iter().cloned())
                .collect();
            let unique: std::collections::BTreeSet<(String, i32)> = owned.iter().cloned().collect();
            d.state == "Stable" && owned.len() == unique.len() && unique == all
        });
        let outcome = match &result {
            Ok(d) => GroupOutcome::Described {
                state: d.state.clone(),
                generation: -1,
                members: d
                    .members
                    .iter()
                    .map(|(m, a)| strata_sim::group_history::DescribedMember {
                        member_id: m.clone(),
                        assignment: a
                            .iter()
                            .map(|(t, p)| TopicPartition::new(t.clone(), *p))
                            .collect(),
                    })
                    .collect(),
            },
            Err(e) => failed(e),
        };
        w.record_group(
            g,
            invoked,
            GroupCall::Describe { final_check: true },
            outcome,
        );
        if settled {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("group {GROUP} not Stable with every partition owned within {budget:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The final read: every partition from offset 0 until a poll reaches the high watermark it
/// reports, recorded with `final_read: true`; at most `budget` in all.
pub async fn final_read(w: &Workload, budget: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + budget;
    let p = ProcessId(w.next_process.fetch_add(1, Ordering::Relaxed));
    let mut conns = Connections::new();
    for partition in 0..PARTITIONS {
        let mut position = 0i64;
        loop {
            if let Some(hw) = poll_partition(w, p, &mut conns, partition, &mut position, true).await
                && position >= hw
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("final read of {TOPIC}-{partition} stopped at {position} within {budget:?}");
            }
        }
    }
    Ok(())
}

/// Waits until every partition has a leader and a full ISR (all three replicas), at most
/// `budget`: the cluster converged after the heal.
pub async fn wait_converged(addrs: &[String], budget: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut last = String::new();
    loop {
        for addr in addrs {
            match crate::cluster::metadata_from(addr, Some(&[TOPIC])).await {
                Ok(view) => {
                    let ok = (0..PARTITIONS).all(|p| {
                        let key = (TOPIC.to_string(), p);
                        view.leaders.get(&key).is_some_and(|&l| l > 0)
                            && view.isr.get(&key).is_some_and(|isr| isr.len() >= 3)
                    });
                    if ok {
                        return Ok(());
                    }
                    last = format!("leaders {:?} isr {:?}", view.leaders, view.isr);
                }
                Err(e) => last = format!("{e:#}"),
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow::anyhow!("{last}"))
                .with_context(|| format!("cluster not converged within {budget:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
