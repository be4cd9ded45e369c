//! IncrementalAlterConfigs and AlterConfigs on a single node, through dispatch: operations,
//! refusals, `validate_only`, DescribeConfigs sources, the live log's settings, and the metadata
//! file across a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    alter_configs_request,
};
use kafka_protocol::protocol::StrBytes;
use strata_core::ErrorCode;
use strata_core::log::CleanupPolicy;
use strata_core::storage::MemStorage;

use crate::broker::Broker;
use crate::config::Config;
use crate::dispatch::tests::round_trip;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn open(storage: &MemStorage) -> Arc<Broker> {
    let config = Config::default().with("log.dirs", "/mem").expect("config");
    Broker::open(config, Arc::new(storage.clone())).expect("open")
}

fn broker_with_topic() -> (MemStorage, Arc<Broker>) {
    let storage = MemStorage::new();
    let broker = open(&storage);
    let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    broker.create_topic("t", 2, configs, false).expect("create");
    (storage, broker)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(s(name))
        .with_config_operation(operation)
        .with_value(value.map(s))
}

fn resource(kind: i8, name: &str, configs: Vec<AlterableConfig>) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(s(name))
        .with_configs(configs)
}

/// One IncrementalAlterConfigs request; the (code, message) of each resource.
async fn incremental(
    broker: &Arc<Broker>,
    resources: Vec<AlterConfigsResource>,
    validate_only: bool,
) -> Vec<(ErrorCode, String)> {
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only);
    let resp: IncrementalAlterConfigsResponse =
        round_trip(broker, ApiKey::IncrementalAlterConfigs, 1, &req).await;
    resp.responses
        .iter()
        .map(|r| {
            let message = r.error_message.as_ref().map(|m| m.to_string());
            (ErrorCode(r.error_code), message.unwrap_or_default())
        })
        .collect()
}

async fn alter_t(broker: &Arc<Broker>, configs: Vec<AlterableConfig>) -> (ErrorCode, String) {
    let mut out = incremental(broker, vec![resource(2, "t", configs)], false).await;
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// DescribeConfigs of topic `t`: name -> (value, source).
async fn describe(broker: &Arc<Broker>) -> BTreeMap<String, (String, i8)> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t")),
    ]);
    let resp: DescribeConfigsResponse = round_trip(broker, ApiKey::DescribeConfigs, 4, &req).await;
    assert_eq!(resp.results[0].error_code, 0);
    resp.results[0]
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), (value, c.config_source))
        })
        .collect()
}

fn log_policy(broker: &Broker, partition: i32) -> CleanupPolicy {
    let p = broker.partition("t", partition).expect("partition");
    let guard = p.log();
    guard.as_ref().expect("log").config().cleanup_policy
}

#[tokio::test]
async fn incremental_operations_change_describe_and_the_live_logs() {
    let (storage, broker) = broker_with_topic();
    let before = describe(&broker).await;
    assert_eq!(before["cleanup.policy"], ("compact".to_string(), 1));
    assert_eq!(before["delete.retention.ms"], ("86400000".to_string(), 5));
    assert_eq!(before["min.cleanable.dirty.ratio"], ("0.5".to_string(), 5));
    assert_eq!(log_policy(&broker, 1), CleanupPolicy::COMPACT);

    let changes = vec![
        op("cleanup.policy", APPEND, Some("delete")),
        op("delete.retention.ms", SET, Some("1000")),
        op("retention.ms", SET, Some("60000")),
    ];
    assert_eq!(alter_t(&broker, changes).await.0, ErrorCode::NONE);
    let after = describe(&broker).await;
    assert_eq!(after["cleanup.policy"], ("compact,delete".to_string(), 1));
    assert_eq!(after["delete.retention.ms"], ("1000".to_string(), 1));
    assert_eq!(after["retention.ms"], ("60000".to_string(), 1));
    for partition in [0, 1] {
        let p = broker.partition("t", partition).expect("partition");
        let guard = p.log();
        let config = guard.as_ref().expect("log").config();
        assert!(config.cleanup_policy.compact && config.cleanup_policy.delete);
        assert_eq!(
            (config.delete_retention_ms, config.retention_ms),
            (1000, 60_000)
        );
    }

    // SUBTRACT, and DELETE back to the broker default.
    let changes = vec![
        op("cleanup.policy", SUBTRACT, Some("compact")),
        op("retention.ms", DELETE, None),
    ];
    assert_eq!(alter_t(&broker, changes).await.0, ErrorCode::NONE);
    let after = describe(&broker).await;
    assert_eq!(after["cleanup.policy"], ("delete".to_string(), 1));
    assert_eq!(after["retention.ms"], ("604800000".to_string(), 5));
    assert_eq!(log_policy(&broker, 0), CleanupPolicy::DELETE);

    // The metadata file holds the change: a restart opens the logs with it.
    drop(broker);
    let reopened = open(&storage);
    let after = describe(&reopened).await;
    assert_eq!(after["delete.retention.ms"], ("1000".to_string(), 1));
    assert_eq!(after["retention.ms"].1, 5);
    let p = reopened.partition("t", 0).expect("partition");
    assert_eq!(
        p.log().as_ref().expect("log").config().delete_retention_ms,
        1000
    );
}

#[tokio::test]
async fn refusals_are_per_resource_and_change_nothing() {
    let (_storage, broker) = broker_with_topic();
    let before = describe(&broker).await;
    let cases: Vec<(Vec<AlterableConfig>, ErrorCode, &str)> = vec![
        (
            vec![op("nope", SET, Some("1"))],
            ErrorCode::INVALID_CONFIG,
            "nope",
        ),
        (
            vec![op("cleanup.policy", SET, Some("shred"))],
            ErrorCode::INVALID_CONFIG,
            "cleanup.policy",
        ),
        (
            vec![op("min.cleanable.dirty.ratio", SET, Some("2"))],
            ErrorCode::INVALID_CONFIG,
            "min.cleanable.dirty.ratio",
        ),
        (
            vec![op("retention.ms", APPEND, Some("1"))],
            ErrorCode::INVALID_CONFIG,
            "retention.ms",
        ),
        (
            vec![
                op("min.compaction.lag.ms", SET, Some("10")),
                op("max.compaction.lag.ms", SET, Some("5")),
            ],
            ErrorCode::INVALID_CONFIG,
            "min.compaction.lag.ms",
        ),
        (
            vec![op("retention.ms", 9, Some("1"))],
            ErrorCode::INVALID_REQUEST,
            "operation",
        ),
    ];
    for (changes, code, named) in cases {
        let (got, message) = alter_t(&broker, changes).await;
        assert_eq!(got, code, "{message}");
        assert!(message.contains(named), "{message} names {named}");
    }
    assert_eq!(describe(&broker).await, before);

    let mixed = incremental(
        &broker,
        vec![
            resource(2, "missing", vec![op("retention.ms", SET, Some("1"))]),
            resource(4, "1", vec![op("log.retention.ms", SET, Some("1"))]),
            resource(2, "t", vec![op("retention.ms", SET, Some("5"))]),
            resource(3, "x", vec![]),
        ],
        false,
    )
    .await;
    let codes: Vec<ErrorCode> = mixed.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            ErrorCode::INVALID_REQUEST,
            ErrorCode::NONE,
            ErrorCode::INVALID_REQUEST,
        ]
    );
    assert!(mixed[1].1.contains("static"), "{}", mixed[1].1);
    assert_eq!(describe(&broker).await["retention.ms"].0, "5");
}

#[tokio::test]
async fn validate_only_and_duplicates_change_nothing() {
    let (_storage, broker) = broker_with_topic();
    let before = describe(&broker).await;
    let set = || resource(2, "t", vec![op("retention.ms", SET, Some("5"))]);
    let checked = incremental(&broker, vec![set()], true).await;
    assert_eq!(checked[0].0, ErrorCode::NONE);
    let twice = incremental(&broker, vec![set(), set()], false).await;
    assert!(twice.iter().all(|(c, _)| *c == ErrorCode::INVALID_REQUEST));
    assert_eq!(describe(&broker).await, before);
}

/// AlterConfigs (API 33) replaces the whole override set.
#[tokio::test]
async fn legacy_alter_configs_replaces_every_override() {
    let (_storage, broker) = broker_with_topic();
    let req = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_configs(vec![
                alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("5000"))),
            ]),
    ]);
    let resp: AlterConfigsResponse = round_trip(&broker, ApiKey::AlterConfigs, 2, &req).await;
    assert_eq!(resp.responses[0].error_code, 0);
    let after = describe(&broker).await;
    assert_eq!(after["retention.ms"], ("5000".to_string(), 1));
    assert_eq!(after["cleanup.policy"], ("delete".to_string(), 5));
    assert_eq!(log_policy(&broker, 0), CleanupPolicy::DELETE);
}

/// A broker setting that differs from its built-in default is STATIC_BROKER_CONFIG.
#[tokio::test]
async fn broker_defaults_that_were_set_are_static_broker_config() {
    let config = Config::default()
        .with("log.dirs", "/mem")
        .and_then(|c| c.with("log.cleanup.policy", "compact"))
        .expect("config");
    let broker = Broker::open(config, Arc::new(MemStorage::new())).expect("open");
    broker
        .create_topic("t", 1, BTreeMap::new(), false)
        .expect("create");
    let described = describe(&broker).await;
    assert_eq!(described["cleanup.policy"], ("compact".to_string(), 4));
    assert_eq!(described["retention.ms"].1, 5);
    assert_eq!(log_policy(&broker, 0), CleanupPolicy::COMPACT);
}
