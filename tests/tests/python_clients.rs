//! Python clients against a real broker: confluent-kafka (librdkafka) and kafka-python. The
//! scripts in `tests/python/` do the checking and exit non-zero with a message on failure.

use strata_tests::StrataNode;
use strata_tests::tools::run_python;

/// CreateTopics via AdminClient, 100,000 acks=all messages through each compression codec,
/// assign-based consume (each message exactly once, in order per partition), ListOffsets
/// earliest / latest / by timestamp, and an `enable.idempotence=True` producer (InitProducerId,
/// then 2,000 values with up to 5 batches in flight, read back once and in order).
#[test]
fn confluent_kafka_codecs_offsets_and_times() {
    let node = StrataNode::start();
    let out = run_python("confluent_codecs.py", &[&node.bootstrap()]);
    assert!(out.contains("OK"), "script output:\n{out}");
}

/// kafka-python: a topic created with `retention.ms=12345` shows it in DescribeConfigs, a
/// produce/consume round trip returns every message in order, and two default (idempotent)
/// producers get two producer ids (epoch 0) and produce in order.
#[test]
fn kafka_python_round_trip_and_describe_configs() {
    let node = StrataNode::start();
    let out = run_python("kafka_python_roundtrip.py", &[&node.bootstrap()]);
    assert!(out.contains("round trip"), "script output:\n{out}");
}
