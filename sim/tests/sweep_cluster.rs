//! The random sweep over replicated clusters: per seed a 3- or 5-node cluster (every node a
//! broker and a controller), RF 3, `min.insync.replicas=2`, the swarm drawn from the seed with
//! the cluster faults (isolating the controller, a leader or a minority; power loss of every
//! node at once), then the liveness phase, the final read, replica convergence, and every
//! checker including split-brain and replica divergence.
//!
//! `STRATA_SIM_CLUSTER_SEEDS=n` sets how many seeds (default 500, from 0),
//! `MADSIM_TEST_SEED=s` runs just seed `s`. A failing seed prints the command that replays it.
#![cfg(madsim)]

use std::time::Instant;

use madsim::runtime::Runtime;
use strata_sim::harness::run::{Options, Outcome, run};

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("MADSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let n: u64 = std::env::var("STRATA_SIM_CLUSTER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    (0..n).collect()
}

fn run_seed(seed: u64) -> Outcome {
    let rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(run(Options::cluster_for_seed(seed)))
}

#[test]
fn random_cluster_sweep() {
    let wall = Instant::now();
    let (mut sim_secs, mut acked, mut failures) = (0.0, 0, Vec::new());
    let seeds = seeds();
    for &seed in &seeds {
        let out = run_seed(seed);
        sim_secs += out.sim_secs;
        acked += out.acknowledged;
        if !out.ok() {
            let opts = Options::cluster_for_seed(seed);
            eprintln!(
                "seed {seed} FAILED ({} nodes, swarm {:?})\nliveness: {:?}\nfaults: {:?}\n{}\nreplay: MADSIM_TEST_SEED={seed} cargo sim --release --test sweep_cluster -- --nocapture",
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
        "cluster sweep: {} seeds in {secs:.1} s wall ({:.1} seeds/min), {sim_secs:.0} simulated s ({:.0}x real time), {acked} acknowledged writes",
        seeds.len(),
        seeds.len() as f64 * 60.0 / secs,
        sim_secs / secs
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}
