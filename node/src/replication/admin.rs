//! Admin requests in cluster mode: forwarded to the active controller (KIP-590), which decides
//! and commits; the broker answers once its own metadata shows the outcome (bounded wait), so a
//! client's next Metadata request on this broker sees what it just created or deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ResponseKind,
};
use strata_core::ErrorCode;
use strata_core::metadata::MetadataImage;
use strata_core::rpc::{
    self, AlterConfigsResult, NewTopic, Request, Response, TopicConfigChanges, TopicResult,
};
use strata_core::types::NodeId;

use super::ClusterState;
use crate::broker::Broker;
use crate::config::Config;
use crate::handled::Handled;
use crate::handlers::{str_bytes, topic_name};
use crate::topic_config::validate_topic_configs;

/// How long an admin answer waits for this broker's metadata to show the outcome.
const PROPAGATION_WAIT: Duration = Duration::from_secs(5);

/// Fires a CreateTopics for an auto-created topic (defaults for partitions and replicas).
pub fn auto_create(cluster: &Arc<ClusterState>, name: &str) {
    create_in_background(
        cluster,
        NewTopic {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        },
    );
}

/// Fires a CreateTopics for `topic` unless one for that name is in flight (one request per
/// topic at a time: clients poll while it runs). The outcome shows in the metadata image.
pub fn create_in_background(cluster: &Arc<ClusterState>, topic: NewTopic) {
    let name = topic.name.clone();
    if !cluster
        .creating
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.clone())
    {
        return;
    }
    let request = Request::CreateTopics(rpc::CreateTopicsRequest {
        topics: vec![topic],
        validate_only: false,
    });
    let cluster = cluster.clone();
    tokio::spawn(async move {
        match cluster.client.send(request).await {
            Ok(Response::Topics(results)) => {
                for r in results
                    .iter()
                    .filter(|r| r.error_code != 0 && r.error_code != 36)
                {
                    tracing::info!(topic = %name, error = r.error_code, message = ?r.error_message, "auto-create refused");
                }
            }
            Ok(other) => tracing::debug!(?other, "auto-create not served"),
            Err(e) => tracing::debug!(error = %e, "auto-create failed"),
        }
        cluster
            .creating
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
    });
}

/// Waits until this broker's image satisfies `done` (or the wait budget ends).
async fn await_image(cluster: &ClusterState, done: impl Fn(&MetadataImage) -> bool) {
    let mut rx = cluster.image.subscribe();
    let wait = async {
        loop {
            if done(&rx.borrow_and_update()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(PROPAGATION_WAIT, wait).await;
}

/// Sends to the controller; a failure to reach one is NOT_CONTROLLER for every item.
async fn forward(cluster: &ClusterState, request: Request) -> Result<Response, ErrorCode> {
    match cluster.client.send(request).await {
        Ok(Response::NotController { .. }) | Err(_) => Err(ErrorCode::NOT_CONTROLLER),
        Ok(Response::Error { error_code, .. }) => Err(ErrorCode(error_code)),
        Ok(r) => Ok(r),
    }
}

fn by_name(results: &[TopicResult], name: &str) -> (i16, Option<String>) {
    results
        .iter()
        .find(|r| r.name == name)
        .map(|r| (r.error_code, r.error_message.clone()))
        .unwrap_or((ErrorCode::UNKNOWN_SERVER_ERROR.0, None))
}

pub fn create_topics(
    cluster: Arc<ClusterState>,
    config: &Config,
    req: CreateTopicsRequest,
) -> Handled {
    let mut topics = Vec::new();
    let mut early: BTreeMap<String, (i16, String)> = BTreeMap::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let overrides = validate_topic_configs(
            t.configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str()))),
            config,
        );
        match overrides {
            Ok(configs) => topics.push(NewTopic {
                name,
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| NodeId(b.0)).collect(),
                        )
                    })
                    .collect(),
                configs,
            }),
            Err(e) => {
                early.insert(name, (ErrorCode::INVALID_CONFIG.0, e.to_string()));
            }
        }
    }
    let validate_only = req.validate_only;
    Handled::Later(Box::pin(async move {
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        let outcome = if topics.is_empty() {
            Ok(Response::Topics(Vec::new()))
        } else {
            forward(
                &cluster,
                Request::CreateTopics(rpc::CreateTopicsRequest {
                    topics,
                    validate_only,
                }),
            )
            .await
        };
        let results = match &outcome {
            Ok(Response::Topics(r)) => r.clone(),
            _ => Vec::new(),
        };
        if !validate_only {
            let created: Vec<String> = names
                .iter()
                .filter(|n| by_name(&results, n).0 == 0)
                .cloned()
                .collect();
            await_image(&cluster, |img| {
                created.iter().all(|n| img.topics.contains_key(n))
            })
            .await;
        }
        let image = cluster.image();
        let answers = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let (code, message) = match (&outcome, early.get(&name)) {
                    (_, Some((code, message))) => (*code, Some(message.clone())),
                    (Err(code), _) => (code.0, None),
                    (Ok(_), None) => by_name(&results, &name),
                };
                let mut r = CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(code)
                    .with_error_message(message.map(|m| str_bytes(&m)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
                if code == 0
                    && let Some(ti) = image.topics.get(&name)
                {
                    r = r
                        .with_num_partitions(ti.partitions.len() as i32)
                        .with_replication_factor(
                            ti.partitions
                                .values()
                                .next()
                                .map_or(-1, |p| p.replicas.len() as i16),
                        );
                }
                r
            })
            .collect();
        ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(answers))
    }))
}

pub fn delete_topics(cluster: Arc<ClusterState>, req: DeleteTopicsRequest) -> Handled {
    let mut names: Vec<String> = req.topic_names.iter().map(|n| n.0.to_string()).collect();
    names.extend(
        req.topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())),
    );
    let by_id: Vec<_> = req
        .topics
        .iter()
        .filter(|t| t.name.is_none())
        .map(|t| t.topic_id)
        .collect();
    Handled::Later(Box::pin(async move {
        let outcome = forward(
            &cluster,
            Request::DeleteTopics {
                names: names.clone(),
            },
        )
        .await;
        let results = match &outcome {
            Ok(Response::Topics(r)) => r.clone(),
            _ => Vec::new(),
        };
        let deleted: Vec<String> = names
            .iter()
            .filter(|n| by_name(&results, n).0 == 0)
            .cloned()
            .collect();
        await_image(&cluster, |img| {
            deleted.iter().all(|n| !img.topics.contains_key(n))
        })
        .await;
        let mut responses: Vec<DeletableTopicResult> = names
            .iter()
            .map(|name| {
                let (code, message) = match &outcome {
                    Err(code) => (code.0, None),
                    Ok(_) => by_name(&results, name),
                };
                DeletableTopicResult::default()
                    .with_name(Some(topic_name(name)))
                    .with_error_code(code)
                    .with_error_message(message.map(|m| str_bytes(&m)))
            })
            .collect();
        for id in by_id {
            responses.push(
                DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(100) // UNKNOWN_TOPIC_ID
                    .with_error_message(Some(str_bytes(
                        "this broker has no topic ids; delete by name",
                    ))),
            );
        }
        ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
    }))
}

pub fn create_partitions(cluster: Arc<ClusterState>, req: CreatePartitionsRequest) -> Handled {
    let topics: Vec<(String, i32)> = req
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.count))
        .collect();
    let validate_only = req.validate_only;
    Handled::Later(Box::pin(async move {
        let outcome = forward(
            &cluster,
            Request::CreatePartitions(rpc::CreatePartitionsRequest {
                topics: topics.clone(),
                validate_only,
            }),
        )
        .await;
        let results = match &outcome {
            Ok(Response::Topics(r)) => r.clone(),
            _ => Vec::new(),
        };
        if !validate_only {
            let grown: Vec<(String, i32)> = topics
                .iter()
                .filter(|(n, _)| by_name(&results, n).0 == 0)
                .cloned()
                .collect();
            await_image(&cluster, |img| {
                grown.iter().all(|(n, c)| {
                    img.topics
                        .get(n)
                        .is_some_and(|t| t.partitions.len() as i32 >= *c)
                })
            })
            .await;
        }
        let answers = topics
            .iter()
            .map(|(name, _)| {
                let (code, message) = match &outcome {
                    Err(code) => (code.0, None),
                    Ok(_) => by_name(&results, name),
                };
                CreatePartitionsTopicResult::default()
                    .with_name(topic_name(name))
                    .with_error_code(code)
                    .with_error_message(message.map(|m| str_bytes(&m)))
            })
            .collect();
        ResponseKind::CreatePartitions(CreatePartitionsResponse::default().with_results(answers))
    }))
}

/// IncrementalAlterConfigs / AlterConfigs of `topics`, decided by the controller: its results,
/// one per topic in order, once this broker's image shows every change it committed (bounded
/// wait), or the error that kept the controller from answering.
pub async fn alter_configs(
    cluster: Arc<ClusterState>,
    topics: Vec<TopicConfigChanges>,
    validate_only: bool,
) -> Result<Vec<AlterConfigsResult>, ErrorCode> {
    let request = Request::AlterConfigs(rpc::AlterConfigsRequest {
        topics,
        validate_only,
    });
    let Response::AlterConfigs(results) = forward(&cluster, request).await? else {
        return Err(ErrorCode::UNKNOWN_SERVER_ERROR);
    };
    if !validate_only {
        let applied: Vec<(&str, &BTreeMap<String, String>)> = results
            .iter()
            .filter(|r| r.result.error_code == ErrorCode::NONE.0)
            .filter_map(|r| Some((r.result.name.as_str(), r.configs.as_ref()?)))
            .collect();
        await_image(&cluster, |img| {
            applied
                .iter()
                .all(|(name, configs)| img.topics.get(*name).is_none_or(|t| t.configs == **configs))
        })
        .await;
    }
    Ok(results)
}

/// ElectLeaders (KIP-460): preferred elections only (`election_type` 0); unclean (1) is refused
/// with INVALID_REQUEST, since it can lose acknowledged writes.
pub fn elect_leaders(broker: &Arc<Broker>, req: ElectLeadersRequest, version: i16) -> Handled {
    let cluster = broker.cluster();
    Handled::Later(Box::pin(async move {
        if version >= 1 && req.election_type != 0 {
            return ResponseKind::ElectLeaders(
                ElectLeadersResponse::default().with_error_code(ErrorCode::INVALID_REQUEST.0),
            );
        }
        let Some(cluster) = cluster else {
            // Single node: the only replica always leads.
            return ResponseKind::ElectLeaders(ElectLeadersResponse::default());
        };
        let partitions = req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.topic.0.to_string(), *p))
                })
                .collect::<Vec<_>>()
        });
        let outcome = forward(
            &cluster,
            Request::ElectLeaders(rpc::ElectLeadersRequest { partitions }),
        )
        .await;
        let results = match outcome {
            Err(code) => {
                return ResponseKind::ElectLeaders(
                    ElectLeadersResponse::default().with_error_code(code.0),
                );
            }
            Ok(Response::Topics(r)) => r,
            Ok(_) => Vec::new(),
        };
        let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
        for r in results {
            by_topic.entry(r.name.clone()).or_default().push(
                PartitionResult::default()
                    .with_partition_id(r.partition)
                    .with_error_code(r.error_code)
                    .with_error_message(r.error_message.map(|m| str_bytes(&m))),
            );
        }
        ResponseKind::ElectLeaders(
            ElectLeadersResponse::default().with_replica_election_results(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ReplicaElectionResult::default()
                            .with_topic(topic_name(&t))
                            .with_partition_result(ps)
                    })
                    .collect(),
            ),
        )
    }))
}
