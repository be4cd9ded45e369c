//! One module per Kafka API (or group of admin APIs). Handlers take a decoded request and return
//! a response body; errors are Kafka error codes inside the response, never panics.

pub mod admin;
pub mod alter_configs;
pub mod delete_groups;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

use kafka_protocol::messages::{ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_core::ErrorCode;
use strata_core::group::Response;

use crate::broker::Broker;
use crate::group::{Pending, wait};
use crate::handled::Handled;

/// A `TopicName` from a `&str`.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A `StrBytes` from a `&str`.
pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Whether `topic` exists here with partition `partition` (group requests name partitions
/// only the broker can check).
pub fn partition_exists(broker: &Broker, topic: &str, partition: i32) -> bool {
    broker
        .topic(topic)
        .is_some_and(|t| usize::try_from(partition).is_ok_and(|i| i < t.partitions.len()))
}

/// A group request's reply, later: `respond` turns the coordinator's reply (or the error that
/// kept it from one: NOT_COORDINATOR) into the response body.
pub fn group_reply(
    pending: Pending,
    respond: impl FnOnce(Result<Response, ErrorCode>) -> ResponseKind + Send + 'static,
) -> Handled {
    Handled::Later(Box::pin(async move { respond(wait(pending).await) }))
}
