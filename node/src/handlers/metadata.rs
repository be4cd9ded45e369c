//! Metadata. Single node: this broker leads every partition (replicas = isr = [self]), is the
//! controller, and reports the persisted cluster id. Cluster: the metadata image's view (see
//! `handle_cluster`). Unknown topics are auto-created when
//! `auto.create.topics.enable` is on and the request allows it (`allow_auto_topic_creation`,
//! v4+; always allowed before v4). A null topic list means every topic.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use strata_core::ErrorCode;

use strata_core::metadata::{MetadataImage, TopicImage};
use strata_core::types::NodeId;

use super::{str_bytes, topic_name};
use crate::broker::{Broker, Topic};
use crate::replication::ClusterState;

fn topic_response(broker: &Broker, t: &Topic) -> MetadataResponseTopic {
    let me = BrokerId(broker.config.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(
            t.partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(me)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![me])
                        .with_isr_nodes(vec![me])
                })
                .collect(),
        )
}

/// A topic as the cluster's metadata image describes it.
fn cluster_topic_response(image: &MetadataImage, t: &TopicImage) -> MetadataResponseTopic {
    // Kafka's offline replicas: on a dead (fenced) broker, or offline there (KIP-858).
    let fenced = |r: &NodeId| image.brokers.get(r).is_none_or(|b| b.fenced);
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(
            t.partitions
                .iter()
                .map(|(&index, p)| {
                    let ids = |v: &[NodeId]| v.iter().map(|n| BrokerId(n.0)).collect::<Vec<_>>();
                    let offline_replicas: Vec<NodeId> = p
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| fenced(r) || image.is_replica_offline(*r, &t.name, index))
                        .collect();
                    MetadataResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(if p.leader.is_some() {
                            0
                        } else {
                            ErrorCode::LEADER_NOT_AVAILABLE.0
                        })
                        .with_leader_id(BrokerId(p.leader.map_or(-1, |l| l.0)))
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(ids(&p.replicas))
                        .with_isr_nodes(ids(&p.isr))
                        .with_offline_replicas(ids(&offline_replicas))
                })
                .collect(),
        )
}

/// Metadata in a cluster: the brokers that are alive (unfenced), the active controller, and
/// each topic's leaders, replicas, ISR and offline replicas from this broker's metadata image.
fn handle_cluster(
    broker: &Arc<Broker>,
    cluster: &ClusterState,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let image = cluster.image();
    let allow = version < 4 || req.allow_auto_topic_creation;
    let all =
        req.topics.is_none() || (version == 0 && req.topics.as_ref().is_some_and(Vec::is_empty));
    let topics = if all {
        image
            .topics
            .values()
            .map(|t| cluster_topic_response(&image, t))
            .collect()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|rt| {
                let Some(name) = rt.name else {
                    return MetadataResponseTopic::default()
                        .with_topic_id(rt.topic_id)
                        .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0);
                };
                match image.topics.get(name.as_str()) {
                    Some(t) => cluster_topic_response(&image, t),
                    None => {
                        let code = match super::admin::topic_or_create(broker, &name, allow) {
                            Ok(_) => ErrorCode::LEADER_NOT_AVAILABLE,
                            Err(e) => e.error_code(),
                        };
                        MetadataResponseTopic::default()
                            .with_name(Some(name))
                            .with_error_code(code.0)
                    }
                }
            })
            .collect()
    };
    let mut brokers: Vec<MetadataResponseBroker> = image
        .live_brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.broker_id.0))
                .with_host(str_bytes(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    if brokers.is_empty() {
        // Not caught up with the cluster yet: name ourselves so the client can come back.
        let cfg = &broker.config;
        let advertised = cfg
            .advertised
            .clone()
            .unwrap_or_else(|| cfg.listener.clone());
        brokers.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(cfg.node_id))
                .with_host(str_bytes(&advertised.host))
                .with_port(i32::from(advertised.port)),
        );
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(image.cluster_id.as_deref().map(str_bytes))
        .with_controller_id(BrokerId(cluster.controller_id()))
        .with_topics(topics)
}

pub fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
    if let Some(cluster) = broker.cluster() {
        return handle_cluster(broker, &cluster, req, version);
    }
    let cfg = &broker.config;
    let advertised = cfg
        .advertised
        .clone()
        .unwrap_or_else(|| cfg.listener.clone());
    let me = BrokerId(cfg.node_id);
    let allow = version < 4 || req.allow_auto_topic_creation;
    let topics = match req.topics {
        None => broker
            .topics()
            .values()
            .map(|t| topic_response(broker, t))
            .collect(),
        // v0: an empty list also means all topics.
        Some(list) if list.is_empty() && version == 0 => broker
            .topics()
            .values()
            .map(|t| topic_response(broker, t))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|rt| {
                let Some(name) = rt.name else {
                    // Lookup by topic id: we have no topic ids.
                    return MetadataResponseTopic::default()
                        .with_topic_id(rt.topic_id)
                        .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0);
                };
                match super::admin::topic_or_create(broker, &name, allow) {
                    Ok(t) => topic_response(broker, &t),
                    Err(e) => MetadataResponseTopic::default()
                        .with_name(Some(name))
                        .with_error_code(e.error_code().0),
                }
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(me)
                .with_host(str_bytes(&advertised.host))
                .with_port(i32::from(advertised.port)),
        ])
        .with_cluster_id(Some(str_bytes(&broker.cluster_id())))
        .with_controller_id(me)
        .with_topics(topics)
}
