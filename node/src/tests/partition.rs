//! Tests of a follower's log start: it follows its leader's in whole segments, never past its
//! own high watermark (Kafka's `maybeIncrementLogStartOffset`), and starts afresh at the
//! leader's log start when its whole log lies below it (`truncateFullyAndStartAt`). No cluster
//! harness runs in-process; these drive the partition the way the fetcher does.

use std::path::PathBuf;
use std::sync::Arc;

use strata_core::batch::build_batch;
use strata_core::log::{LogConfig, PartitionLog};
use strata_core::storage::MemStorage;
use strata_core::types::{LeaderEpoch, NodeId, Offset};

use super::{Partition, Signals};
use crate::replication::fetcher::start_at_leader_log_start;
use crate::sync::watch;
use strata_core::replica::Role;

fn signals() -> Signals {
    Signals {
        data: Arc::new(watch::channel(0).0),
        append: Arc::new(watch::channel(0).0),
        roles: Arc::new(watch::channel(0).0),
    }
}

fn follower_of_epoch(epoch: i32) -> Role {
    Role::Follower {
        leader: NodeId(2),
        leader_epoch: epoch,
        needs_truncation: false,
    }
}

/// A follower of epoch 1 whose log holds 60 batches in segments of 1 KiB.
fn follower(fsync_before_ack: bool) -> Arc<Partition> {
    let config = LogConfig {
        segment_bytes: 1_024,
        ..LogConfig::default()
    };
    let storage = Arc::new(MemStorage::new());
    let (mut log, _) =
        PartitionLog::open(storage, PathBuf::from("/data/t-0"), config, 0).expect("open");
    for i in 0..60 {
        let value = format!("record {i} {}", "x".repeat(60));
        log.append(
            &build_batch(&[(value.as_bytes(), None)], 1_000),
            LeaderEpoch(1),
            0,
        )
        .expect("append");
    }
    if let Some(plan) = log.begin_flush() {
        plan.execute().expect("flush");
        log.complete_flush(&plan);
    }
    assert!(log.segment_count() > 4);
    Partition::new(
        "t".into(),
        0,
        log,
        fsync_before_ack,
        signals(),
        follower_of_epoch(1),
    )
}

fn start_and_end(p: &Partition) -> (Offset, Offset) {
    let guard = p.log();
    let log = guard.as_ref().expect("a log");
    (log.log_start_offset(), log.log_end_offset())
}

/// The leader's log start is far ahead: the follower deletes only whole segments below its own
/// high watermark; once that catches up, whole segments below the leader's log start. The
/// active segment and the log end never move, and what is at or above the high watermark
/// stays readable.
#[test]
fn a_follower_deletes_whole_segments_below_the_leaders_log_start_up_to_its_high_watermark() {
    let p = follower(false);
    let (start, end) = start_and_end(&p);
    assert_eq!(start, Offset(0));
    assert_eq!(
        p.state().high_watermark,
        0,
        "a follower learns its high watermark"
    );
    let leader_start = end.0 - 5;

    // Nothing is committed yet: nothing goes.
    p.delete_segments_below(leader_start);
    assert_eq!(start_and_end(&p), (Offset(0), end));

    // The high watermark at 20: at most the segments ending at or below 20 go.
    p.set_follower_high_watermark(20);
    p.delete_segments_below(leader_start);
    let (start, _) = start_and_end(&p);
    assert!(start > Offset(0), "whole segments below 20 went");
    assert!(
        start <= Offset(20),
        "nothing at or above the high watermark: {start}"
    );
    let guard = p.log();
    let log = guard.as_ref().expect("log");
    assert!(log.read(Offset(20), 100, end).is_ok());
    drop(guard);

    // Caught up: the segments below the leader's log start go, never the active one.
    p.set_follower_high_watermark(end.0);
    p.delete_segments_below(leader_start);
    let (start, e) = start_and_end(&p);
    assert_eq!(e, end, "the log end stays");
    assert!(start <= Offset(leader_start));
    assert!(start > Offset(20));
    let guard = p.log();
    let log = guard.as_ref().expect("log");
    // The leader's start is among the last five records, each segment holds about ten.
    assert!(
        log.segment_count() <= 2,
        "only the segments from the one holding the leader's start"
    );
    drop(guard);
    // A log start the follower already passed changes nothing.
    p.delete_segments_below(10);
    assert_eq!(start_and_end(&p), (start, end));
}

/// The follower's log ends below the leader's log start (it was away while the leader deleted
/// segments): it replaces its log by an empty one there, whose durable end is published at once
/// (a fetcher waits for it before fetching); not if its epoch moved on, or if it already holds
/// the leader's start.
#[test]
fn a_follower_whose_log_ends_below_the_leaders_log_start_starts_afresh_there() {
    let p = follower(true);
    let (_, end) = start_and_end(&p);
    let leader_start = end.0 + 1_000;
    start_at_leader_log_start(&p, 2, leader_start);
    assert_eq!(
        start_and_end(&p),
        (Offset(0), end),
        "another epoch: untouched"
    );
    start_at_leader_log_start(&p, 1, end.0);
    assert_eq!(
        start_and_end(&p),
        (Offset(0), end),
        "we hold the leader's start"
    );
    start_at_leader_log_start(&p, 1, leader_start);
    assert_eq!(
        start_and_end(&p),
        (Offset(leader_start), Offset(leader_start))
    );
    assert_eq!(p.state().durable_end, leader_start);
}

/// Whether `waiter` was notified (consuming the permit).
fn woken(waiter: &tokio::sync::Notify) -> bool {
    let mut notified = std::pin::pin!(waiter.notified());
    notified.as_mut().enable()
}

/// Long polls wait on the partitions they read (`fetch_waiters.rs`): an append wakes the
/// followers' fetches of that partition only, a high-watermark move its consumers' only, and a
/// role change both.
#[test]
fn an_append_wakes_only_the_fetches_that_read_its_partition() {
    let (a, b) = (follower(false), follower(false));
    let (follower_of_a, follower_of_b) =
        (Arc::new(Default::default()), Arc::new(Default::default()));
    let consumer_of_a = Arc::new(Default::default());
    a.watch_appends(&follower_of_a);
    b.watch_appends(&follower_of_b);
    a.watch_high_watermark(&consumer_of_a);

    let (_, end) = start_and_end(&a);
    a.on_appended(end.0);
    assert!(
        woken(&follower_of_a),
        "an append wakes the follower fetch of its partition"
    );
    assert!(
        !woken(&follower_of_b),
        "an append elsewhere wakes nobody here"
    );
    assert!(
        !woken(&consumer_of_a),
        "an append alone does not move a follower's high watermark"
    );

    a.set_follower_high_watermark(end.0);
    assert!(
        woken(&consumer_of_a),
        "a high-watermark move wakes the consumer fetch"
    );
    assert!(!woken(&follower_of_a));

    a.watch_appends(&follower_of_a);
    a.set_role(follower_of_epoch(2));
    assert!(
        woken(&follower_of_a) && woken(&consumer_of_a),
        "a role change wakes both"
    );
    assert!(!woken(&follower_of_b));
}

/// A partition with `batches` unflushed batches in its log, in `role`.
fn unflushed(fsync_before_ack: bool, batches: usize, role: Role) -> Arc<Partition> {
    let storage = Arc::new(MemStorage::new());
    let (mut log, _) =
        PartitionLog::open(storage, PathBuf::from("/data/t-0"), LogConfig::default(), 0)
            .expect("open");
    for i in 0..batches {
        let value = format!("record {i}");
        log.append(
            &build_batch(&[(value.as_bytes(), None)], 1_000),
            LeaderEpoch(1),
            0,
        )
        .expect("append");
    }
    Partition::new("t".into(), 0, log, fsync_before_ack, signals(), role)
}

/// Issue #16 (IncrementalAlterConfigs): a changed config reaches the live partition — the log's
/// settings, and `fsync.before.ack` turned off makes what waited for a flush durable at once.
#[test]
fn changed_configs_reach_the_log_and_the_durable_end() {
    let p = unflushed(true, 3, Role::Sole);
    assert_eq!(p.state().durable_end, 0, "nothing flushed yet");
    let compacting = LogConfig {
        cleanup_policy: strata_core::log::CleanupPolicy::COMPACT,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    };
    p.apply_configs(compacting.clone(), true, 1);
    assert_eq!(p.log().as_ref().expect("log").config(), &compacting);
    assert_eq!(p.state().durable_end, 0, "still waiting for fsync");
    p.apply_configs(compacting, false, 1);
    assert!(!p.fsync_before_ack());
    assert_eq!(
        p.state().durable_end,
        3,
        "without fsync.before.ack the log end is durable"
    );
}

/// A leader takes a changed `min.insync.replicas` without an ISR change (which is when the
/// metadata would otherwise hand it one): acks=-1 needs that many in-sync replicas.
#[test]
fn a_leader_takes_a_changed_min_insync_replicas() {
    let me = NodeId(1);
    let replicas = vec![NodeId(1), NodeId(2), NodeId(3)];
    let isr = strata_core::replica::IsrState::new(
        me,
        replicas.clone(),
        replicas,
        LeaderEpoch(1),
        0,
        Offset(0),
        strata_core::types::Instant::default(),
    );
    let leader = Role::Leader(Box::new(strata_core::replica::LeaderState {
        leader_epoch: 1,
        epoch_start_offset: 0,
        isr,
        min_insync_replicas: 2,
        alter_in_flight: false,
    }));
    let p = unflushed(true, 0, leader);
    assert_eq!(p.replica().admit_append(-1, None), Ok(1));
    p.apply_configs(LogConfig::default(), true, 4);
    assert_eq!(
        p.replica().admit_append(-1, None),
        Err(strata_core::ErrorCode::NOT_ENOUGH_REPLICAS)
    );
    assert_eq!(
        p.replica().admit_append(1, None),
        Ok(1),
        "acks=1 does not care"
    );
    p.apply_configs(LogConfig::default(), true, 3);
    assert_eq!(p.replica().admit_append(-1, None), Ok(1));
}
