//! Cluster settings (KRaft names): the controller quorum, roles, replication and failure
//! detection. Kept apart from [`crate::config`]'s single-node table; both tables are one
//! namespace (a name appears in exactly one).
//!
//! A node with an empty `controller.quorum.voters` is a single-node cluster, as before: no
//! quorum, no replication, metadata in `__strata_metadata/metadata.toml`. With voters it joins
//! the cluster: it is a controller when `process.roles` says so (by default: when its `node.id`
//! is a voter) and a broker unless `process.roles` is `controller` alone.

use crate::setting::{I32, Kind, Listener, Setting};

/// Every cluster setting.
pub const CLUSTER_SETTINGS: &[Setting] = &[
    Setting {
        name: "controller.quorum.voters",
        default: "",
        doc: "The controller quorum: `1@host:port,2@host:port,3@host:port` (CONTROLLER listeners). Empty = single-node cluster.",
        kind: Kind::Str,
    },
    Setting {
        name: "process.roles",
        default: "",
        doc: "`broker`, `controller` or `broker,controller`; empty = both when node.id is a voter, else broker.",
        kind: Kind::Str,
    },
    Setting {
        name: "controller.listener.names",
        default: "CONTROLLER",
        doc: "Name of the controller listener in `listeners` (only CONTROLLER is supported).",
        kind: Kind::Choice(&["CONTROLLER"]),
    },
    Setting {
        name: "controller.quorum.election.timeout.ms",
        default: "1000",
        doc: "Raft election timeout of the controller quorum (ticks are a tenth of it).",
        kind: Kind::Int {
            min: 100,
            max: 600_000,
        },
    },
    Setting {
        name: "controller.quorum.request.timeout.ms",
        default: "2000",
        doc: "How long a broker tries to reach the active controller for one request.",
        kind: Kind::Int { min: 100, max: I32 },
    },
    Setting {
        name: "broker.session.timeout.ms",
        default: "9000",
        doc: "A broker that has not heartbeated for this long is fenced; its leaderships move.",
        kind: Kind::Int { min: 100, max: I32 },
    },
    Setting {
        name: "broker.heartbeat.interval.ms",
        default: "2000",
        doc: "Period of broker heartbeats to the active controller.",
        kind: Kind::Int { min: 10, max: I32 },
    },
    Setting {
        name: "replica.lag.time.max.ms",
        default: "30000",
        doc: "A follower that has not caught up for this long leaves the ISR.",
        kind: Kind::Int { min: 10, max: I32 },
    },
    Setting {
        name: "replica.fetch.max.bytes",
        default: "1048576",
        doc: "Bytes a follower asks per partition in one fetch (the first batch is always whole).",
        kind: Kind::Int { min: 1, max: I32 },
    },
    Setting {
        name: "replica.fetch.response.max.bytes",
        default: "10485760",
        doc: "Bytes a follower asks per fetch in all.",
        kind: Kind::Int { min: 1, max: I32 },
    },
    Setting {
        name: "replica.fetch.wait.max.ms",
        default: "500",
        doc: "Long-poll time of follower fetches.",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "replica.fetch.backoff.ms",
        default: "1000",
        doc: "Pause of a follower after a failed fetch.",
        kind: Kind::Int { min: 0, max: I32 },
    },
    Setting {
        name: "min.insync.replicas",
        default: "1",
        doc: "Default min.insync.replicas: acks=-1 needs this many in-sync replicas.",
        kind: Kind::Int { min: 1, max: I32 },
    },
    Setting {
        name: "default.replication.factor",
        default: "1",
        doc: "Replication factor of auto-created topics and of CreateTopics with -1.",
        kind: Kind::Int {
            min: 1,
            max: i16::MAX as i64,
        },
    },
    Setting {
        name: "unclean.leader.election.enable",
        default: "false",
        doc: "Let an out-of-sync replica lead when no ISR member is alive (loses acknowledged data).",
        kind: Kind::Bool,
    },
    Setting {
        name: "auto.leader.rebalance.enable",
        default: "true",
        doc: "Move leadership back to preferred replicas periodically.",
        kind: Kind::Bool,
    },
    Setting {
        name: "leader.imbalance.check.interval.seconds",
        default: "300",
        doc: "Period of the preferred-leader check.",
        kind: Kind::Int { min: 1, max: I32 },
    },
];

/// The node's part in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `controller.quorum.voters`: (node id, host, port) of each controller.
    pub voters: Vec<(i32, Listener)>,
    /// Runs the controller quorum.
    pub is_controller: bool,
    /// Serves Kafka clients and holds replicas.
    pub is_broker: bool,
    /// The `CONTROLLER://` entry of `listeners` (controllers only).
    pub controller_listener: Option<Listener>,
}

impl ClusterConfig {
    /// Whether this node is part of a multi-node cluster at all.
    pub fn enabled(&self) -> bool {
        !self.voters.is_empty()
    }
}

/// Parses `1@host:port,2@host:port`.
pub fn parse_voters(raw: &str) -> Result<Vec<(i32, Listener)>, String> {
    let mut voters: Vec<(i32, Listener)> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| format!("`{entry}`: expected id@host:port"))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|i| *i >= 0)
            .ok_or_else(|| format!("`{entry}`: bad node id"))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("`{entry}`: expected host:port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{entry}`: bad port"))?;
        if voters.iter().any(|(v, _)| *v == id) {
            return Err(format!("node id {id} appears twice"));
        }
        voters.push((
            id,
            Listener {
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            },
        ));
    }
    Ok(voters)
}

/// Resolves roles and listeners. `named` is `listeners` parsed into (name, address) pairs.
pub fn resolve(
    node_id: i32,
    voters_raw: &str,
    roles_raw: &str,
    named: &[(String, Listener)],
) -> Result<ClusterConfig, (&'static str, String)> {
    let voters = parse_voters(voters_raw).map_err(|e| ("controller.quorum.voters", e))?;
    let is_voter = voters.iter().any(|(id, _)| *id == node_id);
    let mut roles: Vec<&str> = roles_raw
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let (is_broker, is_controller) = match roles.as_slice() {
        [] => (true, is_voter),
        ["broker"] => (true, false),
        ["controller"] => (false, true),
        ["broker", "controller"] => (true, true),
        _ => {
            return Err((
                "process.roles",
                "must be broker, controller or broker,controller".into(),
            ));
        }
    };
    if voters.is_empty() {
        if !roles.is_empty() && roles != ["broker", "controller"] {
            return Err((
                "process.roles",
                "a single-node cluster (no controller.quorum.voters) is both broker and controller"
                    .into(),
            ));
        }
        return Ok(ClusterConfig {
            voters,
            is_controller: false,
            is_broker: true,
            controller_listener: None,
        });
    }
    if is_controller && !is_voter {
        return Err((
            "controller.quorum.voters",
            format!("node.id {node_id} is a controller but not among the voters"),
        ));
    }
    let controller_listener = named
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("CONTROLLER"))
        .map(|(_, l)| l.clone());
    if is_controller && controller_listener.is_none() {
        return Err((
            "listeners",
            "a controller needs a CONTROLLER://host:port entry".into(),
        ));
    }
    Ok(ClusterConfig {
        voters,
        is_controller,
        is_broker,
        controller_listener,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(host: &str, port: u16) -> Listener {
        Listener {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn voters_parse_the_kraft_way() {
        assert_eq!(
            parse_voters("1@a:9093, 2@b:9093,3@[::1]:9093").expect("ok"),
            vec![(1, l("a", 9093)), (2, l("b", 9093)), (3, l("::1", 9093))]
        );
        assert!(parse_voters("1@a:9093,1@b:9093").is_err());
        assert!(parse_voters("x@a:1").is_err());
        assert!(parse_voters("1@a").is_err());
        assert!(parse_voters("1@a:0").is_err());
        assert_eq!(parse_voters("").expect("empty"), vec![]);
    }

    #[test]
    fn roles_default_from_voters() {
        let named = vec![
            ("PLAINTEXT".to_string(), l("h", 9092)),
            ("CONTROLLER".to_string(), l("h", 9093)),
        ];
        let c = resolve(1, "1@h:9093,2@i:9093", "", &named).expect("voter");
        assert!(c.is_broker && c.is_controller);
        assert_eq!(c.controller_listener, Some(l("h", 9093)));
        let c = resolve(5, "1@h:9093,2@i:9093", "", &named).expect("non-voter");
        assert!(c.is_broker && !c.is_controller);
        assert!(resolve(5, "1@h:9093", "controller", &named).is_err());
        assert!(resolve(1, "1@h:9093", "broker,controller", &named[..1]).is_err());
        assert!(resolve(1, "", "", &named).expect("single").is_broker);
        assert!(!resolve(1, "", "", &named).expect("single").enabled());
        assert!(resolve(1, "1@h:9093", "bogus", &named).is_err());
    }
}
