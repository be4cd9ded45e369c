//! `strata-bench`: produce then consume throughput and latency against a running broker.
//!
//! Phase 1 produces `--total-bytes` of `--message-size` messages, spread over `--partitions`
//! partitions, in batches of `--batch-bytes`, with `--in-flight` requests pipelined per
//! partition over `--connections` shared connections. Phase 2 reads every partition back from
//! offset 0 with large fetches. Both phases print progress once a second and latency
//! percentiles per request at the end.
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
use strata_core::error::ErrorCode;
use strata_node::client::admin::{Admin, AdminError, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use strata_node::client::consumer::{FetchConfig, start_fetch};
use strata_node::client::producer::{ProduceOutcome, finish_produce, start_produce};
use strata_node::client::{Connection, ConnectionConfig};
use tokio::time::Instant;

#[derive(Parser, Debug, Clone)]
#[command(about = "Produce/consume benchmark for a Kafka-compatible broker")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "strata-bench")]
    topic: String,
    /// Partitions of the topic (created if missing); one producer task per partition.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    #[arg(long, default_value_t = 1024)]
    message_size: usize,
    /// Bytes of message values to produce in total.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    total_bytes: u64,
    /// Payload bytes per produce batch.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_bytes: usize,
    /// Produce requests in flight per partition.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// Connections shared by the partition tasks (round-robin).
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Bytes per fetch response in the consume phase.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    fetch_bytes: i32,
    /// Report this process's resident memory (the broker's pid).
    #[arg(long)]
    broker_pid: Option<u32>,
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.partitions < 1 || args.connections < 1 || args.in_flight < 1 || args.message_size < 1 {
        bail!("--partitions, --connections, --in-flight and --message-size must be at least 1");
    }
    let config = ConnectionConfig {
        client_id: "strata-bench".to_string(),
        ..ConnectionConfig::default()
    };
    let mut conns = Vec::new();
    for _ in 0..args.connections {
        conns.push(Arc::new(
            Connection::connect(&args.bootstrap, config.clone())
                .await
                .with_context(|| format!("connect to {}", args.bootstrap))?,
        ));
    }
    let admin = Admin::new(&conns[0]);
    match admin
        .create_topic(&args.topic, args.partitions, 1, &[])
        .await
    {
        Ok(()) => println!(
            "created topic {} with {} partitions",
            args.topic, args.partitions
        ),
        Err(AdminError::Broker { code, .. }) if code == ErrorCode::TOPIC_ALREADY_EXISTS => {
            println!("topic {} exists; appending", args.topic)
        }
        Err(e) => return Err(e).context("create topic"),
    }
    let mut start_offsets = Vec::new();
    let from = if args.consume_only {
        EARLIEST_TIMESTAMP
    } else {
        LATEST_TIMESTAMP
    };
    for p in 0..args.partitions {
        start_offsets.push(admin.list_offset(&args.topic, p, from).await?.0);
    }
    if let Some(pid) = args.broker_pid {
        println!(
            "broker RSS before: {} MiB",
            rss_kib(pid).unwrap_or(0) / 1024
        );
    }

    if !args.consume_only {
        produce_phase(&args, &conns).await?;
    }
    if args.produce_only {
        return Ok(());
    }
    consume_phase(&args, &admin, &conns, &start_offsets).await
}

async fn produce_phase(args: &Args, conns: &[Arc<Connection>]) -> anyhow::Result<()> {
    let per_batch = (args.batch_bytes / args.message_size).max(1);
    let batch_payload = (per_batch * args.message_size) as u64;
    let total_batches = args.total_bytes.div_ceil(batch_payload).max(1);
    let value: Vec<u8> = (0..args.message_size).map(|i| (i % 251) as u8).collect();
    let values: Vec<(&[u8], Option<&[u8]>)> = (0..per_batch).map(|_| (&value[..], None)).collect();
    let batch = Bytes::from(build_batch(&values, now_ms()));
    println!(
        "produce: {} batches of {} x {} B messages ({:.1} MiB), acks={}, {} in flight per partition, {} connections",
        total_batches,
        per_batch,
        args.message_size,
        mib(args.total_bytes),
        args.acks,
        args.in_flight,
        args.connections
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
        let conn = Arc::clone(&conns[p as usize % conns.len()]);
        let (topic, batch, produced, a) = (
            args.topic.clone(),
            batch.clone(),
            Arc::clone(&produced),
            args.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut window = VecDeque::new();
            let mut failures = 0u64;
            let mut sent = 0u64;
            while sent < batches || !window.is_empty() {
                if sent < batches && window.len() < a.in_flight {
                    let t0 = Instant::now();
                    match start_produce(&conn, &topic, p, batch.clone(), a.acks, 30_000).await {
                        Ok(f) => window.push_back((t0, f)),
                        Err(e) => return Err(anyhow::anyhow!("partition {p}: {e}")),
                    }
                    sent += 1;
                    continue;
                }
                let Some((t0, f)) = window.pop_front() else {
                    break;
                };
                let outcome = match f {
                    Some(f) => finish_produce(f, p).await,
                    None => ProduceOutcome::Ok {
                        base_offset: -1,
                        after_indefinite: false,
                    },
                };
                lat.0.push(t0.elapsed().as_micros() as u64);
                match outcome {
                    ProduceOutcome::Ok { .. } => {
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
    let produce_secs = start.elapsed().as_secs_f64();
    done.store(1, Ordering::Relaxed);
    let produced_bytes = produced.load(Ordering::Relaxed);
    let produced_msgs = produced_bytes / args.message_size as u64;
    println!();
    println!("== produce ==");
    println!(
        "  {:.1} MiB in {:.2} s: {:.1} MiB/s, {:.0} msgs/s, {} failed requests",
        mib(produced_bytes),
        produce_secs,
        mib(produced_bytes) / produce_secs,
        produced_msgs as f64 / produce_secs,
        failures
    );
    println!("  latency per request: {}", produce_lat.summary());
    if let Some(pid) = args.broker_pid {
        println!(
            "  broker RSS after produce: {} MiB",
            rss_kib(pid).unwrap_or(0) / 1024
        );
    }
    Ok(())
}

async fn consume_phase(
    args: &Args,
    admin: &Admin<'_>,
    conns: &[Arc<Connection>],
    start_offsets: &[i64],
) -> anyhow::Result<()> {
    // Phase 2: consume every partition from where this run started, one fetch in flight per
    // partition, partitions sharing the connections (so fetches are pipelined per connection).
    let mut ends = Vec::new();
    for p in 0..args.partitions {
        ends.push(admin.list_offset(&args.topic, p, LATEST_TIMESTAMP).await?.0);
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
        let conn = Arc::clone(&conns[p as usize % conns.len()]);
        let (topic, consumed, fc) = (
            args.topic.clone(),
            Arc::clone(&consumed),
            fetch_config.clone(),
        );
        let (mut pos, end) = (start_offsets[p as usize], ends[p as usize]);
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut records = 0u64;
            while pos < end {
                let t0 = Instant::now();
                let resp = start_fetch(&conn, &[(&topic, p, pos)], &fc)
                    .await?
                    .wait()
                    .await?;
                lat.0.push(t0.elapsed().as_micros() as u64);
                let part = resp
                    .responses
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .find(|x| x.partition_index == p)
                    .context("fetch response without the partition")?;
                if part.error_code != 0 {
                    bail!("partition {p}: fetch at {pos}: error {}", part.error_code);
                }
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
            Ok::<_, anyhow::Error>((lat, records))
        }));
    }
    let mut fetch_lat = Latencies::default();
    let mut records = 0;
    for t in tasks {
        let (lat, r) = t.await.context("consume task panicked")??;
        fetch_lat.0.extend(lat.0);
        records += r;
    }
    let consume_secs = start.elapsed().as_secs_f64();
    done.store(1, Ordering::Relaxed);
    let consumed_bytes = consumed.load(Ordering::Relaxed);
    println!();
    println!("== consume ==");
    println!(
        "  {:.1} MiB ({} records) in {:.2} s: {:.1} MiB/s, {:.0} msgs/s",
        mib(consumed_bytes),
        records,
        consume_secs,
        mib(consumed_bytes) / consume_secs,
        records as f64 / consume_secs
    );
    println!("  latency per fetch: {}", fetch_lat.summary());
    if let Some(pid) = args.broker_pid {
        println!(
            "  broker RSS after consume: {} MiB",
            rss_kib(pid).unwrap_or(0) / 1024
        );
    }
    Ok(())
}
