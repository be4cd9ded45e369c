//! IncrementalAlterConfigs (KIP-339) and AlterConfigs: operations, validation, records, and the
//! image every node replays to.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::controller::{ConfigShape, TopicConfigPolicy, apply_config_changes};
use crate::metadata::{decode_image, encode_image};
use crate::rpc::{
    AlterConfigsRequest, AlterConfigsResult, ConfigChange, ConfigOp, TopicConfigChanges,
};

/// A small table in the node's image: `cleanup.policy` (a list of `compact`/`delete`, not empty,
/// default `delete`), `retention.ms` (an integer) and the compaction lags (min <= max).
#[derive(Debug)]
struct TestPolicy;

impl TopicConfigPolicy for TestPolicy {
    fn shape(&self, name: &str) -> Option<ConfigShape> {
        let (list, default) = match name {
            "cleanup.policy" => (true, "delete"),
            "retention.ms" => (false, "604800000"),
            "min.compaction.lag.ms" => (false, "0"),
            "max.compaction.lag.ms" => (false, "9223372036854775807"),
            _ => return None,
        };
        Some(ConfigShape {
            list,
            default: default.to_string(),
        })
    }

    fn validate(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (name, value) in overrides {
            let ok = match name.as_str() {
                "cleanup.policy" => {
                    let items: Vec<&str> = value.split(',').map(str::trim).collect();
                    let mut unique = items.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    !value.is_empty()
                        && unique.len() == items.len()
                        && items.iter().all(|i| ["compact", "delete"].contains(i))
                }
                _ => value.parse::<i64>().is_ok(),
            };
            if !ok {
                return Err(format!("invalid value `{value}` for {name}"));
            }
            out.insert(name.clone(), value.trim().to_string());
        }
        let lag = |n: &str, d: i64| out.get(n).and_then(|v| v.parse().ok()).unwrap_or(d);
        if lag("min.compaction.lag.ms", 0) > lag("max.compaction.lag.ms", i64::MAX) {
            return Err("min.compaction.lag.ms > max.compaction.lag.ms".to_string());
        }
        Ok(out)
    }
}

fn harness() -> Harness {
    let mut h = Harness::new();
    h.controller.set_topic_config_policy(Arc::new(TestPolicy));
    h.start_brokers(&[1, 2, 3]);
    assert_eq!(code(&h.create_topic("t", 2, 3)), ErrorCode::NONE);
    h
}

fn change(name: &str, op: ConfigOp, value: Option<&str>) -> ConfigChange {
    ConfigChange {
        name: name.to_string(),
        op,
        value: value.map(str::to_string),
    }
}

fn set(name: &str, value: &str) -> ConfigChange {
    change(name, ConfigOp::Set, Some(value))
}

fn topic(name: &str, replace: bool, changes: Vec<ConfigChange>) -> TopicConfigChanges {
    TopicConfigChanges {
        topic: name.to_string(),
        replace,
        changes,
    }
}

fn alter(
    h: &mut Harness,
    topics: Vec<TopicConfigChanges>,
    validate_only: bool,
) -> (Vec<AlterConfigsResult>, Vec<MetadataRecord>) {
    match h.handle_records(Request::AlterConfigs(AlterConfigsRequest {
        topics,
        validate_only,
    })) {
        (Response::AlterConfigs(results), records) => (results, records),
        other => panic!("{other:?}"),
    }
}

/// One topic's incremental changes; the result's error code.
fn alter_one(h: &mut Harness, changes: Vec<ConfigChange>) -> ErrorCode {
    let (results, _) = alter(h, vec![topic("t", false, changes)], false);
    assert_eq!(results.len(), 1);
    ErrorCode(results[0].result.error_code)
}

fn configs(h: &Harness) -> BTreeMap<String, String> {
    h.image().topics["t"].configs.clone()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn incremental_operations_reach_the_image() {
    let mut h = harness();
    let epochs_before = h.partition("t", 0);
    let (results, records) = alter(
        &mut h,
        vec![topic(
            "t",
            false,
            vec![
                set("retention.ms", "1000"),
                change("cleanup.policy", ConfigOp::Append, Some("compact")),
            ],
        )],
        false,
    );
    let expected = map(&[
        ("cleanup.policy", "delete,compact"),
        ("retention.ms", "1000"),
    ]);
    assert_eq!(results[0].result.error_code, 0);
    assert_eq!(results[0].configs.as_ref(), Some(&expected));
    assert_eq!(
        records,
        vec![MetadataRecord::TopicConfigs {
            name: "t".into(),
            configs: expected.clone(),
        }]
    );
    assert_eq!(configs(&h), expected);
    assert_eq!(
        h.partition("t", 0),
        epochs_before,
        "a config change leaves partitions alone"
    );

    // SUBTRACT from the override, DELETE back to the default.
    let subtract = change("cleanup.policy", ConfigOp::Subtract, Some("delete"));
    assert_eq!(alter_one(&mut h, vec![subtract]), ErrorCode::NONE);
    assert_eq!(configs(&h)["cleanup.policy"], "compact");
    let delete = change("retention.ms", ConfigOp::Delete, None);
    assert_eq!(alter_one(&mut h, vec![delete]), ErrorCode::NONE);
    assert_eq!(configs(&h), map(&[("cleanup.policy", "compact")]));
    // SUBTRACT without an override starts from the default (`delete`): nothing is left, which
    // the policy refuses.
    let cleared = change("cleanup.policy", ConfigOp::Delete, None);
    assert_eq!(alter_one(&mut h, vec![cleared]), ErrorCode::NONE);
    let subtract = change("cleanup.policy", ConfigOp::Subtract, Some("delete"));
    assert_eq!(alter_one(&mut h, vec![subtract]), ErrorCode::INVALID_CONFIG);
    assert!(configs(&h).is_empty());
}

#[test]
fn refusals_name_their_cause_and_commit_nothing() {
    let mut h = harness();
    let cases: Vec<(&str, Vec<ConfigChange>, ErrorCode)> = vec![
        (
            "unknown config",
            vec![set("nope", "1")],
            ErrorCode::INVALID_CONFIG,
        ),
        (
            "bad value",
            vec![set("retention.ms", "soon")],
            ErrorCode::INVALID_CONFIG,
        ),
        (
            "null value",
            vec![change("retention.ms", ConfigOp::Set, None)],
            ErrorCode::INVALID_CONFIG,
        ),
        (
            "append to a non-list",
            vec![change("retention.ms", ConfigOp::Append, Some("1"))],
            ErrorCode::INVALID_CONFIG,
        ),
        (
            "not a policy",
            vec![change("cleanup.policy", ConfigOp::Append, Some("shred"))],
            ErrorCode::INVALID_CONFIG,
        ),
        (
            "min lag above max lag",
            vec![
                set("min.compaction.lag.ms", "10"),
                set("max.compaction.lag.ms", "5"),
            ],
            ErrorCode::INVALID_CONFIG,
        ),
        (
            "a key twice",
            vec![set("retention.ms", "1"), set("retention.ms", "2")],
            ErrorCode::INVALID_REQUEST,
        ),
    ];
    for (what, changes, expected) in cases {
        let (results, records) = alter(&mut h, vec![topic("t", false, changes)], false);
        assert_eq!(ErrorCode(results[0].result.error_code), expected, "{what}");
        assert!(results[0].result.error_message.is_some(), "{what}");
        assert_eq!(results[0].configs, None, "{what}");
        assert!(records.is_empty(), "{what}");
    }
    let (results, _) = alter(
        &mut h,
        vec![topic("t", false, vec![set("nope", "1")])],
        false,
    );
    let message = results[0].result.error_message.clone().unwrap_or_default();
    assert!(message.contains("nope"), "{message}");
    assert!(configs(&h).is_empty());
}

#[test]
fn topics_are_decided_one_by_one() {
    let mut h = harness();
    assert_eq!(code(&h.create_topic("u", 1, 1)), ErrorCode::NONE);
    let (results, records) = alter(
        &mut h,
        vec![
            topic("t", false, vec![set("retention.ms", "1")]),
            topic("missing", false, vec![set("retention.ms", "1")]),
            topic("u", false, vec![set("retention.ms", "x")]),
            topic("dup", false, vec![]),
            topic("dup", false, vec![]),
        ],
        false,
    );
    let codes: Vec<ErrorCode> = results
        .iter()
        .map(|r| ErrorCode(r.result.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::NONE,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            ErrorCode::INVALID_CONFIG,
            ErrorCode::INVALID_REQUEST,
            ErrorCode::INVALID_REQUEST,
        ]
    );
    assert_eq!(records.len(), 1);
    assert_eq!(configs(&h), map(&[("retention.ms", "1")]));
    assert!(h.image().topics["u"].configs.is_empty());
}

#[test]
fn validate_only_answers_without_records() {
    let mut h = harness();
    let (results, records) = alter(
        &mut h,
        vec![topic("t", false, vec![set("retention.ms", "5")])],
        true,
    );
    assert_eq!(results[0].result.error_code, 0);
    assert_eq!(results[0].configs, Some(map(&[("retention.ms", "5")])));
    assert!(records.is_empty());
    assert!(configs(&h).is_empty());
}

/// AlterConfigs (the legacy API) replaces the whole override set.
#[test]
fn replace_drops_the_overrides_not_named() {
    let mut h = harness();
    let both = vec![set("retention.ms", "5"), set("cleanup.policy", "compact")];
    assert_eq!(alter_one(&mut h, both), ErrorCode::NONE);
    let (results, _) = alter(
        &mut h,
        vec![topic("t", true, vec![set("retention.ms", "7")])],
        false,
    );
    assert_eq!(results[0].result.error_code, 0);
    assert_eq!(configs(&h), map(&[("retention.ms", "7")]));
}

#[test]
fn without_a_policy_changes_are_refused() {
    let mut h = Harness::new();
    h.start_brokers(&[1]);
    assert_eq!(code(&h.create_topic("t", 1, 1)), ErrorCode::NONE);
    assert_eq!(
        alter_one(&mut h, vec![set("retention.ms", "1")]),
        ErrorCode::INVALID_REQUEST
    );
}

/// Every node replays the record to the same image, and a snapshot keeps the new overrides;
/// a topic deleted and created again starts from its creation's configs.
#[test]
fn replicas_and_snapshots_see_the_new_overrides() {
    let mut h = harness();
    let mut follower = h.image().clone();
    let (_, records) = alter(
        &mut h,
        vec![topic("t", false, vec![set("cleanup.policy", "compact")])],
        false,
    );
    follower.replay(h.image().offset, &records);
    assert_eq!(&follower, h.image());
    let decoded = decode_image(&encode_image(h.image())).expect("decodes");
    assert_eq!(
        decoded.topics["t"].configs,
        map(&[("cleanup.policy", "compact")])
    );
    // A record for a topic that is gone is skipped, not applied to anything.
    let mut gone = h.image().clone();
    let offset = gone.offset + 1;
    gone.replay(offset, &[MetadataRecord::RemoveTopic { name: "t".into() }]);
    gone.replay(offset + 1, &records);
    assert!(!gone.topics.contains_key("t"));
}

fn op_strategy() -> impl Strategy<Value = (u8, Vec<&'static str>)> {
    let item = prop::sample::select(vec!["compact", "delete"]);
    (0u8..4, prop::collection::vec(item, 0..3))
}

proptest! {
    /// APPEND makes every item a member, once; SUBTRACT removes them; the other items keep
    /// their order; a result the policy accepts is exactly what the image then holds.
    #[test]
    fn list_operations_follow_set_semantics(ops in prop::collection::vec(op_strategy(), 1..12)) {
        let mut h = harness();
        for (op, items) in ops {
            let before = configs(&h);
            let old: Vec<String> = before
                .get("cleanup.policy")
                .map_or("delete", String::as_str)
                .split(',')
                .map(str::to_string)
                .collect();
            let value = items.join(",");
            let op = ConfigOp::from_code(op as i8).expect("0..4");
            let applied = apply_config_changes(
                &TestPolicy,
                &before,
                &[change("cleanup.policy", op, Some(&value))],
                false,
            );
            let code = alter_one(&mut h, vec![change("cleanup.policy", op, Some(&value))]);
            let after = configs(&h);
            match applied {
                Ok(expected) => {
                    prop_assert_eq!(code, ErrorCode::NONE);
                    prop_assert_eq!(&after, &expected);
                }
                Err((c, _)) => {
                    prop_assert_eq!(code, c);
                    prop_assert_eq!(&after, &before);
                    continue;
                }
            }
            let Some(list) = after.get("cleanup.policy") else {
                prop_assert_eq!(op, ConfigOp::Delete);
                continue;
            };
            let list: Vec<&str> = list.split(',').collect();
            match op {
                ConfigOp::Append => {
                    for i in &items {
                        prop_assert_eq!(list.iter().filter(|l| *l == i).count(), 1);
                    }
                    let kept: Vec<&str> = list.iter().copied().take(old.len()).collect();
                    prop_assert_eq!(kept, old.iter().map(String::as_str).collect::<Vec<_>>());
                }
                ConfigOp::Subtract => {
                    prop_assert!(items.iter().all(|i| !list.contains(i)));
                    let kept: Vec<&str> = old
                        .iter()
                        .map(String::as_str)
                        .filter(|o| !items.contains(o))
                        .collect();
                    prop_assert_eq!(list, kept);
                }
                ConfigOp::Set => prop_assert_eq!(list.join(","), value.clone()),
                ConfigOp::Delete => prop_assert!(false, "deleted, yet present"),
            }
        }
    }
}
