//! Metadata: this broker leads every partition (replicas = isr = [self]), is the controller,
//! and reports the persisted cluster id. Unknown topics are auto-created when
//! `auto.create.topics.enable` is on and the request allows it (`allow_auto_topic_creation`,
//! v4+; always allowed before v4). A null topic list means every topic.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use strata_core::ErrorCode;

use super::{str_bytes, topic_name};
use crate::broker::{Broker, Topic};

fn topic_response(broker: &Broker, t: &Topic) -> MetadataResponseTopic {
    let me = BrokerId(broker.config.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
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

pub fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> MetadataResponse {
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
                match broker.topic_or_create(&name, allow) {
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
        .with_cluster_id(Some(str_bytes(&broker.cluster_id)))
        .with_controller_id(me)
        .with_topics(topics)
}
