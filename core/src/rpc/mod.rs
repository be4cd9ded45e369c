//! Internal messages between Strata nodes on the `CONTROLLER` listener: Raft traffic between
//! controllers and the broker-to-controller RPCs (registration, heartbeats, metadata fetch,
//! AlterPartition, forwarded admin requests and config changes, producer-id blocks).
//!
//! Data replication does **not** use these: followers fetch with the Kafka `Fetch` API (with
//! their `replica_id`) and truncate with `OffsetForLeaderEpoch`, as Kafka brokers do.
//!
//! ## Wire format
//!
//! ```text
//! frame    = length:u32be body            length = len(body), at most MAX_FRAME_BYTES
//! body     = postcard(Envelope)
//! ```
//!
//! A connection carries requests one way and responses the other, matched by `correlation_id`.
//! Raft messages are one-way (no response). Decoding never panics: a malformed body is a
//! [`CodecError`] and the connection is closed with a log line.

mod codec;
mod messages;

pub use codec::{CodecError, MAX_FRAME_BYTES, decode, encode};
pub use messages::{
    AlterConfigsRequest, AlterConfigsResult, AlterPartitionRequest, ConfigChange, ConfigOp,
    CreatePartitionsRequest, CreateTopicsRequest, ElectLeadersRequest, Envelope, MetadataDelta,
    NewTopic, Request, Response, TopicConfigChanges, TopicResult,
};
