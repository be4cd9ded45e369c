//! One simulated run: start the cluster, run the workload under the nemesis, heal and restart
//! everything (liveness phase: writes must succeed again within a budget), read every partition
//! from the log start (final read), and judge the history with every checker. With
//! [`Options::compacted_keys`] the compacted-topic workload ([`compaction_workload`]) runs
//! beside the main one, its final read comes last, and `checker::compaction` judges it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_client::admin::AdminError;
use strata_client::{Admin, Connection, ConnectionConfig, Producer};
use strata_core::ErrorCode;

use super::cluster::Cluster;
use super::compaction_workload::{self, KV_TOPIC, KvWorkload};
use super::group_workload::{self, Behaviour, GroupWorkload};
use super::nemesis::{Fault, Nemesis, Swarm};
use super::observe;
use super::workload::{self, TOPIC, Workload};
use crate::checker::group::GroupReport;
use crate::checker::{Anomaly, Report, check_all, check_all_with, compaction, producer_fencing};
use crate::group_history::GroupHistory;
use crate::history::{History, ProcessId};
use crate::kv_history::KvHistory;
use crate::observation::Observations;

/// What one run does.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Nodes in the cluster (1: a single-node cluster; more: brokers that are all controllers).
    pub nodes: usize,
    /// Partitions of each topic.
    pub partitions: i32,
    /// Topics written and read (`sim`, `sim2`, ...).
    pub topics: usize,
    pub producers: u32,
    /// The producers (by index) that resend possibly written batches under a bumped epoch
    /// (librdkafka's policy, see `workload::resending_producer_config`); the others never do.
    pub resend_producers: Vec<u32>,
    pub consumers: u32,
    /// Simulated length of the fault phase.
    pub fault_phase: Duration,
    /// Simulated time the cluster gets, after healing, to accept a write again.
    pub liveness_budget: Duration,
    pub swarm: Swarm,
    /// Members of the consumer group ([`group_workload`]; 0: no group workload).
    pub group_members: usize,
    pub group_behaviour: Behaviour,
    /// Named scenario: after the fault phase, with the broker stopped, flip a byte in the payload
    /// of the first batch of its oldest segment (durable damage at rest), then restart it.
    pub corrupt_old_segment: bool,
    /// Keys of the compacted-topic workload ([`compaction_workload`]; 0: not run).
    pub compacted_keys: usize,
}

impl Options {
    /// The swarm options drawn from `seed`.
    pub fn for_seed(seed: u64) -> Options {
        let mut rng = StdRng::seed_from_u64(seed);
        let producers = 3;
        Options {
            seed,
            nodes: 1,
            partitions: 3,
            topics: 1,
            producers,
            resend_producers: draw_resend_producers(seed, producers),
            consumers: 1,
            fault_phase: Duration::from_secs(20),
            liveness_budget: Duration::from_secs(30),
            swarm: Swarm::draw(&mut rng),
            group_members: 0,
            group_behaviour: Behaviour::SWEEP,
            corrupt_old_segment: false,
            compacted_keys: 0,
        }
    }

    /// A replicated cluster's run: 3 or 5 nodes (drawn from the seed), RF 3, the swarm drawn
    /// from the seed with the cluster faults.
    pub fn cluster_for_seed(seed: u64) -> Options {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xc1u64);
        let nodes = if rng.random_bool(0.3) { 5 } else { 3 };
        let mut swarm = Swarm::draw(&mut rng);
        swarm.draw_cluster_faults(&mut rng);
        Options {
            nodes,
            partitions: 3,
            topics: 2,
            swarm,
            ..Options::for_seed(seed)
        }
    }

    /// The single-node sweep's run of `seed`: [`Options::for_seed`] with the consumer-group
    /// workload on half the seeds and the compacted-topic workload on 30%. (Kept apart so the
    /// pinned seeds and scenarios built on `for_seed` keep the schedules they were pinned with.)
    pub fn sweep_for_seed(seed: u64) -> Options {
        Options {
            group_members: draw_group_members(seed),
            compacted_keys: draw_compacted_keys(seed),
            ..Options::for_seed(seed)
        }
    }

    /// The cluster sweep's run of `seed`: [`Options::cluster_for_seed`] with the
    /// consumer-group workload on half the seeds and the compacted-topic workload on 30%.
    pub fn cluster_sweep_for_seed(seed: u64) -> Options {
        Options {
            group_members: draw_group_members(seed),
            compacted_keys: draw_compacted_keys(seed),
            ..Options::cluster_for_seed(seed)
        }
    }

    /// `seed`'s run with exactly the faults of `swarm` (named scenarios).
    pub fn with_swarm(seed: u64, swarm: Swarm) -> Options {
        Options {
            swarm,
            ..Options::for_seed(seed)
        }
    }
}

/// Half the seeds run the consumer-group workload (three members), drawn from a stream of its
/// own so that the other options of a seed stay what they were before groups existed.
fn draw_group_members(seed: u64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6a0b_c0de_0000_0000);
    if rng.random_bool(0.5) { 3 } else { 0 }
}

/// 30% of the seeds run the compacted-topic workload over 20 keys, drawn from a stream of its
/// own so that every other option of a seed stays what it was before compaction existed.
fn draw_compacted_keys(seed: u64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b76_c0de_0000_0000);
    if rng.random_bool(0.3) { 20 } else { 0 }
}

/// Each producer resends with probability 1/2, drawn from its own stream of `seed` so that the
/// swarm options of a seed stay what they were before resending producers existed.
fn draw_resend_producers(seed: u64, producers: u32) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5e5e_17d0_0000_0000);
    (0..producers).filter(|_| rng.random_bool(0.5)).collect()
}

/// What a run produced.
pub struct Outcome {
    pub history: History,
    pub report: Report,
    /// `Err` if the cluster did not take a write within the liveness budget after healing.
    pub liveness: Result<(), String>,
    pub faults: Vec<(Duration, Fault, usize)>,
    /// Simulated seconds the run took.
    pub sim_secs: f64,
    pub acknowledged: usize,
    /// Retries the workload's producers made inside their sends.
    pub producer_retries: u64,
    /// Possibly written batches the resending producers sent again under a new epoch.
    pub producer_resent: u64,
    /// What the harness saw of the nodes (clusters: leadership claims and replica copies).
    pub observations: Observations,
    /// The group workload's history and its checkers' report, if it ran.
    pub group: Option<(GroupHistory, GroupReport)>,
    /// The compacted-topic workload's history (its anomalies are in `report`), if it ran.
    pub compaction: Option<KvHistory>,
}

impl Outcome {
    /// The compacted-topic history of each key a compaction anomaly names (at most `limit`
    /// keys): what a failing seed prints beside the report.
    pub fn compaction_trail(&self, limit: usize) -> String {
        let Some(kv) = &self.compaction else {
            return String::new();
        };
        let mut keys: Vec<&str> = self
            .report
            .anomalies
            .iter()
            .filter_map(|a| match a {
                Anomaly::Compaction(c) => c.key(),
                _ => None,
            })
            .collect();
        keys.dedup();
        keys.iter()
            .take(limit)
            .map(|k| format!("key {k}:\n{}", kv.dump_key(k)))
            .collect()
    }

    pub fn ok(&self) -> bool {
        self.report.is_valid()
            && self.liveness.is_ok()
            && self.group.as_ref().is_none_or(|(_, r)| r.is_valid())
    }
}

/// Broker settings for simulated runs: small segments and indexes so rolls, index lookups and
/// checkpoints happen often; in a cluster, short timeouts so failures are detected within the
/// fault phase.
pub fn settings(nodes: usize) -> Vec<String> {
    let mut s = vec![
        "log.segment.bytes=8192",
        "log.index.interval.bytes=256",
        "log.flush.offset.checkpoint.interval.ms=2000",
        "log.retention.ms=-1",
        // Groups: a short first-join delay and a small offsets topic.
        "group.initial.rebalance.delay.ms=500",
        "offsets.topic.num.partitions=3",
    ];
    if nodes > 1 {
        s.extend([
            "broker.session.timeout.ms=2000",
            "broker.heartbeat.interval.ms=200",
            "replica.lag.time.max.ms=3000",
            "replica.fetch.wait.max.ms=200",
            "replica.fetch.backoff.ms=100",
            "controller.quorum.election.timeout.ms=1000",
            "controller.quorum.request.timeout.ms=1000",
            "leader.imbalance.check.interval.seconds=5",
            "min.insync.replicas=2",
        ]);
    }
    s.iter().map(|s| s.to_string()).collect()
}

/// Replication factor of the workload topic.
fn replication_factor(nodes: usize) -> i16 {
    nodes.min(3) as i16
}

pub async fn run(opts: Options) -> Outcome {
    let start = tokio::time::Instant::now();
    let mut sets = settings(opts.nodes);
    if opts.compacted_keys > 0 {
        sets.extend(
            compaction_workload::BROKER_SETTINGS
                .iter()
                .map(|s| s.to_string()),
        );
    }
    let mut cluster = Cluster::start(opts.nodes, opts.seed, &sets);
    let addrs: Vec<String> = cluster.brokers.iter().map(|b| b.addr.clone()).collect();
    let w = Workload::new(
        addrs.clone(),
        workload::topic_names(opts.topics),
        opts.partitions,
    );
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(observe::sample_leaders(
        cluster.live.clone(),
        start,
        sampling.clone(),
    ));

    // Set-up and workload run on the client host (the supervisor has no address).
    let setup = {
        let (addrs, topics, partitions, rf) = (
            addrs.clone(),
            workload::topic_names(opts.topics),
            opts.partitions,
            replication_factor(opts.nodes),
        );
        let compacted = (opts.compacted_keys > 0).then_some(opts.nodes);
        cluster.client.spawn(async move {
            for topic in &topics {
                create_topic(&addrs, topic, partitions, rf).await?;
            }
            if let Some(nodes) = compacted {
                let configs = compaction_workload::topic_configs(nodes);
                create_topic_with_configs(&addrs, KV_TOPIC, 1, rf, &configs).await?;
            }
            Ok::<(), String>(())
        })
    };
    let created = setup.await.expect("set-up task");
    let mut tasks = Vec::new();
    if created.is_ok() {
        for p in 0..opts.producers {
            let pause = Duration::from_millis(20 + 10 * u64::from(p));
            let resends = opts.resend_producers.contains(&p);
            tasks.push(
                cluster
                    .client
                    .spawn(workload::run_producer(w.clone(), p, pause, resends)),
            );
        }
        for c in 0..opts.consumers {
            tasks.push(
                cluster
                    .client
                    .spawn(workload::run_consumer(w.clone(), ProcessId(1_000 + c))),
            );
        }
    }
    let kv = (opts.compacted_keys > 0 && created.is_ok())
        .then(|| KvWorkload::new(addrs.clone(), opts.compacted_keys, opts.seed));
    let kv_tasks: Vec<_> = kv
        .iter()
        .flat_map(|kv| (0..compaction_workload::PRODUCERS).map(|i| (kv.clone(), i)))
        .map(|(kv, i)| {
            cluster
                .client
                .spawn(compaction_workload::run_producer(kv, i))
        })
        .collect();
    let group = (opts.group_members > 0 && created.is_ok()).then(|| {
        GroupWorkload::new(
            addrs.clone(),
            workload::topic_names(opts.topics),
            opts.partitions,
        )
    });
    let mut group_tasks = Vec::new();
    if let Some(gw) = &group {
        for i in 0..opts.group_members {
            group_tasks.push(cluster.client.spawn(group_workload::run_member(
                gw.clone(),
                i,
                opts.seed,
                opts.group_behaviour,
            )));
        }
    }

    let mut nemesis = Nemesis::new(opts.seed, opts.swarm.clone());
    nemesis.run(&mut cluster, opts.fault_phase).await;

    // Liveness: heal everything, restart every broker, and demand a write within the budget.
    cluster.heal_all();
    for i in 0..cluster.brokers.len() {
        cluster.kill(i);
        if opts.corrupt_old_segment {
            corrupt_first_batch(&cluster.brokers[i].disk, opts.partitions);
        }
        cluster.restart(i);
    }
    let liveness = match created {
        Err(e) => Err(format!("could not create the topic: {e}")),
        Ok(()) => {
            let (w2, budget) = (w.clone(), opts.liveness_budget);
            cluster
                .client
                .spawn(async move { await_write(&w2, budget).await })
                .await
                .expect("liveness task")
        }
    };

    // Groups' liveness: Stable with every partition owned, while the members still run.
    let mut liveness = liveness;
    if let Some(gw) = &group {
        if liveness.is_ok() {
            let (gw2, budget) = (gw.clone(), opts.liveness_budget * 2);
            liveness = cluster
                .client
                .spawn(async move { group_workload::final_check(&gw2, budget).await })
                .await
                .expect("group final check task");
        }
        gw.stop.store(true, Ordering::Relaxed);
        for t in group_tasks {
            t.await.expect("group member task");
        }
        if liveness.is_ok() {
            let (gw2, budget) = (gw.clone(), opts.liveness_budget);
            liveness = cluster
                .client
                .spawn(async move { group_workload::final_read(&gw2, budget).await })
                .await
                .expect("group final read task");
        }
    }
    let group = group.map(|gw| {
        let history = gw.into_history();
        let report = crate::checker::group::check_all(&history);
        (history, report)
    });

    w.stop.store(true, Ordering::Relaxed);
    if let Some(kv) = &kv {
        kv.stop.store(true, Ordering::Relaxed);
    }
    for t in tasks {
        t.await.expect("workload task");
    }
    for t in kv_tasks {
        t.await.expect("kv producer task");
    }
    // Liveness, continued: the final read must reach every partition's high watermark, and a
    // cluster's replicas must converge. A run that stalls fails with its seed.
    if liveness.is_ok() {
        let w2 = w.clone();
        liveness = cluster
            .client
            .spawn(async move { final_read(&w2).await })
            .await
            .expect("final read task");
    }
    let mut observations = Observations::default();
    if opts.nodes > 1 && liveness.is_ok() {
        // Replicas must converge once healed; the divergence checker then compares them.
        liveness = observe::await_convergence(&cluster, opts.liveness_budget).await;
        observe::snapshot_replicas(&cluster, &mut observations);
        forget_compacted_replicas(&mut observations);
    }
    let compaction = match kv {
        Some(kv) => Some(finish_kv(&cluster, kv, opts.liveness_budget, &mut liveness).await),
        None => None,
    };
    sampling.store(true, Ordering::Relaxed);
    let sampled = sampler.await.expect("leader sampler");
    observations.leader_claims = sampled.leader_claims;
    observations.high_watermarks = sampled.high_watermarks;

    let producer_retries = w.producer_retries.load(Ordering::Relaxed);
    let producer_resent = w.producer_resent.load(Ordering::Relaxed);
    let sequence_refusals = w.sequence_refusals.load(Ordering::Relaxed);
    let w = Arc::into_inner(w).expect("every workload task has finished");
    let history = w.history.into_inner().expect("history lock poisoned");
    let mut report = check_all_with(&history, &observations);
    report
        .anomalies
        .extend(producer_fencing::check_refusals(sequence_refusals).map(Anomaly::SequenceRefused));
    if let Some(h) = &compaction {
        report
            .anomalies
            .extend(compaction::check(h).into_iter().map(Anomaly::Compaction));
    }
    tracing::info!(
        claims = observations.leader_claims.len(),
        high_watermarks = observations.high_watermarks.len(),
        replicas = observations.replicas.len(),
        "observations"
    );
    let acknowledged = history
        .operations()
        .filter(|o| o.send_ack().is_some())
        .count();
    Outcome {
        history,
        report,
        liveness,
        faults: nemesis.log,
        sim_secs: start.elapsed().as_secs_f64(),
        acknowledged,
        producer_retries,
        producer_resent,
        observations,
        group,
        compaction,
    }
}

/// Each replica cleans its own copy of a compacted log (as in Kafka), so the copies are not
/// byte-identical below the high watermark: the divergence checker leaves them out (the
/// compaction checker judges the leader's answer instead).
fn forget_compacted_replicas(observations: &mut Observations) {
    observations.replicas.retain(|r| r.tp.topic != KV_TOPIC);
    observations
        .final_high_watermarks
        .retain(|tp, _| tp.topic != KV_TOPIC);
    observations.final_isr.retain(|tp, _| tp.topic != KV_TOPIC);
}

/// After the heal (and, in a cluster, convergence): the compacted topic's final read, if the
/// run is still live; its failure is a liveness failure. Returns the workload's history.
async fn finish_kv(
    cluster: &Cluster,
    kv: Arc<KvWorkload>,
    budget: Duration,
    liveness: &mut Result<(), String>,
) -> KvHistory {
    if liveness.is_ok() {
        let kv2 = kv.clone();
        *liveness = cluster
            .client
            .spawn(async move { compaction_workload::final_read(&kv2, budget).await })
            .await
            .expect("kv final read task");
    }
    kv.into_history()
}

/// Flips a payload byte of the first batch of partition 0's oldest segment.
fn corrupt_first_batch(disk: &crate::disk::SimDisk, _partitions: i32) {
    let segment = std::path::Path::new("/data")
        .join(format!("{TOPIC}-0"))
        .join(format!("{:020}.log", 0));
    // Byte 70 lies in the first record of a one-value batch (the header is 61 bytes).
    if let Err(e) = disk.corrupt_durable(&segment, 70) {
        panic!("scenario set-up: cannot corrupt {}: {e}", segment.display());
    }
}

/// What a staged scenario starts with: the cluster, the brokers' addresses, the workload (its
/// history) and the one partition.
pub type Staged = (
    Cluster,
    Vec<String>,
    Arc<Workload>,
    crate::history::TopicPartition,
);

/// The set-up of a staged scenario: a three-node cluster and one partition of [`TOPIC`] with
/// replication factor 3, created before anything else happens.
pub async fn staged_three_node_partition(seed: u64) -> Staged {
    staged_partition(Cluster::start(3, seed, &settings(3)), seed).await
}

/// As [`staged_three_node_partition`], with three brokers that are brokers only and a fourth
/// node, index 3, that is the controller quorum alone
/// ([`Cluster::start_with_dedicated_controller`]).
pub async fn staged_three_brokers_and_a_controller(seed: u64) -> Staged {
    let cluster = Cluster::start_with_dedicated_controller(3, seed, &settings(3));
    staged_partition(cluster, seed).await
}

async fn staged_partition(cluster: Cluster, seed: u64) -> Staged {
    let addrs = cluster.client_addrs();
    let w = Workload::new(addrs.clone(), vec![TOPIC.to_string()], 1);
    let tp = crate::history::TopicPartition::new(TOPIC, 0);
    let created = {
        let addrs = addrs.clone();
        cluster
            .client
            .spawn(async move { create_topic(&addrs, TOPIC, 1, 3).await })
            .await
            .expect("set-up task")
    };
    if let Err(e) = created {
        panic!("seed {seed}: could not create the topic: {e}");
    }
    (cluster, addrs, w, tp)
}

/// Creates the workload topic through any broker (a cluster's are forwarded to the controller),
/// retrying while the cluster forms.
pub async fn create_topic(
    addrs: &[String],
    topic: &str,
    partitions: i32,
    rf: i16,
) -> Result<(), String> {
    create_topic_with_configs(addrs, topic, partitions, rf, &[]).await
}

/// As [`create_topic`], with topic configs.
pub async fn create_topic_with_configs(
    addrs: &[String],
    topic: &str,
    partitions: i32,
    rf: i16,
    configs: &[(&str, &str)],
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let addr = &addrs[attempt % addrs.len()];
        let Ok(conn) = Connection::connect(addr, ConnectionConfig::default()).await else {
            continue;
        };
        match Admin::new(&conn)
            .create_topic(topic, partitions, rf, configs)
            .await
        {
            Ok(()) => return Ok(()),
            // A retry of a create whose answer was lost.
            Err(AdminError::Broker { code, .. }) if code == ErrorCode::TOPIC_ALREADY_EXISTS => {
                return Ok(());
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// The liveness check: one acknowledged write (on every partition) within `budget`, from a new
/// idempotent producer.
async fn await_write(w: &Workload, budget: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    let p = ProcessId(9_999);
    let producer = Producer::new(&w.addrs.join(","), workload::producer_config(true));
    for tp in w.partitions() {
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "no acknowledged write on {tp} within {budget:?} after healing"
                ));
            }
            let value = w.next_value();
            if workload::send(w, p, &producer, &tp, &[value]).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Reads every partition from offset 0 up to its high watermark, recorded as final-read polls.
/// Gives up on a partition after a bounded number of polls: `Err` names the partitions whose
/// read stopped short (a liveness failure; the lost-write checker also reports what it missed).
pub(crate) async fn final_read(w: &Workload) -> Result<(), String> {
    let p = ProcessId(10_000);
    let mut conns = workload::Connections::new();
    let mut short = Vec::new();
    for tp in w.partitions() {
        let mut position = 0i64;
        let mut done = false;
        for _attempt in 0..500 {
            let Some(c) = workload::leader_connection(w, &mut conns, &tp).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if !workload::poll_once(w, p, &c, &tp, &mut position, true).await {
                conns.retain(|_, x| !Arc::ptr_eq(x, &c));
                w.forget_leader(&tp);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            if position >= w.last_high_watermark(p).unwrap_or(i64::MAX) {
                done = true;
                break;
            }
        }
        if !done {
            short.push(format!("{tp} (read up to {position})"));
        }
    }
    if short.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the final read could not reach the high watermark of {}",
            short.join(", ")
        ))
    }
}

/// Waits until partition 0's leader has every replica in its ISR (so its appends replicate), at
/// most 10 s.
pub async fn settle_isr(cluster: &Cluster) {
    for _ in 0..100 {
        let full = (0..cluster.brokers.len())
            .filter_map(|i| replica_view(cluster, i))
            .any(|v| v.leader_epoch.is_some() && v.isr.len() == 3);
        if full {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `f` every 50 ms of simulated time until it finds something, at most `budget`.
pub async fn wait_until<T>(budget: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        if let Some(found) = f() {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What one broker says of its replica of partition 0 of [`TOPIC`], read in-process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    /// Its leader epoch while it leads the partition.
    pub leader_epoch: Option<i32>,
    /// The high watermark it publishes.
    pub high_watermark: i64,
    pub log_end_offset: Option<i64>,
    /// While it leads: the committed ISR (node ids), else empty.
    pub isr: Vec<i32>,
    /// While it leads: the effective `min.insync.replicas`.
    pub min_insync_replicas: Option<usize>,
    /// While it leads: the assigned replicas, the preferred leader first.
    pub replicas: Vec<i32>,
}

/// Broker `i`'s view of partition 0 (`None`: down, or no such partition there yet).
pub fn replica_view(cluster: &Cluster, i: usize) -> Option<ReplicaView> {
    let (_, b) = cluster.live_brokers().into_iter().find(|(j, _)| *j == i)?;
    let p = b.partition(TOPIC, 0)?;
    let high_watermark = p.state().high_watermark;
    let log_end_offset = p.log().as_ref().map(|l| l.log_end_offset().0);
    let role = p.role();
    let (isr, min_insync_replicas, replicas) = match &*role {
        strata_core::replica::Role::Leader(l) => (
            l.isr.isr().iter().map(|n| n.0).collect(),
            Some(l.min_insync_replicas),
            l.isr.replicas().iter().map(|n| n.0).collect(),
        ),
        _ => (Vec::new(), None, Vec::new()),
    };
    Some(ReplicaView {
        leader_epoch: role.leader_epoch(),
        high_watermark,
        log_end_offset,
        isr,
        min_insync_replicas,
        replicas,
    })
}

/// The warm-up of a staged scenario: one acks=-1 write (process 1) that must be acknowledged,
/// then a leader of partition 0 with every replica in its ISR. Returns the leader's index.
pub async fn warm_up(
    cluster: &Cluster,
    w: &Arc<Workload>,
    tp: &crate::history::TopicPartition,
    seed: u64,
) -> usize {
    let (w1, tp1) = (w.clone(), tp.clone());
    let warmed = cluster
        .client
        .spawn(async move {
            let producer = Producer::new(&w1.addrs.join(","), workload::producer_config(true));
            let value = w1.next_value();
            workload::send(&w1, ProcessId(1), &producer, &tp1, &[value]).await
        })
        .await
        .expect("warm-up task");
    assert!(warmed, "seed {seed}: the warm-up batch was acknowledged");
    settle_isr(cluster).await;
    cluster
        .leader_of(0)
        .unwrap_or_else(|| panic!("seed {seed}: no leader after the warm-up"))
}

/// The end of a staged scenario: heals every fault, reads the partition back (the final read)
/// and judges the history with every checker. Panics, naming `scenario`, if the final read
/// cannot reach the high watermark.
pub async fn final_check(
    cluster: &mut Cluster,
    w: Arc<Workload>,
    scenario: &str,
) -> (History, Report) {
    cluster.heal_all();
    let w2 = w.clone();
    cluster
        .client
        .spawn(async move { final_read(&w2).await })
        .await
        .expect("final read task")
        .unwrap_or_else(|e| panic!("{scenario} scenario: {e}"));
    let w = Arc::into_inner(w).expect("the workload is no longer shared");
    let history = w.history.into_inner().expect("history lock poisoned");
    let report = check_all(&history);
    (history, report)
}

/// One Produce attempt of `records` (whole v2 batches) to partition 0 of [`TOPIC`] at `addr`,
/// on a connection of its own, and the broker's answer (call on the client host).
pub async fn produce_once(
    addr: &str,
    records: bytes::Bytes,
    acks: i16,
    timeout_ms: i32,
) -> strata_client::sequencer::AttemptResult {
    use strata_client::producer::{finish_attempt, start_produce};
    use strata_client::sequencer::AttemptResult;
    let conn = match Connection::connect(addr, ConnectionConfig::default()).await {
        Ok(c) => c,
        Err(e) => return AttemptResult::NoAnswer(e.to_string()),
    };
    match start_produce(&conn, TOPIC, 0, records, acks, timeout_ms).await {
        Ok(Some(in_flight)) => finish_attempt(in_flight, 0).await,
        Ok(None) => AttemptResult::NoAnswer("acks=0".into()),
        Err(e) => AttemptResult::NoAnswer(e.to_string()),
    }
}

/// Sends `n` fresh values to partition 0, one acks=-1 batch each, as process `p` from the client
/// host with a producer bootstrapped from `bootstrap`; returns how many were acknowledged.
pub async fn send_values(
    cluster: &Cluster,
    w: &Arc<Workload>,
    bootstrap: &[String],
    p: ProcessId,
    n: usize,
) -> usize {
    let (w, bootstrap) = (w.clone(), bootstrap.join(","));
    cluster
        .client
        .spawn(async move {
            let producer = Producer::new(&bootstrap, workload::producer_config(true));
            let tp = crate::history::TopicPartition::new(TOPIC, 0);
            let mut acknowledged = 0;
            for _ in 0..n {
                let value = w.next_value();
                if workload::send(&w, p, &producer, &tp, &[value]).await {
                    acknowledged += 1;
                }
            }
            acknowledged
        })
        .await
        .expect("send task")
}

/// Sends one fresh value to `addr` in a single Produce attempt with `acks` and `timeout_ms`,
/// recorded in the history as process `p`'s send, and returns the broker's answer.
pub async fn send_once(
    cluster: &Cluster,
    w: &Arc<Workload>,
    tp: &crate::history::TopicPartition,
    addr: &str,
    p: ProcessId,
    acks: i16,
    timeout_ms: i32,
) -> strata_client::sequencer::AttemptResult {
    spawn_send_once(cluster, w, tp, addr, p, acks, timeout_ms)
        .await
        .expect("send task")
}

/// [`send_once`] as a task of the client host, so the caller can fault the cluster while the
/// answer is outstanding. The send is recorded (invoked) at once, its outcome when it completes.
pub fn spawn_send_once(
    cluster: &Cluster,
    w: &Arc<Workload>,
    tp: &crate::history::TopicPartition,
    addr: &str,
    p: ProcessId,
    acks: i16,
    timeout_ms: i32,
) -> madsim::task::JoinHandle<strata_client::sequencer::AttemptResult> {
    use crate::history::{Acks, Call, Value};
    use strata_client::sequencer::AttemptResult;
    let value = w.next_value();
    w.invoke(
        p,
        Call::Send {
            tp: tp.clone(),
            values: vec![Value(value)],
            acks: if acks == -1 { Acks::All } else { Acks::Leader },
            resends: false,
        },
    );
    let (w, addr) = (w.clone(), addr.to_string());
    let bytes = value.to_be_bytes();
    let batch = bytes::Bytes::from(strata_core::batch::build_batch(&[(&bytes[..], None)], 0));
    let budget = Duration::from_millis(timeout_ms.unsigned_abs() as u64 + 2_000);
    cluster.client.spawn(async move {
        let result = tokio::time::timeout(budget, produce_once(&addr, batch, acks, timeout_ms))
            .await
            .unwrap_or_else(|_| AttemptResult::NoAnswer(format!("no answer within {budget:?}")));
        workload::record_outcome(
            &w,
            p,
            &strata_client::producer::single_attempt_outcome(result.clone()),
        );
        result
    })
}
