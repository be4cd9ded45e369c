//! Topic configs changed by a real client (issue #16): confluent-kafka's AdminClient creates a
//! topic with `cleanup.policy=compact` (its producer's keyless records are refused with
//! INVALID_RECORD, keyed ones accepted), describes it, changes `cleanup.policy`,
//! `delete.retention.ms` and `retention.ms` with IncrementalAlterConfigs (KIP-339), describes
//! again, deletes an override, sees a bad value and a broker resource refused, and replaces the
//! whole set with the legacy AlterConfigs — on a single node (the broker decides) and on a
//! three-node cluster (the controller decides, every broker replays the change, and a leader
//! refuses acks=all once `min.insync.replicas` was raised above the replication factor).
//!
//! The checking is done by the Python script below, which exits non-zero with a message.

use std::process::Command;

use strata_tests::tools::ensure_python_clients;
use strata_tests::{StrataCluster, StrataNode};

const SCRIPT: &str = r#"
import sys, time
from confluent_kafka import KafkaException, KafkaError
from confluent_kafka.admin import (AdminClient, NewTopic, ConfigResource, ConfigEntry,
                                   AlterConfigOpType, ResourceType)

bootstrap, topic, rf = sys.argv[1], sys.argv[2], int(sys.argv[3])
admin = AdminClient({"bootstrap.servers": bootstrap})
DYNAMIC_TOPIC, DEFAULT = 1, 5
resource = ConfigResource(ResourceType.TOPIC, topic)

def only(futures):
    return list(futures.values())[0].result(timeout=30)

def eventually(what, check, timeout=20):
    # A cluster's brokers replay a change one after the other; the one asked may lag.
    deadline = time.time() + timeout
    while True:
        try:
            return check()
        except (AssertionError, KafkaException) as e:
            if time.time() > deadline:
                raise AssertionError(f"{what}: {e}")
            time.sleep(0.2)

def expect(configs):
    def check():
        got = only(admin.describe_configs([resource]))
        for name, (value, source) in configs.items():
            entry = got[name]
            assert (entry.value, int(entry.source)) == (value, source), \
                f"{name}: {entry.value!r} from {entry.source}, want {value!r} from {source}"
    return check

def incremental(*changes, target=None, validate_only=False):
    entries = [ConfigEntry(n, v, incremental_operation=op) for n, op, v in changes]
    restype, name = target or (ResourceType.TOPIC, topic)
    r = ConfigResource(restype, name, incremental_configs=entries)
    return only(admin.incremental_alter_configs([r], validate_only=validate_only))

def refused(code, *changes, target=None):
    try:
        incremental(*changes, target=target)
    except KafkaException as e:
        err = e.args[0]
        assert err.code() == code, f"{changes}: {err} (want code {code})"
        return err.str()
    raise AssertionError(f"{changes} was accepted")

def produce_error(key=b"k"):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0,
                  "enable.idempotence": False, "message.timeout.ms": 10000})
    errors = []
    p.produce(topic, key=key, value=b"v", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1, "no delivery report"
    return errors[0]

def produced():
    err = produce_error()
    assert err is None, err

only(admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=rf,
                                   config={"cleanup.policy": "compact"})]))
eventually("created", expect({
    "cleanup.policy": ("compact", DYNAMIC_TOPIC),
    "delete.retention.ms": ("86400000", DEFAULT),
    "min.cleanable.dirty.ratio": ("0.5", DEFAULT),
    "min.compaction.lag.ms": ("0", DEFAULT),
    "max.compaction.lag.ms": ("9223372036854775807", DEFAULT),
    "retention.ms": ("604800000", DEFAULT),
}))

# A compacted topic needs a key on every record (INVALID_RECORD, as Kafka).
def keyless_refused():
    err = produce_error(key=None)
    assert err is not None and err.code() == KafkaError.INVALID_RECORD, err
eventually("a keyless record is refused", keyless_refused)
eventually("a keyed record is accepted", produced)

SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE
APPEND, SUBTRACT = AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT

# validate_only changes nothing.
incremental(("retention.ms", SET, "1"), validate_only=True)
incremental(("cleanup.policy", APPEND, "delete"),
            ("delete.retention.ms", SET, "1000"),
            ("retention.ms", SET, "60000"))
eventually("altered", expect({
    "cleanup.policy": ("compact,delete", DYNAMIC_TOPIC),
    "delete.retention.ms": ("1000", DYNAMIC_TOPIC),
    "retention.ms": ("60000", DYNAMIC_TOPIC),
}))

incremental(("retention.ms", DELETE, None), ("cleanup.policy", SUBTRACT, "delete"))
eventually("override deleted", expect({
    "cleanup.policy": ("compact", DYNAMIC_TOPIC),
    "delete.retention.ms": ("1000", DYNAMIC_TOPIC),
    "retention.ms": ("604800000", DEFAULT),
}))

INVALID_CONFIG = KafkaError.INVALID_CONFIG
msg = refused(INVALID_CONFIG, ("min.cleanable.dirty.ratio", SET, "2"))
assert "min.cleanable.dirty.ratio" in msg, msg
msg = refused(INVALID_CONFIG, ("cleanup.policy", SET, "shred"))
assert "cleanup.policy" in msg, msg
msg = refused(INVALID_CONFIG, ("no.such.config", SET, "1"))
assert "no.such.config" in msg, msg
refused(INVALID_CONFIG, ("min.compaction.lag.ms", SET, "10"),
        ("max.compaction.lag.ms", SET, "5"))
msg = refused(KafkaError.INVALID_REQUEST, ("log.retention.ms", SET, "1"),
              target=(ResourceType.BROKER, "1"))
assert "static" in msg, msg
eventually("refusals changed nothing", expect({
    "cleanup.policy": ("compact", DYNAMIC_TOPIC),
    "min.cleanable.dirty.ratio": ("0.5", DEFAULT),
    "min.compaction.lag.ms": ("0", DEFAULT),
}))

if rf == 3:
    # Every leader takes a changed min.insync.replicas at once (no ISR change needed): four
    # in-sync replicas cannot be had with three, then two can.
    incremental(("min.insync.replicas", SET, "4"))
    def refused_produce():
        err = produce_error()
        assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, err
    eventually("min.insync.replicas=4 refuses acks=all", refused_produce)
    incremental(("min.insync.replicas", DELETE, None))
    eventually("min.insync.replicas back to 2 accepts acks=all", produced)

# The legacy AlterConfigs replaces the whole override set.
only(admin.alter_configs([ConfigResource(ResourceType.TOPIC, topic,
                                         set_config={"retention.ms": "5000"})]))
eventually("replaced", expect({
    "cleanup.policy": ("delete", DEFAULT),
    "delete.retention.ms": ("86400000", DEFAULT),
    "retention.ms": ("5000", DYNAMIC_TOPIC),
}))
# No longer compacted: keyless records are fine.
def keyless_accepted():
    err = produce_error(key=None)
    assert err is None, err
eventually("a keyless record is accepted once the topic stops compacting", keyless_accepted)
print("OK")
"#;

fn run(bootstrap: &str, topic: &str, replication_factor: &str) -> String {
    ensure_python_clients();
    let out = Command::new("python3")
        .args(["-c", SCRIPT, bootstrap, topic, replication_factor])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the confluent-kafka script failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn confluent_kafka_alters_topic_configs_on_a_single_node() {
    let node = StrataNode::start();
    let out = run(&node.bootstrap(), "compacted", "1");
    assert!(
        out.contains("OK"),
        "script output:\n{out}\n{}",
        node.log_tail(40)
    );
}

#[test]
fn confluent_kafka_alters_topic_configs_through_the_controller() {
    let cluster = StrataCluster::start(3);
    let out = run(&cluster.bootstrap(), "compacted", "3");
    assert!(
        out.contains("OK"),
        "script output:\n{out}\n{}",
        cluster.log_tails(40)
    );
}
