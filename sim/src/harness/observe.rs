//! The harness's in-process observations of the nodes (see [`crate::observation`]): leadership
//! claims sampled during the run, every high watermark each replica published (a watcher task per
//! replica incarnation), and every replica's log once the healed cluster converged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use strata_core::batch::BatchIter;
use strata_core::replica::Role;
use strata_core::types::{Instant, LeaderEpoch, NodeId, Offset};
use strata_node::broker::Broker;
use strata_node::partition::Partition;

use super::cluster::{Cluster, Live};
use crate::history::TopicPartition;
use crate::observation::{BatchCopy, HighWatermarkSample, LeaderClaim, Observations, ReplicaCopy};

/// How often leadership is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// What [`sample_leaders`] saw.
pub struct Sampled {
    pub leader_claims: Vec<LeaderClaim>,
    pub high_watermarks: Vec<HighWatermarkSample>,
}

/// Samples every running node's leaderships until `stop` is set, and watches the high watermark
/// of every replica (each node's partitions that hold a log) from the first sample that finds
/// it: a watcher task per replica incarnation records every value it wakes on.
pub async fn sample_leaders(
    live: Live,
    start: tokio::time::Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Sampled {
    let mut claims = Vec::new();
    let high_watermarks = Arc::new(Mutex::new(Vec::new()));
    // Per (node, partition): the replica being watched and its incarnation number.
    let mut watched: BTreeMap<(usize, TopicPartition), (Weak<Partition>, u64)> = BTreeMap::new();
    let mut incarnations = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let at = Instant(start.elapsed().as_nanos() as u64);
        let brokers: Vec<(usize, Arc<Broker>)> = {
            let l = live.lock().expect("live lock");
            l.iter()
                .enumerate()
                .filter_map(|(i, b)| b.clone().map(|b| (i, b)))
                .collect()
        };
        for (i, b) in brokers {
            for t in b.topics().values() {
                for p in &t.partitions {
                    let tp = TopicPartition::new(t.name.clone(), p.index);
                    if let Some(epoch) = leader_epoch(&p.role()) {
                        claims.push(LeaderClaim {
                            at,
                            node: NodeId(i as i32 + 1),
                            tp: tp.clone(),
                            leader_epoch: LeaderEpoch(epoch),
                        });
                    }
                    let known = watched
                        .get(&(i, tp.clone()))
                        .and_then(|(w, _)| w.upgrade())
                        .is_some_and(|old| Arc::ptr_eq(&old, p));
                    if !known && p.has_log() {
                        watched.insert((i, tp.clone()), (Arc::downgrade(p), incarnations));
                        tokio::spawn(watch_high_watermark(
                            p.clone(),
                            (NodeId(i as i32 + 1), incarnations, tp),
                            start,
                            stop.clone(),
                            high_watermarks.clone(),
                        ));
                        incarnations += 1;
                    }
                }
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    // The watchers notice `stop` within one period.
    tokio::time::sleep(SAMPLE_EVERY * 2).await;
    let high_watermarks = std::mem::take(&mut *high_watermarks.lock().expect("samples lock"));
    Sampled {
        leader_claims: claims,
        high_watermarks,
    }
}

/// Records every high watermark `p` publishes until it is dropped or `stop` is set. Holds only
/// the receiver, so a replica that goes away (a killed node) ends its watcher.
async fn watch_high_watermark(
    p: Arc<Partition>,
    (node, replica, tp): (NodeId, u64, TopicPartition),
    start: tokio::time::Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
    out: Arc<Mutex<Vec<HighWatermarkSample>>>,
) {
    let mut rx = p.subscribe();
    drop(p);
    let mut last = None;
    loop {
        let hw = rx.borrow_and_update().high_watermark;
        if last != Some(hw) {
            last = Some(hw);
            out.lock().expect("samples lock").push(HighWatermarkSample {
                at: Instant(start.elapsed().as_nanos() as u64),
                node,
                replica,
                tp: tp.clone(),
                high_watermark: Offset(hw),
            });
        }
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Ok(Err(_)) = tokio::time::timeout(SAMPLE_EVERY, rx.changed()).await {
            return;
        }
    }
}

fn leader_epoch(role: &Role) -> Option<i32> {
    match role {
        Role::Leader(l) => Some(l.leader_epoch),
        _ => None,
    }
}

/// Per partition: the leader's log end and high watermark, and every replica's log end.
fn progress(cluster: &Cluster) -> BTreeMap<TopicPartition, (Option<(i64, i64)>, Vec<i64>)> {
    let mut out: BTreeMap<TopicPartition, (Option<(i64, i64)>, Vec<i64>)> = BTreeMap::new();
    for (_, b) in cluster.live_brokers() {
        for t in b.topics().values() {
            for p in &t.partitions {
                let Some(leo) = p.log().as_ref().map(|l| l.log_end_offset().0) else {
                    continue;
                };
                let entry = out
                    .entry(TopicPartition::new(t.name.clone(), p.index))
                    .or_default();
                entry.1.push(leo);
                if p.role().is_leader() {
                    entry.0 = Some((leo, p.state().high_watermark));
                }
            }
        }
    }
    out
}

/// Waits (at most `budget`) until every partition has a leader whose high watermark is its log
/// end and every replica's log end equals it; `Err` names the partitions that did not get there
/// (a liveness failure: after the heal, replication must catch up).
pub async fn await_convergence(cluster: &Cluster, budget: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        let lagging: Vec<String> = progress(cluster)
            .into_iter()
            .filter(|(_, (leader, ends))| {
                !leader.is_some_and(|(leo, hw)| hw == leo && ends.iter().all(|e| *e == leo))
            })
            .map(|(tp, (leader, ends))| match leader {
                Some((leo, hw)) => format!(
                    "{tp} (leader log end {leo}, high watermark {hw}, replica log ends {ends:?})"
                ),
                None => format!("{tp} (no leader; replica log ends {ends:?})"),
            })
            .collect();
        if lagging.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "replicas did not converge within {budget:?} after healing: {}",
                lagging.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every replica's whole log, and each leader's high watermark and ISR.
pub fn snapshot_replicas(cluster: &Cluster, obs: &mut Observations) {
    for (i, b) in cluster.live_brokers() {
        let node = NodeId(i as i32 + 1);
        for t in b.topics().values() {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.clone(), p.index);
                if let Role::Leader(l) = &*p.role() {
                    obs.final_high_watermarks
                        .insert(tp.clone(), Offset(p.state().high_watermark));
                    obs.final_isr.insert(tp.clone(), l.isr.isr().to_vec());
                }
                let guard = p.log();
                let Some(log) = guard.as_ref() else { continue };
                let (start, end) = (log.log_start_offset(), log.log_end_offset());
                let mut batches = Vec::new();
                let mut at = start;
                while at < end {
                    let Ok(r) = log.read(at, 1 << 20, end) else {
                        break;
                    };
                    if r.records.is_empty() {
                        break;
                    }
                    let mut next = at;
                    for item in BatchIter::new(&r.records) {
                        let Ok((pos, h)) = item else { break };
                        batches.push(BatchCopy {
                            base_offset: h.base_offset,
                            last_offset: h.last_offset(),
                            bytes: r.records.slice(pos..pos + h.total_size()),
                        });
                        next = h.next_offset();
                    }
                    if next <= at {
                        break;
                    }
                    at = next;
                }
                obs.replicas.push(ReplicaCopy {
                    node,
                    tp,
                    log_start_offset: start,
                    log_end_offset: end,
                    batches,
                });
            }
        }
    }
}
