//! `rpc_roundtrip`: structure-aware round trips of internal messages. The input drives an
//! [`Unstructured`] that builds an [`Envelope`] field by field (the core types do not derive
//! `Arbitrary`), so every variant and every extreme value is reached without the fuzzer having to
//! discover the encoding first.
//!
//! Property: [`check_round_trip`] (decode gives back the envelope, re-encoding is stable, a cut
//! body or one with a byte after it is refused).

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Result, Unstructured};
use strata_core::metadata::{
    BrokerImage, MetadataImage, MetadataRecord, PartitionImage, PartitionRecord, TopicImage,
};
use strata_core::rpc::{
    AlterConfigsRequest, AlterConfigsResult, AlterPartitionRequest, ConfigChange, ConfigOp,
    CreatePartitionsRequest, CreateTopicsRequest, ElectLeadersRequest, Envelope, MetadataDelta,
    NewTopic, Request, Response, TopicConfigChanges, TopicResult,
};
use strata_core::types::NodeId;

use crate::rpc_decode::check_round_trip;

pub fn rpc_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(envelope) = envelope(&mut u) {
        check_round_trip(&envelope);
    }
}

/// Variant counts, kept honest by the exhaustive matches in [`kinds`].
pub const ENVELOPES: usize = 3;
pub const REQUESTS: usize = 11;
pub const RESPONSES: usize = 10;
pub const RECORDS: usize = 10;

/// Which variant an envelope is, as `(envelope, request or response, delta, record kinds)`:
/// exhaustive matches, so a new variant fails to compile here until the generator (and the
/// counts above) know it.
pub fn kinds(e: &Envelope) -> (usize, Option<usize>, Vec<usize>) {
    match e {
        Envelope::Raft { .. } => (0, None, Vec::new()),
        Envelope::Request { request, .. } => (
            1,
            Some(match request {
                Request::RegisterBroker { .. } => 0,
                Request::Heartbeat { .. } => 1,
                Request::FetchMetadata { .. } => 2,
                Request::AlterPartition(_) => 3,
                Request::CreateTopics(_) => 4,
                Request::DeleteTopics { .. } => 5,
                Request::CreatePartitions(_) => 6,
                Request::ElectLeaders(_) => 7,
                Request::AllocateProducerIds { .. } => 8,
                Request::OfflineReplicas { .. } => 9,
                Request::AlterConfigs(_) => 10,
            }),
            Vec::new(),
        ),
        Envelope::Response { response, .. } => {
            let mut records = Vec::new();
            let kind = match response {
                Response::NotController { .. } => 0,
                Response::Registered { .. } => 1,
                Response::Heartbeat { .. } => 2,
                Response::Metadata(MetadataDelta::Records(batches)) => {
                    records.extend(batches.iter().flat_map(|(_, b)| b).map(record_kind));
                    3
                }
                Response::Metadata(MetadataDelta::Image(_)) => 3,
                Response::AlterPartition { .. } => 4,
                Response::Topics(_) => 5,
                Response::ProducerIds { .. } => 6,
                Response::Error { .. } => 7,
                Response::OfflineReplicas { .. } => 8,
                Response::AlterConfigs(_) => 9,
            };
            (2, Some(kind), records)
        }
    }
}

fn record_kind(r: &MetadataRecord) -> usize {
    match r {
        MetadataRecord::ClusterId { .. } => 0,
        MetadataRecord::RegisterBroker { .. } => 1,
        MetadataRecord::FenceBroker { .. } => 2,
        MetadataRecord::UnfenceBroker { .. } => 3,
        MetadataRecord::Topic { .. } => 4,
        MetadataRecord::Partition(_) => 5,
        MetadataRecord::RemoveTopic { .. } => 6,
        MetadataRecord::ProducerIds { .. } => 7,
        MetadataRecord::OfflineReplicas { .. } => 8,
        MetadataRecord::TopicConfigs { .. } => 9,
    }
}

/// An envelope built from the fuzzer's bytes.
pub fn envelope(u: &mut Unstructured<'_>) -> Result<Envelope> {
    Ok(match u.choose_index(ENVELOPES)? {
        0 => Envelope::Raft {
            from: node(u)?,
            message: Vec::<u8>::arbitrary(u)?,
        },
        // The variant first, so the first two bytes of an input choose it (see [`seeds`]).
        1 => {
            let request = request(u)?;
            Envelope::Request {
                correlation_id: u.arbitrary()?,
                request,
            }
        }
        _ => {
            let response = response(u)?;
            Envelope::Response {
                correlation_id: u.arbitrary()?,
                response,
            }
        }
    })
}

fn node(u: &mut Unstructured<'_>) -> Result<NodeId> {
    Ok(NodeId(u.arbitrary()?))
}

/// Up to `max` items (small: messages stay cheap, variety comes from the variants).
fn list<T>(
    u: &mut Unstructured<'_>,
    max: usize,
    mut item: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| item(u)).collect()
}

fn nodes(u: &mut Unstructured<'_>) -> Result<Vec<NodeId>> {
    list(u, 5, node)
}

fn string(u: &mut Unstructured<'_>) -> Result<String> {
    String::arbitrary(u)
}

fn configs(u: &mut Unstructured<'_>) -> Result<BTreeMap<String, String>> {
    Ok(list(u, 3, |u| Ok((string(u)?, string(u)?)))?
        .into_iter()
        .collect())
}

fn request(u: &mut Unstructured<'_>) -> Result<Request> {
    Ok(match u.choose_index(REQUESTS)? {
        0 => Request::RegisterBroker {
            broker_id: node(u)?,
            host: string(u)?,
            port: u.arbitrary()?,
            rack: Option::<String>::arbitrary(u)?,
        },
        1 => Request::Heartbeat {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
            metadata_offset: u.arbitrary()?,
            want_shutdown: u.arbitrary()?,
        },
        2 => Request::FetchMetadata {
            from_offset: u.arbitrary()?,
            max_wait_ms: u.arbitrary()?,
        },
        3 => Request::AlterPartition(AlterPartitionRequest {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
            topic: string(u)?,
            partition: u.arbitrary()?,
            leader_epoch: u.arbitrary()?,
            partition_epoch: u.arbitrary()?,
            new_isr: nodes(u)?,
        }),
        4 => Request::CreateTopics(CreateTopicsRequest {
            topics: list(u, 3, |u| {
                Ok(NewTopic {
                    name: string(u)?,
                    num_partitions: u.arbitrary()?,
                    replication_factor: u.arbitrary()?,
                    assignments: list(u, 3, |u| Ok((u.arbitrary()?, nodes(u)?)))?
                        .into_iter()
                        .collect(),
                    configs: configs(u)?,
                })
            })?,
            validate_only: u.arbitrary()?,
        }),
        5 => Request::DeleteTopics {
            names: list(u, 4, string)?,
        },
        6 => Request::CreatePartitions(CreatePartitionsRequest {
            topics: list(u, 4, |u| Ok((string(u)?, u.arbitrary()?)))?,
            validate_only: u.arbitrary()?,
        }),
        7 => Request::ElectLeaders(ElectLeadersRequest {
            partitions: if u.arbitrary()? {
                Some(list(u, 4, |u| Ok((string(u)?, u.arbitrary()?)))?)
            } else {
                None
            },
        }),
        8 => Request::AllocateProducerIds {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
        },
        9 => Request::OfflineReplicas {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
            partitions: list(u, 4, |u| Ok((string(u)?, u.arbitrary()?)))?,
        },
        _ => Request::AlterConfigs(AlterConfigsRequest {
            topics: list(u, 3, topic_config_changes)?,
            validate_only: u.arbitrary()?,
        }),
    })
}

fn topic_config_changes(u: &mut Unstructured<'_>) -> Result<TopicConfigChanges> {
    Ok(TopicConfigChanges {
        topic: string(u)?,
        replace: u.arbitrary()?,
        changes: list(u, 3, |u| {
            Ok(ConfigChange {
                name: string(u)?,
                op: ConfigOp::from_code(u.int_in_range(0..=3)?).unwrap_or(ConfigOp::Set),
                value: Option::<String>::arbitrary(u)?,
            })
        })?,
    })
}

fn topic_result(u: &mut Unstructured<'_>) -> Result<TopicResult> {
    Ok(TopicResult {
        name: string(u)?,
        partition: u.arbitrary()?,
        error_code: u.arbitrary()?,
        error_message: Option::<String>::arbitrary(u)?,
    })
}

fn response(u: &mut Unstructured<'_>) -> Result<Response> {
    Ok(match u.choose_index(RESPONSES)? {
        0 => Response::NotController {
            leader: if u.arbitrary()? { Some(node(u)?) } else { None },
        },
        1 => Response::Registered {
            broker_epoch: u.arbitrary()?,
        },
        2 => Response::Heartbeat {
            error_code: u.arbitrary()?,
            fenced: u.arbitrary()?,
            shutdown_ready: u.arbitrary()?,
        },
        3 => Response::Metadata(if u.arbitrary()? {
            MetadataDelta::Image(Box::new(image(u)?))
        } else {
            MetadataDelta::Records(list(u, 3, |u| {
                Ok((u.arbitrary()?, list(u, 4, metadata_record)?))
            })?)
        }),
        4 => Response::AlterPartition {
            error_code: u.arbitrary()?,
            partition: if u.arbitrary()? {
                Some(partition_record(u)?)
            } else {
                None
            },
        },
        5 => Response::Topics(list(u, 4, topic_result)?),
        6 => Response::ProducerIds {
            error_code: u.arbitrary()?,
            first_producer_id: u.arbitrary()?,
            count: u.arbitrary()?,
        },
        7 => Response::Error {
            error_code: u.arbitrary()?,
            message: string(u)?,
        },
        8 => Response::OfflineReplicas {
            error_code: u.arbitrary()?,
        },
        _ => Response::AlterConfigs(list(u, 3, |u| {
            Ok(AlterConfigsResult {
                result: topic_result(u)?,
                configs: if u.arbitrary()? {
                    Some(configs(u)?)
                } else {
                    None
                },
            })
        })?),
    })
}

fn partition_record(u: &mut Unstructured<'_>) -> Result<PartitionRecord> {
    Ok(PartitionRecord {
        topic: string(u)?,
        partition: u.arbitrary()?,
        replicas: nodes(u)?,
        isr: nodes(u)?,
        leader: if u.arbitrary()? { Some(node(u)?) } else { None },
        leader_epoch: u.arbitrary()?,
        partition_epoch: u.arbitrary()?,
    })
}

fn metadata_record(u: &mut Unstructured<'_>) -> Result<MetadataRecord> {
    Ok(match u.choose_index(RECORDS)? {
        0 => MetadataRecord::ClusterId {
            cluster_id: string(u)?,
        },
        1 => MetadataRecord::RegisterBroker {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
            host: string(u)?,
            port: u.arbitrary()?,
            rack: Option::<String>::arbitrary(u)?,
        },
        2 => MetadataRecord::FenceBroker {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
        },
        3 => MetadataRecord::UnfenceBroker {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
        },
        4 => MetadataRecord::Topic {
            name: string(u)?,
            configs: configs(u)?,
        },
        5 => MetadataRecord::Partition(partition_record(u)?),
        6 => MetadataRecord::RemoveTopic { name: string(u)? },
        7 => MetadataRecord::ProducerIds {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
            next_producer_id: u.arbitrary()?,
        },
        8 => MetadataRecord::OfflineReplicas {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
            partitions: list(u, 4, |u| Ok((string(u)?, u.arbitrary()?)))?,
        },
        _ => MetadataRecord::TopicConfigs {
            name: string(u)?,
            configs: configs(u)?,
        },
    })
}

fn image(u: &mut Unstructured<'_>) -> Result<MetadataImage> {
    let brokers = list(u, 3, |u| {
        let b = BrokerImage {
            broker_id: node(u)?,
            broker_epoch: u.arbitrary()?,
            host: string(u)?,
            port: u.arbitrary()?,
            rack: Option::<String>::arbitrary(u)?,
            fenced: u.arbitrary()?,
        };
        Ok((b.broker_id, b))
    })?;
    let topics = list(u, 2, |u| {
        let partitions = list(u, 3, |u| {
            Ok((
                u.arbitrary()?,
                PartitionImage {
                    replicas: nodes(u)?,
                    isr: nodes(u)?,
                    leader: if u.arbitrary()? { Some(node(u)?) } else { None },
                    leader_epoch: u.arbitrary()?,
                    partition_epoch: u.arbitrary()?,
                },
            ))
        })?;
        let t = TopicImage {
            name: string(u)?,
            created_offset: u.arbitrary()?,
            configs: configs(u)?,
            partitions: partitions.into_iter().collect(),
        };
        Ok((t.name.clone(), t))
    })?;
    Ok(MetadataImage {
        offset: u.arbitrary()?,
        cluster_id: Option::<String>::arbitrary(u)?,
        brokers: brokers.into_iter().collect(),
        topics: topics.into_iter().collect(),
        next_producer_id: u.arbitrary()?,
        offline_replicas: list(u, 2, |u| {
            Ok((
                node(u)?,
                list(u, 3, |u| Ok((string(u)?, u.arbitrary()?)))?
                    .into_iter()
                    .collect(),
            ))
        })?
        .into_iter()
        .collect(),
    })
}

/// Seed inputs: for each envelope kind and request / response variant, bytes whose first draws
/// pick it (`choose_index` over fewer than 256 choices reads one byte), then varied filler.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let filler: Vec<u8> = (0u8..=255).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let mut out = vec![("seed-raft".to_string(), [&[0u8][..], &filler].concat())];
    for (kind, count, name) in [(1u8, REQUESTS, "request"), (2, RESPONSES, "response")] {
        for v in 0..count {
            let variant = u8::try_from(v).expect("fewer than 256 variants");
            let bytes = [&[kind, variant][..], &filler].concat();
            out.push((format!("seed-{name}-{v}"), bytes));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The seeds reach every envelope, request and response variant, and the hand-written
    /// `rpc_decode` seeds do too (with every metadata record).
    #[test]
    fn seeds_reach_every_variant() {
        let built: HashSet<_> = seeds()
            .iter()
            .map(|(_, b)| {
                let e = envelope(&mut Unstructured::new(b)).expect("a seed builds an envelope");
                let (k, v, _) = kinds(&e);
                (k, v)
            })
            .collect();
        assert_eq!(built.len(), 1 + REQUESTS + RESPONSES, "{built:?}");
        let mut decoded = HashSet::new();
        let mut records = HashSet::new();
        for (_, bytes) in crate::rpc_decode::seeds() {
            let e = strata_core::rpc::decode(&bytes).expect("a seed decodes");
            let (k, v, r) = kinds(&e);
            decoded.insert((k, v));
            records.extend(r);
        }
        assert_eq!(decoded, built);
        assert_eq!(records.len(), RECORDS);
    }
}
