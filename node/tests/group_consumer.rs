//! Strata's own group consumer (`strata_client::group`) against an in-process broker on
//! an ephemeral port: two members split a topic, a third resumes from the committed offsets, the
//! rebalance listener sees revocations and assignments, a static member comes back without a
//! rebalance, and a commit from a fenced generation is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_client::group::{
    GroupConsumer, GroupConsumerConfig, GroupError, OffsetReset, RebalanceListener,
};
use strata_client::producer::ProducerConfig;
use strata_client::{Admin, Connection, ConnectionConfig, Producer};
use strata_core::ErrorCode;

mod common;
use common::Running;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;

async fn start(dir: &std::path::Path) -> Running {
    common::start(
        dir,
        &[
            ("group.initial.rebalance.delay.ms", "0"),
            ("offsets.topic.num.partitions", "3"),
        ],
    )
    .await
}

async fn setup(addr: &str) -> Producer {
    let conn = Connection::connect(addr, ConnectionConfig::default())
        .await
        .expect("connect");
    Admin::new(&conn)
        .create_topic(TOPIC, PARTITIONS, 1, &[])
        .await
        .expect("create topic");
    Producer::new(addr, ProducerConfig::default())
}

/// Produces `per_partition` values to every partition, named `p{partition}-{n}` from `from`.
async fn produce(producer: &Producer, from: usize, per_partition: usize) {
    for partition in 0..PARTITIONS {
        let values: Vec<String> = (from..from + per_partition)
            .map(|n| format!("p{partition}-{n}"))
            .collect();
        let records: Vec<(&[u8], Option<&[u8]>)> =
            values.iter().map(|v| (v.as_bytes(), None)).collect();
        let outcome = producer.send(TOPIC, partition, &records).await;
        assert!(outcome.base_offset().is_some(), "produce: {outcome:?}");
    }
}

fn config(group: &str) -> GroupConsumerConfig {
    let mut c = GroupConsumerConfig::new(group);
    c.member.session_timeout_ms = 10_000;
    c.member.rebalance_timeout_ms = 10_000;
    c.member.heartbeat_interval_ms = 100;
    c.member.request_timeout = Duration::from_secs(15);
    c.fetch.max_wait_ms = 100;
    c.auto_offset_reset = OffsetReset::Earliest;
    c
}

fn consumer(addr: &str, group: &str) -> GroupConsumer {
    let mut c = GroupConsumer::new(&[addr.to_string()], config(group));
    c.subscribe(&[TOPIC]);
    c
}

/// A consumer that commits only when told to.
fn manual_consumer(addr: &str, group: &str) -> GroupConsumer {
    let mut config = config(group);
    config.auto_commit = false;
    let mut c = GroupConsumer::new(&[addr.to_string()], config);
    c.subscribe(&[TOPIC]);
    c
}

/// What the test can see of a consumer while it polls in its own task.
#[derive(Debug, Clone, Default)]
struct View {
    joined: bool,
    positioned: bool,
    assignment: Vec<(String, i32)>,
    seen: Vec<String>,
}

/// Polls every consumer in its own task (as separate applications would) until `done` holds
/// for what they show, then hands them back with the values each one got.
async fn poll_until(
    consumers: Vec<GroupConsumer>,
    done: impl Fn(&[View]) -> bool,
) -> (Vec<GroupConsumer>, Vec<Vec<String>>) {
    let views = Arc::new(Mutex::new(vec![View::default(); consumers.len()]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, mut c) in consumers.into_iter().enumerate() {
        let (views, stop) = (Arc::clone(&views), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let records = c
                    .poll()
                    .await
                    .unwrap_or_else(|e| panic!("consumer {i} poll: {e}"));
                let mut views = views.lock().expect("lock");
                let v = &mut views[i];
                v.seen.extend(records.into_iter().map(|r| {
                    String::from_utf8(r.record.value.expect("value").to_vec()).expect("utf8")
                }));
                v.joined = !c.needs_join();
                v.positioned = v.joined && !c.needs_positions();
                v.assignment = c.assignment().to_vec();
            }
            c
        }));
    }
    // A bound so a broken rebalance fails the test instead of hanging it (not a timing claim).
    for _ in 0..1200 {
        if done(&views.lock().expect("lock")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut consumers = Vec::new();
    for t in tasks {
        consumers.push(t.await.expect("consumer task"));
    }
    let views = views.lock().expect("lock").clone();
    assert!(done(&views), "never done: {views:?}");
    (consumers, views.into_iter().map(|v| v.seen).collect())
}

fn all_partitions() -> BTreeSet<(String, i32)> {
    (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect()
}

#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<String>>>);

impl RebalanceListener for Events {
    fn on_partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("revoked {}", partitions.len()));
    }
    fn on_partitions_assigned(&mut self, partitions: &[(String, i32)]) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("assigned {}", partitions.len()));
    }
}

#[tokio::test]
async fn two_members_split_the_topic_and_a_third_resumes_from_the_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(dir.path()).await;
    let addr = node.addr.to_string();
    let producer = setup(&addr).await;
    produce(&producer, 0, 10).await;

    let mut a = consumer(&addr, "g1");
    let events = Events::default();
    a.set_listener(Box::new(events.clone()));
    let (mut cs, _) = poll_until(vec![a], |v| v[0].seen.len() == 60).await;
    let a = cs.remove(0);
    assert_eq!(a.assignment().len(), 6, "alone, a holds every partition");
    let first_generation = a.member().generation();

    // b joins: a must give up half at its next heartbeat, and nothing is read twice since a
    // commits its positions before the rebalance (auto-commit).
    let b = consumer(&addr, "g1");
    produce(&producer, 10, 5).await;
    let (mut cs, seen) = poll_until(vec![a, b], |v| {
        v.iter().all(|c| c.positioned && c.assignment.len() == 3)
            && v[0].seen.len() + v[1].seen.len() == 30
    })
    .await;
    let (mut a, mut b) = (cs.remove(0), cs.remove(0));
    let owned: BTreeSet<(String, i32)> = a
        .assignment()
        .iter()
        .chain(b.assignment())
        .cloned()
        .collect();
    assert_eq!(owned, all_partitions(), "every partition owned once");
    assert!(a.member().generation() > first_generation);
    let mut all: Vec<String> = seen.concat();
    all.sort();
    let mut expected: Vec<String> = (0..PARTITIONS)
        .flat_map(|p| (10..15).map(move |n| format!("p{p}-{n}")))
        .collect();
    expected.sort();
    assert_eq!(all, expected, "the new values, each exactly once");
    assert_eq!(
        events.0.lock().expect("lock").clone(),
        vec!["assigned 6", "revoked 6", "assigned 3"],
        "the listener saw the rebalance"
    );

    a.commit().await.expect("commit a");
    b.commit().await.expect("commit b");
    a.close().await.expect("a leaves");
    b.close().await.expect("b leaves");

    // A new member resumes where they committed: only newer values.
    produce(&producer, 15, 2).await;
    let c = consumer(&addr, "g1");
    let (mut cs, seen) = poll_until(vec![c], |v| v[0].seen.len() >= 12).await;
    let mut c = cs.remove(0);
    let mut got = seen[0].clone();
    got.sort();
    let mut expected: Vec<String> = (0..PARTITIONS)
        .flat_map(|p| (15..17).map(move |n| format!("p{p}-{n}")))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    let described = c.member_mut().describe().await.expect("describe");
    assert_eq!(described.state, "Stable");
    assert_eq!(described.members.len(), 1);
    c.close().await.expect("close");
    node.stop().await;
}

#[tokio::test]
async fn a_commit_from_a_fenced_generation_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(dir.path()).await;
    let addr = node.addr.to_string();
    let producer = setup(&addr).await;
    produce(&producer, 0, 1).await;

    let a = manual_consumer(&addr, "g2");
    let (mut cs, _) = poll_until(vec![a], |v| v[0].seen.len() == 6).await;
    let mut a = cs.remove(0);
    a.commit_with_metadata("first").await.expect("commit");
    let (member, stale_generation) = (a.member().member_id().to_string(), a.member().generation());

    let b = manual_consumer(&addr, "g2");
    let (mut cs, _) = poll_until(vec![a, b], |v| {
        v.iter().all(|c| c.positioned && c.assignment.len() == 3)
    })
    .await;
    let mut a = cs.remove(0);
    assert!(a.member().generation() > stale_generation);

    let partition = a.assignment()[0].clone();
    let stale = a
        .member_mut()
        .commit_as(
            &member,
            stale_generation,
            &[(partition.0.clone(), partition.1, 999)],
            "stale",
        )
        .await;
    match stale {
        Err(GroupError::Kafka(code)) => assert_eq!(code, ErrorCode::ILLEGAL_GENERATION),
        other => panic!("a stale generation's commit must be refused, got {other:?}"),
    }
    let read = a
        .member_mut()
        .committed(std::slice::from_ref(&partition))
        .await
        .expect("committed");
    let committed = read[0].1.clone().expect("the first commit is there");
    assert_eq!(committed.metadata.as_deref(), Some("first"));
    assert_ne!(committed.offset, 999);
    node.stop().await;
}

#[tokio::test]
async fn a_static_member_comes_back_without_a_rebalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(dir.path()).await;
    let addr = node.addr.to_string();
    let producer = setup(&addr).await;
    produce(&producer, 0, 1).await;

    let static_config = |instance: &str| {
        let mut c = config("g3");
        c.member.group_instance_id = Some(instance.to_string());
        c
    };
    let mut a = GroupConsumer::new(std::slice::from_ref(&addr), static_config("a"));
    a.subscribe(&[TOPIC]);
    let mut b = GroupConsumer::new(std::slice::from_ref(&addr), static_config("b"));
    b.subscribe(&[TOPIC]);
    let (mut cs, _) = poll_until(vec![a, b], |v| {
        v.iter().all(|c| c.positioned && c.assignment.len() == 3)
            && v[0].seen.len() + v[1].seen.len() == 6
    })
    .await;
    let (a, b) = (cs.remove(0), cs.remove(0));
    let generation = b.member().generation();
    let assignment: Vec<(String, i32)> = b.assignment().to_vec();
    let old_member = b.member().member_id().to_string();
    b.close()
        .await
        .expect("a static member's close sends no LeaveGroup");

    // The same instance comes back: same generation, same partitions, a new member id; the old
    // id is fenced.
    let mut b2 = GroupConsumer::new(std::slice::from_ref(&addr), static_config("b"));
    b2.subscribe(&[TOPIC]);
    let (mut cs, _) = poll_until(vec![a, b2], |v| v.iter().all(|c| c.positioned)).await;
    let (a, mut b2) = (cs.remove(0), cs.remove(0));
    assert_eq!(b2.member().generation(), generation, "no rebalance");
    assert_eq!(a.member().generation(), generation, "a was not disturbed");
    assert_eq!(b2.assignment(), assignment.as_slice());
    assert_ne!(b2.member().member_id(), old_member);
    let fenced = b2
        .member_mut()
        .commit_as(
            &old_member,
            generation,
            &[(TOPIC.to_string(), assignment[0].1, 1)],
            "",
        )
        .await;
    assert!(
        matches!(
            fenced,
            Err(GroupError::Kafka(ErrorCode::FENCED_INSTANCE_ID))
        ),
        "{fenced:?}"
    );
    let owners: BTreeMap<String, usize> = b2
        .member_mut()
        .describe()
        .await
        .expect("describe")
        .members
        .into_iter()
        .map(|(m, a)| (m, a.len()))
        .collect();
    assert_eq!(owners.len(), 2);
    node.stop().await;
}
