//! Seeded fault schedules and their application to a [`Cluster`].
//!
//! A [`Plan`] is drawn from the seed alone (which faults, on which nodes, when, for how long),
//! so the same seed and options give the same plan; it is printed and saved with the run.
//! Targets that only exist at run time (the active controller, a partition's leader) are named
//! in the plan by role and resolved when the fault is applied; the applied [`FaultWindow`] says
//! which node it was.
//!
//! Shape of a plan (Jepsen's `nemesis/compose` cadence): quiet for 2–5 s, a fault window of
//! 5–10 s, heal, repeat until the time limit. Under `combined` each window draws one or two
//! faults of any kind and applies them together.
//!
//! Every window ends with its own heal (restart killed nodes, SIGCONT, flush iptables, reset
//! clocks, free the disk), and [`heal_all`] heals everything whatever the plan did. Each window
//! also records *evidence* that the fault had an effect ([`Evidence`]): the killed process was
//! gone, the paused one was in state `T`, rules dropped packets, the faked clock read differently,
//! the disk answered ENOSPC.
//!
//! Invariant: a window's `end_ns` is set only after its heal was applied; a window still open
//! when the nemesis stops is closed by [`heal_all`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::FaultWindow;
use crate::cluster::Cluster;

/// The nemeses a run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisKind {
    /// No faults (a baseline).
    None,
    /// kill -9 one node, a minority, a majority or all, restarted at the window's end.
    Kill,
    /// SIGSTOP one node or a minority, SIGCONT at the window's end.
    Pause,
    /// iptables partitions: one node, random halves, a majorities ring, the active controller
    /// isolated, a partition leader isolated.
    Partition,
    /// iptables `statistic` packet loss on a minority of nodes.
    Loss,
    /// Clock bumps and strobes of one node (libfaketime; monotonic clocks untouched).
    Clock,
    /// The disk of one node (a small tmpfs) filled up, freed at the window's end.
    Disk,
    /// A partition leader isolated from its peers (clients still reach it), then killed:
    /// what loses `acks=1` writes.
    LeaderKill,
    /// One or two faults of any kind per window.
    Combined,
}

impl NemesisKind {
    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::None => "none",
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Partition => "partition",
            NemesisKind::Loss => "loss",
            NemesisKind::Clock => "clock",
            NemesisKind::Disk => "disk",
            NemesisKind::LeaderKill => "leader-kill",
            NemesisKind::Combined => "combined",
        }
    }

    /// Whether nodes must run under libfaketime.
    pub fn needs_fake_clocks(self) -> bool {
        matches!(self, NemesisKind::Clock | NemesisKind::Combined)
    }
}

/// One planned fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    Kill {
        nodes: Vec<u32>,
        how: String,
    },
    Pause {
        nodes: Vec<u32>,
    },
    /// Cut every node of `a` from every node of `b`.
    Partition {
        a: Vec<u32>,
        b: Vec<u32>,
        how: String,
    },
    /// A majorities ring (five nodes): node `i` reaches only `i±1`, so each sees a majority
    /// (itself and two neighbours... plus none else) and no two majorities agree.
    Ring,
    /// Isolate whoever is the active controller when applied.
    IsolateController,
    /// Isolate whoever leads `partition` of the workload topic when applied.
    IsolateLeader {
        partition: i32,
    },
    Loss {
        nodes: Vec<u32>,
        probability: f64,
    },
    ClockBump {
        node: u32,
        seconds: i64,
    },
    ClockStrobe {
        node: u32,
        seconds: i64,
        period_ms: u64,
    },
    DiskFull {
        node: u32,
    },
    /// Isolate the leader of `partition`, kill it after `kill_after_ms`, heal the network, and
    /// restart it at the window's end.
    LeaderKill {
        partition: i32,
        kill_after_ms: u64,
    },
}

impl Fault {
    /// The nemesis name of a fault, for windows and plots.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Partition { .. } | Fault::Ring => "partition",
            Fault::IsolateController => "partition-controller",
            Fault::IsolateLeader { .. } => "partition-leader",
            Fault::Loss { .. } => "loss",
            Fault::ClockBump { .. } => "clock-bump",
            Fault::ClockStrobe { .. } => "clock-strobe",
            Fault::DiskFull { .. } => "disk-full",
            Fault::LeaderKill { .. } => "leader-kill",
        }
    }
}

/// One window of the plan: faults applied together at `at_ms`, healed `for_ms` later.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWindow {
    pub at_ms: u64,
    pub for_ms: u64,
    pub faults: Vec<Fault>,
}

/// The whole seeded schedule of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub seed: u64,
    pub nemesis: NemesisKind,
    pub windows: Vec<PlannedWindow>,
}

/// What the plan knows about the cluster when drawing.
#[derive(Debug, Clone)]
pub struct PlanContext {
    pub nodes: Vec<u32>,
    /// Partitions of the workload topic.
    pub partitions: i32,
    /// The node with the small disk, if any.
    pub small_disk: Option<u32>,
}

/// Draws the plan of a `time_limit` fault phase from `seed`.
pub fn plan(seed: u64, kind: NemesisKind, time_limit: Duration, ctx: &PlanContext) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    let limit = time_limit.as_millis() as u64;
    let mut windows = Vec::new();
    let mut t = 0u64;
    // Partition shapes take turns from a seeded start.
    let mut shape = (seed % 5) as usize;
    if kind != NemesisKind::None {
        loop {
            t += rng.random_range(2_000..5_000);
            let dur = rng.random_range(5_000..10_000);
            if t + dur > limit {
                break;
            }
            let faults = match kind {
                NemesisKind::Combined => {
                    let mut faults = Vec::new();
                    let n = rng.random_range(1..=2);
                    let kinds = [
                        NemesisKind::Kill,
                        NemesisKind::Pause,
                        NemesisKind::Partition,
                        NemesisKind::Loss,
                        NemesisKind::Clock,
                        NemesisKind::Disk,
                    ];
                    let mut picked: Vec<NemesisKind> = kinds.to_vec();
                    picked.shuffle(&mut rng);
                    for k in picked.into_iter().take(n) {
                        faults.push(draw(&mut rng, k, ctx, &mut shape, dur));
                    }
                    faults
                }
                k => vec![draw(&mut rng, k, ctx, &mut shape, dur)],
            };
            windows.push(PlannedWindow {
                at_ms: t,
                for_ms: dur,
                faults,
            });
            t += dur;
        }
    }
    Plan {
        seed,
        nemesis: kind,
        windows,
    }
}

/// Draws one fault of `kind`. Partition shapes take turns (`shape` counts them) so a short run
/// sees every one.
fn draw(
    rng: &mut StdRng,
    kind: NemesisKind,
    ctx: &PlanContext,
    shape: &mut usize,
    dur: u64,
) -> Fault {
    let n = ctx.nodes.len();
    let mut nodes = ctx.nodes.clone();
    nodes.shuffle(rng);
    let minority = (n - 1) / 2;
    match kind {
        NemesisKind::Kill => {
            let (count, how) = match rng.random_range(0..4) {
                0 => (1, "one"),
                1 => (minority.max(1), "minority"),
                2 => (n / 2 + 1, "majority"),
                _ => (n, "all"),
            };
            Fault::Kill {
                nodes: first_sorted(nodes, count),
                how: how.into(),
            }
        }
        NemesisKind::Pause => {
            let count = rng.random_range(1..=minority.max(1));
            Fault::Pause {
                nodes: first_sorted(nodes, count),
            }
        }
        NemesisKind::Partition => draw_partition(rng, ctx, &nodes, shape),
        NemesisKind::Loss => {
            let count = rng.random_range(1..=minority.max(1));
            Fault::Loss {
                nodes: first_sorted(nodes, count),
                probability: [0.1, 0.2, 0.3][rng.random_range(0..3)],
            }
        }
        NemesisKind::Clock => draw_clock(rng, nodes[0]),
        NemesisKind::Disk => match ctx.small_disk {
            Some(node) => Fault::DiskFull { node },
            None => Fault::Pause {
                nodes: vec![nodes[0]],
            },
        },
        NemesisKind::LeaderKill => Fault::LeaderKill {
            partition: rng.random_range(0..ctx.partitions.max(1)),
            kill_after_ms: (dur / 2).max(4_000).min(dur.saturating_sub(1_000)),
        },
        NemesisKind::None | NemesisKind::Combined => Fault::Pause { nodes: vec![] },
    }
}

/// The first `count` of the (shuffled) `nodes`, sorted.
fn first_sorted(nodes: Vec<u32>, count: usize) -> Vec<u32> {
    let mut nodes: Vec<u32> = nodes.into_iter().take(count).collect();
    nodes.sort();
    nodes
}

/// Draws the partition shape whose turn it is (`*shape`, then counted) over the shuffled
/// `nodes`: one node cut off, random halves, a majorities ring (five nodes only; otherwise a
/// leader isolation), the active controller or a partition leader isolated.
fn draw_partition(rng: &mut StdRng, ctx: &PlanContext, nodes: &[u32], shape: &mut usize) -> Fault {
    let n = ctx.nodes.len();
    let which = *shape % 5;
    *shape += 1;
    match which {
        0 => {
            let one = nodes[0];
            let rest: Vec<u32> = ctx.nodes.iter().copied().filter(|&x| x != one).collect();
            Fault::Partition {
                a: vec![one],
                b: rest,
                how: "one".into(),
            }
        }
        1 => {
            let mut a: Vec<u32> = nodes[..n / 2].to_vec();
            let mut b: Vec<u32> = nodes[n / 2..].to_vec();
            a.sort();
            b.sort();
            Fault::Partition {
                a,
                b,
                how: "halves".into(),
            }
        }
        2 if n == 5 => Fault::Ring,
        3 => Fault::IsolateController,
        _ => Fault::IsolateLeader {
            partition: rng.random_range(0..ctx.partitions.max(1)),
        },
    }
}

/// Draws a clock fault of `node`: a bump or a strobe, of an offset from minutes back to an
/// hour ahead.
fn draw_clock(rng: &mut StdRng, node: u32) -> Fault {
    let seconds = [-300i64, -60, -5, 5, 60, 300, 3600][rng.random_range(0..7)];
    if rng.random_bool(0.5) {
        Fault::ClockBump { node, seconds }
    } else {
        Fault::ClockStrobe {
            node,
            seconds,
            period_ms: rng.random_range(1_000..2_000),
        }
    }
}

/// What the faults were seen to do (the tests assert on these, not on calls made).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// Kills after which the process was confirmed gone (`/proc/<pid>` absent).
    pub kills_confirmed: u32,
    /// Restarts of killed (or crashed) nodes.
    pub restarts: u32,
    /// Pauses after which the process was confirmed stopped (state `T`).
    pub pauses_confirmed: u32,
    /// Packets dropped by partition and loss rules, read from iptables counters before each heal.
    pub packets_dropped: u64,
    /// Clock faults whose node read a wall clock at least half the offset away from ours.
    pub clocks_confirmed: u32,
    /// Disk fills that ended in ENOSPC with under 1 MiB free.
    pub disks_filled: u32,
    /// `No space left on device` lines in the full disk's node log after its windows.
    pub enospc_logged: u64,
    /// Nodes that exited on their own (found dead at a heal), e.g. on a full disk.
    pub crashes_seen: u32,
}

/// A fault as applied, with what is needed to heal it.
struct Applied {
    window: FaultWindow,
    /// Nodes to restart at heal.
    killed: Vec<u32>,
    paused: Vec<u32>,
    network: bool,
    clocks: Vec<u32>,
    disk: Option<u32>,
    strobe: Option<Arc<AtomicBool>>,
    /// The leader a leader-kill kills mid-window, and when.
    to_kill: Option<(u32, Duration)>,
}

/// The clock of the history: nanoseconds since the run started.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Runs `plan` against `cluster` from now (time zero of the plan) and returns the windows
/// applied. Faults failing to apply are logged and recorded in the window's detail, never fatal.
pub async fn run(
    cluster: &mut Cluster,
    plan: &Plan,
    topic: &str,
    clock: &Clock,
    evidence: &mut Evidence,
) -> Vec<FaultWindow> {
    let start = tokio::time::Instant::now();
    let mut windows = Vec::new();
    for w in &plan.windows {
        tokio::time::sleep_until(start + Duration::from_millis(w.at_ms)).await;
        let mut applied = Vec::new();
        for f in &w.faults {
            match apply(cluster, f, topic, clock, evidence).await {
                Ok(a) => applied.push(a),
                Err(e) => {
                    tracing::warn!(fault = ?f, error = %e, "could not apply fault");
                    let now = clock();
                    windows.push(FaultWindow {
                        nemesis: f.name().into(),
                        detail: format!("not applied: {e:#}"),
                        start_ns: now,
                        end_ns: Some(now),
                    });
                }
            }
        }
        // Leader kills do their second step mid-window.
        for a in applied.iter_mut() {
            let Some((leader, after)) = a.to_kill.take() else {
                continue;
            };
            tokio::time::sleep(after).await;
            kill_confirmed(cluster, leader, evidence);
            a.killed.push(leader);
            evidence.packets_dropped += dropped(cluster);
            if let Err(e) = cluster.net().heal() {
                tracing::warn!(error = %e, "could not heal the network");
            }
            a.network = false;
        }
        tokio::time::sleep_until(start + Duration::from_millis(w.at_ms + w.for_ms)).await;
        // The DROP counters of the whole window, read once before any heal flushes them.
        let drops = applied.iter().any(|a| a.network).then(|| dropped(cluster));
        // A full disk is freed before killed nodes restart: a node refuses to start on it.
        applied.sort_by_key(|a| a.disk.is_none());
        evidence.packets_dropped += drops.unwrap_or(0);
        for a in applied {
            windows.push(heal(cluster, a, clock, evidence, drops));
        }
    }
    windows
}

fn node_list(nodes: &[u32]) -> String {
    nodes
        .iter()
        .map(|n| format!("n{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn kill_confirmed(cluster: &mut Cluster, id: u32, evidence: &mut Evidence) {
    let pid = cluster.pid(id);
    if let Err(e) = cluster.kill(id) {
        tracing::warn!(node = id, error = %e, "kill failed");
        return;
    }
    if let Some(pid) = pid
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    {
        evidence.kills_confirmed += 1;
    }
}

fn dropped(cluster: &Cluster) -> u64 {
    cluster
        .ids()
        .into_iter()
        .filter_map(|id| cluster.net().dropped_packets(id).ok())
        .sum()
}

/// The node isolated from every other node.
fn isolate(cluster: &Cluster, node: u32) -> Result<()> {
    let rest: Vec<u32> = cluster.ids().into_iter().filter(|&x| x != node).collect();
    cluster.net().partition(&[node], &rest)
}

async fn leader_of(cluster: &Cluster, topic: &str, partition: i32) -> Result<u32> {
    let view = cluster.metadata(Some(&[topic])).await?;
    match view.leaders.get(&(topic.to_string(), partition)) {
        Some(&l) if l > 0 => Ok(l as u32),
        other => bail!("{topic}-{partition} has no leader ({other:?})"),
    }
}

/// Applies `fault` and returns it as applied, its window started (at [`Clock`] time) once the
/// fault is in place.
async fn apply(
    cluster: &mut Cluster,
    fault: &Fault,
    topic: &str,
    clock: &Clock,
    evidence: &mut Evidence,
) -> Result<Applied> {
    let mut a = Applied {
        window: FaultWindow {
            nemesis: fault.name().into(),
            detail: String::new(),
            start_ns: 0,
            end_ns: None,
        },
        killed: vec![],
        paused: vec![],
        network: false,
        clocks: vec![],
        disk: None,
        strobe: None,
        to_kill: None,
    };
    let detail = apply_fault(cluster, fault, topic, evidence, &mut a).await?;
    tracing::info!(%detail, "fault applied");
    a.window.detail = detail;
    a.window.start_ns = clock();
    Ok(a)
}

/// Puts `fault` in place, notes in `a` what its heal must undo, and returns the window's detail.
async fn apply_fault(
    cluster: &mut Cluster,
    fault: &Fault,
    topic: &str,
    evidence: &mut Evidence,
    a: &mut Applied,
) -> Result<String> {
    let detail = match fault {
        Fault::Kill { nodes, how } => {
            for &n in nodes {
                kill_confirmed(cluster, n, evidence);
            }
            a.killed = nodes.clone();
            format!("kill -9 {how}: {}", node_list(nodes))
        }
        Fault::Pause { nodes } => {
            pause_confirmed(cluster, nodes, evidence).await?;
            a.paused = nodes.clone();
            format!("SIGSTOP {}", node_list(nodes))
        }
        Fault::ClockBump { node, seconds } => {
            cluster.set_clock_offset(*node, *seconds)?;
            a.clocks = vec![*node];
            confirm_clock(cluster, *node, *seconds, evidence);
            format!("clock of n{node} bumped {seconds:+} s")
        }
        Fault::ClockStrobe {
            node,
            seconds,
            period_ms,
        } => {
            cluster.set_clock_offset(*node, *seconds)?;
            confirm_clock(cluster, *node, *seconds, evidence);
            a.clocks = vec![*node];
            a.strobe = Some(strobe(cluster, *node, *seconds, *period_ms));
            format!("clock of n{node} strobes between +0 and {seconds:+} s every {period_ms} ms")
        }
        Fault::DiskFull { node } => {
            let written = cluster.fill_disk(*node)?;
            let free = cluster.disk_free(*node).unwrap_or(u64::MAX);
            if free < (1 << 20) {
                evidence.disks_filled += 1;
            }
            a.disk = Some(*node);
            format!("disk of n{node} filled ({written} bytes written, {free} free)")
        }
        Fault::Partition { .. }
        | Fault::Ring
        | Fault::IsolateController
        | Fault::IsolateLeader { .. }
        | Fault::Loss { .. }
        | Fault::LeaderKill { .. } => apply_network_fault(cluster, fault, topic, a).await?,
    };
    Ok(detail)
}

/// Puts a fault made of iptables rules in place (a partition, the ring, an isolation, packet
/// loss, a leader kill's isolation), notes in `a` what its heal must undo, and returns the
/// window's detail.
async fn apply_network_fault(
    cluster: &mut Cluster,
    fault: &Fault,
    topic: &str,
    a: &mut Applied,
) -> Result<String> {
    let detail = match fault {
        Fault::Partition { a: x, b: y, how } => {
            cluster.net().partition(x, y)?;
            format!("partition {how}: {} | {}", node_list(x), node_list(y))
        }
        Fault::Ring => {
            ring(cluster)?;
            "partition majorities-ring: each node reaches only its two neighbours".into()
        }
        Fault::IsolateController => {
            let view = cluster.metadata(None).await?;
            if view.controller <= 0 {
                bail!("no active controller known to {}", view.from);
            }
            let c = view.controller as u32;
            isolate(cluster, c)?;
            format!("isolate active controller n{c}")
        }
        Fault::IsolateLeader { partition } => {
            let l = leader_of(cluster, topic, *partition).await?;
            isolate(cluster, l)?;
            format!("isolate n{l}, leader of {topic}-{partition}")
        }
        Fault::Loss { nodes, probability } => {
            for &n in nodes {
                cluster.net().lose(n, *probability)?;
            }
            format!("drop {probability} of packets into {}", node_list(nodes))
        }
        Fault::LeaderKill {
            partition,
            kill_after_ms,
        } => {
            let l = leader_of(cluster, topic, *partition).await?;
            isolate(cluster, l)?;
            a.to_kill = Some((l, Duration::from_millis(*kill_after_ms)));
            format!("isolate n{l}, leader of {topic}-{partition}, then kill -9 it")
        }
        other => bail!("{} is not a network fault", other.name()),
    };
    a.network = true;
    Ok(detail)
}

/// SIGSTOPs `nodes`, then counts those seen stopped (state `T`) 50 ms later.
async fn pause_confirmed(
    cluster: &mut Cluster,
    nodes: &[u32],
    evidence: &mut Evidence,
) -> Result<()> {
    for &n in nodes {
        cluster.pause(n, true)?;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for &n in nodes {
        if cluster.process_state(n) == Some('T') {
            evidence.pauses_confirmed += 1;
        }
    }
    Ok(())
}

/// The majorities ring: node `i` keeps `i-1` and `i+1` (mod n); every other pair is cut.
fn ring(cluster: &Cluster) -> Result<()> {
    let ids = cluster.ids();
    let n = ids.len();
    for i in 0..n {
        for j in (i + 1)..n {
            let d = j - i;
            if d != 1 && d != n - 1 {
                cluster.net().partition(&[ids[i]], &[ids[j]])?;
            }
        }
    }
    Ok(())
}

/// Starts flipping `node`'s faked clock between `seconds` (already set) and +0 every
/// `period_ms`; returns the flag that stops it.
fn strobe(cluster: &Cluster, node: u32, seconds: i64, period_ms: u64) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let path = cluster.faketime_file(node);
    let s = stop.clone();
    tokio::spawn(async move {
        let mut on = true;
        loop {
            tokio::time::sleep(Duration::from_millis(period_ms)).await;
            // Checked after the sleep: the heal may have reset the clock meanwhile.
            if s.load(Ordering::Relaxed) {
                break;
            }
            on = !on;
            let text = if on {
                format!("{seconds:+}\n")
            } else {
                "+0\n".into()
            };
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, text).is_err() || std::fs::rename(&tmp, &path).is_err() {
                tracing::warn!(path = %path.display(), "strobe could not write");
            }
        }
    });
    stop
}

fn confirm_clock(cluster: &Cluster, node: u32, seconds: i64, evidence: &mut Evidence) {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match cluster.faked_now(node) {
        Ok(faked) if cluster.has_faketime(node) && (faked - real).abs() * 2 >= seconds.abs() => {
            evidence.clocks_confirmed += 1;
        }
        Ok(faked) => tracing::warn!(node, faked, real, "faked clock not seen"),
        Err(e) => tracing::warn!(node, error = %e, "could not read the faked clock"),
    }
}

/// Heals one applied fault. `drops`: the window's DROP counters, read before any heal.
fn heal(
    cluster: &mut Cluster,
    mut a: Applied,
    clock: &Clock,
    evidence: &mut Evidence,
    drops: Option<u64>,
) -> FaultWindow {
    let mut notes = Vec::new();
    if let Some(stop) = &a.strobe {
        stop.store(true, Ordering::Relaxed);
    }
    for &n in &a.clocks {
        if let Err(e) = cluster.set_clock_offset(n, 0) {
            notes.push(format!("clock reset of n{n} failed: {e:#}"));
        }
    }
    if a.network {
        let d = drops.unwrap_or(0);
        notes.push(format!("{d} packets dropped in this window"));
        if let Err(e) = cluster.net().heal() {
            notes.push(format!("heal failed: {e:#}"));
        }
    }
    for &n in &a.paused {
        if let Err(e) = cluster.pause(n, false) {
            notes.push(format!("SIGCONT n{n} failed: {e:#}"));
        }
    }
    if let Some(n) = a.disk {
        let enospc = std::fs::read_to_string(cluster.log_file(n))
            .map(|log| log.matches("No space left on device").count() as u64)
            .unwrap_or(0);
        evidence.enospc_logged = enospc;
        notes.push(format!("n{n}'s log has {enospc} ENOSPC errors so far"));
        if let Err(e) = cluster.free_disk(n) {
            notes.push(format!("freeing n{n}'s disk failed: {e:#}"));
        }
        if !cluster.is_running(n) && !cluster.was_killed(n) {
            // Down, and not by a kill of this or a concurrent window: it exited on its own.
            evidence.crashes_seen += 1;
            notes.push(format!("n{n} had exited"));
            a.killed.push(n);
        }
    }
    for &n in &a.killed {
        match cluster.restart(n) {
            Ok(true) => evidence.restarts += 1,
            Ok(false) => {}
            Err(e) => notes.push(format!("restart of n{n} failed: {e:#}")),
        }
    }
    if !notes.is_empty() {
        a.window.detail = format!("{} ({})", a.window.detail, notes.join("; "));
    }
    a.window.end_ns = Some(clock());
    a.window
}

/// Heals everything, whatever was applied: flush every node's rules, SIGCONT and restart every
/// node, reset clocks, free the small disk. Returns notes of what had to be done.
pub fn heal_all(cluster: &mut Cluster, small_disk: Option<u32>, clocks: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if let Err(e) = cluster.net().heal() {
        notes.push(format!("network heal failed: {e:#}"));
    }
    if let Some(n) = small_disk
        && let Err(e) = cluster.free_disk(n)
    {
        notes.push(format!("freeing n{n}'s disk failed: {e:#}"));
    }
    for id in cluster.ids() {
        if clocks && let Err(e) = cluster.set_clock_offset(id, 0) {
            notes.push(format!("clock reset of n{id} failed: {e:#}"));
        }
        if let Err(e) = cluster.pause(id, false) {
            notes.push(format!("SIGCONT n{id} failed: {e:#}"));
        }
        match cluster.restart(id) {
            Ok(true) => notes.push(format!("n{id} was down: restarted")),
            Ok(false) => {}
            Err(e) => notes.push(format!("restart of n{id} failed: {e:#}")),
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PlanContext {
        PlanContext {
            nodes: (1..=5).collect(),
            partitions: 6,
            small_disk: Some(3),
        }
    }

    #[test]
    fn a_seed_draws_the_same_plan() {
        let a = plan(9, NemesisKind::Combined, Duration::from_secs(600), &ctx());
        let b = plan(9, NemesisKind::Combined, Duration::from_secs(600), &ctx());
        let c = plan(10, NemesisKind::Combined, Duration::from_secs(600), &ctx());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn windows_fit_the_time_limit_and_do_not_overlap() {
        for seed in 0..50 {
            let p = plan(seed, NemesisKind::Kill, Duration::from_secs(60), &ctx());
            assert!(p.windows.len() >= 3, "seed {seed}: {p:?}");
            let mut end = 0;
            for w in &p.windows {
                assert!(
                    w.at_ms >= end && w.at_ms + w.for_ms <= 60_000,
                    "seed {seed}: {p:?}"
                );
                end = w.at_ms + w.for_ms;
            }
        }
    }

    #[test]
    fn partition_shapes_take_turns() {
        let p = plan(0, NemesisKind::Partition, Duration::from_secs(120), &ctx());
        let names: std::collections::BTreeSet<&str> = p
            .windows
            .iter()
            .flat_map(|w| w.faults.iter())
            .map(|f| match f {
                Fault::Partition { how, .. } => how.as_str(),
                Fault::Ring => "ring",
                Fault::IsolateController => "controller",
                Fault::IsolateLeader { .. } => "leader",
                _ => "other",
            })
            .collect();
        let want: std::collections::BTreeSet<&str> =
            ["one", "halves", "ring", "controller", "leader"].into();
        assert_eq!(names, want);
    }

    #[test]
    fn combined_draws_every_kind_over_a_soak() {
        let p = plan(1, NemesisKind::Combined, Duration::from_secs(1800), &ctx());
        let names: std::collections::BTreeSet<&str> = p
            .windows
            .iter()
            .flat_map(|w| w.faults.iter())
            .map(Fault::name)
            .collect();
        for kind in ["kill", "pause", "partition", "loss", "disk-full"] {
            assert!(names.contains(kind), "{kind} missing from {names:?}");
        }
        assert!(names.contains("clock-bump") || names.contains("clock-strobe"));
    }
}
