//! The log cleaner's driver: runs `strata_core`'s cleaner (`cleanup.policy=compact`) over this
//! broker's logs, one log at a time, without blocking the reactor.
//!
//! Every `log.cleaner.backoff.ms` it visits every partition this broker holds (leader or
//! follower: each replica cleans its own copy, as in Kafka). For each, under the log's lock,
//! `PartitionLog::begin_clean` decides whether a cleaning is due and snapshots what it needs;
//! the cleaning's steps then run *outside* the lock (produce, fetch and replication carry on;
//! sealed segments are immutable), each on tokio's blocking pool (inline under the simulator,
//! whose disk answers at once), with a pause after each step that keeps the cleaner's read plus
//! written bytes within `log.cleaner.io.max.bytes.per.second`; last, on the blocking pool and
//! under the lock, `PartitionLog::finish_clean` swaps the cleaned segments in, or abandons the
//! cleaning if retention or a truncation overtook it. The high watermark passed in bounds the
//! cleaning: nothing at or above it changes. `log.cleaner.enable=false` runs none of this.
//!
//! A step that fails (an IO error) abandons that cleaning (`abort_clean` removes its files) and
//! logs a warning; the log is untouched, and the next round tries again. A failed swap fails
//! the log (recovery at the next start finishes or rolls back the swap).

use std::sync::Arc;
use std::time::Duration;

use strata_core::log::{CleanReport, CleanStep, CleanTask};
use strata_core::types::Offset;

use crate::broker::Broker;
use crate::clock;
use crate::config::CleanerConfig;
use crate::partition::Partition;
use crate::sync::watch;

/// The cleaner's loop: one round every `log.cleaner.backoff.ms` until `stop`.
pub async fn cleaner_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let settings = broker.config.cleaner.clone();
    if !settings.enable {
        return;
    }
    let period = Duration::from_millis(settings.backoff_ms.max(1));
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        clean_round(&broker, &settings, &mut stop).await;
    }
}

/// One round: a cleaning of every log this broker holds where one is due, one log at a time,
/// until `stop`.
pub(crate) async fn clean_round(
    broker: &Broker,
    settings: &CleanerConfig,
    stop: &mut watch::Receiver<bool>,
) {
    for topic in broker.topics().into_values() {
        for p in &topic.partitions {
            if *stop.borrow() {
                return;
            }
            clean_partition(p, settings, stop).await;
        }
    }
}

/// Runs one cleaning of `p`'s log if one is due.
async fn clean_partition(
    p: &Arc<Partition>,
    settings: &CleanerConfig,
    stop: &mut watch::Receiver<bool>,
) {
    let high_watermark = Offset(p.replica().high_watermark());
    let budget = usize::try_from(settings.dedupe_buffer_size).unwrap_or(usize::MAX);
    let begun = {
        let mut guard = p.log();
        let Some(log) = guard.as_mut() else { return };
        log.begin_clean(clock::now_ms(), high_watermark, budget)
    };
    let mut task = match begun {
        Ok(Some(task)) => task,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e,
                "cannot start cleaning the log");
            return;
        }
    };
    loop {
        let (back, step) = step_off_reactor(task).await;
        task = back;
        match step {
            Ok(s) if s.done => break,
            Ok(s) => throttle(&s, settings).await,
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e,
                    "cleaning failed; abandoned");
                abort(p, task);
                return;
            }
        }
        if *stop.borrow() {
            abort(p, task);
            return;
        }
    }
    match finish_off_reactor(p.clone(), task).await {
        Some(Ok(r)) if r.abandoned => {
            tracing::info!(topic = %p.topic, partition = p.index,
                "cleaning overtaken by retention or truncation; abandoned")
        }
        Some(Ok(r)) => log_report(p, &r),
        Some(Err(e)) => {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e,
                "swapping cleaned segments in failed; the log is failed until restart")
        }
        None => {}
    }
}

fn log_report(p: &Partition, r: &CleanReport) {
    tracing::info!(
        topic = %p.topic,
        partition = p.index,
        segments_cleaned = r.segments_cleaned,
        segments_written = r.segments_written,
        bytes_before = r.bytes_before,
        bytes_after = r.bytes_after,
        dirty_from = r.dirty_range.0.0,
        dirty_to = r.dirty_range.1.0,
        keys = r.map_keys,
        "log cleaned"
    );
}

fn abort(p: &Partition, task: CleanTask) {
    let mut guard = p.log();
    if let Some(log) = guard.as_mut()
        && let Err(e) = log.abort_clean(task)
    {
        tracing::warn!(topic = %p.topic, partition = p.index, error = %e,
            "removing an abandoned cleaning's files failed");
    }
}

/// Sleeps long enough after a step that the cleaner's bytes stay within
/// `log.cleaner.io.max.bytes.per.second` (none when unthrottled).
async fn throttle(step: &CleanStep, settings: &CleanerConfig) {
    let Some(rate) = settings.io_max_bytes_per_second else {
        tokio::task::yield_now().await;
        return;
    };
    let bytes = (step.read_bytes + step.written_bytes) as f64;
    let secs = (bytes / rate).min(60.0);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

/// One step on tokio's blocking pool; inline under the simulator (its disk answers at once and
/// madsim forbids blocking tasks).
async fn step_off_reactor(mut task: CleanTask) -> (CleanTask, std::io::Result<CleanStep>) {
    #[cfg(not(madsim))]
    {
        match tokio::task::spawn_blocking(move || {
            let r = task.step();
            (task, r)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => panic!("a cleaner step panicked: {e}"),
        }
    }
    #[cfg(madsim)]
    {
        let r = task.step();
        tokio::task::yield_now().await;
        (task, r)
    }
}

/// `finish_clean` under the log's lock, on the blocking pool (it syncs files and the
/// directory); `None` if the log is gone.
async fn finish_off_reactor(
    p: Arc<Partition>,
    task: CleanTask,
) -> Option<Result<CleanReport, strata_core::log::LogError>> {
    let finish = move || {
        let mut guard = p.log();
        guard.as_mut().map(|log| log.finish_clean(task))
    };
    #[cfg(not(madsim))]
    {
        match tokio::task::spawn_blocking(finish).await {
            Ok(r) => r,
            Err(e) => panic!("swapping cleaned segments panicked: {e}"),
        }
    }
    #[cfg(madsim)]
    {
        finish()
    }
}
