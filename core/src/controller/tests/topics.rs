//! CreateTopics, DeleteTopics, CreatePartitions: validation and even placement.

use super::*;
use crate::controller::INVALID_REPLICA_ASSIGNMENT;
use crate::rpc::CreatePartitionsRequest;

fn create(
    h: &mut Harness,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> (Vec<TopicResult>, Vec<MetadataRecord>) {
    match h.handle_records(Request::CreateTopics(CreateTopicsRequest {
        topics,
        validate_only,
    })) {
        (Response::Topics(results), records) => (results, records),
        other => panic!("{other:?}"),
    }
}

fn manual(name: &str, assignment: &[(i32, &[i32])]) -> NewTopic {
    let mut t = new_topic(name, -1, -1);
    for (p, replicas) in assignment {
        t.assignments.insert(*p, nodes(replicas));
    }
    t
}

#[test]
fn create_topics_validation_table() {
    let long = "x".repeat(250);
    let max = "y".repeat(249);
    let cases: Vec<(&str, NewTopic, ErrorCode)> = vec![
        ("ok", new_topic("fresh", 2, 2), ErrorCode::NONE),
        ("defaults", new_topic("defaults", -1, -1), ErrorCode::NONE),
        ("249 chars", new_topic(&max, 1, 1), ErrorCode::NONE),
        (
            "empty name",
            new_topic("", 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "dot",
            new_topic(".", 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "dot dot",
            new_topic("..", 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "250 chars",
            new_topic(&long, 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "slash",
            new_topic("a/b", 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "space",
            new_topic("a b", 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "non-ascii",
            new_topic("é", 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "exists",
            new_topic("existing", 1, 1),
            ErrorCode::TOPIC_ALREADY_EXISTS,
        ),
        (
            "collides with existing",
            new_topic("ex.a", 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "bad name beats exists",
            new_topic("existing!", 1, 1),
            ErrorCode::INVALID_TOPIC_EXCEPTION,
        ),
        (
            "zero partitions",
            new_topic("p0", 0, 1),
            ErrorCode::INVALID_PARTITIONS,
        ),
        (
            "-2 partitions",
            new_topic("pm2", -2, 1),
            ErrorCode::INVALID_PARTITIONS,
        ),
        (
            "too many partitions",
            new_topic("pbig", i32::MAX, 1),
            ErrorCode::INVALID_PARTITIONS,
        ),
        (
            "zero replicas",
            new_topic("r0", 1, 0),
            ErrorCode::INVALID_REPLICATION_FACTOR,
        ),
        (
            "-2 replicas",
            new_topic("rm2", 1, -2),
            ErrorCode::INVALID_REPLICATION_FACTOR,
        ),
        (
            "more replicas than unfenced brokers",
            new_topic("r4", 1, 4),
            ErrorCode::INVALID_REPLICATION_FACTOR,
        ),
        (
            "manual ok",
            manual("m", &[(0, &[3, 1]), (1, &[2, 3])]),
            ErrorCode::NONE,
        ),
        (
            "manual with counts",
            {
                let mut t = manual("mc", &[(0, &[1])]);
                t.num_partitions = 1;
                t
            },
            ErrorCode::INVALID_REQUEST,
        ),
        (
            "manual gap",
            manual("mg", &[(0, &[1]), (2, &[2])]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "manual not from 0",
            manual("m1", &[(1, &[1])]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "manual duplicate",
            manual("md", &[(0, &[1, 1])]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "manual empty",
            manual("me", &[(0, &[])]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "manual unregistered",
            manual("mu", &[(0, &[1, 9])]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
        (
            "manual all fenced",
            manual("mf", &[(0, &[4])]),
            INVALID_REPLICA_ASSIGNMENT,
        ),
    ];
    for (name, topic, expected) in cases {
        let mut h = Harness::new();
        h.start_brokers(&[1, 2, 3]);
        h.register(4); // registered, fenced
        assert_eq!(code(&h.create_topic("existing", 1, 1)), ErrorCode::NONE);
        assert_eq!(code(&h.create_topic("ex_a", 1, 1)), ErrorCode::NONE);
        let topic_name = topic.name.clone();
        let before = h.image().clone();
        let (results, records) = create(&mut h, vec![topic], false);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].name, topic_name);
        assert_eq!(results[0].partition, -1);
        assert_eq!(
            code(&results[0]),
            expected,
            "{name}: {:?}",
            results[0].error_message
        );
        if expected == ErrorCode::NONE {
            assert!(h.image().topics.contains_key(&topic_name), "{name}");
        } else {
            assert!(
                results[0].error_message.is_some(),
                "{name}: errors explain themselves"
            );
            assert!(records.is_empty(), "{name}");
            assert_eq!(h.image(), &before, "{name}");
        }
    }
}

#[test]
fn create_topic_records_and_initial_state() {
    let mut h = Harness::new();
    h.start_brokers(&[1, 2, 3]);
    let mut topic = new_topic("t", 2, 3);
    topic
        .configs
        .insert("cleanup.policy".into(), "compact".into());
    let (results, records) = create(&mut h, vec![topic], false);
    assert_eq!(code(&results[0]), ErrorCode::NONE);
    assert!(
        matches!(&records[0], MetadataRecord::Topic { name, configs } if name == "t" && configs["cleanup.policy"] == "compact")
    );
    assert_eq!(records.len(), 3, "Topic then one Partition per index");
    for p in 0..2 {
        let part = h.partition("t", p);
        assert_eq!(part.isr, part.replicas, "isr = replicas");
        assert_eq!(
            part.leader,
            part.replicas.first().copied(),
            "leader = first replica"
        );
        assert_eq!((part.leader_epoch, part.partition_epoch), (0, 0));
    }
}

#[test]
fn manual_assignment_leaves_fenced_replicas_out_of_the_isr() {
    let mut h = Harness::new();
    h.start_brokers(&[1, 2]);
    h.register(3); // fenced
    let (results, _) = create(&mut h, vec![manual("m", &[(0, &[3, 2, 1])])], false);
    assert_eq!(code(&results[0]), ErrorCode::NONE);
    let p = h.partition("m", 0);
    assert_eq!(p.replicas, nodes(&[3, 2, 1]));
    assert_eq!(p.isr, nodes(&[2, 1]));
    assert_eq!(p.leader, Some(NodeId(2)));
}

#[test]
fn validate_only_and_duplicates() {
    let mut h = Harness::new();
    h.start_brokers(&[1, 2, 3]);
    let (results, records) = create(
        &mut h,
        vec![new_topic("a", 1, 1), new_topic("b", 0, 1)],
        true,
    );
    assert_eq!(
        results.iter().map(code).collect::<Vec<_>>(),
        vec![ErrorCode::NONE, ErrorCode::INVALID_PARTITIONS]
    );
    assert!(records.is_empty(), "validate_only writes nothing");
    assert!(h.image().topics.is_empty());

    let (results, _) = create(
        &mut h,
        vec![
            new_topic("d", 1, 1),
            new_topic("ok", 1, 1),
            new_topic("d", 1, 1),
        ],
        false,
    );
    assert_eq!(
        results.iter().map(code).collect::<Vec<_>>(),
        vec![
            ErrorCode::INVALID_REQUEST,
            ErrorCode::NONE,
            ErrorCode::INVALID_REQUEST
        ]
    );
    assert_eq!(h.image().topics.keys().collect::<Vec<_>>(), vec!["ok"]);

    // One request creating colliding names: the second collides with the first.
    let (results, _) = create(
        &mut h,
        vec![new_topic("x.y", 1, 1), new_topic("x_y", 1, 1)],
        false,
    );
    assert_eq!(
        results.iter().map(code).collect::<Vec<_>>(),
        vec![ErrorCode::NONE, ErrorCode::INVALID_TOPIC_EXCEPTION]
    );
}

/// Preferred leaders per broker and replica sets of every partition.
fn spread(image: &MetadataImage) -> BTreeMap<NodeId, usize> {
    let mut leaders = BTreeMap::new();
    for topic in image.topics.values() {
        for p in topic.partitions.values() {
            let mut seen = p.replicas.clone();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), p.replicas.len(), "no duplicate replicas: {p:?}");
            *leaders.entry(p.replicas[0]).or_insert(0) += 1;
        }
    }
    leaders
}

#[test]
fn placement_spreads_preferred_leaders_evenly() {
    // 3 brokers, 3 topics x 4 partitions, RF 3: in separate requests and in one.
    for one_request in [false, true] {
        let mut h = Harness::new();
        h.start_brokers(&[1, 2, 3]);
        let topics: Vec<NewTopic> = ["a", "b", "c"].iter().map(|n| new_topic(n, 4, 3)).collect();
        if one_request {
            create(&mut h, topics, false);
        } else {
            for t in topics {
                create(&mut h, vec![t], false);
            }
        }
        let leaders = spread(h.image());
        assert_eq!(leaders.values().sum::<usize>(), 12);
        let (min, max) = (
            leaders.values().min().unwrap(),
            leaders.values().max().unwrap(),
        );
        assert!(max - min <= 1, "one_request={one_request}: {leaders:?}");
        assert_eq!(leaders.len(), 3);
    }
}

#[test]
fn placement_balances_replicas_with_rf_below_broker_count() {
    let mut h = Harness::new();
    h.start_brokers(&[1, 2, 3, 4, 5]);
    create(
        &mut h,
        vec![new_topic("a", 10, 2), new_topic("b", 7, 3)],
        false,
    );
    let leaders = spread(h.image());
    let mut replicas: BTreeMap<NodeId, usize> = BTreeMap::new();
    for p in h
        .image()
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
    {
        for r in &p.replicas {
            *replicas.entry(*r).or_insert(0) += 1;
        }
    }
    let range = |m: &BTreeMap<NodeId, usize>| m.values().max().unwrap() - m.values().min().unwrap();
    assert!(range(&leaders) <= 1, "{leaders:?}");
    assert!(range(&replicas) <= 1, "{replicas:?}");
    // Deterministic: the same cluster and requests give the same placement.
    let mut again = Harness::new();
    again.start_brokers(&[1, 2, 3, 4, 5]);
    create(
        &mut again,
        vec![new_topic("a", 10, 2), new_topic("b", 7, 3)],
        false,
    );
    assert_eq!(again.image().topics, h.image().topics);
}

#[test]
fn placement_skips_fenced_brokers() {
    let mut h = Harness::new();
    h.start_brokers(&[1, 2]);
    h.register(3);
    create(&mut h, vec![new_topic("a", 6, 2)], false);
    for p in h.image().topics["a"].partitions.values() {
        assert!(!p.replicas.contains(&NodeId(3)), "{p:?}");
    }
}

#[test]
fn delete_topics() {
    let mut h = Harness::new();
    h.start_brokers(&[1]);
    h.create_topic("a", 2, 1);
    h.create_topic("b", 1, 1);
    let (response, records) = h.handle_records(Request::DeleteTopics {
        names: vec!["a".into(), "nope".into()],
    });
    let Response::Topics(results) = response else {
        panic!()
    };
    assert_eq!(
        results.iter().map(code).collect::<Vec<_>>(),
        vec![ErrorCode::NONE, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        records,
        vec![MetadataRecord::RemoveTopic { name: "a".into() }]
    );
    assert_eq!(h.image().topics.keys().collect::<Vec<_>>(), vec!["b"]);
    // Recreated: fresh epochs.
    assert_eq!(code(&h.create_topic("a", 1, 1)), ErrorCode::NONE);
    assert_eq!(h.partition("a", 0).partition_epoch, 0);
}

#[test]
fn create_partitions() {
    let mut h = Harness::new();
    h.start_brokers(&[1, 2, 3]);
    h.create_topic("t", 2, 2);
    let grow = |h: &mut Harness, topics: Vec<(&str, i32)>, validate_only: bool| {
        let request = CreatePartitionsRequest {
            topics: topics
                .into_iter()
                .map(|(n, c)| (n.to_string(), c))
                .collect(),
            validate_only,
        };
        match h.handle(Request::CreatePartitions(request)) {
            Response::Topics(results) => results.iter().map(code).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        grow(&mut h, vec![("nope", 3), ("t", 2), ("t", 1)], false),
        vec![
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            ErrorCode::INVALID_REQUEST,
            ErrorCode::INVALID_REQUEST
        ]
    );
    assert_eq!(
        grow(&mut h, vec![("t", 2)], false),
        vec![ErrorCode::INVALID_PARTITIONS],
        "same count"
    );
    assert_eq!(
        grow(&mut h, vec![("t", 1)], false),
        vec![ErrorCode::INVALID_PARTITIONS],
        "fewer"
    );
    assert_eq!(grow(&mut h, vec![("t", 5)], true), vec![ErrorCode::NONE]);
    assert_eq!(h.image().topics["t"].partitions.len(), 2, "validate_only");
    assert_eq!(grow(&mut h, vec![("t", 5)], false), vec![ErrorCode::NONE]);
    let t = &h.image().topics["t"];
    assert_eq!(
        t.partitions.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    for p in t.partitions.values() {
        assert_eq!(p.replicas.len(), 2, "the topic's replication factor");
        assert_eq!(p.isr, p.replicas);
    }
    assert!(spread(h.image()).values().all(|n| (1..=2).contains(n)));
    // Not enough unfenced brokers for the topic's factor.
    h.create_topic("wide", 1, 3);
    let offset = h.image().offset;
    let epoch = h.image().brokers[&NodeId(3)].broker_epoch;
    h.handle(Request::Heartbeat {
        broker_id: NodeId(3),
        broker_epoch: epoch,
        metadata_offset: offset,
        want_shutdown: true,
    });
    assert_eq!(
        grow(&mut h, vec![("wide", 2)], false),
        vec![ErrorCode::INVALID_REPLICATION_FACTOR]
    );
}
