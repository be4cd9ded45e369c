//! Replica-side building blocks of replication (design §3), sans-IO like the rest of the crate:
//!
//! - [`truncation`]: where a follower truncates its log after a leader change, from the leader's
//!   OffsetForLeaderEpoch answer and its own leader epoch cache (KIP-101, KIP-279).
//! - [`isr`] and [`follower`]: the leader's view of a partition's replicas — each follower's
//!   log end offset and last caught-up time, the committed and pending ISR, the high watermark,
//!   and when to propose an ISR change to the controller (Kafka's `Partition` / `Replica` state,
//!   KIP-497 AlterPartition semantics).
//!
//! - [`partition`]: one partition's replica state as a whole — role, durable end, high
//!   watermark, admission of appends, and the AlterPartition cycle — built on the above; the
//!   node wraps it in a mutex and publishes it to waiters.
//!
//! The leader epoch cache itself lives with the log (`crate::log::leader_epoch_cache`), since it
//! is persisted and truncated together with it.
//!
//! Nothing here reads a clock or does IO: times arrive as [`crate::types::Instant`]s, and
//! proposals are returned to the driver, which sends them and reports the outcome back
//! (`set_pending`, then `on_isr_committed` or `on_isr_rejected`).

pub mod follower;
pub mod isr;
pub mod partition;
pub mod truncation;

pub use follower::FollowerState;
pub use isr::{IsrState, PendingIsrChange};
pub use partition::{
    AlterPartitionOutcome, AlterStep, FollowerFetch, IsrProposal, LeaderState, PartitionReplica,
    Role,
};
pub use truncation::{OffsetTruncationState, offset_truncation_state};
