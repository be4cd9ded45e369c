//! A sweep: one simulated run per seed, each seed's options drawn by `options`, every failure
//! printed with the command that replays it, and a summary line (seeds per minute, simulated
//! seconds, acknowledged writes). Used by `sim/tests/sweep.rs` and `sim/tests/sweep_cluster.rs`.
//!
//! `STRATA_SIM_STOP_AT_FIRST=1` stops a sweep at its first failing seed (the summary line then
//! counts only the seeds run): for hunting a bug rather than surveying a range, as the planted-bug
//! runner `sim/mutants/run.sh` does, where one failure is all it needs and the rest is wasted time.

use std::time::Instant;

use madsim::runtime::Runtime;

use super::run::{Options, run};

/// With `STRATA_SIM_LOG=<filter>` (e.g. `debug`, `strata_client=debug`), the nodes' and
/// clients' tracing goes to stderr: for replaying one seed.
pub fn init_logging() {
    if let Ok(filter) = std::env::var("STRATA_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    }
}

/// Seeds to run: `MADSIM_TEST_SEED=s` alone, else `base..base + $count_var` (count default
/// `default_count`), where `base` is `STRATA_SIM_SEED_BASE` (default 0). The base is what keeps a
/// sweep from going stale: the default seeds are the ones the code was tuned against, so a review
/// sweeps a range nobody ran before (`sim/sweep.sh` splits one over every core).
pub fn seeds(count_var: &str, default_count: u64) -> Vec<u64> {
    init_logging();
    if let Some(seed) = std::env::var("MADSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let n: u64 = std::env::var(count_var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_count);
    let base: u64 = match std::env::var("STRATA_SIM_SEED_BASE") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("STRATA_SIM_SEED_BASE={s:?} is not a seed number")),
        Err(_) => 0,
    };
    (base..base.saturating_add(n)).collect()
}

/// `STRATA_SIM_STOP_AT_FIRST` set to anything but empty or `0`.
fn stop_at_first() -> bool {
    std::env::var("STRATA_SIM_STOP_AT_FIRST").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Runs every seed (each on a fresh thread, see `run_on_fresh_thread`); returns the failing ones
/// (only the first with `STRATA_SIM_STOP_AT_FIRST=1`).
pub fn sweep(test: &str, seeds: &[u64], options: fn(u64) -> Options) -> Vec<u64> {
    let wall = Instant::now();
    let (mut sim_secs, mut acked, mut failures) = (0.0, 0, Vec::new());
    let (mut retries, mut indefinite, mut client_cuts) = (0u64, 0usize, 0usize);
    let mut peer_cuts = 0usize;
    let mut resent = 0u64;
    let mut kv = KvTotals::default();
    let (mut group_runs, mut group_commits, mut group_refused) = (0usize, 0usize, 0usize);
    let stop_at_first = stop_at_first();
    let mut ran = 0usize;
    for &seed in seeds {
        if stop_at_first && !failures.is_empty() {
            break;
        }
        ran += 1;
        // A seed whose simulation never ends (a task that is always ready stops simulated time)
        // shows in the log as the last one started.
        eprintln!("seed {seed}: started");
        let opts = options(seed);
        let out = match try_run_on_fresh_thread(seed, opts.clone()) {
            Ok(out) => out,
            // A node's assertion (or the harness's) fired: the panic message is above.
            Err(panic) => {
                eprintln!(
                    "seed {seed} PANICKED ({} node(s), swarm {:?}): {panic}\nreplay: MADSIM_TEST_SEED={seed} cargo sim --release --test {test} -- --nocapture",
                    opts.nodes, opts.swarm
                );
                failures.push(seed);
                continue;
            }
        };
        sim_secs += out.sim_secs;
        acked += out.acknowledged;
        retries += out.producer_retries;
        resent += out.producer_resent;
        let count = |fault| out.faults.iter().filter(|(_, f, _)| *f == fault).count();
        client_cuts += count(super::nemesis::Fault::IsolateClientFromLeader);
        peer_cuts += count(super::nemesis::Fault::IsolateLeaderFromPeers);
        indefinite += out
            .history
            .operations()
            .filter(|o| o.outcome() == crate::history::OpKind::Info)
            .count();
        kv.add(&out);
        if let Some((h, _)) = &out.group {
            use crate::group_history::{GroupCall, GroupOutcome};
            group_runs += 1;
            for op in h
                .ops
                .iter()
                .filter(|op| matches!(op.call, GroupCall::Commit { .. }))
            {
                match op.outcome {
                    GroupOutcome::Committed => group_commits += 1,
                    GroupOutcome::Fail(_) => group_refused += 1,
                    _ => {}
                }
            }
        }
        if !out.ok() {
            let group = out
                .group
                .as_ref()
                .map_or(String::new(), |(h, r)| r.render(h));
            eprintln!(
                "seed {seed} FAILED ({} node(s), {} group member(s), {} compacted keys, swarm {:?})\nliveness: {:?}\nfaults: {:?}\n{}\n{}{group}\nreplay: MADSIM_TEST_SEED={seed} cargo sim --release --test {test} -- --nocapture",
                opts.nodes,
                opts.group_members,
                opts.compacted_keys,
                opts.swarm,
                out.liveness,
                out.faults,
                out.report.render(&out.history, 20),
                out.compaction_trail(5)
            );
            failures.push(seed);
        }
    }
    let secs = wall.elapsed().as_secs_f64();
    println!(
        "{test}: {ran} seeds in {secs:.1} s wall ({:.1} seeds/min), {sim_secs:.0} simulated s ({:.0}x real time), {acked} acknowledged writes, {retries} producer retries, {resent} resent under a new epoch, {indefinite} indefinite operations, {client_cuts} client-leader cuts, {peer_cuts} leader-peer cuts; {group_runs} runs with a consumer group, {group_commits} acknowledged and {group_refused} refused group commits",
        ran as f64 * 60.0 / secs,
        sim_secs / secs
    );
    println!("{test}: {kv}");
    failures
}

/// The compacted-topic workload's figures over a sweep.
#[derive(Default)]
struct KvTotals {
    runs: usize,
    acknowledged: usize,
    read: usize,
    cleaned: i64,
}

impl KvTotals {
    fn add(&mut self, out: &super::run::Outcome) {
        let Some(h) = &out.compaction else { return };
        self.runs += 1;
        self.acknowledged += h.acknowledged();
        self.read += h.final_read.as_ref().map_or(0, |r| r.records.len());
        self.cleaned += h.cleaned_offsets();
    }
}

impl std::fmt::Display for KvTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs with a compacted topic: {} acknowledged keyed records, {} in the final \
             reads, {} offsets cleaned away",
            self.runs, self.acknowledged, self.read, self.cleaned
        )
    }
}

/// One seed on a thread of its own: madsim seeds std's hash keys when a runtime starts, which
/// only takes on a thread that has not hashed yet, so a seed replays the same whether it runs
/// alone or after others.
pub fn run_on_fresh_thread(seed: u64, opts: Options) -> super::run::Outcome {
    match try_run_on_fresh_thread(seed, opts) {
        Ok(out) => out,
        Err(panic) => panic!("seed {seed}: the simulation panicked: {panic}"),
    }
}

/// As [`run_on_fresh_thread`], returning the panic message if the run panicked (a node's
/// assertion, or the harness's), so a sweep can name the seed and go on.
pub fn try_run_on_fresh_thread(seed: u64, opts: Options) -> Result<super::run::Outcome, String> {
    #[allow(clippy::disallowed_methods)]
    std::thread::spawn(move || {
        Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(run(opts))
    })
    .join()
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without message".to_string())
    })
}
