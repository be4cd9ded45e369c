//! OffsetFetch v1–9, translated to the group coordinator's request and back.
//!
//! v1–7 name one group (answers at the top level; v1 has no top-level error, so a group error
//! is put on each requested partition, as Kafka does); v8+ a batch of groups, split by
//! coordinator partition and answered in request order. A null topic list (v2+) means every
//! committed offset of the group. `require_stable` (v7+, KIP-447) gets UNSTABLE_OFFSET_COMMIT
//! for partitions with a commit not yet below the high watermark.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::group::{
    FetchGroup, FetchedGroup, FetchedPartition, OffsetFetch, Request, Response,
};

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::group::gather;
use crate::handled::Handled;

/// The response topics of a group's fetched offsets: the v1–7 and v8+ responses have the same
/// fields in two sets of generated types.
macro_rules! topics {
    ($topics:expr, $topic:ident, $partition:ident) => {
        $topics
            .into_iter()
            .map(|(name, partitions)| {
                $topic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|p: FetchedPartition| {
                                $partition::default()
                                    .with_partition_index(p.partition)
                                    .with_committed_offset(p.offset)
                                    .with_committed_leader_epoch(p.leader_epoch)
                                    .with_metadata(Some(str_bytes(&p.metadata)))
                                    .with_error_code(p.error_code.0)
                            })
                            .collect(),
                    )
            })
            .collect()
    };
}

pub fn handle(broker: &Arc<Broker>, req: OffsetFetchRequest, version: i16) -> Handled {
    let groups: Vec<FetchGroup> = if version >= 8 {
        req.groups
            .into_iter()
            .map(|g| FetchGroup {
                group_id: g.group_id.0.to_string(),
                topics: g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                }),
            })
            .collect()
    } else {
        vec![FetchGroup {
            group_id: req.group_id.0.to_string(),
            topics: req.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            }),
        }]
    };
    let require_stable = version >= 7 && req.require_stable;
    let requested = groups.clone();
    let submitted = broker.groups.submit_by_group(
        broker,
        groups
            .into_iter()
            .map(|g| (g.group_id.clone(), g))
            .collect(),
        |groups| {
            Request::OffsetFetch(OffsetFetch {
                groups,
                require_stable,
            })
        },
    );
    Handled::Later(Box::pin(async move {
        let fetched = gather(
            requested.len(),
            submitted,
            |r| match r {
                Response::OffsetFetch(r) => Some(r.groups),
                _ => None,
            },
            |i, code| FetchedGroup {
                group_id: requested[i].group_id.clone(),
                error_code: code,
                topics: Vec::new(),
            },
        )
        .await;
        if version >= 8 {
            return ResponseKind::OffsetFetch(
                OffsetFetchResponse::default()
                    .with_groups(fetched.into_iter().map(group).collect()),
            );
        }
        let Some(mut g) = fetched.into_iter().next() else {
            return ResponseKind::OffsetFetch(
                OffsetFetchResponse::default().with_error_code(ErrorCode::UNKNOWN_SERVER_ERROR.0),
            );
        };
        if version < 2 && g.error_code != ErrorCode::NONE {
            g.topics = requested[0]
                .topics
                .iter()
                .flatten()
                .map(|(t, ps)| {
                    let partitions = ps
                        .iter()
                        .map(|&p| FetchedPartition {
                            partition: p,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                            error_code: g.error_code,
                        })
                        .collect();
                    (t.clone(), partitions)
                })
                .collect();
        }
        ResponseKind::OffsetFetch(
            OffsetFetchResponse::default()
                // v1 has no top-level error: it is on each partition (above).
                .with_error_code(if version >= 2 { g.error_code.0 } else { 0 })
                .with_topics(topics!(
                    g.topics,
                    OffsetFetchResponseTopic,
                    OffsetFetchResponsePartition
                )),
        )
    }))
}

/// One group of a v8+ response.
fn group(g: FetchedGroup) -> OffsetFetchResponseGroup {
    OffsetFetchResponseGroup::default()
        .with_group_id(GroupId(str_bytes(&g.group_id)))
        .with_error_code(g.error_code.0)
        .with_topics(topics!(
            g.topics,
            OffsetFetchResponseTopics,
            OffsetFetchResponsePartitions
        ))
}
