//! strata-jepsen: Strata attacked from outside, the way Jepsen attacks Kafka.
//!
//! Five real `strata` processes, each in its own network namespace joined to a bridge, run under
//! a seeded schedule of real faults (kill -9, SIGSTOP, iptables partitions and packet loss,
//! libfaketime clock bumps, a full disk) while real clients (Strata's own, confluent-kafka)
//! send and poll and record a [`strata_sim::history::History`]. The simulator's checkers judge
//! that history: one implementation of each anomaly, shared with `sim/`.
//!
//! Modules:
//! - [`binary`]: the `strata` binary a run starts.
//! - [`net`]: namespaces, bridge, veth pairs, iptables rules; all removed on every exit.
//! - [`cluster`]: the five `strata` processes; start, kill, pause, restart.
//! - [`nemesis`]: seeded fault schedules, applied to a [`cluster::Cluster`].
//! - [`workload`]: Strata's own client sending and polling, recording the history.
//! - [`confluent`]: confluent-kafka clients (a Python process each), recording the same history.
//! - [`verdict`]: the checkers run over a history, one verdict per named anomaly.
//! - [`plot`]: throughput and latency over time as SVG, fault windows shaded.
//! - [`testkit`]: what the harness's own tests share (root check, leftovers).
//! - [`run`]: one run end to end: set up, workload under nemesis, heal, final read, verdicts.

pub mod binary;
pub mod cluster;
pub mod confluent;
pub mod nemesis;
pub mod net;
pub mod plot;
pub mod run;
pub mod testkit;
pub mod verdict;
pub mod workload;

/// One fault as the nemesis applied it, for the report and the plot. Times are nanoseconds on
/// the same clock as the history's (since the run started).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultWindow {
    /// The nemesis that applied it, e.g. `kill`, `pause`, `partition-halves`.
    pub nemesis: String,
    /// What exactly: which nodes, which rule.
    pub detail: String,
    pub start_ns: u64,
    /// When it was healed; `None` if it was still active when the run ended.
    pub end_ns: Option<u64>,
}
