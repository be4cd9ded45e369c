//! Strata's own Kafka client, built on `kafka-protocol`.
//!
//! Small on purpose: the simulator, the jepsen harness, the benchmark and the tests use it to
//! drive brokers and to see exact error codes, which third-party clients hide behind retries.
//! It runs under madsim too (no threads, no `tokio::fs`, writes always flushed).
//!
//! - [`connection`]: framing, correlation ids, pipelining.
//! - [`producer`]: the producer (leader routing, pipelining, retries, idempotent by default),
//!   its outcomes (which distinguish *indefinite* results), and raw Produce helpers.
//! - [`outcome`]: how a produce ends (Ok, Failed, Indefinite) and what each error code means.
//! - [`sequencer`]: the producer's per-partition rules (sequences, retries, resets), sans-IO.
//! - [`sender`]: the producer's IO, one task per partition.
//! - [`producer_id`]: InitProducerId, a producer id and epoch from the cluster.
//! - [`consumer`]: assigned partitions, long-poll fetch, record decoding.
//! - [`admin`]: Metadata, CreateTopics, ListOffsets.
//! - [`group`]: consumer groups: a member's protocol steps and a subscribing consumer.
//! - [`metadata`]: leader routing.

pub mod admin;
pub mod clock;
pub mod connection;
pub mod consumer;
pub mod group;
pub mod metadata;
pub mod outcome;
pub mod produce_request;
pub mod producer;
pub mod producer_config;
pub mod producer_id;
pub mod sender;
pub mod sequencer;

pub use admin::Admin;
pub use connection::{Connection, ConnectionConfig, ConnectionError};
pub use consumer::{BatchProducer, ConsumedRecord, Consumer, FetchConfig};
pub use group::{GroupConsumer, GroupConsumerConfig, GroupMember, MemberConfig};
pub use producer::{
    IndefiniteReason, ProduceOutcome, Producer, ProducerConfig, ProducerConfigError,
};
pub use sequencer::ResetPolicy;
