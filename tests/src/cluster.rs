//! Several real `strata` processes forming one cluster on localhost: each node is a broker and a
//! voter of the controller quorum (KRaft's combined mode, README "A local cluster").
//!
//! Nodes are addressed by their node id, `1..=n`, the id Metadata reports for the broker. Node
//! `id` gets a PLAINTEXT (Kafka) port and a CONTROLLER port, all `2n` chosen free up front
//! because `controller.quorum.voters` names every controller port before any node starts. Each
//! node has its own temporary directory and log, like a single [`StrataNode`]; when a test
//! panics, the cluster prints the command that reruns it and every node prints its log tail.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::binary::{strata_bin, workspace_root};
use crate::node::StrataNode;
use crate::tools::ensure_kcat;

/// How long [`StrataCluster::wait_ready`] waits for every broker to be listed in Metadata.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of each node's log in a [`StrataCluster::wait_ready`] timeout message.
const PANIC_TAIL_LINES: usize = 40;

/// Settings every member gets, chosen so failures are detected and handled in seconds rather
/// than Kafka's production defaults (18 s session timeout, 30 s replica lag).
const FAST_SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.lag.time.max.ms", "5000"),
    ("min.insync.replicas", "2"),
    ("controller.quorum.election.timeout.ms", "1000"),
];

/// One member's ports.
#[derive(Clone, Copy, Debug)]
pub struct MemberPorts {
    /// Kafka clients connect here.
    pub kafka: u16,
    /// The controller quorum (Raft) talks here.
    pub controller: u16,
}

pub struct StrataCluster {
    /// `nodes[id - 1]` is node `id`.
    nodes: Vec<StrataNode>,
    ports: Vec<MemberPorts>,
}

impl StrataCluster {
    /// Starts `n` nodes with [`FAST_SETTINGS`] and waits until Metadata lists all of them.
    pub fn start(n: usize) -> StrataCluster {
        StrataCluster::start_with(n, &[])
    }

    /// Like [`StrataCluster::start`], with `--set name=value` for each of `extra` on every node
    /// (after the fast settings, so they can override them).
    pub fn start_with(n: usize, extra: &[(&str, &str)]) -> StrataCluster {
        StrataCluster::start_with_env(n, extra, &[])
    }

    /// Like [`StrataCluster::start_with`], with environment variables (e.g. `RUST_LOG`) for
    /// every node's process.
    pub fn start_with_env(n: usize, extra: &[(&str, &str)], env: &[(&str, &str)]) -> StrataCluster {
        assert!(n >= 1, "a cluster needs a node");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ports = free_ports(n);
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{}", i + 1, p.controller))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::with_capacity(n);
        for (i, p) in ports.iter().enumerate() {
            let mut settings: Vec<(String, String)> = vec![
                ("node.id".into(), (i + 1).to_string()),
                ("controller.quorum.voters".into(), voters.clone()),
                (
                    "listeners".into(),
                    format!(
                        "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                        p.kafka, p.controller
                    ),
                ),
            ];
            settings.extend(
                FAST_SETTINGS
                    .iter()
                    .chain(extra)
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            nodes.push(StrataNode::launch_with_env(p.kafka, &settings, &env));
        }
        let mut cluster = StrataCluster { nodes, ports };
        for node in &mut cluster.nodes {
            node.wait_until_listening();
        }
        cluster.wait_ready();
        cluster
    }

    /// Every node's PLAINTEXT address, comma-joined: a bootstrap list that works while any one
    /// node is up.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(StrataNode::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many nodes the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `id` (1-based, as Metadata names brokers).
    pub fn node(&self, id: i32) -> &StrataNode {
        &self.nodes[index(id, self.nodes.len())]
    }

    /// Node `id`'s ports.
    pub fn ports(&self, id: i32) -> MemberPorts {
        self.ports[index(id, self.nodes.len())]
    }

    /// `kill -9` node `id`: no flush, no goodbye to the quorum.
    pub fn kill9(&mut self, id: i32) {
        let i = index(id, self.nodes.len());
        self.nodes[i].kill9();
    }

    /// `SIGSTOP` node `id`: the process keeps its sockets and state but does nothing (no
    /// fetches, no heartbeats, no responses) until [`StrataCluster::resume`]. Peers see a node
    /// that is alive but silent, unlike after [`StrataCluster::kill9`].
    pub fn pause(&mut self, id: i32) {
        signal_node(&self.nodes[index(id, self.nodes.len())], id, libc::SIGSTOP);
    }

    /// `SIGCONT` node `id` after [`StrataCluster::pause`].
    pub fn resume(&mut self, id: i32) {
        signal_node(&self.nodes[index(id, self.nodes.len())], id, libc::SIGCONT);
    }

    /// Starts node `id` again on its data directory and ports, and waits until its Kafka port
    /// accepts connections. Call [`StrataCluster::wait_ready`] to wait until it is registered
    /// again.
    pub fn restart(&mut self, id: i32) {
        let i = index(id, self.nodes.len());
        self.nodes[i].relaunch();
        self.nodes[i].wait_until_listening();
    }

    /// Waits (at most [`READY_TIMEOUT`]) until Metadata, asked through the whole bootstrap
    /// list with `kcat -L`, lists exactly the brokers `1..=n`. Panics with the last answer and
    /// each node's log tail otherwise.
    pub fn wait_ready(&mut self) {
        ensure_kcat();
        let want: BTreeSet<i32> = (1..=self.nodes.len() as i32).collect();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = Command::new("kcat")
                .args(["-b", &self.bootstrap(), "-L", "-m", "3"])
                .output()
                .expect("run kcat -L");
            let last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && listed_brokers(&String::from_utf8_lossy(&out.stdout)) == want
            {
                return;
            }
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if node.pid().is_some() && !node.is_running() {
                    panic!(
                        "node {} exited while waiting for the cluster\n{}",
                        i + 1,
                        self.log_tails(PANIC_TAIL_LINES)
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "Metadata did not list brokers {want:?} within {READY_TIMEOUT:?}; last kcat -L:\n{last}\n{}",
                    self.log_tails(PANIC_TAIL_LINES)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The last `lines` lines of every node's log, each under a header naming the node.
    pub fn log_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "--- node {} ({}), last {lines} lines ---\n{}\n",
                    i + 1,
                    n.log_path().display(),
                    n.log_tail(lines)
                )
            })
            .collect()
    }
}

impl Drop for StrataCluster {
    /// On a failed test: how to rerun it and what was running. The nodes, dropped right after,
    /// print their log tails.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!("--- cluster of {} nodes ---", self.nodes.len());
        for (i, (n, p)) in self.nodes.iter().zip(&self.ports).enumerate() {
            eprintln!(
                "node {}: kafka 127.0.0.1:{}, controller 127.0.0.1:{}, log {}",
                i + 1,
                p.kafka,
                p.controller,
                n.log_path().display()
            );
        }
        eprintln!("{}", reproduction_hint());
    }
}

/// The command that reruns the current test, with the revision and binary it ran against.
pub fn reproduction_hint() -> String {
    let test = std::thread::current()
        .name()
        .unwrap_or("<test name>")
        .to_string();
    // Test binaries are `target/<profile>/deps/<test file>-<hash>`.
    let file = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .and_then(|f| f.rsplit_once('-').map(|(name, _)| name.to_string()))
        .unwrap_or_else(|| "<test file>".to_string());
    let revision = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    format!(
        "reproduce (revision {revision}, binary {}):\n  STRATA_BIN={} cargo test --release -p strata-tests --test {file} -- {test} --exact --nocapture",
        strata_bin().display(),
        strata_bin().display(),
    )
}

/// Broker ids in `kcat -L` output (`  broker 2 at 127.0.0.1:29092 (controller)`).
fn listed_brokers(kcat_l: &str) -> BTreeSet<i32> {
    kcat_l
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("broker "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// `2n` distinct free ports: all bound at once (so none repeats), then released.
fn free_ports(n: usize) -> Vec<MemberPorts> {
    let listeners: Vec<TcpListener> = (0..2 * n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect();
    drop(listeners);
    ports
        .chunks(2)
        .map(|c| MemberPorts {
            kafka: c[0],
            controller: c[1],
        })
        .collect()
}

/// Sends `sig` to node `id`'s process, which must be running.
#[allow(unsafe_code)]
fn signal_node(node: &StrataNode, id: i32, sig: libc::c_int) {
    let pid = node
        .pid()
        .unwrap_or_else(|| panic!("node {id} is not running"));
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: `kill(2)` takes plain integers and touches no memory of ours. The pid is a child
    // the node still holds (not reaped), so it cannot have been reused.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) for node {id} failed");
}

fn index(id: i32, n: usize) -> usize {
    assert!(id >= 1 && id as usize <= n, "node id {id} outside 1..={n}");
    (id - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kcat_broker_lines_parse() {
        let out = "Metadata for all topics (from broker 1: 127.0.0.1:1/1):\n 3 brokers:\n  broker 1 at 127.0.0.1:1 (controller)\n  broker 2 at 127.0.0.1:2\n  broker 3 at 127.0.0.1:3\n 0 topics:\n";
        assert_eq!(listed_brokers(out), BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(3);
        let all: BTreeSet<u16> = ports.iter().flat_map(|p| [p.kafka, p.controller]).collect();
        assert_eq!(all.len(), 6);
    }
}
