//! ListGroups, DescribeGroups, DeleteGroups, and the error-shaped replies of every request.

use super::api::{
    DeleteGroups, DescribeGroups, DescribedGroup, DescribedMember, FetchedGroup, JoinGroupResponse,
    LeaveGroupResponse, ListGroups, ListGroupsResponse, ListedGroup, OffsetCommitResponse,
    OffsetDeleteResponse, OffsetFetchResponse, Request, RequestId, Response, SyncGroupResponse,
};
use super::member::GroupState;
use super::records::{GroupRecord, OffsetCommitKey};
use super::{GroupCoordinator, Out, Waiter, valid_group_id};
use crate::error::ErrorCode;

impl GroupCoordinator {
    /// ListGroups (KIP-518 state filter, case-insensitive).
    pub(super) fn list_groups(&self, r: &ListGroups) -> ListGroupsResponse {
        let groups = self
            .groups
            .values()
            .filter(|g| {
                r.states_filter.is_empty()
                    || r.states_filter
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                group_state: g.state.name().to_owned(),
            })
            .collect();
        ListGroupsResponse {
            error_code: ErrorCode::NONE,
            groups,
        }
    }

    /// DescribeGroups: an unknown group is Dead without error (Kafka); member metadata and
    /// assignments only in Stable.
    pub(super) fn describe_groups(&self, r: &DescribeGroups) -> Vec<DescribedGroup> {
        r.groups
            .iter()
            .map(|group_id| {
                let mut described = DescribedGroup {
                    group_id: group_id.clone(),
                    error_code: ErrorCode::NONE,
                    group_state: GroupState::Dead.name().to_owned(),
                    protocol_type: String::new(),
                    protocol_data: String::new(),
                    members: Vec::new(),
                };
                if !valid_group_id(group_id, false) {
                    described.error_code = ErrorCode::INVALID_GROUP_ID;
                    return described;
                }
                let Some(group) = self.groups.get(group_id) else {
                    return described;
                };
                let stable = group.is(GroupState::Stable);
                let protocol = group.protocol_name.clone().unwrap_or_default();
                described.group_state = group.state.name().to_owned();
                described.protocol_type = group.protocol_type.clone().unwrap_or_default();
                if stable {
                    described.protocol_data = protocol.clone();
                }
                described.members = group
                    .members
                    .values()
                    .map(|m| DescribedMember {
                        member_id: m.id.clone(),
                        group_instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        member_metadata: if stable {
                            m.metadata(&protocol).cloned().unwrap_or_default()
                        } else {
                            Default::default()
                        },
                        member_assignment: if stable {
                            m.assignment.clone().unwrap_or_default()
                        } else {
                            Default::default()
                        },
                    })
                    .collect();
                described
            })
            .collect()
    }

    /// DeleteGroups: only Empty groups; every offset and the metadata get tombstones, and the
    /// reply waits for them to be committed.
    pub(super) fn handle_delete_groups(&mut self, id: RequestId, r: &DeleteGroups, out: &mut Out) {
        let mut results = Vec::with_capacity(r.groups.len());
        let mut records = Vec::new();
        for group_id in &r.groups {
            let error = match self.groups.get(group_id) {
                _ if !valid_group_id(group_id, false) => ErrorCode::INVALID_GROUP_ID,
                None => ErrorCode::GROUP_ID_NOT_FOUND,
                Some(g) if !g.is(GroupState::Empty) || !g.pending_members.is_empty() => {
                    ErrorCode::NON_EMPTY_GROUP
                }
                Some(_) => {
                    self.groups.remove(group_id);
                    records.extend(self.tombstones(group_id));
                    ErrorCode::NONE
                }
            };
            results.push((group_id.clone(), error));
        }
        let response = Response::DeleteGroups(results);
        if records.is_empty() {
            out.reply(id, response);
        } else {
            out.records.extend(records);
            out.waiters.push(Waiter::Reply(id, response));
        }
    }

    /// Tombstones for every offset of the group, then its metadata (Kafka's
    /// `createGroupTombstoneRecords` order).
    pub(super) fn tombstones(&self, group_id: &str) -> Vec<GroupRecord> {
        let mut records: Vec<GroupRecord> = self
            .latest
            .offsets
            .get(group_id)
            .into_iter()
            .flat_map(|offsets| offsets.keys())
            .map(|(topic, partition)| GroupRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: group_id.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                },
                value: None,
            })
            .collect();
        records.push(GroupRecord::GroupMetadata {
            group: group_id.to_owned(),
            value: None,
        });
        records
    }
}

/// The reply to `request` carrying only `error` (loading, not coordinator).
pub(super) fn error_response(request: &Request, error: ErrorCode) -> Response {
    let response = match request {
        Request::JoinGroup(r) => {
            return super::join::join_error(&r.member_id, error);
        }
        Request::SyncGroup(_) => Response::SyncGroup(SyncGroupResponse::default()),
        Request::Heartbeat(_) => Response::Heartbeat(ErrorCode::NONE),
        Request::LeaveGroup(_) => Response::LeaveGroup(LeaveGroupResponse::default()),
        Request::OffsetCommit(r) => Response::OffsetCommit(OffsetCommitResponse {
            topics: r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t.partitions.iter().map(|p| (p.partition, ErrorCode::NONE));
                    (t.name.clone(), partitions.collect())
                })
                .collect(),
        }),
        Request::OffsetFetch(r) => Response::OffsetFetch(OffsetFetchResponse {
            groups: r
                .groups
                .iter()
                .map(|g| FetchedGroup {
                    group_id: g.group_id.clone(),
                    error_code: ErrorCode::NONE,
                    topics: Vec::new(),
                })
                .collect(),
        }),
        Request::ListGroups(_) => Response::ListGroups(ListGroupsResponse::default()),
        Request::DescribeGroups(r) => Response::DescribeGroups(
            r.groups
                .iter()
                .map(|g| DescribedGroup {
                    group_id: g.clone(),
                    error_code: ErrorCode::NONE,
                    group_state: String::new(),
                    protocol_type: String::new(),
                    protocol_data: String::new(),
                    members: Vec::new(),
                })
                .collect(),
        ),
        Request::DeleteGroups(r) => Response::DeleteGroups(
            r.groups
                .iter()
                .map(|g| (g.clone(), ErrorCode::NONE))
                .collect(),
        ),
        Request::OffsetDelete(_) => Response::OffsetDelete(OffsetDeleteResponse::default()),
    };
    with_error(response, error)
}

/// `response` with every error code set to `error` (a failed or abandoned write).
pub(super) fn with_error(response: Response, error: ErrorCode) -> Response {
    match response {
        Response::JoinGroup(r) => Response::JoinGroup(JoinGroupResponse {
            error_code: error,
            generation_id: -1,
            member_id: r.member_id,
            ..JoinGroupResponse::default()
        }),
        Response::SyncGroup(_) => super::sync::sync_error(error),
        Response::Heartbeat(_) => Response::Heartbeat(error),
        Response::LeaveGroup(r) => Response::LeaveGroup(LeaveGroupResponse {
            error_code: error,
            members: r.members,
        }),
        Response::OffsetCommit(mut r) => {
            for (_, partitions) in &mut r.topics {
                for (_, e) in partitions.iter_mut().filter(|(_, e)| e.is_ok()) {
                    *e = error;
                }
            }
            Response::OffsetCommit(r)
        }
        Response::OffsetFetch(mut r) => {
            for g in &mut r.groups {
                g.error_code = error;
                g.topics.clear();
            }
            Response::OffsetFetch(r)
        }
        Response::ListGroups(_) => Response::ListGroups(ListGroupsResponse {
            error_code: error,
            groups: Vec::new(),
        }),
        Response::DescribeGroups(mut groups) => {
            for g in &mut groups {
                g.error_code = error;
            }
            Response::DescribeGroups(groups)
        }
        Response::DeleteGroups(mut groups) => {
            for (_, e) in groups.iter_mut().filter(|(_, e)| e.is_ok()) {
                *e = error;
            }
            Response::DeleteGroups(groups)
        }
        Response::OffsetDelete(_) => Response::OffsetDelete(OffsetDeleteResponse {
            error_code: error,
            topics: Vec::new(),
        }),
    }
}
