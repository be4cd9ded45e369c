//! A stand-in for `strata_core::controller::Controller`, written by another engineer
//! concurrently: same signatures, just enough behaviour to drive and test the service
//! (registration, heartbeats that unfence, topic creation, the cluster id). Replace the `use`
//! in `driver.rs` with the real one when it lands, and delete this file.

use std::collections::BTreeMap;

use strata_core::ErrorCode;
use strata_core::metadata::{MetadataImage, MetadataRecord, PartitionRecord};
use strata_core::rpc::{Request, Response, TopicResult};
use strata_core::types::Instant;

/// Mirrors `strata_core::controller::ControllerConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    pub session_timeout_ms: u64,
    pub default_num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_leader_rebalance: bool,
    pub leader_imbalance_check_interval_ms: u64,
    pub unclean_leader_election: bool,
    pub producer_id_block_size: i32,
    pub cluster_id: String,
}

impl ControllerConfig {
    pub fn kafka_defaults(cluster_id: impl Into<String>) -> ControllerConfig {
        ControllerConfig {
            session_timeout_ms: 9_000,
            default_num_partitions: 1,
            default_replication_factor: 1,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            unclean_leader_election: false,
            producer_id_block_size: 1_000,
            cluster_id: cluster_id.into(),
        }
    }
}

/// Mirrors `strata_core::controller::Controller` (minimal behaviour).
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    image: MetadataImage,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Controller {
        Controller {
            config,
            image: MetadataImage::default(),
        }
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn replay(&mut self, offset: u64, records: &[MetadataRecord]) {
        self.image.replay(offset, records);
    }

    pub fn install_image(&mut self, image: MetadataImage) {
        self.image = image;
    }

    pub fn on_activated(&mut self, _now: Instant) {}

    pub fn handle(&mut self, _now: Instant, request: &Request) -> (Response, Vec<MetadataRecord>) {
        match request {
            Request::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
            } => {
                let broker_epoch = self.image.offset as i64 + 1;
                (
                    Response::Registered { broker_epoch },
                    vec![MetadataRecord::RegisterBroker {
                        broker_id: *broker_id,
                        broker_epoch,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                    }],
                )
            }
            Request::Heartbeat {
                broker_id,
                broker_epoch,
                ..
            } => match self.image.brokers.get(broker_id) {
                Some(b) if b.broker_epoch == *broker_epoch => {
                    let records = if b.fenced {
                        vec![MetadataRecord::UnfenceBroker {
                            broker_id: *broker_id,
                            broker_epoch: *broker_epoch,
                        }]
                    } else {
                        Vec::new()
                    };
                    let response = Response::Heartbeat {
                        error_code: 0,
                        fenced: false,
                        shutdown_ready: false,
                    };
                    (response, records)
                }
                _ => (
                    Response::Heartbeat {
                        error_code: ErrorCode::STALE_BROKER_EPOCH.0,
                        fenced: true,
                        shutdown_ready: false,
                    },
                    Vec::new(),
                ),
            },
            Request::CreateTopics(r) => {
                let mut records = Vec::new();
                let mut results = Vec::new();
                let brokers: Vec<_> = self.image.live_brokers().map(|b| b.broker_id).collect();
                for topic in &r.topics {
                    let error_code = if self.image.topics.contains_key(&topic.name) {
                        ErrorCode::TOPIC_ALREADY_EXISTS.0
                    } else if brokers.is_empty() {
                        ErrorCode::INVALID_REPLICATION_FACTOR.0
                    } else {
                        0
                    };
                    results.push(TopicResult {
                        name: topic.name.clone(),
                        partition: -1,
                        error_code,
                        error_message: None,
                    });
                    if error_code != 0 || r.validate_only {
                        continue;
                    }
                    records.push(MetadataRecord::Topic {
                        name: topic.name.clone(),
                        configs: BTreeMap::new(),
                    });
                    let count = if topic.num_partitions < 0 {
                        self.config.default_num_partitions
                    } else {
                        topic.num_partitions
                    };
                    for p in 0..count {
                        let leader = brokers[p as usize % brokers.len()];
                        records.push(MetadataRecord::Partition(PartitionRecord {
                            topic: topic.name.clone(),
                            partition: p,
                            replicas: vec![leader],
                            isr: vec![leader],
                            leader: Some(leader),
                            leader_epoch: 0,
                            partition_epoch: 0,
                        }));
                    }
                }
                (Response::Topics(results), records)
            }
            _ => (
                Response::Error {
                    error_code: ErrorCode::INVALID_REQUEST.0,
                    message: "not implemented by the stub controller".into(),
                },
                Vec::new(),
            ),
        }
    }

    pub fn tick(&mut self, _now: Instant) -> Vec<MetadataRecord> {
        if self.image.cluster_id.is_none() {
            return vec![MetadataRecord::ClusterId {
                cluster_id: self.config.cluster_id.clone(),
            }];
        }
        Vec::new()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        // Like the real one: "due now" while the cluster id is missing.
        self.image
            .cluster_id
            .is_none()
            .then_some(Instant::default())
    }
}
