//! Property: any sequence of broker requests, admin requests, clock steps and ticks keeps the
//! image invariants (checked by replay and `check_image` on every commit), keeps leader epochs
//! monotone per partition, never gives one leader epoch of a partition two leaders, and keeps
//! broker epochs and producer id blocks increasing.

use proptest::prelude::*;

use super::*;
use crate::rpc::{AlterPartitionRequest, CreatePartitionsRequest, ElectLeadersRequest};

const TOPICS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Register(i32),
    Heartbeat {
        broker: i32,
        caught_up: bool,
        shutdown: bool,
        stale: bool,
    },
    Advance(u64),
    Tick,
    Create {
        topic: usize,
        partitions: i32,
        factor: i16,
    },
    Delete(usize),
    Grow {
        topic: usize,
        count: i32,
    },
    /// The leader of a partition proposes an ISR: replicas selected by `mask` (plus itself).
    Alter {
        topic: usize,
        partition: i32,
        mask: u8,
        stale: bool,
    },
    ElectAll,
    ProducerIds(i32),
    Reactivate,
    /// The broker reports offline the replicas it holds that `mask` selects (in partition
    /// order, bit i for the i-th), maybe with an old epoch.
    Offline {
        broker: i32,
        mask: u16,
        stale: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1..=5i32).prop_map(Op::Register),
        6 => (1..=5i32, any::<bool>(), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
            .prop_map(|(broker, caught_up, shutdown, stale)| Op::Heartbeat { broker, caught_up, shutdown, stale }),
        3 => (0..12_000u64).prop_map(Op::Advance),
        3 => Just(Op::Tick),
        2 => (0..3usize, 1..5i32, 1..4i16).prop_map(|(topic, partitions, factor)| Op::Create { topic, partitions, factor }),
        1 => (0..3usize).prop_map(Op::Delete),
        1 => (0..3usize, 1..7i32).prop_map(|(topic, count)| Op::Grow { topic, count }),
        4 => (0..3usize, 0..6i32, any::<u8>(), prop::bool::weighted(0.1))
            .prop_map(|(topic, partition, mask, stale)| Op::Alter { topic, partition, mask, stale }),
        1 => Just(Op::ElectAll),
        1 => (1..=5i32).prop_map(Op::ProducerIds),
        1 => Just(Op::Reactivate),
        3 => (1..=5i32, any::<u16>(), prop::bool::weighted(0.1))
            .prop_map(|(broker, mask, stale)| Op::Offline { broker, mask, stale }),
    ]
}

/// What the checker remembers across steps.
#[derive(Default)]
struct History {
    /// Creations per topic name, to tell incarnations apart.
    incarnation: BTreeMap<String, u32>,
    /// (topic, incarnation, partition) -> last leader epoch seen.
    leader_epochs: BTreeMap<(String, u32, i32), i32>,
    /// (topic, incarnation, partition, leader epoch) -> its leader.
    leaders: BTreeMap<(String, u32, i32, i32), Option<NodeId>>,
    broker_epochs: BTreeMap<NodeId, i64>,
    next_producer_id: i64,
    seen_topics: BTreeMap<String, bool>,
}

impl History {
    fn observe(&mut self, image: &MetadataImage) {
        for name in TOPICS {
            let exists = image.topics.contains_key(name);
            let existed = self
                .seen_topics
                .insert(name.to_string(), exists)
                .unwrap_or(false);
            if exists && !existed {
                *self.incarnation.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        for topic in image.topics.values() {
            let inc = self.incarnation[&topic.name];
            for (index, p) in &topic.partitions {
                let key = (topic.name.clone(), inc, *index);
                if let Some(last) = self.leader_epochs.insert(key, p.leader_epoch) {
                    assert!(
                        p.leader_epoch >= last,
                        "{}-{index}: leader epoch went back",
                        topic.name
                    );
                }
                let leader = self
                    .leaders
                    .entry((topic.name.clone(), inc, *index, p.leader_epoch))
                    .or_insert(p.leader);
                assert_eq!(
                    *leader, p.leader,
                    "{}-{index}: two leaders in leader epoch {}",
                    topic.name, p.leader_epoch
                );
            }
        }
        for (id, b) in &image.brokers {
            if let Some(last) = self.broker_epochs.insert(*id, b.broker_epoch) {
                assert!(b.broker_epoch >= last, "broker {id}: epoch went back");
            }
        }
        assert!(image.next_producer_id >= self.next_producer_id);
        self.next_producer_id = image.next_producer_id;
    }
}

fn run(h: &mut Harness, op: &Op) {
    let epoch_of = |h: &Harness, b: i32| h.image().brokers.get(&NodeId(b)).map(|x| x.broker_epoch);
    match op.clone() {
        Op::Register(b) => {
            h.register(b);
        }
        Op::Heartbeat {
            broker,
            caught_up,
            shutdown,
            stale,
        } => {
            let Some(epoch) = epoch_of(h, broker) else {
                return;
            };
            let offset = h.image().offset;
            let response = h.handle(Request::Heartbeat {
                broker_id: NodeId(broker),
                broker_epoch: if stale { epoch - 1 } else { epoch },
                metadata_offset: if caught_up { offset } else { 0 },
                want_shutdown: shutdown,
            });
            let fenced_now = h.image().brokers[&NodeId(broker)].fenced;
            match response {
                Response::Heartbeat {
                    error_code: 0,
                    fenced,
                    shutdown_ready,
                } => {
                    assert_eq!(
                        fenced, fenced_now,
                        "the response tells the committed fence state"
                    );
                    assert_eq!(shutdown_ready, shutdown && fenced_now);
                }
                Response::Heartbeat { error_code: 77, .. } => assert!(stale),
                other => panic!("{other:?}"),
            }
        }
        Op::Advance(ms) => h.advance_ms(ms),
        Op::Tick => {
            h.tick();
        }
        Op::Create {
            topic,
            partitions,
            factor,
        } => {
            h.create_topic(TOPICS[topic], partitions, factor);
        }
        Op::Delete(topic) => {
            h.handle(Request::DeleteTopics {
                names: vec![TOPICS[topic].to_string()],
            });
        }
        Op::Grow { topic, count } => {
            h.handle(Request::CreatePartitions(CreatePartitionsRequest {
                topics: vec![(TOPICS[topic].to_string(), count)],
                validate_only: false,
            }));
        }
        Op::Alter {
            topic,
            partition,
            mask,
            stale,
        } => {
            let name = TOPICS[topic];
            let Some(p) = h.image().partition(name, partition).cloned() else {
                return;
            };
            let Some(leader) = p.leader else { return };
            let Some(epoch) = epoch_of(h, leader.0) else {
                return;
            };
            let mut isr = vec![leader];
            for (i, r) in p.replicas.iter().enumerate() {
                if mask & (1 << i) != 0 && *r != leader {
                    isr.push(*r);
                }
            }
            let response = h.handle(Request::AlterPartition(AlterPartitionRequest {
                broker_id: leader,
                broker_epoch: epoch,
                topic: name.to_string(),
                partition,
                leader_epoch: p.leader_epoch,
                partition_epoch: if stale {
                    p.partition_epoch - 1
                } else {
                    p.partition_epoch
                },
                new_isr: isr.clone(),
            }));
            let Response::AlterPartition {
                error_code,
                partition: committed,
            } = response
            else {
                panic!()
            };
            match ErrorCode(error_code) {
                ErrorCode::NONE => {
                    let now = h.partition(name, partition);
                    assert_eq!(
                        committed.map(|c| c.partition_epoch),
                        Some(now.partition_epoch)
                    );
                    let mut want = isr.clone();
                    want.sort();
                    let mut got = now.isr.clone();
                    got.sort();
                    assert_eq!(got, want);
                    assert_eq!(now.leader_epoch, p.leader_epoch);
                }
                ErrorCode::INVALID_UPDATE_VERSION => assert!(stale),
                ErrorCode::INELIGIBLE_REPLICA => {} // adding a fenced replica
                other => panic!("unexpected {other:?}"),
            }
        }
        Op::ElectAll => {
            h.handle(Request::ElectLeaders(ElectLeadersRequest {
                partitions: None,
            }));
        }
        Op::ProducerIds(b) => {
            let Some(epoch) = epoch_of(h, b) else { return };
            let before = h.image().next_producer_id;
            match h.handle(Request::AllocateProducerIds {
                broker_id: NodeId(b),
                broker_epoch: epoch,
            }) {
                Response::ProducerIds {
                    error_code: 0,
                    first_producer_id,
                    count,
                } => {
                    assert_eq!(first_producer_id, before);
                    assert_eq!(h.image().next_producer_id, before + i64::from(count));
                }
                other => panic!("{other:?}"),
            }
        }
        Op::Reactivate => h.controller.on_activated(h.now),
        Op::Offline {
            broker,
            mask,
            stale,
        } => {
            let Some(epoch) = epoch_of(h, broker) else {
                return;
            };
            let held: Vec<(String, i32)> = h
                .image()
                .topics
                .values()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter(|(_, p)| p.replicas.contains(&NodeId(broker)))
                        .map(|(i, _)| (t.name.clone(), *i))
                })
                .collect();
            let partitions: Vec<(String, i32)> = held
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 16 && mask & (1 << i) != 0)
                .map(|(_, tp)| tp.clone())
                .collect();
            let response = h.handle(Request::OfflineReplicas {
                broker_id: NodeId(broker),
                broker_epoch: if stale { epoch - 1 } else { epoch },
                partitions: partitions.clone(),
            });
            match response {
                Response::OfflineReplicas { error_code: 0 } => {
                    let now: Vec<(String, i32)> = h
                        .image()
                        .offline_replicas
                        .get(&NodeId(broker))
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default();
                    assert_eq!(now, partitions, "the report is the broker's set");
                }
                Response::OfflineReplicas { error_code: 77 } => assert!(stale),
                other => panic!("{other:?}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_metadata_invariants(
        unclean in any::<bool>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut h = Harness::with(ControllerConfig {
            unclean_leader_election: unclean,
            leader_imbalance_check_interval_ms: 20_000,
            ..config()
        });
        let mut history = History::default();
        for op in &ops {
            run(&mut h, op);
            history.observe(h.image());
            // Nothing due now may remain undone after a tick: the deadline is in the future.
            if let Some(deadline) = h.controller.next_deadline()
                && deadline <= h.now
            {
                h.tick();
                history.observe(h.image());
                let after = h.controller.next_deadline();
                prop_assert!(
                    after.is_none_or(|d| d > h.now),
                    "tick left work due now: {after:?} at {:?}",
                    h.now
                );
            }
        }
    }
}
