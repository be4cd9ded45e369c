//! What the replies and records of `group_coordinator` must be: a reply reporting a write as
//! done only once its batch is committed (and holding what it reports), OffsetFetch exactly
//! from the committed records, a Stable group as its last GroupMetadata says, generations that
//! never go back in the log.

use std::collections::BTreeMap;

use strata_core::error::ErrorCode;
use strata_core::group::{
    DescribedGroup, FetchGroup, FetchedGroup, FetchedPartition, GroupImage, GroupRecord,
    OffsetFetch, OffsetFetchResponse, Request, RequestId, Response,
};
use strata_core::types::Offset;

use crate::group_model::Log;

/// The state of a request's own write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Pending,
    At(Offset),
    Failed,
}

/// Which call a reply came out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The `handle` of the request itself.
    Own(RequestId),
    Other,
}

/// A reply reporting a write as done comes only once that write is committed.
pub fn check_write_reply(
    log: &Log,
    write: Option<Write>,
    id: RequestId,
    request: &Request,
    response: &Response,
    via: Via,
) {
    let success = match response {
        Response::OffsetCommit(r) => r.topics.iter().flat_map(|(_, p)| p).any(|(_, e)| e.is_ok()),
        Response::DeleteGroups(r) => r.iter().any(|(_, e)| e.is_ok()),
        Response::OffsetDelete(r) => r.error_code.is_ok() && write.is_some(),
        Response::SyncGroup(r) => r.error_code.is_ok(),
        Response::JoinGroup(r) => r.error_code.is_ok(),
        _ => false,
    };
    if !success {
        return;
    }
    match write {
        Some(Write::Pending) => {
            panic!("{id:?} answered {response:?} before its write was appended")
        }
        Some(Write::Failed) => panic!("{id:?} answered {response:?} although its write failed"),
        Some(Write::At(last)) => {
            assert!(
                last.0 < log.high_watermark,
                "{id:?} answered {response:?} with its batch at {last} not below the high \
                 watermark {}",
                log.high_watermark
            );
            let batch = log.batch(last).expect("the request's batch is in the log");
            check_batch_holds(request, response, batch.records().collect());
        }
        None => assert!(
            !matches!(
                response,
                Response::OffsetCommit(_) | Response::DeleteGroups(_)
            ),
            "{id:?}: {response:?} reports a write it did not make"
        ),
    }
    if let (Request::SyncGroup(r), Response::SyncGroup(s)) = (request, response)
        && via != Via::Own(id)
    {
        // Parked: released by the commit of the leader's assignment for its generation.
        let found = log.committed().flat_map(|b| b.records()).any(|record| {
            matches!(record, GroupRecord::GroupMetadata { group, value: Some(v) }
                if *group == r.group_id
                    && v.generation == r.generation_id
                    && v.members.iter().any(|m| m.member_id == r.member_id && m.assignment == s.assignment))
        });
        assert!(
            found,
            "{id:?}: parked SyncGroup of {} generation {} succeeded without a committed \
             assignment giving it {:?}",
            r.member_id, r.generation_id, s.assignment
        );
    }
}

/// OffsetFetch, from the model: committed values, UNSTABLE_OFFSET_COMMIT for partitions
/// with a commit record above the high watermark when asked for stable offsets.
pub fn check_fetch(log: &Log, request: &OffsetFetch, response: &OffsetFetchResponse) {
    let committed = log.image(true);
    let pending: Vec<(String, String, i32)> = log
        .uncommitted()
        .flat_map(|b| b.records())
        .filter_map(|r| match r {
            GroupRecord::OffsetCommit { key, .. } => {
                Some((key.group.clone(), key.topic.clone(), key.partition))
            }
            GroupRecord::GroupMetadata { .. } => None,
        })
        .collect();
    let expected = OffsetFetchResponse {
        groups: request
            .groups
            .iter()
            .map(|g| expected_group(&committed, &pending, g, request.require_stable))
            .collect(),
    };
    assert_eq!(
        response, &expected,
        "OffsetFetch answers from the committed records"
    );
}

/// The written generations never go back (against the log), group by group.
pub fn check_generations(log: &Log, records: &[GroupRecord]) {
    let mut latest = log.generations();
    for record in records {
        if let GroupRecord::GroupMetadata { group, value } = record {
            match value {
                Some(v) => {
                    if let Some(before) = latest.get(group) {
                        // The one way back: the wrap from i32::MAX to 1 (core's
                        // `join::next_generation`), counted on from there.
                        let wrapped = *before == i32::MAX && v.generation >= 1;
                        assert!(
                            v.generation >= *before || wrapped,
                            "group {group}: generation {} written after {before}",
                            v.generation
                        );
                    }
                    latest.insert(group.clone(), v.generation);
                }
                None => {
                    latest.remove(group);
                }
            }
        }
    }
}

/// A Stable group is what its last GroupMetadata record says: entering Stable needs the
/// leader's assignment committed, and every change of a Stable group either rebalances (leaving
/// Stable) or is written (a static member's replacement, reverted when its append fails).
pub fn check_stable_groups(log: &Log, groups: &[DescribedGroup]) {
    let latest = log.image(false);
    for g in groups {
        if g.group_state != "Stable" {
            continue;
        }
        let record = latest
            .groups
            .get(&g.group_id)
            .unwrap_or_else(|| panic!("Stable group {} has no GroupMetadata", g.group_id));
        let described: Vec<_> = g
            .members
            .iter()
            .map(|m| {
                (
                    &m.member_id,
                    &m.group_instance_id,
                    &m.client_id,
                    &m.client_host,
                    &m.member_metadata,
                    &m.member_assignment,
                )
            })
            .collect();
        let written: Vec<_> = record
            .members
            .iter()
            .map(|m| {
                (
                    &m.member_id,
                    &m.group_instance_id,
                    &m.client_id,
                    &m.client_host,
                    &m.subscription,
                    &m.assignment,
                )
            })
            .collect();
        assert_eq!(
            described, written,
            "Stable group {} differs from its last GroupMetadata",
            g.group_id
        );
        assert_eq!(
            Some(&g.protocol_data),
            record.protocol.as_ref(),
            "Stable group {}: protocol",
            g.group_id
        );
        assert_eq!(
            g.protocol_type, record.protocol_type,
            "Stable group {}: protocol type",
            g.group_id
        );
    }
}

/// Whether the request's own success waits on the records its `handle` returned.
pub fn writes_for_itself(request: &Request, records: &[GroupRecord]) -> bool {
    if records.is_empty() {
        return false;
    }
    match request {
        Request::OffsetCommit(_)
        | Request::DeleteGroups(_)
        | Request::OffsetDelete(_)
        | Request::SyncGroup(_) => true,
        // A static member's rejoin in Stable writes the group with the new member id; a join
        // that creates the group writes it with no members, and waits on the join phase.
        Request::JoinGroup(r) => records.iter().any(|record| {
            matches!(record, GroupRecord::GroupMetadata { group, value: Some(v) }
                if *group == r.group_id && !v.members.is_empty())
        }),
        _ => false,
    }
}

/// The committed batch holds what a successful reply reports.
fn check_batch_holds(request: &Request, response: &Response, records: Vec<&GroupRecord>) {
    match (request, response) {
        (Request::OffsetCommit(r), Response::OffsetCommit(resp)) => {
            for ((topic, partitions), t) in resp.topics.iter().zip(&r.topics) {
                for ((partition, error), p) in partitions.iter().zip(&t.partitions) {
                    if !error.is_ok() {
                        continue;
                    }
                    let held = records.iter().any(|record| {
                        matches!(record, GroupRecord::OffsetCommit { key, value: Some(v) }
                            if key.group == r.group_id && key.topic == *topic
                                && key.partition == *partition && v.offset == p.offset
                                && v.leader_epoch == p.leader_epoch
                                && v.metadata == p.metadata.clone().unwrap_or_default())
                    });
                    assert!(
                        held,
                        "commit of {topic}-{partition} reported but not in its batch"
                    );
                }
            }
        }
        (Request::DeleteGroups(_), Response::DeleteGroups(resp)) => {
            for (group_id, error) in resp {
                if error.is_ok() {
                    let held = records.iter().any(|record| {
                        matches!(record, GroupRecord::GroupMetadata { group, value: None }
                            if group == group_id)
                    });
                    assert!(
                        held,
                        "deletion of {group_id} reported without its tombstone"
                    );
                }
            }
        }
        _ => {}
    }
}

fn expected_group(
    committed: &GroupImage,
    pending: &[(String, String, i32)],
    g: &FetchGroup,
    require_stable: bool,
) -> FetchedGroup {
    if g.group_id.len() > i16::MAX as usize {
        return FetchedGroup {
            group_id: g.group_id.clone(),
            error_code: ErrorCode::INVALID_GROUP_ID,
            topics: Vec::new(),
        };
    }
    let offsets = committed.offsets.get(&g.group_id);
    let wanted: Vec<(String, Vec<i32>)> = match &g.topics {
        Some(topics) => topics.clone(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in offsets.into_iter().flat_map(|o| o.keys()) {
                by_topic.entry(topic.clone()).or_default().push(*partition);
            }
            by_topic.into_iter().collect()
        }
    };
    let topics = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let fetched = partitions
                .into_iter()
                .map(|partition| {
                    let unstable = require_stable
                        && pending.iter().any(|(pg, pt, pp)| {
                            *pg == g.group_id && *pt == topic && *pp == partition
                        });
                    let value = offsets.and_then(|o| o.get(&(topic.clone(), partition)));
                    match value {
                        _ if unstable => FetchedPartition {
                            partition,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                            error_code: ErrorCode::UNSTABLE_OFFSET_COMMIT,
                        },
                        Some(v) => FetchedPartition {
                            partition,
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata.clone(),
                            error_code: ErrorCode::NONE,
                        },
                        None => FetchedPartition {
                            partition,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                            error_code: ErrorCode::NONE,
                        },
                    }
                })
                .collect();
            (topic, fetched)
        })
        .collect();
    FetchedGroup {
        group_id: g.group_id.clone(),
        error_code: ErrorCode::NONE,
        topics,
    }
}

pub fn same_kind(request: &Request, response: &Response) -> bool {
    matches!(
        (request, response),
        (Request::JoinGroup(_), Response::JoinGroup(_))
            | (Request::SyncGroup(_), Response::SyncGroup(_))
            | (Request::Heartbeat(_), Response::Heartbeat(_))
            | (Request::LeaveGroup(_), Response::LeaveGroup(_))
            | (Request::OffsetCommit(_), Response::OffsetCommit(_))
            | (Request::OffsetFetch(_), Response::OffsetFetch(_))
            | (Request::ListGroups(_), Response::ListGroups(_))
            | (Request::DescribeGroups(_), Response::DescribeGroups(_))
            | (Request::DeleteGroups(_), Response::DeleteGroups(_))
            | (Request::OffsetDelete(_), Response::OffsetDelete(_))
    )
}

/// Every error code a reply carries (top level and per entry).
pub fn error_codes(response: &Response) -> Vec<ErrorCode> {
    match response {
        Response::JoinGroup(r) => vec![r.error_code],
        Response::SyncGroup(r) => vec![r.error_code],
        Response::Heartbeat(e) => vec![*e],
        Response::LeaveGroup(r) => vec![r.error_code],
        Response::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|(_, p)| p)
            .map(|(_, e)| *e)
            .collect(),
        Response::OffsetFetch(r) => r.groups.iter().map(|g| g.error_code).collect(),
        Response::ListGroups(r) => vec![r.error_code],
        Response::DescribeGroups(r) => r.iter().map(|g| g.error_code).collect(),
        Response::DeleteGroups(r) => r.iter().map(|(_, e)| *e).collect(),
        Response::OffsetDelete(r) => vec![r.error_code],
    }
}
