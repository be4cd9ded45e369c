//! Maps the metadata image onto this broker's partitions: which logs it holds, and whether it
//! leads, follows, or only knows of each partition.
//!
//! Rules:
//! - A partition whose replicas include this broker has a local log (opened, or created empty);
//!   others are [`Partition::remote`] entries that answer NOT_LEADER_OR_FOLLOWER.
//! - Leader in a newer epoch → [`Role::Leader`], the epoch recorded in the log's leader-epoch
//!   cache at the current log end (KIP-101); same epoch and a newer partition epoch → only the
//!   committed ISR changes.
//! - Follower in a newer epoch → [`Role::Follower`] that must truncate (KIP-279) before it
//!   fetches; a fetcher task for its leader is started if none runs.
//! - A replica whose log failed, or would not open, is offline: it neither leads nor follows
//!   (role `Remote`) whatever the image says, until the controller, told by `membership`, has
//!   moved leadership away. A failed log stays failed until a restart; an open that failed is
//!   retried at every image change.
//! - Until the image shows this broker registered with its *current* broker epoch and unfenced,
//!   it neither leads nor follows anything: a restarted broker must not act on leaderships of
//!   its previous incarnation (it may have lost unsynced data those followers already hold; a
//!   follower would truncate to its shorter log). The controller moves those leaderships with a
//!   new leader epoch when the new incarnation registers.
//! - A topic gone from the image, or replaced by a newer one of the same name (another
//!   `created_offset`), has its local logs deleted. Each partition directory records its topic's
//!   `created_offset` in `partition.metadata`, so a broker that missed a delete-and-recreate
//!   while down does not serve the old data as the new topic's.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_core::metadata::{MetadataImage, PartitionImage, TopicImage};
use strata_core::replica::IsrState;
use strata_core::types::{LeaderEpoch, NodeId};

use super::{fetcher, replicas};
use crate::broker::{Broker, Topic};
use crate::partition::Partition;
use crate::topic_config::min_insync_replicas;
use strata_core::replica::{LeaderState, Role};

/// Applies `image` to the broker's partitions.
pub fn apply(broker: &Arc<Broker>, image: &MetadataImage) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let me = cluster.node_id;
    let epoch = cluster
        .broker_epoch
        .load(std::sync::atomic::Ordering::SeqCst);
    let active = image
        .brokers
        .get(&me)
        .is_some_and(|b| b.broker_epoch == epoch && !b.fenced);
    let _admin = broker.admin_lock();
    let current = broker.topics();
    let mut next: BTreeMap<String, Arc<Topic>> = BTreeMap::new();
    let mut leaders_to_follow = Vec::new();
    for (name, t) in &image.topics {
        let old = current
            .get(name)
            .filter(|o| o.created_offset == t.created_offset);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (&index, p) in &t.partitions {
            let existing = old.and_then(|o| {
                usize::try_from(index)
                    .ok()
                    .and_then(|i| o.partitions.get(i).cloned())
            });
            let is_replica = p.replicas.contains(&me);
            let partition = match existing {
                Some(e) if e.has_log() == is_replica => e,
                _ if is_replica => match broker.open_replica(t, index) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(topic = %name, partition = index, error = %e,
                            "cannot open the replica's log; serving it as offline here");
                        Partition::remote(name.clone(), index, broker.signals(), None, -1)
                    }
                },
                _ => Partition::remote(
                    name.clone(),
                    index,
                    broker.signals(),
                    p.leader,
                    p.leader_epoch,
                ),
            };
            if let Some(leader) = update_role(broker, &partition, t, p, me, active) {
                leaders_to_follow.push(leader);
            }
            partitions.push(partition);
        }
        next.insert(
            name.clone(),
            Arc::new(Topic {
                name: name.clone(),
                configs: t.configs.clone(),
                created_offset: t.created_offset,
                partitions,
            }),
        );
    }
    let mut removed = Vec::new();
    for (name, old) in &current {
        let kept = next
            .get(name)
            .is_some_and(|n| n.created_offset == old.created_offset);
        if !kept {
            removed.push(old.clone());
        }
    }
    broker.replace_topics(next);
    for topic in removed {
        for p in &topic.partitions {
            p.set_role(Role::Remote {
                leader: None,
                leader_epoch: -1,
            });
            if p.has_log()
                && let Err(e) = p.delete()
            {
                tracing::warn!(topic = %topic.name, partition = p.index, error = %e,
                    "could not remove the deleted topic's files");
            }
        }
        tracing::info!(topic = %topic.name, "topic deleted");
    }
    leaders_to_follow.sort();
    leaders_to_follow.dedup();
    for leader in leaders_to_follow {
        fetcher::ensure_running(broker, leader);
    }
    broker.wake_waiters();
}

/// Updates one partition's role from its image. Returns the leader to follow, if this broker is
/// a follower.
fn update_role(
    broker: &Arc<Broker>,
    partition: &Arc<Partition>,
    topic: &TopicImage,
    p: &PartitionImage,
    me: NodeId,
    active: bool,
) -> Option<NodeId> {
    if !partition.has_log() || !active || replicas::log_failed(partition) {
        let stale = match &*partition.role() {
            Role::Remote {
                leader,
                leader_epoch,
            } => *leader != p.leader || *leader_epoch != p.leader_epoch,
            _ => true,
        };
        if stale {
            partition.set_role(Role::Remote {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
            });
        }
        return None;
    }
    if p.leader == Some(me) {
        let same_leadership = matches!(&*partition.role(),
            Role::Leader(l) if l.leader_epoch == p.leader_epoch);
        if same_leadership {
            let min_isr = min_insync_replicas(&topic.configs, &broker.config);
            partition
                .update(|r| r.on_partition_committed(p.isr.clone(), p.partition_epoch, min_isr));
            return None;
        }
        let held = partition.role().known_epoch();
        if held > p.leader_epoch {
            tracing::warn!(topic = %topic.name, partition = partition.index,
                held, image = p.leader_epoch, "ignoring an older leader epoch");
            return None;
        }
        let leo = {
            let mut guard = partition.log();
            let log = guard.as_mut()?;
            let leo = log.log_end_offset();
            if let Err(e) = log.maybe_assign_leader_epoch(LeaderEpoch(p.leader_epoch)) {
                tracing::error!(topic = %topic.name, partition = partition.index, error = %e,
                    "cannot record the new leader epoch; not taking leadership");
                return None;
            }
            leo.0
        };
        let now = broker.now();
        let isr = IsrState::new(
            me,
            p.replicas.clone(),
            p.isr.clone(),
            LeaderEpoch(p.leader_epoch),
            p.partition_epoch,
            strata_core::Offset(leo),
            now,
        );
        tracing::info!(topic = %topic.name, partition = partition.index, leader_epoch = p.leader_epoch,
            epoch_start_offset = leo, isr = ?p.isr, "became leader");
        partition.set_role(Role::Leader(Box::new(LeaderState {
            leader_epoch: p.leader_epoch,
            epoch_start_offset: leo,
            isr,
            min_insync_replicas: min_insync_replicas(&topic.configs, &broker.config),
            alter_in_flight: false,
        })));
        return None;
    }
    let Some(leader) = p.leader else {
        partition.set_role(Role::Remote {
            leader: None,
            leader_epoch: p.leader_epoch,
        });
        return None;
    };
    let same = matches!(&*partition.role(),
        Role::Follower { leader: l, leader_epoch, .. } if *l == leader && *leader_epoch == p.leader_epoch);
    if !same {
        tracing::info!(topic = %topic.name, partition = partition.index, %leader,
            leader_epoch = p.leader_epoch, "became follower");
        partition.set_role(Role::Follower {
            leader,
            leader_epoch: p.leader_epoch,
            needs_truncation: true,
        });
    }
    Some(leader)
}
