//! OffsetCommit, OffsetFetch and OffsetDelete (Kafka's `OffsetMetadataManager`,
//! `ClassicGroup.validateOffsetCommit`, `validateOffsetDelete`).
//!
//! Kafka checks neither partition ownership nor the offset value (backward commits are legal);
//! topic and partition existence is checked by the node before the request gets here.

use std::collections::BTreeSet;

use super::api::{
    FetchedGroup, FetchedPartition, OffsetCommit, OffsetCommitResponse, OffsetDelete,
    OffsetDeleteResponse, OffsetFetch, OffsetFetchResponse, RequestId, Response,
};
use super::join::validate_member;
use super::member::{Group, GroupState};
use super::records::{GroupRecord, OffsetCommitKey, OffsetCommitValue};
use super::{GroupCoordinator, Now, Out, Waiter, valid_group_id};
use crate::error::ErrorCode;

/// OffsetCommit v9+ answers GROUP_ID_NOT_FOUND for a generation-aware commit to no group.
const FIRST_VERSION_WITH_GROUP_ID_NOT_FOUND: i16 = 9;

/// `ClassicGroup.validateOffsetCommit` (non-transactional), on an existing group.
fn validate_commit(group: &Group, r: &OffsetCommit) -> Result<(), ErrorCode> {
    if r.generation_id < 0 && group.is(GroupState::Empty) {
        // Admin tools and assign()-mode consumers commit with generation -1 to an empty group.
        return Ok(());
    }
    if r.generation_id >= 0 || !r.member_id.is_empty() || r.group_instance_id.is_some() {
        validate_member(group, &r.member_id, r.group_instance_id.as_deref())?;
        if r.generation_id != group.generation {
            return Err(ErrorCode::ILLEGAL_GENERATION);
        }
    } else if !group.is(GroupState::Empty) {
        return Err(ErrorCode::UNKNOWN_MEMBER_ID);
    }
    if group.is(GroupState::CompletingRebalance) {
        return Err(ErrorCode::REBALANCE_IN_PROGRESS);
    }
    Ok(())
}

impl GroupCoordinator {
    pub(super) fn handle_offset_commit(
        &mut self,
        now: Now,
        id: RequestId,
        r: OffsetCommit,
        out: &mut Out,
    ) {
        let group_error = if !valid_group_id(&r.group_id, true) {
            Err(ErrorCode::INVALID_GROUP_ID)
        } else {
            match self.groups.get(&r.group_id) {
                Some(group) => validate_commit(group, &r),
                None if r.generation_id < 0 => {
                    // A standalone ("simple") group: it exists through its offsets.
                    self.groups
                        .insert(r.group_id.clone(), Group::new(&r.group_id));
                    Ok(())
                }
                None if r.api_version >= FIRST_VERSION_WITH_GROUP_ID_NOT_FOUND => {
                    Err(ErrorCode::GROUP_ID_NOT_FOUND)
                }
                None => Err(ErrorCode::ILLEGAL_GENERATION),
            }
        };
        // `offset.metadata.max.bytes`, and never more than the record's int16-length string
        // holds (the node takes any int32 for the setting).
        let max_metadata = self.config.offset_metadata_max_bytes.min(i16::MAX as usize);
        let mut response = OffsetCommitResponse::default();
        let mut records = Vec::new();
        for topic in &r.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let metadata = p.metadata.clone().unwrap_or_default();
                let error = match group_error {
                    Err(error) => error,
                    Ok(()) if metadata.len() > max_metadata => ErrorCode::OFFSET_METADATA_TOO_LARGE,
                    Ok(()) if topic.name.len() > i16::MAX as usize => ErrorCode::INVALID_REQUEST,
                    Ok(()) => {
                        records.push(GroupRecord::OffsetCommit {
                            key: OffsetCommitKey {
                                group: r.group_id.clone(),
                                topic: topic.name.clone(),
                                partition: p.partition,
                            },
                            value: Some(OffsetCommitValue {
                                offset: p.offset,
                                leader_epoch: p.leader_epoch,
                                metadata,
                                commit_timestamp: now.wall_ms,
                                expire_timestamp: -1,
                            }),
                        });
                        ErrorCode::NONE
                    }
                };
                partitions.push((p.partition, error));
            }
            response.topics.push((topic.name.clone(), partitions));
        }
        let response = Response::OffsetCommit(response);
        if records.is_empty() {
            out.reply(id, response);
        } else {
            out.records.extend(records);
            out.waiters.push(Waiter::Reply(id, response));
        }
    }

    /// Reads committed offsets only (below the high watermark). With `require_stable`
    /// (KIP-447), a partition with a commit still in flight answers UNSTABLE_OFFSET_COMMIT and
    /// the client retries.
    pub(super) fn handle_offset_fetch(&self, r: &OffsetFetch) -> OffsetFetchResponse {
        let mut response = OffsetFetchResponse::default();
        for g in &r.groups {
            if !valid_group_id(&g.group_id, true) {
                response.groups.push(FetchedGroup {
                    group_id: g.group_id.clone(),
                    error_code: ErrorCode::INVALID_GROUP_ID,
                    topics: Vec::new(),
                });
                continue;
            }
            let committed = self.committed.offsets.get(&g.group_id);
            let wanted: Vec<(String, Vec<i32>)> = match &g.topics {
                Some(topics) => topics.clone(),
                None => {
                    let mut by_topic: Vec<(String, Vec<i32>)> = Vec::new();
                    for (topic, partition) in committed.into_iter().flat_map(|o| o.keys()) {
                        match by_topic.last_mut() {
                            Some((t, ps)) if t == topic => ps.push(*partition),
                            _ => by_topic.push((topic.clone(), vec![*partition])),
                        }
                    }
                    by_topic
                }
            };
            let unstable = if r.require_stable {
                self.pending_commits(&g.group_id)
            } else {
                BTreeSet::new()
            };
            let topics = wanted
                .into_iter()
                .map(|(topic, partitions)| {
                    let fetched = partitions
                        .into_iter()
                        .map(|partition| {
                            if unstable.contains(&(topic.as_str(), partition)) {
                                return fetched_partition(
                                    partition,
                                    None,
                                    ErrorCode::UNSTABLE_OFFSET_COMMIT,
                                );
                            }
                            let value = self.committed.offset(&g.group_id, &topic, partition);
                            fetched_partition(partition, value, ErrorCode::NONE)
                        })
                        .collect();
                    (topic, fetched)
                })
                .collect();
            response.groups.push(FetchedGroup {
                group_id: g.group_id.clone(),
                error_code: ErrorCode::NONE,
                topics,
            });
        }
        response
    }

    /// (topic, partition) of the group with a commit replayed but not yet committed.
    fn pending_commits(&self, group_id: &str) -> BTreeSet<(&str, i32)> {
        self.uncommitted
            .iter()
            .flat_map(|(_, records)| records)
            .filter_map(|record| match record {
                GroupRecord::OffsetCommit { key, .. } if key.group == group_id => {
                    Some((key.topic.as_str(), key.partition))
                }
                _ => None,
            })
            .collect()
    }

    /// OffsetDelete (KIP-496): refused for topics the group's consumers subscribe to.
    pub(super) fn handle_offset_delete(&mut self, id: RequestId, r: &OffsetDelete, out: &mut Out) {
        let top_error = match self.groups.get(&r.group_id) {
            _ if !valid_group_id(&r.group_id, false) => Some(ErrorCode::INVALID_GROUP_ID),
            None => Some(ErrorCode::GROUP_ID_NOT_FOUND),
            Some(group)
                if !group.is(GroupState::Empty)
                    && group.protocol_type.as_deref() != Some("consumer") =>
            {
                Some(ErrorCode::NON_EMPTY_GROUP)
            }
            Some(_) => None,
        };
        if let Some(error) = top_error {
            let response = OffsetDeleteResponse {
                error_code: error,
                topics: Vec::new(),
            };
            out.reply(id, Response::OffsetDelete(response));
            return;
        }
        let group = &self.groups[&r.group_id];
        let subscribed = subscribed_topics(group);
        let mut response = OffsetDeleteResponse::default();
        let mut records = Vec::new();
        for (topic, partitions) in &r.topics {
            let is_subscribed = subscribed.as_ref().is_none_or(|s| s.contains(topic));
            let mut results = Vec::with_capacity(partitions.len());
            for &partition in partitions {
                if is_subscribed {
                    results.push((partition, ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC));
                    continue;
                }
                if self.latest.offset(&r.group_id, topic, partition).is_some() {
                    records.push(GroupRecord::OffsetCommit {
                        key: OffsetCommitKey {
                            group: r.group_id.clone(),
                            topic: topic.clone(),
                            partition,
                        },
                        value: None,
                    });
                }
                results.push((partition, ErrorCode::NONE));
            }
            response.topics.push((topic.clone(), results));
        }
        let response = Response::OffsetDelete(response);
        if records.is_empty() {
            out.reply(id, response);
        } else {
            out.records.extend(records);
            out.waiters.push(Waiter::Reply(id, response));
        }
    }
}

fn fetched_partition(
    partition: i32,
    value: Option<&OffsetCommitValue>,
    error: ErrorCode,
) -> FetchedPartition {
    FetchedPartition {
        partition,
        offset: value.map_or(-1, |v| v.offset),
        leader_epoch: value.map_or(-1, |v| v.leader_epoch),
        metadata: value.map(|v| v.metadata.clone()).unwrap_or_default(),
        error_code: error,
    }
}

/// The topics the group's consumers subscribe to (`ClassicGroup.computeSubscribedTopics`):
/// empty for an Empty group; `None` (unknown: treat every topic as subscribed) when the group
/// is not a "consumer" group, has no selected protocol, or a subscription does not parse.
pub(super) fn subscribed_topics(group: &Group) -> Option<BTreeSet<String>> {
    if group.members.is_empty() {
        return Some(BTreeSet::new());
    }
    if group.protocol_type.as_deref() != Some("consumer") {
        return None;
    }
    let protocol = group.protocol_name.as_deref()?;
    let mut topics = BTreeSet::new();
    for member in group.members.values() {
        topics.extend(parse_subscription_topics(member.metadata(protocol)?)?);
    }
    Some(topics)
}

/// The topics of a `ConsumerProtocolSubscription` (every version 0..=3 starts with
/// `version:int16 topics:[]string`, non-flexible). `None` if it does not parse.
pub(super) fn parse_subscription_topics(bytes: &[u8]) -> Option<Vec<String>> {
    let mut rest = bytes.get(2..)?;
    let count = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        let len = usize::try_from(i16::from_be_bytes(rest.get(..2)?.try_into().ok()?)).ok()?;
        let name = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
        topics.push(name.to_owned());
        rest = &rest[2 + len..];
    }
    Some(topics)
}
