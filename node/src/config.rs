//! Broker configuration: one table of settings drives parsing, validation and `--help`.
//!
//! Every setting uses Kafka's name where Kafka has one. Sources, lowest precedence first:
//! built-in defaults < TOML file (`--config`) < environment (`STRATA_` + name upper-cased with
//! `.` → `_`) < `--set name=value` < the short flags `--data-dir` (`log.dirs`) and `--listen`
//! (`listeners`).
//!
//! Invariant: a [`Config`] only exists if every setting parsed and validated; an unknown setting
//! name in any source is an error (it is almost always a typo that would silently do nothing).

use std::collections::BTreeMap;
use std::path::PathBuf;

use strata_core::batch::TimestampType;
use thiserror::Error;

use crate::cluster_config::{self, CLUSTER_SETTINGS, ClusterConfig};
use crate::setting::I32;
pub use crate::setting::{Kind, Listener, Setting, check_value, parse_listener, parse_listeners};

/// Every broker setting.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "node.id",
        default: "1",
        doc: "This broker's id (reported in Metadata).",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "listeners",
        default: "PLAINTEXT://127.0.0.1:9092",
        doc: "Address the Kafka listener binds (port 0 = any free port).",
        kind: Kind::Listener { allow_empty: false },
    },
    Setting {
        name: "advertised.listeners",
        default: "",
        doc: "Address reported to clients in Metadata; empty = listeners.",
        kind: Kind::Listener { allow_empty: true },
    },
    Setting {
        name: "log.dirs",
        default: "./data",
        doc: "Data directory (comma-separated; only the first is used).",
        kind: Kind::Str,
    },
    Setting {
        name: "num.partitions",
        default: "1",
        doc: "Partitions of auto-created topics and of CreateTopics with -1.",
        kind: Kind::Int {
            min: 1,
            max: 100_000,
        },
    },
    Setting {
        name: "max.partitions",
        default: "100000",
        doc: "Most partitions this broker holds in all (KIP-578); CreateTopics/CreatePartitions beyond it get INVALID_PARTITIONS.",
        kind: Kind::Int { min: 1, max: I32 },
    },
    Setting {
        name: "auto.create.topics.enable",
        default: "true",
        doc: "Create unknown topics on Metadata/Produce.",
        kind: Kind::Bool,
    },
    Setting {
        name: "socket.request.max.bytes",
        default: "104857600",
        doc: "Largest request frame; bigger ones close the connection.",
        kind: Kind::Int { min: 64, max: I32 },
    },
    Setting {
        name: "max.connections",
        default: "10000",
        doc: "Connections served at once; extra ones are closed.",
        kind: Kind::Int { min: 1, max: I32 },
    },
    Setting {
        name: "queued.max.requests",
        default: "500",
        doc: "Requests of one connection read ahead of their responses (pipelining bound).",
        kind: Kind::Int {
            min: 1,
            max: 100_000,
        },
    },
    Setting {
        name: "max.incremental.fetch.session.cache.slots",
        default: "1000",
        doc: "Incremental fetch sessions (KIP-227) the broker keeps, over all clients and \
              followers; 0 = none, every fetch lists all its partitions.",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "queued.max.request.bytes",
        default: "104857600",
        doc: "Bytes of requests read but not yet handled, over all connections (-1 = unbounded; \
              else at least socket.request.max.bytes); when they are all taken, connections stop \
              reading until some come back.",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.segment.bytes",
        default: "1073741824",
        doc: "Default segment.bytes.",
        kind: Kind::Int {
            min: 1024,
            max: I32,
        },
    },
    Setting {
        name: "log.roll.ms",
        default: "604800000",
        doc: "Default segment.ms.",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.retention.ms",
        default: "604800000",
        doc: "Default retention.ms (-1 = forever).",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.retention.bytes",
        default: "-1",
        doc: "Default retention.bytes (-1 = no limit).",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.index.interval.bytes",
        default: "4096",
        doc: "Default index.interval.bytes.",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "log.index.size.max.bytes",
        default: "10485760",
        doc: "Default segment.index.bytes.",
        kind: Kind::Int { min: 8, max: I32 },
    },
    Setting {
        name: "message.max.bytes",
        default: "1048588",
        doc: "Default max.message.bytes (largest batch).",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "log.message.timestamp.type",
        default: "CreateTime",
        doc: "Default message.timestamp.type.",
        kind: Kind::Choice(&["CreateTime", "LogAppendTime"]),
    },
    Setting {
        name: "log.fsync.before.ack",
        default: "true",
        doc: "Default fsync.before.ack: acknowledge acks=1/-1 only after fsync.",
        kind: Kind::Bool,
    },
    Setting {
        name: "log.cleanup.policy",
        default: "delete",
        doc: "Default cleanup.policy: delete (retention by time and size), compact (keep the \
              newest record of each key), or both (compact,delete).",
        kind: Kind::List(&["compact", "delete"]),
    },
    Setting {
        name: "log.cleaner.enable",
        default: "true",
        doc: "Run the log cleaner (compaction of topics with cleanup.policy compact).",
        kind: Kind::Bool,
    },
    Setting {
        name: "log.cleaner.delete.retention.ms",
        default: "86400000",
        doc: "Default delete.retention.ms: how long the cleaner keeps tombstones.",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.cleaner.min.cleanable.ratio",
        default: "0.5",
        doc: "Default min.cleanable.dirty.ratio: clean a log once this fraction of it is dirty.",
        kind: Kind::Double { min: 0.0, max: 1.0 },
    },
    Setting {
        name: "log.cleaner.min.compaction.lag.ms",
        default: "0",
        doc: "Default min.compaction.lag.ms: a record stays uncompacted at least this long.",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.cleaner.max.compaction.lag.ms",
        default: "9223372036854775807",
        doc: "Default max.compaction.lag.ms: a record is compacted at most this long after it \
              was written, whatever the dirty ratio.",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.cleaner.io.max.bytes.per.second",
        default: "-1",
        doc: "Bytes per second the cleaner may read and write, over all logs (-1 = \
              unthrottled, Kafka's Double.MAX; else at least 1).",
        kind: Kind::Double {
            min: -1.0,
            max: f64::MAX,
        },
    },
    Setting {
        name: "log.cleaner.dedupe.buffer.size",
        default: "134217728",
        doc: "Memory of the cleaner's key -> offset map; a log with more distinct keys in its \
              dirty part is cleaned in several passes.",
        kind: Kind::Int {
            min: 1024,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.cleaner.backoff.ms",
        default: "15000",
        doc: "How long the cleaner sleeps when no log needs cleaning.",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
    },
    Setting {
        name: "producer.id.expiration.ms",
        default: "86400000",
        doc: "An idempotent producer idle this long is forgotten by each partition (checked in the retention pass).",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "offsets.topic.num.partitions",
        default: "50",
        doc: "Partitions of __consumer_offsets, created on the first FindCoordinator (a group's coordinator is the leader of partition abs(hash(group)) % this).",
        kind: Kind::Int {
            min: 1,
            max: 10_000,
        },
    },
    Setting {
        name: "offsets.topic.replication.factor",
        default: "-1",
        doc: "Replication factor of __consumer_offsets; -1 = min(3, live brokers) when it is created.",
        kind: Kind::Int {
            min: -1,
            max: i16::MAX as i64,
        },
    },
    Setting {
        name: "offsets.topic.segment.bytes",
        default: "104857600",
        doc: "segment.bytes of __consumer_offsets when it is created: whole segments below a group coordinator's last snapshot are deleted, so the topic keeps about one segment plus its live state.",
        kind: Kind::Int {
            min: 1024,
            max: I32,
        },
    },
    Setting {
        name: "offsets.snapshot.min.records",
        default: "10000",
        doc: "Strata: a group coordinator snapshots its __consumer_offsets partition (so that what is below can be deleted) once more than max(this, 2 x its live records) were written since the last snapshot.",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "group.min.session.timeout.ms",
        default: "6000",
        doc: "Shortest consumer session timeout (shorter: INVALID_SESSION_TIMEOUT).",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "group.max.session.timeout.ms",
        default: "1800000",
        doc: "Longest consumer session timeout (longer: INVALID_SESSION_TIMEOUT).",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "group.initial.rebalance.delay.ms",
        default: "3000",
        doc: "How long the first rebalance of an empty group waits for more members (KIP-134).",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "group.max.size",
        default: "1000",
        doc: "Most members (and pending members) of one consumer group (more: GROUP_MAX_SIZE_REACHED).",
        kind: Kind::Int {
            min: 1,
            max: 1_000_000,
        },
    },
    Setting {
        name: "offsets.retention.minutes",
        default: "10080",
        doc: "Committed offsets of a group empty this long (or standalone commits this old) expire (KIP-211).",
        kind: Kind::Int { min: 1, max: I32 },
    },
    Setting {
        name: "offsets.retention.check.interval.ms",
        default: "600000",
        doc: "How often each group coordinator looks for expired offsets.",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "offset.metadata.max.bytes",
        default: "4096",
        doc: "Longest metadata string of a committed offset (longer: OFFSET_METADATA_TOO_LARGE).",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "log.retention.check.interval.ms",
        default: "300000",
        doc: "Period of the retention pass.",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.flush.offset.checkpoint.interval.ms",
        default: "60000",
        doc: "Period of writing each log's recovery point (everything below it is fsynced; recovery scans only what lies after it).",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    Setting {
        name: "log.flush.interval.ms",
        default: "1000",
        doc: "Background flush period of topics with fsync.before.ack=false.",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
];

/// Configuration errors; each names the setting at fault.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown setting `{name}` (from {origin})")]
    Unknown { name: String, origin: String },
    #[error("invalid value `{value}` for setting `{name}` (from {origin}): {reason}")]
    Invalid {
        name: String,
        value: String,
        origin: String,
        reason: String,
    },
    #[error("cannot parse config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("`--set` expects name=value, got `{0}`")]
    SetSyntax(String),
}

/// Where settings come from, gathered by `main` (or a test).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// Text of the TOML file and its path (for messages).
    pub file: Option<(String, String)>,
    /// Environment variables (all of them; only `STRATA_<SETTING>` names are read).
    pub env: Vec<(String, String)>,
    /// `--set name=value`, in order.
    pub sets: Vec<String>,
    /// `--data-dir`.
    pub data_dir: Option<String>,
    /// `--listen host:port`.
    pub listen: Option<String>,
}

/// The environment variable for a setting: `STRATA_LOG_RETENTION_MS`.
pub fn env_name(setting: &str) -> String {
    format!("STRATA_{}", setting.to_ascii_uppercase().replace('.', "_"))
}

/// The validated broker configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `node.id`.
    pub node_id: i32,
    /// `listeners`: where we bind.
    pub listener: Listener,
    /// Quorum, roles and the controller listener (see [`crate::cluster_config`]).
    pub cluster: ClusterConfig,
    /// `advertised.listeners` (or `listeners`): what Metadata reports.
    pub advertised: Option<Listener>,
    /// First entry of `log.dirs`.
    pub data_dir: PathBuf,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `max.partitions`.
    pub max_partitions: i64,
    /// `max.connections`.
    pub max_connections: usize,
    /// `queued.max.requests` (per connection).
    pub queued_max_requests: usize,
    /// `queued.max.request.bytes` (broker-wide; `None` = unbounded, `-1`).
    pub queued_max_request_bytes: Option<usize>,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `log.flush.interval.ms`.
    pub flush_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub recovery_checkpoint_interval_ms: u64,
    /// The `log.cleaner.*` settings of the cleaner itself (the per-topic ones are topic
    /// configs' defaults, see [`crate::topic_config`]).
    pub cleaner: CleanerConfig,
    /// Every setting's final text value (for DescribeConfigs on the broker and topic defaults).
    pub values: BTreeMap<&'static str, String>,
}

/// The log cleaner's own broker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.io.max.bytes.per.second`: `None` = unthrottled (`-1`, Kafka's default
    /// `Double.MAX_VALUE`), else at least 1 byte per second.
    pub io_max_bytes_per_second: Option<f64>,
    /// `log.cleaner.dedupe.buffer.size`, bytes.
    pub dedupe_buffer_size: u64,
    /// `log.cleaner.backoff.ms`.
    pub backoff_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config::resolve(&Sources::default()).expect("built-in defaults are valid")
    }
}

/// Both settings tables: single-node and cluster.
pub fn all_settings() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().chain(CLUSTER_SETTINGS.iter())
}

fn setting(name: &str) -> Option<&'static Setting> {
    all_settings().find(|s| s.name == name)
}

fn toml_to_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a.iter().map(toml_to_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Flattens nested tables into dotted names, so `[log] retention.ms = 1` and
/// `"log.retention.ms" = 1` mean the same.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&name, t, out),
            other => out.push((name, toml_to_text(other))),
        }
    }
}

impl Config {
    /// Merges the sources over the defaults and validates everything.
    pub fn resolve(src: &Sources) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<&'static str, String> = all_settings()
            .map(|s| (s.name, s.default.to_string()))
            .collect();
        let mut apply = |name: &str, raw: &str, source: &str| -> Result<(), ConfigError> {
            let s = setting(name).ok_or_else(|| ConfigError::Unknown {
                name: name.to_string(),
                origin: source.to_string(),
            })?;
            let v = check_value(s.kind, raw).map_err(|reason| ConfigError::Invalid {
                name: name.to_string(),
                value: raw.to_string(),
                origin: source.to_string(),
                reason,
            })?;
            values.insert(s.name, v);
            Ok(())
        };
        if let Some((path, text)) = &src.file {
            let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let mut pairs = Vec::new();
            flatten("", &table, &mut pairs);
            for (k, v) in pairs {
                apply(&k, &v, &format!("config file {path}"))?;
            }
        }
        for s in all_settings() {
            let var = env_name(s.name);
            if let Some((_, v)) = src.env.iter().rev().find(|(k, _)| *k == var) {
                apply(s.name, v, &format!("environment variable {var}"))?;
            }
        }
        for kv in &src.sets {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| ConfigError::SetSyntax(kv.clone()))?;
            apply(k.trim(), v, "--set")?;
        }
        if let Some(d) = &src.data_dir {
            apply("log.dirs", d, "--data-dir")?;
        }
        if let Some(l) = &src.listen {
            apply("listeners", l, "--listen")?;
        }
        Config::from_values(values)
    }

    fn from_values(values: BTreeMap<&'static str, String>) -> Result<Config, ConfigError> {
        let int = |n: &str| -> i64 { values.get(n).and_then(|v| v.parse().ok()).unwrap_or(0) };
        let text = |n: &str| -> &str { values.get(n).map(String::as_str).unwrap_or("") };
        let invalid = |name: &str, reason: &str| ConfigError::Invalid {
            name: name.to_string(),
            value: text(name).to_string(),
            origin: "merged configuration".into(),
            reason: reason.to_string(),
        };
        let named = parse_listeners(text("listeners")).map_err(|r| invalid("listeners", &r))?;
        let node_id = int("node.id") as i32;
        let cluster = cluster_config::resolve(
            node_id,
            text("controller.quorum.voters"),
            text("process.roles"),
            &named,
        )
        .map_err(|(name, reason)| invalid(name, &reason))?;
        let listener = match named.iter().find(|(n, _)| n == "PLAINTEXT") {
            Some((_, l)) => l.clone(),
            // A controller-only node serves no clients; it still needs a value here.
            None if cluster.enabled() && !cluster.is_broker => Listener {
                host: "127.0.0.1".into(),
                port: 0,
            },
            None => return Err(invalid("listeners", "no PLAINTEXT listener")),
        };
        let advertised = match text("advertised.listeners") {
            "" => None,
            raw => Some(parse_listener(raw).map_err(|r| invalid("advertised.listeners", &r))?),
        };
        let data_dir = text("log.dirs")
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if data_dir.is_empty() {
            return Err(invalid("log.dirs", "must name a directory"));
        }
        let cleaner = CleanerConfig::from_values(&values)
            .map_err(|r| invalid("log.cleaner.io.max.bytes.per.second", &r))?;
        let queued_max_request_bytes = request_bytes_bound(
            int("queued.max.request.bytes"),
            int("socket.request.max.bytes"),
        )
        .map_err(|r| invalid("queued.max.request.bytes", &r))?;
        Ok(Config {
            node_id,
            listener,
            cluster,
            advertised,
            data_dir: PathBuf::from(data_dir),
            num_partitions: int("num.partitions") as i32,
            auto_create_topics: text("auto.create.topics.enable") == "true",
            socket_request_max_bytes: int("socket.request.max.bytes") as usize,
            max_partitions: int("max.partitions"),
            max_connections: int("max.connections") as usize,
            queued_max_requests: int("queued.max.requests") as usize,
            queued_max_request_bytes,
            retention_check_interval_ms: int("log.retention.check.interval.ms") as u64,
            flush_interval_ms: int("log.flush.interval.ms") as u64,
            recovery_checkpoint_interval_ms: int("log.flush.offset.checkpoint.interval.ms") as u64,
            cleaner,
            values: values.clone(),
        })
    }

    /// The text value of a setting (always present for table names).
    pub fn value(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    /// An integer setting (cluster timeouts and sizes), as `u64`; 0 if not a number.
    pub fn cluster_int(&self, name: &str) -> u64 {
        self.value(name)
            .parse::<i64>()
            .map_or(0, |v| v.max(0) as u64)
    }

    /// The broker's default `message.timestamp.type`.
    pub fn timestamp_type(&self) -> TimestampType {
        match self.value("log.message.timestamp.type") {
            "LogAppendTime" => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        }
    }

    /// Overrides one setting programmatically (tests, embedding) with full validation.
    pub fn with(self, name: &str, value: &str) -> Result<Config, ConfigError> {
        let mut values = self.values;
        let s = setting(name).ok_or_else(|| ConfigError::Unknown {
            name: name.to_string(),
            origin: "Config::with".into(),
        })?;
        let v = check_value(s.kind, value).map_err(|reason| ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            origin: "Config::with".into(),
            reason,
        })?;
        values.insert(s.name, v);
        Config::from_values(values)
    }
}

/// `queued.max.request.bytes` as a bound (`None`: -1, unbounded). A bound below
/// `socket.request.max.bytes` is refused: a request of the largest size allowed would then wait
/// for every other request to be handled, and be read alone.
fn request_bytes_bound(bound: i64, max_frame: i64) -> Result<Option<usize>, String> {
    if bound == -1 {
        return Ok(None);
    }
    if bound < max_frame {
        return Err(format!(
            "must be -1 (unbounded) or at least socket.request.max.bytes ({max_frame}), so \
             that a request of the largest size allowed fits"
        ));
    }
    Ok(Some(usize::try_from(bound).unwrap_or(usize::MAX)))
}

impl CleanerConfig {
    /// From the checked text values. `log.cleaner.io.max.bytes.per.second` becomes a throttle:
    /// `None` for -1 (unthrottled), else the rate, which must be at least 1 byte per second (0
    /// would stop the cleaner for good; a fraction of a byte per second is no throttle anyone
    /// means). The error is about that setting.
    fn from_values(values: &BTreeMap<&'static str, String>) -> Result<CleanerConfig, String> {
        let text = |n: &str| values.get(n).map(String::as_str).unwrap_or("");
        let uint = |n: &str| text(n).parse::<u64>().unwrap_or(0);
        let rate: f64 = text("log.cleaner.io.max.bytes.per.second")
            .parse()
            .map_err(|_| "not a number".to_string())?;
        let io_max_bytes_per_second = if rate == -1.0 {
            None
        } else if rate >= 1.0 {
            Some(rate)
        } else {
            return Err("must be -1 (unthrottled) or at least 1 byte per second".into());
        };
        Ok(CleanerConfig {
            enable: text("log.cleaner.enable") == "true",
            io_max_bytes_per_second,
            dedupe_buffer_size: uint("log.cleaner.dedupe.buffer.size"),
            backoff_ms: uint("log.cleaner.backoff.ms"),
        })
    }
}

/// The `--help` appendix: every setting with its default and doc.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Settings (TOML file keys, `--set name=value`, or env STRATA_<NAME> with . -> _):\n",
    );
    for s in all_settings() {
        let default = if s.default.is_empty() {
            "\"\""
        } else {
            s.default
        };
        out.push_str(&format!(
            "  {:<34} default {:<28} {}\n",
            s.name, default, s.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = Config::default();
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.listener,
            Listener {
                host: "127.0.0.1".into(),
                port: 9092
            }
        );
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.auto_create_topics);
        assert_eq!(c.advertised, None);
    }

    #[test]
    fn precedence_file_env_set_flags() {
        let src = Sources {
            file: Some((
                "f.toml".into(),
                "\"log.retention.ms\" = 1000\nnum.partitions = 3\n[node]\nid = 7\n[log]\ndirs = \"/file\"\n".into(),
            )),
            env: vec![
                ("STRATA_NUM_PARTITIONS".into(), "4".into()),
                ("STRATA_LOG_DIRS".into(), "/env".into()),
                ("UNRELATED".into(), "x".into()),
            ],
            sets: vec!["log.dirs=/set".into(), "log.retention.ms=5".into()],
            data_dir: Some("/flag".into()),
            listen: Some("0.0.0.0:1234".into()),
        };
        let c = Config::resolve(&src).expect("valid");
        assert_eq!(c.node_id, 7);
        assert_eq!(c.num_partitions, 4);
        assert_eq!(c.value("log.retention.ms"), "5");
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.listener.port, 1234);
    }

    #[test]
    fn unknown_and_invalid_settings_are_named() {
        let e = Config::resolve(&Sources {
            sets: vec!["log.retention.msx=1".into()],
            ..Default::default()
        })
        .expect_err("unknown");
        assert!(e.to_string().contains("log.retention.msx"), "{e}");
        let e = Config::resolve(&Sources {
            env: vec![("STRATA_NUM_PARTITIONS".into(), "zero".into())],
            ..Default::default()
        })
        .expect_err("invalid");
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let e = Config::resolve(&Sources {
            file: Some(("f".into(), "bogus.key = 1".into())),
            ..Default::default()
        })
        .expect_err("unknown in file");
        assert!(e.to_string().contains("bogus.key"), "{e}");
        assert!(matches!(
            Config::resolve(&Sources {
                sets: vec!["noequals".into()],
                ..Default::default()
            }),
            Err(ConfigError::SetSyntax(_))
        ));
    }

    #[test]
    fn queued_max_request_bytes_fits_the_largest_request() {
        let c = Config::default();
        assert_eq!(c.queued_max_request_bytes, Some(104_857_600));
        let c = Config::default()
            .with("queued.max.request.bytes", "-1")
            .expect("unbounded");
        assert_eq!(c.queued_max_request_bytes, None);
        let c = Config::default()
            .with("socket.request.max.bytes", "1000")
            .and_then(|c| c.with("queued.max.request.bytes", "1000"))
            .expect("equal is enough");
        assert_eq!(c.queued_max_request_bytes, Some(1000));
        let e = Config::default()
            .with("queued.max.request.bytes", "1048576")
            .expect_err("below socket.request.max.bytes");
        assert!(
            e.to_string().contains("queued.max.request.bytes")
                && e.to_string()
                    .contains("socket.request.max.bytes (104857600)"),
            "{e}"
        );
        assert!(
            Config::default()
                .with("queued.max.request.bytes", "0")
                .is_err()
        );
        assert!(
            Config::default()
                .with("queued.max.request.bytes", "-2")
                .is_err()
        );
    }

    #[test]
    fn cleaner_settings_default_to_kafkas() {
        let c = Config::default();
        assert_eq!(
            c.cleaner,
            CleanerConfig {
                enable: true,
                io_max_bytes_per_second: None,
                dedupe_buffer_size: 128 * 1024 * 1024,
                backoff_ms: 15_000,
            }
        );
        assert_eq!(c.value("log.cleanup.policy"), "delete");
        assert_eq!(c.value("log.cleaner.delete.retention.ms"), "86400000");
        assert_eq!(c.value("log.cleaner.min.cleanable.ratio"), "0.5");
        assert_eq!(c.value("log.cleaner.min.compaction.lag.ms"), "0");
        assert_eq!(
            c.value("log.cleaner.max.compaction.lag.ms"),
            i64::MAX.to_string()
        );
        let c = Config::default()
            .with("log.cleanup.policy", "Compact, delete")
            .and_then(|c| c.with("log.cleaner.io.max.bytes.per.second", "1048576.0"))
            .and_then(|c| c.with("log.cleaner.enable", "false"))
            .expect("valid");
        assert_eq!(c.value("log.cleanup.policy"), "compact,delete");
        assert_eq!(c.cleaner.io_max_bytes_per_second, Some(1_048_576.0));
        assert!(!c.cleaner.enable);
        for (name, bad) in [
            ("log.cleanup.policy", "shred"),
            ("log.cleanup.policy", "delete,delete"),
            ("log.cleaner.min.cleanable.ratio", "1.5"),
            ("log.cleaner.io.max.bytes.per.second", "0"),
            ("log.cleaner.io.max.bytes.per.second", "-2"),
            ("log.cleaner.io.max.bytes.per.second", "0.5"),
            ("log.cleaner.max.compaction.lag.ms", "0"),
        ] {
            let e = Config::default().with(name, bad).expect_err(bad);
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn listeners_parse() {
        assert_eq!(
            parse_listener("PLAINTEXT://localhost:19092").expect("ok"),
            Listener {
                host: "localhost".into(),
                port: 19092
            }
        );
        assert!(parse_listener("SSL://a:1").is_err());
        assert_eq!(
            parse_listener("CONTROLLER://h:9093,PLAINTEXT://h:9092")
                .expect("named")
                .port,
            9092
        );
        assert!(parse_listeners("PLAINTEXT://a:1,PLAINTEXT://a:2").is_err());
        assert!(parse_listener("nohost").is_err());
        assert!(parse_listener("a:99999").is_err());
    }

    #[test]
    fn help_lists_every_setting() {
        let h = settings_help();
        for s in all_settings() {
            assert!(h.contains(s.name));
        }
    }
}
