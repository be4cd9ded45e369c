#!/usr/bin/env python3
"""kafka-python against strata: admin create with a topic config, describe_configs, and a
produce/consume round trip.

Usage: kafka_python_roundtrip.py BOOTSTRAP. Exits non-zero with a message on the first failed
check.
"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from checks import check, fail

COUNT = 5_000


def config_value(entry):
    """describe_configs entries are dicts in kafka-python 2.1+ and tuples before."""
    if isinstance(entry, dict):
        for key in ("value", "config_value"):
            if key in entry:
                return entry[key]
    if isinstance(entry, (tuple, list)) and len(entry) > 1:
        return entry[1]
    return entry


def find_retention(result, topic):
    """Finds retention.ms for `topic` in whatever shape describe_configs returned."""
    if isinstance(result, dict):
        for rtype in result.values():
            if isinstance(rtype, dict) and topic in rtype:
                configs = rtype[topic]
                if isinstance(configs, dict) and "retention.ms" in configs:
                    return config_value(configs["retention.ms"])
    # Older shape: a list of DescribeConfigsResponse objects.
    for resp in result if isinstance(result, list) else []:
        for res in getattr(resp, "resources", []):
            # (error_code, error_message, resource_type, resource_name, config_entries)
            if res[3] == topic:
                for entry in res[4]:
                    if entry[0] == "retention.ms":
                        return entry[1]
    return None


def main():
    bootstrap = sys.argv[1]
    topic = "kp-round-trip"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kp-admin")
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                  topic_configs={"retention.ms": "12345"})])
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                    config_filter="all")
    retention = find_retention(result, topic)
    check(retention == "12345", f"describe_configs retention.ms = {retention!r}, want '12345' "
                                f"(full result: {result!r})"[:2000])
    print("describe_configs shows retention.ms=12345")

    # Idempotence off: the broker does not offer InitProducerId yet (idempotent producers are
    # their own issue).
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             enable_idempotence=False)
    sent = {0: [], 1: []}
    futures = []
    for i in range(COUNT):
        p = i % 2
        value = f"kp-{i}".encode()
        futures.append((p, value, producer.send(topic, key=str(i).encode(), value=value, partition=p)))
        sent[p].append(value)
    producer.flush(timeout=60)
    for p, value, fut in futures:
        md = fut.get(timeout=30)
        check(md.partition == p, f"{value!r} acknowledged on partition {md.partition}, want {p}")
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=10_000)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {0: [], 1: []}
    deadline = time.time() + 60
    while sum(len(v) for v in got.values()) < COUNT and time.time() < deadline:
        batches = consumer.poll(timeout_ms=1000, max_records=5000)
        for tp, records in batches.items():
            for r in records:
                check(r.offset == len(got[tp.partition]),
                      f"partition {tp.partition}: offset {r.offset}, want {len(got[tp.partition])}")
                got[tp.partition].append(r.value)
    for p in (0, 1):
        check(got[p] == sent[p], f"partition {p}: consumed {len(got[p])} values, produced "
                                 f"{len(sent[p])}; first mismatch at "
                                 f"{next((i for i, (a, b) in enumerate(zip(got[p], sent[p])) if a != b), None)}")
    end = consumer.end_offsets(tps)
    for tp in tps:
        check(end[tp] == len(sent[tp.partition]), f"end offset of {tp}: {end[tp]}")
    print(f"round trip of {COUNT} messages OK")

    consumer.close()
    # kafka-python 2.1+ producers are idempotent by default and need InitProducerId, which comes
    # with idempotent-producer support (issue 5); that check moves there.


if __name__ == "__main__":
    main()
