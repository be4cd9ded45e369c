//! DescribeConfigs for topics (resource type 2) and this broker (resource type 4).
//!
//! Topic configs report `config_source` TOPIC_CONFIG (1) when overridden on the topic, else
//! DEFAULT_CONFIG (5) with the broker's `log.*` value. Broker settings report DEFAULT_CONFIG when
//! equal to the built-in default, else STATIC_BROKER_CONFIG (4). `configuration_keys` filters.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use strata_core::ErrorCode;

use super::admin::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::str_bytes;
use crate::broker::Broker;
use crate::config::{Kind, SETTINGS};
use crate::topic_config::{TOPIC_CONFIGS, effective, validate_topic_name};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_STATIC_BROKER: i8 = 4;

/// `config_type` (KIP-569): BOOLEAN 1, STRING 2, LONG 5.
fn config_type(kind: Kind) -> i8 {
    match kind {
        Kind::Bool => 1,
        Kind::Int { .. } => 5,
        _ => 2,
    }
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
                            entry(
                                d.name,
                                value,
                                if set { SOURCE_TOPIC } else { SOURCE_DEFAULT },
                                d.kind,
                                doc,
                            )
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
