//! Staged consumer-group scenarios on a three-node cluster, each judged by the group checkers:
//!
//! - [`coordinator_failover`]: while three members consume and commit, `kill -9` the broker
//!   leading the group's `__consumer_offsets` partition and bring it back, then cut the power of
//!   every node at once and bring them all back. The group must move to the new coordinator, no
//!   acknowledged commit may be lost or replaced by an older one, and the group must settle.
//! - [`member_paused_past_session`]: one of two members stops for longer than its session
//!   timeout; the other must take every partition in a new generation, and the paused member's
//!   commit as its old generation must be refused and never be read back.
//! - [`offsets_topic_bounded_for_an_hour`]: two members commit for an hour of simulated time on
//!   one node whose `__consumer_offsets` rolls 4 KiB segments and never snapshots: compaction
//!   alone must keep the partition bounded, and no acknowledged commit may be lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use strata_core::group::partition_for;

use super::cluster::Cluster;
use super::group_workload::{self, Behaviour, GROUP, GroupWorkload};
use super::run::{create_topic, settings};
use super::workload::{self, TOPIC, Workload};
use crate::checker::group::{GroupReport, check_all};
use crate::group_history::{GroupCall, GroupHistory, GroupOutcome};

/// The offsets topic's partitions in simulated runs (`offsets.topic.num.partitions` in
/// [`settings`]).
const OFFSETS_PARTITIONS: i32 = 3;

/// What a group scenario leaves to judge.
pub struct GroupScenario {
    pub history: GroupHistory,
    pub report: GroupReport,
    /// When each fault the scenario injected began, on the history's clock (nanoseconds).
    pub faults_at: Vec<u64>,
}

/// A running group workload on a three-node cluster with one producer feeding it.
struct Stage {
    cluster: Cluster,
    w: Arc<Workload>,
    gw: Arc<GroupWorkload>,
    tasks: Vec<madsim::task::JoinHandle<()>>,
}

async fn stage(seed: u64, members: usize) -> Stage {
    stage_on(3, seed, members, &[], Duration::from_millis(50)).await
}

/// A stage on `nodes` nodes with `extra` broker settings, the producer sending every `every`.
async fn stage_on(
    nodes: usize,
    seed: u64,
    members: usize,
    extra: &[&str],
    every: Duration,
) -> Stage {
    let mut config = settings(nodes);
    config.extend(extra.iter().map(|s| s.to_string()));
    let cluster = Cluster::start(nodes, seed, &config);
    let addrs = cluster.client_addrs();
    let rf = nodes.min(3) as i16;
    let created = {
        let addrs = addrs.clone();
        cluster
            .client
            .spawn(async move { create_topic(&addrs, TOPIC, 3, rf).await })
            .await
            .expect("set-up task")
    };
    if let Err(e) = created {
        panic!("seed {seed}: could not create the topic: {e}");
    }
    let w = Workload::new(addrs.clone(), vec![TOPIC.to_string()], 3);
    let gw = GroupWorkload::new(addrs, vec![TOPIC.to_string()], 3);
    let mut tasks = vec![
        cluster
            .client
            .spawn(workload::run_producer(w.clone(), 0, every, false)),
    ];
    for i in 0..members {
        tasks.push(cluster.client.spawn(group_workload::run_member(
            gw.clone(),
            i,
            seed,
            Behaviour::CALM,
        )));
    }
    Stage {
        cluster,
        w,
        gw,
        tasks,
    }
}

impl Stage {
    /// The group history's clock.
    fn now(&self) -> u64 {
        self.gw.now().0
    }

    /// Acknowledged commits so far.
    fn acknowledged_commits(&self) -> usize {
        let history = self.gw.history.lock().expect("group history lock");
        history
            .ops
            .iter()
            .filter(|op| {
                matches!(op.call, GroupCall::Commit { .. }) && op.outcome == GroupOutcome::Committed
            })
            .count()
    }

    /// Waits (at most `budget`) until `more` commits beyond the current count are acknowledged.
    async fn await_commits(&self, more: usize, budget: Duration, what: &str) {
        let target = self.acknowledged_commits() + more;
        let deadline = tokio::time::Instant::now() + budget;
        while self.acknowledged_commits() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: fewer than {more} more acknowledged commits within {budget:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The broker leading the group's offsets partition now.
    fn coordinator(&self) -> Option<usize> {
        let partition = partition_for(GROUP, OFFSETS_PARTITIONS);
        let mut best: Option<(i32, usize)> = None;
        for (i, b) in self.cluster.live_brokers() {
            if let Some(p) = b.partition("__consumer_offsets", partition)
                && let Some(epoch) = p.role().leader_epoch()
                && best.is_none_or(|(e, _)| epoch > e)
            {
                best = Some((epoch, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Heals, demands a settled group, stops everything and judges the group history.
    async fn finish(mut self, scenario: &str, faults_at: Vec<u64>) -> GroupScenario {
        self.cluster.heal_all();
        let gw = self.gw.clone();
        self.cluster
            .client
            .spawn(async move { group_workload::final_check(&gw, Duration::from_secs(60)).await })
            .await
            .expect("group final check task")
            .unwrap_or_else(|e| panic!("{scenario}: {e}"));
        self.gw.stop.store(true, Ordering::Relaxed);
        self.w.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("workload task");
        }
        let gw = self.gw.clone();
        self.cluster
            .client
            .spawn(async move { group_workload::final_read(&gw, Duration::from_secs(30)).await })
            .await
            .expect("group final read task")
            .unwrap_or_else(|e| panic!("{scenario}: {e}"));
        let history = self.gw.into_history();
        let report = check_all(&history);
        GroupScenario {
            history,
            report,
            faults_at,
        }
    }
}

/// See the module docs.
pub async fn coordinator_failover(seed: u64) -> GroupScenario {
    let mut s = stage(seed, 3).await;
    s.await_commits(5, Duration::from_secs(60), "before the failover")
        .await;
    let coordinator = s
        .coordinator()
        .unwrap_or_else(|| panic!("seed {seed}: no broker leads the group's offsets partition"));
    let mut faults_at = vec![s.now()];
    s.cluster.kill(coordinator);
    s.await_commits(5, Duration::from_secs(60), "with the coordinator down")
        .await;
    s.cluster.restart(coordinator);
    s.await_commits(5, Duration::from_secs(60), "after the restart")
        .await;
    // Then every node loses power at once: unsynced writes are kept, dropped or torn.
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa11);
    faults_at.push(s.now());
    for i in 0..s.cluster.brokers.len() {
        s.cluster.power_loss(i, &mut rng);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..s.cluster.brokers.len() {
        s.cluster.restart(i);
    }
    s.await_commits(5, Duration::from_secs(90), "after the power loss")
        .await;
    s.finish("coordinator failover", faults_at).await
}

/// See the module docs.
pub async fn member_paused_past_session(seed: u64) -> GroupScenario {
    let s = stage(seed, 2).await;
    s.await_commits(5, Duration::from_secs(60), "before the pause")
        .await;
    let faults_at = vec![s.now()];
    *s.gw.pause_member.lock().expect("pause lock") = Some(0);
    // The pause, the other member's takeover, and the zombie commit.
    tokio::time::sleep(group_workload::SESSION_TIMEOUT + Duration::from_secs(10)).await;
    s.await_commits(3, Duration::from_secs(60), "after the pause")
        .await;
    s.finish("member paused past its session", faults_at).await
}

/// What [`offsets_topic_bounded_for_an_hour`] measured of the group's `__consumer_offsets`
/// partition, sampled every simulated minute.
pub struct OffsetsSize {
    pub scenario: GroupScenario,
    /// Records written to the partition (its log end offset at the end).
    pub records_written: i64,
    /// The largest size the partition had on disk at a sample, and its size at the end.
    pub max_bytes: u64,
    pub end_bytes: u64,
    /// Its log start offset at the end (snapshots never move it in this scenario).
    pub log_start: i64,
}

/// See the module docs: the settings make compaction the only bound (snapshots only past a
/// million records; 4 KiB segments; the cleaner every second).
pub async fn offsets_topic_bounded_for_an_hour(seed: u64) -> OffsetsSize {
    let extra = [
        "offsets.topic.segment.bytes=4096",
        "offsets.snapshot.min.records=1000000",
        "log.cleaner.backoff.ms=1000",
    ];
    let s = stage_on(1, seed, 2, &extra, Duration::from_millis(500)).await;
    s.await_commits(5, Duration::from_secs(60), "before the hour")
        .await;
    let mut max_bytes = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        max_bytes = max_bytes.max(s.offsets_partition().0);
    }
    let (end_bytes, records_written, log_start) = s.offsets_partition();
    let scenario = s
        .finish("offsets_topic_bounded_for_an_hour", Vec::new())
        .await;
    OffsetsSize {
        scenario,
        records_written,
        max_bytes: max_bytes.max(end_bytes),
        end_bytes,
        log_start,
    }
}

impl Stage {
    /// The size on disk, log end and log start of the group's offsets partition on the broker
    /// leading it.
    fn offsets_partition(&self) -> (u64, i64, i64) {
        let partition = partition_for(GROUP, OFFSETS_PARTITIONS);
        let Some(i) = self.coordinator() else {
            return (0, 0, 0);
        };
        let brokers = self.cluster.live_brokers();
        let Some((_, b)) = brokers.iter().find(|(j, _)| *j == i) else {
            return (0, 0, 0);
        };
        let Some(p) = b.partition("__consumer_offsets", partition) else {
            return (0, 0, 0);
        };
        let guard = p.log();
        guard.as_ref().map_or((0, 0, 0), |log| {
            (
                log.size_bytes(),
                log.log_end_offset().0,
                log.log_start_offset().0,
            )
        })
    }
}
