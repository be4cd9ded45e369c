//! Offline replicas (KIP-858's offline log directories, per partition): a report moves
//! leadership and shrinks the ISR, the last ISR member stays, an offline replica is never
//! elected nor added back, and re-registration or a healthy report clears the mark.

use super::*;
use crate::rpc::{AlterPartitionRequest, ElectLeadersRequest};

/// Brokers 1..=3 unfenced; "t" with partitions 0 on [1, 2, 3] and 1 on [2, 3, 1] (leaders 1
/// and 2, full ISRs).
fn setup() -> (Harness, BTreeMap<i32, i64>) {
    setup_with(config())
}

fn setup_with(config: ControllerConfig) -> (Harness, BTreeMap<i32, i64>) {
    let mut h = Harness::with(config);
    let epochs = h.start_brokers(&[1, 2, 3]);
    let mut topic = new_topic("t", -1, -1);
    topic.assignments.insert(0, nodes(&[1, 2, 3]));
    topic.assignments.insert(1, nodes(&[2, 3, 1]));
    let response = h.handle(Request::CreateTopics(CreateTopicsRequest {
        topics: vec![topic],
        validate_only: false,
    }));
    assert!(
        matches!(&response, Response::Topics(r) if r[0].error_code == 0),
        "{response:?}"
    );
    assert_eq!(h.partition("t", 0).leader, Some(NodeId(1)));
    assert_eq!(h.partition("t", 1).leader, Some(NodeId(2)));
    (h, epochs)
}

fn report(
    h: &mut Harness,
    broker: i32,
    epoch: i64,
    partitions: &[(&str, i32)],
) -> (Response, Vec<MetadataRecord>) {
    h.handle_records(Request::OfflineReplicas {
        broker_id: NodeId(broker),
        broker_epoch: epoch,
        partitions: partitions
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect(),
    })
}

/// t-0's current leader asks for ISR `isr` with the current epochs (KIP-497).
fn alter_isr(h: &mut Harness, epochs: &BTreeMap<i32, i64>, isr: &[i32]) -> Response {
    let p = h.partition("t", 0);
    let leader = p.leader.expect("t-0 has a leader");
    h.handle(Request::AlterPartition(AlterPartitionRequest {
        broker_id: leader,
        broker_epoch: epochs[&leader.0],
        topic: "t".into(),
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: nodes(isr),
    }))
}

fn ok() -> Response {
    Response::OfflineReplicas { error_code: 0 }
}

fn offline_of(h: &Harness, broker: i32) -> Vec<(String, i32)> {
    h.image()
        .offline_replicas
        .get(&NodeId(broker))
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn kip858_report_moves_leadership_to_an_isr_member_and_shrinks_the_isr() {
    /// (case, reporting broker, partition, expected leader, expected ISR, leader epoch bumped)
    type Case = (&'static str, i32, i32, i32, &'static [i32], bool);
    let cases: &[Case] = &[
        ("leader offline", 1, 0, 2, &[2, 3], true),
        ("follower offline", 3, 0, 1, &[1, 2], false),
        ("leader of the other partition", 2, 1, 3, &[3, 1], true),
    ];
    for (case, broker, partition, leader, isr, bumped) in cases {
        let (mut h, epochs) = setup();
        let before = h.partition("t", *partition);
        let untouched = 1 - partition;
        let other_before = h.partition("t", untouched);
        let (response, records) = report(&mut h, *broker, epochs[broker], &[("t", *partition)]);
        assert_eq!(response, ok(), "{case}");
        assert!(
            matches!(records[0], MetadataRecord::OfflineReplicas { .. }),
            "{case}: the report first, then the partition changes: {records:?}"
        );
        let after = h.partition("t", *partition);
        assert_eq!(after.leader, Some(NodeId(*leader)), "{case}");
        assert_eq!(after.isr, nodes(isr), "{case}");
        assert_eq!(
            after.leader_epoch,
            before.leader_epoch + i32::from(*bumped),
            "{case}"
        );
        assert_eq!(after.partition_epoch, before.partition_epoch + 1, "{case}");
        assert_eq!(
            h.partition("t", untouched),
            other_before,
            "{case}: the broker's other replica is not offline"
        );
        assert_eq!(offline_of(&h, *broker), vec![("t".to_string(), *partition)]);
        assert!(
            !h.image().brokers[&NodeId(*broker)].fenced,
            "{case}: the broker itself stays unfenced"
        );
    }
}

#[test]
fn kip858_repeated_unknown_and_stale_reports_change_nothing() {
    let (mut h, epochs) = setup();
    let (_, records) = report(&mut h, 1, epochs[&1], &[("t", 0)]);
    assert!(!records.is_empty());
    let offset = h.image().offset;
    /// (case, broker, epoch, partitions, expected error code)
    type Case<'a> = (&'a str, i32, i64, &'a [(&'a str, i32)], i16);
    let cases: &[Case] = &[
        (
            "the same set again",
            1,
            epochs[&1],
            &[("t", 0), ("t", 0)],
            0,
        ),
        (
            "plus unknown partitions",
            1,
            epochs[&1],
            &[("t", 0), ("t", 9), ("nope", 0)],
            0,
        ),
        ("an old incarnation", 2, epochs[&2] - 1, &[("t", 0)], 77),
        ("an unknown broker", 9, epochs[&1], &[("t", 0)], 77),
    ];
    for (case, broker, epoch, partitions, code) in cases {
        let (response, records) = report(&mut h, *broker, *epoch, partitions);
        assert_eq!(
            response,
            Response::OfflineReplicas { error_code: *code },
            "{case}"
        );
        assert!(records.is_empty(), "{case}: {records:?}");
        assert_eq!(h.image().offset, offset, "{case}");
    }
    assert_eq!(offline_of(&h, 1), vec![("t".to_string(), 0)]);
    assert!(offline_of(&h, 2).is_empty());
}

#[test]
fn kip858_last_isr_member_stays_and_the_partition_goes_leaderless() {
    for unclean in [false, true] {
        let (mut h, epochs) = setup_with(ControllerConfig {
            unclean_leader_election: unclean,
            ..config()
        });
        // Leader 1 shrinks t-0's ISR to itself (its followers lag).
        let response = alter_isr(&mut h, &epochs, &[1]);
        assert!(
            matches!(response, Response::AlterPartition { error_code: 0, .. }),
            "{response:?}"
        );
        report(&mut h, 1, epochs[&1], &[("t", 0)]);
        let p = h.partition("t", 0);
        if unclean {
            // Unclean election takes the first eligible replica outside the ISR.
            assert_eq!(p.leader, Some(NodeId(2)), "unclean");
            assert_eq!(p.isr, nodes(&[2]), "unclean");
            continue;
        }
        assert_eq!(p.leader, None, "no other ISR member: leaderless");
        assert_eq!(p.isr, nodes(&[1]), "the ISR is never empty");
        assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
        // Nothing can be elected: not by a tick, not by a heartbeat, not by ElectLeaders.
        assert!(h.tick().is_empty());
        assert!(h.controller.next_deadline().is_none_or(|d| d > h.now));
        h.heartbeat_all(&epochs);
        let elect = h.handle(Request::ElectLeaders(ElectLeadersRequest {
            partitions: Some(vec![("t".into(), 0)]),
        }));
        assert!(
            matches!(&elect, Response::Topics(r) if r[0].error_code == ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE.0),
            "{elect:?}"
        );
        assert_eq!(h.partition("t", 0).leader, None);
    }
}

#[test]
fn kip858_offline_replica_is_never_elected_nor_added_back() {
    let (mut h, epochs) = setup();
    // Broker 2's replica of t-0 is offline: t-0 is led by 1 with ISR [1, 3].
    report(&mut h, 2, epochs[&2], &[("t", 0)]);
    assert_eq!(h.partition("t", 0).isr, nodes(&[1, 3]));

    let response = alter_isr(&mut h, &epochs, &[1, 2, 3]);
    assert_eq!(
        response,
        Response::AlterPartition {
            error_code: ErrorCode::INELIGIBLE_REPLICA.0,
            partition: None
        },
        "the leader cannot add the offline replica back"
    );

    // Broker 1 is fenced, then broker 3 too: 2 is unfenced but offline for t-0, so t-0 goes
    // leaderless rather than to 2; t-1 (2's replica there is fine) is led by 2.
    h.advance_ms(9_001);
    h.heartbeat(2, epochs[&2]);
    h.heartbeat(3, epochs[&3]);
    h.tick();
    assert_eq!(h.partition("t", 0).leader, Some(NodeId(3)));
    h.advance_ms(9_001);
    h.heartbeat(2, epochs[&2]);
    h.tick();
    let p = h.partition("t", 0);
    assert_eq!(p.leader, None, "2 is offline for t-0: {p:?}");
    assert_eq!(p.isr, nodes(&[3]), "the last member stays");
    assert_eq!(h.partition("t", 1).leader, Some(NodeId(2)));
    assert!(h.tick().is_empty());

    // Preferred election cannot pick it either.
    let (mut h, epochs) = setup();
    report(&mut h, 1, epochs[&1], &[("t", 0)]);
    let response = h.handle(Request::ElectLeaders(ElectLeadersRequest {
        partitions: Some(vec![("t".into(), 0)]),
    }));
    assert!(
        matches!(&response, Response::Topics(r) if r[0].error_code == ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE.0),
        "{response:?}"
    );
    assert_eq!(h.partition("t", 0).leader, Some(NodeId(2)));
}

#[test]
fn kip858_reregistration_clears_the_mark_and_catch_up_brings_the_replica_back() {
    let (mut h, epochs) = setup();
    report(&mut h, 1, epochs[&1], &[("t", 0), ("t", 1)]);
    assert_eq!(offline_of(&h, 1).len(), 2);
    assert_eq!(h.partition("t", 0).isr, nodes(&[2, 3]));

    // A restart: the new incarnation's registration clears the mark in its own batch.
    let epoch = h.register(1);
    assert!(offline_of(&h, 1).is_empty(), "registration clears the mark");
    h.heartbeat(1, epoch);
    assert!(!h.image().brokers[&NodeId(1)].fenced);
    // It caught up: the leader (2) expands the ISR, which the controller now accepts.
    assert_eq!(h.partition("t", 0).leader, Some(NodeId(2)));
    let response = alter_isr(&mut h, &epochs, &[2, 3, 1]);
    assert!(
        matches!(response, Response::AlterPartition { error_code: 0, .. }),
        "{response:?}"
    );
    assert_eq!(h.partition("t", 0).isr, nodes(&[2, 3, 1]));
}

#[test]
fn kip858_healthy_report_clears_the_mark_and_a_waiting_partition_elects_it() {
    let (mut h, epochs) = setup();
    // Shrink t-0 to [1], then 1's replica goes offline: leaderless, waiting for 1.
    alter_isr(&mut h, &epochs, &[1]);
    report(&mut h, 1, epochs[&1], &[("t", 0), ("t", 1)]);
    assert_eq!(h.partition("t", 0).leader, None);

    // t-0 opens again (t-1 still fails): the same batch elects 1 for t-0.
    let (response, records) = report(&mut h, 1, epochs[&1], &[("t", 1)]);
    assert_eq!(response, ok());
    assert_eq!(
        records.len(),
        2,
        "the report and t-0's election: {records:?}"
    );
    assert_eq!(offline_of(&h, 1), vec![("t".to_string(), 1)]);
    let p = h.partition("t", 0);
    assert_eq!(p.leader, Some(NodeId(1)));
    assert_eq!((p.leader_epoch, p.partition_epoch), (2, 3));

    // Everything is back: an empty report clears the set; t-1 rejoins by ISR expansion only.
    let (response, records) = report(&mut h, 1, epochs[&1], &[]);
    assert_eq!(response, ok());
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(!h.image().offline_replicas.contains_key(&NodeId(1)));
    assert!(!h.partition("t", 1).isr.contains(&NodeId(1)));
}

#[test]
fn kip858_deleted_topic_takes_its_marks_along() {
    let (mut h, epochs) = setup();
    report(&mut h, 3, epochs[&3], &[("t", 0)]);
    assert!(!offline_of(&h, 3).is_empty());
    h.handle(Request::DeleteTopics {
        names: vec!["t".into()],
    });
    assert!(
        h.image().offline_replicas.is_empty(),
        "a deleted topic's marks go with it"
    );
    // A new topic of the same name starts with every replica online.
    assert_eq!(code(&h.create_topic("t", 1, 3)), ErrorCode::NONE);
    assert_eq!(h.partition("t", 0).isr.len(), 3);
}
