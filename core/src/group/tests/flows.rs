//! Join / sync / heartbeat / leave flows, static membership, parked replies.

use super::*;

#[test]
fn one_member_join_sync_heartbeat() {
    let mut h = Harness::new();
    // v3: no KIP-394 round trip; the first rebalance waits the initial delay (KIP-134).
    let join = h.join("g", "", 3);
    assert!(h.take(join).is_none(), "parked during the initial delay");
    h.advance(2_999);
    assert!(h.take(join).is_none());
    h.advance(1);
    let r = h.join_reply(join);
    assert_eq!(r.error_code, ErrorCode::NONE);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, r.member_id);
    assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
    assert_eq!(r.members.len(), 1, "the leader gets the member list");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));
    let sync = h.sync(
        "g",
        &r.member_id,
        1,
        vec![(r.member_id.clone(), Bytes::from_static(b"a"))],
    );
    let s = h.sync_reply(sync);
    assert_eq!(s.assignment, Bytes::from_static(b"a"));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(h.heartbeat("g", &r.member_id, 1), ErrorCode::NONE);
    assert_eq!(
        h.heartbeat("g", &r.member_id, 0),
        ErrorCode::ILLEGAL_GENERATION
    );
    assert_eq!(h.heartbeat("g", "nobody", 1), ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(
        h.heartbeat("other", &r.member_id, 1),
        ErrorCode::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn three_members_only_the_leader_gets_members_and_left_out_get_empty() {
    let mut h = Harness::new();
    let joins: Vec<(String, RequestId)> = (0..3).map(|_| h.join_new("g")).collect();
    h.advance(3_000);
    assert!(
        h.replies.is_empty(),
        "the joiners extended the initial delay"
    );
    h.advance(3_000);
    let replies: Vec<JoinGroupResponse> = joins.iter().map(|(_, id)| h.join_reply(*id)).collect();
    let leader = replies[0].leader.clone();
    for r in &replies {
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader, leader);
        assert_eq!(r.members.len(), if r.member_id == leader { 3 } else { 0 });
    }
    let followers: Vec<&String> = joins
        .iter()
        .map(|(m, _)| m)
        .filter(|m| **m != leader)
        .collect();
    let f0 = h.sync("g", followers[0], 1, vec![]);
    assert!(
        h.take(f0).is_none(),
        "a follower's sync waits for the leader's"
    );
    // The leader assigns to itself and the first follower only.
    let l = h.sync(
        "g",
        &leader,
        1,
        vec![
            (leader.clone(), Bytes::from_static(b"L")),
            (followers[0].clone(), Bytes::from_static(b"F")),
        ],
    );
    assert_eq!(h.sync_reply(l).assignment, Bytes::from_static(b"L"));
    assert_eq!(h.sync_reply(f0).assignment, Bytes::from_static(b"F"));
    let f1 = h.sync("g", followers[1], 1, vec![]);
    let left_out = h.sync_reply(f1);
    assert_eq!(left_out.error_code, ErrorCode::NONE);
    assert!(
        left_out.assignment.is_empty(),
        "a member left out gets an empty assignment"
    );
}

#[test]
fn kip_394_member_id_required_and_pending_members_expire() {
    let mut h = Harness::new();
    let first = h.join("g", "", 4);
    let r = h.join_reply(first);
    assert_eq!(r.error_code, ErrorCode::MEMBER_ID_REQUIRED);
    assert!(r.member_id.starts_with("client-"));
    // A flood of fresh joins is bounded by group.max.size and expires by session timeout.
    let mut config = config();
    config.max_size = 2;
    let mut h = Harness::with_config(config);
    for expected in [
        ErrorCode::MEMBER_ID_REQUIRED,
        ErrorCode::MEMBER_ID_REQUIRED,
        ErrorCode::GROUP_MAX_SIZE_REACHED,
    ] {
        let id = h.join("g", "", 5);
        assert_eq!(h.join_reply(id).error_code, expected);
    }
    h.advance(SESSION_MS as u64);
    let id = h.join("g", "", 5);
    assert_eq!(
        h.join_reply(id).error_code,
        ErrorCode::MEMBER_ID_REQUIRED,
        "pending members expired"
    );
}

#[test]
fn limits_get_kafkas_answers() {
    let mut h = Harness::new();
    let mut bad = join_request("g", "", None, 5, &["range"]);
    if let Request::JoinGroup(j) = &mut bad {
        j.session_timeout_ms = 5_999;
    }
    let id = h.send(bad);
    assert_eq!(
        h.join_reply(id).error_code,
        ErrorCode::INVALID_SESSION_TIMEOUT
    );
    let id = h.send(join_request("", "", None, 5, &["range"]));
    assert_eq!(h.join_reply(id).error_code, ErrorCode::INVALID_GROUP_ID);
    let id = h.join("absent", "client-123", 5);
    assert_eq!(h.join_reply(id).error_code, ErrorCode::UNKNOWN_MEMBER_ID);
    let mut config = config();
    config.max_size = 1;
    let mut h = Harness::with_config(config);
    let _ = h.stable_group("g", 1);
    let id = h.join("g", "", 5);
    assert_eq!(
        h.join_reply(id).error_code,
        ErrorCode::GROUP_MAX_SIZE_REACHED
    );
}

#[test]
fn a_join_rebalances_a_stable_group() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group("g", 2);
    let (newcomer, new_join) = h.join_new("g");
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat("g", &members[1], generation),
        ErrorCode::REBALANCE_IN_PROGRESS
    );
    let a = h.join("g", &members[0], 5);
    assert!(h.take(a).is_none());
    let b = h.join("g", &members[1], 5);
    // Everyone rejoined: the join phase completes at once (not the initial rebalance).
    for id in [a, b, new_join] {
        assert_eq!(h.join_reply(id).generation_id, generation + 1);
    }
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));
    let _ = newcomer;
}

#[test]
fn a_leave_rebalances_and_the_last_leave_empties() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group("g", 2);
    let leave = h.send(Request::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![
            LeavingMember {
                member_id: members[1].clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
        ],
    }));
    let Some(Response::LeaveGroup(r)) = h.take(leave) else {
        panic!("leave reply")
    };
    assert_eq!(r.members[0].2, ErrorCode::NONE);
    assert_eq!(r.members[1].2, ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
    let rejoin = h.join("g", &members[0], 5);
    let r = h.join_reply(rejoin);
    assert_eq!((r.generation_id, r.members.len()), (generation + 1, 1));
    let leave = h.send(Request::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![LeavingMember {
            member_id: members[0].clone(),
            group_instance_id: None,
        }],
    }));
    assert!(h.take(leave).is_some());
    assert_eq!(h.c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(h.c.generation("g"), Some(generation + 2));
    // Becoming Empty is written (Kafka: empty GroupMetadata with the new generation).
    let last = h.c.latest_image().groups.get("g").unwrap();
    assert!(last.members.is_empty());
    assert_eq!(last.generation, generation + 2);
}

#[test]
fn session_expiry_removes_the_silent_member_and_rebalances() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group("g", 2);
    h.advance(SESSION_MS as u64 / 2);
    assert_eq!(h.heartbeat("g", &members[0], generation), ErrorCode::NONE);
    h.advance(SESSION_MS as u64 / 2 - 1);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    h.advance(1);
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat("g", &members[1], generation),
        ErrorCode::UNKNOWN_MEMBER_ID
    );
    let rejoin = h.join("g", &members[0], 5);
    assert_eq!(h.join_reply(rejoin).members.len(), 1);
}

#[test]
fn kip_134_initial_delay_is_extended_by_each_joiner_up_to_the_rebalance_timeout() {
    let mut h = Harness::new();
    let (_, a) = h.join_new("g");
    h.advance(2_000);
    let (_, b) = h.join_new("g");
    // 3 s: someone joined meanwhile -> extend by min(3 s, 20 s - 3 s).
    h.advance(1_000);
    assert!(h.take(a).is_none());
    h.advance(2_999);
    assert!(h.take(a).is_none() && h.take(b).is_none());
    h.advance(1);
    assert_eq!(h.join_reply(a).generation_id, 1);
    assert_eq!(h.join_reply(b).generation_id, 1);
}

#[test]
fn kip_345_static_member_restart_without_rebalance_fences_the_old_id() {
    let mut h = Harness::new();
    let join = h.send(join_request("g", "", Some("i1"), 5, &["range"]));
    h.advance(3_000);
    let r = h.join_reply(join);
    assert!(
        r.member_id.starts_with("i1-"),
        "static ids start with the instance id"
    );
    let old = r.member_id.clone();
    let sync = h.sync("g", &old, 1, vec![(old.clone(), Bytes::from_static(b"A"))]);
    assert_eq!(h.sync_reply(sync).assignment, Bytes::from_static(b"A"));
    let records_before = h.log.len();
    // The restarted instance joins without a member id.
    let rejoin = h.send(join_request("g", "", Some("i1"), 5, &["range"]));
    let r = h.join_reply(rejoin);
    assert_eq!(r.error_code, ErrorCode::NONE);
    assert_eq!(r.generation_id, 1, "no rebalance");
    assert_ne!(r.member_id, old);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(
        h.log.len(),
        records_before + 1,
        "the replacement is persisted"
    );
    let new = r.member_id;
    let hb = h.send(Request::Heartbeat(Heartbeat {
        group_id: "g".into(),
        generation_id: 1,
        member_id: old.clone(),
        group_instance_id: Some("i1".into()),
    }));
    assert_eq!(
        h.take(hb),
        Some(Response::Heartbeat(ErrorCode::FENCED_INSTANCE_ID))
    );
    let sync = h.send(Request::SyncGroup(SyncGroup {
        group_id: "g".into(),
        generation_id: 1,
        member_id: new.clone(),
        group_instance_id: Some("i1".into()),
        protocol_type: None,
        protocol_name: None,
        assignments: vec![],
    }));
    assert_eq!(
        h.sync_reply(sync).assignment,
        Bytes::from_static(b"A"),
        "keeps its assignment"
    );
    let mut commit = commit_request("g", 1, &old, "t", 0, 5);
    commit.group_instance_id = Some("i1".into());
    let id = h.send(Request::OffsetCommit(commit));
    assert_eq!(h.commit_error(id), Some(ErrorCode::FENCED_INSTANCE_ID));
}

#[test]
fn sync_replies_wait_for_the_high_watermark() {
    let mut h = Harness::new();
    h.auto_commit = false;
    let join = h.join("g", "", 3);
    h.advance(3_000);
    let m = h.join_reply(join).member_id;
    let sync = h.sync("g", &m, 1, vec![(m.clone(), Bytes::from_static(b"x"))]);
    let (last, _) = h.log.last().cloned().unwrap();
    h.commit_to(last.0);
    assert!(
        h.take(sync).is_none(),
        "the record's offset is not below the high watermark yet"
    );
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));
    h.commit_to(last.0 + 1);
    assert_eq!(h.sync_reply(sync).assignment, Bytes::from_static(b"x"));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn unload_fails_every_parked_reply_with_not_coordinator() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group("g", 1);
    h.auto_commit = false;
    let commit = h.commit("g", generation, &members[0], "t", 0, 9);
    let join = h.join("g2", "", 3);
    assert!(h.take(commit).is_none() && h.take(join).is_none());
    let failed: BTreeMap<RequestId, Response> = h.c.unload().into_iter().collect();
    assert_eq!(failed.len(), 2);
    let Some(Response::OffsetCommit(r)) = failed.get(&commit) else {
        panic!()
    };
    assert_eq!(r.topics[0].1[0].1, ErrorCode::NOT_COORDINATOR);
    let Some(Response::JoinGroup(r)) = failed.get(&join) else {
        panic!()
    };
    assert_eq!(r.error_code, ErrorCode::NOT_COORDINATOR);
    let id = h.join("g", "", 3);
    assert_eq!(h.join_reply(id).error_code, ErrorCode::NOT_COORDINATOR);
}

#[test]
fn an_append_failure_fails_the_write_and_a_failed_assignment_rebalances() {
    let mut h = Harness::new();
    let join = h.join("g", "", 3);
    h.advance(3_000);
    let m = h.join_reply(join).member_id;
    // The leader's assignment cannot be appended (below min.insync.replicas).
    let out = h.c.handle(
        h.now,
        RequestId(900),
        Request::SyncGroup(SyncGroup {
            group_id: "g".into(),
            generation_id: 1,
            member_id: m.clone(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![(m.clone(), Bytes::from_static(b"x"))],
        }),
    );
    assert_eq!(out.records.len(), 1);
    assert!(out.replies.is_empty());
    let out = h.c.on_append_failed(h.now, ErrorCode::NOT_ENOUGH_REPLICAS);
    assert_eq!(
        out.replies,
        vec![(
            RequestId(900),
            sync_error_reply(ErrorCode::COORDINATOR_NOT_AVAILABLE)
        )]
    );
    h.absorb(out);
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
}

fn sync_error_reply(error: ErrorCode) -> Response {
    Response::SyncGroup(SyncGroupResponse {
        error_code: error,
        ..SyncGroupResponse::default()
    })
}

#[test]
fn loading_answers_load_in_progress_and_load_is_replay() {
    let mut c = GroupCoordinator::new(config(), LeaderEpoch(1), 1);
    let out = c.handle(
        Now::default(),
        RequestId(1),
        join_request("g", "", None, 5, &["range"]),
    );
    let Response::JoinGroup(r) = &out.replies[0].1 else {
        panic!()
    };
    assert_eq!(r.error_code, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);

    let mut h = Harness::new();
    let (members, generation) = h.stable_group("g", 2);
    let c = h.commit("g", generation, &members[0], "t", 0, 42);
    assert_eq!(h.commit_error(c), Some(ErrorCode::NONE));
    let loaded = h.reload();
    assert_eq!(loaded.latest_image(), h.c.latest_image());
    assert_eq!(loaded.committed_image(), h.c.committed_image());
    assert_eq!(loaded.group_state("g"), Some(GroupState::Stable));
    assert_eq!(loaded.generation("g"), Some(generation));
    // The loaded group keeps its members: a failover causes no rebalance.
    let mut h2 = Harness {
        c: loaded,
        ..Harness::new()
    };
    assert_eq!(h2.heartbeat("g", &members[1], generation), ErrorCode::NONE);
    assert_eq!(h2.fetch("g", "t", 0, false).offset, 42);
}
