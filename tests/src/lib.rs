//! End-to-end test helpers: real `strata` processes ([`node`]) and clusters of them
//! ([`cluster`]), the third-party clients they are tested with ([`tools`]), and where the broker
//! binary comes from ([`binary`]).
//!
//! Every test starts its own broker on its own free port with its own data directory, so tests
//! run in parallel. Nothing is mocked: the broker is the real binary and the clients are kcat,
//! confluent-kafka (librdkafka) and kafka-python, plus Strata's own client where a test needs
//! exact error codes.

pub mod binary;
pub mod cluster;
pub mod kafka;
pub mod node;
pub mod tools;

pub use cluster::StrataCluster;
pub use node::StrataNode;
