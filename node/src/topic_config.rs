//! Topic names and topic-level configs (Kafka names), and their mapping to [`LogConfig`].
//!
//! A topic stores only its overrides; the effective value of every config is the override or
//! else the broker default from the `log.*` setting in [`TOPIC_CONFIGS`]. Invariant: stored
//! overrides are always valid (they are checked by [`validate_overrides`] before they are kept).

use std::collections::BTreeMap;

use strata_core::batch::TimestampType;
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
        kind: Kind::Choice(&["delete"]),
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
        cleanup_policy: CleanupPolicy::parse(value("cleanup.policy", overrides, broker))
            .unwrap_or_default(),
        ..LogConfig::default()
    }
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
            validate_overrides([("cleanup.policy", Some("compact"))]),
            Err(TopicError::InvalidConfig { .. })
        ));
        assert!(matches!(
            validate_overrides([("nope", Some("1"))]),
            Err(TopicError::UnknownConfig(_))
        ));
    }
}
