//! One simulated run: start the cluster, run the workload under the nemesis, heal and restart
//! everything (liveness phase: writes must succeed again within a budget), read every partition
//! from the log start (final read), and judge the history with every checker.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use strata_node::client::{Admin, Connection, ConnectionConfig, Producer, ProducerConfig};

use super::cluster::Cluster;
use super::nemesis::{Fault, Nemesis, Swarm};
use super::workload::{self, TOPIC, Workload};
use crate::checker::{Report, check_all};
use crate::history::{History, ProcessId, TopicPartition};

/// What one run does.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub partitions: i32,
    pub producers: u32,
    pub consumers: u32,
    /// Simulated length of the fault phase.
    pub fault_phase: Duration,
    /// Simulated time the cluster gets, after healing, to accept a write again.
    pub liveness_budget: Duration,
    pub swarm: Swarm,
    /// Named scenario: after the fault phase, with the broker stopped, flip a byte in the payload
    /// of the first batch of its oldest segment (durable damage at rest), then restart it.
    pub corrupt_old_segment: bool,
}

impl Options {
    /// The swarm options drawn from `seed`.
    pub fn for_seed(seed: u64) -> Options {
        let mut rng = StdRng::seed_from_u64(seed);
        Options {
            seed,
            partitions: 3,
            producers: 3,
            consumers: 1,
            fault_phase: Duration::from_secs(20),
            liveness_budget: Duration::from_secs(30),
            swarm: Swarm::draw(&mut rng),
            corrupt_old_segment: false,
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
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.report.is_valid() && self.liveness.is_ok()
    }
}

/// Broker settings for simulated runs: small segments and indexes so rolls, index lookups and
/// checkpoints happen often.
fn settings() -> Vec<String> {
    [
        "log.segment.bytes=8192",
        "log.index.interval.bytes=256",
        "log.flush.offset.checkpoint.interval.ms=2000",
        "log.retention.ms=-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub async fn run(opts: Options) -> Outcome {
    let start = tokio::time::Instant::now();
    let mut cluster = Cluster::start(1, opts.seed, &settings());
    let addr = cluster.brokers[0].addr.clone();
    let w = Workload::new(addr.clone(), opts.partitions);

    // Set-up and workload run on the client host (the supervisor has no address).
    let setup = {
        let (addr, partitions) = (addr.clone(), opts.partitions);
        cluster
            .client
            .spawn(async move { create_topic(&addr, partitions).await })
    };
    let created = setup.await.expect("set-up task");
    let mut tasks = Vec::new();
    if created.is_ok() {
        for p in 0..opts.producers {
            let pause = Duration::from_millis(20 + 10 * u64::from(p));
            tasks.push(cluster.client.spawn(workload::run_producer(
                w.clone(),
                ProcessId(p),
                pause,
            )));
        }
        for c in 0..opts.consumers {
            tasks.push(
                cluster
                    .client
                    .spawn(workload::run_consumer(w.clone(), ProcessId(1_000 + c))),
            );
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

    w.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("workload task");
    }
    if liveness.is_ok() {
        let w2 = w.clone();
        cluster
            .client
            .spawn(async move { final_read(&w2).await })
            .await
            .expect("final read task");
    }

    let w = Arc::into_inner(w).expect("every workload task has finished");
    let history = w.history.into_inner().expect("history lock poisoned");
    let report = check_all(&history);
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
    }
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

async fn create_topic(addr: &str, partitions: i32) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(conn) = Connection::connect(addr, ConnectionConfig::default()).await else {
            continue;
        };
        match Admin::new(&conn)
            .create_topic(TOPIC, partitions, 1, &[])
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// The liveness check: one acknowledged write (on every partition) within `budget`.
async fn await_write(w: &Workload, budget: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    let p = ProcessId(9_999);
    let mut producer = Producer::new(
        &w.addr,
        ProducerConfig {
            retries: 0,
            ..ProducerConfig::default()
        },
    );
    for partition in 0..w.partitions {
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "no acknowledged write on partition {partition} within {budget:?} after healing"
                ));
            }
            let value = w.next_value();
            if workload::send(w, p, &mut producer, partition, value).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Reads every partition from offset 0 up to its high watermark, recorded as final-read polls.
/// Gives up on a partition after a bounded number of polls (the lost-write checker then reports
/// a final read that stopped short).
async fn final_read(w: &Workload) {
    let p = ProcessId(10_000);
    let mut conn: Option<Arc<Connection>> = None;
    for partition in 0..w.partitions {
        let tp = TopicPartition::new(TOPIC, partition);
        let mut position = 0i64;
        for _attempt in 0..500 {
            let c = match &conn {
                Some(c) => c.clone(),
                None => match Connection::connect(&w.addr, ConnectionConfig::default()).await {
                    Ok(c) => conn.insert(Arc::new(c)).clone(),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            if !workload::poll_once(w, p, &c, &tp, &mut position, true).await {
                conn = None;
                continue;
            }
            if position >= w.last_high_watermark(p).unwrap_or(i64::MAX) {
                break;
            }
        }
    }
}
