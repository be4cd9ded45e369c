//! OffsetDelete v0 (KIP-496): a group's committed offsets for some partitions. Partitions of
//! unknown topics get UNKNOWN_TOPIC_OR_PARTITION here (only the broker knows topics); the
//! coordinator refuses partitions a Stable group is subscribed to (GROUP_SUBSCRIBED_TO_TOPIC)
//! and parks the answer until the tombstones are committed.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::group::{OffsetDelete, Request, Response};

use super::{group_reply, partition_exists, topic_name};
use crate::broker::Broker;
use crate::handled::Handled;

pub fn handle(broker: &Arc<Broker>, req: OffsetDeleteRequest) -> Handled {
    let group_id = req.group_id.0.to_string();
    let order: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let known: Vec<(String, Vec<i32>)> = order
        .iter()
        .map(|(t, ps)| {
            let ps: Vec<i32> = ps
                .iter()
                .copied()
                .filter(|&p| partition_exists(broker, t, p))
                .collect();
            (t.clone(), ps)
        })
        .filter(|(_, ps)| !ps.is_empty())
        .collect();
    let request = Request::OffsetDelete(OffsetDelete {
        group_id: group_id.clone(),
        topics: known,
    });
    let pending = broker.groups.submit_group(broker, &group_id, request);
    group_reply(pending, move |reply| {
        let (error, decided) = match reply {
            Ok(Response::OffsetDelete(r)) => (r.error_code, r.topics),
            Ok(_) => (ErrorCode::UNKNOWN_SERVER_ERROR, Vec::new()),
            Err(code) => (code, Vec::new()),
        };
        let code_of = |t: &str, p: i32| {
            decided
                .iter()
                .filter(|(name, _)| name == t)
                .flat_map(|(_, ps)| ps.iter())
                .find(|(q, _)| *q == p)
                .map(|(_, c)| *c)
                .unwrap_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
        };
        let topics = if error == ErrorCode::NONE {
            order
                .into_iter()
                .map(|(name, ps)| {
                    let partitions = ps
                        .into_iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code_of(&name, p).0)
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(topic_name(&name))
                        .with_partitions(partitions)
                })
                .collect()
        } else {
            Vec::new()
        };
        ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default()
                .with_error_code(error.0)
                .with_topics(topics),
        )
    })
}
