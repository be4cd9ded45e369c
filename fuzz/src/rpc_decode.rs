//! `rpc_decode`: arbitrary bytes as the body of an internal frame (`strata_core::rpc`, the
//! `CONTROLLER` listener's Raft traffic and broker-to-controller RPCs).
//!
//! Input: the frame body (the bytes after the `u32` length prefix). Seeds: encoded envelopes of
//! every variant ([`seeds`]).
//!
//! Properties: `decode` never panics (a malformed body is a `CodecError`, and the connection
//! closes); an envelope that decodes passes [`check_round_trip`], and re-encodes to no more bytes
//! than it came in (so a message accepted under `MAX_FRAME_BYTES` can be sent on under it).
//! Not checked: that the re-encoding equals the input. postcard accepts overlong varints and a
//! map with a repeated key keeps the last value, so one envelope has many encodings; what the
//! nodes rely on is that decoding an encoding gives back the envelope.

use std::collections::BTreeMap;

use strata_core::metadata::{
    BrokerImage, MetadataImage, MetadataRecord, PartitionImage, PartitionRecord, TopicImage,
};
use strata_core::rpc::{
    self, AlterConfigsRequest, AlterConfigsResult, AlterPartitionRequest, ConfigChange, ConfigOp,
    CreatePartitionsRequest, CreateTopicsRequest, ElectLeadersRequest, Envelope, MetadataDelta,
    NewTopic, Request, Response, TopicConfigChanges, TopicResult,
};
use strata_core::types::NodeId;

pub fn rpc_decode(data: &[u8]) {
    let Ok(envelope) = rpc::decode(data) else {
        return;
    };
    let bytes = check_round_trip(&envelope);
    assert!(
        bytes.len() <= data.len(),
        "{} bytes decode to an envelope that encodes to {}: {envelope:?}",
        data.len(),
        bytes.len()
    );
}

/// The codec's contract for one envelope, returning its encoding: it decodes back to the same
/// envelope, re-encoding that gives the same bytes, and the body is self-delimiting (a cut body
/// and a body with a byte after it are refused, so a framing bug cannot pass for a message).
pub fn check_round_trip(envelope: &Envelope) -> Vec<u8> {
    let bytes = rpc::encode(envelope);
    let again = rpc::decode(&bytes)
        .unwrap_or_else(|e| panic!("an encoded envelope does not decode ({e}): {envelope:?}"));
    assert_eq!(&again, envelope, "decode(encode(x)) != x");
    assert_eq!(rpc::encode(&again), bytes, "re-encoding is not stable");
    let cut = &bytes[..bytes.len().saturating_sub(1)];
    assert!(
        rpc::decode(cut).is_err(),
        "a body cut by one byte decodes: {envelope:?}"
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(
        rpc::decode(&longer).is_err(),
        "a body with a byte after the message decodes: {envelope:?}"
    );
    bytes
}

/// Encoded envelopes: every variant of `Envelope`, `Request`, `Response`, `MetadataDelta` and
/// `MetadataRecord`, with empty and non-empty collections and `Option`s both ways.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    envelopes()
        .into_iter()
        .map(|(name, e)| (format!("seed-{name}"), rpc::encode(&e)))
        .collect()
}

fn request(correlation_id: u64, request: Request) -> Envelope {
    Envelope::Request {
        correlation_id,
        request,
    }
}

fn response(correlation_id: u64, response: Response) -> Envelope {
    Envelope::Response {
        correlation_id,
        response,
    }
}

fn partition_record() -> PartitionRecord {
    PartitionRecord {
        topic: "orders".into(),
        partition: 3,
        replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
        isr: vec![NodeId(1), NodeId(3)],
        leader: Some(NodeId(1)),
        leader_epoch: 7,
        partition_epoch: 12,
    }
}

fn records() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::ClusterId {
            cluster_id: "strata-cluster-0".into(),
        },
        MetadataRecord::RegisterBroker {
            broker_id: NodeId(2),
            broker_epoch: 40,
            host: "broker-2.local".into(),
            port: 9092,
            rack: Some("rack-b".into()),
        },
        MetadataRecord::FenceBroker {
            broker_id: NodeId(2),
            broker_epoch: 40,
        },
        MetadataRecord::UnfenceBroker {
            broker_id: NodeId(2),
            broker_epoch: 40,
        },
        MetadataRecord::Topic {
            name: "orders".into(),
            configs: BTreeMap::from([("retention.ms".into(), "86400000".into())]),
        },
        MetadataRecord::Partition(partition_record()),
        MetadataRecord::RemoveTopic { name: "old".into() },
        MetadataRecord::ProducerIds {
            broker_id: NodeId(1),
            broker_epoch: 3,
            next_producer_id: 2000,
        },
        MetadataRecord::OfflineReplicas {
            broker_id: NodeId(2),
            broker_epoch: 40,
            partitions: vec![("orders".into(), 0), ("orders".into(), 1)],
        },
        MetadataRecord::TopicConfigs {
            name: "orders".into(),
            configs: BTreeMap::from([("cleanup.policy".into(), "compact,delete".into())]),
        },
    ]
}

fn image() -> MetadataImage {
    let broker = |id: i32, fenced: bool| BrokerImage {
        broker_id: NodeId(id),
        broker_epoch: i64::from(id) * 10,
        host: format!("broker-{id}.local"),
        port: 9092,
        rack: (id % 2 == 0).then(|| "rack-b".to_string()),
        fenced,
    };
    let partition = |leader: Option<i32>| PartitionImage {
        replicas: vec![NodeId(1), NodeId(2)],
        isr: vec![NodeId(1)],
        leader: leader.map(NodeId),
        leader_epoch: 4,
        partition_epoch: 9,
    };
    MetadataImage {
        offset: 1234,
        cluster_id: Some("strata-cluster-0".into()),
        brokers: BTreeMap::from([(NodeId(1), broker(1, false)), (NodeId(2), broker(2, true))]),
        topics: BTreeMap::from([(
            "orders".into(),
            TopicImage {
                name: "orders".into(),
                created_offset: 17,
                configs: BTreeMap::from([("cleanup.policy".into(), "delete".into())]),
                partitions: BTreeMap::from([(0, partition(Some(1))), (1, partition(None))]),
            },
        )]),
        next_producer_id: 5000,
        offline_replicas: BTreeMap::from([(
            NodeId(2),
            std::collections::BTreeSet::from([("orders".to_string(), 1)]),
        )]),
    }
}

fn envelopes() -> Vec<(&'static str, Envelope)> {
    vec![
        (
            "raft",
            Envelope::Raft {
                from: NodeId(3001),
                message: vec![0x08, 0x03, 0x10, 0x01, 0x18, 0x02, 0x20, 0x05],
            },
        ),
        (
            "raft-empty",
            Envelope::Raft {
                from: NodeId(-1),
                message: Vec::new(),
            },
        ),
        (
            "request-register-broker",
            request(
                1,
                Request::RegisterBroker {
                    broker_id: NodeId(2),
                    host: "broker-2.local".into(),
                    port: 9092,
                    rack: Some("rack-b".into()),
                },
            ),
        ),
        (
            "request-register-broker-no-rack",
            request(
                u64::MAX,
                Request::RegisterBroker {
                    broker_id: NodeId(i32::MAX),
                    host: String::new(),
                    port: 0,
                    rack: None,
                },
            ),
        ),
        (
            "request-heartbeat",
            request(
                2,
                Request::Heartbeat {
                    broker_id: NodeId(2),
                    broker_epoch: 40,
                    metadata_offset: 1234,
                    want_shutdown: true,
                },
            ),
        ),
        (
            "request-fetch-metadata",
            request(
                3,
                Request::FetchMetadata {
                    from_offset: 1200,
                    max_wait_ms: 500,
                },
            ),
        ),
        (
            "request-alter-partition",
            request(
                4,
                Request::AlterPartition(AlterPartitionRequest {
                    broker_id: NodeId(1),
                    broker_epoch: 10,
                    topic: "orders".into(),
                    partition: 3,
                    leader_epoch: 7,
                    partition_epoch: 12,
                    new_isr: vec![NodeId(1), NodeId(2), NodeId(3)],
                }),
            ),
        ),
        (
            "request-create-topics",
            request(
                5,
                Request::CreateTopics(CreateTopicsRequest {
                    topics: vec![
                        NewTopic {
                            name: "orders".into(),
                            num_partitions: -1,
                            replication_factor: -1,
                            assignments: BTreeMap::new(),
                            configs: BTreeMap::new(),
                        },
                        NewTopic {
                            name: "payments".into(),
                            num_partitions: 2,
                            replication_factor: 2,
                            assignments: BTreeMap::from([
                                (0, vec![NodeId(1), NodeId(2)]),
                                (1, vec![NodeId(2), NodeId(1)]),
                            ]),
                            configs: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
                        },
                    ],
                    validate_only: false,
                }),
            ),
        ),
        (
            "request-delete-topics",
            request(
                6,
                Request::DeleteTopics {
                    names: vec!["orders".into(), "payments".into()],
                },
            ),
        ),
        (
            "request-create-partitions",
            request(
                7,
                Request::CreatePartitions(CreatePartitionsRequest {
                    topics: vec![("orders".into(), 6)],
                    validate_only: true,
                }),
            ),
        ),
        (
            "request-elect-leaders",
            request(
                8,
                Request::ElectLeaders(ElectLeadersRequest {
                    partitions: Some(vec![("orders".into(), 0), ("orders".into(), 1)]),
                }),
            ),
        ),
        (
            "request-elect-leaders-all",
            request(
                9,
                Request::ElectLeaders(ElectLeadersRequest { partitions: None }),
            ),
        ),
        (
            "request-allocate-producer-ids",
            request(
                10,
                Request::AllocateProducerIds {
                    broker_id: NodeId(1),
                    broker_epoch: 10,
                },
            ),
        ),
        (
            "response-not-controller",
            response(
                1,
                Response::NotController {
                    leader: Some(NodeId(3001)),
                },
            ),
        ),
        (
            "response-registered",
            response(1, Response::Registered { broker_epoch: 40 }),
        ),
        (
            "response-heartbeat",
            response(
                2,
                Response::Heartbeat {
                    error_code: 0,
                    fenced: false,
                    shutdown_ready: true,
                },
            ),
        ),
        (
            "response-metadata-records",
            response(
                3,
                Response::Metadata(MetadataDelta::Records(vec![
                    (1201, records()),
                    (1202, Vec::new()),
                ])),
            ),
        ),
        (
            "response-metadata-image",
            response(
                3,
                Response::Metadata(MetadataDelta::Image(Box::new(image()))),
            ),
        ),
        (
            "response-metadata-empty-image",
            response(3, Response::Metadata(MetadataDelta::Image(Box::default()))),
        ),
        (
            "response-alter-partition",
            response(
                4,
                Response::AlterPartition {
                    error_code: 0,
                    partition: Some(partition_record()),
                },
            ),
        ),
        (
            "response-topics",
            response(
                5,
                Response::Topics(vec![
                    TopicResult {
                        name: "orders".into(),
                        partition: -1,
                        error_code: 0,
                        error_message: None,
                    },
                    TopicResult {
                        name: "payments".into(),
                        partition: 1,
                        error_code: 36,
                        error_message: Some("Topic 'payments' already exists.".into()),
                    },
                ]),
            ),
        ),
        (
            "response-producer-ids",
            response(
                10,
                Response::ProducerIds {
                    error_code: 0,
                    first_producer_id: 1000,
                    count: 1000,
                },
            ),
        ),
        (
            "response-error",
            response(
                11,
                Response::Error {
                    error_code: -1,
                    message: "cannot decode".into(),
                },
            ),
        ),
        (
            "request-offline-replicas",
            request(
                12,
                Request::OfflineReplicas {
                    broker_id: NodeId(2),
                    broker_epoch: 40,
                    partitions: vec![("orders".into(), 1)],
                },
            ),
        ),
        (
            "response-offline-replicas",
            response(12, Response::OfflineReplicas { error_code: 77 }),
        ),
        (
            "request-alter-configs",
            request(
                13,
                Request::AlterConfigs(AlterConfigsRequest {
                    topics: vec![
                        TopicConfigChanges {
                            topic: "orders".into(),
                            replace: false,
                            changes: vec![
                                ConfigChange {
                                    name: "cleanup.policy".into(),
                                    op: ConfigOp::Append,
                                    value: Some("compact".into()),
                                },
                                ConfigChange {
                                    name: "retention.ms".into(),
                                    op: ConfigOp::Delete,
                                    value: None,
                                },
                            ],
                        },
                        TopicConfigChanges {
                            topic: "payments".into(),
                            replace: true,
                            changes: Vec::new(),
                        },
                    ],
                    validate_only: true,
                }),
            ),
        ),
        (
            "response-alter-configs",
            response(
                13,
                Response::AlterConfigs(vec![
                    AlterConfigsResult {
                        result: TopicResult {
                            name: "orders".into(),
                            partition: -1,
                            error_code: 0,
                            error_message: None,
                        },
                        configs: Some(BTreeMap::from([(
                            "cleanup.policy".into(),
                            "delete,compact".into(),
                        )])),
                    },
                    AlterConfigsResult {
                        result: TopicResult {
                            name: "payments".into(),
                            partition: -1,
                            error_code: 40,
                            error_message: Some("Unknown topic config name: x".into()),
                        },
                        configs: None,
                    },
                ]),
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds cover every variant (a new variant must get a seed).
    #[test]
    fn seeds_cover_every_variant() {
        let all = envelopes();
        let requests = all
            .iter()
            .filter_map(|(_, e)| match e {
                Envelope::Request { request, .. } => Some(std::mem::discriminant(request)),
                _ => None,
            })
            .collect::<std::collections::HashSet<_>>();
        let responses = all
            .iter()
            .filter_map(|(_, e)| match e {
                Envelope::Response { response, .. } => Some(std::mem::discriminant(response)),
                _ => None,
            })
            .collect::<std::collections::HashSet<_>>();
        let records = records()
            .iter()
            .map(std::mem::discriminant)
            .collect::<std::collections::HashSet<_>>();
        assert_eq!(requests.len(), 11, "one seed per Request variant");
        assert_eq!(responses.len(), 10, "one seed per Response variant");
        assert_eq!(records.len(), 10, "one record per MetadataRecord variant");
    }
}
