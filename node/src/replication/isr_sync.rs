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

/// What an AlterPartition attempt told the leader.
enum Outcome {
    /// The controller's committed state of the partition (the change, or, with
    /// `INVALID_UPDATE_VERSION`, the newer state it was refused against).
    Committed(strata_core::metadata::PartitionRecord),
    /// Refused against the very partition epoch the proposal was based on: nothing was
    /// committed, and no earlier attempt of it can commit any more (the answering controller
    /// applied everything earlier leaders committed before it served anything).
    NotApplied,
    /// No answer (timeout, no active controller), or the leadership or the broker's
    /// registration moved on (`FENCED_LEADER_EPOCH`, `STALE_BROKER_EPOCH`, ...) so that the
    /// metadata is about to replace this role: the pending ISR keeps holding the high watermark
    /// and the same proposal goes again until the outcome is known.
    Unknown,
}

/// Sends an AlterPartition and applies the answer, resending the same proposal while its
/// outcome is unknown.
///
/// A timed-out AlterPartition is *indefinite*, never a rejection (cluster seed 1787): the
/// controller may have logged it and a later controller may still commit it. Forgetting the
/// pending ISR then lets the high watermark run ahead of a follower the controller is about to
/// put back into the ISR — which may then be elected with less than was acknowledged. So, as
/// Kafka's `Partition` does, the pending state stays until the change is known committed (an
/// answer, or the partition's record in the metadata log, see [`super::reconcile`]) or known
/// not applied.
fn send(broker: &Arc<Broker>, p: &Arc<Partition>, proposal: (Vec<NodeId>, i32, i32)) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let (new_isr, leader_epoch, partition_epoch) = proposal;
    let p = p.clone();
    tokio::spawn(async move {
        loop {
            let request = Request::AlterPartition(AlterPartitionRequest {
                broker_id: cluster.node_id,
                broker_epoch: cluster.broker_epoch.load(Ordering::SeqCst),
                topic: p.topic.clone(),
                partition: p.index,
                leader_epoch,
                partition_epoch,
                new_isr: new_isr.clone(),
            });
            let outcome = match cluster.client.send(request).await {
                Ok(Response::AlterPartition {
                    error_code,
                    partition,
                }) => {
                    if error_code != ErrorCode::NONE.0 {
                        tracing::info!(topic = %p.topic, partition = p.index, error = error_code,
                            "AlterPartition refused");
                    }
                    match (ErrorCode(error_code), partition) {
                        // The controller checks the leader epoch before the partition epoch, so
                        // an INVALID_UPDATE_VERSION record is this leadership's committed state.
                        (ErrorCode::NONE | ErrorCode::INVALID_UPDATE_VERSION, Some(c))
                            if c.leader_epoch == leader_epoch
                                && c.leader == Some(cluster.node_id) =>
                        {
                            Outcome::Committed(c)
                        }
                        (ErrorCode::INELIGIBLE_REPLICA, _) => Outcome::NotApplied,
                        _ => Outcome::Unknown,
                    }
                }
                Ok(other) => {
                    tracing::debug!(?other, "AlterPartition not served");
                    Outcome::Unknown
                }
                Err(e) => {
                    tracing::debug!(error = %e, "AlterPartition failed");
                    Outcome::Unknown
                }
            };
            let retry = {
                let mut role = p.role();
                let Role::Leader(l) = &mut *role else { break };
                if l.leader_epoch != leader_epoch {
                    break; // a new leadership has its own state
                }
                if l.isr.partition_epoch() != partition_epoch {
                    // The metadata log already told the outcome (reconcile committed a newer
                    // partition state, which ended the pending change).
                    l.alter_in_flight = false;
                    false
                } else {
                    match outcome {
                        Outcome::Committed(c) => {
                            if c.partition_epoch > l.isr.partition_epoch() {
                                l.isr.on_isr_committed(c.isr, c.partition_epoch);
                            } else {
                                // The same state (an ISR equal to the committed one).
                                l.isr.on_isr_rejected();
                            }
                            l.alter_in_flight = false;
                            false
                        }
                        Outcome::NotApplied => {
                            l.isr.on_isr_rejected();
                            true // alter_in_flight stays set through the pause below
                        }
                        Outcome::Unknown => true,
                    }
                }
            };
            p.recompute_high_watermark();
            if !retry {
                break;
            }
            // A pause before the next attempt: a refusal or silence usually means the metadata
            // is about to change, and retrying at once would flood the controller.
            tokio::time::sleep(RETRY_AFTER_REJECTION).await;
            if cluster.stopping.load(Ordering::Relaxed) {
                break;
            }
            let mut role = p.role();
            let Role::Leader(l) = &mut *role else { break };
            if l.leader_epoch != leader_epoch {
                break;
            }
            if l.isr.pending().is_none() {
                // Not applied (or resolved by the metadata meanwhile): the next proposal comes
                // from `maybe_expand` / the shrinker, from the committed ISR.
                l.alter_in_flight = false;
                break;
            }
            // Still pending with an unknown outcome: send the same proposal again.
        }
    });
}
