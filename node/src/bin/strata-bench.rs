//! `strata-bench`: produce then consume throughput and latency against a running broker.
//!
//! Phase 1 produces `--total-bytes` of `--message-size` messages, spread over `--partitions`
//! partitions, in batches of `--batch-bytes`, with `--in-flight` requests pipelined per
//! partition over `--connections` shared connections per broker. Phase 2 reads every partition
//! back from where phase 1 started with large fetches. Both phases print progress once a second
//! and latency percentiles per request at the end.
//!
//! Produces go through Strata's own [`Producer`], idempotent by default as users get it (a
//! producer id from InitProducerId, per-partition sequence numbers, at most five batches in
//! flight per partition); `--no-idempotence` sends plain batches instead. The producer routes
//! each partition to its leader and retries batches answered with `NOT_LEADER_OR_FOLLOWER` or
//! another retriable error, or lost with their connection, up to its delivery timeout; retries
//! are counted and printed (with `--no-idempotence` a retried batch may be in the log twice).
//! ListOffsets and fetches go to the partition's leader through a [`Router`].
//!
//! The bench never runs under the simulator, so it reads `/proc` with `std::fs` and the wall
//! clock with `SystemTime`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use strata_core::batch::{BatchIter, build_batch};

use strata_client::ConnectionConfig;
use strata_client::admin::{Admin, AdminError, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use strata_client::consumer::{FetchConfig, start_fetch};
use strata_client::metadata::Router;
use strata_client::producer::{IndefiniteReason, ProduceOutcome};
use strata_client::{Producer, ProducerConfig};
use strata_core::error::ErrorCode;
use tokio::time::Instant;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Produce/consume benchmark for a Kafka-compatible broker",
    args_override_self = true
)]
struct Args {
    /// Broker addresses, comma-separated (`host:port` or `a:1,b:2,c:3`); any one that answers
    /// is enough, the rest are learnt from Metadata.
    #[arg(long, default_value = "127.0.0.1:9092", value_delimiter = ',')]
    bootstrap: Vec<String>,
    #[arg(long, default_value = "strata-bench")]
    topic: String,
    /// Partitions of the topic (created if missing); one producer task per partition.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Replication factor of the topic when the bench creates it.
    #[arg(long, default_value_t = 1)]
    replication_factor: i16,
    /// Wait (up to `--wait-secs`) until Metadata lists at least this many live brokers before
    /// creating the topic (0: do not wait).
    #[arg(long, default_value_t = 0)]
    expect_brokers: usize,
    /// How long to wait for brokers, and for partition leaders after creating the topic.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
    #[arg(long, default_value_t = 1024)]
    message_size: usize,
    /// Bytes of message values to produce in total.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    total_bytes: u64,
    /// Payload bytes per produce batch.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes: usize,
    /// Produce requests in flight per partition (at most 5 with idempotence).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// `-1` (all), `1` or `0`; anything but `-1` needs `--no-idempotence`.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// Produce without producer id and sequence numbers (retries may then duplicate).
    #[arg(long)]
    no_idempotence: bool,
    /// Connections per broker, shared by the partition tasks it leads (round-robin).
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Bytes per fetch response in the consume phase.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    fetch_bytes: i32,
    /// Report this process's resident memory (a broker's pid; repeat for several brokers).
    #[arg(long)]
    broker_pid: Vec<u32>,
    /// Skip the consume phase.
    #[arg(long)]
    produce_only: bool,
    /// Skip the produce phase and consume every partition from its log start offset.
    #[arg(long, conflicts_with = "produce_only")]
    consume_only: bool,
}

/// Latency samples in microseconds; percentiles by sorting (a run has at most tens of
/// thousands of requests, so an exact sort is cheaper than a histogram dependency).
#[derive(Default)]
struct Latencies(Vec<u64>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let idx = ((p / 100.0) * (self.0.len() - 1) as f64).round() as usize;
        self.0[idx.min(self.0.len() - 1)] as f64 / 1000.0
    }
    fn summary(&mut self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} requests)",
            self.percentile(50.0),
            self.percentile(99.0),
            self.percentile(99.9),
            self.percentile(100.0),
            self.0.len()
        )
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `pid N: M MiB` for each broker pid.
fn rss_report(pids: &[u32]) -> String {
    pids.iter()
        .map(|&pid| format!("pid {pid}: {} MiB", rss_kib(pid).unwrap_or(0) / 1024))
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_ms() -> i64 {
    strata_node::clock::now_ms()
}

/// Prints `label: X MiB/s` once a second until `done` is set.
fn spawn_progress(label: &'static str, bytes: Arc<AtomicU64>, done: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut last = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if done.load(Ordering::Relaxed) != 0 {
                return;
            }
            let now = bytes.load(Ordering::Relaxed);
            println!(
                "  {label}: {:>8.1} MiB total, {:>7.1} MiB/s now, {:>7.1} MiB/s average",
                mib(now),
                mib(now - last),
                mib(now) / start.elapsed().as_secs_f64()
            );
            last = now;
        }
    });
}

/// Pause between retries of a request that failed because leaders moved or were not ready.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Retries in a row of one partition's requests before the bench gives up on it: about a
/// minute at [`RETRY_BACKOFF`], longer than fencing a dead leader (`broker.session.timeout.ms`,
/// 9 s by default) and electing another.
const MAX_RETRIES_PER_PARTITION: u64 = 600;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.partitions < 1 || args.connections < 1 || args.in_flight < 1 || args.message_size < 1 {
        bail!("--partitions, --connections, --in-flight and --message-size must be at least 1");
    }
    if args.replication_factor < 1 {
        bail!("--replication-factor must be at least 1");
    }
    if !args.no_idempotence && (args.acks != -1 || args.in_flight > 5) {
        bail!("an idempotent producer needs --acks -1 and --in-flight <= 5 (or --no-idempotence)");
    }
    let config = ConnectionConfig {
        client_id: "strata-bench".to_string(),
        ..ConnectionConfig::default()
    };
    let router = Arc::new(Router::new(&args.bootstrap, config, args.connections));
    let brokers = wait_for_brokers(&args, &router).await?;
    println!(
        "brokers: {}",
        brokers
            .iter()
            .map(|(id, addr)| format!("{id}@{addr}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let conn = router.any_connection().await.context("connect")?;
    match Admin::new(&conn)
        .create_topic(&args.topic, args.partitions, args.replication_factor, &[])
        .await
    {
        Ok(()) => println!(
            "created topic {} with {} partitions, replication factor {}",
            args.topic, args.partitions, args.replication_factor
        ),
        Err(AdminError::Broker { code, .. }) if code == ErrorCode::TOPIC_ALREADY_EXISTS => {
            println!("topic {} exists; appending", args.topic)
        }
        Err(e) => return Err(e).context("create topic"),
    }
    wait_for_leaders(&args, &router).await?;
    let from = if args.consume_only {
        EARLIEST_TIMESTAMP
    } else {
        LATEST_TIMESTAMP
    };
    let mut start_offsets = Vec::new();
    for p in 0..args.partitions {
        start_offsets.push(list_offset(&router, &args.topic, p, from).await?);
    }
    if !args.broker_pid.is_empty() {
        println!("broker RSS before: {}", rss_report(&args.broker_pid));
    }

    if !args.consume_only {
        produce_phase(&args, &args.bootstrap).await?;
    }
    if args.produce_only {
        return Ok(());
    }
    consume_phase(&args, &router, &start_offsets).await
}

/// Waits until Metadata lists `--expect-brokers` live brokers; returns them.
async fn wait_for_brokers(
    args: &Args,
    router: &Router,
) -> Result<std::collections::BTreeMap<i32, String>> {
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    loop {
        let last = match router.brokers().await {
            Ok(b) if b.len() >= args.expect_brokers => return Ok(b),
            Ok(b) => format!("{} of {} brokers", b.len(), args.expect_brokers),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("waiting for {} brokers: {last}", args.expect_brokers);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until every partition of the topic has a leader, then prints leaders, replicas and
/// ISR (so a run shows the replication it measured).
async fn wait_for_leaders(args: &Args, router: &Router) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    loop {
        let parts = router.partitions(&args.topic).await?;
        let ready = parts.len() >= args.partitions as usize && parts.iter().all(|p| p.leader >= 0);
        if ready {
            for p in &parts {
                println!(
                    "  partition {}: leader {} epoch {}, replicas {:?}, isr {:?}",
                    p.partition, p.leader, p.leader_epoch, p.replicas, p.isr
                );
            }
            if (parts.len() as i32) < args.partitions {
                bail!("topic {} has {} partitions", args.topic, parts.len());
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("partitions of {} without a leader: {parts:?}", args.topic);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ListOffsets at the partition's leader, retried while leaders move or a new leader has not
/// established its high watermark yet (KIP-207: it answers NOT_LEADER_OR_FOLLOWER until then).
async fn list_offset(router: &Router, topic: &str, partition: i32, timestamp: i64) -> Result<i64> {
    let mut last = String::new();
    for _ in 0..MAX_RETRIES_PER_PARTITION {
        let result = match router.leader_connection(topic, partition, 0).await {
            Ok((_, conn)) => Admin::new(&conn)
                .list_offset(topic, partition, timestamp)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok((offset, _)) => return Ok(offset),
            Err(e) => last = e,
        }
        router.invalidate().await;
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
    bail!("list offsets of {topic}-{partition}: {last}")
}

/// The producer the produce phase measures: the defaults users get, with the bench's knobs.
fn producer_config(args: &Args) -> ProducerConfig {
    ProducerConfig {
        enable_idempotence: !args.no_idempotence,
        acks: args.acks,
        max_in_flight: args.in_flight,
        connections_per_broker: args.connections,
        connection: ConnectionConfig {
            client_id: "strata-bench".to_string(),
            ..ConnectionConfig::default()
        },
        ..ProducerConfig::default()
    }
}

async fn produce_phase(args: &Args, bootstrap: &[String]) -> anyhow::Result<()> {
    let per_batch = (args.batch_bytes / args.message_size).max(1);
    let batch_payload = (per_batch * args.message_size) as u64;
    let total_batches = args.total_bytes.div_ceil(batch_payload).max(1);
    let value: Vec<u8> = (0..args.message_size).map(|i| (i % 251) as u8).collect();
    let values: Vec<(&[u8], Option<&[u8]>)> = (0..per_batch).map(|_| (&value[..], None)).collect();
    let batch = Bytes::from(build_batch(&values, now_ms()));
    let producer = Arc::new(
        Producer::try_new(bootstrap, producer_config(args))
            .context("producer settings (idempotence needs --acks -1 and --in-flight <= 5)")?,
    );
    println!(
        "produce: {} batches of {} x {} B messages ({:.1} MiB), acks={}, {} in flight per partition, {} connections per broker, idempotence {}",
        total_batches,
        per_batch,
        args.message_size,
        mib(total_batches * batch_payload),
        args.acks,
        args.in_flight,
        args.connections,
        if args.no_idempotence { "off" } else { "on" }
    );

    // Phase 1: produce.
    let produced = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    spawn_progress("produce", Arc::clone(&produced), Arc::clone(&done));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..args.partitions {
        let batches = total_batches / args.partitions as u64
            + u64::from((p as u64) < total_batches % args.partitions as u64);
        let (producer, topic, batch, produced, in_flight) = (
            Arc::clone(&producer),
            args.topic.clone(),
            batch.clone(),
            Arc::clone(&produced),
            args.in_flight,
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut window = VecDeque::new();
            let mut failures = 0u64;
            let mut queued = 0u64;
            while queued < batches || !window.is_empty() {
                // Keep `in_flight` batches queued: the producer pipelines them (and holds back
                // what its window does not allow).
                if queued < batches && window.len() < in_flight {
                    let t0 = Instant::now();
                    let outcome = producer.enqueue(&topic, p, batch.clone());
                    window.push_back((t0, outcome));
                    queued += 1;
                    continue;
                }
                let Some((t0, queued_batch)) = window.pop_front() else {
                    break;
                };
                let outcome = match queued_batch {
                    Ok(delivery) => delivery.await,
                    Err(outcome) => outcome,
                };
                lat.0.push(t0.elapsed().as_micros() as u64);
                match outcome {
                    ProduceOutcome::Ok { .. }
                    | ProduceOutcome::Indefinite(IndefiniteReason::NoAcks) => {
                        produced.fetch_add(batch_payload, Ordering::Relaxed);
                    }
                    other => {
                        failures += 1;
                        if failures <= 3 {
                            eprintln!("partition {p}: produce {other:?}");
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>((lat, failures))
        }));
    }
    let mut produce_lat = Latencies::default();
    let mut failures = 0;
    for t in tasks {
        let (lat, f) = t.await.context("produce task panicked")??;
        produce_lat.0.extend(lat.0);
        failures += f;
    }
    let retries = producer.stats().retries;
    let produce_secs = start.elapsed().as_secs_f64();
    done.store(1, Ordering::Relaxed);
    let produced_bytes = produced.load(Ordering::Relaxed);
    let produced_msgs = produced_bytes / args.message_size as u64;
    println!();
    println!("== produce ==");
    println!(
        "  {:.1} MiB ({} B, {} msgs) in {:.2} s: {:.1} MiB/s, {:.0} msgs/s, {} failed requests, {} retried",
        mib(produced_bytes),
        produced_bytes,
        produced_msgs,
        produce_secs,
        mib(produced_bytes) / produce_secs,
        produced_msgs as f64 / produce_secs,
        failures,
        retries
    );
    println!("  latency per request: {}", produce_lat.summary());
    if !args.broker_pid.is_empty() {
        println!(
            "  broker RSS after produce: {}",
            rss_report(&args.broker_pid)
        );
    }
    Ok(())
}

async fn consume_phase(
    args: &Args,
    router: &Arc<Router>,
    start_offsets: &[i64],
) -> anyhow::Result<()> {
    // Phase 2: consume every partition from where this run started, one fetch in flight per
    // partition, at the partition's leader (partitions of one leader share its connections, so
    // fetches are pipelined per connection).
    let mut ends = Vec::new();
    for p in 0..args.partitions {
        ends.push(list_offset(router, &args.topic, p, LATEST_TIMESTAMP).await?);
    }
    let consumed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    spawn_progress("consume", Arc::clone(&consumed), Arc::clone(&done));
    let fetch_config = FetchConfig {
        max_wait_ms: 100,
        min_bytes: 1,
        max_bytes: args.fetch_bytes,
        partition_max_bytes: args.fetch_bytes,
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..args.partitions {
        let (router, topic, consumed, fc) = (
            Arc::clone(router),
            args.topic.clone(),
            Arc::clone(&consumed),
            fetch_config.clone(),
        );
        let (mut pos, end) = (start_offsets[p as usize], ends[p as usize]);
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut records = 0u64;
            let mut retries = 0u64;
            while pos < end {
                let t0 = Instant::now();
                let resp = match router.leader_connection(&topic, p, p as usize).await {
                    Ok((_, conn)) => match start_fetch(&conn, &[(&topic, p, pos)], &fc).await {
                        Ok(f) => f.wait().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                };
                let part = resp.and_then(|resp| {
                    let part = resp
                        .responses
                        .iter()
                        .flat_map(|t| t.partitions.iter())
                        .find(|x| x.partition_index == p)
                        .cloned()
                        .ok_or_else(|| "fetch response without the partition".to_string())?;
                    match ErrorCode(part.error_code) {
                        ErrorCode::NONE => Ok(part),
                        code => Err(format!("fetch at {pos}: {code:?}")),
                    }
                });
                let part = match part {
                    Ok(part) => part,
                    Err(e) => {
                        retries += 1;
                        if retries > MAX_RETRIES_PER_PARTITION {
                            bail!("partition {p}: {e}");
                        }
                        router.invalidate().await;
                        tokio::time::sleep(RETRY_BACKOFF).await;
                        continue;
                    }
                };
                lat.0.push(t0.elapsed().as_micros() as u64);
                let data = part.records.clone().unwrap_or_default();
                let mut iter = BatchIter::new(&data);
                let mut bytes = 0u64;
                for item in iter.by_ref() {
                    let (_, h) = item.map_err(|e| anyhow::anyhow!("partition {p}: {e}"))?;
                    if h.next_offset().0 <= pos {
                        continue;
                    }
                    records += h.record_count as u64;
                    bytes += h.total_size() as u64;
                    pos = h.next_offset().0;
                }
                consumed.fetch_add(bytes, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>((lat, records, retries))
        }));
    }
    let mut fetch_lat = Latencies::default();
    let (mut records, mut retries) = (0, 0);
    for t in tasks {
        let (lat, r, x) = t.await.context("consume task panicked")??;
        fetch_lat.0.extend(lat.0);
        records += r;
        retries += x;
    }
    let consume_secs = start.elapsed().as_secs_f64();
    done.store(1, Ordering::Relaxed);
    let consumed_bytes = consumed.load(Ordering::Relaxed);
    println!();
    println!("== consume ==");
    println!(
        "  {:.1} MiB ({} records) in {:.2} s: {:.1} MiB/s, {:.0} msgs/s, {} retried fetches",
        mib(consumed_bytes),
        records,
        consume_secs,
        mib(consumed_bytes) / consume_secs,
        records as f64 / consume_secs,
        retries
    );
    println!("  latency per fetch: {}", fetch_lat.summary());
    if !args.broker_pid.is_empty() {
        println!(
            "  broker RSS after consume: {}",
            rss_report(&args.broker_pid)
        );
    }
    Ok(())
}
