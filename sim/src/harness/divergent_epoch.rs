//! KIP-279's hard case, staged: a follower whose log holds an epoch the new leader never saw,
//! and whose copy of the epoch before it ends earlier than the leader's.
//!
//! Replicas `[m, f, l]` of one partition (replica order, so the controller's clean election
//! picks `f` before `l`) on three brokers and a dedicated controller
//! ([`Cluster::start_with_dedicated_controller`]): the held links below are between brokers
//! only, so every broker keeps the controller whichever links are held, and the quorum survives
//! two brokers down. (On five combined nodes, seed 2 made `l` the active controller: holding
//! `f`'s packets to `l` held `f`'s heartbeats and metadata fetches too, and `f` was fenced
//! without ever learning it led `E'`.)
//!
//! 1. `m` leads epoch `E`; every replica has everything (`X`).
//! 2. `m`'s fetch answers to `f` are held (every held link delivers only after step 4), and
//!    `acks=1` writes take `m` and `l` to `Y > X`.
//! 3. `f`'s fetch answers to `l` are held too; `m` is killed. The controller fences `m` and
//!    elects `f` (epoch `E'`), which starts at `X` and takes `acks=1` writes of its own there,
//!    past `Y` (KIP-279's figure: the follower's log reaches the leader's end of `E`).
//! 4. `f` is killed before it shrinks `l` out of the ISR; once fenced, `l` (the ISR's last member)
//!    leads epoch `E''`. It never saw `E'`: its cache says `E` ends at `Y`.
//! 5. `f` restarts and asks `l` where `E'` ends. `l` answers with the largest epoch it knows at
//!    or below it: `E`, ending at `Y`. `f`'s own `E` ends at `X`: the logs agree only up to the
//!    smaller, `X`, so `f` must truncate to `X` and fetch `l`'s `E` records. Truncating to
//!    `min(Y, log end)` instead keeps `f`'s `E'` records where `l` has others (planted bug 06):
//!    `f` then fetches `l`'s `E''` records from `Y` on, and the replicas end the same length but
//!    diverge below the high watermark. (Had `f`'s `E'` ended below `Y`, `f` would refuse `l`'s
//!    `E` records after its own `E'` ones as a stale epoch and never catch up: the planted bug
//!    would show only as a liveness failure.)
//!
//! The run records what it saw (`Seen`), so the test can check the pattern happened, and ends
//! with the usual final read, convergence and replica snapshot for the checkers.

use std::sync::Arc;
use std::time::Duration;

use madsim::net::NetSim;
use strata_client::{ProduceOutcome, Producer, ProducerConfig};

use super::cluster::Cluster;
use super::observe;
use super::run::{final_read, staged_three_brokers_and_a_controller};
use super::workload::{self, TOPIC, Workload};
use crate::checker::{Report, check_all_with};
use crate::history::{History, ProcessId, TopicPartition};
use crate::observation::Observations;

/// What the staged run saw.
#[derive(Debug)]
pub struct Seen {
    /// Node ids (1-based) of the replicas, in replica order: `[m, f, l]`.
    pub replicas: Vec<i32>,
    /// `f`'s log end when `m` was killed (`X`), and `l`'s (`Y`).
    pub x: i64,
    pub y: i64,
    /// The epochs `m`, `f` and `l` led in (`E`, `E'`, `E''`), as far as they got.
    pub epochs: Vec<i32>,
    /// `f`'s log end once it had taken its own `E'` writes.
    pub f_log_end_in_e_prime: i64,
    /// `l`'s leader epoch cache when it led `E''`: (epoch, start offset), oldest first.
    pub l_epochs: Vec<(i32, i64)>,
    pub liveness: Result<(), String>,
    pub history: History,
    pub observations: Observations,
    pub report: Report,
}

/// The staged run (call inside a madsim runtime).
pub async fn run(seed: u64) -> Seen {
    // A dedicated controller: no held link below is between a broker and the quorum.
    let (mut cluster, addrs, w, tp) = staged_three_brokers_and_a_controller(seed).await;
    let strong = Arc::new(Producer::new(
        &addrs.join(","),
        workload::producer_config(true),
    ));
    let weak = Arc::new(Producer::new(
        &addrs.join(","),
        ProducerConfig {
            acks: 1,
            attempt_log: 64,
            ..workload::producer_config(false)
        },
    ));

    // 1. Epoch E with every replica in the ISR and up to date.
    send(&cluster, &w, ProcessId(1), &strong, &tp, 3).await;
    let image = wait_for(&cluster, |i| i.isr.len() == 3).await;
    let replicas: Vec<usize> = image.replicas.iter().map(|n| n.0 as usize - 1).collect();
    assert_eq!(
        image.leader,
        Some(image.replicas[0]),
        "the preferred replica leads"
    );
    let (m, f, l) = (replicas[0], replicas[1], replicas[2]);
    let mut epochs = vec![image.leader_epoch];

    // 2. f stops getting m's answers; m and l go on to Y.
    let net = NetSim::current();
    net.clog_link(cluster.brokers[m].node, cluster.brokers[f].node);
    send(&cluster, &w, ProcessId(2), &weak, &tp, 3).await;
    let (mut x, mut y) = (0, 0);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        (x, y) = (log_end(&cluster, f), log_end(&cluster, l));
        if y == log_end(&cluster, m) && y > x {
            break;
        }
    }

    // 3. l stops getting f's answers; m dies; f leads E' and takes writes at X.
    net.clog_link(cluster.brokers[f].node, cluster.brokers[l].node);
    cluster.kill(m);
    let image = wait_for(&cluster, |i| {
        i.leader.is_some_and(|n| n.0 as usize - 1 == f)
    })
    .await;
    epochs.push(image.leader_epoch);
    // A fresh producer: the first one's metadata still names m, which the client host cannot
    // reach any more.
    let weak = Arc::new(Producer::new(&addrs.join(","), weak.config().clone()));
    // Past Y, so that f's log covers all of l's E (see step 3 above).
    let e_prime_writes = usize::try_from((y - x + 1).max(1)).expect("at least one");
    send(&cluster, &w, ProcessId(3), &weak, &tp, e_prime_writes).await;
    let f_log_end_in_e_prime = log_end(&cluster, f);

    // 4. f dies; l, the ISR's last member, leads E''.
    cluster.kill(f);
    let image = wait_for(&cluster, |i| {
        i.leader.is_some_and(|n| n.0 as usize - 1 == l)
    })
    .await;
    epochs.push(image.leader_epoch);
    let l_epochs = epoch_cache(&cluster, l);

    // 5. f (and m) come back as followers of l; writes go on under E''.
    // What the links held (m's answers to f, f's to l) arrives now, late: l leads by then.
    net.unclog_link(cluster.brokers[m].node, cluster.brokers[f].node);
    net.unclog_link(cluster.brokers[f].node, cluster.brokers[l].node);
    cluster.restart(f);
    cluster.restart(m);
    send(&cluster, &w, ProcessId(4), &strong, &tp, 3).await;

    cluster.heal_all();
    let w2 = w.clone();
    let mut liveness = cluster
        .client
        .spawn(async move { final_read(&w2).await })
        .await
        .expect("final read task");
    let mut observations = Observations::default();
    if liveness.is_ok() {
        liveness = observe::await_convergence(&cluster, Duration::from_secs(30)).await;
        observe::snapshot_replicas(&cluster, &mut observations);
    }
    drop((strong, weak));
    let w = Arc::into_inner(w).expect("the workload is no longer shared");
    let history = w.history.into_inner().expect("history lock poisoned");
    let report = check_all_with(&history, &observations);
    Seen {
        replicas: replicas.iter().map(|i| *i as i32 + 1).collect(),
        x,
        y,
        epochs,
        f_log_end_in_e_prime,
        l_epochs,
        liveness,
        history,
        observations,
        report,
    }
}

/// Sends `n` batches of one value each from the client host, in order.
async fn send(
    cluster: &Cluster,
    w: &Arc<Workload>,
    p: ProcessId,
    producer: &Arc<Producer>,
    tp: &TopicPartition,
    n: usize,
) {
    let (w, producer, tp) = (w.clone(), producer.clone(), tp.clone());
    cluster
        .client
        .spawn(async move {
            for _ in 0..n {
                let v = w.next_value();
                let outcome = workload::send_recorded(&w, p, &producer, &tp, &[v]).await;
                assert!(
                    matches!(outcome, ProduceOutcome::Ok { .. }),
                    "{p}: send of {v} not acknowledged: {outcome:?}\n{}",
                    super::redpanda_3039::describe(&producer.attempts())
                );
            }
        })
        .await
        .expect("send task");
}

/// Waits (up to 10 s) until some live broker's metadata shows partition 0 as `ready` says.
async fn wait_for(
    cluster: &Cluster,
    ready: impl Fn(&strata_core::metadata::PartitionImage) -> bool,
) -> strata_core::metadata::PartitionImage {
    for _ in 0..200 {
        for (_, b) in cluster.live_brokers() {
            let Some(state) = b.cluster() else { continue };
            if let Some(p) = state.image().partition(TOPIC, 0)
                && ready(p)
            {
                return p.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("divergent_epoch: the partition never got to the awaited state");
}

/// Broker `i`'s log end for partition 0 (-1 if it has no log or is down).
fn log_end(cluster: &Cluster, i: usize) -> i64 {
    cluster
        .live_brokers()
        .into_iter()
        .find(|(j, _)| *j == i)
        .and_then(|(_, b)| b.partition(TOPIC, 0))
        .and_then(|p| p.log().as_ref().map(|l| l.log_end_offset().0))
        .unwrap_or(-1)
}

/// Broker `i`'s leader epoch cache for partition 0.
fn epoch_cache(cluster: &Cluster, i: usize) -> Vec<(i32, i64)> {
    cluster
        .live_brokers()
        .into_iter()
        .find(|(j, _)| *j == i)
        .and_then(|(_, b)| b.partition(TOPIC, 0))
        .and_then(|p| {
            p.log().as_ref().map(|l| {
                l.leader_epoch_entries()
                    .iter()
                    .map(|e| (e.epoch.0, e.start_offset.0))
                    .collect()
            })
        })
        .unwrap_or_default()
}
