//! Strata's own Kafka client, built on `kafka-protocol`.
//!
//! Small on purpose: the simulator, the jepsen harness, the benchmark and the tests use it to
//! drive brokers and to see exact error codes, which third-party clients hide behind retries.
//! It runs under madsim too (no threads, no `tokio::fs`, writes always flushed).
//!
//! - [`connection`]: framing, correlation ids, pipelining.
//! - [`producer`]: raw v2 batches to a partition; outcomes distinguish *indefinite* results.
//! - [`consumer`]: assigned partitions, long-poll fetch, record decoding.
//! - [`admin`]: Metadata, CreateTopics, ListOffsets.

pub mod admin;
pub mod connection;
pub mod consumer;
pub mod metadata;
pub mod producer;

pub use admin::Admin;
pub use connection::{Connection, ConnectionConfig, ConnectionError};
pub use consumer::{ConsumedRecord, Consumer, FetchConfig};
pub use producer::{IndefiniteReason, ProduceOutcome, Producer, ProducerConfig};
