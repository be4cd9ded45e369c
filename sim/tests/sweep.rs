//! The random sweep: one simulated run per seed, each with swarm options drawn from the seed
//! (which faults, how often), then the liveness phase, the final read and every checker.
//!
//! `STRATA_SIM_SEEDS=n` sets how many seeds (default 300, from 0), `MADSIM_TEST_SEED=s` runs just
//! seed `s`. A failing seed prints the command that replays it.
#![cfg(madsim)]

use strata_sim::harness::run::Options;
use strata_sim::harness::sweep::{seeds, sweep};

#[test]
fn random_sweep() {
    let failures = sweep(
        "sweep",
        &seeds("STRATA_SIM_SEEDS", 300),
        Options::sweep_for_seed,
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}
