//! `min.insync.replicas`, staged (planted bug 15): an acks=-1 produce is refused
//! NOT_ENOUGH_REPLICAS while the ISR is below `min.insync.replicas`, and acknowledged again once
//! the ISR has grown back.
//!
//! Three brokers and a dedicated controller (in the combined mode the followers would be the
//! controller quorum, and a leader cut off from them would be fenced, not shrink its ISR). The
//! partition has replication factor 3 and `min.insync.replicas` 2 (the brokers' setting, see
//! `run::settings`). Its leader A is cut off from both followers only: it keeps the controller
//! and the client. An acks=-1 produce appended then leaves the followers behind (a follower
//! that has everything is in sync however long it has not fetched), so after
//! `replica.lag.time.max.ms` A shrinks the ISR to itself; that produce must then be answered
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND, and later acks=-1 produces refused NOT_ENOUGH_REPLICAS
//! (nothing acknowledged), while an acks=1 produce still succeeds (A leads and takes writes: the
//! refusal is the ISR rule). Healed, the followers catch up, the ISR grows back, and acks=-1
//! writes are acknowledged again.
//!
//! The run records what it saw, so the test can check the pattern really happened.

use std::time::Duration;

use strata_client::sequencer::AttemptResult;

use super::run::{
    final_check, replica_view, send_once, send_values, staged_three_brokers_and_a_controller,
    wait_until, warm_up,
};
use crate::checker::Report;
use crate::history::{History, ProcessId};

/// acks=-1 produces sent to A while its ISR is A alone.
pub const SENDS_BELOW_MIN_ISR: usize = 3;
/// acks=-1 writes that must be acknowledged once the ISR grew back.
pub const SENDS_AFTER_HEAL: usize = 5;

/// What the staged run saw.
pub struct Seen {
    /// Index of the leader, A.
    pub a: usize,
    /// The effective `min.insync.replicas` A enforces.
    pub min_insync_replicas: Option<usize>,
    /// The answer to the acks=-1 produce appended right after the cut, while the ISR was still
    /// full (its wait outlives the shrink).
    pub appended_before_shrink: AttemptResult,
    /// The ISR A saw committed once cut off (A's node id alone, if it shrank).
    pub shrunk_isr: Option<Vec<i32>>,
    /// The answers to the acks=-1 produces sent while the ISR was A alone, with A's committed
    /// ISR right after each.
    pub below_min_isr: Vec<(AttemptResult, Vec<i32>)>,
    /// The answer to an acks=1 produce sent then (A still leads and appends).
    pub acks_one: Option<AttemptResult>,
    /// The ISR once it grew back after the heal.
    pub regrown_isr: Option<Vec<i32>>,
    /// acks=-1 writes acknowledged after that.
    pub acknowledged_after_heal: usize,
    pub history: History,
    pub report: Report,
}

/// The staged run (call inside a madsim runtime).
pub async fn run(seed: u64) -> Seen {
    let (mut cluster, addrs, w, tp) = staged_three_brokers_and_a_controller(seed).await;

    let a = warm_up(&cluster, &w, &tp, seed).await;
    let a_id = a as i32 + 1;
    let min_insync_replicas = replica_view(&cluster, a).and_then(|v| v.min_insync_replicas);

    // A is cut off from both followers; it keeps the controller and the client.
    let followers: Vec<usize> = (0..addrs.len()).filter(|&j| j != a).collect();
    cluster.cut_links(a, &followers);
    let appended_before_shrink =
        send_once(&cluster, &w, &tp, &addrs[a], ProcessId(2), -1, 10_000).await;
    let shrunk_isr = wait_until(Duration::from_secs(20), || {
        let v = replica_view(&cluster, a)?;
        v.leader_epoch?;
        (v.isr == [a_id]).then_some(v.isr)
    })
    .await;

    // acks=-1 produces to A, each a single attempt on a connection of its own, then one acks=1.
    let mut below_min_isr = Vec::new();
    for _ in 0..SENDS_BELOW_MIN_ISR {
        let result = send_once(&cluster, &w, &tp, &addrs[a], ProcessId(2), -1, 3_000).await;
        let isr = replica_view(&cluster, a).map_or_else(Vec::new, |v| v.isr);
        below_min_isr.push((result, isr));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let acks_one = Some(send_once(&cluster, &w, &tp, &addrs[a], ProcessId(3), 1, 3_000).await);

    // Healed: the followers catch up and A grows the ISR back.
    cluster.reconnect_peers(a);
    let regrown_isr = wait_until(Duration::from_secs(30), || {
        let v = replica_view(&cluster, a)?;
        (v.isr.len() >= 2).then_some(v.isr)
    })
    .await;
    let acknowledged_after_heal =
        send_values(&cluster, &w, &addrs, ProcessId(4), SENDS_AFTER_HEAL).await;

    let (history, report) = final_check(&mut cluster, w, "min_insync").await;
    Seen {
        a,
        min_insync_replicas,
        appended_before_shrink,
        shrunk_isr,
        below_min_isr,
        acks_one,
        regrown_isr,
        acknowledged_after_heal,
        history,
        report,
    }
}
