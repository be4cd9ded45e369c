//! Controller tests: a small harness that commits every decision at once (`replay(offset + 1)`)
//! and table-driven tests named after the rule (KIP) they check.

mod alter_partition;
mod brokers;
mod election;
mod model;
mod offline;
mod topic_configs;
mod topics;

use std::collections::BTreeMap;

use super::{Controller, ControllerConfig};
use crate::error::ErrorCode;
use crate::metadata::{MetadataImage, MetadataRecord, PartitionImage};
use crate::rpc::{CreateTopicsRequest, NewTopic, Request, Response, TopicResult};
use crate::types::{Instant, NodeId};

pub(super) fn config() -> ControllerConfig {
    ControllerConfig {
        default_replication_factor: 3,
        ..ControllerConfig::kafka_defaults("test-cluster")
    }
}

/// A controller whose every decision commits immediately.
pub(super) struct Harness {
    pub controller: Controller,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(config())
    }

    pub fn with(config: ControllerConfig) -> Harness {
        let mut controller = Controller::new(config);
        let now = Instant::from_millis(1_000);
        controller.on_activated(now);
        let mut h = Harness { controller, now };
        h.tick(); // the cluster id
        assert_eq!(h.image().cluster_id.as_deref(), Some("test-cluster"));
        h
    }

    pub fn image(&self) -> &MetadataImage {
        self.controller.image()
    }

    /// Commits `records` as the next metadata offset (empty batches are not proposed).
    pub fn commit(&mut self, records: &[MetadataRecord]) {
        if records.is_empty() {
            return;
        }
        let offset = self.image().offset + 1;
        self.controller.replay(offset, records);
        check_image(self.image());
    }

    pub fn handle(&mut self, request: Request) -> Response {
        let (response, records) = self.controller.handle(self.now, &request);
        self.commit(&records);
        response
    }

    pub fn handle_records(&mut self, request: Request) -> (Response, Vec<MetadataRecord>) {
        let (response, records) = self.controller.handle(self.now, &request);
        self.commit(&records);
        (response, records)
    }

    pub fn tick(&mut self) -> Vec<MetadataRecord> {
        let records = self.controller.tick(self.now);
        self.commit(&records);
        records
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.now = self.now.saturating_add_millis(ms);
    }

    /// Registers a broker; returns its epoch.
    pub fn register(&mut self, id: i32) -> i64 {
        match self.handle(Request::RegisterBroker {
            broker_id: NodeId(id),
            host: "localhost".into(),
            port: 9092 + id as u16,
            rack: None,
        }) {
            Response::Registered { broker_epoch } => broker_epoch,
            other => panic!("registration refused: {other:?}"),
        }
    }

    /// A heartbeat from a broker that has replayed everything.
    pub fn heartbeat(&mut self, id: i32, epoch: i64) -> Response {
        let offset = self.image().offset;
        self.handle(Request::Heartbeat {
            broker_id: NodeId(id),
            broker_epoch: epoch,
            metadata_offset: offset,
            want_shutdown: false,
        })
    }

    /// Registers and unfences brokers `ids`; returns their epochs.
    pub fn start_brokers(&mut self, ids: &[i32]) -> BTreeMap<i32, i64> {
        let mut epochs = BTreeMap::new();
        for id in ids {
            let epoch = self.register(*id);
            self.heartbeat(*id, epoch);
            assert!(
                !self.image().brokers[&NodeId(*id)].fenced,
                "broker {id} unfenced"
            );
            epochs.insert(*id, epoch);
        }
        epochs
    }

    pub fn create_topic(&mut self, name: &str, partitions: i32, factor: i16) -> TopicResult {
        match self.handle(Request::CreateTopics(CreateTopicsRequest {
            topics: vec![new_topic(name, partitions, factor)],
            validate_only: false,
        })) {
            Response::Topics(mut results) if results.len() == 1 => results.remove(0),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn partition(&self, topic: &str, index: i32) -> PartitionImage {
        self.image()
            .partition(topic, index)
            .unwrap_or_else(|| panic!("{topic}-{index} exists"))
            .clone()
    }

    /// Sends heartbeats from all `epochs` (keeps sessions alive).
    pub fn heartbeat_all(&mut self, epochs: &BTreeMap<i32, i64>) {
        for (id, epoch) in epochs {
            self.heartbeat(*id, *epoch);
        }
    }
}

pub(super) fn new_topic(name: &str, partitions: i32, factor: i16) -> NewTopic {
    NewTopic {
        name: name.to_string(),
        num_partitions: partitions,
        replication_factor: factor,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    }
}

pub(super) fn nodes(ids: &[i32]) -> Vec<NodeId> {
    ids.iter().map(|i| NodeId(*i)).collect()
}

pub(super) fn code(result: &TopicResult) -> ErrorCode {
    ErrorCode(result.error_code)
}

/// Image invariants the controller promises (beyond what replay asserts): fenced brokers and
/// offline replicas lead nothing and are only ever the last member of an ISR; leaders are
/// registered.
pub(super) fn check_image(image: &MetadataImage) {
    for topic in image.topics.values() {
        let indexes: Vec<i32> = topic.partitions.keys().copied().collect();
        assert!(
            indexes.iter().copied().eq(0..indexes.len() as i32),
            "partitions of {} are dense: {indexes:?}",
            topic.name
        );
        for (index, p) in &topic.partitions {
            let fenced = |r: &NodeId| {
                image.brokers.get(r).is_none_or(|b| b.fenced)
                    || image.is_replica_offline(*r, &topic.name, *index)
            };
            if let Some(leader) = p.leader {
                assert!(
                    !fenced(&leader),
                    "{}-{index}: leader {leader} is fenced or offline",
                    topic.name
                );
                assert!(p.isr.contains(&leader));
            }
            if p.isr.len() > 1 {
                assert!(
                    !p.isr.iter().any(fenced),
                    "{}-{index}: a fenced or offline replica in a multi-member ISR {:?}",
                    topic.name,
                    p.isr
                );
            }
        }
    }
}
