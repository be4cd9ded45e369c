//! IncrementalAlterConfigs (API 44, KIP-339) and AlterConfigs (API 33, the legacy whole-set
//! form) for topics.
//!
//! Each resource is answered on its own (Kafka's per-resource results):
//! - TOPIC (2): the operations SET, DELETE (back to the broker default), APPEND and SUBTRACT
//!   (list configs: `cleanup.policy`) apply to the topic's current overrides; AlterConfigs'
//!   entries replace every override. The result is checked as CreateTopics checks a new topic
//!   (`topic_config::validate_topic_configs`): an unknown config or a bad value is
//!   INVALID_CONFIG with a message naming it, an unknown topic UNKNOWN_TOPIC_OR_PARTITION, an
//!   unknown operation code INVALID_REQUEST. `validate_only` checks and changes nothing.
//! - BROKER (4) and BROKER_LOGGER (8): INVALID_REQUEST, "broker configs are static". Kafka
//!   answers a change of a config it cannot update dynamically with an `InvalidRequestException`
//!   ("Cannot update these configs dynamically"), so that is the error a Kafka user expects;
//!   every broker setting of this version is such a config.
//! - Any other type: INVALID_REQUEST. A resource named twice: INVALID_REQUEST for each.
//!
//! Single node: the broker applies the change (metadata file first, then the live logs). In a
//! cluster the change goes to the active controller (KIP-590 forwarding), which applies the
//! same operations to the committed overrides and commits a `TopicConfigs` record; every broker
//! replays it and its partitions take the new settings (`Broker::replace_topics`). The answer
//! waits (bounded) until this broker's metadata shows the change.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ResponseKind, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;
use strata_core::ErrorCode;
use strata_core::controller::apply_config_changes;
use strata_core::rpc::{AlterConfigsResult, ConfigChange, ConfigOp, TopicConfigChanges};

use super::str_bytes;
use crate::broker::{Broker, BrokerError};
use crate::handled::Handled;
use crate::replication;
use crate::topic_config::{TopicConfigTable, validate_topic_name};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

/// A resource's outcome: error code and message.
type Outcome = (i16, Option<String>);

/// One resource of the request, parsed.
struct Resource {
    resource_type: i8,
    name: StrBytes,
    /// The topic's changes, or the answer decided before any topic is looked at.
    parsed: Result<TopicConfigChanges, (ErrorCode, String)>,
}

fn refused(code: ErrorCode, message: String) -> Outcome {
    (code.0, Some(message))
}

/// The checks every resource gets before its changes: its type, its name, duplicates.
fn parse(
    resource_type: i8,
    name: &StrBytes,
    duplicate: bool,
    changes: impl FnOnce() -> Result<TopicConfigChanges, (ErrorCode, String)>,
) -> Result<TopicConfigChanges, (ErrorCode, String)> {
    match resource_type {
        _ if duplicate => Err((
            ErrorCode::INVALID_REQUEST,
            format!("resource {name} appears more than once in the request"),
        )),
        RESOURCE_TOPIC => {
            validate_topic_name(name.as_str())
                .map_err(|e| (ErrorCode::INVALID_TOPIC_EXCEPTION, e.to_string()))?;
            changes()
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => Err((
            ErrorCode::INVALID_REQUEST,
            "broker configs are static in this version: set them in the config file, the \
             environment or with --set, and restart the broker"
                .to_string(),
        )),
        other => Err((
            ErrorCode::INVALID_REQUEST,
            format!("unsupported resource type {other}"),
        )),
    }
}

/// How often each (type, name) occurs.
fn counts<'a>(keys: impl Iterator<Item = (i8, &'a str)>) -> BTreeMap<(i8, &'a str), usize> {
    let mut out = BTreeMap::new();
    for key in keys {
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

fn incremental_resources(req: &IncrementalAlterConfigsRequest) -> Vec<Resource> {
    let seen = counts(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    req.resources
        .iter()
        .map(|r| {
            let duplicate = seen.get(&(r.resource_type, r.resource_name.as_str())) > Some(&1);
            let changes = || {
                let changes = r
                    .configs
                    .iter()
                    .map(|c| {
                        let op = ConfigOp::from_code(c.config_operation).ok_or_else(|| {
                            (
                                ErrorCode::INVALID_REQUEST,
                                format!(
                                    "unknown config operation {} for {}",
                                    c.config_operation,
                                    c.name.as_str()
                                ),
                            )
                        })?;
                        Ok(ConfigChange {
                            name: c.name.to_string(),
                            op,
                            value: c.value.as_ref().map(|v| v.to_string()),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(TopicConfigChanges {
                    topic: r.resource_name.to_string(),
                    replace: false,
                    changes,
                })
            };
            Resource {
                resource_type: r.resource_type,
                name: r.resource_name.clone(),
                parsed: parse(r.resource_type, &r.resource_name, duplicate, changes),
            }
        })
        .collect()
}

fn legacy_resources(req: &AlterConfigsRequest) -> Vec<Resource> {
    let seen = counts(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    req.resources
        .iter()
        .map(|r| {
            let duplicate = seen.get(&(r.resource_type, r.resource_name.as_str())) > Some(&1);
            let changes = || {
                Ok(TopicConfigChanges {
                    topic: r.resource_name.to_string(),
                    replace: true,
                    changes: r
                        .configs
                        .iter()
                        .map(|c| ConfigChange {
                            name: c.name.to_string(),
                            op: ConfigOp::Set,
                            value: c.value.as_ref().map(|v| v.to_string()),
                        })
                        .collect(),
                })
            };
            Resource {
                resource_type: r.resource_type,
                name: r.resource_name.clone(),
                parsed: parse(r.resource_type, &r.resource_name, duplicate, changes),
            }
        })
        .collect()
}

/// Single node: each topic's change, applied by the broker.
fn alter_locally(broker: &Broker, resources: &[Resource], validate_only: bool) -> Vec<Outcome> {
    let table = TopicConfigTable::new(broker.config.clone());
    resources
        .iter()
        .map(|r| match &r.parsed {
            Err((code, message)) => refused(*code, message.clone()),
            Ok(t) => {
                let change = |current: &BTreeMap<String, String>| {
                    apply_config_changes(&table, current, &t.changes, t.replace)
                        .map_err(|(code, message)| BrokerError::Configs { code, message })
                };
                match broker.alter_topic_configs(&t.topic, change, validate_only) {
                    Ok(_) => (ErrorCode::NONE.0, None),
                    Err(e) => refused(e.error_code(), e.to_string()),
                }
            }
        })
        .collect()
}

/// Cluster: the parsed topics go to the controller; its results are matched back by position.
async fn alter_in_cluster(
    cluster: Arc<replication::ClusterState>,
    resources: &[Resource],
    validate_only: bool,
) -> Vec<Outcome> {
    let topics: Vec<TopicConfigChanges> = resources
        .iter()
        .filter_map(|r| r.parsed.as_ref().ok().cloned())
        .collect();
    let count = topics.len();
    let results: Result<Vec<AlterConfigsResult>, ErrorCode> = if topics.is_empty() {
        Ok(Vec::new())
    } else {
        replication::admin::alter_configs(cluster, topics, validate_only).await
    };
    let results = match results {
        Ok(r) if r.len() == count => Ok(r),
        Ok(_) => Err(ErrorCode::UNKNOWN_SERVER_ERROR),
        Err(code) => Err(code),
    };
    let mut answered = results.iter().flatten();
    resources
        .iter()
        .map(|r| match (&r.parsed, &results) {
            (Err((code, message)), _) => refused(*code, message.clone()),
            (Ok(_), Err(code)) => (code.0, None),
            (Ok(_), Ok(_)) => answered
                .next()
                .map_or((ErrorCode::UNKNOWN_SERVER_ERROR.0, None), |a| {
                    (a.result.error_code, a.result.error_message.clone())
                }),
        })
        .collect()
}

/// The outcomes of `resources`, by this broker or the controller.
fn alter(
    broker: &Arc<Broker>,
    resources: Vec<Resource>,
    validate_only: bool,
    respond: impl FnOnce(Vec<(Resource, Outcome)>) -> ResponseKind + Send + 'static,
) -> Handled {
    match broker.cluster() {
        None => {
            let outcomes = alter_locally(broker, &resources, validate_only);
            Handled::Now(respond(resources.into_iter().zip(outcomes).collect()))
        }
        Some(cluster) => Handled::Later(Box::pin(async move {
            let outcomes = alter_in_cluster(cluster, &resources, validate_only).await;
            respond(resources.into_iter().zip(outcomes).collect())
        })),
    }
}

/// IncrementalAlterConfigs (v0-1).
pub fn handle_incremental(broker: &Arc<Broker>, req: IncrementalAlterConfigsRequest) -> Handled {
    let resources = incremental_resources(&req);
    alter(broker, resources, req.validate_only, |outcomes| {
        let responses = outcomes
            .into_iter()
            .map(|(r, (code, message))| {
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.name)
                    .with_error_code(code)
                    .with_error_message(message.map(|m| str_bytes(&m)))
            })
            .collect();
        ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(responses),
        )
    })
}

/// AlterConfigs (v0-2): each topic's entries become its whole override set.
pub fn handle_legacy(broker: &Arc<Broker>, req: AlterConfigsRequest) -> Handled {
    let resources = legacy_resources(&req);
    alter(broker, resources, req.validate_only, |outcomes| {
        let responses = outcomes
            .into_iter()
            .map(|(r, (code, message))| {
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.name)
                    .with_error_code(code)
                    .with_error_message(message.map(|m| str_bytes(&m)))
            })
            .collect();
        ResponseKind::AlterConfigs(AlterConfigsResponse::default().with_responses(responses))
    })
}

#[cfg(test)]
#[path = "tests/alter_configs.rs"]
mod tests;
