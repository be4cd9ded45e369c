//! Metadata records: the only way the cluster metadata changes.
//!
//! Encoded with `postcard` (serde) inside Raft entries and in internal RPC messages; see
//! [`crate::rpc`]. The encoding is part of the on-disk format of the quorum log: variants are
//! only ever appended at the end of the enum, never reordered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// The records committed together in one Raft entry (applied atomically).
pub type RecordBatch = Vec<MetadataRecord>;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The cluster's id, written once by the first active controller.
    ClusterId { cluster_id: String },
    /// A broker (re-)registered: a new `broker_epoch` (the metadata offset of the registration)
    /// fences every older incarnation. A registered broker starts fenced.
    RegisterBroker {
        broker_id: NodeId,
        broker_epoch: i64,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// The broker missed its session timeout (or asked to shut down): it leads nothing and is
    /// removed from ISRs.
    FenceBroker {
        broker_id: NodeId,
        broker_epoch: i64,
    },
    /// The broker caught up with the metadata and heartbeats: it may lead and join ISRs.
    UnfenceBroker {
        broker_id: NodeId,
        broker_epoch: i64,
    },
    /// A topic was created (partitions follow as [`MetadataRecord::Partition`]s).
    Topic {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// The whole state of one partition (creation and every later change: upsert).
    Partition(PartitionRecord),
    /// A topic and all its partitions were deleted.
    RemoveTopic { name: String },
    /// A block of producer ids was handed to a broker: the next block starts at
    /// `next_producer_id` (KIP-730).
    ProducerIds {
        broker_id: NodeId,
        broker_epoch: i64,
        next_producer_id: i64,
    },
    /// The partitions whose replica on broker `broker_id` (incarnation `broker_epoch`) is
    /// offline: its log failed (an fsync or a write that could not be cut back, a failed
    /// truncation, corruption past recovery) or would not open. The full set, sorted, replacing
    /// the broker's previous one (empty: every replica is back). KIP-858's offline log
    /// directories, at partition granularity. A new registration of the broker clears it.
    OfflineReplicas {
        broker_id: NodeId,
        broker_epoch: i64,
        partitions: Vec<(String, i32)>,
    },
    /// A topic's config overrides were replaced (IncrementalAlterConfigs, AlterConfigs): the
    /// full new set, validated by the controller (`crate::controller::TopicConfigPolicy`),
    /// replacing the set of [`MetadataRecord::Topic`] or of the previous `TopicConfigs`. Configs
    /// not in it take the broker defaults. The image keeps only the latest set, so snapshots
    /// need no new field.
    TopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
}

/// The full state of a partition as the controller decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic: String,
    pub partition: i32,
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<NodeId>,
    /// In-sync replicas (never empty; keeps the last member when every replica is fenced).
    pub isr: Vec<NodeId>,
    /// The leader, `None` while the partition is offline.
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}
