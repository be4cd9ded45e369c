//! The metadata image: what replaying the metadata log up to `offset` gives.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::records::{MetadataRecord, PartitionRecord};
use crate::types::NodeId;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub broker_id: NodeId,
    /// The metadata offset of its latest registration.
    pub broker_epoch: i64,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are in no ISR.
    pub fenced: bool,
}

/// A partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

impl PartitionImage {
    /// The first assigned replica (Kafka's preferred leader).
    pub fn preferred_leader(&self) -> Option<NodeId> {
        self.replicas.first().copied()
    }
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    /// The metadata offset that created it: tells a topic from an older one of the same name
    /// (a broker that missed a delete and re-create must not keep the old data).
    pub created_offset: u64,
    pub configs: BTreeMap<String, String>,
    /// Partitions by index, dense from 0.
    pub partitions: BTreeMap<i32, PartitionImage>,
}

/// The cluster metadata at metadata offset `offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// The last applied metadata offset (Raft index), 0 before any.
    pub offset: u64,
    pub cluster_id: Option<String>,
    pub brokers: BTreeMap<NodeId, BrokerImage>,
    pub topics: BTreeMap<String, TopicImage>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// Per broker, the partitions whose replica on it is offline, as its current incarnation
    /// last reported them ([`MetadataRecord::OfflineReplicas`]); brokers with none are absent.
    /// An offline replica leads nothing and is in no ISR except as its last member. Cleared by
    /// the broker's next registration; a deleted topic's entries go with it. Last field: a
    /// snapshot of an older image ends before it (see [`super::snapshot`]).
    pub offline_replicas: BTreeMap<NodeId, BTreeSet<(String, i32)>>,
}

impl MetadataImage {
    /// Applies the records committed at metadata offset `offset`, in order.
    ///
    /// Records are the controller's decisions: they were validated before they were proposed, so
    /// a record that does not fit the image (a partition of an unknown topic, say) is a bug and
    /// is skipped with an error log rather than applied half-way.
    pub fn replay(&mut self, offset: u64, records: &[MetadataRecord]) {
        assert!(
            offset > self.offset,
            "metadata offsets replay in order: {offset} after {}",
            self.offset
        );
        for record in records {
            self.apply(offset, record);
        }
        self.offset = offset;
        self.assert_offline_replicas();
    }

    fn apply(&mut self, offset: u64, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterId { cluster_id } => {
                self.cluster_id = Some(cluster_id.clone());
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                broker_epoch,
                host,
                port,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerImage {
                        broker_id: *broker_id,
                        broker_epoch: *broker_epoch,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced: true,
                    },
                );
                // A new incarnation opened its logs afresh: it reports what is still offline.
                self.offline_replicas.remove(broker_id);
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            } => self.set_fenced(*broker_id, *broker_epoch, true),
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => self.set_fenced(*broker_id, *broker_epoch, false),
            MetadataRecord::Topic { name, configs } => {
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        created_offset: offset,
                        configs: configs.clone(),
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition(p) => self.apply_partition(p),
            MetadataRecord::RemoveTopic { name } => {
                self.topics.remove(name);
                for set in self.offline_replicas.values_mut() {
                    set.retain(|(topic, _)| topic != name);
                }
                self.offline_replicas.retain(|_, set| !set.is_empty());
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                assert!(
                    *next_producer_id >= self.next_producer_id,
                    "producer id blocks only move forward"
                );
                self.next_producer_id = *next_producer_id;
            }
            MetadataRecord::OfflineReplicas {
                broker_id,
                broker_epoch,
                partitions,
            } => self.set_offline(*broker_id, *broker_epoch, partitions),
            MetadataRecord::TopicConfigs { name, configs } => self.set_configs(name, configs),
        }
    }

    fn set_configs(&mut self, name: &str, configs: &BTreeMap<String, String>) {
        match self.topics.get_mut(name) {
            Some(topic) => topic.configs = configs.clone(),
            None => tracing::error!(topic = %name, "configs of an unknown topic: skipped"),
        }
    }

    fn set_offline(&mut self, broker_id: NodeId, broker_epoch: i64, partitions: &[(String, i32)]) {
        if self
            .brokers
            .get(&broker_id)
            .is_none_or(|b| b.broker_epoch != broker_epoch)
        {
            tracing::error!(%broker_id, broker_epoch, "offline replicas of an unknown broker epoch: skipped");
            return;
        }
        let set: BTreeSet<(String, i32)> = partitions.iter().cloned().collect();
        if set.is_empty() {
            self.offline_replicas.remove(&broker_id);
        } else {
            self.offline_replicas.insert(broker_id, set);
        }
    }

    /// Whether broker `broker`'s replica of `topic`-`partition` is offline.
    pub fn is_replica_offline(&self, broker: NodeId, topic: &str, partition: i32) -> bool {
        self.offline_replicas
            .get(&broker)
            .is_some_and(|set| set.contains(&(topic.to_string(), partition)))
    }

    /// The offline-replica invariants, checked after every replayed batch (records of one
    /// batch apply together: the `OfflineReplicas` record comes before the partition records
    /// that move leadership away): every offline replica is an assigned replica of an existing
    /// partition, leads nothing, and is in its ISR only as the last member.
    fn assert_offline_replicas(&self) {
        for (broker, set) in &self.offline_replicas {
            assert!(!set.is_empty(), "empty offline sets are not kept");
            for (topic, index) in set {
                let Some(p) = self.partition(topic, *index) else {
                    panic!(
                        "broker {broker}: offline replica of a missing partition {topic}-{index}"
                    );
                };
                assert!(
                    p.replicas.contains(broker),
                    "broker {broker}: offline replica of {topic}-{index} it is not assigned: {p:?}"
                );
                assert!(
                    p.leader != Some(*broker),
                    "an offline replica never leads: broker {broker}, {topic}-{index} {p:?}"
                );
                assert!(
                    !p.isr.contains(broker) || p.isr.len() == 1,
                    "an offline replica is in the ISR only as its last member: broker {broker}, {topic}-{index} {p:?}"
                );
            }
        }
    }

    fn set_fenced(&mut self, broker_id: NodeId, broker_epoch: i64, fenced: bool) {
        match self.brokers.get_mut(&broker_id) {
            Some(b) if b.broker_epoch == broker_epoch => b.fenced = fenced,
            _ => {
                tracing::error!(%broker_id, broker_epoch, "fence change for an unknown broker epoch: skipped")
            }
        }
    }

    fn apply_partition(&mut self, p: &PartitionRecord) {
        let Some(topic) = self.topics.get_mut(&p.topic) else {
            tracing::error!(topic = %p.topic, "partition record for an unknown topic: skipped");
            return;
        };
        assert!(!p.isr.is_empty(), "an ISR is never empty: {p:?}");
        assert!(
            p.isr.iter().all(|r| p.replicas.contains(r)),
            "the ISR is a subset of the replicas: {p:?}"
        );
        if let Some(leader) = p.leader {
            assert!(p.isr.contains(&leader), "the leader is in the ISR: {p:?}");
        }
        if let Some(old) = topic.partitions.get(&p.partition) {
            assert!(
                p.leader_epoch >= old.leader_epoch && p.partition_epoch > old.partition_epoch,
                "partition epochs only move forward: {old:?} -> {p:?}"
            );
            assert!(
                p.leader == old.leader || p.leader_epoch > old.leader_epoch,
                "a leader change bumps the leader epoch: {old:?} -> {p:?}"
            );
        }
        topic.partitions.insert(
            p.partition,
            PartitionImage {
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
            },
        );
    }

    /// The partition, if the topic and partition exist.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(topic)?.partitions.get(&partition)
    }

    /// Unfenced brokers, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }
}
