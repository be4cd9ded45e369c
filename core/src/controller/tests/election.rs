//! Preferred leader election (KIP-460 ElectLeaders), `auto.leader.rebalance.enable`, and
//! unclean election.

use super::*;
use crate::rpc::{AlterPartitionRequest, ElectLeadersRequest};

/// Brokers 1, 2, 3; "t" with 3 partitions on all three; broker 1's session expired (its
/// leadership moved) and it came back unfenced but out of every ISR. Returns the partition
/// whose preferred leader is 1.
fn deposed(config: ControllerConfig) -> (Harness, BTreeMap<i32, i64>, i32) {
    let mut h = Harness::with(config);
    let epochs = h.start_brokers(&[1, 2, 3]);
    h.create_topic("t", 3, 3);
    let p = (0..3)
        .find(|p| h.partition("t", *p).replicas[0] == NodeId(1))
        .unwrap();
    h.advance_ms(9_001);
    h.heartbeat(2, epochs[&2]);
    h.heartbeat(3, epochs[&3]);
    h.tick();
    h.heartbeat(1, epochs[&1]);
    assert!(!h.image().brokers[&NodeId(1)].fenced);
    let part = h.partition("t", p);
    assert_ne!(part.leader, Some(NodeId(1)));
    assert!(!part.isr.contains(&NodeId(1)));
    (h, epochs, p)
}

/// The leader of `t-p` adds broker 1 back to the ISR (a follower caught up, KIP-497).
fn rejoin(h: &mut Harness, epochs: &BTreeMap<i32, i64>, p: i32) {
    let part = h.partition("t", p);
    let leader = part.leader.unwrap();
    let mut isr = part.isr.clone();
    isr.push(NodeId(1));
    let response = h.handle(Request::AlterPartition(AlterPartitionRequest {
        broker_id: leader,
        broker_epoch: epochs[&leader.0],
        topic: "t".into(),
        partition: p,
        leader_epoch: part.leader_epoch,
        partition_epoch: part.partition_epoch,
        new_isr: isr,
    }));
    assert!(
        matches!(response, Response::AlterPartition { error_code: 0, .. }),
        "{response:?}"
    );
}

fn elect(h: &mut Harness, partitions: Option<Vec<(&str, i32)>>) -> Vec<(i32, ErrorCode)> {
    let partitions = partitions.map(|l| l.into_iter().map(|(t, p)| (t.to_string(), p)).collect());
    match h.handle(Request::ElectLeaders(ElectLeadersRequest { partitions })) {
        Response::Topics(results) => results.iter().map(|r| (r.partition, code(r))).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn kip460_preferred_election() {
    let (mut h, epochs, p) = deposed(config());
    let other = (0..3).find(|q| *q != p).unwrap();
    // The preferred replica is unfenced but not in the ISR: not available.
    assert_eq!(
        elect(
            &mut h,
            Some(vec![("t", p), ("t", other), ("nope", 0), ("t", 9)])
        ),
        vec![
            (p, ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE),
            (other, ErrorCode::ELECTION_NOT_NEEDED),
            (0, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
            (9, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    rejoin(&mut h, &epochs, p);
    let before = h.partition("t", p);
    // `None` = every partition; those already led by their preferred replica are left out.
    assert_eq!(elect(&mut h, None), vec![(p, ErrorCode::NONE)]);
    let after = h.partition("t", p);
    assert_eq!(after.leader, Some(NodeId(1)));
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(after.partition_epoch, before.partition_epoch + 1);
    assert_eq!(after.isr, before.isr, "leadership moves; the ISR stays");
    assert_eq!(elect(&mut h, None), vec![]);
    assert_eq!(
        elect(&mut h, Some(vec![("t", p)])),
        vec![(p, ErrorCode::ELECTION_NOT_NEEDED)]
    );
}

#[test]
fn kip460_preferred_replica_fenced_is_not_available() {
    let (mut h, epochs, p) = deposed(config());
    rejoin(&mut h, &epochs, p);
    let offset = h.image().offset;
    h.handle(Request::Heartbeat {
        broker_id: NodeId(1),
        broker_epoch: epochs[&1],
        metadata_offset: offset,
        want_shutdown: true,
    });
    assert_eq!(
        elect(&mut h, Some(vec![("t", p)])),
        vec![(p, ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE)]
    );
}

#[test]
fn auto_leader_rebalance_runs_after_the_interval() {
    let cases = [("on", true, true), ("off", false, false)];
    for (name, enabled, moves) in cases {
        let config = ControllerConfig {
            auto_leader_rebalance: enabled,
            leader_imbalance_check_interval_ms: 60_000,
            ..config()
        };
        let (mut h, epochs, p) = deposed(config);
        rejoin(&mut h, &epochs, p);
        let activated = Instant::from_millis(1_000); // Harness::with activates here
        let due = activated.saturating_add_millis(60_000);
        if enabled {
            assert!(
                h.controller.next_deadline().unwrap() <= due,
                "{name}: the check is scheduled"
            );
        }
        // Keep every session alive up to just before the check.
        while h.now.saturating_add_millis(1_000) < due {
            h.advance_ms(1_000);
            h.heartbeat_all(&epochs);
            h.tick();
        }
        assert_ne!(
            h.partition("t", p).leader,
            Some(NodeId(1)),
            "{name}: not before the interval"
        );
        h.now = due;
        h.heartbeat_all(&epochs);
        h.tick();
        assert_eq!(
            h.partition("t", p).leader == Some(NodeId(1)),
            moves,
            "{name}"
        );
    }
}

#[test]
fn unclean_election_only_when_enabled() {
    for unclean in [false, true] {
        let mut h = Harness::with(ControllerConfig {
            unclean_leader_election: unclean,
            ..config()
        });
        let epochs = h.start_brokers(&[1, 2]);
        let mut topic = new_topic("u", -1, -1);
        topic.assignments.insert(0, nodes(&[1, 2]));
        h.handle(Request::CreateTopics(CreateTopicsRequest {
            topics: vec![topic],
            validate_only: false,
        }));
        // The leader shrinks the ISR to itself (broker 2 fell behind).
        h.handle(Request::AlterPartition(AlterPartitionRequest {
            broker_id: NodeId(1),
            broker_epoch: epochs[&1],
            topic: "u".into(),
            partition: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: nodes(&[1]),
        }));
        let offset = h.image().offset;
        h.handle(Request::Heartbeat {
            broker_id: NodeId(1),
            broker_epoch: epochs[&1],
            metadata_offset: offset,
            want_shutdown: true,
        });
        let p = h.partition("u", 0);
        if unclean {
            assert_eq!(
                (p.leader, p.isr.clone()),
                (Some(NodeId(2)), nodes(&[2])),
                "unclean: an out-of-sync replica leads"
            );
        } else {
            assert_eq!(
                (p.leader, p.isr.clone()),
                (None, nodes(&[1])),
                "clean: offline, ISR remembers 1"
            );
        }
    }
}
