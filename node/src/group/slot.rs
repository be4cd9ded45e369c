//! One `__consumer_offsets` partition's coordinator for one leader epoch, and the task that
//! drives it: load by replay, then high watermark advances and timers.
//!
//! Lifecycle: created when this broker leads the partition in `leader_epoch` (see
//! [`super::GroupCoordinators`]), the slot loads: its task replays the log from the log start to
//! the log end offset seen when loading began, in chunks (the coordinator answers
//! COORDINATOR_LOAD_IN_PROGRESS meanwhile), waits until the high watermark reaches that end (a
//! new leader may hold a lower high watermark than its predecessor published: offsets read from
//! the committed image must never go back), and then calls `on_loaded`. It ends — every parked
//! reply failed with NOT_COORDINATOR — when the partition's leader epoch changes, its log fails,
//! or the offsets topic is replaced; a load whose epoch ended is dropped with it.
//!
//! Invariants:
//! - Every call into the core happens under `state`'s lock, and each output is executed before
//!   the lock is released: replies sent, records appended as one batch through the leader append
//!   path ([`Partition::append_as_leader`], acks=-1 admission so an ISR below
//!   `min.insync.replicas` refuses it) and reported back with `replay` or `on_append_failed`.
//! - A batch is appended only while the partition's leader epoch is the slot's: the append
//!   checks the epoch under the role lock, so nothing is written after the epoch ended.
//! - Every request waits on a oneshot whose sender is in `waiting` until its reply comes out;
//!   ending the slot drops them all, which their handlers answer with NOT_COORDINATOR. Nothing
//!   waits forever on an ended slot.
//! - `state` is a std mutex: never held across an `.await`.
//! - A completed snapshot's `superseded_below` deletes the partition's whole segments below it
//!   (and below the high watermark, which the core already guarantees): see
//!   [`super::offsets_topic`] for the size bound this gives.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use strata_core::ErrorCode;
use strata_core::group::{
    GroupConfig, GroupCoordinator, GroupRecord, Now, Output, Request, RequestId, Response,
};
use strata_core::types::{LeaderEpoch, Offset};
use tokio::sync::{Notify, oneshot};

use super::batches;
use super::host::GroupHost;
use crate::clock;
use crate::partition::{Partition, PartitionState};

/// Bytes read from the log per loading step (the log lock is released between steps).
const LOAD_CHUNK: usize = 1 << 20;
/// Pause before a failed load (an unreadable batch) is tried again.
const LOAD_RETRY: Duration = Duration::from_secs(5);

/// The coordinator of one offsets partition for one leader epoch.
#[derive(Debug)]
pub struct Slot {
    /// The offsets topic partition it coordinates.
    pub partition: Arc<Partition>,
    /// The leader epoch it is bound to.
    pub leader_epoch: i32,
    /// Seeds member ids (derived from node, partition and epoch).
    seed: u64,
    config: GroupConfig,
    state: Mutex<SlotState>,
    /// Wakes the driver: a call may have moved the next deadline, or the slot ended.
    wake: Notify,
    /// Set once the slot ended; it answers nothing more.
    ended: AtomicBool,
}

#[derive(Debug)]
struct SlotState {
    coordinator: GroupCoordinator,
    /// Requests whose reply has not come out yet.
    waiting: BTreeMap<RequestId, oneshot::Sender<Response>>,
}

/// How a load ended.
enum Load {
    /// Replayed up to this log end offset.
    Done(Offset),
    /// The leader epoch ended (or the log is gone): drop the slot.
    Ended,
    /// A batch could not be read: try again later.
    Failed,
}

impl Slot {
    pub fn new(
        partition: Arc<Partition>,
        leader_epoch: i32,
        node_id: i32,
        config: GroupConfig,
    ) -> Slot {
        let seed = (u64::from(node_id as u32) << 32)
            ^ (u64::from(partition.index as u32) << 16)
            ^ u64::from(leader_epoch as u32).rotate_left(48);
        let coordinator = GroupCoordinator::new(config.clone(), LeaderEpoch(leader_epoch), seed);
        Slot {
            partition,
            leader_epoch,
            seed,
            config,
            state: Mutex::new(SlotState {
                coordinator,
                waiting: BTreeMap::new(),
            }),
            wake: Notify::new(),
            ended: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Hands `request` to the coordinator. The receiver gets the reply; a dropped sender (the
    /// slot ended) means NOT_COORDINATOR.
    pub fn call(
        &self,
        now: Now,
        id: RequestId,
        request: Request,
    ) -> Result<oneshot::Receiver<Response>, ErrorCode> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            if self.is_ended() {
                return Err(ErrorCode::NOT_COORDINATOR);
            }
            st.waiting.insert(id, tx);
            let out = st.coordinator.handle(now, id, request);
            self.execute(&mut st, now, out);
        }
        self.wake.notify_one();
        Ok(rx)
    }

    /// Executes an output: replies out, superseded segments deleted, records appended and
    /// reported (see the module docs).
    fn execute(&self, st: &mut SlotState, now: Now, mut out: Output) {
        loop {
            for (id, response) in out.replies.drain(..) {
                if let Some(tx) = st.waiting.remove(&id) {
                    let _ = tx.send(response);
                }
            }
            if let Some(below) = out.superseded_below.take() {
                self.partition.delete_segments_below(below.0);
            }
            if out.records.is_empty() {
                return;
            }
            match self.append(&out.records, now.wall_ms) {
                Ok(last_offset) => {
                    st.coordinator.replay(last_offset, &out.records);
                    return;
                }
                Err(code) => {
                    tracing::debug!(partition = self.partition.index, error = ?code, "group coordinator append failed");
                    out = st.coordinator.on_append_failed(now, code);
                }
            }
        }
    }

    fn append(&self, records: &[GroupRecord], now_ms: i64) -> Result<Offset, ErrorCode> {
        let batch = batches::encode(records, now_ms).map_err(|e| {
            tracing::error!(error = %e, "cannot encode group records");
            ErrorCode::UNKNOWN_SERVER_ERROR
        })?;
        let appended =
            self.partition
                .append_as_leader(&batch, -1, Some(self.leader_epoch), now_ms)?;
        Ok(appended.info.last_offset)
    }

    /// Ends the slot: parked replies fail with NOT_COORDINATOR, waiters are dropped.
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        {
            let mut st = self.lock();
            let replies = st.coordinator.unload();
            for (id, response) in replies {
                if let Some(tx) = st.waiting.remove(&id) {
                    let _ = tx.send(response);
                }
            }
            st.waiting.clear();
        }
        self.wake.notify_one();
    }

    /// Whether the partition's state says this slot's epoch is over.
    fn epoch_over(&self, s: &PartitionState) -> bool {
        s.failed || s.leader_epoch != self.leader_epoch || self.is_ended()
    }

    fn now<H: GroupHost>(host: &H) -> Now {
        Now {
            instant: host.now(),
            wall_ms: clock::now_ms(),
        }
    }

    /// The driver: load, wait for the high watermark, then serve timers and high watermark
    /// advances until the epoch ends.
    pub async fn drive<H: GroupHost>(self: Arc<Self>, broker: Arc<H>) {
        let mut rx = self.partition.subscribe();
        let loaded_end = loop {
            match self.load().await {
                Load::Done(end) => break end,
                Load::Ended => return self.end(),
                Load::Failed => {
                    tokio::select! {
                        _ = tokio::time::sleep(LOAD_RETRY) => {}
                        _ = self.wake.notified() => {}
                    }
                    if self.is_ended() || self.epoch_over(&self.partition.state()) {
                        return self.end();
                    }
                    self.lock().coordinator = GroupCoordinator::new(
                        self.config.clone(),
                        LeaderEpoch(self.leader_epoch),
                        self.seed,
                    );
                }
            }
        };
        loop {
            let s = *rx.borrow_and_update();
            if self.epoch_over(&s) {
                return self.end();
            }
            if s.high_watermark >= loaded_end.0 {
                let now = Self::now(broker.as_ref());
                let mut st = self.lock();
                let out = st.coordinator.on_loaded(now, Offset(s.high_watermark));
                self.execute(&mut st, now, out);
                tracing::info!(
                    partition = self.partition.index,
                    leader_epoch = self.leader_epoch,
                    log_end_offset = loaded_end.0,
                    "group coordinator loaded"
                );
                break;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return self.end() },
                _ = self.wake.notified() => {}
            }
        }
        loop {
            let s = *rx.borrow_and_update();
            if self.epoch_over(&s) {
                return self.end();
            }
            let deadline = {
                let now = Self::now(broker.as_ref());
                let mut st = self.lock();
                let out = st
                    .coordinator
                    .on_high_watermark(now, Offset(s.high_watermark));
                self.execute(&mut st, now, out);
                st.coordinator.next_deadline()
            };
            if deadline.is_some_and(|d| d <= broker.now()) {
                // Due already (a snapshot chunk is ready, a timer passed): tick now. Through a
                // zero sleep, the high watermark moves of a busy partition would win the select
                // every time and put the tick off indefinitely. A tick clears every deadline at or
                // before its `now` (the core's test harness advances time the same way, and its
                // proptest would never end otherwise), so this does not spin; yielding keeps it
                // fair.
                self.tick(broker.as_ref());
                tokio::task::yield_now().await;
                continue;
            }
            let sleep = deadline.map(|d| Duration::from_nanos(d.0.saturating_sub(broker.now().0)));
            tokio::select! {
                r = rx.changed() => if r.is_err() { return self.end() },
                _ = self.wake.notified() => {}
                _ = sleep_for(sleep) => self.tick(broker.as_ref()),
            }
        }
    }

    /// Runs the core's timers (see the driving contract), unless the slot ended.
    fn tick<H: GroupHost>(&self, broker: &H) {
        let now = Self::now(broker);
        let mut st = self.lock();
        if !self.is_ended() {
            let out = st.coordinator.tick(now);
            self.execute(&mut st, now, out);
        }
    }

    /// Replays the partition's log from its start to its current end.
    async fn load(&self) -> Load {
        let (start, end) = match self.partition.log().as_ref() {
            Some(log) => (log.log_start_offset(), log.log_end_offset()),
            None => return Load::Ended,
        };
        let mut offset = start;
        while offset < end {
            if self.epoch_over(&self.partition.state()) {
                return Load::Ended;
            }
            let read = match self.partition.log().as_ref() {
                Some(log) => log.read(offset, LOAD_CHUNK, end),
                None => return Load::Ended,
            };
            let records = match read {
                Ok(r) => r.records,
                Err(e) => {
                    tracing::error!(partition = self.partition.index, offset = offset.0, error = %e,
                        "cannot read the offsets partition; its groups stay loading");
                    return Load::Failed;
                }
            };
            let (read_batches, error) = batches::decode(&records);
            let before = offset;
            {
                let mut st = self.lock();
                if self.is_ended() {
                    return Load::Ended;
                }
                for b in read_batches {
                    if b.next_offset <= offset {
                        continue;
                    }
                    st.coordinator.replay(b.last_offset, &b.records);
                    offset = b.next_offset;
                }
            }
            if let Some(e) = error {
                tracing::error!(partition = self.partition.index, offset = offset.0, error = %e,
                    "cannot decode the offsets partition; its groups stay loading");
                return Load::Failed;
            }
            if offset == before {
                tracing::error!(
                    partition = self.partition.index,
                    offset = offset.0,
                    "no progress reading the offsets partition; its groups stay loading"
                );
                return Load::Failed;
            }
            tokio::task::yield_now().await;
        }
        Load::Done(end)
    }
}

/// Sleeps for `d`, or forever when there is nothing scheduled.
async fn sleep_for(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
