//! `controller_ops`: the active controller ([`Controller`]) driven by a sequence of broker
//! requests, clock advances, ticks, failovers and snapshot installs, every decision committed at
//! once the way the driver commits it (`handle` / `tick` → records → `replay(offset + 1)`; an
//! empty batch is not proposed).
//!
//! Input: an [`Unstructured`] stream: a config (unclean election, rebalance, session timeout,
//! block size, defaults), then up to [`MAX_OPS`] ops (see [`Op`]). Requests are built from
//! small pools (broker ids 0..=5, a handful of topic names, partitions 0..=4) and, mostly, from
//! the current image (a broker's current epoch, a partition's leader and epochs, an ISR drawn
//! from its replicas), so they get past the first checks; any field can also be arbitrary.
//!
//! Properties (the controller's own `assert!`s are invariants too: a panic is a bug):
//! - after every step, every partition has a non-empty, duplicate-free ISR ⊆ its replicas; its
//!   leader, if any, is in the ISR, registered and unfenced; a fenced broker is in an ISR only
//!   as its last member;
//! - a partition's leader and partition epochs never go back (per incarnation of its topic);
//! - `next_producer_id` never goes back and a granted block starts at the previous one's end;
//! - a `Registered` response's epoch is the broker's epoch in the image once replayed;
//! - the image survives a postcard round trip unchanged (it is the Raft snapshot format).

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use strata_core::controller::{Controller, ControllerConfig, MAX_PARTITIONS_PER_TOPIC};
use strata_core::error::ErrorCode;
use strata_core::metadata::{MetadataImage, MetadataRecord};
use strata_core::rpc::{
    AlterPartitionRequest, CreatePartitionsRequest, CreateTopicsRequest, ElectLeadersRequest,
    NewTopic, Request, Response,
};
use strata_core::types::{Instant, NodeId};

/// Ops per input.
pub const MAX_OPS: usize = 64;
/// Topic names: valid ones, two that collide (`.` vs `_`), invalid ones.
const TOPICS: [&str; 7] = ["a", "b", "c", "a.b", "a_b", "", ".."];

pub fn controller_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(config) = config(&mut u) else {
        return;
    };
    let mut h = Harness::new(config);
    let trace = std::env::var_os("STRATA_FUZZ_TRACE").is_some();
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::read(&mut u, h.controller.image()) else {
            break;
        };
        if trace {
            eprintln!("{op:?}");
        }
        h.run(op);
        h.check();
    }
}

fn config(u: &mut Unstructured<'_>) -> Result<ControllerConfig> {
    Ok(ControllerConfig {
        session_timeout_ms: u.int_in_range(1..=20_000)?,
        default_num_partitions: u.int_in_range(1..=4)?,
        default_replication_factor: u.int_in_range(1..=3)?,
        auto_leader_rebalance: u.arbitrary()?,
        leader_imbalance_check_interval_ms: u.int_in_range(1..=60_000)?,
        unclean_leader_election: u.arbitrary()?,
        producer_id_block_size: if u.ratio(1, 8)? {
            i32::MAX
        } else {
            u.int_in_range(1..=1000)?
        },
        cluster_id: "fuzz-cluster".to_string(),
    })
}

#[derive(Debug)]
enum Op {
    Handle(Request),
    /// The clock moves `ms` forward, then `tick` runs (the driver ticks at `next_deadline`;
    /// ticking early must be harmless too).
    Tick {
        ms: u64,
    },
    /// Leadership moved: the new active controller's first entry (empty) commits, then it
    /// activates (fresh sessions for every broker).
    Failover,
    /// A follower installs the image from a snapshot (postcard, as the driver does) and takes
    /// over.
    InstallSnapshot,
}

fn broker(u: &mut Unstructured<'_>) -> Result<NodeId> {
    Ok(if u.ratio(1, 32)? {
        NodeId(u.arbitrary()?)
    } else {
        NodeId(u.int_in_range(0..=5)?)
    })
}

fn topic(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(if u.ratio(1, 32)? {
        let n = u.int_in_range(0..=12)?;
        String::from_utf8_lossy(u.bytes(n.min(u.len()))?).into_owned()
    } else {
        u.choose(&TOPICS)?.to_string()
    })
}

/// An existing partition, mostly; any (topic, index) otherwise.
fn partition(u: &mut Unstructured<'_>, image: &MetadataImage) -> Result<(String, i32)> {
    let all: Vec<(String, i32)> = image
        .topics
        .iter()
        .flat_map(|(t, ti)| ti.partitions.keys().map(move |p| (t.clone(), *p)))
        .collect();
    if !all.is_empty() && !u.ratio(1, 8)? {
        return Ok(u.choose(&all)?.clone());
    }
    Ok((topic(u)?, u.int_in_range(-1..=4)?))
}

/// The broker's current epoch, mostly.
fn epoch(u: &mut Unstructured<'_>, image: &MetadataImage, b: NodeId) -> Result<i64> {
    match image.brokers.get(&b) {
        Some(info) if !u.ratio(1, 8)? => Ok(info.broker_epoch),
        _ => Ok(i64::from(u.int_in_range(-1..=40)?)),
    }
}

/// Some of `from` in some order, or any brokers.
fn subset(u: &mut Unstructured<'_>, from: &[NodeId]) -> Result<Vec<NodeId>> {
    if u.ratio(1, 8)? {
        let n = u.int_in_range(0..=4)?;
        return (0..n).map(|_| broker(u)).collect();
    }
    let mut out = Vec::new();
    for b in from {
        if u.ratio(3, 4)? {
            out.push(*b);
        }
    }
    if u.ratio(1, 4)? && out.len() > 1 {
        out.reverse();
    }
    Ok(out)
}

fn new_topic(u: &mut Unstructured<'_>, image: &MetadataImage) -> Result<NewTopic> {
    let name = topic(u)?;
    let mut assignments = BTreeMap::new();
    let (mut num_partitions, mut replication_factor) = (-1, -1);
    if u.ratio(1, 4)? {
        let registered: Vec<NodeId> = image.brokers.keys().copied().collect();
        for i in 0..u.int_in_range(0..=3)? {
            let index = if u.ratio(1, 16)? { i + 1 } else { i };
            assignments.insert(index, subset(u, &registered)?);
        }
        if u.ratio(1, 16)? {
            num_partitions = 1;
        }
    } else {
        // Valid large counts are left out: a topic of 100,000 partitions makes every later op
        // scan them all and the fuzzer crawl (the limit itself has a unit test).
        num_partitions = match u.int_in_range(0u8..=7)? {
            0 => -1,
            1 => *u.choose(&[i32::MIN, -2, MAX_PARTITIONS_PER_TOPIC + 1, i32::MAX])?,
            n => i32::from(n) - 2,
        };
        replication_factor = match u.int_in_range(0u8..=7)? {
            0 => -1,
            1 => u.arbitrary()?,
            n => i16::from(n) - 3,
        };
    }
    let mut configs = BTreeMap::new();
    if u.ratio(1, 4)? {
        configs.insert("retention.ms".to_string(), "1000".to_string());
    }
    Ok(NewTopic {
        name,
        num_partitions,
        replication_factor,
        assignments,
        configs,
    })
}

impl Op {
    fn read(u: &mut Unstructured<'_>, image: &MetadataImage) -> Result<Op> {
        let request = match u.int_in_range(0u8..=15)? {
            0 | 1 => Request::RegisterBroker {
                broker_id: broker(u)?,
                host: "h".to_string(),
                port: u.arbitrary()?,
                rack: u.ratio(1, 4)?.then(|| "r".to_string()),
            },
            2..=4 => {
                let broker_id = broker(u)?;
                Request::Heartbeat {
                    broker_id,
                    broker_epoch: epoch(u, image, broker_id)?,
                    metadata_offset: if u.ratio(7, 8)? {
                        image.offset
                    } else {
                        u.arbitrary()?
                    },
                    want_shutdown: u.ratio(1, 6)?,
                }
            }
            5 | 6 => {
                let (topic, index) = partition(u, image)?;
                let current = image.partition(&topic, index);
                let leader = current.and_then(|p| p.leader);
                let broker_id = match leader {
                    Some(l) if !u.ratio(1, 8)? => l,
                    _ => broker(u)?,
                };
                let replicas = current.map(|p| p.replicas.clone()).unwrap_or_default();
                let mut new_isr = subset(u, &replicas)?;
                if u.ratio(3, 4)? && !new_isr.contains(&broker_id) {
                    new_isr.insert(0, broker_id);
                }
                Request::AlterPartition(AlterPartitionRequest {
                    broker_id,
                    broker_epoch: epoch(u, image, broker_id)?,
                    leader_epoch: match current {
                        Some(p) if !u.ratio(1, 8)? => p.leader_epoch,
                        _ => u.int_in_range(-1..=5)?,
                    },
                    partition_epoch: match current {
                        Some(p) if !u.ratio(1, 8)? => p.partition_epoch,
                        _ => u.int_in_range(-1..=5)?,
                    },
                    topic,
                    partition: index,
                    new_isr,
                })
            }
            7 | 8 => {
                let n = u.int_in_range(1..=3)?;
                Request::CreateTopics(CreateTopicsRequest {
                    topics: (0..n).map(|_| new_topic(u, image)).collect::<Result<_>>()?,
                    validate_only: u.ratio(1, 8)?,
                })
            }
            9 => Request::DeleteTopics {
                names: (0..u.int_in_range(0..=2)?)
                    .map(|_| topic(u))
                    .collect::<Result<_>>()?,
            },
            10 => Request::CreatePartitions(CreatePartitionsRequest {
                topics: (0..u.int_in_range(0..=2)?)
                    .map(|_| Ok((topic(u)?, u.int_in_range(-1..=6)?)))
                    .collect::<Result<_>>()?,
                validate_only: u.ratio(1, 8)?,
            }),
            11 => Request::ElectLeaders(ElectLeadersRequest {
                partitions: if u.arbitrary()? {
                    None
                } else {
                    Some(
                        (0..u.int_in_range(0..=3)?)
                            .map(|_| partition(u, image))
                            .collect::<Result<_>>()?,
                    )
                },
            }),
            12 => {
                let broker_id = broker(u)?;
                Request::AllocateProducerIds {
                    broker_id,
                    broker_epoch: epoch(u, image, broker_id)?,
                }
            }
            13 => {
                return Ok(Op::Tick {
                    ms: match u.int_in_range(0u8..=7)? {
                        0 => u.arbitrary()?,
                        n => u64::from(n) * u64::from(u.int_in_range(0u16..=4000)?),
                    },
                });
            }
            14 => return Ok(Op::Failover),
            _ => match u.int_in_range(0u8..=3)? {
                0 => return Ok(Op::InstallSnapshot),
                1 => Request::FetchMetadata {
                    from_offset: 0,
                    max_wait_ms: 0,
                },
                _ => {
                    let broker_id = broker(u)?;
                    Request::OfflineReplicas {
                        broker_id,
                        broker_epoch: epoch(u, image, broker_id)?,
                        partitions: (0..u.int_in_range(0..=3)?)
                            .map(|_| partition(u, image))
                            .collect::<Result<_>>()?,
                    }
                }
            },
        };
        Ok(Op::Handle(request))
    }
}

/// The controller, committing each decision at once, and what the checks remember.
struct Harness {
    controller: Controller,
    now: Instant,
    /// (topic, created_offset, partition) → (leader_epoch, partition_epoch) last seen.
    epochs: BTreeMap<(String, u64, i32), (i32, i32)>,
    next_producer_id: i64,
}

impl Harness {
    fn new(config: ControllerConfig) -> Harness {
        let mut controller = Controller::new(config);
        let now = Instant::from_millis(1_000);
        controller.on_activated(now);
        let mut h = Harness {
            controller,
            now,
            epochs: BTreeMap::new(),
            next_producer_id: 0,
        };
        let records = h.controller.tick(now);
        h.commit(&records);
        assert!(
            h.controller.image().cluster_id.is_some(),
            "the first tick names the cluster"
        );
        h
    }

    /// Commits `records` as the next metadata offset (the driver proposes no empty batch).
    fn commit(&mut self, records: &[MetadataRecord]) {
        if records.is_empty() {
            return;
        }
        let offset = self.controller.image().offset + 1;
        self.controller.replay(offset, records);
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Handle(request) => {
                let (response, records) = self.controller.handle(self.now, &request);
                self.commit(&records);
                self.check_response(&request, &response, &records);
            }
            Op::Tick { ms } => {
                self.now = self.now.saturating_add_millis(ms);
                let records = self.controller.tick(self.now);
                self.commit(&records);
                // A tick does everything that is due: were anything still due now, the driver
                // (which ticks whenever `next_deadline() <= now`) would spin. Near the end of
                // the clock saturating deadlines may equal `now`.
                if self.now.0 < u64::MAX / 2 {
                    let deadline = self.controller.next_deadline();
                    assert!(
                        deadline.is_none_or(|d| d > self.now),
                        "still due after a tick at {:?}: {deadline:?}",
                        self.now
                    );
                }
            }
            Op::Failover => {
                let offset = self.controller.image().offset + 1;
                self.controller.replay(offset, &[]);
                self.controller.on_activated(self.now);
            }
            Op::InstallSnapshot => {
                let image = round_trip(self.controller.image());
                let mut follower = Controller::new(self.controller.config().clone());
                follower.install_image(image);
                follower.on_activated(self.now);
                self.controller = follower;
            }
        }
    }

    fn check_response(
        &mut self,
        request: &Request,
        response: &Response,
        records: &[MetadataRecord],
    ) {
        let image = self.controller.image();
        match (request, response) {
            (Request::RegisterBroker { broker_id, .. }, Response::Registered { broker_epoch }) => {
                let b = image
                    .brokers
                    .get(broker_id)
                    .expect("a registered broker is in the image");
                assert_eq!(
                    b.broker_epoch, *broker_epoch,
                    "the epoch the broker was given"
                );
                assert!(b.fenced, "a broker registers fenced");
            }
            (
                Request::AllocateProducerIds { .. },
                Response::ProducerIds {
                    error_code,
                    first_producer_id,
                    count,
                },
            ) if *error_code == ErrorCode::NONE.0 => {
                assert!(*count > 0, "a granted block is not empty");
                assert_eq!(
                    *first_producer_id, self.next_producer_id,
                    "blocks are contiguous"
                );
                assert_eq!(
                    image.next_producer_id,
                    first_producer_id + i64::from(*count),
                    "the image moves past the block"
                );
            }
            _ => {}
        }
        if let Request::CreateTopics(CreateTopicsRequest {
            validate_only: true,
            ..
        })
        | Request::CreatePartitions(CreatePartitionsRequest {
            validate_only: true,
            ..
        }) = request
        {
            assert!(records.is_empty(), "validate_only changed the metadata");
        }
    }

    /// The invariants of the committed image.
    fn check(&mut self) {
        let image = self.controller.image();
        for (name, topic) in &image.topics {
            assert_eq!(&topic.name, name);
            let dense = topic
                .partitions
                .keys()
                .copied()
                .eq(0..topic.partitions.len() as i32);
            assert!(
                dense,
                "partitions of {name} are dense from 0: {:?}",
                topic.partitions.keys()
            );
            for (index, p) in &topic.partitions {
                let what = format!("{name}-{index}: {p:?}");
                assert!(!p.replicas.is_empty(), "no replicas: {what}");
                assert!(!p.isr.is_empty(), "an empty ISR: {what}");
                assert!(
                    p.isr.iter().all(|r| p.replicas.contains(r)),
                    "the ISR is not a subset of the replicas: {what}"
                );
                let mut isr = p.isr.clone();
                isr.sort();
                isr.dedup();
                assert_eq!(isr.len(), p.isr.len(), "a duplicate ISR member: {what}");
                if let Some(leader) = p.leader {
                    assert!(
                        p.isr.contains(&leader),
                        "the leader is not in the ISR: {what}"
                    );
                    let b = image.brokers.get(&leader);
                    assert!(
                        b.is_some_and(|b| !b.fenced),
                        "a fenced or unknown broker leads {what} ({b:?})"
                    );
                }
                if p.isr.len() > 1 {
                    for r in &p.isr {
                        assert!(
                            image.brokers.get(r).is_some_and(|b| !b.fenced),
                            "fenced broker {r} is in an ISR with others: {what}"
                        );
                    }
                }
                let key = (name.clone(), topic.created_offset, *index);
                let now = (p.leader_epoch, p.partition_epoch);
                if let Some(before) = self.epochs.insert(key, now) {
                    assert!(
                        now.0 >= before.0 && now.1 >= before.1,
                        "epochs of {what} went back from {before:?}"
                    );
                }
            }
        }
        assert!(
            image.next_producer_id >= self.next_producer_id,
            "next_producer_id went back"
        );
        self.next_producer_id = image.next_producer_id;
        assert_eq!(&round_trip(image), image, "the image's postcard round trip");
    }
}

fn round_trip(image: &MetadataImage) -> MetadataImage {
    let bytes = strata_core::metadata::encode_image(image);
    strata_core::metadata::decode_image(&bytes).expect("an encoded image decodes")
}

/// Seeds: three brokers registering and catching up, topics created, an ISR shrunk, preferred
/// leaders elected, producer ids, a controlled shutdown, session expiry, failover, an offline
/// replica, a snapshot install, more partitions and a delete; with and without unclean election.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    // Bytes as `config` and `Op::read` read them: `int_in_range` takes the (big-endian) bytes
    // modulo the range size; `ratio(1, k)` is false for byte 1, `ratio(3, 4)` true for byte 0.
    let config = |unclean: u8| {
        vec![
            0x23, 0x28, // session timeout 9001 ms
            1,    // 2 partitions by default
            2,    // replication factor 3 by default
            1,    // auto rebalance
            0x75, 0x30, // rebalance every 30001 ms
            unclean, 1, 0x03, 0xe7, // producer id blocks of 1000
        ]
    };
    let register = |id: u8| vec![0, 1, id, 0x23, 0x84, 1];
    let heartbeat = |id: u8, shutdown: bool| vec![2, 1, id, 1, 0, u8::from(!shutdown)];
    // CreateTopics of one topic (index into TOPICS), 2 partitions, replication factor 3.
    let create = |topic: u8| vec![7, 0, 1, topic, 1, 4, 6, 1, 1];
    let mut ops: Vec<Vec<u8>> = Vec::new();
    for id in 1..=3 {
        ops.push(register(id));
    }
    for id in 1..=3 {
        ops.push(heartbeat(id, false));
    }
    ops.push(create(0));
    ops.push(create(1));
    ops.push(create(4)); // "a_b"
    ops.push(create(3)); // "a.b": collides
    ops.push(vec![5, 1, 0, 1, 1, 0, 0, 3, 1, 0, 1, 1, 1]); // shrink the ISR of a-0
    ops.push(vec![11, 1]); // ElectLeaders, every partition
    ops.push(vec![12, 1, 1, 1]); // AllocateProducerIds for broker 1
    ops.push(heartbeat(2, true)); // controlled shutdown
    ops.push(vec![13, 5, 0x07, 0xd0]); // 10 s pass: sessions expire
    ops.push(heartbeat(1, false));
    ops.push(heartbeat(3, false));
    ops.push(vec![14]); // failover
    ops.push(register(2)); // a new incarnation
    ops.push(heartbeat(2, false));
    ops.push(vec![15, 2, 1, 1, 1, 1, 1, 0]); // broker 1's replica of a-0 is offline
    ops.push(vec![15, 0]); // snapshot install
    ops.push(vec![13, 7, 0x0f, 0xa0]); // 28 s: rebalance
    ops.push(vec![10, 1, 1, 0, 5, 1]); // CreatePartitions: a to 4
    ops.push(vec![12, 1, 3, 1]);
    ops.push(vec![9, 1, 1, 1]); // delete b
    ops.push(create(1)); // and create it again
    let body: Vec<u8> = ops.concat();
    let with = |unclean: u8| [config(unclean), body.clone()].concat();
    vec![
        ("seed-cluster".to_string(), with(0)),
        ("seed-cluster-unclean".to_string(), with(1)),
        ("seed-empty-config".to_string(), config(0)),
    ]
}
