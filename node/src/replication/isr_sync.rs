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
use strata_core::replica::{AlterPartitionOutcome, AlterStep, IsrProposal};
use strata_core::rpc::{AlterPartitionRequest, Request, Response};
use strata_core::types::NodeId;

use crate::broker::Broker;
use crate::partition::Partition;

/// Pause before another AlterPartition after the controller refused one.
const RETRY_AFTER_REJECTION: Duration = Duration::from_millis(200);

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
                let Some(proposal) = p.update(|r| r.maybe_shrink(now, leo, lag_ms)) else {
                    continue;
                };
                tracing::info!(topic = %p.topic, partition = p.index, isr = ?proposal.isr,
                    "shrinking the ISR: followers lag");
                send(&broker, p, proposal);
            }
        }
    }
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
pub fn send(broker: &Arc<Broker>, p: &Arc<Partition>, proposal: IsrProposal) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let p = p.clone();
    tokio::spawn(async move {
        loop {
            let request = Request::AlterPartition(AlterPartitionRequest {
                broker_id: cluster.node_id,
                broker_epoch: cluster.broker_epoch.load(Ordering::SeqCst),
                topic: p.topic.clone(),
                partition: p.index,
                leader_epoch: proposal.leader_epoch,
                partition_epoch: proposal.partition_epoch,
                new_isr: proposal.isr.clone(),
            });
            let answer = cluster.client.send(request).await;
            let outcome = outcome(&p, &proposal, cluster.node_id, answer);
            if p.update(|r| r.on_alter_partition_outcome(&proposal, outcome)) == AlterStep::Done {
                break;
            }
            // A pause before the next attempt: a refusal or silence usually means the metadata
            // is about to change, and retrying at once would flood the controller.
            tokio::time::sleep(RETRY_AFTER_REJECTION).await;
            if cluster.stopping.load(Ordering::Relaxed) {
                break;
            }
            // Not applied, or settled by the metadata meanwhile: the next proposal comes from
            // `on_follower_fetch` / the shrinker, from the committed ISR. Still pending with an
            // unknown outcome: the same proposal goes again.
            if !p.update(|r| r.resend_pending(&proposal)) {
                break;
            }
        }
    });
}

/// What the controller's answer (or its absence) says about `proposal`.
fn outcome(
    p: &Partition,
    proposal: &IsrProposal,
    me: NodeId,
    answer: Result<Response, impl std::fmt::Display>,
) -> AlterPartitionOutcome {
    match answer {
        Ok(Response::AlterPartition {
            error_code,
            partition,
        }) => {
            if error_code != ErrorCode::NONE.0 {
                tracing::info!(topic = %p.topic, partition = p.index, error = error_code,
                    "AlterPartition refused");
            }
            match (ErrorCode(error_code), partition) {
                // The controller checks the leader epoch before the partition epoch, so an
                // INVALID_UPDATE_VERSION record is this leadership's committed state.
                (ErrorCode::NONE | ErrorCode::INVALID_UPDATE_VERSION, Some(c))
                    if c.leader_epoch == proposal.leader_epoch && c.leader == Some(me) =>
                {
                    AlterPartitionOutcome::Committed {
                        isr: c.isr,
                        partition_epoch: c.partition_epoch,
                    }
                }
                (ErrorCode::INELIGIBLE_REPLICA, _) => AlterPartitionOutcome::NotApplied,
                _ => AlterPartitionOutcome::Unknown,
            }
        }
        Ok(other) => {
            tracing::debug!(?other, "AlterPartition not served");
            AlterPartitionOutcome::Unknown
        }
        Err(e) => {
            tracing::debug!(error = %e, "AlterPartition failed");
            AlterPartitionOutcome::Unknown
        }
    }
}
