//! Consumer groups on a three-node cluster: `__consumer_offsets` is created with replication
//! factor 3 by the controller, each group's coordinator is the leader of its partition, and a
//! coordinator that loses its broker moves to the new leader, which loads the partition by
//! replay.

use strata_tests::StrataCluster;
use strata_tests::tools::run_python;

/// confluent-kafka, range assignor: the three-members / join / leave scenario of
/// `consumer_groups.rs`, against three brokers.
#[test]
fn confluent_group_rebalances_on_three_nodes() {
    let cluster = StrataCluster::start(3);
    let out = run_python(
        "confluent_groups.py",
        &[&cluster.bootstrap(), "rebalance-range", "3"],
    );
    assert!(
        out.contains("OK"),
        "script output:\n{out}\n{}",
        cluster.log_tails(40)
    );
}
