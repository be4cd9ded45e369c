//! confluent-kafka clients (one Python process each, `jepsen/python/`) recording into the same
//! history as Strata's own client.
//! (checks-and-output helper: to be written; the signatures below are the contract with `run`.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_sim::group_history::GroupHistory;
use strata_sim::history::{History, ProcessId, TopicPartition};

/// What the confluent-kafka clients of a run do.
#[derive(Debug, Clone)]
pub struct ConfluentOptions {
    /// Bootstrap servers, `host:port,...`, reachable from where the clients run.
    pub bootstrap: String,
    /// The partitions to write and read (keys map to them).
    pub partitions: Vec<TopicPartition>,
    /// `true`: consumers `subscribe` in a group and commit; `false`: they `assign`.
    pub subscribe: bool,
    /// Producer `acks`: `-1` (idempotent) or `1`.
    pub acks: i16,
    /// The first history process id these clients may use; they use a contiguous range from it.
    pub first_process: ProcessId,
    /// Shell prefix to run the Python processes with (e.g. `ip netns exec sj-client`), empty for none.
    pub exec_prefix: Vec<String>,
}

/// Runs the clients until `run_for` has passed, recording into `history` (and `groups` when
/// subscribing), with times from `clock` (nanoseconds since the run started).
pub async fn run(
    options: ConfluentOptions,
    history: Arc<Mutex<History>>,
    groups: Arc<Mutex<GroupHistory>>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    run_for: Duration,
) -> anyhow::Result<()> {
    let _ = (options, history, groups, clock, run_for);
    Ok(())
}
