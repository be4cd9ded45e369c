//! JoinGroup and the join phase (Kafka's `GroupMetadataManager.classicGroupJoin*`,
//! `prepareRebalance`, `completeClassicGroupJoin`; KIP-134 initial delay, KIP-394 member ids,
//! KIP-345 static members).

use std::collections::BTreeMap;

use super::api::{JoinGroup, JoinGroupResponse, RequestId, Response, UNKNOWN_MEMBER_ID};
use super::member::{Group, GroupState, InitialDelay, Member, millis};
use super::records::GroupRecord;
use super::sync::{remove_member_and_update_group, sync_error};
use super::{GroupCoordinator, Now, Out, Waiter, valid_group_id};
use crate::error::ErrorCode;

/// JoinGroup v4+ requires a member id from the coordinator (KIP-394).
const FIRST_VERSION_REQUIRING_MEMBER_ID: i16 = 4;
/// JoinGroup v9+ can tell a rejoining static leader to skip the assignment (KIP-814).
const FIRST_VERSION_SKIPPING_ASSIGNMENT: i16 = 9;

pub(super) fn join_error(member_id: &str, error: ErrorCode) -> Response {
    Response::JoinGroup(JoinGroupResponse {
        error_code: error,
        generation_id: -1,
        member_id: member_id.to_owned(),
        ..JoinGroupResponse::default()
    })
}

/// The successful join reply for `member_id` in the group's current generation.
fn join_reply(group: &Group, member_id: &str, with_members: bool) -> Response {
    Response::JoinGroup(JoinGroupResponse {
        error_code: ErrorCode::NONE,
        generation_id: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_owned(),
        members: if with_members {
            group.joined_members()
        } else {
            Vec::new()
        },
    })
}

impl GroupCoordinator {
    pub(super) fn handle_join(&mut self, now: Now, id: RequestId, r: JoinGroup, out: &mut Out) {
        if let Some(error) = self.validate_join(&r) {
            out.reply(id, join_error(&r.member_id, error));
            return;
        }
        let new_member = r.member_id == UNKNOWN_MEMBER_ID;
        if !new_member && !self.groups.contains_key(&r.group_id) {
            // Kafka: a member id for a group that does not exist.
            out.reply(id, join_error(&r.member_id, ErrorCode::UNKNOWN_MEMBER_ID));
            return;
        }
        let config = self.config.clone();
        let group_id = r.group_id.clone();
        self.group_or_create(now, &group_id, out);
        let member_id = if new_member {
            let prefix = r.group_instance_id.as_deref().unwrap_or(&r.client_id);
            Some(self.ids.member_id(prefix))
        } else {
            None
        };
        let latest = self.latest.groups.get(&group_id).cloned();
        let group = self.groups.get_mut(&group_id).expect("created above");
        let mut cx = Cx {
            config: &config,
            now,
            out,
        };
        match member_id {
            Some(member_id) => join_new_member(&mut cx, group, id, r, member_id, latest),
            None => join_existing_member(&mut cx, group, id, r),
        }
    }

    fn validate_join(&self, r: &JoinGroup) -> Option<ErrorCode> {
        let c = &self.config;
        if !valid_group_id(&r.group_id, false) {
            return Some(ErrorCode::INVALID_GROUP_ID);
        }
        if r.session_timeout_ms < c.min_session_timeout_ms
            || r.session_timeout_ms > c.max_session_timeout_ms
        {
            return Some(ErrorCode::INVALID_SESSION_TIMEOUT);
        }
        let metadata: usize = r
            .protocols
            .iter()
            .map(|p| p.metadata.len() + p.name.len())
            .sum();
        let too_long = |s: &str| s.len() > i16::MAX as usize;
        if metadata > c.max_member_metadata_bytes
            || r.rebalance_timeout_ms < 0
            || too_long(&r.client_id)
            || too_long(&r.client_host)
            || too_long(&r.protocol_type)
            || too_long(&r.member_id)
            || r.group_instance_id
                .as_deref()
                .is_some_and(|i| i.is_empty() || too_long(i))
            || r.protocols.iter().any(|p| too_long(&p.name))
        {
            return Some(ErrorCode::INVALID_REQUEST);
        }
        None
    }
}

/// What the group-level steps need besides the group.
pub(super) struct Cx<'a> {
    pub config: &'a super::GroupConfig,
    pub now: Now,
    pub out: &'a mut Out,
}

fn new_member(cx: &Cx<'_>, r: &JoinGroup, member_id: String, request: RequestId) -> Member {
    Member {
        id: member_id,
        instance_id: r.group_instance_id.clone(),
        client_id: r.client_id.clone(),
        client_host: r.client_host.clone(),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        session_timeout_ms: r.session_timeout_ms,
        protocol_type: r.protocol_type.clone(),
        protocols: r.protocols.clone(),
        assignment: None,
        awaiting_join: Some(request),
        awaiting_sync: None,
        is_new: true,
        // Kafka: new members time out on the new-member join timeout, not their session.
        session_deadline: Some(
            cx.now
                .instant
                .saturating_add_millis(millis(cx.config.new_member_join_timeout_ms)),
        ),
    }
}

fn join_new_member(
    cx: &mut Cx<'_>,
    group: &mut Group,
    id: RequestId,
    r: JoinGroup,
    member_id: String,
    latest: Option<super::records::GroupMetadataValue>,
) {
    if !group.supports_protocols(&r.protocol_type, &r.protocols) {
        cx.out.reply(
            id,
            join_error(UNKNOWN_MEMBER_ID, ErrorCode::INCONSISTENT_GROUP_PROTOCOL),
        );
        return;
    }
    if let Some(instance) = &r.group_instance_id
        && let Some(old_id) = group.static_members.get(instance).cloned()
    {
        if !accepts_joining_member(cx, group, &old_id) {
            cx.out.reply(
                id,
                join_error(UNKNOWN_MEMBER_ID, ErrorCode::GROUP_MAX_SIZE_REACHED),
            );
            return;
        }
        replace_static_member(cx, group, id, &r, &old_id, &member_id, latest);
        return;
    }
    let full = group.members.len() >= cx.config.max_size;
    if r.group_instance_id.is_none() && r.api_version >= FIRST_VERSION_REQUIRING_MEMBER_ID {
        // KIP-394: hand out an id and expect the member back with it within its session.
        if full || group.pending_members.len() >= cx.config.max_size {
            cx.out.reply(
                id,
                join_error(UNKNOWN_MEMBER_ID, ErrorCode::GROUP_MAX_SIZE_REACHED),
            );
            return;
        }
        let expiry = cx
            .now
            .instant
            .saturating_add_millis(millis(r.session_timeout_ms));
        group.pending_members.insert(member_id.clone(), expiry);
        cx.out
            .reply(id, join_error(&member_id, ErrorCode::MEMBER_ID_REQUIRED));
        return;
    }
    if full {
        cx.out.reply(
            id,
            join_error(UNKNOWN_MEMBER_ID, ErrorCode::GROUP_MAX_SIZE_REACHED),
        );
        return;
    }
    let member = new_member(cx, &r, member_id, id);
    add_member_then_rebalance_or_complete_join(cx, group, member);
}

fn join_existing_member(cx: &mut Cx<'_>, group: &mut Group, id: RequestId, r: JoinGroup) {
    let member_id = r.member_id.clone();
    if !group.supports_protocols(&r.protocol_type, &r.protocols) {
        cx.out.reply(
            id,
            join_error(&member_id, ErrorCode::INCONSISTENT_GROUP_PROTOCOL),
        );
        return;
    }
    if group.pending_members.contains_key(&member_id) {
        // A pending member is dynamic (KIP-394 ids go to dynamic members only).
        group.pending_members.remove(&member_id);
        if r.group_instance_id.is_some() || group.members.len() >= cx.config.max_size {
            let error = if r.group_instance_id.is_some() {
                ErrorCode::UNKNOWN_MEMBER_ID
            } else {
                ErrorCode::GROUP_MAX_SIZE_REACHED
            };
            cx.out.reply(id, join_error(&member_id, error));
            maybe_complete_after_removal(cx, group);
            return;
        }
        let member = new_member(cx, &r, member_id, id);
        add_member_then_rebalance_or_complete_join(cx, group, member);
        return;
    }
    if let Err(error) = validate_member(group, &member_id, r.group_instance_id.as_deref()) {
        cx.out.reply(id, join_error(&member_id, error));
        return;
    }
    let member = group.members.get(&member_id).expect("validated");
    let is_leader = group.leader.as_deref() == Some(member_id.as_str());
    let same = member.matches(&r.protocols);
    if !accepts_joining_member(cx, group, &member_id) {
        // A group loaded above a lowered `group.max.size`: the members beyond it that rejoin
        // last are dropped (Kafka's `acceptJoiningMember`).
        remove_member_and_update_group(cx, group, &member_id);
        cx.out.reply(
            id,
            join_error(UNKNOWN_MEMBER_ID, ErrorCode::GROUP_MAX_SIZE_REACHED),
        );
        return;
    }
    match group.state {
        GroupState::PreparingRebalance => update_member_then_rebalance(cx, group, id, &r),
        GroupState::CompletingRebalance if same => {
            // It lost its join reply: the current generation again.
            cx.out.reply(id, join_reply(group, &member_id, is_leader));
        }
        GroupState::Stable if same && !is_leader => {
            cx.out.reply(id, join_reply(group, &member_id, false));
        }
        // Changed metadata, or the leader rejoining Stable (it may see topic changes): rebalance.
        GroupState::CompletingRebalance | GroupState::Stable => {
            update_member_then_rebalance(cx, group, id, &r)
        }
        GroupState::Empty | GroupState::Dead => {
            cx.out
                .reply(id, join_error(&member_id, ErrorCode::UNKNOWN_MEMBER_ID));
        }
    }
}

/// `ClassicGroup.acceptJoiningMember` for an existing member: while preparing, one already
/// parked is accepted, another only while fewer than `group.max.size` are parked (the group
/// itself may be larger: loaded above a lowered limit, `GroupCoordinator::revive`). Otherwise
/// members are within the limit and always accepted.
fn accepts_joining_member(cx: &Cx<'_>, group: &Group, member_id: &str) -> bool {
    if !group.is(GroupState::PreparingRebalance) {
        return true;
    }
    group
        .members
        .get(member_id)
        .is_some_and(|m| m.awaiting_join.is_some())
        || group.awaiting_join_count() < cx.config.max_size
}

/// `ClassicGroup.validateMember`: the instance id maps to this member id, and it is a member.
pub(super) fn validate_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ErrorCode> {
    if let Some(instance) = instance_id {
        match group.static_members.get(instance) {
            None => return Err(ErrorCode::UNKNOWN_MEMBER_ID),
            Some(existing) if existing != member_id => return Err(ErrorCode::FENCED_INSTANCE_ID),
            Some(_) => {}
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(ErrorCode::UNKNOWN_MEMBER_ID);
    }
    Ok(())
}

/// A parked join being replaced answers the superseded request, so nothing is leaked.
fn park_join(cx: &mut Cx<'_>, member: &mut Member, id: RequestId) {
    if let Some(old) = member.awaiting_join.replace(id) {
        cx.out.reply(
            old,
            join_error(&member.id, ErrorCode::REBALANCE_IN_PROGRESS),
        );
    }
}

fn update_member_then_rebalance(cx: &mut Cx<'_>, group: &mut Group, id: RequestId, r: &JoinGroup) {
    let member = group.members.get_mut(&r.member_id).expect("validated");
    member.protocols = r.protocols.clone();
    member.rebalance_timeout_ms = r.rebalance_timeout_ms;
    member.session_timeout_ms = r.session_timeout_ms;
    park_join(cx, member, id);
    maybe_prepare_rebalance_or_complete_join(cx, group);
}

fn add_member_then_rebalance_or_complete_join(cx: &mut Cx<'_>, group: &mut Group, member: Member) {
    if group.is(GroupState::PreparingRebalance) && group.previous_state == GroupState::Empty {
        group.new_member_added = true;
    }
    group.add(member);
    maybe_prepare_rebalance_or_complete_join(cx, group);
}

/// KIP-345: a known `group.instance.id` joining with no member id takes over the old member;
/// the old id is fenced. Stable and the selected protocol unchanged: persisted, no rebalance.
fn replace_static_member(
    cx: &mut Cx<'_>,
    group: &mut Group,
    id: RequestId,
    r: &JoinGroup,
    old_id: &str,
    new_id: &str,
    latest: Option<super::records::GroupMetadataValue>,
) {
    let leader_before = group.leader.clone().unwrap_or_default();
    let old = group
        .members
        .get(old_id)
        .expect("the instance id maps to a member")
        .clone();
    let session_deadline = cx
        .now
        .instant
        .saturating_add_millis(millis(r.session_timeout_ms));
    let member = group.replace_static_member(old_id, new_id);
    if let Some(old) = member.awaiting_join.take() {
        cx.out
            .reply(old, join_error(old_id, ErrorCode::FENCED_INSTANCE_ID));
    }
    if let Some(old) = member.awaiting_sync.take() {
        cx.out.reply(old, sync_error(ErrorCode::FENCED_INSTANCE_ID));
    }
    member.protocols = r.protocols.clone();
    member.rebalance_timeout_ms = r.rebalance_timeout_ms;
    member.session_timeout_ms = r.session_timeout_ms;
    member.client_id = r.client_id.clone();
    member.client_host = r.client_host.clone();
    member.session_deadline = Some(session_deadline);
    match group.state {
        GroupState::Stable => {
            if group.select_protocol() == group.protocol_name {
                let value = group.metadata_value(&group.current_assignment(), latest.as_ref());
                cx.out.records.push(GroupRecord::GroupMetadata {
                    group: group.id.clone(),
                    value: Some(value),
                });
                let reply = if r.api_version >= FIRST_VERSION_SKIPPING_ASSIGNMENT {
                    let is_leader = group.leader.as_deref() == Some(new_id);
                    let Response::JoinGroup(mut reply) = join_reply(group, new_id, is_leader)
                    else {
                        unreachable!("join_reply builds a JoinGroup reply")
                    };
                    reply.skip_assignment = is_leader;
                    Response::JoinGroup(reply)
                } else {
                    // Older clients are told the old leader id, so a rejoining static leader
                    // does not compute an assignment (Kafka's `currentLeader`).
                    let Response::JoinGroup(mut reply) = join_reply(group, new_id, false) else {
                        unreachable!("join_reply builds a JoinGroup reply")
                    };
                    reply.leader = leader_before;
                    Response::JoinGroup(reply)
                };
                cx.out.waiters.push(Waiter::StaticReplacement {
                    group: group.id.clone(),
                    old: Box::new(old),
                    new_id: new_id.to_owned(),
                    id,
                    reply,
                });
            } else {
                park_join(cx, group.members.get_mut(new_id).expect("replaced"), id);
                maybe_prepare_rebalance_or_complete_join(cx, group);
            }
        }
        GroupState::CompletingRebalance => {
            // The leader may already hold the old id in its assignment: rebalance.
            park_join(cx, group.members.get_mut(new_id).expect("replaced"), id);
            prepare_rebalance(cx, group);
        }
        _ => {
            park_join(cx, group.members.get_mut(new_id).expect("replaced"), id);
            maybe_complete_join_phase(cx, group);
        }
    }
}

/// The reply to a static member's replacement whose GroupMetadata could not be appended
/// (`error`, mapped): the replacement is undone, so the joiner is told it has no member id, and
/// the current generation (Kafka's `updateStaticMemberThenRebalanceOrCompleteJoin`).
pub(super) fn failed_replacement_reply(reply: Response, error: ErrorCode) -> Response {
    let Response::JoinGroup(reply) = reply else {
        unreachable!("a static replacement parks a JoinGroup reply")
    };
    Response::JoinGroup(JoinGroupResponse {
        error_code: error,
        member_id: UNKNOWN_MEMBER_ID.to_owned(),
        skip_assignment: false,
        members: Vec::new(),
        ..reply
    })
}

impl GroupCoordinator {
    /// Undoes `replace_static_member` after its record failed to append: `old` takes its
    /// place back, with its protocols, timeouts and client, and a session re-armed from `now`.
    /// Nothing came between the replacement and this (the driver reports an append before any
    /// other call), so the group is as the replacement left it.
    pub(super) fn revert_static_replacement(
        &mut self,
        now: Now,
        group_id: &str,
        old: Member,
        new_id: &str,
    ) {
        let group = self
            .groups
            .get_mut(group_id)
            .expect("a replaced member's group is live until its append is reported");
        let member = group.replace_static_member(new_id, &old.id);
        let session_deadline = now
            .instant
            .saturating_add_millis(millis(old.session_timeout_ms));
        *member = Member {
            session_deadline: Some(session_deadline),
            awaiting_join: None,
            awaiting_sync: None,
            ..old
        };
    }
}

pub(super) fn maybe_prepare_rebalance_or_complete_join(cx: &mut Cx<'_>, group: &mut Group) {
    if group.can_rebalance() {
        prepare_rebalance(cx, group);
    } else {
        maybe_complete_join_phase(cx, group);
    }
}

/// `maybeCompleteJoinPhase`: all joined, and not the initial (delayed) rebalance.
fn maybe_complete_join_phase(cx: &mut Cx<'_>, group: &mut Group) {
    if group.is(GroupState::PreparingRebalance)
        && group.previous_state != GroupState::Empty
        && group.has_all_members_joined()
    {
        complete_join(cx, group);
    }
}

/// After a member or pending member left: a join phase waiting only for it completes.
pub(super) fn maybe_complete_after_removal(cx: &mut Cx<'_>, group: &mut Group) {
    if group.is(GroupState::PreparingRebalance) && group.has_all_members_joined() {
        complete_join(cx, group);
    }
}

/// `prepareRebalance`: parked syncs get REBALANCE_IN_PROGRESS, the join phase starts (delayed
/// by `group.initial.rebalance.delay.ms` out of Empty, KIP-134).
pub(super) fn prepare_rebalance(cx: &mut Cx<'_>, group: &mut Group) {
    if group.is(GroupState::CompletingRebalance) {
        reset_and_propagate_assignment_error(cx, group, ErrorCode::REBALANCE_IN_PROGRESS);
    }
    group.pending_sync.clear();
    group.sync_deadline = None;
    group.assignment_in_flight = None;
    let initial = group.is(GroupState::Empty);
    group.transition(GroupState::PreparingRebalance, cx.now.wall_ms);
    if initial {
        let delay = cx.config.initial_rebalance_delay_ms;
        group.initial_delay = Some(InitialDelay {
            delay_ms: delay,
            remaining_ms: (group.rebalance_timeout_ms() - delay).max(0),
        });
        group.new_member_added = false;
        group.join_deadline = Some(cx.now.instant.saturating_add_millis(millis(delay)));
    } else if group.has_all_members_joined() {
        complete_join(cx, group);
    } else {
        group.join_deadline = Some(
            cx.now
                .instant
                .saturating_add_millis(millis(group.rebalance_timeout_ms())),
        );
    }
}

/// The join timer fired: extend the initial delay if someone joined meanwhile, else
/// complete the join phase (`tryCompleteInitialRebalanceElseSchedule`).
pub(super) fn on_join_deadline(cx: &mut Cx<'_>, group: &mut Group) {
    group.join_deadline = None;
    if let Some(delay) = group.initial_delay
        && group.new_member_added
        && delay.remaining_ms != 0
    {
        group.new_member_added = false;
        let next_delay = cx.config.initial_rebalance_delay_ms.min(delay.remaining_ms);
        group.initial_delay = Some(InitialDelay {
            delay_ms: next_delay,
            remaining_ms: (delay.remaining_ms - delay.delay_ms).max(0),
        });
        group.join_deadline = Some(cx.now.instant.saturating_add_millis(millis(next_delay)));
        return;
    }
    complete_join(cx, group);
}

/// `completeClassicGroupJoin`: drop dynamic members that did not rejoin, bump the
/// generation, select the protocol, answer every parked join (the leader gets the members).
pub(super) fn complete_join(cx: &mut Cx<'_>, group: &mut Group) {
    group.join_deadline = None;
    group.initial_delay = None;
    if !group.is(GroupState::PreparingRebalance) {
        return;
    }
    // Static members that did not rejoin stay (KIP-345), unless the group is above
    // `group.max.size` (loaded so): then only those that rejoined, at most the limit, do.
    let over_capacity = group.members.len() > cx.config.max_size;
    let not_rejoined: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && (m.instance_id.is_none() || over_capacity))
        .map(|m| m.id.clone())
        .collect();
    for id in not_rejoined {
        group.remove(&id);
    }
    if !group.members.is_empty() && !group.maybe_elect_new_joined_leader() {
        // Nobody rejoined: wait another rebalance timeout for sessions to expire. At least 1 ms
        // (a rebalance timeout may be 0): a deadline at `now` would fire again at once, for
        // ever at one instant.
        let wait_ms = millis(group.rebalance_timeout_ms()).max(1);
        group.join_deadline = Some(cx.now.instant.saturating_add_millis(wait_ms));
        return;
    }
    group.generation = next_generation(group.generation);
    if group.members.is_empty() {
        group.protocol_name = None;
        group.transition(GroupState::Empty, cx.now.wall_ms);
        let value = group.metadata_value(&BTreeMap::new(), None);
        cx.out.records.push(GroupRecord::GroupMetadata {
            group: group.id.clone(),
            value: Some(value),
        });
        return;
    }
    group.protocol_name = group.select_protocol();
    group.transition(GroupState::CompletingRebalance, cx.now.wall_ms);
    let leader = group.leader.clone();
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for member_id in ids {
        let reply = join_reply(
            group,
            &member_id,
            leader.as_deref() == Some(member_id.as_str()),
        );
        let member = group.members.get_mut(&member_id).expect("listed");
        member.assignment = None;
        member.is_new = false;
        member.session_deadline = Some(
            cx.now
                .instant
                .saturating_add_millis(millis(member.session_timeout_ms)),
        );
        if let Some(id) = member.awaiting_join.take() {
            cx.out.reply(id, reply);
        }
        group.pending_sync.insert(member_id);
    }
    group.sync_deadline = Some(
        cx.now
            .instant
            .saturating_add_millis(millis(group.rebalance_timeout_ms())),
    );
}

/// The generation after `generation`: one more, and 1 after `i32::MAX` (Java's `++` wraps to
/// `i32::MIN`; a negative generation means "none" in requests, and 0 "never rebalanced").
/// Only a corrupt or foreign record gets a group there (2^31 rebalances).
pub(super) fn next_generation(generation: i32) -> i32 {
    generation.checked_add(1).unwrap_or(1)
}

/// Parked syncs get `error`; assignments are reset (`resetAndPropagateAssignmentWithError`).
pub(super) fn reset_and_propagate_assignment_error(
    cx: &mut Cx<'_>,
    group: &mut Group,
    error: ErrorCode,
) {
    for member in group.members.values_mut() {
        member.assignment = None;
        if let Some(id) = member.awaiting_sync.take() {
            cx.out.reply(id, sync_error(error));
            member.session_deadline = Some(
                cx.now
                    .instant
                    .saturating_add_millis(millis(member.session_timeout_ms)),
            );
        }
    }
}
