//! CreateTopics, DeleteTopics, CreatePartitions and ElectLeaders: one entry per API for
//! dispatch, each choosing its backend — this broker on a single node (below), the active
//! controller in a cluster (`replication::admin`, KIP-590 forwarding) — and topic auto-creation
//! (`topic_or_create`) the same way.
//!
//! Single node: the replication factor must be 1 (or -1 = default), and a manual assignment may
//! only name this broker. Each topic's outcome is independent (Kafka semantics): one failing
//! topic does not fail the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, ElectLeadersRequest, ResponseKind, TopicName,
};
use strata_core::ErrorCode;

use super::describe_configs::topic_config_source;
use super::str_bytes;
use crate::broker::{Broker, BrokerError};
use crate::handled::Handled;
use crate::replication;
use crate::topic::Topic;
use crate::topic_config::{TOPIC_CONFIGS, effective, validate_topic_configs};

/// INVALID_REPLICA_ASSIGNMENT.
const INVALID_REPLICA_ASSIGNMENT: ErrorCode = ErrorCode(39);

fn failed(name: TopicName, code: ErrorCode, message: String) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(name)
        .with_error_code(code.0)
        .with_error_message(Some(str_bytes(&message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

/// CreateTopics, by this broker or the controller.
pub fn create_topics(broker: &Arc<Broker>, req: CreateTopicsRequest, version: i16) -> Handled {
    match broker.cluster() {
        Some(c) => replication::admin::create_topics(c, &broker.config, req),
        None => Handled::Now(ResponseKind::CreateTopics(create_topics_locally(
            broker, req, version,
        ))),
    }
}

/// DeleteTopics, by this broker or the controller.
pub fn delete_topics(broker: &Arc<Broker>, req: DeleteTopicsRequest) -> Handled {
    match broker.cluster() {
        Some(c) => replication::admin::delete_topics(c, req),
        None => Handled::Now(ResponseKind::DeleteTopics(delete_topics_locally(
            broker, req,
        ))),
    }
}

/// CreatePartitions, by this broker or the controller.
pub fn create_partitions(broker: &Arc<Broker>, req: CreatePartitionsRequest) -> Handled {
    match broker.cluster() {
        Some(c) => replication::admin::create_partitions(c, req),
        None => Handled::Now(ResponseKind::CreatePartitions(create_partitions_locally(
            broker, req,
        ))),
    }
}

/// ElectLeaders: the controller's (a single node leads everything already).
pub fn elect_leaders(broker: &Arc<Broker>, req: ElectLeadersRequest, version: i16) -> Handled {
    replication::admin::elect_leaders(broker, req, version)
}

fn create_topics_locally(
    broker: &Arc<Broker>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let me = broker.config.node_id;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        if counts.get(&name).copied().unwrap_or(0) > 1 {
            results.push(failed(
                t.name,
                ErrorCode::INVALID_REQUEST,
                format!("topic {name} appears more than once in the request"),
            ));
            continue;
        }
        if !matches!(t.replication_factor, 1 | -1) && t.assignments.is_empty() {
            results.push(failed(
                t.name,
                ErrorCode::INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {} is larger than the 1 available broker",
                    t.replication_factor
                ),
            ));
            continue;
        }
        let partitions = if !t.assignments.is_empty() {
            if t.assignments
                .iter()
                .any(|a| a.broker_ids.iter().map(|b| b.0).ne([me]))
            {
                results.push(failed(
                    t.name,
                    INVALID_REPLICA_ASSIGNMENT,
                    format!("assignments may only name broker {me}"),
                ));
                continue;
            }
            t.assignments.len() as i32
        } else if t.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            t.num_partitions
        };
        let overrides = match validate_topic_configs(
            t.configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str()))),
            &broker.config,
        ) {
            Ok(o) => o,
            Err(e) => {
                results.push(failed(t.name, ErrorCode::INVALID_CONFIG, e.to_string()));
                continue;
            }
        };
        match broker.create_topic(&name, partitions, overrides, req.validate_only) {
            Ok(topic) => {
                let mut r = CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                if version >= 5 {
                    r = r.with_configs(Some(
                        TOPIC_CONFIGS
                            .iter()
                            .map(|def| {
                                let (value, set) = effective(def, &topic.configs, &broker.config);
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(def.name))
                                    .with_value(Some(str_bytes(value)))
                                    .with_config_source(topic_config_source(
                                        def,
                                        set,
                                        &broker.config,
                                    ))
                            })
                            .collect(),
                    ));
                }
                results.push(r);
            }
            Err(e) => {
                if let BrokerError::Metadata(_) | BrokerError::Log(_) = e {
                    tracing::error!(topic = %name, error = %e, "topic creation failed");
                }
                results.push(failed(t.name, e.error_code(), e.to_string()));
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn delete_topics_locally(broker: &Arc<Broker>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v0-5 carry `topic_names`; v6+ carry `topics` (by name or id; we only know names).
    let mut names: Vec<Option<TopicName>> = req.topic_names.into_iter().map(Some).collect();
    let mut by_id = Vec::new();
    for t in req.topics {
        match t.name {
            Some(n) => names.push(Some(n)),
            None => by_id.push(t.topic_id),
        }
    }
    let mut responses: Vec<DeletableTopicResult> = names
        .into_iter()
        .flatten()
        .map(|name| {
            let r = DeletableTopicResult::default().with_name(Some(name.clone()));
            match broker.delete_topic(name.0.as_str()) {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.error_code().0)
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    for id in by_id {
        responses.push(
            DeletableTopicResult::default()
                .with_topic_id(id)
                .with_error_code(ErrorCode(100).0) // UNKNOWN_TOPIC_ID
                .with_error_message(Some(str_bytes(
                    "this broker has no topic ids; delete by name",
                ))),
        );
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

fn create_partitions_locally(
    broker: &Arc<Broker>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let me = broker.config.node_id;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Some(assignments) = &t.assignments
                && assignments
                    .iter()
                    .any(|a| a.broker_ids.iter().map(|b| b.0).ne([me]))
            {
                return r
                    .with_error_code(INVALID_REPLICA_ASSIGNMENT.0)
                    .with_error_message(Some(str_bytes(&format!(
                        "assignments may only name broker {me}"
                    ))));
            }
            match broker.create_partitions(t.name.0.as_str(), t.count, req.validate_only) {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.error_code().0)
                    .with_error_message(Some(str_bytes(&e.to_string()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// [`Broker::topic_or_create`], and in a cluster the request to the controller it calls for
/// (KIP-590 style: the controller creates the topic; the client retries on LEADER_NOT_AVAILABLE
/// until the metadata reaches this broker).
pub fn topic_or_create(
    broker: &Broker,
    name: &str,
    allow: bool,
) -> Result<Arc<Topic>, BrokerError> {
    let outcome = broker.topic_or_create(name, allow);
    if let (Err(BrokerError::Creating(_)), Some(cluster)) = (&outcome, broker.cluster()) {
        replication::admin::auto_create(&cluster, name);
    }
    outcome
}
