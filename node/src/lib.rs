//! strata-node: the `strata` broker (tokio driver, Kafka listener, file storage, config) and
//! Strata's own Kafka client ([`client`]), which the simulator, jepsen, benchmarks and the CLI use.
//!
//! Broker map: [`server`] binds and accepts, [`connection`] frames ([`framing`]) and pipelines
//! (request bytes leased from [`memory_pool`]: `queued.max.request.bytes`),
//! [`dispatch`] decodes and routes to [`handlers`] and encodes responses as chunked frames
//! ([`response_buf`]: fetched records are never copied into a response buffer), which act on the
//! [`broker`] state (topics of [`partition`]s over `strata_core::log::PartitionLog`, metadata in
//! [`metadata_store`], producer ids from [`producer_ids`]), all through [`fs_storage`] — the only
//! module touching `std::fs` — and [`clock`] — the only one reading the wall clock. [`config`], [`cluster_config`] and [`topic_config`] hold the settings
//! tables. In a cluster, [`controller`] runs the controller quorum and [`replication`] the broker's
//! side (membership, roles, follower fetching, ISR changes); [`sync`] has the deterministic
//! watch channel every waiter uses.

pub mod broker;
pub mod cleaner;
pub mod clock;
pub mod cluster_config;
pub mod config;
pub mod connection;
pub mod controller;
pub mod dispatch;
pub mod fetch_session;
pub mod fetch_waiters;
pub mod framing;
pub mod fs_storage;
pub mod group;
pub mod handled;
pub mod handlers;
pub mod memory_pool;
pub mod metadata_store;
pub mod partition;
pub mod producer_ids;
pub mod replication;
pub mod response_buf;
pub mod server;
pub mod setting;
pub mod sync;
pub mod topic;
pub mod topic_config;

pub use config::Config;
pub use server::{Server, run};
