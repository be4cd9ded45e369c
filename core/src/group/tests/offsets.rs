//! OffsetCommit fencing, OffsetFetch, retention (KIP-211) and the admin requests.

use super::*;

/// Every case of `ClassicGroup.validateOffsetCommit` (groups.md §1).
#[test]
fn offset_commit_fencing_table() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group("stable", 2);
    // A group in CompletingRebalance: joined, not synced.
    let join = h.join("completing", "", 3);
    h.advance(3_000);
    let completing = h.join_reply(join).member_id;
    // An Empty group: joined, then left.
    let (empty_members, _) = h.stable_group("empty", 1);
    let leave = h.send(Request::LeaveGroup(LeaveGroup {
        group_id: "empty".into(),
        members: vec![LeavingMember {
            member_id: empty_members[0].clone(),
            group_instance_id: None,
        }],
    }));
    h.take(leave);
    let m0 = members[0].as_str();
    let long = "x".repeat(40_000);
    type Case<'a> = (
        &'a str,
        i16,
        &'a str,
        i32,
        &'a str,
        Option<&'a str>,
        ErrorCode,
    );
    let cases: Vec<Case> = vec![
        (
            "absent group, generation -1",
            9,
            "absent",
            -1,
            "",
            None,
            ErrorCode::NONE,
        ),
        (
            "absent group, generation >= 0, v9",
            9,
            "absent2",
            1,
            "m",
            None,
            ErrorCode::GROUP_ID_NOT_FOUND,
        ),
        (
            "absent group, generation >= 0, v8",
            8,
            "absent2",
            1,
            "m",
            None,
            ErrorCode::ILLEGAL_GENERATION,
        ),
        (
            "empty group, generation -1",
            9,
            "empty",
            -1,
            "",
            None,
            ErrorCode::NONE,
        ),
        (
            "unknown member",
            9,
            "stable",
            generation,
            "nobody",
            None,
            ErrorCode::UNKNOWN_MEMBER_ID,
        ),
        (
            "instance id of another member",
            9,
            "stable",
            generation,
            m0,
            Some("ghost"),
            ErrorCode::UNKNOWN_MEMBER_ID,
        ),
        (
            "stale generation",
            9,
            "stable",
            generation - 1,
            m0,
            None,
            ErrorCode::ILLEGAL_GENERATION,
        ),
        (
            "generation -1 without member on a live group",
            9,
            "stable",
            -1,
            "",
            None,
            ErrorCode::UNKNOWN_MEMBER_ID,
        ),
        (
            "completing rebalance",
            9,
            "completing",
            1,
            &completing,
            None,
            ErrorCode::REBALANCE_IN_PROGRESS,
        ),
        (
            "current member and generation",
            9,
            "stable",
            generation,
            m0,
            None,
            ErrorCode::NONE,
        ),
        (
            "invalid group id",
            9,
            &long,
            -1,
            "",
            None,
            ErrorCode::INVALID_GROUP_ID,
        ),
    ];
    for (name, version, group, generation, member, instance, expected) in cases {
        let mut r = commit_request(group, generation, member, "t", 0, 7);
        r.api_version = version;
        r.group_instance_id = instance.map(Into::into);
        let id = h.send(Request::OffsetCommit(r));
        assert_eq!(h.commit_error(id), Some(expected), "{name}");
    }
    let mut r = commit_request("stable", generation, m0, "t", 0, 7);
    r.topics[0].partitions[0].metadata = Some("x".repeat(4_097));
    let id = h.send(Request::OffsetCommit(r));
    assert_eq!(
        h.commit_error(id),
        Some(ErrorCode::OFFSET_METADATA_TOO_LARGE)
    );
    // A refused commit writes nothing; backward commits are legal (Kafka checks no order).
    let id = h.commit("stable", generation, m0, "t", 0, 3);
    assert_eq!(h.commit_error(id), Some(ErrorCode::NONE));
    assert_eq!(h.fetch("stable", "t", 0, false).offset, 3);
}

#[test]
fn commits_are_answered_and_visible_only_once_committed() {
    let mut h = Harness::new();
    h.auto_commit = false;
    let id = h.commit("g", -1, "", "t", 0, 11);
    assert_eq!(
        h.commit_error(id),
        None,
        "parked until the high watermark passes it"
    );
    assert_eq!(
        h.fetch("g", "t", 0, false).offset,
        -1,
        "reads see committed state only"
    );
    assert_eq!(
        h.fetch("g", "t", 0, true).error_code,
        ErrorCode::UNSTABLE_OFFSET_COMMIT
    );
    h.commit_all();
    assert_eq!(h.commit_error(id), Some(ErrorCode::NONE));
    let fetched = h.fetch("g", "t", 0, true);
    assert_eq!(
        (
            fetched.offset,
            fetched.leader_epoch,
            fetched.metadata.as_str()
        ),
        (11, 3, "m")
    );
    // An append failure fails the commit (mapped) and it never becomes visible.
    let out = h.c.handle(
        h.now,
        RequestId(500),
        Request::OffsetCommit(commit_request("g", -1, "", "t", 0, 12)),
    );
    assert!(out.replies.is_empty());
    let out =
        h.c.on_append_failed(h.now, ErrorCode::NOT_LEADER_OR_FOLLOWER);
    let Response::OffsetCommit(r) = &out.replies[0].1 else {
        panic!()
    };
    assert_eq!(r.topics[0].1[0].1, ErrorCode::NOT_COORDINATOR);
    assert_eq!(h.fetch("g", "t", 0, false).offset, 11);
}

#[test]
fn kip_211_retention() {
    let mut h = Harness::new();
    let day = 24 * 60 * 60 * 1_000u64;
    // A standalone commit expires by its commit time.
    let id = h.commit("standalone", -1, "", "t", 0, 1);
    assert_eq!(h.commit_error(id), Some(ErrorCode::NONE));
    // A group with members keeps its offsets however old.
    let (members, generation) = h.stable_group("live", 1);
    let id = h.commit("live", generation, &members[0], "t", 0, 2);
    assert_eq!(h.commit_error(id), Some(ErrorCode::NONE));
    for _ in 0..8 * day / 5_000 {
        h.advance(5_000);
        assert_eq!(
            h.heartbeat("live", &members[0], generation),
            ErrorCode::NONE
        );
    }
    assert!(
        !h.c.latest_image().offsets.contains_key("standalone"),
        "expired"
    );
    assert!(
        h.c.group_state("standalone").is_none(),
        "no offsets left: Dead and forgotten"
    );
    assert_eq!(h.fetch("live", "t", 0, false).offset, 2);
    // Once Empty, the clock starts from the time it became Empty.
    let leave = h.send(Request::LeaveGroup(LeaveGroup {
        group_id: "live".into(),
        members: vec![LeavingMember {
            member_id: members[0].clone(),
            group_instance_id: None,
        }],
    }));
    h.take(leave);
    h.advance(6 * day);
    assert_eq!(
        h.fetch("live", "t", 0, false).offset,
        2,
        "not yet: 6 days Empty"
    );
    h.advance(day + 600_000);
    assert_eq!(
        h.fetch("live", "t", 0, false).offset,
        -1,
        "expired 7 days after becoming Empty"
    );
    assert!(h.c.group_state("live").is_none());
    assert!(
        !h.c.latest_image().groups.contains_key("live"),
        "tombstoned"
    );
    let reloaded = h.reload();
    assert_eq!(reloaded.latest_image(), h.c.latest_image());
}

#[test]
fn list_describe_delete_and_offset_delete() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group("g", 1);
    let id = h.commit("g", generation, &members[0], "t", 0, 5);
    h.take(id);
    let id = h.commit("g", generation, &members[0], "other", 0, 5);
    h.take(id);
    let id = h.send(Request::ListGroups(ListGroups {
        states_filter: vec!["stable".into()],
    }));
    let Some(Response::ListGroups(list)) = h.take(id) else {
        panic!()
    };
    assert_eq!(list.groups.len(), 1);
    assert_eq!(
        (
            list.groups[0].group_id.as_str(),
            list.groups[0].group_state.as_str()
        ),
        ("g", "Stable")
    );
    let id = h.send(Request::ListGroups(ListGroups {
        states_filter: vec!["Empty".into()],
    }));
    let Some(Response::ListGroups(list)) = h.take(id) else {
        panic!()
    };
    assert!(list.groups.is_empty());
    let id = h.send(Request::DescribeGroups(DescribeGroups {
        groups: vec!["g".into(), "nope".into()],
    }));
    let Some(Response::DescribeGroups(d)) = h.take(id) else {
        panic!()
    };
    assert_eq!(
        d[0].members[0].member_assignment,
        Bytes::from(members[0].clone())
    );
    assert_eq!(d[0].protocol_data, "range");
    assert_eq!(
        (d[1].group_state.as_str(), d[1].error_code),
        ("Dead", ErrorCode::NONE)
    );
    // The members subscribe to "t" only (KIP-496).
    let id = h.send(Request::OffsetDelete(OffsetDelete {
        group_id: "g".into(),
        topics: vec![("t".into(), vec![0]), ("other".into(), vec![0])],
    }));
    let Some(Response::OffsetDelete(r)) = h.take(id) else {
        panic!()
    };
    assert_eq!(r.topics[0].1[0].1, ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC);
    assert_eq!(r.topics[1].1[0].1, ErrorCode::NONE);
    assert_eq!(h.fetch("g", "other", 0, false).offset, -1);
    let id = h.send(Request::DeleteGroups(DeleteGroups {
        groups: vec!["g".into(), "nope".into()],
    }));
    assert_eq!(
        h.take(id),
        Some(Response::DeleteGroups(vec![
            ("g".into(), ErrorCode::NON_EMPTY_GROUP),
            ("nope".into(), ErrorCode::GROUP_ID_NOT_FOUND)
        ]))
    );
    let leave = h.send(Request::LeaveGroup(LeaveGroup {
        group_id: "g".into(),
        members: vec![LeavingMember {
            member_id: members[0].clone(),
            group_instance_id: None,
        }],
    }));
    h.take(leave);
    let id = h.send(Request::DeleteGroups(DeleteGroups {
        groups: vec!["g".into()],
    }));
    assert_eq!(
        h.take(id),
        Some(Response::DeleteGroups(vec![("g".into(), ErrorCode::NONE)]))
    );
    assert!(h.c.group_state("g").is_none());
    assert_eq!(h.fetch("g", "t", 0, false).offset, -1);
    assert_eq!(h.c.latest_image(), &GroupImage::default());
}
