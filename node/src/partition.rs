//! One partition as the broker serves it: its [`PartitionLog`], its high watermark, and its
//! group-commit flusher.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use strata_core::log::{FlushPlan, PartitionLog};
use tokio::sync::{Notify, watch};

/// What waiters (producers, long-polling fetches) watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// The high watermark: the first offset consumers may not see yet.
    pub high_watermark: i64,
    /// The log failed (fsync error); nothing more will be acknowledged.
    pub failed: bool,
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
    /// Broker-wide "some high watermark moved" signal that wakes long-polling fetches.
    data_signal: Arc<watch::Sender<u64>>,
}

impl Partition {
    pub fn new(
        topic: String,
        index: i32,
        log: PartitionLog,
        fsync_before_ack: bool,
        data_signal: Arc<watch::Sender<u64>>,
    ) -> Arc<Partition> {
        let high_watermark = if fsync_before_ack {
            log.flushed_offset().0
        } else {
            log.log_end_offset().0
        };
        let (state, _) = watch::channel(PartitionState {
            high_watermark,
            failed: false,
        });
        Arc::new(Partition {
            topic,
            index,
            log: Mutex::new(Some(log)),
            fsync_before_ack: AtomicBool::new(fsync_before_ack),
            state,
            flush_wanted: Notify::new(),
            stopped: AtomicBool::new(false),
            data_signal,
        })
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

    pub fn state(&self) -> PartitionState {
        *self.state.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<PartitionState> {
        self.state.subscribe()
    }

    fn publish_high_watermark(&self, hw: i64) {
        let mut moved = false;
        self.state.send_if_modified(|s| {
            if hw > s.high_watermark {
                s.high_watermark = hw;
                moved = true;
            }
            moved
        });
        if moved {
            self.data_signal.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    fn publish_failed(&self) {
        self.state.send_modify(|s| s.failed = true);
        self.data_signal.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Called after a successful append with the new log end offset.
    pub fn on_appended(&self, log_end_offset: i64) {
        if self.fsync_before_ack() {
            self.flush_wanted.notify_one();
        } else {
            self.publish_high_watermark(log_end_offset);
        }
    }

    /// Runs one group commit if anything is unflushed. Returns false if the log failed.
    pub async fn flush_once(self: &Arc<Self>) -> bool {
        let plan = {
            let mut guard = self.log();
            match guard.as_mut() {
                Some(log) => log.begin_flush(),
                None => return true,
            }
        };
        let Some(plan) = plan else { return true };
        let result = execute_off_reactor(plan).await;
        let mut guard = self.log();
        let Some(log) = guard.as_mut() else {
            return true;
        };
        match result {
            Ok((plan, Ok(()))) => {
                log.complete_flush(&plan);
                let hw = log.flushed_offset().0;
                drop(guard);
                if self.fsync_before_ack() {
                    self.publish_high_watermark(hw);
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

    /// Deletes the log's files. Later operations see an unknown partition.
    pub fn delete(&self) -> Result<(), strata_core::log::LogError> {
        self.stop();
        let log = self.log().take();
        match log {
            Some(log) => log.delete(),
            None => Ok(()),
        }
    }

    /// Waits until the high watermark passes `offset` (acknowledgement of an append), the log
    /// fails, or `timeout` elapses. Returns the outcome.
    pub async fn wait_for_high_watermark(&self, offset: i64, timeout: Duration) -> WaitOutcome {
        let mut rx = self.subscribe();
        let wait = async {
            loop {
                let s = *rx.borrow_and_update();
                if s.failed {
                    return WaitOutcome::Failed;
                }
                if s.high_watermark > offset {
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

/// How waiting for an acknowledgement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    Reached,
    Failed,
    TimedOut,
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
        // The simulated disk answers at once; wait out its modelled latency in simulated time.
        tokio::time::sleep(plan.latency_hint()).await;
        let r = plan.execute();
        Ok((plan, r))
    }
}
