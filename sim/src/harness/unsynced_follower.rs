//! A follower's unsynced copy is never counted for the high watermark, staged (planted bug 10):
//! a follower reports as its durable end only what it has fsynced, so an acks=-1 write is
//! acknowledged only once every ISR member's copy is durable.
//!
//! Three brokers and a dedicated controller (so killing the leader leaves the quorum whole). The
//! partition has RF 3 and `min.insync.replicas` 2. Follower C is cut off from A and B for the
//! whole run (it keeps the controller), so the ISR shrinks to {A, B}. B's disk turns slow: each
//! flush waits [`SLOW_FLUSH`] after its fsync, so while one flush is in progress, what B appends
//! stays unsynced. V0 is sent (B's flush of V0 starts and occupies B's flusher), then V1.
//! Correct code does not fetch past an unsynced copy and does not count one, so V1 is not
//! acknowledged in the [`V1_TIMEOUT_MS`] it is given. Then A is killed; once its session expires
//! the controller elects B (A leaves the ISR); B loses power, losing every unsynced write,
//! restarts and, the ISR's last member, leads again: a correlated outage of two of three nodes.
//! If V1 had been acknowledged on B's unsynced copy (B reporting its log end as durable: planted
//! bug 10), B now leads without it and the final read misses an acknowledged write: `lost-write`.
//!
//! The run records what it saw, so the test can check the pattern really happened.

use std::time::Duration;

use strata_client::sequencer::AttemptResult;

use super::run::{
    final_check, replica_view, send_once, spawn_send_once, staged_three_brokers_and_a_controller,
    wait_until, warm_up,
};
use crate::checker::Report;
use crate::disk::DiskFaults;
use crate::history::{History, ProcessId};

/// How long each of B's flushes takes after its fsync while B's disk is slow: long enough for
/// A's death, B's election and B's power loss to happen inside B's flush of V0.
pub const SLOW_FLUSH: Duration = Duration::from_secs(20);
/// V0 is sent this long before V1, so B's flush of V0 is under way when V1 arrives.
const V0_LEAD: Duration = Duration::from_millis(300);
/// V1's produce timeout: its answer comes well inside B's slow flush of V0.
pub const V1_TIMEOUT_MS: i32 = 800;

/// What the staged run saw.
pub struct Seen {
    /// Index of the leader, A.
    pub a: usize,
    /// Index of the follower whose copy is unsynced, B.
    pub b: usize,
    /// A's committed ISR once C was cut off (node ids, sorted).
    pub isr_without_c: Option<Vec<i32>>,
    /// The answer to V1's acks=-1 produce, given while B's copy of V1 was unsynced.
    pub v1: AttemptResult,
    /// Unsynced writes to B's `.log` files that its power loss dropped.
    pub dropped_on_b: usize,
    /// The leader epoch B was elected in once A died, if it was.
    pub b_led: Option<i32>,
    /// The leader epoch B led in after its power loss, if it led again.
    pub b_led_again: Option<i32>,
    pub history: History,
    pub report: Report,
}

/// The staged run (call inside a madsim runtime).
pub async fn run(seed: u64) -> Seen {
    let (mut cluster, addrs, w, tp) = staged_three_brokers_and_a_controller(seed).await;
    let a = warm_up(&cluster, &w, &tp, seed).await;
    let (b, c) = ((a + 1) % 3, (a + 2) % 3);
    let b_id = b as i32 + 1;

    let isr_without_c = shrink_isr_to_a_and_b(&cluster, &w, &tp, &addrs, (a, b, c)).await;

    // B's disk turns slow; V0's flush on B occupies B's flusher, V1 waits unsynced behind it.
    let slow = DiskFaults {
        latency: SLOW_FLUSH,
        ..DiskFaults::default()
    };
    cluster.brokers[b].disk.set_faults(slow);
    let v0 = spawn_send_once(&cluster, &w, &tp, &addrs[a], ProcessId(2), -1, 10_000);
    tokio::time::sleep(V0_LEAD).await;
    let v1 = send_once(
        &cluster,
        &w,
        &tp,
        &addrs[a],
        ProcessId(3),
        -1,
        V1_TIMEOUT_MS,
    )
    .await;

    // A dies. Once its session expires the controller elects B, the live ISR member, whose
    // copy of V1 (if it fetched V1) is still unsynced behind the slow flush.
    cluster.kill(a);
    let b_led = wait_until(Duration::from_secs(20), || leads(&cluster, b, b_id)).await;
    // B loses power and every unsynced write (V1's copy) before its flush of V0 ends; it
    // restarts on a healthy disk and, the ISR's last member, leads again.
    let dropped_on_b = log_writes_dropped(&cluster.power_loss_losing_unsynced(b));
    // V0's answer never comes from a dead leader; the send is recorded as indefinite.
    let _ = v0.await;
    cluster.brokers[b].disk.set_faults(DiskFaults::default());
    cluster.restart(b);
    let b_led_again = wait_until(Duration::from_secs(30), || leads(&cluster, b, b_id)).await;

    let (history, report) = final_check(&mut cluster, w, "unsynced_follower").await;
    Seen {
        a,
        b,
        isr_without_c,
        v1,
        dropped_on_b,
        b_led,
        b_led_again,
        history,
        report,
    }
}

/// B's leader epoch if B leads the partition.
fn leads(cluster: &super::cluster::Cluster, b: usize, b_id: i32) -> Option<i32> {
    let v = replica_view(cluster, b)?;
    v.isr.contains(&b_id).then_some(v.leader_epoch?)
}

/// Cuts C off A and B and sends one acks=1 write C cannot fetch (a follower that has everything
/// stays in sync however long it has not fetched), so A shrinks the ISR to {A, B}; cut off from
/// B too, C cannot catch up with B once B leads and be elected in its place. Returns the ISR.
async fn shrink_isr_to_a_and_b(
    cluster: &super::cluster::Cluster,
    w: &std::sync::Arc<super::workload::Workload>,
    tp: &crate::history::TopicPartition,
    addrs: &[String],
    (a, b, c): (usize, usize, usize),
) -> Option<Vec<i32>> {
    cluster.cut_links(c, &[a, b]);
    send_once(cluster, w, tp, &addrs[a], ProcessId(4), 1, 3_000).await;
    let mut expected = vec![a as i32 + 1, b as i32 + 1];
    expected.sort_unstable();
    wait_until(Duration::from_secs(30), || {
        let mut isr = replica_view(cluster, a)?.isr;
        isr.sort_unstable();
        (isr == expected).then_some(isr)
    })
    .await
}

/// Unsynced writes to `.log` files that a crash dropped.
fn log_writes_dropped(crash: &crate::disk::CrashReport) -> usize {
    let is_log = |f: &&crate::disk::FileCrash| {
        f.path
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "log"))
    };
    crash
        .files
        .iter()
        .filter(is_log)
        .map(|f| f.changes.len())
        .sum()
}
