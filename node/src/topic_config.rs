//! Topic names and topic-level configs (Kafka names), and their mapping to [`LogConfig`].
//!
//! A topic stores only its overrides; the effective value of every config is the override or
//! else the broker default from the `log.*` setting in [`TOPIC_CONFIGS`]. Invariant: stored
//! overrides are always valid (they are checked by [`validate_topic_configs`] before they are
//! kept: each value, then their combination with the broker defaults, [`check_combination`]).
//!
//! Overrides change by CreateTopics, IncrementalAlterConfigs and AlterConfigs; both the broker
//! (single node) and the controller (cluster, through [`TopicConfigTable`]) apply the same
//! operations (`strata_core::controller::apply_config_changes`) and the same checks.

use std::collections::BTreeMap;

use strata_core::batch::TimestampType;
use strata_core::controller::{ConfigShape, TopicConfigPolicy};
use strata_core::log::producer_state::DEFAULT_PRODUCER_ID_EXPIRATION_MS;
use strata_core::log::{CleanupPolicy, LogConfig};
use thiserror::Error;

use crate::config::Config;
use crate::setting::{I32, Kind, check_value};

/// A topic config and the broker setting that provides its default.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    /// Kafka's topic config name.
    pub name: &'static str,
    /// The broker setting holding the default.
    pub broker_default: &'static str,
    /// Validator.
    pub kind: Kind,
}

/// Every topic config we support.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_default: "log.cleanup.policy",
        kind: Kind::List(&["compact", "delete"]),
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        broker_default: "log.cleaner.delete.retention.ms",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
    },
    TopicConfigDef {
        name: "fsync.before.ack",
        broker_default: "log.fsync.before.ack",
        kind: Kind::Bool,
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_default: "log.index.interval.bytes",
        kind: Kind::Int { min: 0, max: I32 },
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        broker_default: "log.cleaner.max.compaction.lag.ms",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_default: "message.max.bytes",
        kind: Kind::Int { min: 0, max: I32 },
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_default: "log.message.timestamp.type",
        kind: Kind::Choice(&["CreateTime", "LogAppendTime"]),
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_default: "log.cleaner.min.cleanable.ratio",
        kind: Kind::Double { min: 0.0, max: 1.0 },
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        broker_default: "log.cleaner.min.compaction.lag.ms",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        broker_default: "min.insync.replicas",
        kind: Kind::Int { min: 1, max: I32 },
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_default: "log.retention.bytes",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
    },
    TopicConfigDef {
        name: "retention.ms",
        broker_default: "log.retention.ms",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_default: "log.segment.bytes",
        kind: Kind::Int {
            min: 1024,
            max: I32,
        },
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        broker_default: "log.index.size.max.bytes",
        kind: Kind::Int { min: 8, max: I32 },
    },
    TopicConfigDef {
        name: "segment.ms",
        broker_default: "log.roll.ms",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
];

/// Why a topic name or config was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("invalid topic name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("unknown topic config `{0}`")]
    UnknownConfig(String),
    #[error("invalid value `{value}` for topic config `{name}`: {reason}")]
    InvalidConfig {
        name: String,
        value: String,
        reason: String,
    },
    /// Values fine on their own that do not go together.
    #[error("{0}")]
    Conflict(String),
}

/// Kafka's topic name rule: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let bad = |reason| {
        Err(TopicError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("cannot be . or ..");
    }
    if name.len() > 249 {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The definition of a topic config, if supported.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks and normalises overrides (`None` values mean "use the default" and are dropped).
pub fn validate_overrides<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<BTreeMap<String, String>, TopicError> {
    let mut out = BTreeMap::new();
    for (name, value) in pairs {
        let def =
            topic_config_def(name).ok_or_else(|| TopicError::UnknownConfig(name.to_string()))?;
        let Some(value) = value else { continue };
        let v = check_value(def.kind, value).map_err(|reason| TopicError::InvalidConfig {
            name: name.to_string(),
            value: value.to_string(),
            reason,
        })?;
        out.insert(name.to_string(), v);
    }
    Ok(out)
}

/// [`validate_overrides`], then [`check_combination`] with the broker defaults: what every
/// path that stores overrides runs.
pub fn validate_topic_configs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    broker: &Config,
) -> Result<BTreeMap<String, String>, TopicError> {
    let overrides = validate_overrides(pairs)?;
    check_combination(&overrides, broker)?;
    Ok(overrides)
}

/// Kafka's cross-checks of a topic's effective configs (`LogConfig.validate`):
/// `min.compaction.lag.ms` may not exceed `max.compaction.lag.ms`.
pub fn check_combination(
    overrides: &BTreeMap<String, String>,
    broker: &Config,
) -> Result<(), TopicError> {
    let min_lag = int("min.compaction.lag.ms", overrides, broker);
    let max_lag = int("max.compaction.lag.ms", overrides, broker);
    if min_lag > max_lag {
        return Err(TopicError::Conflict(format!(
            "conflict topic config setting min.compaction.lag.ms ({min_lag}) > \
             max.compaction.lag.ms ({max_lag})"
        )));
    }
    Ok(())
}

/// The topic config table as the controller sees it (`TopicConfigPolicy`): kinds and broker
/// defaults from this node's configuration.
#[derive(Debug)]
pub struct TopicConfigTable {
    broker: Config,
}

impl TopicConfigTable {
    pub fn new(broker: Config) -> TopicConfigTable {
        TopicConfigTable { broker }
    }
}

impl TopicConfigPolicy for TopicConfigTable {
    fn shape(&self, name: &str) -> Option<ConfigShape> {
        let def = topic_config_def(name)?;
        Some(ConfigShape {
            list: matches!(def.kind, Kind::List(_)),
            default: self.broker.value(def.broker_default).to_string(),
        })
    }

    fn validate(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        validate_topic_configs(
            overrides
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_str()))),
            &self.broker,
        )
        .map_err(|e| e.to_string())
    }
}

/// The effective value of topic config `def` given the overrides; `true` if overridden.
pub fn effective<'a>(
    def: &TopicConfigDef,
    overrides: &'a BTreeMap<String, String>,
    broker: &'a Config,
) -> (&'a str, bool) {
    match overrides.get(def.name) {
        Some(v) => (v.as_str(), true),
        None => (broker.value(def.broker_default), false),
    }
}

fn value<'a>(name: &str, overrides: &'a BTreeMap<String, String>, broker: &'a Config) -> &'a str {
    match topic_config_def(name) {
        Some(def) => effective(def, overrides, broker).0,
        None => "",
    }
}

fn int(name: &str, overrides: &BTreeMap<String, String>, broker: &Config) -> i64 {
    value(name, overrides, broker).parse().unwrap_or(0)
}

/// The log settings of a topic with these overrides.
pub fn log_config(overrides: &BTreeMap<String, String>, broker: &Config) -> LogConfig {
    let clamp_u32 = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    LogConfig {
        segment_bytes: int("segment.bytes", overrides, broker).max(0) as u64,
        segment_ms: int("segment.ms", overrides, broker),
        index_interval_bytes: clamp_u32(int("index.interval.bytes", overrides, broker)),
        segment_index_bytes: clamp_u32(int("segment.index.bytes", overrides, broker)),
        retention_ms: int("retention.ms", overrides, broker),
        retention_bytes: int("retention.bytes", overrides, broker),
        max_message_bytes: clamp_u32(int("max.message.bytes", overrides, broker)),
        message_timestamp_type: match value("message.timestamp.type", overrides, broker) {
            "LogAppendTime" => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        },
        // A broker setting in Kafka, not a topic one.
        producer_id_expiration_ms: broker
            .value("producer.id.expiration.ms")
            .parse()
            .unwrap_or(DEFAULT_PRODUCER_ID_EXPIRATION_MS),
        cleanup_policy: cleanup_policy(overrides, broker),
        delete_retention_ms: int("delete.retention.ms", overrides, broker),
        min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio", overrides, broker)
            .parse()
            .unwrap_or(0.5),
        min_compaction_lag_ms: int("min.compaction.lag.ms", overrides, broker),
        max_compaction_lag_ms: int("max.compaction.lag.ms", overrides, broker),
    }
}

/// `cleanup.policy` of this topic.
pub fn cleanup_policy(overrides: &BTreeMap<String, String>, broker: &Config) -> CleanupPolicy {
    CleanupPolicy::parse(value("cleanup.policy", overrides, broker)).unwrap_or_default()
}

/// Whether acks=1/-1 wait for fsync on this topic (`fsync.before.ack`).
pub fn fsync_before_ack(overrides: &BTreeMap<String, String>, broker: &Config) -> bool {
    value("fsync.before.ack", overrides, broker) == "true"
}

/// `min.insync.replicas` of this topic: acks=-1 needs this many ISR members.
pub fn min_insync_replicas(overrides: &BTreeMap<String, String>, broker: &Config) -> usize {
    usize::try_from(int("min.insync.replicas", overrides, broker).max(1)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        for ok in ["a", "A-b_c.d", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "ä", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_validate_and_map() {
        let broker = Config::default();
        let o = validate_overrides([
            ("retention.ms", Some("1000")),
            ("message.timestamp.type", Some("logappendtime")),
            ("fsync.before.ack", Some("false")),
            ("segment.ms", None),
        ])
        .expect("valid");
        let lc = log_config(&o, &broker);
        assert_eq!(lc.retention_ms, 1000);
        assert_eq!(lc.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(lc.segment_bytes, 1 << 30);
        assert!(!fsync_before_ack(&o, &broker));
        assert!(fsync_before_ack(&BTreeMap::new(), &broker));
        assert!(matches!(
            validate_overrides([("cleanup.policy", Some("compact,compact"))]),
            Err(TopicError::InvalidConfig { .. })
        ));
        assert!(matches!(
            validate_overrides([("nope", Some("1"))]),
            Err(TopicError::UnknownConfig(_))
        ));
    }

    /// Issue #16: the compaction configs, their broker defaults, and their mapping.
    #[test]
    fn compaction_configs_map_into_the_log_config() {
        let broker = Config::default();
        let defaults = log_config(&BTreeMap::new(), &broker);
        assert_eq!(defaults.cleanup_policy, CleanupPolicy::DELETE);
        assert_eq!(defaults.delete_retention_ms, 86_400_000);
        assert_eq!(defaults.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(defaults.min_compaction_lag_ms, 0);
        assert_eq!(defaults.max_compaction_lag_ms, i64::MAX);
        let o = validate_topic_configs(
            [
                ("cleanup.policy", Some("delete, Compact")),
                ("delete.retention.ms", Some("1000")),
                ("min.cleanable.dirty.ratio", Some("0.25")),
                ("min.compaction.lag.ms", Some("10")),
                ("max.compaction.lag.ms", Some("20")),
            ],
            &broker,
        )
        .expect("valid");
        assert_eq!(o["cleanup.policy"], "delete,compact");
        let lc = log_config(&o, &broker);
        assert_eq!(
            lc.cleanup_policy,
            CleanupPolicy {
                delete: true,
                compact: true
            }
        );
        assert_eq!(lc.delete_retention_ms, 1000);
        assert_eq!(lc.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(
            (lc.min_compaction_lag_ms, lc.max_compaction_lag_ms),
            (10, 20)
        );
        let compacting = broker.clone().with("log.cleanup.policy", "compact");
        let compacting = compacting.expect("valid");
        assert_eq!(
            log_config(&BTreeMap::new(), &compacting).cleanup_policy,
            CleanupPolicy::COMPACT
        );
        for (name, bad) in [
            ("cleanup.policy", ""),
            ("cleanup.policy", "shred"),
            ("min.cleanable.dirty.ratio", "1.01"),
            ("delete.retention.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
        ] {
            let e = validate_topic_configs([(name, Some(bad))], &broker).expect_err(bad);
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    /// Kafka's cross-check, against the broker default when only one side is overridden.
    #[test]
    fn min_compaction_lag_may_not_exceed_max() {
        let broker = Config::default();
        let lags = |min: &'static str, max: Option<&'static str>| {
            let mut pairs = vec![("min.compaction.lag.ms", Some(min))];
            pairs.extend(max.map(|m| ("max.compaction.lag.ms", Some(m))));
            validate_topic_configs(pairs, &broker)
        };
        assert!(lags("5", Some("5")).is_ok());
        assert!(lags("5", None).is_ok());
        let e = lags("6", Some("5")).expect_err("min > max");
        assert!(matches!(e, TopicError::Conflict(_)), "{e}");
        assert!(e.to_string().contains("min.compaction.lag.ms (6)"), "{e}");
        let low_default = broker
            .clone()
            .with("log.cleaner.max.compaction.lag.ms", "100")
            .expect("valid");
        assert!(
            validate_topic_configs([("min.compaction.lag.ms", Some("101"))], &low_default).is_err()
        );
    }

    /// The controller's view of the table: lists, broker defaults, whole-set validation.
    #[test]
    fn the_controller_table_follows_the_broker_config() {
        let broker = Config::default()
            .with("log.cleanup.policy", "compact")
            .expect("valid");
        let table = TopicConfigTable::new(broker);
        let shape = table.shape("cleanup.policy").expect("known");
        assert!(shape.list);
        assert_eq!(shape.default, "compact");
        assert!(!table.shape("retention.ms").expect("known").list);
        assert_eq!(table.shape("nope"), None);
        let ok = BTreeMap::from([("cleanup.policy".to_string(), "Delete".to_string())]);
        assert_eq!(
            table.validate(&ok).expect("valid")["cleanup.policy"],
            "delete"
        );
        let bad = BTreeMap::from([("retention.ms".to_string(), "soon".to_string())]);
        assert!(
            table
                .validate(&bad)
                .expect_err("bad")
                .contains("retention.ms")
        );
    }
}
