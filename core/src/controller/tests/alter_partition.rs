//! AlterPartition (KIP-497): each error in order, the no-op, and success.

use super::*;
use crate::rpc::AlterPartitionRequest;

/// Brokers 1..=4 unfenced, "t" with one partition on 1, 2, 3 (leader 1), then broker 4 fenced.
fn setup() -> (Harness, BTreeMap<i32, i64>) {
    let mut h = Harness::new();
    let epochs = h.start_brokers(&[1, 2, 3]);
    let mut topic = new_topic("t", -1, -1);
    topic.assignments.insert(0, nodes(&[1, 2, 3]));
    let response = h.handle(Request::CreateTopics(CreateTopicsRequest {
        topics: vec![topic],
        validate_only: false,
    }));
    assert!(
        matches!(&response, Response::Topics(r) if r[0].error_code == 0),
        "{response:?}"
    );
    let mut epochs = epochs;
    epochs.insert(4, h.register(4)); // registered, fenced
    assert_eq!(h.partition("t", 0).leader, Some(NodeId(1)));
    (h, epochs)
}

fn alter(epochs: &BTreeMap<i32, i64>, change: impl FnOnce(&mut AlterPartitionRequest)) -> Request {
    let mut request = AlterPartitionRequest {
        broker_id: NodeId(1),
        broker_epoch: epochs[&1],
        topic: "t".into(),
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: nodes(&[1, 2]),
    };
    change(&mut request);
    Request::AlterPartition(request)
}

#[test]
fn kip497_alter_partition_errors_in_order() {
    type Change = fn(&mut AlterPartitionRequest, &BTreeMap<i32, i64>);
    let cases: &[(&str, Change, ErrorCode)] = &[
        (
            "unknown topic",
            |r, _| r.topic = "nope".into(),
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            "unknown partition",
            |r, _| r.partition = 7,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            "unknown topic beats stale epoch",
            |r, _| {
                r.topic = "nope".into();
                r.broker_epoch = -5
            },
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        ),
        (
            "stale broker epoch",
            |r, _| r.broker_epoch -= 1,
            ErrorCode::STALE_BROKER_EPOCH,
        ),
        (
            "unregistered broker",
            |r, _| r.broker_id = NodeId(9),
            ErrorCode::STALE_BROKER_EPOCH,
        ),
        (
            "stale epoch beats not-leader",
            |r, e| {
                r.broker_id = NodeId(2);
                r.broker_epoch = e[&1]
            },
            ErrorCode::STALE_BROKER_EPOCH,
        ),
        (
            "older leader epoch",
            |r, _| r.leader_epoch = -1,
            ErrorCode::FENCED_LEADER_EPOCH,
        ),
        (
            "newer leader epoch",
            |r, _| r.leader_epoch = 1,
            ErrorCode::FENCED_LEADER_EPOCH,
        ),
        (
            "not the leader",
            |r, e| {
                r.broker_id = NodeId(2);
                r.broker_epoch = e[&2]
            },
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
        ),
        (
            "stale partition epoch",
            |r, _| r.partition_epoch = 3,
            ErrorCode::INVALID_UPDATE_VERSION,
        ),
        (
            "ISR without the leader",
            |r, _| r.new_isr = nodes(&[2, 3]),
            ErrorCode::INELIGIBLE_REPLICA,
        ),
        (
            "empty ISR",
            |r, _| r.new_isr = vec![],
            ErrorCode::INELIGIBLE_REPLICA,
        ),
        (
            "ISR names a non-replica",
            |r, _| r.new_isr = nodes(&[1, 2, 5]),
            ErrorCode::INELIGIBLE_REPLICA,
        ),
        (
            "ISR names a broker twice",
            |r, _| r.new_isr = nodes(&[1, 2, 2]),
            ErrorCode::INELIGIBLE_REPLICA,
        ),
    ];
    for (name, change, expected) in cases {
        let (mut h, epochs) = setup();
        let request = alter(&epochs, |r| change(r, &epochs));
        let (response, records) = h.handle_records(request);
        let Response::AlterPartition {
            error_code,
            partition,
        } = response
        else {
            panic!("{name}: {response:?}")
        };
        assert_eq!(ErrorCode(error_code), *expected, "{name}");
        assert!(records.is_empty(), "{name}: no records on error");
        if *expected == ErrorCode::INVALID_UPDATE_VERSION {
            let current = partition.expect("INVALID_UPDATE_VERSION carries the current partition");
            assert_eq!(current.partition_epoch, 0, "{name}");
        } else {
            assert_eq!(partition, None, "{name}");
        }
    }
}

#[test]
fn kip497_expansion_only_adds_unfenced_brokers() {
    let (mut h, epochs) = setup();
    // Shrink to [1, 2], then try to add 3 back while it is fenced.
    let Response::AlterPartition {
        error_code: 0,
        partition: Some(shrunk),
    } = h.handle(alter(&epochs, |_| {}))
    else {
        panic!()
    };
    assert_eq!(shrunk.isr, nodes(&[1, 2]));
    let offset = h.image().offset;
    h.handle(Request::Heartbeat {
        broker_id: NodeId(3),
        broker_epoch: epochs[&3],
        metadata_offset: offset,
        want_shutdown: true,
    });
    assert!(h.image().brokers[&NodeId(3)].fenced);
    let pe = h.partition("t", 0).partition_epoch;
    let response = h.handle(alter(&epochs, |r| {
        r.partition_epoch = pe;
        r.new_isr = nodes(&[1, 2, 3])
    }));
    assert!(
        matches!(
            response,
            Response::AlterPartition {
                error_code: 107,
                ..
            }
        ),
        "{response:?}"
    );
    // Unfenced again: the expansion goes through.
    h.heartbeat(3, epochs[&3]);
    let response = h.handle(alter(&epochs, |r| {
        r.partition_epoch = pe;
        r.new_isr = nodes(&[1, 2, 3])
    }));
    assert!(
        matches!(response, Response::AlterPartition { error_code: 0, .. }),
        "{response:?}"
    );
    assert_eq!(h.partition("t", 0).isr, nodes(&[1, 2, 3]));
}

#[test]
fn kip497_alter_partition_success_bumps_partition_epoch_only() {
    let (mut h, epochs) = setup();
    let (response, records) = h.handle_records(alter(&epochs, |_| {}));
    let Response::AlterPartition {
        error_code: 0,
        partition: Some(p),
    } = response
    else {
        panic!("{response:?}")
    };
    assert_eq!(
        records,
        vec![MetadataRecord::Partition(p.clone())],
        "the response is the committed record"
    );
    assert_eq!(
        (p.leader, p.leader_epoch, p.partition_epoch),
        (Some(NodeId(1)), 0, 1)
    );
    assert_eq!(p.isr, nodes(&[1, 2]));
    assert_eq!(h.partition("t", 0).isr, nodes(&[1, 2]));

    // The same ISR again (any order): success, current state, no records.
    let (response, records) = h.handle_records(alter(&epochs, |r| {
        r.partition_epoch = 1;
        r.new_isr = nodes(&[2, 1])
    }));
    assert_eq!(
        response,
        Response::AlterPartition {
            error_code: 0,
            partition: Some(p)
        }
    );
    assert!(records.is_empty());
}
