//! Consumer groups on a three-node cluster: `__consumer_offsets` is created with replication
//! factor 3 by the controller, each group's coordinator is the leader of its partition, and a
//! coordinator that loses its broker moves to the new leader, which loads the partition by
//! replay.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use strata_tests::StrataCluster;
use strata_tests::tools::{ensure_python_clients, python_script, run_python};

/// confluent-kafka, range assignor: the three-members / join / leave scenario of
/// `consumer_groups.rs`, against three brokers.
#[test]
fn confluent_group_rebalances_on_three_nodes() {
    let cluster = StrataCluster::start(3);
    let out = run_python(
        "confluent_groups.py",
        &[&cluster.bootstrap(), "rebalance-range", "3"],
    );
    assert!(
        out.contains("OK"),
        "script output:\n{out}\n{}",
        cluster.log_tails(40)
    );
}

/// confluent-kafka: three members of a group consume and commit; the broker coordinating the
/// group (the leader of its `__consumer_offsets` partition) is killed with `kill -9`. The
/// partition's new leader loads the group by replay and the members go on from the committed
/// offsets: nothing skipped, no acknowledged commit lost, the final commits are the log ends.
#[test]
fn confluent_group_survives_coordinator_kill9() {
    run_failover(|cluster, coordinator| {
        cluster.kill9(coordinator);
        vec![coordinator]
    });
}

/// As above, but every broker is killed with `kill -9` and restarted: the acknowledged commits
/// were fsynced on every ISR member, so they all come back.
#[test]
fn confluent_group_survives_kill9_of_every_broker() {
    run_failover(|cluster, _| {
        for id in 1..=3 {
            cluster.kill9(id);
        }
        for id in 1..=3 {
            cluster.restart(id);
        }
        cluster.wait_ready();
        Vec::new()
    });
}

/// Runs the `failover` scenario of `confluent_groups.py` on three nodes: when the script names
/// the group's coordinator, `kill` acts on the cluster (returning the nodes it left down, which
/// are restarted at the end) and the script goes on.
fn run_failover(kill: impl FnOnce(&mut StrataCluster, i32) -> Vec<i32>) {
    ensure_python_clients();
    let mut cluster = StrataCluster::start(3);
    let script = python_script("confluent_groups.py");
    let stderr = tempfile::NamedTempFile::new().expect("temp file for the script's stderr");
    let mut child = Command::new("python3")
        .arg(&script)
        .args([&cluster.bootstrap(), "failover", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr.reopen().expect("reopen stderr file")))
        .spawn()
        .expect("spawn the failover script");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut lines = Vec::new();
    let mut kill = Some(kill);
    let mut down = Vec::new();
    for line in stdout.lines() {
        let line = line.expect("read the script's stdout");
        if let Some(id) = line.strip_prefix("COORDINATOR ") {
            let id: i32 = id.trim().parse().expect("a node id");
            if let Some(kill) = kill.take() {
                down = kill(&mut cluster, id);
            }
            writeln!(stdin, "KILLED").expect("tell the script");
            stdin.flush().expect("flush");
        }
        lines.push(line);
    }
    let status = child.wait().expect("wait for the script");
    let output = lines.join("\n");
    assert!(
        status.success() && output.contains("OK") && kill.is_none(),
        "failover script failed ({status})\n--- stdout ---\n{output}\n--- stderr tail ---\n{}\n{}",
        tail(
            &std::fs::read_to_string(stderr.path()).unwrap_or_default(),
            60
        ),
        cluster.log_tails(60)
    );
    println!("{output}");
    for id in down {
        cluster.restart(id);
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
