//! A sweep: one simulated run per seed, each seed's options drawn by `options`, every failure
//! printed with the command that replays it, and a summary line (seeds per minute, simulated
//! seconds, acknowledged writes). Used by `sim/tests/sweep.rs` and `sim/tests/sweep_cluster.rs`.

use std::time::Instant;

use madsim::runtime::Runtime;

use super::run::{Options, run};

/// Seeds to run: `MADSIM_TEST_SEED=s` alone, else `0..$count_var` (default `default_count`).
pub fn seeds(count_var: &str, default_count: u64) -> Vec<u64> {
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
    (0..n).collect()
}

/// Runs every seed (each on a fresh thread, see `run_on_fresh_thread`); returns the failing ones.
pub fn sweep(test: &str, seeds: &[u64], options: fn(u64) -> Options) -> Vec<u64> {
    let wall = Instant::now();
    let (mut sim_secs, mut acked, mut failures) = (0.0, 0, Vec::new());
    for &seed in seeds {
        let opts = options(seed);
        let out = run_on_fresh_thread(seed, opts.clone());
        sim_secs += out.sim_secs;
        acked += out.acknowledged;
        if !out.ok() {
            eprintln!(
                "seed {seed} FAILED ({} node(s), swarm {:?})\nliveness: {:?}\nfaults: {:?}\n{}\nreplay: MADSIM_TEST_SEED={seed} cargo sim --release --test {test} -- --nocapture",
                opts.nodes,
                opts.swarm,
                out.liveness,
                out.faults,
                out.report.render(&out.history, 20)
            );
            failures.push(seed);
        }
    }
    let secs = wall.elapsed().as_secs_f64();
    println!(
        "{test}: {} seeds in {secs:.1} s wall ({:.1} seeds/min), {sim_secs:.0} simulated s ({:.0}x real time), {acked} acknowledged writes",
        seeds.len(),
        seeds.len() as f64 * 60.0 / secs,
        sim_secs / secs
    );
    failures
}

/// One seed on a thread of its own: madsim seeds std's hash keys when a runtime starts, which
/// only takes on a thread that has not hashed yet, so a seed replays the same whether it runs
/// alone or after others.
pub fn run_on_fresh_thread(seed: u64, opts: Options) -> super::run::Outcome {
    #[allow(clippy::disallowed_methods)]
    std::thread::spawn(move || {
        Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(run(opts))
    })
    .join()
    .expect("simulation thread")
}
