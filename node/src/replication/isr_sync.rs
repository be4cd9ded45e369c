//! ISR changes from the leader's side (KIP-497): expand when a follower catches up, shrink when
//! one lags more than `replica.lag.time.max.ms`, each through an AlterPartition to the
//! controller carrying the partition epoch the change is based on.
//!
//! Invariants:
//! - At most one AlterPartition per partition is in flight; while it is, the proposed ISR is
//!   "pending" and the high watermark is computed over the maximal ISR (committed ∪ pending), so
//!   a pending change never lets the high watermark run ahead of a replica that may still be in
//!   the committed ISR.
//! - The committed ISR changes only when the controller accepted the change (the response, or
//!   the metadata record reaching [`super::reconcile`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_core::ErrorCode;
use strata_core::rpc::{AlterPartitionRequest, Request, Response};
use strata_core::types::{NodeId, Offset};

use super::role::Role;

/// Pause before another AlterPartition after the controller refused one.
const RETRY_AFTER_REJECTION: Duration = Duration::from_millis(200);
use crate::broker::Broker;
use crate::partition::Partition;

/// After a follower's fetch: propose an ISR expansion if it caught up.
pub fn maybe_expand(broker: &Arc<Broker>, p: &Arc<Partition>) {
    let hw = p.state().high_watermark;
    let proposal = {
        let mut role = p.role();
        let Role::Leader(l) = &mut *role else { return };
        if l.alter_in_flight {
            return;
        }
        let Some(new_isr) = l.isr.maybe_expand(Offset(hw), Offset(l.epoch_start_offset)) else {
            return;
        };
        l.isr.set_pending(new_isr.clone(), broker.now());
        l.alter_in_flight = true;
        (new_isr, l.leader_epoch, l.isr.partition_epoch())
    };
    tracing::info!(topic = %p.topic, partition = p.index, isr = ?proposal.0,
        leader_epoch = proposal.1, high_watermark = hw, "expanding the ISR: a follower caught up");
    send(broker, p, proposal);
}

/// Periodically proposes shrinking the ISR of every led partition whose followers lag.
pub async fn run_shrinker(broker: Arc<Broker>) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let lag_ms = broker.config.cluster_int("replica.lag.time.max.ms");
    let period = Duration::from_millis((lag_ms / 2).max(10));
    loop {
        tokio::time::sleep(period).await;
        if cluster.stopping.load(Ordering::Relaxed) {
            return;
        }
        let now = broker.now();
        for t in broker.topics().values() {
            for p in &t.partitions {
                let leo = match p.log().as_ref() {
                    Some(log) => log.log_end_offset().0,
                    None => continue,
                };
                let proposal = {
                    let mut role = p.role();
                    let Role::Leader(l) = &mut *role else {
                        continue;
                    };
                    if l.alter_in_flight {
                        continue;
                    }
                    let Some(new_isr) = l.isr.maybe_shrink(now, Offset(leo), lag_ms) else {
                        continue;
                    };
                    l.isr.set_pending(new_isr.clone(), now);
                    l.alter_in_flight = true;
                    (new_isr, l.leader_epoch, l.isr.partition_epoch())
                };
                tracing::info!(topic = %p.topic, partition = p.index, isr = ?proposal.0,
                    "shrinking the ISR: followers lag");
                send(&broker, p, proposal);
            }
        }
    }
}

/// Sends one AlterPartition and applies the answer.
fn send(broker: &Arc<Broker>, p: &Arc<Partition>, proposal: (Vec<NodeId>, i32, i32)) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let (new_isr, leader_epoch, partition_epoch) = proposal;
    let request = Request::AlterPartition(AlterPartitionRequest {
        broker_id: cluster.node_id,
        broker_epoch: cluster.broker_epoch.load(Ordering::SeqCst),
        topic: p.topic.clone(),
        partition: p.index,
        leader_epoch,
        partition_epoch,
        new_isr,
    });
    let p = p.clone();
    tokio::spawn(async move {
        let answer = cluster.client.send(request).await;
        let committed = match answer {
            Ok(Response::AlterPartition {
                error_code,
                partition,
            }) => {
                if error_code != ErrorCode::NONE.0 {
                    tracing::info!(topic = %p.topic, partition = p.index, error = error_code,
                        "AlterPartition refused");
                }
                partition.filter(|_| error_code == ErrorCode::NONE.0)
            }
            Ok(other) => {
                tracing::debug!(?other, "AlterPartition not served");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "AlterPartition failed");
                None
            }
        };
        let rejected = committed.is_none();
        {
            let mut role = p.role();
            if let Role::Leader(l) = &mut *role
                && l.leader_epoch == leader_epoch
            {
                // A rejected change is forgotten at once (the pending ISR must not hold the
                // high watermark), but the next attempt waits a little: a refusal usually
                // means the metadata is about to change, and retrying on every follower fetch
                // would flood the controller.
                l.alter_in_flight = rejected;
                match committed {
                    Some(c) if c.partition_epoch > l.isr.partition_epoch() => {
                        l.isr.on_isr_committed(c.isr, c.partition_epoch);
                    }
                    Some(_) => {}
                    None => l.isr.on_isr_rejected(),
                }
            }
        }
        p.recompute_high_watermark();
        if rejected {
            tokio::time::sleep(RETRY_AFTER_REJECTION).await;
            if let Role::Leader(l) = &mut *p.role()
                && l.leader_epoch == leader_epoch
            {
                l.alter_in_flight = false;
            }
        }
    });
}
