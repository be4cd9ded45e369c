//! IncrementalAlterConfigs (KIP-339) and AlterConfigs of topics: the operations are applied to
//! the committed overrides of each topic, the result is validated as a whole, and a
//! `TopicConfigs` record replaces the topic's overrides.
//!
//! The controller does not know the topic configs itself (their names, kinds and the broker
//! defaults are the node's table): a [`TopicConfigPolicy`] tells it. A controller without one
//! refuses every config change (INVALID_REQUEST) rather than store unchecked values.
//!
//! Rules, as Kafka's `ConfigurationControlManager`:
//! - Each topic is decided on its own; a topic named twice in one request fails both times
//!   (INVALID_REQUEST), as does a config key named twice for one topic.
//! - Unknown topic: UNKNOWN_TOPIC_OR_PARTITION. Unknown config, a bad value, a null value to
//!   set, APPEND/SUBTRACT on a config that is not a list, a combination the policy refuses:
//!   INVALID_CONFIG with a message naming the config.
//! - APPEND adds the items not already in the list, SUBTRACT removes items; both start from the
//!   override, or from the default when there is none (Kafka starts from the static default;
//!   we start from the broker's, the value DescribeConfigs shows).
//! - `validate_only` runs every check and returns no records.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use super::Controller;
use super::changes::Changes;
use crate::error::ErrorCode;
use crate::metadata::MetadataRecord;
use crate::rpc::{
    AlterConfigsRequest, AlterConfigsResult, ConfigChange, ConfigOp, Response, TopicConfigChanges,
    TopicResult,
};

/// What a topic config is, as far as applying operations goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigShape {
    /// A comma-separated list (APPEND and SUBTRACT apply).
    pub list: bool,
    /// The value a topic without an override has.
    pub default: String,
}

/// The topic config table the controller checks changes against (the node's).
pub trait TopicConfigPolicy: Debug + Send + Sync {
    /// `None` for a config that does not exist.
    fn shape(&self, name: &str) -> Option<ConfigShape>;
    /// Checks a topic's whole override set (each value and their combination) and returns it
    /// normalised, or a message naming what is wrong.
    fn validate(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String>;
}

type Failure = (ErrorCode, String);

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn invalid(message: String) -> Failure {
    (ErrorCode::INVALID_CONFIG, message)
}

/// Applies `changes` to `current` (a topic's overrides) and validates the result with `policy`.
/// With `replace` (AlterConfigs) the result starts empty: only the changes are kept.
pub fn apply_config_changes(
    policy: &dyn TopicConfigPolicy,
    current: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    replace: bool,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut seen = BTreeSet::new();
    if let Some(c) = changes.iter().find(|c| !seen.insert(c.name.as_str())) {
        return Err((
            ErrorCode::INVALID_REQUEST,
            format!("Error due to duplicate config keys: {}", c.name),
        ));
    }
    let mut configs = if replace {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for change in changes {
        let name = &change.name;
        let shape = policy
            .shape(name)
            .ok_or_else(|| invalid(format!("Unknown topic config name: {name}")))?;
        let value = || {
            change
                .value
                .clone()
                .ok_or_else(|| invalid(format!("Null value not supported for: {name}")))
        };
        match change.op {
            ConfigOp::Set => {
                configs.insert(name.clone(), value()?);
            }
            ConfigOp::Delete => {
                configs.remove(name);
            }
            ConfigOp::Append | ConfigOp::Subtract => {
                if !shape.list {
                    let op = if change.op == ConfigOp::Append {
                        "APPEND"
                    } else {
                        "SUBTRACT"
                    };
                    return Err(invalid(format!(
                        "Can't {op} to key {name} because its type is not LIST."
                    )));
                }
                let items = split_list(&value()?);
                let old = configs.get(name).unwrap_or(&shape.default);
                let mut list = split_list(old);
                if change.op == ConfigOp::Append {
                    for item in items {
                        if !list.contains(&item) {
                            list.push(item);
                        }
                    }
                } else {
                    list.retain(|item| !items.contains(item));
                }
                configs.insert(name.clone(), list.join(","));
            }
        }
    }
    policy.validate(&configs).map_err(invalid)
}

fn outcome(topic: &str, result: Result<BTreeMap<String, String>, Failure>) -> AlterConfigsResult {
    let (error_code, error_message, configs) = match result {
        Ok(configs) => (ErrorCode::NONE.0, None, Some(configs)),
        Err((code, message)) => (code.0, Some(message), None),
    };
    AlterConfigsResult {
        result: TopicResult {
            name: topic.to_string(),
            partition: -1,
            error_code,
            error_message,
        },
        configs,
    }
}

impl Controller {
    /// Sets the topic config table config changes are checked against (see the module docs).
    pub fn set_topic_config_policy(&mut self, policy: std::sync::Arc<dyn TopicConfigPolicy>) {
        self.topic_configs = Some(policy);
    }

    pub(super) fn handle_alter_configs(
        &self,
        request: &AlterConfigsRequest,
    ) -> (Response, Vec<MetadataRecord>) {
        let mut changes = Changes::new(&self.image);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &request.topics {
            *counts.entry(t.topic.as_str()).or_insert(0) += 1;
        }
        let mut results = Vec::new();
        for t in &request.topics {
            let planned = if counts.get(t.topic.as_str()).copied().unwrap_or(0) > 1 {
                Err((
                    ErrorCode::INVALID_REQUEST,
                    format!("Duplicate resource {} in the request", t.topic),
                ))
            } else {
                self.plan_configs(&changes, t)
            };
            if let Ok(configs) = &planned
                && !request.validate_only
            {
                changes.push(MetadataRecord::TopicConfigs {
                    name: t.topic.clone(),
                    configs: configs.clone(),
                });
            }
            results.push(outcome(&t.topic, planned));
        }
        (Response::AlterConfigs(results), changes.finish())
    }

    fn plan_configs(
        &self,
        changes: &Changes<'_>,
        t: &TopicConfigChanges,
    ) -> Result<BTreeMap<String, String>, Failure> {
        let Some(policy) = &self.topic_configs else {
            return Err((
                ErrorCode::INVALID_REQUEST,
                "this controller has no topic config table; configs cannot change".to_string(),
            ));
        };
        let topic = changes
            .image()
            .topics
            .get(&t.topic)
            .filter(|_| changes.topic_exists(&t.topic))
            .ok_or_else(|| {
                (
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic '{}' does not exist.", t.topic),
                )
            })?;
        apply_config_changes(policy.as_ref(), &topic.configs, &t.changes, t.replace)
    }
}
