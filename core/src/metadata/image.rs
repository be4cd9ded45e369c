//! The metadata image: what replaying the metadata log up to `offset` gives.

use std::collections::BTreeMap;

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
