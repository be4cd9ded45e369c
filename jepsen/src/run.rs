//! One run end to end: network and cluster up, the topic, the workload under the nemesis's
//! seeded plan, heal, convergence, final read, verdicts, and the output directory.
//!
//! Output directory (`--out`):
//!
//! | file | what |
//! |---|---|
//! | `seed` | the seed |
//! | `rerun.sh` | the exact command that reruns this run |
//! | `plan.json` | the nemesis plan drawn from the seed |
//! | `schedule.json` | the fault windows as applied (times on the history's clock) |
//! | `evidence.json` | what the faults were seen to do (processes gone, packets dropped, ...) |
//! | `history.jsonl` | one JSON object per history event (invoke / ok / fail / info) |
//! | `groups.jsonl` | the consumer-group history (subscribe mode) |
//! | `verdict.txt`, `verdict.json` | one verdict per anomaly name |
//! | `latency.svg` | throughput and latency over time, fault windows shaded |
//! | `summary.txt` | the one-screen summary printed at the end |
//! | `n<K>/strata.log` | each node's output, every incarnation |
//!
//! Invariants: the cluster (and with it every namespace, rule, mount and process) is dropped
//! before [`run`] returns, on success, error or panic. With `acks=1` the claim under test is
//! that an `acks=1` acknowledgement is as durable as `acks=all`: every acknowledged `acks=1` send
//! is marked `leader_survived`, so lost-write judges it (and must find losses under leader
//! kills; `tests/acks1_loses_writes.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value as Json, json};
use strata_sim::group_history::GroupHistory;
use strata_sim::history::{Call, History, OpKind, Reply};
use tokio::task::JoinHandle;

use crate::FaultWindow;
use crate::cluster::{Cluster, ClusterOptions};
use crate::nemesis::{self, Clock, Evidence, NemesisKind, Plan, PlanContext};
use crate::verdict::Verdicts;
use crate::workload::{self, PARTITIONS, TOPIC, Workload};

/// Consumers' mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Assign,
    Subscribe,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub seed: u64,
    pub nemesis: NemesisKind,
    /// Length of the fault phase.
    pub time_limit: Duration,
    /// Producer `acks`: -1 or 1.
    pub acks: i16,
    pub mode: Mode,
    /// Also run confluent-kafka clients ([`crate::confluent`]).
    pub confluent: bool,
    pub out: PathBuf,
    pub strata_bin: PathBuf,
}

impl RunOptions {
    /// The command line that reruns these options.
    pub fn command(&self) -> String {
        let mut cmd = format!(
            "cd {} && STRATA_BIN={} target/release/strata-jepsen --seed {} --nemesis {} \
             --time-limit {} --mode {} --out {}",
            crate::binary::workspace_root().display(),
            self.strata_bin.display(),
            self.seed,
            self.nemesis.name(),
            self.time_limit.as_secs(),
            match self.mode {
                Mode::Assign => "assign",
                Mode::Subscribe => "subscribe",
            },
            self.out.display()
        );
        if self.acks == 1 {
            cmd.push_str(" --acks 1");
        }
        if self.confluent {
            cmd.push_str(" --confluent");
        }
        cmd
    }
}

/// What a run produced (also written to the output directory).
#[derive(Debug, Clone)]
pub struct RunReport {
    pub plan: Plan,
    pub windows: Vec<FaultWindow>,
    pub evidence: Evidence,
    pub history: History,
    pub groups: Option<GroupHistory>,
    pub verdicts: Verdicts,
    /// Liveness after the heal (cluster converged, group settled, final read complete); the
    /// error if not.
    pub liveness: std::result::Result<(), String>,
    pub counts: OpCounts,
    pub summary: String,
}

impl RunReport {
    /// Valid: every checker found nothing and the cluster was live after the heal.
    pub fn valid(&self) -> bool {
        self.verdicts.valid && self.liveness.is_ok()
    }
}

/// Completed operations by outcome.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct OpCounts {
    pub operations: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    pub sends_ok: usize,
    pub polls_ok: usize,
    pub final_read_records: usize,
}

/// The node whose disk is small: drawn from the seed when the nemesis can fill a disk.
fn small_disk(options: &RunOptions) -> Option<u32> {
    matches!(options.nemesis, NemesisKind::Disk | NemesisKind::Combined)
        .then_some((options.seed % 5) as u32 + 1)
}

/// Runs one test (see the module docs).
pub async fn run(options: RunOptions) -> Result<RunReport> {
    crate::net::preflight()?;
    let out = &options.out;
    let small_disk = small_disk(&options);
    let plan = draw_plan(&options, small_disk)?;
    let mut cluster = start_cluster(&options, small_disk).await?;

    let started = std::time::Instant::now();
    let clock: Clock = Arc::new(move || started.elapsed().as_nanos() as u64);
    let w = Workload::new(cluster.addrs(), options.acks, clock.clone());
    let tasks = spawn_workload(&options, &w);
    let confluent_task = options
        .confluent
        .then(|| spawn_confluent(&options, &cluster, &w, &clock));

    // Fault phase.
    let mut evidence = Evidence::default();
    let mut windows = nemesis::run(&mut cluster, &plan, TOPIC, &clock, &mut evidence).await;
    let fault_end = started + options.time_limit;
    tokio::time::sleep_until(tokio::time::Instant::from_std(fault_end)).await;

    // Liveness phase: heal everything, wait for convergence, let the workload run on.
    windows.push(heal_window(&mut cluster, &options, small_disk, &clock));
    let mut liveness = check_liveness(&mut cluster, &options, &w).await;
    w.stop.store(true, Ordering::Relaxed);
    join_workload(tasks, confluent_task).await;
    if liveness.is_ok()
        && let Err(e) = workload::final_read(&w, Duration::from_secs(60)).await
    {
        liveness = Err(format!("{e:#}"));
    }
    cluster.shutdown();
    drop(cluster);

    let report = build_report(&options, plan, windows, evidence, &w, liveness);
    write_outputs(out, &report)?;
    Ok(report)
}

/// Creates the output directory, writes `seed`, `rerun.sh` and `plan.json`, and returns the
/// plan drawn from the seed.
fn draw_plan(options: &RunOptions, small_disk: Option<u32>) -> Result<Plan> {
    let out = &options.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write(out, "seed", &format!("{}\n", options.seed))?;
    write(
        out,
        "rerun.sh",
        &format!("#!/bin/sh\n# as root\n{}\n", options.command()),
    )?;
    let ctx = PlanContext {
        nodes: (1..=5).collect(),
        partitions: PARTITIONS,
        small_disk,
    };
    let plan = nemesis::plan(options.seed, options.nemesis, options.time_limit, &ctx);
    write(out, "plan.json", &serde_json::to_string_pretty(&plan)?)?;
    tracing::info!(
        seed = options.seed,
        windows = plan.windows.len(),
        "plan drawn"
    );
    Ok(plan)
}

/// Starts the five nodes, waits until they are ready and creates the workload's topic.
async fn start_cluster(options: &RunOptions, small_disk: Option<u32>) -> Result<Cluster> {
    let mut cluster = Cluster::start(ClusterOptions {
        strata_bin: options.strata_bin.clone(),
        dir: options.out.clone(),
        nodes: 5,
        fake_clocks: options.nemesis.needs_fake_clocks(),
        small_disk,
    })?;
    cluster.wait_ready(Duration::from_secs(90)).await?;
    workload::create_topic(&cluster.addrs(), Duration::from_secs(60)).await?;
    tracing::info!("cluster ready, topic created");
    Ok(cluster)
}

/// Spawns the producers and the consumers of the options' mode.
fn spawn_workload(options: &RunOptions, w: &Arc<Workload>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..workload::PRODUCERS {
        tasks.push(tokio::spawn(workload::run_producer(w.clone(), i)));
    }
    for i in 0..workload::CONSUMERS {
        tasks.push(match options.mode {
            Mode::Assign => tokio::spawn(workload::run_assign_consumer(w.clone(), i)),
            Mode::Subscribe => tokio::spawn(workload::run_group_member(w.clone(), i)),
        });
    }
    tasks
}

/// Spawns the confluent-kafka clients ([`crate::confluent`]), recording into the workload's
/// histories for the length of the fault phase.
fn spawn_confluent(
    options: &RunOptions,
    cluster: &Cluster,
    w: &Workload,
    clock: &Clock,
) -> JoinHandle<Result<()>> {
    let o = crate::confluent::ConfluentOptions {
        bootstrap: cluster.addrs().join(","),
        partitions: workload::partitions(),
        subscribe: options.mode == Mode::Subscribe,
        acks: options.acks,
        first_process: strata_sim::history::ProcessId(1000),
        exec_prefix: Vec::new(),
    };
    tokio::spawn(crate::confluent::run(
        o,
        w.history.clone(),
        w.groups.clone(),
        clock.clone(),
        options.time_limit,
    ))
}

/// Heals everything ([`nemesis::heal_all`]) and returns the heal's window.
fn heal_window(
    cluster: &mut Cluster,
    options: &RunOptions,
    small_disk: Option<u32>,
    clock: &Clock,
) -> FaultWindow {
    let heal_start = clock();
    let notes = nemesis::heal_all(cluster, small_disk, options.nemesis.needs_fake_clocks());
    FaultWindow {
        nemesis: "heal".into(),
        detail: if notes.is_empty() {
            "heal all: nothing left to heal".into()
        } else {
            format!("heal all: {}", notes.join("; "))
        },
        start_ns: heal_start,
        end_ns: Some(clock()),
    }
}

/// After the heal: the cluster ready and converged, then (subscribe) the group settled; the
/// first error if not.
async fn check_liveness(
    cluster: &mut Cluster,
    options: &RunOptions,
    w: &Workload,
) -> std::result::Result<(), String> {
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .map_err(|e| format!("{e:#}"))?;
    workload::wait_converged(&cluster.addrs(), Duration::from_secs(60))
        .await
        .map_err(|e| format!("{e:#}"))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    if options.mode == Mode::Subscribe {
        workload::group_final_check(w, Duration::from_secs(30))
            .await
            .map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}

/// Waits for the (stopped) workload tasks and the confluent clients; logs their failures.
async fn join_workload(tasks: Vec<JoinHandle<()>>, confluent: Option<JoinHandle<Result<()>>>) {
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "workload task panicked");
        }
    }
    if let Some(t) = confluent {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "confluent clients failed"),
            Err(e) => tracing::error!(error = %e, "confluent task panicked"),
        }
    }
}

/// Judges the recorded histories and puts the report together.
fn build_report(
    options: &RunOptions,
    plan: Plan,
    windows: Vec<FaultWindow>,
    evidence: Evidence,
    w: &Workload,
    liveness: std::result::Result<(), String>,
) -> RunReport {
    let mut history = w.history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let groups = (options.mode == Mode::Subscribe)
        .then(|| w.groups.lock().unwrap_or_else(|p| p.into_inner()).clone());
    if options.acks == 1 {
        mark_acks1_durable(&mut history);
    }
    let verdicts = crate::verdict::judge(&history, groups.as_ref());
    let counts = count(&history);
    let summary = summarize(
        options, &plan, &windows, &evidence, &counts, &verdicts, &liveness,
    );
    RunReport {
        plan,
        windows,
        evidence,
        history,
        groups,
        verdicts,
        liveness,
        counts,
        summary,
    }
}

/// Marks every acknowledged `acks=1` send durable (see the module docs).
fn mark_acks1_durable(history: &mut History) {
    let acked: Vec<_> = history
        .completed()
        .filter(|o| o.outcome() == OpKind::Ok)
        .filter(|o| matches!(o.reply(), Some(Reply::Send(_))))
        .map(|o| o.index())
        .collect();
    for index in acked {
        history.mark_leader_survived(index);
    }
}

fn count(history: &History) -> OpCounts {
    let mut c = OpCounts::default();
    for op in history.operations() {
        c.operations += 1;
        match op.outcome() {
            OpKind::Ok => c.ok += 1,
            OpKind::Fail => c.fail += 1,
            _ => c.info += 1,
        }
        match (op.call(), op.reply()) {
            (Call::Send { .. }, Some(_)) => c.sends_ok += 1,
            (Call::Poll { final_read, .. }, Some(Reply::Poll(r))) => {
                c.polls_ok += 1;
                if *final_read {
                    c.final_read_records += r.records.len();
                }
            }
            _ => {}
        }
    }
    c
}

fn summarize(
    options: &RunOptions,
    plan: &Plan,
    windows: &[FaultWindow],
    evidence: &Evidence,
    c: &OpCounts,
    verdicts: &Verdicts,
    liveness: &std::result::Result<(), String>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "strata-jepsen seed {} nemesis {}",
        plan.seed,
        plan.nemesis.name()
    );
    let _ = writeln!(
        s,
        "operations {} (ok {}, fail {}, info {}); acknowledged sends {}; ok polls {}; \
         final read {} records",
        c.operations, c.ok, c.fail, c.info, c.sends_ok, c.polls_ok, c.final_read_records
    );
    let _ = writeln!(s, "fault windows ({}):", windows.len());
    for w in windows {
        let _ = writeln!(
            s,
            "  {:>7.1}s..{:<7} {:<20} {}",
            w.start_ns as f64 / 1e9,
            w.end_ns
                .map_or("open".to_string(), |e| format!("{:.1}s", e as f64 / 1e9)),
            w.nemesis,
            w.detail
        );
    }
    let _ = writeln!(
        s,
        "evidence: {}",
        serde_json::to_string(evidence).unwrap_or_default()
    );
    let anomalies: Vec<String> = verdicts
        .per_anomaly
        .iter()
        .map(|(n, k)| format!("{n}={k}"))
        .collect();
    let _ = writeln!(s, "anomalies: {}", anomalies.join(" "));
    match liveness {
        Ok(()) => {
            let _ = writeln!(s, "liveness: healed, converged, final read complete");
        }
        Err(e) => {
            let _ = writeln!(s, "liveness: FAILED: {e}");
        }
    }
    let valid = verdicts.valid && liveness.is_ok();
    let _ = writeln!(s, "valid: {valid}");
    let _ = writeln!(s, "rerun: {}", options.command());
    s
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

fn write_outputs(out: &Path, r: &RunReport) -> Result<()> {
    write(
        out,
        "schedule.json",
        &serde_json::to_string_pretty(&r.windows)?,
    )?;
    write(
        out,
        "evidence.json",
        &serde_json::to_string_pretty(&r.evidence)?,
    )?;
    write(out, "history.jsonl", &r.history.to_jsonl())?;
    if let Some(g) = &r.groups {
        write(out, "groups.jsonl", &g.to_jsonl())?;
    }
    let mut text = r.verdicts.rendered.clone();
    if let Err(e) = &r.liveness {
        let _ = writeln!(text, "\nliveness failed: {e}");
    }
    write(out, "verdict.txt", &text)?;
    let per_anomaly: Vec<Json> = r
        .verdicts
        .per_anomaly
        .iter()
        .map(|(n, c)| json!({"anomaly": n, "count": c}))
        .collect();
    let verdict = json!({
        "valid": r.valid(),
        "checkers_valid": r.verdicts.valid,
        "liveness": r.liveness.as_ref().err(),
        "per_anomaly": per_anomaly,
        "counts": r.counts,
    });
    write(
        out,
        "verdict.json",
        &serde_json::to_string_pretty(&verdict)?,
    )?;
    write(
        out,
        "latency.svg",
        &crate::plot::svg(&r.history, &r.windows),
    )?;
    write(out, "summary.txt", &r.summary)?;
    Ok(())
}
