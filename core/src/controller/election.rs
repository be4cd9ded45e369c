//! Leader election rules.
//!
//! A replica is **eligible** when its broker is unfenced and the replica is not offline (its log
//! failed or would not open there, KIP-858 at partition granularity; see `offline.rs`).
//!
//! - **Clean election** (Kafka's `PartitionChangeBuilder`): the new leader is the first replica,
//!   in replica order, that is in the ISR and eligible. Replica order makes the choice
//!   deterministic and favours the preferred leader.
//! - **Unclean election** (`unclean.leader.election.enable`, off by default): an offline
//!   partition (no eligible ISR member) may take the first eligible replica outside the ISR; the
//!   ISR becomes that replica alone. Committed data may be lost, which is why it is opt-in.
//! - **Preferred election** (KIP-460 ElectLeaders, and `auto.leader.rebalance.enable`): move
//!   leadership to the first replica when it is in the ISR and eligible.
//!
//! Every leader change bumps the leader epoch and the partition epoch (done centrally by
//! [`Changes::finish`]).

use super::changes::{Changes, Target};
use crate::error::ErrorCode;
use crate::rpc::{ElectLeadersRequest, TopicResult};
use crate::types::NodeId;

/// The first replica of `topic`-`index`, in replica order, that is in `isr` and eligible.
pub(super) fn first_eligible(
    changes: &Changes<'_>,
    topic: &str,
    index: i32,
    replicas: &[NodeId],
    isr: &[NodeId],
) -> Option<NodeId> {
    replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && changes.is_eligible(*r, topic, index))
}

/// Elects a leader for partition `topic`-`index`, which has none. `None`: nobody is eligible
/// (it stays offline).
pub(super) fn elect(
    changes: &Changes<'_>,
    topic: &str,
    index: i32,
    target: &Target,
    unclean: bool,
) -> Option<Target> {
    assert!(
        target.leader.is_none(),
        "elect is for leaderless partitions"
    );
    if let Some(leader) = first_eligible(changes, topic, index, &target.replicas, &target.isr) {
        return Some(Target {
            leader: Some(leader),
            ..target.clone()
        });
    }
    if !unclean {
        return None;
    }
    // Unclean: data the old ISR acknowledged may be missing on this replica.
    let leader = target
        .replicas
        .iter()
        .copied()
        .find(|r| changes.is_eligible(*r, topic, index))?;
    Some(Target {
        replicas: target.replicas.clone(),
        isr: vec![leader],
        leader: Some(leader),
    })
}

/// Elects leaders for every leaderless partition that `wanted(topic, index, partition)` selects
/// and that has an eligible replica.
pub(super) fn elect_leaderless(
    changes: &mut Changes<'_>,
    unclean: bool,
    wanted: impl Fn(&str, i32, &Target) -> bool,
) {
    for (topic, index) in changes.all_partitions() {
        let Some(target) = changes.partition(&topic, index) else {
            continue;
        };
        if target.leader.is_some() || !wanted(&topic, index, &target) {
            continue;
        }
        if let Some(elected) = elect(changes, &topic, index, &target, unclean) {
            changes.set_partition(&topic, index, elected);
        }
    }
}

/// Preferred-leader election for one partition (KIP-460): `ELECTION_NOT_NEEDED` when the
/// preferred replica already leads, `PREFERRED_LEADER_NOT_AVAILABLE` when it is fenced, offline
/// or out of the ISR, else leadership moves to it.
pub(super) fn elect_preferred(changes: &mut Changes<'_>, topic: &str, index: i32) -> ErrorCode {
    let Some(target) = changes.partition(topic, index) else {
        return ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
    };
    let Some(preferred) = target.replicas.first().copied() else {
        return ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE;
    };
    if target.leader == Some(preferred) {
        return ErrorCode::ELECTION_NOT_NEEDED;
    }
    if !target.isr.contains(&preferred) || !changes.is_eligible(preferred, topic, index) {
        return ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE;
    }
    changes.set_partition(
        topic,
        index,
        Target {
            leader: Some(preferred),
            ..target
        },
    );
    ErrorCode::NONE
}

/// ElectLeaders (KIP-460, preferred only). With `partitions: None` every partition is tried and,
/// as Kafka does, partitions that already have their preferred leader are left out of the
/// results.
pub(super) fn elect_leaders(
    changes: &mut Changes<'_>,
    request: &ElectLeadersRequest,
) -> Vec<TopicResult> {
    let (wanted, elect_all) = match &request.partitions {
        Some(list) => (list.clone(), false),
        None => (changes.all_partitions(), true),
    };
    let mut results = Vec::new();
    for (topic, index) in wanted {
        let code = elect_preferred(changes, &topic, index);
        if elect_all && code == ErrorCode::ELECTION_NOT_NEEDED {
            continue;
        }
        let error_message = match code {
            ErrorCode::NONE => None,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => Some(format!("no partition {topic}-{index}")),
            ErrorCode::ELECTION_NOT_NEEDED => {
                Some("the preferred replica is already the leader".to_string())
            }
            _ => Some("the preferred replica is fenced, offline or not in the ISR".to_string()),
        };
        results.push(TopicResult {
            name: topic,
            partition: index,
            error_code: code.0,
            error_message,
        });
    }
    results
}

/// `auto.leader.rebalance.enable`: every partition whose preferred replica is eligible gets it
/// back as leader.
pub(super) fn rebalance_preferred(changes: &mut Changes<'_>) {
    for (topic, index) in changes.all_partitions() {
        // Not needed / not available are the normal outcomes of a periodic pass.
        let _ = elect_preferred(changes, &topic, index);
    }
}
