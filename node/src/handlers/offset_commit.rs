//! OffsetCommit v2–9, translated to the group coordinator's request and back.
//!
//! Only the broker knows which topics exist: a partition of an unknown topic (or past the
//! topic's partition count) gets UNKNOWN_TOPIC_OR_PARTITION here, as Kafka's `KafkaApis` answers
//! before the coordinator sees the request; the rest go to the coordinator, whose reply is parked
//! until the commit is below the high watermark. Answers keep the request's order. The v2–4
//! `retention_time_ms` is ignored, as Kafka 4 does (KIP-211: retention is the broker's).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::group::{self, CommitPartition, CommitTopic, Request, Response};

use super::{group_reply, partition_exists};
use crate::broker::Broker;
use crate::handled::Handled;

pub fn handle(broker: &Arc<Broker>, req: OffsetCommitRequest, version: i16) -> Handled {
    let group_id = req.group_id.0.to_string();
    // (topic, partition) -> error decided here.
    let mut early: BTreeMap<(String, i32), ErrorCode> = BTreeMap::new();
    let mut topics = Vec::new();
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
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::new();
        for p in t.partitions {
            if partition_exists(broker, &name, p.partition_index) {
                partitions.push(CommitPartition {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.map(|m| m.to_string()),
                });
            } else {
                early.insert(
                    (name.clone(), p.partition_index),
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                );
            }
        }
        if !partitions.is_empty() {
            topics.push(CommitTopic { name, partitions });
        }
    }
    let pending = if topics.is_empty() && !early.is_empty() {
        None
    } else {
        let request = Request::OffsetCommit(group::OffsetCommit {
            api_version: version,
            group_id: group_id.clone(),
            generation_id: req.generation_id_or_member_epoch,
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.map(|s| s.to_string()),
            topics,
        });
        Some(broker.groups.submit_group(broker, &group_id, request))
    };
    let respond = move |reply: Result<Response, ErrorCode>| {
        let mut decided = early;
        let mut whole = ErrorCode::NONE;
        match reply {
            Ok(Response::OffsetCommit(r)) => {
                for (topic, partitions) in r.topics {
                    for (partition, code) in partitions {
                        decided.entry((topic.clone(), partition)).or_insert(code);
                    }
                }
            }
            Ok(_) => whole = ErrorCode::UNKNOWN_SERVER_ERROR,
            Err(code) => whole = code,
        }
        let topics = order
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        let code = decided.get(&(name.clone(), p)).copied().unwrap_or(whole);
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(code.0)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(super::topic_name(&name))
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
    };
    match pending {
        Some(pending) => group_reply(pending, respond),
        None => Handled::Now(respond(Ok(Response::OffsetCommit(Default::default())))),
    }
}
