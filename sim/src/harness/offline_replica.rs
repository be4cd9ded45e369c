//! Offline replicas reach the controller (KIP-858 per partition), staged: a partition's leader
//! A fails its log (fsync EIO on A's disk, which fails the partition's log for good), A reports
//! the replica offline, and the controller moves leadership to another ISR member and drops A
//! from the ISR, while acks=-1 produce keeps working on the others. A is then restarted: its
//! new registration clears the mark, its log opens again, it catches up as a follower and the
//! leader expands the ISR with it.
//!
//! Every fact the test asserts is read from the active controller's image (the committed
//! metadata), not from logs; the history (workload producers and consumer, the staged sends, a
//! final read) goes to the checkers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_client::Producer;
use strata_core::metadata::{MetadataImage, PartitionImage};
use strata_core::types::NodeId;

use super::cluster::Cluster;
use super::run::{final_read, staged_three_node_partition};
use super::workload::{self, TOPIC};
use crate::checker::{Report, check_all};
use crate::history::{History, ProcessId};

/// What the staged run saw, each partition state from the active controller's image.
pub struct Seen {
    /// Node id of the leader whose log failed.
    pub failed_leader: NodeId,
    /// Whether its log did fail (the fault hit the partition's flush, not something else).
    pub log_failed: bool,
    /// The partition once the controller acted on the report (`None`: it never did in time).
    pub after_report: Option<PartitionImage>,
    /// Whether the controller recorded A's replica as offline then.
    pub marked_offline: bool,
    /// acks=-1 sends acknowledged while A ran with its failed log.
    pub acknowledged_while_offline: usize,
    /// The partition after those sends (A still offline, not re-added).
    pub after_sends: Option<PartitionImage>,
    /// The partition once A, restarted, is back in the ISR (`None`: not in time).
    pub after_restart: Option<PartitionImage>,
    /// Whether the offline mark was still there then.
    pub marked_after_restart: bool,
    pub history: History,
    pub report: Report,
}

/// Sends that must be acknowledged while A's replica is offline.
pub const SENDS_WHILE_OFFLINE: usize = 20;

/// The staged run (call inside a madsim runtime).
pub async fn run(seed: u64) -> Seen {
    let (mut cluster, _addrs, w, tp) = staged_three_node_partition(seed).await;
    let mut tasks = Vec::new();
    for p in 0..2 {
        let pause = Duration::from_millis(20 + 10 * u64::from(p));
        tasks.push(
            cluster
                .client
                .spawn(workload::run_producer(w.clone(), p, pause, false)),
        );
    }
    tasks.push(
        cluster
            .client
            .spawn(workload::run_consumer(w.clone(), ProcessId(1_000))),
    );

    // A leader with the full ISR, taking writes.
    let a = wait_for(&cluster, Duration::from_secs(30), |image| {
        let p = image.partition(TOPIC, 0)?;
        (p.isr.len() == 3).then_some(p.leader?)
    })
    .await
    .unwrap_or_else(|| panic!("seed {seed}: no leader with a full ISR"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a_index = usize::try_from(a.0 - 1).expect("node ids start at 1");

    // Fail A's log: the next fsync on A's disk fails, until one hit the partition's flush
    // (another sync, the controller quorum's, may take one first).
    let mut log_failed = false;
    for _ in 0..100 {
        cluster.brokers[a_index].disk.fail_next_syncs(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if partition_log_failed(&cluster, a_index) {
            log_failed = true;
            break;
        }
    }
    cluster.brokers[a_index].disk.fail_next_syncs(0);

    // The controller moves leadership off A and takes A out of the ISR.
    let moved = wait_for(&cluster, Duration::from_secs(10), |image| {
        let p = image.partition(TOPIC, 0)?;
        let moved = p.leader.is_some_and(|l| l != a) && !p.isr.contains(&a);
        moved.then(|| p.clone())
    })
    .await;
    let marked_offline =
        controller_image(&cluster).is_some_and(|image| image.is_replica_offline(a, TOPIC, 0));
    let after_report = moved;

    // acks=-1 keeps working on the others while A runs with its failed log.
    let acknowledged_while_offline = {
        let (w2, tp2) = (w.clone(), tp.clone());
        cluster
            .client
            .spawn(async move {
                let producer = Producer::new(&w2.addrs.join(","), workload::producer_config(true));
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                let mut acknowledged = 0;
                while acknowledged < SENDS_WHILE_OFFLINE && tokio::time::Instant::now() < deadline {
                    let value = w2.next_value();
                    if workload::send(&w2, ProcessId(2_000), &producer, &tp2, &[value]).await {
                        acknowledged += 1;
                    }
                }
                acknowledged
            })
            .await
            .expect("offline-phase sends")
    };
    let after_sends =
        controller_image(&cluster).and_then(|image| image.partition(TOPIC, 0).cloned());

    // A restarts: its log opens again, it catches up and rejoins the ISR.
    cluster.kill(a_index);
    cluster.restart(a_index);
    let after_restart = wait_for(&cluster, Duration::from_secs(60), |image| {
        let p = image.partition(TOPIC, 0)?;
        p.isr.contains(&a).then(|| p.clone())
    })
    .await;
    let marked_after_restart =
        controller_image(&cluster).is_some_and(|image| image.is_replica_offline(a, TOPIC, 0));

    w.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("workload task");
    }
    let w3 = w.clone();
    cluster
        .client
        .spawn(async move { final_read(&w3).await })
        .await
        .expect("final read task")
        .unwrap_or_else(|e| panic!("offline_replica scenario: {e}"));
    let w = Arc::into_inner(w).expect("the workload is no longer shared");
    let history = w.history.into_inner().expect("history lock poisoned");
    let report = check_all(&history);
    Seen {
        failed_leader: a,
        log_failed,
        after_report,
        marked_offline,
        acknowledged_while_offline,
        after_sends,
        after_restart,
        marked_after_restart,
        history,
        report,
    }
}

/// The active controller's committed image.
pub fn controller_image(cluster: &Cluster) -> Option<Arc<MetadataImage>> {
    let i = cluster.active_controller()?;
    let (_, broker) = cluster.live_brokers().into_iter().find(|(j, _)| *j == i)?;
    let state = broker.cluster()?;
    let guard = state.controller.lock().expect("controller lock");
    let image = guard.as_ref()?.image();
    let image = image.borrow().clone();
    Some(image)
}

/// Polls the active controller's image every 100 ms until `f` finds something, at most
/// `budget`.
async fn wait_for<T>(
    cluster: &Cluster,
    budget: Duration,
    f: impl Fn(&MetadataImage) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + budget;
    while tokio::time::Instant::now() < deadline {
        if let Some(image) = controller_image(cluster)
            && let Some(found) = f(&image)
        {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Whether node `i`'s log of the workload partition failed.
fn partition_log_failed(cluster: &Cluster, i: usize) -> bool {
    cluster
        .live_brokers()
        .into_iter()
        .find(|(j, _)| *j == i)
        .and_then(|(_, b)| b.partition(TOPIC, 0))
        .is_some_and(|p| p.state().failed || p.log().as_ref().is_some_and(|l| l.is_failed()))
}
