//! Consumer groups on the client side (the classic protocol, as Kafka's consumer runs it).
//!
//! - [`member`]: one member's protocol steps (FindCoordinator, JoinGroup + SyncGroup,
//!   Heartbeat, OffsetCommit, OffsetFetch, DescribeGroups, LeaveGroup), each returning exactly
//!   what the coordinator answered.
//! - [`consumer`]: `subscribe()` / `poll()` / `commit()` with rebalance callbacks and static
//!   membership, on top of a member.
//! - [`assignor`]: the consumer protocol's bytes and the range assignor the leader runs.

pub mod assignor;
pub mod consumer;
pub mod member;

pub use consumer::{
    ConsumerRecord, GroupConsumer, GroupConsumerConfig, OffsetReset, RebalanceListener,
};
pub use member::{
    CommittedOffset, GroupDescription, GroupError, GroupMember, Joined, MemberConfig,
};
