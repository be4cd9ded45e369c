//! OffsetForLeaderEpoch (KIP-101/279/320): the end offset of a leader epoch in this leader's
//! log — the first offset of the next larger epoch, or the log end for the latest one — from
//! the log's leader-epoch cache. Followers use it to truncate a divergent suffix; consumers to
//! detect truncation after a leader change. Served by the leader only.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use strata_core::ErrorCode;
use strata_core::types::LeaderEpoch;

use super::fetch::check_leader_epoch;
use crate::broker::Broker;

fn error(partition: i32, code: ErrorCode) -> EpochEndOffset {
    EpochEndOffset::default()
        .with_partition(partition)
        .with_error_code(code.0)
        .with_leader_epoch(-1)
        .with_end_offset(-1)
}

pub fn handle(
    broker: &Arc<Broker>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|rp| {
                    let Some(p) = topic.as_ref().and_then(|tp| {
                        usize::try_from(rp.partition)
                            .ok()
                            .and_then(|i| tp.partitions.get(i).cloned())
                    }) else {
                        return error(rp.partition, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let ours = p.role().leader_epoch();
                    if let Err(code) = check_leader_epoch(ours, rp.current_leader_epoch) {
                        return error(rp.partition, code);
                    }
                    let guard = p.log();
                    let Some(log) = guard.as_ref() else {
                        return error(rp.partition, ErrorCode::NOT_LEADER_OR_FOLLOWER);
                    };
                    let end = log.end_offset_for_epoch(LeaderEpoch(rp.leader_epoch));
                    EpochEndOffset::default()
                        .with_partition(rp.partition)
                        .with_leader_epoch(end.leader_epoch.0)
                        .with_end_offset(end.end_offset.0)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
