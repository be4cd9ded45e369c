//! SyncGroup, Heartbeat, LeaveGroup and the timers that remove members (Kafka's
//! `GroupMetadataManager.classicGroupSync`, `classicGroupHeartbeat`, `classicGroupLeave`,
//! `expireClassicGroupMemberHeartbeat`, `expirePendingSync`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::api::{
    Heartbeat, LeaveGroup, LeaveGroupResponse, RequestId, Response, SyncGroup, SyncGroupResponse,
    UNKNOWN_MEMBER_ID,
};
use super::join::{
    Cx, join_error, maybe_complete_after_removal, maybe_prepare_rebalance_or_complete_join,
    on_join_deadline, prepare_rebalance, reset_and_propagate_assignment_error, validate_member,
};
use super::member::{Group, GroupState, millis};
use super::records::GroupRecord;
use super::{GroupCoordinator, Now, Out, Waiter};
use crate::error::ErrorCode;

pub(super) fn sync_error(error: ErrorCode) -> Response {
    Response::SyncGroup(SyncGroupResponse {
        error_code: error,
        ..SyncGroupResponse::default()
    })
}

fn sync_reply(group: &Group, assignment: Bytes) -> Response {
    Response::SyncGroup(SyncGroupResponse {
        error_code: ErrorCode::NONE,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        assignment,
    })
}

impl GroupCoordinator {
    pub(super) fn handle_sync(&mut self, now: Now, id: RequestId, r: SyncGroup, out: &mut Out) {
        let config = self.config.clone();
        let latest = self.latest.groups.get(&r.group_id).cloned();
        let Some(group) = self.groups.get_mut(&r.group_id) else {
            out.reply(id, sync_error(ErrorCode::UNKNOWN_MEMBER_ID));
            return;
        };
        if let Err(error) = validate_sync(group, &r) {
            out.reply(id, sync_error(error));
            return;
        }
        group.pending_sync.remove(&r.member_id);
        if group.pending_sync.is_empty() {
            group.sync_deadline = None;
        }
        let mut cx = Cx {
            config: &config,
            now,
            out,
        };
        match group.state {
            GroupState::PreparingRebalance => {
                cx.out
                    .reply(id, sync_error(ErrorCode::REBALANCE_IN_PROGRESS));
            }
            GroupState::Stable => {
                let member = &group.members[&r.member_id];
                let assignment = member.assignment.clone().expect("Stable: assigned");
                cx.out.reply(id, sync_reply(group, assignment));
            }
            GroupState::CompletingRebalance => {
                let member = group.members.get_mut(&r.member_id).expect("validated");
                if let Some(old) = member.awaiting_sync.replace(id) {
                    cx.out
                        .reply(old, sync_error(ErrorCode::REBALANCE_IN_PROGRESS));
                }
                let is_leader = group.leader.as_deref() == Some(r.member_id.as_str());
                if is_leader && group.assignment_in_flight.is_none() {
                    write_assignment(&mut cx, group, &r.assignments, latest.as_ref());
                }
            }
            GroupState::Empty | GroupState::Dead => unreachable!("validated: has the member"),
        }
    }

    /// The leader's assignment is committed: every parked sync gets its part, Stable.
    pub(super) fn complete_assignment(
        &mut self,
        now: Now,
        group_id: &str,
        generation: i32,
        out: &mut Out,
    ) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some((in_flight_generation, assignment)) = group.assignment_in_flight.take() else {
            return;
        };
        if !group.is(GroupState::CompletingRebalance)
            || group.generation != generation
            || in_flight_generation != generation
        {
            return;
        }
        for member in group.members.values_mut() {
            member.assignment = Some(assignment.get(&member.id).cloned().unwrap_or_default());
        }
        group.transition(GroupState::Stable, now.wall_ms);
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for member_id in ids {
            let reply = sync_reply(
                group,
                group.members[&member_id]
                    .assignment
                    .clone()
                    .unwrap_or_default(),
            );
            let member = group.members.get_mut(&member_id).expect("listed");
            if let Some(id) = member.awaiting_sync.take() {
                out.reply(id, reply);
                member.session_deadline = Some(
                    now.instant
                        .saturating_add_millis(millis(member.session_timeout_ms)),
                );
            }
        }
    }

    /// The leader's assignment could not be written: everyone gets the error, rebalance.
    pub(super) fn fail_assignment(
        &mut self,
        now: Now,
        group_id: &str,
        generation: i32,
        error: ErrorCode,
        out: &mut Out,
    ) {
        let config = self.config.clone();
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if !group.is(GroupState::CompletingRebalance) || group.generation != generation {
            return;
        }
        group.assignment_in_flight = None;
        let mut cx = Cx {
            config: &config,
            now,
            out,
        };
        reset_and_propagate_assignment_error(&mut cx, group, error);
        maybe_prepare_rebalance_or_complete_join(&mut cx, group);
    }

    pub(super) fn handle_heartbeat(&mut self, now: Now, r: &Heartbeat) -> ErrorCode {
        let Some(group) = self.groups.get_mut(&r.group_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        if let Err(error) = validate_member(group, &r.member_id, r.group_instance_id.as_deref()) {
            return error;
        }
        if r.generation_id != group.generation {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        let member = group.members.get_mut(&r.member_id).expect("validated");
        member.session_deadline = Some(
            now.instant
                .saturating_add_millis(millis(member.session_timeout_ms)),
        );
        if group.is(GroupState::PreparingRebalance) {
            ErrorCode::REBALANCE_IN_PROGRESS
        } else {
            ErrorCode::NONE
        }
    }

    /// LeaveGroup (v3+ batched, KIP-345): static members by instance id, dynamic by member id.
    pub(super) fn handle_leave(&mut self, now: Now, id: RequestId, r: &LeaveGroup, out: &mut Out) {
        let config = self.config.clone();
        let Some(group) = self.groups.get_mut(&r.group_id) else {
            let response = LeaveGroupResponse {
                error_code: ErrorCode::UNKNOWN_MEMBER_ID,
                members: Vec::new(),
            };
            out.reply(id, Response::LeaveGroup(response));
            return;
        };
        let mut cx = Cx {
            config: &config,
            now,
            out,
        };
        let mut results = Vec::with_capacity(r.members.len());
        for leaving in &r.members {
            let error = leave_one(
                &mut cx,
                group,
                &leaving.member_id,
                leaving.group_instance_id.as_deref(),
            );
            results.push((
                leaving.member_id.clone(),
                leaving.group_instance_id.clone(),
                error,
            ));
        }
        let response = LeaveGroupResponse {
            error_code: ErrorCode::NONE,
            members: results,
        };
        cx.out.reply(id, Response::LeaveGroup(response));
    }

    /// Session, pending-member, join-phase and sync-phase timers due at `now`.
    pub(super) fn expire_timers(&mut self, now: Now, out: &mut Out) {
        let config = self.config.clone();
        let due: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.next_deadline().is_some_and(|d| d <= now.instant))
            .map(|g| g.id.clone())
            .collect();
        for group_id in due {
            let group = self.groups.get_mut(&group_id).expect("listed");
            let mut cx = Cx {
                config: &config,
                now,
                out,
            };
            expire_group_timers(&mut cx, group);
        }
    }
}

fn validate_sync(group: &Group, r: &SyncGroup) -> Result<(), ErrorCode> {
    if group.is(GroupState::Empty) {
        return Err(ErrorCode::UNKNOWN_MEMBER_ID);
    }
    validate_member(group, &r.member_id, r.group_instance_id.as_deref())?;
    if r.generation_id != group.generation {
        return Err(ErrorCode::ILLEGAL_GENERATION);
    }
    let inconsistent = |asked: &Option<String>, have: &Option<String>| {
        asked.as_ref().is_some_and(|a| have.as_ref() != Some(a))
    };
    if inconsistent(&r.protocol_type, &group.protocol_type)
        || inconsistent(&r.protocol_name, &group.protocol_name)
    {
        return Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    }
    Ok(())
}

/// The leader's SyncGroup: members it leaves out get empty bytes; the GroupMetadata record is
/// written and the syncs wait for its commit (Kafka: `setAndPropagateAssignment` in the append
/// callback). A record too large fails like Kafka's append would.
fn write_assignment(
    cx: &mut Cx<'_>,
    group: &mut Group,
    assignments: &[(String, Bytes)],
    latest: Option<&super::records::GroupMetadataValue>,
) {
    let mut assignment: BTreeMap<String, Bytes> = group
        .members
        .keys()
        .map(|id| (id.clone(), Bytes::new()))
        .collect();
    for (member_id, bytes) in assignments {
        if let Some(slot) = assignment.get_mut(member_id) {
            *slot = bytes.clone();
        }
    }
    let record = GroupRecord::GroupMetadata {
        group: group.id.clone(),
        value: Some(group.metadata_value(&assignment, latest)),
    };
    let too_large = assignment
        .values()
        .any(|a| a.len() > cx.config.max_member_metadata_bytes)
        || record.encoded_len() > cx.config.max_record_bytes;
    if too_large {
        reset_and_propagate_assignment_error(cx, group, ErrorCode::UNKNOWN_SERVER_ERROR);
        maybe_prepare_rebalance_or_complete_join(cx, group);
        return;
    }
    cx.out.records.push(record);
    cx.out.waiters.push(Waiter::Assignment {
        group: group.id.clone(),
        generation: group.generation,
    });
    group.assignment_in_flight = Some((group.generation, assignment));
}

fn leave_one(
    cx: &mut Cx<'_>,
    group: &mut Group,
    member_id: &str,
    instance: Option<&str>,
) -> ErrorCode {
    let target = match instance {
        Some(instance) => match group.static_members.get(instance) {
            None => return ErrorCode::UNKNOWN_MEMBER_ID,
            Some(existing) if member_id != UNKNOWN_MEMBER_ID && existing != member_id => {
                return ErrorCode::FENCED_INSTANCE_ID;
            }
            Some(existing) => existing.clone(),
        },
        None => {
            if group.pending_members.remove(member_id).is_some() {
                maybe_complete_after_removal(cx, group);
                return ErrorCode::NONE;
            }
            if !group.members.contains_key(member_id) {
                return ErrorCode::UNKNOWN_MEMBER_ID;
            }
            member_id.to_owned()
        }
    };
    remove_member_and_update_group(cx, group, &target);
    ErrorCode::NONE
}

/// `removeMemberAndUpdateClassicGroup`: its parked requests are answered, then the group
/// rebalances (or its join phase completes without it).
pub(super) fn remove_member_and_update_group(cx: &mut Cx<'_>, group: &mut Group, member_id: &str) {
    let Some(member) = group.remove(member_id) else {
        return;
    };
    if let Some(id) = member.awaiting_join {
        cx.out.reply(
            id,
            join_error(UNKNOWN_MEMBER_ID, ErrorCode::UNKNOWN_MEMBER_ID),
        );
    }
    if let Some(id) = member.awaiting_sync {
        cx.out.reply(id, sync_error(ErrorCode::UNKNOWN_MEMBER_ID));
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            maybe_prepare_rebalance_or_complete_join(cx, group)
        }
        GroupState::PreparingRebalance => maybe_complete_after_removal(cx, group),
        GroupState::Empty | GroupState::Dead => {}
    }
}

fn expire_group_timers(cx: &mut Cx<'_>, group: &mut Group) {
    let now = cx.now.instant;
    let expired_pending: Vec<String> = group
        .pending_members
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(id, _)| id.clone())
        .collect();
    for id in expired_pending {
        group.pending_members.remove(&id);
        maybe_complete_after_removal(cx, group);
    }
    let expired: Vec<String> = group
        .members
        .values()
        .filter(|m| m.session_deadline.is_some_and(|at| at <= now))
        .map(|m| m.id.clone())
        .collect();
    for id in expired {
        let Some(member) = group.members.get_mut(&id) else {
            continue;
        };
        member.session_deadline = None;
        if !member.has_satisfied_heartbeat() {
            remove_member_and_update_group(cx, group, &id);
        }
    }
    if group.sync_deadline.is_some_and(|at| at <= now) {
        group.sync_deadline = None;
        if matches!(
            group.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !group.pending_sync.is_empty()
        {
            let missing: Vec<String> = std::mem::take(&mut group.pending_sync)
                .into_iter()
                .collect();
            for id in missing {
                if let Some(member) = group.remove(&id)
                    && let Some(request) = member.awaiting_sync
                {
                    cx.out
                        .reply(request, sync_error(ErrorCode::UNKNOWN_MEMBER_ID));
                }
            }
            prepare_rebalance(cx, group);
        }
    }
    if group.join_deadline.is_some_and(|at| at <= now) {
        if group.is(GroupState::PreparingRebalance) {
            on_join_deadline(cx, group);
        } else {
            group.join_deadline = None;
        }
    }
}
