//! The internal request and response types. Variants are only appended, never reordered
//! (postcard encodes the variant index).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metadata::{MetadataImage, MetadataRecord};
use crate::types::NodeId;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Envelope {
    /// A Raft message (`eraftpb::Message`, protobuf-encoded) from controller `from`. One-way.
    Raft { from: NodeId, message: Vec<u8> },
    /// A request expecting one [`Envelope::Response`] with the same `correlation_id`.
    Request {
        correlation_id: u64,
        request: Request,
    },
    Response {
        correlation_id: u64,
        response: Response,
    },
}

/// Broker-to-controller requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// BrokerRegistration (KIP-631): a starting broker announces itself and its listener.
    RegisterBroker {
        broker_id: NodeId,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// BrokerHeartbeat: keeps the session alive; `metadata_offset` is how far the broker has
    /// replayed (it is unfenced only once caught up); `want_shutdown` asks to be fenced for a
    /// controlled shutdown (its leaderships move first).
    Heartbeat {
        broker_id: NodeId,
        broker_epoch: i64,
        metadata_offset: u64,
        want_shutdown: bool,
    },
    /// Long-poll for committed metadata after `from_offset` (KRaft brokers fetch the metadata
    /// log the same way). Answered at once when there is something newer, else after
    /// `max_wait_ms` with an empty delta.
    FetchMetadata { from_offset: u64, max_wait_ms: u32 },
    /// AlterPartition (KIP-497): the leader asks to change a partition's ISR.
    AlterPartition(AlterPartitionRequest),
    /// CreateTopics, forwarded from the broker a client asked (KIP-590).
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics, forwarded.
    DeleteTopics { names: Vec<String> },
    /// CreatePartitions, forwarded.
    CreatePartitions(CreatePartitionsRequest),
    /// ElectLeaders (KIP-460), forwarded; also run by the controller itself periodically.
    ElectLeaders(ElectLeadersRequest),
    /// AllocateProducerIds (KIP-730).
    AllocateProducerIds {
        broker_id: NodeId,
        broker_epoch: i64,
    },
    /// The partitions whose replica on this broker is offline (its log failed or would not
    /// open): the full set, replacing the previous report; empty when every replica is back.
    /// KIP-858's `OfflineLogDirs` of the heartbeat, per partition, as its own request so that
    /// the heartbeat's encoding stays as it was. Sent whenever the set changes and after each
    /// registration, before the heartbeat that unfences.
    OfflineReplicas {
        broker_id: NodeId,
        broker_epoch: i64,
        partitions: Vec<(String, i32)>,
    },
    /// IncrementalAlterConfigs (KIP-339) or AlterConfigs of topics, forwarded: the controller
    /// applies the operations to the committed overrides, validates the result and commits a
    /// `TopicConfigs` record per topic.
    AlterConfigs(AlterConfigsRequest),
}

/// One operation of IncrementalAlterConfigs (its `config_operation` codes, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    /// 0: set the override.
    Set,
    /// 1: remove the override (back to the broker default).
    Delete,
    /// 2: add items to a list config (those not already in it).
    Append,
    /// 3: remove items from a list config.
    Subtract,
}

impl ConfigOp {
    /// From IncrementalAlterConfigs' `config_operation` (`None`: unknown code).
    pub fn from_code(code: i8) -> Option<ConfigOp> {
        match code {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }
}

/// One config change of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub name: String,
    pub op: ConfigOp,
    /// The value (`None`: null on the wire; only `Delete` goes without one).
    pub value: Option<String>,
}

/// The config changes of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfigChanges {
    pub topic: String,
    /// `true` (AlterConfigs): the `Set` changes are the whole new override set; every other
    /// override is removed. `false` (IncrementalAlterConfigs): the changes apply to the
    /// current overrides.
    pub replace: bool,
    pub changes: Vec<ConfigChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsRequest {
    pub topics: Vec<TopicConfigChanges>,
    pub validate_only: bool,
}

/// The outcome for one topic of an [`AlterConfigsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsResult {
    /// Topic name, error code and message (`partition` is -1).
    pub result: TopicResult,
    /// On success, the topic's override set after the change (with `validate_only`: as it
    /// would be); a broker waits for its image to show it before answering.
    pub configs: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionRequest {
    pub broker_id: NodeId,
    pub broker_epoch: i64,
    pub topic: String,
    pub partition: i32,
    /// The leader epoch the leader holds.
    pub leader_epoch: i32,
    /// The partition epoch the proposed ISR is based on (stale: `INVALID_UPDATE_VERSION`).
    pub partition_epoch: i32,
    pub new_isr: Vec<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1: `num.partitions`.
    pub num_partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit assignment by partition index (empty: the controller assigns).
    pub assignments: BTreeMap<i32, Vec<NodeId>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicsRequest {
    pub topics: Vec<NewTopic>,
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsRequest {
    /// (topic, new total count)
    pub topics: Vec<(String, i32)>,
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeadersRequest {
    /// `None`: every partition.
    pub partitions: Option<Vec<(String, i32)>>,
}

/// Per-topic (or per-partition) outcome of an admin request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicResult {
    pub name: String,
    /// Partition index for per-partition results (ElectLeaders), else -1.
    pub partition: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// Committed metadata handed to a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataDelta {
    /// The record batches committed after the requested offset, each with its offset.
    Records(Vec<(u64, Vec<MetadataRecord>)>),
    /// The broker is too far behind (the controller no longer holds those records): the whole
    /// image; the broker replaces its own.
    Image(Box<MetadataImage>),
}

/// Controller-to-broker responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// This node is not the active controller; `leader` is its best guess of who is.
    NotController {
        leader: Option<NodeId>,
    },
    Registered {
        broker_epoch: i64,
    },
    /// `error_code`: `STALE_BROKER_EPOCH` for an old incarnation (re-register).
    Heartbeat {
        error_code: i16,
        fenced: bool,
        /// The controlled shutdown is complete: the broker may exit.
        shutdown_ready: bool,
    },
    Metadata(MetadataDelta),
    AlterPartition {
        error_code: i16,
        /// The partition as it now is (on success and on `INVALID_UPDATE_VERSION`).
        partition: Option<crate::metadata::PartitionRecord>,
    },
    Topics(Vec<TopicResult>),
    ProducerIds {
        error_code: i16,
        first_producer_id: i64,
        count: i32,
    },
    /// The request could not be served (a bug, or a request this controller cannot decode).
    Error {
        error_code: i16,
        message: String,
    },
    /// Answer to [`Request::OfflineReplicas`]: `STALE_BROKER_EPOCH` for an old incarnation,
    /// else the report is committed (and leaderships moved).
    OfflineReplicas {
        error_code: i16,
    },
    /// Answer to [`Request::AlterConfigs`], one result per topic of the request, in order.
    AlterConfigs(Vec<AlterConfigsResult>),
}
