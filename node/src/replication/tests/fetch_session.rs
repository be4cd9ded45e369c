//! The follower's fetch session (KIP-227): full then incremental requests, what an incremental
//! request lists (position or durable end changed, added) and forgets, and the fall-back to a
//! full request after every kind of failure.

use std::collections::BTreeMap;

use strata_core::ErrorCode;

use super::*;
use crate::fetch_session::PartitionFetch;

fn position(fetch_offset: i64, durable_end: i64) -> Position {
    Position {
        fetch_offset,
        log_start_offset: 0,
        current_leader_epoch: 1,
        partition_max_bytes: 1 << 20,
        durable_end,
    }
}

fn wanted(parts: &[(&str, i32, i64, i64)]) -> BTreeMap<Key, Position> {
    parts
        .iter()
        .map(|&(t, p, offset, durable)| ((t.to_string(), p), position(offset, durable)))
        .collect()
}

/// `(topic, partition, fetch offset, reported durable end)` of every partition a plan lists.
fn listed(plan: &SessionPlan) -> Vec<(String, i32, i64, i64)> {
    plan.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let parsed = PartitionFetch::from_request(p);
                let end = parsed.reported_durable_end();
                (t.topic.0.to_string(), p.partition, p.fetch_offset, end)
            })
        })
        .collect()
}

fn forgotten(plan: &SessionPlan) -> Vec<(String, i32)> {
    plan.forgotten
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
        .collect()
}

fn row(t: &str, p: i32, offset: i64, durable: i64) -> (String, i32, i64, i64) {
    (t.to_string(), p, offset, durable)
}

/// A session established with id 9 over a-0 and a-1 (both at 10, durable to 10).
fn established() -> FollowerSession {
    let mut s = FollowerSession::default();
    let plan = s.plan(wanted(&[("a", 0, 10, 10), ("a", 1, 10, 10)]));
    assert_eq!((plan.session_id, plan.session_epoch), (0, 0));
    assert_eq!(plan.listed(), 2, "the first request is full");
    assert!(s.on_answer(plan, ErrorCode::NONE, 9));
    s
}

#[test]
fn an_incremental_request_lists_only_what_changed() {
    let mut s = established();
    let same = wanted(&[("a", 0, 10, 10), ("a", 1, 10, 10)]);
    let plan = s.plan(same.clone());
    assert_eq!((plan.session_id, plan.session_epoch), (9, 1));
    assert_eq!(plan.listed(), 0, "nothing moved: nothing listed");
    assert!(s.on_answer(plan, ErrorCode::NONE, 9));
    // a-1 appended (fetch offset moves, durable end not yet).
    let plan = s.plan(wanted(&[("a", 0, 10, 10), ("a", 1, 15, 10)]));
    assert_eq!(plan.session_epoch, 2);
    assert_eq!(listed(&plan), [row("a", 1, 15, 10)]);
    assert!(s.on_answer(plan, ErrorCode::NONE, 9));
    // Its flush completed: only the durable end moved, and that alone resends it.
    let plan = s.plan(wanted(&[("a", 0, 10, 10), ("a", 1, 15, 15)]));
    assert_eq!(listed(&plan), [row("a", 1, 15, 15)]);
}

#[test]
fn added_partitions_are_listed_and_dropped_ones_forgotten() {
    let s = established();
    let plan = s.plan(wanted(&[("a", 1, 10, 10), ("b", 0, 0, 0)]));
    assert_eq!(listed(&plan), [row("b", 0, 0, 0)]);
    assert_eq!(forgotten(&plan), [("a".to_string(), 0)]);
}

#[test]
fn a_request_without_an_answer_is_not_taken_as_sent() {
    let mut s = established();
    let moved = wanted(&[("a", 0, 12, 10), ("a", 1, 10, 10)]);
    let plan = s.plan(moved.clone());
    assert_eq!(plan.listed(), 1);
    drop(plan);
    s.on_failure();
    let plan = s.plan(moved);
    assert_eq!(
        (plan.session_id, plan.session_epoch),
        (9, 0),
        "full, closing session 9"
    );
    assert_eq!(plan.listed(), 2);
    assert!(forgotten(&plan).is_empty());
}

#[test]
fn session_errors_fall_back_to_a_full_request() {
    let cases = [
        (ErrorCode::FETCH_SESSION_ID_NOT_FOUND, 0),
        (ErrorCode::INVALID_FETCH_SESSION_EPOCH, 9),
    ];
    for (error, closes) in cases {
        let mut s = established();
        let same = wanted(&[("a", 0, 10, 10), ("a", 1, 10, 10)]);
        let plan = s.plan(same.clone());
        assert!(!s.on_answer(plan, error, 0), "{error:?}: nothing to apply");
        let plan = s.plan(same);
        assert_eq!(
            (plan.session_id, plan.session_epoch),
            (closes, 0),
            "{error:?}"
        );
        assert_eq!(plan.listed(), 2, "{error:?}");
    }
}

#[test]
fn no_slot_on_the_leader_keeps_every_request_full() {
    let mut s = FollowerSession::default();
    let all = wanted(&[("a", 0, 10, 10)]);
    for _ in 0..3 {
        let plan = s.plan(all.clone());
        assert_eq!(
            (plan.session_id, plan.session_epoch, plan.listed()),
            (0, 0, 1)
        );
        assert!(s.on_answer(plan, ErrorCode::NONE, 0));
    }
}

#[test]
fn an_answer_outside_our_session_starts_over() {
    let mut s = established();
    let same = wanted(&[("a", 0, 10, 10), ("a", 1, 10, 10)]);
    let plan = s.plan(same.clone());
    assert!(
        s.on_answer(plan, ErrorCode::NONE, 0),
        "its partitions still apply"
    );
    let plan = s.plan(same);
    assert_eq!(
        (plan.session_id, plan.session_epoch, plan.listed()),
        (0, 0, 2)
    );
}
