//! Consumer groups (issue 12) with third-party clients against a real single broker: the
//! scripts in `tests/python/` run the group members and do the checking (see their docs);
//! kcat's balanced consumer (`-G`) is checked here.

use strata_tests::StrataNode;
use strata_tests::tools::{run_kcat, run_node, run_python};

/// Runs `script SCENARIO` with `run` (Python or node) against a fresh broker; the script
/// checks and prints OK.
fn on_fresh_broker(run: fn(&str, &[&str]) -> String, script: &str, scenario: &str) {
    let node = StrataNode::start();
    let out = run(script, &[&node.bootstrap(), scenario]);
    assert!(out.contains("OK"), "{script} {scenario} output:\n{out}");
}

fn confluent(scenario: &str) {
    on_fresh_broker(run_python, "confluent_groups.py", scenario);
}

fn kafka_python(scenario: &str) {
    on_fresh_broker(run_python, "kafka_python_groups.py", scenario);
}

fn aiokafka(scenario: &str) {
    on_fresh_broker(run_python, "aiokafka_groups.py", scenario);
}

fn kafkajs(scenario: &str) {
    on_fresh_broker(run_node, "kafkajs_groups.js", scenario);
}

/// confluent-kafka, range assignor: three members on six partitions own each partition once
/// and consume every message once; a fourth joins, the first leaves: the group rebalances and
/// resumes from the committed offsets, nothing skipped; the final commits are the log ends.
#[test]
fn confluent_range_three_members_then_join_and_leave() {
    confluent("rebalance-range");
}

/// As above with the roundrobin assignor.
#[test]
fn confluent_roundrobin_three_members_then_join_and_leave() {
    confluent("rebalance-roundrobin");
}

/// As above with cooperative-sticky (KIP-429: incremental rebalances on JoinGroup/SyncGroup).
#[test]
fn confluent_cooperative_sticky_three_members_then_join_and_leave() {
    confluent("rebalance-cooperative-sticky");
}

/// confluent-kafka: commit, close, and a new consumer of the group resumes at the commit.
#[test]
fn confluent_resumes_at_committed_offset() {
    confluent("restart");
}

/// confluent-kafka, KIP-345: a static member (group.instance.id) closes and comes back into
/// its partitions without the other member being rebalanced.
#[test]
fn confluent_static_member_restart_without_rebalance() {
    confluent("static");
}

/// confluent-kafka: two groups on one topic each consume every message.
#[test]
fn confluent_two_groups_each_get_every_message() {
    confluent("two-groups");
}

/// kafka-python (flexible group API versions): three members, a fourth joins, one leaves.
#[test]
fn kafka_python_three_members_then_join_and_leave() {
    kafka_python("rebalance");
}

/// kafka-python: commit, close, and a new consumer resumes at the commit.
#[test]
fn kafka_python_resumes_at_committed_offset() {
    kafka_python("restart");
}

/// kafka-python: two groups on one topic each consume every message.
#[test]
fn kafka_python_two_groups_each_get_every_message() {
    kafka_python("two-groups");
}

/// aiokafka (non-flexible group API versions): three members, a fourth joins, one leaves.
#[test]
fn aiokafka_three_members_then_join_and_leave() {
    aiokafka("rebalance");
}

/// aiokafka: commit, close, and a new consumer resumes at the commit.
#[test]
fn aiokafka_resumes_at_committed_offset() {
    aiokafka("restart");
}

/// aiokafka: two groups on one topic each consume every message.
#[test]
fn aiokafka_two_groups_each_get_every_message() {
    aiokafka("two-groups");
}

/// KafkaJS (npm; its consumer is group-only): three members, a fourth joins, one leaves.
#[test]
fn kafkajs_three_members_then_join_and_leave() {
    kafkajs("rebalance");
}

/// KafkaJS: commit, close, and a new consumer resumes at the commit.
#[test]
fn kafkajs_resumes_at_committed_offset() {
    kafkajs("restart");
}

/// KafkaJS: two groups on one topic each consume every message.
#[test]
fn kafkajs_two_groups_each_get_every_message() {
    kafkajs("two-groups");
}

/// `kcat -G`: a balanced consumer reads every message and commits on exit; the next run of
/// the same group reads only what was produced since. The broker is killed (`kill -9`) and
/// restarted in between: the acknowledged commits come back by replaying `__consumer_offsets`.
#[test]
fn kcat_balanced_consumer_commits_and_resumes() {
    let mut node = StrataNode::start();
    let b = node.bootstrap();
    let topic = "kcat-group";
    let produce = |from: usize, to: usize| {
        let input: String = (from..to).map(|i| format!("k{i}:v{i}\n")).collect();
        run_kcat(
            &["-b", &b, "-P", "-K:", "-t", topic, "-X", "acks=all"],
            input.as_bytes(),
        );
    };
    let consume = || {
        run_kcat(
            &[
                "-b",
                &b,
                "-G",
                "kcat-g",
                "-X",
                "auto.offset.reset=earliest",
                "-e",
                "-q",
                "-f",
                "%s\n",
                topic,
            ],
            b"",
        )
    };
    produce(0, 50);
    let first: Vec<String> = consume().lines().map(str::to_string).collect();
    let want: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    assert_eq!(first, want, "first kcat -G run");
    node.kill9();
    node.restart();
    produce(50, 60);
    let second: Vec<String> = consume().lines().map(str::to_string).collect();
    let want: Vec<String> = (50..60).map(|i| format!("v{i}")).collect();
    assert_eq!(second, want, "second kcat -G run (after a broker restart)");
}
