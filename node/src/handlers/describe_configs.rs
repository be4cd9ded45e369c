//! DescribeConfigs for topics (resource type 2) and this broker (resource type 4).
//!
//! Sources as Kafka reports them ([`topic_config_source`]): a topic config overridden on the
//! topic (at creation or by IncrementalAlterConfigs / AlterConfigs) is DYNAMIC_TOPIC_CONFIG (1);
//! otherwise it shows the broker's `log.*` value, STATIC_BROKER_CONFIG (4) when that setting was
//! set (differs from the built-in default), else DEFAULT_CONFIG (5). Broker settings report
//! DEFAULT_CONFIG when equal to the built-in default, else STATIC_BROKER_CONFIG. With
//! `include_synonyms` a topic config lists, most specific first, the topic override, the
//! broker setting if set, and the built-in default. `configuration_keys` filters.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use strata_core::ErrorCode;

use kafka_protocol::messages::describe_configs_response::DescribeConfigsSynonym;

use super::str_bytes;
use crate::broker::Broker;
use crate::config::{Config, Kind, SETTINGS, all_settings};
use crate::topic_config::{TOPIC_CONFIGS, TopicConfigDef, effective, validate_topic_name};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Config sources (DescribeConfigs `config_source`, CreateTopics v5+ `config_source`).
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// `config_type` (KIP-569): BOOLEAN 1, STRING 2, LONG 5, DOUBLE 6, LIST 7.
fn config_type(kind: Kind) -> i8 {
    match kind {
        Kind::Bool => 1,
        Kind::Int { .. } => 5,
        Kind::Double { .. } => 6,
        Kind::List(_) => 7,
        _ => 2,
    }
}

/// The built-in default of broker setting `name`.
fn built_in(name: &str) -> Option<&'static str> {
    all_settings().find(|s| s.name == name).map(|s| s.default)
}

/// Where a topic config's effective value comes from (see the module docs).
pub fn topic_config_source(def: &TopicConfigDef, set_on_topic: bool, broker: &Config) -> i8 {
    if set_on_topic {
        SOURCE_TOPIC
    } else if built_in(def.broker_default).is_some_and(|d| d != broker.value(def.broker_default)) {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    }
}

/// A topic config's synonyms, most specific first (KIP-226).
fn topic_synonyms(
    def: &TopicConfigDef,
    overrides: &std::collections::BTreeMap<String, String>,
    broker: &Config,
) -> Vec<DescribeConfigsSynonym> {
    let synonym = |name: &str, value: &str, source: i8| {
        DescribeConfigsSynonym::default()
            .with_name(str_bytes(name))
            .with_value(Some(str_bytes(value)))
            .with_source(source)
    };
    let mut out = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        out.push(synonym(def.name, v, SOURCE_TOPIC));
    }
    let default = built_in(def.broker_default).unwrap_or("");
    let value = broker.value(def.broker_default);
    if value != default {
        out.push(synonym(def.broker_default, value, SOURCE_STATIC_BROKER));
    }
    out.push(synonym(def.broker_default, default, SOURCE_DEFAULT));
    out
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|k| k.is_empty() || k.iter().any(|k| k.as_str() == name))
}

fn entry(
    name: &str,
    value: &str,
    source: i8,
    kind: Kind,
    doc: Option<&str>,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_config_source(source)
        .with_config_type(config_type(kind))
        .with_documentation(doc.map(str_bytes))
}

pub fn handle(broker: &Arc<Broker>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let name = res.resource_name.as_str();
            let fail = |code: ErrorCode, msg: String| {
                base.clone()
                    .with_error_code(code.0)
                    .with_error_message(Some(str_bytes(&msg)))
            };
            match res.resource_type {
                RESOURCE_TOPIC => {
                    if let Err(e) = validate_topic_name(name) {
                        return fail(ErrorCode::INVALID_TOPIC_EXCEPTION, e.to_string());
                    }
                    let Some(topic) = broker.topic(name) else {
                        return fail(
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("unknown topic {name}"),
                        );
                    };
                    let configs = TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(&res.configuration_keys, d.name))
                        .map(|d| {
                            let (value, set) = effective(d, &topic.configs, &broker.config);
                            let doc = req.include_documentation.then_some(d.broker_default);
                            let source = topic_config_source(d, set, &broker.config);
                            let e = entry(d.name, value, source, d.kind, doc);
                            if req.include_synonyms {
                                e.with_synonyms(topic_synonyms(d, &topic.configs, &broker.config))
                            } else {
                                e
                            }
                        })
                        .collect();
                    base.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    if !name.is_empty() && name != broker.config.node_id.to_string() {
                        return fail(
                            ErrorCode::INVALID_REQUEST,
                            format!("this is broker {}, not {name}", broker.config.node_id),
                        );
                    }
                    let configs = SETTINGS
                        .iter()
                        .filter(|s| wanted(&res.configuration_keys, s.name))
                        .map(|s| {
                            let value = broker.config.value(s.name);
                            let source = if value == s.default {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_STATIC_BROKER
                            };
                            entry(
                                s.name,
                                value,
                                source,
                                s.kind,
                                req.include_documentation.then_some(s.doc),
                            )
                            .with_read_only(true)
                        })
                        .collect();
                    base.with_configs(configs)
                }
                other => fail(
                    ErrorCode::INVALID_REQUEST,
                    format!("unsupported resource type {other}"),
                ),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
