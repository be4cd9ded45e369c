//! A classic group's live (unreplicated) state: members, rebalance phase, timers and parked
//! replies (Kafka's `classic/ClassicGroup.java`, `ClassicGroupMember.java`), and the seeded
//! member-id generator.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::api::{JoinedMember, Protocol, RequestId};
use super::records::{GroupMetadataValue, MemberMetadata};
use crate::types::Instant;

/// `ClassicGroupState`. Kafka's names are what ListGroups and DescribeGroups show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    /// A deleted or expired group: never kept in the coordinator's map (it is removed at once),
    /// only reported by DescribeGroups for an unknown group.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One member (`ClassicGroupMember`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference (it votes for its first supported one).
    pub protocols: Vec<Protocol>,
    /// The member's assignment for the current generation, once the leader's is committed.
    pub assignment: Option<Bytes>,
    /// Its parked JoinGroup.
    pub awaiting_join: Option<RequestId>,
    /// Its parked SyncGroup.
    pub awaiting_sync: Option<RequestId>,
    /// Joined during this rebalance: its session timer is the new-member join timeout and
    /// a parked join does not satisfy it.
    pub is_new: bool,
    /// When its session expires; `None` while a parked join or sync satisfies it (Kafka
    /// re-arms it when the rebalance phase completes).
    pub session_deadline: Option<Instant>,
}

impl Member {
    /// `ClassicGroupMember.hasSatisfiedHeartbeat`.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }

    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    /// Same protocols with the same metadata, in the same order (`ClassicGroupMember.matches`).
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// Its vote: its first protocol among `candidates` (`ClassicGroupMember.vote`).
    fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }
}

/// The classic-group rebalance timer of the first rebalance out of Empty (KIP-134).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialDelay {
    pub delay_ms: i32,
    pub remaining_ms: i32,
}

/// One group's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    pub generation: i32,
    /// `None`: a standalone ("simple") group that only stores offsets.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id (KIP-345).
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394), by expiry.
    pub pending_members: BTreeMap<String, Instant>,
    /// Wall-clock ms of the last state change (KIP-211's "became Empty").
    pub state_timestamp_ms: Option<i64>,
    /// When the join phase ends (rebalance timeout, or the initial delay).
    pub join_deadline: Option<Instant>,
    pub initial_delay: Option<InitialDelay>,
    /// A member joined during the initial delay: extend it.
    pub new_member_added: bool,
    /// Members that got their JoinGroup reply and have not sent SyncGroup yet.
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline: Option<Instant>,
    /// The leader's assignment whose GroupMetadata record is being written: (generation,
    /// assignment per member). Completes the sync when committed.
    pub assignment_in_flight: Option<(i32, BTreeMap<String, Bytes>)>,
}

impl Group {
    /// A new, empty group (`protocol_type` None until a member joins).
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            state_timestamp_ms: None,
            join_deadline: None,
            initial_delay: None,
            new_member_added: false,
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            assignment_in_flight: None,
        }
    }

    /// A group as its GroupMetadata record says: Stable with its members, or Empty (Kafka's
    /// replay; `onLoaded` re-arms every session so a failover causes no rebalance).
    pub fn loaded(id: &str, value: &GroupMetadataValue, now: Instant) -> Group {
        let mut group = Group::new(id);
        group.generation = value.generation;
        group.protocol_type = Some(value.protocol_type.clone())
            .filter(|t| !t.is_empty() || !value.members.is_empty());
        group.protocol_name = value.protocol.clone();
        group.state_timestamp_ms = Some(value.current_state_timestamp).filter(|t| *t >= 0);
        for m in &value.members {
            let protocol = value.protocol.clone().unwrap_or_default();
            let member = Member {
                id: m.member_id.clone(),
                instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: if m.rebalance_timeout < 0 {
                    m.session_timeout
                } else {
                    m.rebalance_timeout
                },
                session_timeout_ms: m.session_timeout,
                protocol_type: value.protocol_type.clone(),
                protocols: vec![Protocol {
                    name: protocol,
                    metadata: m.subscription.clone(),
                }],
                assignment: Some(m.assignment.clone()),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                session_deadline: Some(now.saturating_add_millis(millis(m.session_timeout))),
            };
            if let Some(instance) = &member.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member.id.clone());
            }
            group.members.insert(member.id.clone(), member);
        }
        if value.protocol.is_none() {
            // The format allows a null protocol with members, but a group with members has a
            // selected protocol: the log is input, so such a group loads Empty (its members
            // rejoin as new ones; nothing persisted is lost: offsets are not in this record).
            group.members.clear();
            group.static_members.clear();
        }
        if !group.members.is_empty() {
            group.state = GroupState::Stable;
            group.leader = value
                .leader
                .clone()
                .filter(|l| group.members.contains_key(l))
                .or_else(|| group.members.keys().next().cloned());
        }
        group
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    /// `ClassicGroup.transitionTo`: records the wall-clock time of the change.
    pub fn transition(&mut self, to: GroupState, wall_ms: i64) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = Some(wall_ms);
    }

    /// Stable, CompletingRebalance and Empty may start a rebalance.
    pub fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    /// The largest rebalance timeout of the members: how long a join phase or sync phase waits.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// How many members have a parked JoinGroup.
    pub fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    /// Every member has a parked JoinGroup and no member id is pending.
    pub fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// `ClassicGroup.supportsProtocols`: an Empty group takes any non-empty type and protocol
    /// list; otherwise the type must match and some protocol must be supported by every member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.metadata(&p.name).is_some()))
    }

    /// `ClassicGroup.selectProtocol`: the protocols every member supports are candidates; each
    /// member votes for its first candidate; the most votes win (ties: the smallest name, so the
    /// choice is deterministic where Kafka's depends on a HashMap).
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: BTreeSet<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.metadata(name).is_some()))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(vote) = m.vote(&candidates) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, n)| *n == best)
            .map(|(name, _)| name.to_owned())
    }

    /// Adds a member (and makes it the leader if there is none).
    pub fn add(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member; a removed leader is replaced by the first remaining member. Returns it.
    pub fn remove(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        self.pending_sync.remove(member_id);
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// KIP-345: `new_id` takes over the static member `old_id` (its place and assignment).
    pub fn replace_static_member(&mut self, old_id: &str, new_id: &str) -> &mut Member {
        let mut member = self
            .members
            .remove(old_id)
            .expect("the instance id maps to a member");
        member.id = new_id.to_owned();
        let instance = member
            .instance_id
            .clone()
            .expect("a static member has an instance id");
        self.static_members.insert(instance, new_id.to_owned());
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_owned());
        }
        self.members.insert(new_id.to_owned(), member);
        self.members.get_mut(new_id).expect("just inserted")
    }

    /// `maybeElectNewJoinedLeader`: a leader that did not rejoin is replaced by one that did.
    /// False when nobody rejoined.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader else {
            return true;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// The members with their metadata for the selected protocol: what the leader receives.
    pub fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The GroupMetadata value for this group with `assignment` (missing members: empty).
    /// Invariant: the generation written never goes back (asserted against `previous`).
    pub fn metadata_value(
        &self,
        assignment: &BTreeMap<String, Bytes>,
        previous: Option<&GroupMetadataValue>,
    ) -> GroupMetadataValue {
        if let Some(previous) = previous {
            // The one way back: the wrap after `i32::MAX` to 1 (`join::next_generation`), and
            // the rebalances counted on from there before the group is written again.
            let wrapped = previous.generation == i32::MAX && self.generation >= 1;
            assert!(
                self.generation >= previous.generation || wrapped,
                "group {}: generation {} written after {}",
                self.id,
                self.generation,
                previous.generation
            );
        }
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata(p).cloned())
                        .unwrap_or_default(),
                    assignment: assignment.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// The current assignment of every member (for a rewrite without a rebalance).
    pub fn current_assignment(&self) -> BTreeMap<String, Bytes> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.assignment.clone().unwrap_or_default()))
            .collect()
    }

    /// The earliest timer of this group.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sessions = self.members.values().filter_map(|m| m.session_deadline);
        let pending = self.pending_members.values().copied();
        sessions
            .chain(pending)
            .chain(self.join_deadline)
            .chain(self.sync_deadline)
            .min()
    }

    /// The group invariants (asserted after every change, also in release builds).
    pub fn check_invariants(&self, max_size: usize) {
        let id = &self.id;
        assert!(
            self.state != GroupState::Dead,
            "group {id}: a Dead group is removed"
        );
        // A group loaded above a lowered limit rebalances at once (`GroupCoordinator::revive`)
        // and its join phase ends within it: only PreparingRebalance may be above it, and even
        // then no more than the limit have a parked join.
        assert!(
            self.members.len() <= max_size || self.is(GroupState::PreparingRebalance),
            "group {id}: {} members > group.max.size {max_size} while {:?}",
            self.members.len(),
            self.state
        );
        assert!(
            self.awaiting_join_count() <= max_size,
            "group {id}: parked joins bounded by group.max.size"
        );
        assert!(
            self.pending_members.len() <= max_size,
            "group {id}: pending members bounded"
        );
        match &self.leader {
            Some(leader) => assert!(
                self.members.contains_key(leader),
                "group {id}: leader {leader} is a member"
            ),
            None => assert!(
                self.members.is_empty(),
                "group {id}: a group with members has a leader"
            ),
        }
        // PreparingRebalance may be left without members (they left while ids are pending, or
        // during the initial delay) until its join phase ends in Empty, as in Kafka.
        if self.is(GroupState::Empty) {
            assert!(self.members.is_empty(), "group {id}: Empty has no members");
        }
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            assert!(
                !self.members.is_empty(),
                "group {id}: {:?} has members",
                self.state
            );
        }
        if self.is(GroupState::Stable) {
            assert!(
                self.members.values().all(|m| m.assignment.is_some()),
                "group {id}: every member of a Stable group has an assignment"
            );
        }
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            assert!(
                self.protocol_name.is_some(),
                "group {id}: a protocol is selected"
            );
        }
        for (instance, member_id) in &self.static_members {
            let member = self.members.get(member_id);
            assert!(
                member.is_some_and(|m| m.instance_id.as_deref() == Some(instance.as_str())),
                "group {id}: static member {instance} maps to its member"
            );
        }
        for m in self.members.values() {
            if self.is(GroupState::PreparingRebalance) {
                assert!(
                    m.awaiting_sync.is_none(),
                    "group {id}: no sync parked while preparing"
                );
            }
            if !self.is(GroupState::PreparingRebalance) {
                assert!(
                    m.awaiting_join.is_none(),
                    "group {id}: joins parked only while preparing"
                );
            }
        }
    }
}

pub fn millis(ms: i32) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// Member ids: `clientId-` (or `groupInstanceId-` for static members) + a version-4 UUID
/// string, as Kafka's `ClassicGroup.generateMemberId`. The UUID comes from SplitMix64 seeded by
/// the driver (never the OS), so a run is reproducible from its seed.
#[derive(Debug, Clone)]
pub struct MemberIdGenerator {
    state: u64,
}

impl MemberIdGenerator {
    pub fn new(seed: u64) -> MemberIdGenerator {
        MemberIdGenerator { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64 (Steele, Lea, Flood 2014).
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A UUID v4 string (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
    pub fn uuid(&mut self) -> String {
        let hi = (self.next_u64() & !0xf000) | 0x4000;
        let lo = (self.next_u64() & !(0xc << 60)) | (0x8 << 60);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }

    pub fn member_id(&mut self, prefix: &str) -> String {
        format!("{prefix}-{}", self.uuid())
    }
}
