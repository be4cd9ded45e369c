//! The fuzzer's consumer-group findings (`fuzz/findings/README.md`, "Consumer groups"), each
//! as a few steps against the coordinator: bad input, from the network or read back from the
//! log, never panics and never leaves the live groups disagreeing with the log. The harness
//! encodes and decodes every record written (`Harness::absorb`), as the driver would.

use super::*;
use crate::group::records::{GroupMetadataValue, MemberMetadata};

fn member(id: &str, instance: Option<&str>, rebalance_ms: i32) -> MemberMetadata {
    MemberMetadata {
        member_id: id.into(),
        group_instance_id: instance.map(Into::into),
        client_id: "client".into(),
        client_host: "/10.0.0.1".into(),
        rebalance_timeout: rebalance_ms,
        session_timeout: SESSION_MS,
        subscription: subscription(&["t"]),
        assignment: Bytes::from_static(b"a"),
    }
}

fn metadata(generation: i32, members: Vec<MemberMetadata>) -> GroupMetadataValue {
    GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation,
        protocol: Some("range".into()),
        leader: members.first().map(|m| m.member_id.clone()),
        current_state_timestamp: 1_700_000_000_000,
        members,
    }
}

fn group_record(value: GroupMetadataValue) -> GroupRecord {
    GroupRecord::GroupMetadata {
        group: "g".into(),
        value: Some(value),
    }
}

fn leave(h: &mut Harness, member_id: &str, instance: Option<&str>) {
    h.send(Request::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![LeavingMember {
            member_id: member_id.into(),
            group_instance_id: instance.map(Into::into),
        }],
    }));
}

fn static_join(h: &mut Harness, member_id: &str, instance: &str) -> RequestId {
    h.send(join_request("g", member_id, Some(instance), 5, &["range"]))
}

/// The live group's member ids, and those of its last GroupMetadata in the log.
fn live_and_logged_members(h: &Harness) -> (Vec<String>, Vec<String>) {
    let live = h.c.groups["g"].members.keys().cloned().collect();
    let logged = h.c.latest_image().groups["g"]
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    (live, logged)
}

/// Finding 1: `offset.metadata.max.bytes` above `i16::MAX` (the node takes any int32) let a
/// commit's metadata through that the record's int16-length string cannot hold, and encoding
/// the record panicked. The record's limit bounds the setting.
#[test]
fn commit_metadata_longer_than_a_record_string_is_refused() {
    let mut h = Harness::with_config(GroupConfig {
        offset_metadata_max_bytes: 40_000,
        ..config()
    });
    let commit_with = |h: &mut Harness, len: usize| {
        let mut request = commit_request("g", -1, "", "t", 0, 7);
        request.topics[0].partitions[0].metadata = Some("m".repeat(len));
        let id = h.send(Request::OffsetCommit(request));
        h.commit_error(id)
    };
    assert_eq!(
        commit_with(&mut h, 40_000),
        Some(ErrorCode::OFFSET_METADATA_TOO_LARGE)
    );
    assert_eq!(
        commit_with(&mut h, i16::MAX as usize + 1),
        Some(ErrorCode::OFFSET_METADATA_TOO_LARGE)
    );
    assert_eq!(
        commit_with(&mut h, i16::MAX as usize),
        Some(ErrorCode::NONE)
    );
    assert_eq!(
        h.fetch("g", "t", 0, false).metadata.len(),
        i16::MAX as usize
    );
}

/// Finding 2: a GroupMetadata with members and a null protocol (the format allows it) made a
/// Stable group without a selected protocol, and the load's invariant check panicked. It loads
/// Empty at its generation, and the next rebalance moves on from there.
#[test]
fn a_loaded_group_with_members_and_no_protocol_loads_empty() {
    let value = GroupMetadataValue {
        protocol: None,
        ..metadata(3, vec![member("m1", None, REBALANCE_MS)])
    };
    let mut h = Harness::loaded(config(), vec![group_record(value)]);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(h.c.generation("g"), Some(3));
    assert_eq!(h.heartbeat("g", "m1", 3), ErrorCode::UNKNOWN_MEMBER_ID);
    let (_, generation) = h.stable_group("g", 1);
    assert_eq!(generation, 4);
}

/// Finding 3: a loaded generation of `i32::MAX` overflowed at the next rebalance (`+= 1`). It
/// wraps to 1 and counts on: the one way back the generation invariant allows (here two
/// rebalances before the group is written again, as the fuzzer's input has).
#[test]
fn a_loaded_generation_of_i32_max_wraps_to_1() {
    let value = metadata(i32::MAX, vec![member("m1", None, REBALANCE_MS)]);
    let mut h = Harness::loaded(config(), vec![group_record(value)]);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    // The leader rejoining Stable rebalances; it is the only member, so the phase completes.
    let join = h.join("g", "m1", 5);
    let r = h.join_reply(join);
    assert_eq!((r.error_code, r.generation_id), (ErrorCode::NONE, 1));
    // New protocols while CompletingRebalance: another rebalance, nothing written yet.
    let join = h.send(join_request("g", "m1", None, 5, &["range", "roundrobin"]));
    let r = h.join_reply(join);
    assert_eq!((r.error_code, r.generation_id), (ErrorCode::NONE, 2));
    let sync = h.sync("g", "m1", 2, vec![("m1".into(), Bytes::from_static(b"b"))]);
    assert_eq!(h.sync_reply(sync).error_code, ErrorCode::NONE);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(h.c.latest_image().groups["g"].generation, 2);
}

/// A v4 (flexible) GroupMetadataValue of group `g` at generation 1: a dynamic member `m-long`
/// (the leader) whose client id is `client_id`, and a static member `i0-old` (instance `i0`).
/// Hand-built: compact strings and arrays (length + 1), empty tagged-field sections.
pub(crate) fn v4_group_metadata(client_id: &str) -> Vec<u8> {
    fn uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn string(out: &mut Vec<u8>, s: &str) {
        uvarint(out, s.len() as u64 + 1);
        out.extend_from_slice(s.as_bytes());
    }
    let mut v = vec![0u8, 4];
    string(&mut v, "consumer");
    v.extend_from_slice(&1i32.to_be_bytes());
    string(&mut v, "range");
    string(&mut v, "m-long");
    v.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    uvarint(&mut v, 3); // two members
    for (id, instance, client) in [("m-long", None, client_id), ("i0-old", Some("i0"), "c")] {
        string(&mut v, id);
        match instance {
            Some(i) => string(&mut v, i),
            None => uvarint(&mut v, 0),
        }
        string(&mut v, client);
        string(&mut v, "/10.0.0.1");
        v.extend_from_slice(&REBALANCE_MS.to_be_bytes());
        v.extend_from_slice(&SESSION_MS.to_be_bytes());
        let sub = subscription(&["t"]);
        uvarint(&mut v, sub.len() as u64 + 1);
        v.extend_from_slice(&sub);
        uvarint(&mut v, 2);
        v.push(b'a');
        uvarint(&mut v, 0); // member tagged fields
    }
    uvarint(&mut v, 0); // tagged fields
    v
}

/// Finding 4: a loaded v4 value whose member's client id is longer than a v3 string decoded,
/// but the next GroupMetadata with that member in it (here a static member's replacement)
/// could not be encoded at v3. Encoding is total: such a value is written as v4.
#[test]
fn a_loaded_member_string_longer_than_a_v3_string_is_written_as_v4() {
    let long = "c".repeat(40_000);
    let key = GroupRecord::GroupMetadata {
        group: "g".into(),
        value: None,
    }
    .encode_key();
    let record = GroupRecord::decode(&key, Some(&v4_group_metadata(&long))).expect("decodes");
    let mut h = Harness::loaded(config(), vec![record]);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    // `i0` comes back without a member id: replaced, and the group written (the harness
    // encodes and decodes it).
    let join = static_join(&mut h, "", "i0");
    let r = h.join_reply(join);
    assert_eq!(r.error_code, ErrorCode::NONE);
    let (_, last) = h.log.last().expect("the replacement was written");
    let value = last[0].encode_value().expect("not a tombstone");
    assert_eq!(value[..2], [0, 4], "written as v4: the client id needs it");
    let GroupRecord::GroupMetadata { value: Some(v), .. } = &last[0] else {
        panic!("a GroupMetadata record")
    };
    let kept = v.members.iter().find(|m| m.member_id == "m-long");
    assert!(
        kept.is_some_and(|m| m.client_id == long),
        "the long client id is kept"
    );
}

/// Finding 5: static members with a rebalance timeout of 0 that never rejoin (after another
/// one left): the join phase re-armed its deadline at `now` on every tick, so a driver sleeping
/// until `next_deadline()` spun at one instant. The wait is at least 1 ms, and the group ends
/// when the sessions expire.
#[test]
fn a_zero_rebalance_timeout_does_not_spin_the_join_timer() {
    let members = vec![member("i0-m", Some("i0"), 0), member("i1-m", Some("i1"), 0)];
    let mut h = Harness::loaded(config(), vec![group_record(metadata(2, members))]);
    leave(&mut h, "i1-m", Some("i1"));
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
    // The join deadline is `now` (timeout 0): it fires, nobody rejoined, it is re-armed.
    for _ in 0..3 {
        let out = h.c.tick(h.now);
        h.absorb(out);
        let next = h.c.next_deadline().expect("timers armed");
        assert!(
            next > h.now.instant,
            "the join timer fires again at {next:?}, now {:?}",
            h.now.instant
        );
    }
    h.advance(SESSION_MS as u64);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Empty));
}

/// Finding 6: a static member's replacement whose record failed to append was kept: the live
/// group had the new member id, the log the old one. It is reverted (Kafka's
/// `updateStaticMemberThenRebalanceOrCompleteJoin`) and the joiner told it has no member id.
#[test]
fn a_failed_static_replacement_is_reverted() {
    let members = vec![member("i0-old", Some("i0"), REBALANCE_MS)];
    let mut h = Harness::loaded(config(), vec![group_record(metadata(1, members))]);
    let before = h.c.groups["g"].clone();
    h.fail_next_append = true;
    let join = static_join(&mut h, "", "i0");
    let r = h.join_reply(join);
    assert_eq!(r.error_code, ErrorCode::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(r.member_id, UNKNOWN_MEMBER_ID);
    let (live, logged) = live_and_logged_members(&h);
    assert_eq!(live, logged, "the live group is what the log says");
    let after = &h.c.groups["g"];
    assert_eq!(after.static_members, before.static_members);
    assert_eq!(after.leader, before.leader);
    assert_eq!(
        after.members["i0-old"].protocols,
        before.members["i0-old"].protocols
    );
    assert_eq!(h.heartbeat("g", "i0-old", 1), ErrorCode::NONE);
    // The next replacement goes through.
    let join = static_join(&mut h, "", "i0");
    assert_eq!(h.join_reply(join).error_code, ErrorCode::NONE);
    let (live, logged) = live_and_logged_members(&h);
    assert_eq!(live, logged);
    assert_ne!(live, vec!["i0-old".to_owned()]);
}

/// Finding 7: a group loaded with more members than `group.max.size` (lowered since) panicked
/// the load. It rebalances at once (Kafka's `onLoaded`): members rejoining beyond the limit get
/// GROUP_MAX_SIZE_REACHED, and the join phase ends within the limit.
#[test]
fn a_group_loaded_above_max_size_rebalances_within_it() {
    let limited = GroupConfig {
        max_size: 1,
        ..config()
    };
    let members = vec![
        member("m1", None, REBALANCE_MS),
        member("m2", None, REBALANCE_MS),
    ];
    let mut h = Harness::loaded(limited.clone(), vec![group_record(metadata(5, members))]);
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
    let first = h.join("g", "m1", 5);
    let second = h.join("g", "m2", 5);
    assert_eq!(
        h.join_reply(second).error_code,
        ErrorCode::GROUP_MAX_SIZE_REACHED
    );
    let r = h.join_reply(first);
    assert_eq!((r.error_code, r.generation_id), (ErrorCode::NONE, 6));
    assert_eq!(r.members.len(), 1);

    // Static members that do not rejoin are dropped too when the group is above the limit.
    // Sessions outlast the rebalance timeout, so the join phase ends by its deadline.
    let long_session = |id: &str, instance: &str| MemberMetadata {
        session_timeout: 60_000,
        ..member(id, Some(instance), 5_000)
    };
    let members = vec![long_session("i0-m", "i0"), long_session("i1-m", "i1")];
    let mut h = Harness::loaded(limited, vec![group_record(metadata(5, members))]);
    let join = static_join(&mut h, "i0-m", "i0");
    assert!(h.take(join).is_none(), "waits for i1");
    h.advance(5_000);
    let r = h.join_reply(join);
    assert_eq!((r.error_code, r.generation_id), (ErrorCode::NONE, 6));
    assert_eq!(h.c.groups["g"].members.len(), 1);
}

/// Finding 8: a tick whose session expiry empties a group (its GroupMetadata written) and whose
/// retention check then expires it dropped the group without a tombstone: the decision read
/// `latest`, which does not hold this very call's record. The log kept the group; the next
/// group of that id wrote generation 0 after it and the coordinator's assertion panicked.
#[test]
fn a_group_emptied_and_expired_in_one_tick_gets_a_tombstone() {
    let mut h = Harness::with_config(GroupConfig {
        offsets_retention_check_interval_ms: 60_000,
        ..config()
    });
    // A standalone commit, then its deletion: `g` is live with nothing of it in the log.
    let commit = h.commit("g", -1, "", "t", 0, 1);
    assert_eq!(h.commit_error(commit), Some(ErrorCode::NONE));
    h.send(Request::OffsetDelete(OffsetDelete {
        group_id: "g".into(),
        topics: vec![("t".into(), vec![0])],
    }));
    assert!(!h.c.latest_image().groups.contains_key("g"));
    let join = h.join("g", "", 0);
    h.advance(3_000); // the initial delay: generation 1
    assert_eq!(h.join_reply(join).generation_id, 1);
    // One late tick: the session expired and the retention check is due.
    h.now.instant = h.now.instant.saturating_add_millis(60_000);
    h.now.wall_ms += 60_000;
    let out = h.c.tick(h.now);
    h.absorb(out);
    assert_eq!(h.c.group_state("g"), None, "expired");
    assert!(
        !h.c.latest_image().groups.contains_key("g"),
        "the group the tick wrote is tombstoned"
    );
    let (_, generation) = h.stable_group("g", 1);
    assert_eq!(generation, 1);
}
