//! One partition as the broker serves it: its [`PartitionLog`], its replica state (the
//! [`PartitionReplica`] of `strata_core::replica::partition`, where every rule on roles, the
//! durable end, the high watermark and the ISR lives), and its group-commit flusher. This file
//! is the locks, the watch channel waiters follow, and the flusher around them.
//!
//! Invariants:
//! - With `fsync.before.ack` the high watermark is `log.flushed_offset()`: consumers never see,
//!   and producers are never acknowledged for, data that a power loss could take back.
//!   Without it, the high watermark is `log.log_end_offset()` and a background flush runs every
//!   `log.flush.interval.ms`.
//! - Group commit: the flusher calls `begin_flush` under the log lock, runs the fsyncs in
//!   `spawn_blocking` without the lock (appends and reads continue), then `complete_flush`. One
//!   fsync covers every append before it.
//! - An fsync error marks the log failed (`PartitionLog::fail`) and the state `failed`; waiting
//!   producers get `KAFKA_STORAGE_ERROR` and are never acknowledged.
//! - Every change of the replica state is published to the watch under its lock
//!   ([`Partition::update`]), so what waiters see is always a state the rules produced.
//! - Long-polling fetches wait on this partition's own waiter lists (`fetch_waiters.rs`): an
//!   append wakes followers' fetches of it, a high-watermark move consumers'; a role change or a
//!   failure wakes both lists and the broker-wide signals. An append never wakes a fetch that
//!   does not read this partition.
//! - Lock order: the replica state, then the log (an append holds the role it stamps the
//!   epoch of across the append, so a batch is never stamped with an epoch that already ended).

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use strata_core::ErrorCode;
use strata_core::log::{AppendInfo, FlushPlan, LogConfig, PartitionLog};
use strata_core::replica::{PartitionReplica, Role};
use strata_core::types::{LeaderEpoch, Offset};
use tokio::sync::Notify;

use crate::fetch_waiters::FetchWaiters;
use crate::sync::watch;

/// The broker-wide wake-up signals a partition bumps.
#[derive(Debug, Clone)]
pub struct Signals {
    /// Some high watermark moved (consumers' long polls).
    pub data: Arc<watch::Sender<u64>>,
    /// Some log end moved (followers' long polls).
    pub append: Arc<watch::Sender<u64>>,
    /// Some partition's role changed (the group coordinators follow leadership of the offsets
    /// topic).
    pub roles: Arc<watch::Sender<u64>>,
}

/// What waiters (producers, long-polling fetches) watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// The high watermark: the first offset consumers may not see yet.
    pub high_watermark: i64,
    /// The log failed (fsync error); nothing more will be acknowledged.
    pub failed: bool,
    /// The local durable end: the flushed offset with `fsync.before.ack`, else the log end.
    pub durable_end: i64,
    /// The leader epoch while this broker leads the partition, else -1. A producer waiting for
    /// its acknowledgement gives up (NOT_LEADER_OR_FOLLOWER) when this changes.
    pub leader_epoch: i32,
}

/// A served partition.
#[derive(Debug)]
pub struct Partition {
    /// Topic name (for log lines).
    pub topic: String,
    /// Partition index.
    pub index: i32,
    /// The log; `None` once deleted (DeleteTopics). Held only for short synchronous sections.
    log: Mutex<Option<PartitionLog>>,
    /// `fsync.before.ack` of the topic: decides what the high watermark is.
    fsync_before_ack: AtomicBool,
    /// High watermark and failure, for waiters.
    state: watch::Sender<PartitionState>,
    /// Wakes the flusher after an append (a permit is kept if it is busy, so none is lost).
    flush_wanted: Notify,
    /// Set when the partition is deleted or the broker stops: the flusher exits.
    stopped: AtomicBool,
    /// Broker-wide "some high watermark moved" signal that wakes long-polling fetches; bumped
    /// only for rare moves (role change, failure): the common ones wake `hw_waiters`.
    data_signal: Arc<watch::Sender<u64>>,
    /// Broker-wide "some log end moved" signal, as `data_signal` (common moves: `append_waiters`).
    append_signal: Arc<watch::Sender<u64>>,
    /// Followers' long-polling fetches of this partition, woken when its log end moves.
    append_waiters: FetchWaiters,
    /// Consumers' long-polling fetches of this partition, woken when its high watermark moves.
    hw_waiters: FetchWaiters,
    /// Broker-wide "some role changed" signal (group coordinators load and unload on it).
    role_signal: Arc<watch::Sender<u64>>,
    /// Role, durable end and high watermark (see [`PartitionReplica`]). Held only for short
    /// synchronous sections; taken before the log when both are.
    replica: Mutex<PartitionReplica>,
}

/// The role, read under the replica state's lock (see [`Partition::role`]).
pub struct RoleGuard<'a>(MutexGuard<'a, PartitionReplica>);

impl Deref for RoleGuard<'_> {
    type Target = Role;

    fn deref(&self) -> &Role {
        self.0.role()
    }
}

impl Partition {
    /// A partition with a local log. `role` is [`Role::Sole`] on a single-node cluster; in a
    /// cluster it starts as [`Role::Remote`] until the metadata says more, and the high watermark
    /// starts at the log start (it is learnt again from the ISR, never assumed).
    pub fn new(
        topic: String,
        index: i32,
        log: PartitionLog,
        fsync_before_ack: bool,
        signals: Signals,
        role: Role,
    ) -> Arc<Partition> {
        let durable_end = if fsync_before_ack {
            log.flushed_offset().0
        } else {
            log.log_end_offset().0
        };
        let replica = PartitionReplica::new(role, log.log_start_offset().0, durable_end);
        let (state, _) = watch::channel(snapshot(&replica, false));
        Arc::new(Partition {
            topic,
            index,
            log: Mutex::new(Some(log)),
            fsync_before_ack: AtomicBool::new(fsync_before_ack),
            state,
            flush_wanted: Notify::new(),
            stopped: AtomicBool::new(false),
            data_signal: signals.data,
            append_signal: signals.append,
            append_waiters: FetchWaiters::default(),
            hw_waiters: FetchWaiters::default(),
            role_signal: signals.roles,
            replica: Mutex::new(replica),
        })
    }

    /// A partition of which this broker holds no replica (cluster mode): it answers
    /// NOT_LEADER_OR_FOLLOWER and has no log.
    pub fn remote(
        topic: String,
        index: i32,
        signals: Signals,
        leader: Option<strata_core::types::NodeId>,
        leader_epoch: i32,
    ) -> Arc<Partition> {
        let replica = PartitionReplica::remote(leader, leader_epoch);
        let (state, _) = watch::channel(snapshot(&replica, false));
        Arc::new(Partition {
            topic,
            index,
            log: Mutex::new(None),
            fsync_before_ack: AtomicBool::new(true),
            state,
            flush_wanted: Notify::new(),
            stopped: AtomicBool::new(true),
            data_signal: signals.data,
            append_signal: signals.append,
            append_waiters: FetchWaiters::default(),
            hw_waiters: FetchWaiters::default(),
            role_signal: signals.roles,
            replica: Mutex::new(replica),
        })
    }

    /// Whether this broker holds a log of the partition (a replica here).
    pub fn has_log(&self) -> bool {
        self.log().is_some()
    }

    /// Waits until everything appended so far is durable (or the log failed).
    pub async fn wait_until_flushed(&self) {
        let end = match self.log().as_ref() {
            Some(log) => log.log_end_offset().0,
            None => return,
        };
        self.flush_wanted.notify_one();
        let mut rx = self.subscribe();
        loop {
            let s = *rx.borrow_and_update();
            if s.failed || s.durable_end >= end || self.stopped.load(Ordering::Relaxed) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The role, read-only, under the replica state's lock.
    pub fn role(&self) -> RoleGuard<'_> {
        RoleGuard(self.replica())
    }

    /// Locks the replica state. A change made through the guard is published with
    /// [`Partition::publish`] before the guard is dropped; [`Partition::update`] does both.
    pub fn replica(&self) -> MutexGuard<'_, PartitionReplica> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The leader epoch while this broker leads the partition.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.replica().leader_epoch()
    }

    /// Applies `change` to the replica state and publishes the result.
    pub fn update<R>(&self, change: impl FnOnce(&mut PartitionReplica) -> R) -> R {
        let mut replica = self.replica();
        let out = change(&mut replica);
        self.publish(&replica);
        out
    }

    /// Publishes `replica` (the state behind the caller's guard) to waiters, waking consumers
    /// if the high watermark moved.
    pub fn publish(&self, replica: &PartitionReplica) {
        let mut moved = false;
        self.state.send_if_modified(|s| {
            let next = snapshot(replica, s.failed);
            moved = next.high_watermark > s.high_watermark;
            let changed = *s != next;
            *s = next;
            changed
        });
        if moved {
            self.hw_waiters.wake();
        }
    }

    /// Replaces the role (metadata change) and republishes what waiters watch.
    pub fn set_role(&self, role: Role) {
        self.update(|r| r.on_role_change(role));
        self.hw_waiters.wake();
        self.append_waiters.wake();
        self.data_signal.send_modify(|v| *v = v.wrapping_add(1));
        self.append_signal.send_modify(|v| *v = v.wrapping_add(1));
        self.role_signal.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The high watermark consumers may be served, or the error to answer (see
    /// [`PartitionReplica::serving_high_watermark`]).
    pub fn serving_high_watermark(&self) -> Result<i64, ErrorCode> {
        self.replica().serving_high_watermark()
    }

    /// A follower learnt the leader's high watermark: its own is that, capped by what it has.
    pub fn set_follower_high_watermark(&self, leader_hw: i64) {
        self.update(|r| r.on_leader_high_watermark(leader_hw));
    }

    /// This replica is durable to `end`.
    fn on_durable_end(&self, end: i64) {
        self.update(|r| r.on_durable_end(end));
    }

    /// Appends `records` (v2 batches) as the partition's leader: the one append path, for
    /// producers and the group coordinator alike. Only a leader (or the sole replica) appends,
    /// stamping its leader epoch; `expected_epoch` (the group coordinator's) must be that epoch.
    /// With `acks == -1` an ISR below `min.insync.replicas` refuses it (NOT_ENOUGH_REPLICAS).
    /// The role lock is held across the append, so a batch is never stamped with an epoch that
    /// already ended (role, then log: the order every path takes both locks in).
    pub fn append_as_leader(
        &self,
        records: &[u8],
        acks: i16,
        expected_epoch: Option<i32>,
        now_ms: i64,
    ) -> Result<LeaderAppend, ErrorCode> {
        let (info, log_end_offset, leader_epoch) = {
            let replica = self.replica();
            let leader_epoch = replica.admit_append(acks, expected_epoch)?;
            let mut guard = self.log();
            let log = guard.as_mut().ok_or(ErrorCode::NOT_LEADER_OR_FOLLOWER)?;
            let info = log
                .append(records, LeaderEpoch(leader_epoch), now_ms)
                .map_err(|e| e.error_code())?;
            (info, log.log_end_offset().0, leader_epoch)
        };
        self.on_appended(log_end_offset);
        Ok(LeaderAppend { info, leader_epoch })
    }

    /// Whether the ISR still has `min.insync.replicas` members (checked once a batch is
    /// replicated, as Kafka does).
    pub fn enough_replicas(&self) -> bool {
        self.replica().enough_replicas()
    }

    /// Locks the log. `None` inside means the partition was deleted.
    pub fn log(&self) -> MutexGuard<'_, Option<PartitionLog>> {
        // A poisoned lock means a bug panicked mid-operation; the log itself re-validates on
        // every call, so carrying on with the inner value is the least harmful choice.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fsync_before_ack(&self) -> bool {
        self.fsync_before_ack.load(Ordering::Relaxed)
    }

    /// Applies the topic's changed configs (IncrementalAlterConfigs, AlterConfigs): the log's
    /// settings (next append, retention pass, cleaning), `fsync.before.ack`, and — while this
    /// broker leads — `min.insync.replicas` (next acks=-1 append).
    ///
    /// `fsync.before.ack` turned off: an append is durable as written, so what waits for a
    /// flush now is (the durable end moves to the log end); either way the flusher is woken to
    /// take up its other wait (on demand, or periodic).
    pub fn apply_configs(&self, config: LogConfig, fsync_before_ack: bool, min_insync: usize) {
        if let Some(log) = self.log().as_mut() {
            log.set_config(config);
        }
        let was = self
            .fsync_before_ack
            .swap(fsync_before_ack, Ordering::Relaxed);
        if was && !fsync_before_ack {
            let log_end = self.log().as_ref().map(|l| l.log_end_offset().0);
            if let Some(end) = log_end {
                self.on_durable_end(end);
            }
        }
        if was != fsync_before_ack {
            self.flush_wanted.notify_one();
        }
        self.update(|r| {
            let changed = match r.role() {
                Role::Leader(l) if l.min_insync_replicas != min_insync => {
                    let mut l = l.clone();
                    l.min_insync_replicas = min_insync;
                    Some(l)
                }
                _ => None,
            };
            changed.is_some_and(|l| r.on_role_change(Role::Leader(l)))
        });
    }

    pub fn state(&self) -> PartitionState {
        *self.state.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<PartitionState> {
        self.state.subscribe()
    }

    fn publish_failed(&self) {
        self.state.send_modify(|s| s.failed = true);
        self.hw_waiters.wake();
        self.append_waiters.wake();
        self.data_signal.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Wakes `waiter` (a follower's long poll) when this partition's log end next moves.
    pub fn watch_appends(&self, waiter: &Arc<Notify>) {
        self.append_waiters.watch(waiter);
    }

    /// Wakes `waiter` (a consumer's long poll) when this partition's high watermark next moves.
    pub fn watch_high_watermark(&self, waiter: &Arc<Notify>) {
        self.hw_waiters.watch(waiter);
    }

    /// Called after a successful append with the new log end offset.
    pub fn on_appended(&self, log_end_offset: i64) {
        if self.fsync_before_ack() {
            self.flush_wanted.notify_one();
        } else {
            self.on_durable_end(log_end_offset);
        }
        self.append_waiters.wake();
    }

    /// Called after the log was replaced by an empty one that starts (and ends) at
    /// `log_end_offset` (a follower starting afresh at its leader's log start): that empty log
    /// is already durable, and no flush will say so (nothing is left to sync).
    pub fn on_log_replaced(&self, log_end_offset: i64) {
        self.update(|r| r.on_log_replaced(log_end_offset));
    }

    /// Runs one group commit if anything is unflushed. Returns false if the log failed.
    pub async fn flush_once(self: &Arc<Self>) -> bool {
        let (plan, flushed) = {
            let mut guard = self.log();
            match guard.as_mut() {
                Some(log) => (log.begin_flush(), log.flushed_offset().0),
                None => return true,
            }
        };
        let Some(plan) = plan else {
            // Nothing left to sync. If an older flush's publish overtook a newer durable end
            // (a follower's log replaced while that flush completed: `on_log_replaced`),
            // republish, or a fetcher waiting for its durable end would wait for a flush that
            // has nothing to do.
            if self.fsync_before_ack() && self.state().durable_end < flushed {
                self.on_durable_end(flushed);
            }
            return true;
        };
        let result = execute_off_reactor(plan).await;
        let mut guard = self.log();
        let Some(log) = guard.as_mut() else {
            return true;
        };
        match result {
            Ok((plan, Ok(()))) => {
                log.complete_flush(&plan);
                let flushed = log.flushed_offset().0;
                drop(guard);
                if self.fsync_before_ack() {
                    self.on_durable_end(flushed);
                }
                true
            }
            Ok((_, Err(e))) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e,
                    "fsync failed; partition log marked failed, nothing more is acknowledged");
                log.fail();
                drop(guard);
                self.publish_failed();
                false
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e,
                    "flush task did not complete; partition log marked failed");
                log.fail();
                drop(guard);
                self.publish_failed();
                false
            }
        }
    }

    /// The flusher: group commits on demand (fsync topics) or periodically (others).
    pub async fn run_flusher(self: Arc<Self>, interval: Duration) {
        loop {
            if self.stopped.load(Ordering::Relaxed) {
                return;
            }
            if self.fsync_before_ack() {
                self.flush_wanted.notified().await;
            } else {
                tokio::select! {
                    biased;
                    _ = self.flush_wanted.notified() => {}
                    _ = tokio::time::sleep(interval) => {}
                }
            }
            if self.stopped.load(Ordering::Relaxed) {
                return;
            }
            if !self.flush_once().await {
                return;
            }
        }
    }

    /// Stops the flusher (delete or shutdown).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.flush_wanted.notify_one();
    }

    /// Deletes the log's whole segments below `offset` and below this replica's high watermark,
    /// moving the log start offset (`PartitionLog::delete_segments_below`). Capping at the high
    /// watermark keeps this to committed data, which every future leader has: a leader never
    /// drops what a new leader could be missing, and a follower whose high watermark lags its
    /// leader's log start deletes only what it knows is committed. The log end never moves (the
    /// active segment stays). Called by the group coordinator's slot with a completed
    /// snapshot's start, and by the follower fetcher with its leader's log start. Runs on the
    /// caller's task through the storage seam, as the retention pass does.
    pub fn delete_segments_below(&self, offset: i64) {
        let hw = self.state().high_watermark;
        let below = Offset(offset.min(hw));
        let mut guard = self.log();
        let Some(log) = guard.as_mut() else { return };
        if below <= log.log_start_offset() {
            return;
        }
        match log.delete_segments_below(below) {
            Ok(r) if r.deleted_segments > 0 => {
                tracing::info!(topic = %self.topic, partition = self.index, below = below.0,
                    deleted_segments = r.deleted_segments, deleted_bytes = r.deleted_bytes,
                    log_start_offset = r.log_start_offset.0, "deleted segments below a superseded offset")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, below = below.0, error = %e,
                    "cannot delete segments below a superseded offset")
            }
        }
    }

    /// Deletes the log's files. Later operations see an unknown partition.
    pub fn delete(&self) -> Result<(), strata_core::log::LogError> {
        self.stop();
        let log = self.log().take();
        match log {
            Some(log) => log.delete(),
            None => Ok(()),
        }
    }

    /// Waits until `offset` is acknowledged — below the high watermark (acks=-1) or below the
    /// local durable end (acks=1) — the log fails, the leader epoch the append was made in
    /// ends, or `timeout` elapses.
    pub async fn wait_for_ack(
        &self,
        offset: i64,
        all_replicas: bool,
        leader_epoch: i32,
        timeout: Duration,
    ) -> WaitOutcome {
        let mut rx = self.subscribe();
        let wait = async {
            loop {
                let s = *rx.borrow_and_update();
                if s.failed {
                    return WaitOutcome::Failed;
                }
                // The epoch first: once it ended, the high watermark is another leader's
                // (a follower takes its leader's), which may pass `offset` although this
                // replica's batch there was truncated and replaced (sim cluster seed 1092: two
                // sends acknowledged at one offset, one of them lost). The watch coalesces
                // updates, so both can change between two looks.
                if s.leader_epoch != leader_epoch {
                    return WaitOutcome::NotLeader;
                }
                let mark = if all_replicas {
                    s.high_watermark
                } else {
                    s.durable_end
                };
                if mark > offset {
                    return WaitOutcome::Reached;
                }
                if rx.changed().await.is_err() {
                    return WaitOutcome::Failed;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(o) => o,
            Err(_) => WaitOutcome::TimedOut,
        }
    }
}

/// What a leader's append did.
#[derive(Debug, Clone)]
pub struct LeaderAppend {
    pub info: AppendInfo,
    /// The epoch the batches were stamped with.
    pub leader_epoch: i32,
}

/// How waiting for an acknowledgement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    Reached,
    Failed,
    TimedOut,
    /// Leadership moved before the acknowledgement: the write may or may not survive.
    NotLeader,
}

/// What waiters see of `replica`.
fn snapshot(replica: &PartitionReplica, failed: bool) -> PartitionState {
    PartitionState {
        high_watermark: replica.high_watermark(),
        failed,
        durable_end: replica.durable_end(),
        leader_epoch: replica.leader_epoch().unwrap_or(-1),
    }
}

/// Runs a flush plan's fsyncs on tokio's blocking pool, so the reactor keeps serving while the
/// disk works. Under the simulator the disk is simulated memory and madsim forbids blocking
/// tasks, so the plan runs inline there.
async fn execute_off_reactor(plan: FlushPlan) -> Result<(FlushPlan, std::io::Result<()>), String> {
    #[cfg(not(madsim))]
    {
        tokio::task::spawn_blocking(move || {
            let r = plan.execute();
            (plan, r)
        })
        .await
        .map_err(|e| e.to_string())
    }
    #[cfg(madsim)]
    {
        // The simulated disk answers at once. The fsync takes effect first and the modelled
        // latency is waited out after it, in simulated time: appends made meanwhile are not
        // covered by it (as on a real disk, where an fsync need not cover writes issued while
        // it runs), so a plan that leaves out a file written before it is not rescued by an
        // fsync that happens to run late (planted bug 02).
        let latency = plan.latency_hint();
        let r = plan.execute();
        tokio::time::sleep(latency).await;
        Ok((plan, r))
    }
}

#[cfg(test)]
#[path = "tests/partition.rs"]
mod tests;
