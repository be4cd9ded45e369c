//! The consumer-group workload: members of one group subscribe to the workload's topics with
//! Strata's own [`GroupConsumer`], poll, and commit their positions, while the nemesis runs.
//! Each protocol step is recorded in a [`GroupHistory`] for the [`crate::checker::group`]
//! checkers: joins (JoinGroup + SyncGroup), commits (each with a unique tag as metadata),
//! committed-offset reads (the new owner's starting positions, and spot reads).
//!
//! Members misbehave, drawn from the seed: some *crash* (dropped without LeaveGroup, a new
//! incarnation a few seconds later: the coordinator must expire the old one's session), some
//! *pause past their session timeout* (the group rebalances without them) and then commit with
//! the generation they had — a zombie commit the coordinator must refuse.
//!
//! After the heal, [`final_check`] asks DescribeGroups until the group is Stable with every
//! partition owned (recorded with `final_check: true`, the liveness checker reads the last one),
//! then stops the members and reads every partition's committed offset once more.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_client::ConnectionConfig;
use strata_client::group::{
    CommittedOffset, GroupConsumer, GroupConsumerConfig, GroupError, GroupMember, MemberConfig,
    OffsetReset,
};
use strata_client::metadata::Router;
use strata_core::types::Instant;

use crate::group_history::{
    CommittedRead, DescribedMember, GroupCall, GroupHistory, GroupOp, GroupOutcome,
};
use crate::history::{ProcessId, TopicPartition};

/// The group every member joins.
pub const GROUP: &str = "sim-group";
/// `session.timeout.ms` of the members: the broker's minimum (`group.min.session.timeout.ms`).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// How members misbehave (per poll, drawn from the seed).
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Chance per poll that the member crashes (no LeaveGroup) and comes back as a new
    /// incarnation after up to 8 s.
    pub crash: f64,
    /// Chance per poll that the member stops for longer than its session timeout, then commits
    /// with its old generation (a zombie commit).
    pub pause: f64,
}

impl Behaviour {
    pub const SWEEP: Behaviour = Behaviour {
        crash: 0.004,
        pause: 0.004,
    };
    pub const CALM: Behaviour = Behaviour {
        crash: 0.0,
        pause: 0.0,
    };
}

/// What the group's members share.
pub struct GroupWorkload {
    pub history: Mutex<GroupHistory>,
    start: tokio::time::Instant,
    next_tag: AtomicU64,
    next_process: AtomicU32,
    /// Set to end the members.
    pub stop: AtomicBool,
    /// A member is told to pause past its session now (scenarios): its index.
    pub pause_member: Mutex<Option<usize>>,
    pub addrs: Vec<String>,
    pub topics: Vec<String>,
    pub partitions: i32,
}

impl GroupWorkload {
    pub fn new(addrs: Vec<String>, topics: Vec<String>, partitions: i32) -> Arc<GroupWorkload> {
        let mut history = GroupHistory::new();
        history.subscribed.insert(
            GROUP.to_string(),
            topics
                .iter()
                .flat_map(|t| (0..partitions).map(move |p| TopicPartition::new(t.clone(), p)))
                .collect(),
        );
        Arc::new(GroupWorkload {
            history: Mutex::new(history),
            start: tokio::time::Instant::now(),
            next_tag: AtomicU64::new(1),
            next_process: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            pause_member: Mutex::new(None),
            addrs,
            topics,
            partitions,
        })
    }

    /// The history's clock: simulated time since the workload was created.
    pub fn now(&self) -> Instant {
        Instant(self.start.elapsed().as_nanos() as u64)
    }

    /// Records a completed step of `process` on the workload's group.
    fn record_step(
        &self,
        process: ProcessId,
        invoked: Instant,
        call: GroupCall,
        outcome: GroupOutcome,
    ) {
        let op = GroupOp {
            process,
            group: GROUP.to_string(),
            invoked,
            completed: Some(self.now()),
            call,
            outcome,
        };
        self.history
            .lock()
            .expect("group history lock poisoned")
            .record(op);
    }

    /// A fresh process with a member of its own that never joins: it only looks at the group.
    fn observer(&self) -> (ProcessId, GroupMember) {
        let router = Arc::new(
            Router::new(&self.addrs, ConnectionConfig::default(), 1)
                .with_request_timeout(Duration::from_secs(5)),
        );
        (
            self.new_process(),
            GroupMember::new(router, member_config()),
        )
    }

    fn new_process(&self) -> ProcessId {
        ProcessId(self.next_process.fetch_add(1, Ordering::Relaxed))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Every subscribed partition.
    pub fn all_partitions(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|t| (0..self.partitions).map(move |p| (t.clone(), p)))
            .collect()
    }

    /// The group history once every member has stopped.
    pub fn into_history(self: Arc<GroupWorkload>) -> GroupHistory {
        Arc::into_inner(self)
            .expect("every group member has stopped")
            .history
            .into_inner()
            .expect("group history lock poisoned")
    }
}

fn member_config() -> MemberConfig {
    let mut c = MemberConfig::new(GROUP);
    c.session_timeout_ms = SESSION_TIMEOUT.as_millis() as i32;
    c.rebalance_timeout_ms = 10_000;
    c.heartbeat_interval_ms = 500;
    c.request_timeout = Duration::from_secs(5);
    c.connection = ConnectionConfig::default();
    c
}

fn consumer_config() -> GroupConsumerConfig {
    let mut c = GroupConsumerConfig::new(GROUP);
    c.member = member_config();
    c.fetch.max_wait_ms = 200;
    c.auto_offset_reset = OffsetReset::Earliest;
    // Commits are the workload's own, each recorded with its tag.
    c.auto_commit = false;
    c
}

fn tp(p: &(String, i32)) -> TopicPartition {
    TopicPartition::new(p.0.clone(), p.1)
}

/// The outcome of a failed step: a broker error is definite unless it may hide a write
/// ([`GroupError::is_indefinite`]); anything else is indefinite.
fn failed(e: &GroupError) -> GroupOutcome {
    match e.code() {
        Some(code) if !e.is_indefinite() => GroupOutcome::Fail(code.0),
        _ => GroupOutcome::Info(e.to_string()),
    }
}

/// The outcome of a committed-offset read.
fn fetched(
    result: &Result<Vec<((String, i32), Option<CommittedOffset>)>, GroupError>,
) -> GroupOutcome {
    let reads = match result {
        Ok(reads) => reads,
        Err(e) => return failed(e),
    };
    GroupOutcome::Fetched(
        reads
            .iter()
            .map(|(p, c)| {
                (
                    tp(p),
                    c.as_ref().map(|c| CommittedRead {
                        offset: c.offset,
                        tag: c.metadata.as_deref().and_then(|m| m.parse().ok()),
                    }),
                )
            })
            .collect(),
    )
}

/// One member of the group (index `index`), incarnation after incarnation, until stopped.
pub async fn run_member(w: Arc<GroupWorkload>, index: usize, seed: u64, behaviour: Behaviour) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6a0u64.wrapping_mul(index as u64 + 1));
    while !w.stopped() {
        let p = w.new_process();
        let mut consumer = GroupConsumer::new(&w.addrs, consumer_config());
        let topics: Vec<&str> = w.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics);
        let crashed = run_incarnation(&w, index, p, &mut consumer, &mut rng, behaviour).await;
        if crashed {
            // Gone without LeaveGroup: its session must expire at the coordinator.
            drop(consumer);
            let down = Duration::from_millis(rng.random_range(500..8_000));
            tokio::time::sleep(down).await;
        }
    }
}

/// Runs one incarnation until it crashes (`true`) or the workload stops (`false`).
async fn run_incarnation(
    w: &GroupWorkload,
    index: usize,
    p: ProcessId,
    consumer: &mut GroupConsumer,
    rng: &mut StdRng,
    behaviour: Behaviour,
) -> bool {
    while !w.stopped() {
        if consumer.needs_join() {
            let invoked = w.now();
            let member_id = consumer.member().member_id().to_string();
            let result = consumer.rejoin().await;
            let outcome = match &result {
                Ok(j) => GroupOutcome::Joined {
                    member_id: j.member_id.clone(),
                    generation: j.generation,
                    assignment: j.assignment.iter().map(tp).collect(),
                },
                Err(e) => failed(e),
            };
            w.record_step(p, invoked, GroupCall::Join { member_id }, outcome);
            if result.is_err() {
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..500))).await;
            }
            continue;
        }
        if consumer.needs_positions() {
            let invoked = w.now();
            let partitions: Vec<TopicPartition> = consumer.assignment().iter().map(tp).collect();
            let result = consumer.init_positions().await;
            let outcome = fetched(&result);
            w.record_step(
                p,
                invoked,
                GroupCall::FetchCommitted { partitions },
                outcome,
            );
            if result.is_err() {
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..500))).await;
            }
            continue;
        }
        if let Err(e) = consumer.heartbeat_if_due().await
            && !e.needs_rejoin()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if consumer.needs_join() {
            continue;
        }
        // Records are not judged here (the main workload's checkers judge reads); an error
        // just means the next round asks the new leader.
        let _ = consumer.fetch().await;
        if rng.random_bool(0.3) {
            commit(w, p, consumer).await;
        } else if rng.random_bool(0.05) {
            read_committed(w, p, consumer).await;
        }
        let told_to_pause = {
            let mut pause = w.pause_member.lock().expect("pause lock poisoned");
            if *pause == Some(index) {
                *pause = None;
                true
            } else {
                false
            }
        };
        if told_to_pause || rng.random_bool(behaviour.pause) {
            // Stopped past the session timeout: the group goes on without it. Then it commits
            // as the generation it had, which the coordinator must refuse.
            let pause = SESSION_TIMEOUT + Duration::from_millis(rng.random_range(2_000..6_000));
            tokio::time::sleep(pause).await;
            commit(w, p, consumer).await;
        }
        if rng.random_bool(behaviour.crash) {
            return true;
        }
    }
    false
}

/// Commits the member's positions as its current generation, with a fresh tag.
async fn commit(w: &GroupWorkload, p: ProcessId, consumer: &mut GroupConsumer) {
    let offsets = consumer.positions();
    if offsets.is_empty() {
        return;
    }
    let tag = w.next_tag.fetch_add(1, Ordering::Relaxed);
    let member_id = consumer.member().member_id().to_string();
    let generation = consumer.member().generation();
    let invoked = w.now();
    let result = consumer.commit_with_metadata(&tag.to_string()).await;
    let call = GroupCall::Commit {
        member_id,
        generation,
        offsets: offsets
            .iter()
            .map(|(t, part, o)| (TopicPartition::new(t.clone(), *part), *o))
            .collect(),
        tag,
    };
    let outcome = match &result {
        Ok(()) => GroupOutcome::Committed,
        Err(e) => failed(e),
    };
    w.record_step(p, invoked, call, outcome);
}

/// Reads the committed offsets of the member's assignment (without moving its positions).
async fn read_committed(w: &GroupWorkload, p: ProcessId, consumer: &mut GroupConsumer) {
    let partitions = consumer.assignment().to_vec();
    if partitions.is_empty() {
        return;
    }
    let invoked = w.now();
    let result = consumer.member_mut().committed(&partitions).await;
    let call = GroupCall::FetchCommitted {
        partitions: partitions.iter().map(tp).collect(),
    };
    w.record_step(p, invoked, call, fetched(&result));
}

/// The liveness check after the heal: DescribeGroups (recorded, `final_check`) until the group
/// is Stable with every partition owned exactly once, at most `budget`. The members keep running
/// meanwhile; the caller stops them afterwards and calls [`final_read`].
pub async fn final_check(w: &GroupWorkload, budget: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    let (p, mut observer) = w.observer();
    let all: BTreeSet<(String, i32)> = w.all_partitions().into_iter().collect();
    loop {
        let invoked = w.now();
        let result = observer.describe().await;
        let settled = result.as_ref().is_ok_and(|d| {
            let mut owned = Vec::new();
            for (_, a) in &d.members {
                owned.extend(a.iter().cloned());
            }
            let unique: BTreeSet<(String, i32)> = owned.iter().cloned().collect();
            d.state == "Stable" && owned.len() == unique.len() && unique == all
        });
        w.record_step(
            p,
            invoked,
            GroupCall::Describe { final_check: true },
            match &result {
                Ok(d) => GroupOutcome::Described {
                    state: d.state.clone(),
                    generation: -1,
                    members: d
                        .members
                        .iter()
                        .map(|(m, a)| DescribedMember {
                            member_id: m.clone(),
                            assignment: a.iter().map(tp).collect(),
                        })
                        .collect(),
                },
                Err(e) => failed(e),
            },
        );
        if settled {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "group {GROUP} not Stable with every partition owned within {budget:?} after healing (last: {result:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// After the members stopped: one committed-offset read of every partition (retried until it
/// answers, at most `budget`), so that every acknowledged commit is checked at the end.
pub async fn final_read(w: &GroupWorkload, budget: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    let (p, mut observer) = w.observer();
    let partitions = w.all_partitions();
    loop {
        let invoked = w.now();
        let result = observer.committed(&partitions).await;
        let call = GroupCall::FetchCommitted {
            partitions: partitions.iter().map(tp).collect(),
        };
        w.record_step(p, invoked, call, fetched(&result));
        match result {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("no committed-offset read within {budget:?}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
