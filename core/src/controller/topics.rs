//! CreateTopics, DeleteTopics and CreatePartitions (forwarded by brokers, KIP-590).
//!
//! Each topic is decided on its own: one bad topic fails with its own error code while the
//! others of the request go ahead (Kafka's per-topic results). `validate_only` runs every check
//! and answers, but returns no records.

use std::collections::BTreeMap;

use super::Controller;
use super::assignment::Placement;
use super::changes::{Changes, Target, has_duplicates};
use super::config::MAX_PARTITIONS_PER_TOPIC;
use crate::error::ErrorCode;
use crate::metadata::MetadataRecord;
use crate::rpc::{CreatePartitionsRequest, CreateTopicsRequest, NewTopic, Response, TopicResult};

/// `INVALID_REPLICA_ASSIGNMENT` (39): not (yet) in [`crate::error`].
pub const INVALID_REPLICA_ASSIGNMENT: ErrorCode = ErrorCode(39);

/// Kafka's `Topic.MAX_NAME_LENGTH`.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

type Failure = (ErrorCode, String);

/// Kafka's `Topic.validate`: non-empty, at most 249 characters of `[a-zA-Z0-9._-]`, not `.` or
/// `..` (they would name directories).
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".to_string());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".to_string());
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// `.` and `_` collide in metric names, so Kafka refuses `a.b` next to `a_b`.
fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

fn result(name: &str, outcome: Result<(), Failure>) -> TopicResult {
    let (code, message) = match outcome {
        Ok(()) => (ErrorCode::NONE, None),
        Err((code, message)) => (code, Some(message)),
    };
    TopicResult {
        name: name.to_string(),
        partition: -1,
        error_code: code.0,
        error_message: message,
    }
}

/// How often each name occurs in a request (duplicates are `INVALID_REQUEST`, as in Kafka).
fn occurrences<'n>(names: impl Iterator<Item = &'n str>) -> BTreeMap<&'n str, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

fn duplicate(name: &str) -> Failure {
    (
        ErrorCode::INVALID_REQUEST,
        format!("Duplicate topic name {name} in the request"),
    )
}

impl Controller {
    pub(super) fn handle_create_topics(
        &self,
        request: &CreateTopicsRequest,
    ) -> (Response, Vec<MetadataRecord>) {
        let mut changes = Changes::new(&self.image);
        let mut placement = Placement::new(&changes);
        let counts = occurrences(request.topics.iter().map(|t| t.name.as_str()));
        let mut results = Vec::new();
        for topic in &request.topics {
            let planned = if counts.get(topic.name.as_str()).copied().unwrap_or(0) > 1 {
                Err(duplicate(&topic.name))
            } else {
                self.plan_topic(&changes, &mut placement, topic)
            };
            let outcome = planned.map(|partitions| {
                if !request.validate_only {
                    changes.push(MetadataRecord::Topic {
                        name: topic.name.clone(),
                        configs: topic.configs.clone(),
                    });
                    for (index, target) in (0..).zip(partitions) {
                        changes.set_partition(&topic.name, index, target);
                    }
                }
            });
            results.push(result(&topic.name, outcome));
        }
        (Response::Topics(results), changes.finish())
    }

    /// Validates one new topic and places its partitions (counted in `placement`).
    fn plan_topic(
        &self,
        changes: &Changes<'_>,
        placement: &mut Placement,
        topic: &NewTopic,
    ) -> Result<Vec<Target>, Failure> {
        let name = topic.name.as_str();
        validate_topic_name(name).map_err(|m| (ErrorCode::INVALID_TOPIC_EXCEPTION, m))?;
        if changes.topic_exists(name) {
            return Err((
                ErrorCode::TOPIC_ALREADY_EXISTS,
                format!("Topic '{name}' already exists."),
            ));
        }
        if let Some(other) = changes
            .topic_names()
            .into_iter()
            .find(|t| collides(t, name))
        {
            return Err((
                ErrorCode::INVALID_TOPIC_EXCEPTION,
                format!("Topic '{name}' collides with existing topic: {other}"),
            ));
        }
        if !topic.assignments.is_empty() {
            return plan_manual(changes, placement, topic);
        }
        let partitions = match topic.num_partitions {
            -1 => self.config.default_num_partitions,
            n => n,
        };
        if partitions <= 0 || partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err((
                ErrorCode::INVALID_PARTITIONS,
                format!(
                    "Number of partitions must be in 1..={MAX_PARTITIONS_PER_TOPIC}, got {partitions}."
                ),
            ));
        }
        let factor = match topic.replication_factor {
            -1 => self.config.default_replication_factor,
            f => f,
        };
        let factor = check_replication_factor(factor, placement.live_brokers())?;
        let mut targets = Vec::new();
        for _ in 0..partitions {
            let replicas = placement
                .place(factor)
                .expect("the replication factor was checked against the unfenced brokers");
            targets.push(Target {
                isr: replicas.clone(),
                leader: replicas.first().copied(),
                replicas,
            });
        }
        Ok(targets)
    }

    pub(super) fn handle_delete_topics(&self, names: &[String]) -> (Response, Vec<MetadataRecord>) {
        let mut changes = Changes::new(&self.image);
        let counts = occurrences(names.iter().map(String::as_str));
        let mut results = Vec::new();
        for name in names {
            let outcome = if counts.get(name.as_str()).copied().unwrap_or(0) > 1 {
                Err(duplicate(name))
            } else if !changes.topic_exists(name) {
                Err((
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic '{name}' does not exist."),
                ))
            } else {
                changes.push(MetadataRecord::RemoveTopic { name: name.clone() });
                Ok(())
            };
            results.push(result(name, outcome));
        }
        (Response::Topics(results), changes.finish())
    }

    pub(super) fn handle_create_partitions(
        &self,
        request: &CreatePartitionsRequest,
    ) -> (Response, Vec<MetadataRecord>) {
        let mut changes = Changes::new(&self.image);
        let mut placement = Placement::new(&changes);
        let counts = occurrences(request.topics.iter().map(|(n, _)| n.as_str()));
        let mut results = Vec::new();
        for (name, count) in &request.topics {
            let planned = if counts.get(name.as_str()).copied().unwrap_or(0) > 1 {
                Err(duplicate(name))
            } else {
                plan_new_partitions(&changes, &mut placement, name, *count)
            };
            let outcome = planned.map(|(first, targets)| {
                if !request.validate_only {
                    for (index, target) in (first..).zip(targets) {
                        changes.set_partition(name, index, target);
                    }
                }
            });
            results.push(result(name, outcome));
        }
        (Response::Topics(results), changes.finish())
    }
}

fn check_replication_factor(factor: i16, live: usize) -> Result<usize, Failure> {
    let wanted = usize::try_from(factor).unwrap_or(0);
    if wanted == 0 {
        return Err((
            ErrorCode::INVALID_REPLICATION_FACTOR,
            format!("Replication factor must be larger than 0, got {factor}."),
        ));
    }
    if wanted > live {
        return Err((
            ErrorCode::INVALID_REPLICATION_FACTOR,
            format!(
                "Unable to replicate the partition {factor} time(s): The target replication factor of {factor} cannot be reached because only {live} broker(s) are registered and unfenced."
            ),
        ));
    }
    Ok(wanted)
}

/// A manual assignment: partitions numbered `0..n`, each a non-empty list of distinct
/// registered brokers with at least one unfenced (fenced replicas start outside the ISR, as in
/// Kafka; the leader is the first unfenced one).
fn plan_manual(
    changes: &Changes<'_>,
    placement: &mut Placement,
    topic: &NewTopic,
) -> Result<Vec<Target>, Failure> {
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err((
            ErrorCode::INVALID_REQUEST,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".to_string(),
        ));
    }
    let invalid = |message: String| (INVALID_REPLICA_ASSIGNMENT, message);
    let n = topic.assignments.len();
    if n > MAX_PARTITIONS_PER_TOPIC as usize {
        return Err((
            ErrorCode::INVALID_PARTITIONS,
            format!("At most {MAX_PARTITIONS_PER_TOPIC} partitions, got {n}."),
        ));
    }
    if !topic.assignments.keys().copied().eq(0..n as i32) {
        return Err(invalid(format!(
            "Partitions of a manual assignment must be numbered 0..{n}"
        )));
    }
    let mut targets = Vec::new();
    for (index, replicas) in &topic.assignments {
        if replicas.is_empty() {
            return Err(invalid(format!("Partition {index} has no replicas")));
        }
        if has_duplicates(replicas) {
            return Err(invalid(format!("Partition {index} names a broker twice")));
        }
        if let Some(unknown) = replicas.iter().find(|r| !changes.is_registered(**r)) {
            return Err(invalid(format!(
                "Partition {index} names broker {unknown}, which is not registered"
            )));
        }
        let isr: Vec<_> = replicas
            .iter()
            .copied()
            .filter(|r| changes.is_unfenced(*r))
            .collect();
        let Some(leader) = isr.first().copied() else {
            return Err(invalid(format!(
                "All brokers of partition {index} are fenced or in controlled shutdown"
            )));
        };
        targets.push(Target {
            replicas: replicas.clone(),
            isr,
            leader: Some(leader),
        });
    }
    for target in &targets {
        placement.record(&target.replicas);
    }
    Ok(targets)
}

/// Grows a topic to `count` partitions; the new ones take the replication factor of its
/// first partition. Returns the first new index and the new partitions.
fn plan_new_partitions(
    changes: &Changes<'_>,
    placement: &mut Placement,
    name: &str,
    count: i32,
) -> Result<(i32, Vec<Target>), Failure> {
    if !changes.topic_exists(name) {
        return Err((
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic '{name}' does not exist."),
        ));
    }
    let indexes = changes.partition_indexes(name);
    let current = i32::try_from(indexes.len()).expect("partition counts are bounded");
    if count <= current {
        return Err((
            ErrorCode::INVALID_PARTITIONS,
            format!(
                "Topic currently has {current} partitions, which is higher than or equal to the requested {count}."
            ),
        ));
    }
    if count > MAX_PARTITIONS_PER_TOPIC {
        return Err((
            ErrorCode::INVALID_PARTITIONS,
            format!("At most {MAX_PARTITIONS_PER_TOPIC} partitions per topic, asked {count}."),
        ));
    }
    let factor = indexes
        .first()
        .and_then(|i| changes.partition(name, *i))
        .map(|p| p.replicas.len())
        .unwrap_or(0);
    let factor = check_replication_factor(
        i16::try_from(factor).unwrap_or(i16::MAX),
        placement.live_brokers(),
    )?;
    let mut targets = Vec::new();
    for _ in current..count {
        let replicas = placement
            .place(factor)
            .expect("the replication factor was checked against the unfenced brokers");
        targets.push(Target {
            isr: replicas.clone(),
            leader: replicas.first().copied(),
            replicas,
        });
    }
    Ok((current, targets))
}
