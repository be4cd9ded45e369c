//! The random sweep over replicated clusters: per seed a 3- or 5-node cluster (every node a
//! broker and a controller), two topics of three partitions, RF 3, `min.insync.replicas=2`, the
//! swarm drawn from the seed with the cluster faults (isolating the controller, a leader or a
//! minority; power loss of every node at once), then the liveness phase, the final read, replica
//! convergence, and every checker including split-brain and replica divergence.
//!
//! `STRATA_SIM_CLUSTER_SEEDS=n` sets how many seeds (default 500, from 0),
//! `MADSIM_TEST_SEED=s` runs just seed `s`. A failing seed prints the command that replays it.
#![cfg(madsim)]

use strata_sim::harness::run::Options;
use strata_sim::harness::sweep::{seeds, sweep};

#[test]
fn random_cluster_sweep() {
    let failures = sweep(
        "sweep_cluster",
        &seeds("STRATA_SIM_CLUSTER_SEEDS", 500),
        Options::cluster_sweep_for_seed,
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}
