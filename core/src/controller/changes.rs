//! A staged batch of metadata changes: the controller's decisions for one request or tick,
//! seen through an overlay on the committed image and turned into records at the end.
//!
//! Decisions made in one batch build on each other (fence broker 1, then broker 2, then elect):
//! later steps read the overlay, never the stale image. Each partition that changed gets **one**
//! [`PartitionRecord`] whose epochs are computed against the committed image (leader changed:
//! `leader_epoch + 1`; anything changed: `partition_epoch + 1`), so a batch never emits two
//! records for one partition, and every emitted record passes [`check_partition_change`].

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::{MetadataImage, MetadataRecord, PartitionImage, PartitionRecord};
use crate::types::NodeId;

/// What the controller wants a partition to look like (epochs are derived in
/// [`Changes::finish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: Option<NodeId>,
}

impl From<&PartitionImage> for Target {
    fn from(p: &PartitionImage) -> Target {
        Target {
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader: p.leader,
        }
    }
}

/// The overlay: committed image plus this batch's decisions.
pub(super) struct Changes<'a> {
    image: &'a MetadataImage,
    /// Broker, topic and producer-id records, in decision order.
    records: Vec<MetadataRecord>,
    /// Fence state of brokers registered, fenced or unfenced in this batch.
    fenced: BTreeMap<NodeId, bool>,
    created_topics: BTreeSet<String>,
    removed_topics: BTreeSet<String>,
    /// Partitions changed or created in this batch.
    partitions: BTreeMap<(String, i32), Target>,
    /// Offline replica sets of brokers registered or reporting in this batch (replacing the
    /// image's).
    offline: BTreeMap<NodeId, BTreeSet<(String, i32)>>,
}

impl<'a> Changes<'a> {
    pub fn new(image: &'a MetadataImage) -> Changes<'a> {
        Changes {
            image,
            records: Vec::new(),
            fenced: BTreeMap::new(),
            created_topics: BTreeSet::new(),
            removed_topics: BTreeSet::new(),
            partitions: BTreeMap::new(),
            offline: BTreeMap::new(),
        }
    }

    pub fn image(&self) -> &'a MetadataImage {
        self.image
    }

    /// Adds a non-partition record and applies it to the overlay.
    pub fn push(&mut self, record: MetadataRecord) {
        assert!(
            !matches!(record, MetadataRecord::Partition(_)),
            "partition changes go through set_partition"
        );
        match &record {
            MetadataRecord::RegisterBroker { broker_id, .. } => {
                self.fenced.insert(*broker_id, true);
                self.offline.insert(*broker_id, BTreeSet::new());
            }
            MetadataRecord::FenceBroker { broker_id, .. } => {
                self.fenced.insert(*broker_id, true);
            }
            MetadataRecord::OfflineReplicas {
                broker_id,
                partitions,
                ..
            } => {
                self.offline
                    .insert(*broker_id, partitions.iter().cloned().collect());
            }
            MetadataRecord::UnfenceBroker { broker_id, .. } => {
                self.fenced.insert(*broker_id, false);
            }
            MetadataRecord::Topic { name, .. } => {
                assert!(!self.topic_exists(name), "topic {name} created twice");
                self.created_topics.insert(name.clone());
            }
            MetadataRecord::RemoveTopic { name } => {
                assert!(
                    !self.created_topics.contains(name),
                    "a batch never creates and removes {name}"
                );
                self.removed_topics.insert(name.clone());
                self.partitions.retain(|(t, _), _| t != name);
            }
            MetadataRecord::TopicConfigs { name, .. } => {
                assert!(
                    self.topic_exists(name),
                    "configs of topic {name}, which does not exist"
                );
            }
            MetadataRecord::ClusterId { .. } | MetadataRecord::ProducerIds { .. } => {}
            MetadataRecord::Partition(_) => {}
        }
        self.records.push(record);
    }

    pub fn is_registered(&self, broker: NodeId) -> bool {
        self.fenced.contains_key(&broker) || self.image.brokers.contains_key(&broker)
    }

    pub fn is_unfenced(&self, broker: NodeId) -> bool {
        match self.fenced.get(&broker) {
            Some(fenced) => !fenced,
            None => self.image.brokers.get(&broker).is_some_and(|b| !b.fenced),
        }
    }

    /// The partitions whose replica on `broker` is offline, as this batch sees them.
    pub fn offline_replicas(&self, broker: NodeId) -> BTreeSet<(String, i32)> {
        match self.offline.get(&broker) {
            Some(set) => set.clone(),
            None => self
                .image
                .offline_replicas
                .get(&broker)
                .cloned()
                .unwrap_or_default(),
        }
    }

    pub fn is_offline(&self, broker: NodeId, topic: &str, partition: i32) -> bool {
        match self.offline.get(&broker) {
            Some(set) => set.contains(&(topic.to_string(), partition)),
            None => self.image.is_replica_offline(broker, topic, partition),
        }
    }

    /// Whether `broker`'s replica of `topic`-`partition` may lead it or join its ISR: the
    /// broker is unfenced and the replica is not offline.
    pub fn is_eligible(&self, broker: NodeId, topic: &str, partition: i32) -> bool {
        self.is_unfenced(broker) && !self.is_offline(broker, topic, partition)
    }

    /// Unfenced brokers, by id.
    pub fn unfenced_brokers(&self) -> Vec<NodeId> {
        let ids: BTreeSet<NodeId> = self
            .image
            .brokers
            .keys()
            .chain(self.fenced.keys())
            .copied()
            .collect();
        ids.into_iter().filter(|b| self.is_unfenced(*b)).collect()
    }

    pub fn topic_exists(&self, name: &str) -> bool {
        self.created_topics.contains(name)
            || (self.image.topics.contains_key(name) && !self.removed_topics.contains(name))
    }

    /// Topic names of the overlay, in order.
    pub fn topic_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self
            .image
            .topics
            .keys()
            .filter(|t| !self.removed_topics.contains(*t))
            .cloned()
            .collect();
        names.extend(self.created_topics.iter().cloned());
        names.into_iter().collect()
    }

    /// Partition indexes of a topic in the overlay, in order (empty for an unknown topic).
    pub fn partition_indexes(&self, topic: &str) -> Vec<i32> {
        if !self.topic_exists(topic) {
            return Vec::new();
        }
        let mut indexes: BTreeSet<i32> = BTreeSet::new();
        if !self.created_topics.contains(topic)
            && let Some(t) = self.image.topics.get(topic)
        {
            indexes.extend(t.partitions.keys().copied());
        }
        indexes.extend(
            self.partitions
                .range((topic.to_string(), i32::MIN)..=(topic.to_string(), i32::MAX))
                .map(|((_, p), _)| *p),
        );
        indexes.into_iter().collect()
    }

    /// Every (topic, partition) of the overlay, in order.
    pub fn all_partitions(&self) -> Vec<(String, i32)> {
        let mut all = Vec::new();
        for topic in self.topic_names() {
            for p in self.partition_indexes(&topic) {
                all.push((topic.clone(), p));
            }
        }
        all
    }

    /// The partition as this batch sees it.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Target> {
        if let Some(t) = self.partitions.get(&(topic.to_string(), partition)) {
            return Some(t.clone());
        }
        if !self.topic_exists(topic) || self.created_topics.contains(topic) {
            return None;
        }
        self.image.partition(topic, partition).map(Target::from)
    }

    /// Stages a partition's new shape (creation or change).
    pub fn set_partition(&mut self, topic: &str, partition: i32, target: Target) {
        assert!(
            self.topic_exists(topic),
            "partition {topic}-{partition} of a topic that does not exist"
        );
        self.partitions
            .insert((topic.to_string(), partition), target);
    }

    /// The records of this batch: broker/topic records in decision order, then one full
    /// partition record per changed partition, in (topic, partition) order.
    pub fn finish(self) -> Vec<MetadataRecord> {
        let mut partition_records = Vec::new();
        for ((topic, index), target) in &self.partitions {
            let old = if self.created_topics.contains(topic) {
                None
            } else {
                self.image.partition(topic, *index)
            };
            if let Some(o) = old
                && o.replicas == target.replicas
                && o.isr == target.isr
                && o.leader == target.leader
            {
                continue; // decided back to where it was: nothing to say
            }
            let (leader_epoch, partition_epoch) = match old {
                None => (0, 0),
                Some(o) => (
                    if o.leader == target.leader {
                        o.leader_epoch
                    } else {
                        o.leader_epoch
                            .checked_add(1)
                            .expect("leader epochs stay below i32::MAX")
                    },
                    o.partition_epoch
                        .checked_add(1)
                        .expect("partition epochs stay below i32::MAX"),
                ),
            };
            if let Some(leader) = target.leader
                && old.is_none_or(|o| o.leader != Some(leader))
            {
                assert!(
                    self.is_eligible(leader, topic, *index),
                    "a new leader is unfenced and its replica not offline: {topic}-{index} -> {leader}"
                );
            }
            // (A sole member may be ineligible by the end of the batch: unclean election picked
            // it, then its broker was fenced in the same batch. It stays as the last member.)
            if let Some(o) = old
                && target.isr.len() > 1
            {
                for added in target.isr.iter().filter(|r| !o.isr.contains(r)) {
                    assert!(
                        self.is_eligible(*added, topic, *index),
                        "a multi-member ISR grows only by unfenced, online replicas: {topic}-{index} + {added}"
                    );
                }
            }
            let record = PartitionRecord {
                topic: topic.clone(),
                partition: *index,
                replicas: target.replicas.clone(),
                isr: target.isr.clone(),
                leader: target.leader,
                leader_epoch,
                partition_epoch,
            };
            check_partition_change(old, &record);
            partition_records.push(MetadataRecord::Partition(record));
        }
        let mut records = self.records;
        records.extend(partition_records);
        records
    }
}

/// The invariants of every partition record the controller emits (kept in release builds):
/// the ISR is a non-empty, duplicate-free subset of the duplicate-free replicas; the leader, if
/// any, is in the ISR; a new partition starts at epochs 0; a change bumps `partition_epoch` by
/// one and `leader_epoch` by one exactly when the leader changes (KIP-497), and is a change.
pub(super) fn check_partition_change(old: Option<&PartitionImage>, new: &PartitionRecord) {
    assert!(
        !new.replicas.is_empty(),
        "a partition has replicas: {new:?}"
    );
    assert!(
        !has_duplicates(&new.replicas),
        "replicas are distinct: {new:?}"
    );
    assert!(!new.isr.is_empty(), "an ISR is never empty: {new:?}");
    assert!(
        !has_duplicates(&new.isr),
        "ISR members are distinct: {new:?}"
    );
    assert!(
        new.isr.iter().all(|r| new.replicas.contains(r)),
        "the ISR is a subset of the replicas: {new:?}"
    );
    if let Some(leader) = new.leader {
        assert!(
            new.isr.contains(&leader),
            "the leader is in the ISR: {new:?}"
        );
    }
    match old {
        None => assert!(
            new.leader_epoch == 0 && new.partition_epoch == 0,
            "a new partition starts at epoch 0: {new:?}"
        ),
        Some(old) => {
            assert!(
                old.replicas != new.replicas || old.isr != new.isr || old.leader != new.leader,
                "a partition record is a change: {old:?} -> {new:?}"
            );
            assert_eq!(
                new.partition_epoch,
                old.partition_epoch + 1,
                "every change bumps the partition epoch by one: {old:?} -> {new:?}"
            );
            let expected = old.leader_epoch + i32::from(old.leader != new.leader);
            assert_eq!(
                new.leader_epoch, expected,
                "a leader change (only) bumps the leader epoch: {old:?} -> {new:?}"
            );
        }
    }
}

pub(super) fn has_duplicates(ids: &[NodeId]) -> bool {
    let set: BTreeSet<NodeId> = ids.iter().copied().collect();
    set.len() != ids.len()
}
