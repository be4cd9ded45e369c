//! FindCoordinator v0–6: which broker coordinates a group.
//!
//! - v0–3 carry one `key`; v4+ a batch of `coordinator_keys` (KIP-699), answered one
//!   `Coordinator` each.
//! - Key type 0 (group): the leader of the group's `__consumer_offsets` partition, created on the
//!   first request (see [`crate::group::offsets_topic`]); COORDINATOR_NOT_AVAILABLE while it is
//!   being created or the partition has no live leader (the client retries).
//! - Key type 1 (transaction): UNSUPPORTED_VERSION — Strata has no transaction coordinator, as
//!   InitProducerId refuses transactional ids; anything else: INVALID_REQUEST (Kafka's answer
//!   to an unknown key type).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use strata_core::ErrorCode;
use strata_core::rpc::NewTopic;

use super::str_bytes;
use crate::broker::{Broker, BrokerError, Topic};
use crate::group::GroupCoordinators;
use crate::group::offsets_topic::{OFFSETS_TOPIC, topic_configs};

/// The offsets topic, created if it does not exist yet. `Err` is FindCoordinator's answer
/// meanwhile (COORDINATOR_NOT_AVAILABLE: the client retries).
fn ensure_offsets_topic(broker: &Arc<Broker>) -> Result<Arc<Topic>, ErrorCode> {
    if let Some(t) = broker.topic(OFFSETS_TOPIC) {
        return Ok(t);
    }
    let partitions = i32::try_from(broker.config.cluster_int("offsets.topic.num.partitions"))
        .unwrap_or(50)
        .max(1);
    let Some(cluster) = broker.cluster() else {
        return match broker.create_topic(
            OFFSETS_TOPIC,
            partitions,
            topic_configs(&broker.config),
            false,
        ) {
            Ok(t) => Ok(t),
            Err(BrokerError::AlreadyExists(_)) => broker
                .topic(OFFSETS_TOPIC)
                .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the offsets topic");
                Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
            }
        };
    };
    let image = cluster.image();
    if !image.topics.contains_key(OFFSETS_TOPIC) {
        let configured: i64 = broker
            .config
            .value("offsets.topic.replication.factor")
            .parse()
            .unwrap_or(-1);
        let live = image.live_brokers().count().max(1);
        let replication_factor = if configured > 0 {
            i16::try_from(configured).unwrap_or(i16::MAX)
        } else {
            i16::try_from(live.min(3)).unwrap_or(3)
        };
        crate::replication::admin::create_in_background(
            &cluster,
            NewTopic {
                name: OFFSETS_TOPIC.to_string(),
                num_partitions: partitions,
                replication_factor,
                assignments: BTreeMap::new(),
                configs: topic_configs(&broker.config),
            },
        );
    }
    Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
}

/// Where a key's coordinator is, or why not.
fn find(broker: &Arc<Broker>, key_type: i8, key: &str) -> Result<(i32, String, i32), ErrorCode> {
    match key_type {
        0 => {}
        1 => return Err(ErrorCode::UNSUPPORTED_VERSION),
        _ => return Err(ErrorCode::INVALID_REQUEST),
    }
    ensure_offsets_topic(broker)?;
    let partition = GroupCoordinators::partition_of(broker.as_ref(), key)
        .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    let Some(cluster) = broker.cluster() else {
        let cfg = &broker.config;
        let me = cfg
            .advertised
            .clone()
            .unwrap_or_else(|| cfg.listener.clone());
        return Ok((cfg.node_id, me.host, i32::from(me.port)));
    };
    let image = cluster.image();
    let leader = image
        .topics
        .get(OFFSETS_TOPIC)
        .and_then(|t| t.partitions.get(&partition))
        .and_then(|p| p.leader)
        .and_then(|l| image.brokers.get(&l))
        .filter(|b| !b.fenced)
        .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    Ok((
        leader.broker_id.0,
        leader.host.clone(),
        i32::from(leader.port),
    ))
}

fn message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::UNSUPPORTED_VERSION => "transactions are not supported",
        ErrorCode::INVALID_REQUEST => "unknown coordinator key type",
        _ => "the coordinator is not available yet",
    }
}

fn coordinator(broker: &Arc<Broker>, key_type: i8, key: StrBytes) -> Coordinator {
    match find(broker, key_type, &key) {
        Ok((node_id, host, port)) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(node_id))
            .with_host(str_bytes(&host))
            .with_port(port),
        Err(code) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::default())
            .with_port(-1)
            .with_error_code(code.0)
            .with_error_message(Some(str_bytes(message(code)))),
    }
}

pub fn handle(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let key_type = if version >= 1 { req.key_type } else { 0 };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|k| coordinator(broker, key_type, k))
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinator(broker, key_type, req.key);
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
