#!/usr/bin/env python3
"""kafka-python against strata: admin create with a topic config, describe_configs, a
produce/consume round trip, and the default (idempotent) producer.

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

    # Idempotence off here so the round trip does not depend on InitProducerId; the default
    # (idempotent) producer is checked at the end.
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

    # kafka-python 2.1+ producers are idempotent by default: InitProducerId, then batches with
    # producer id and sequence numbers. Two of them get two different producer ids.
    ids = []
    for round_ in range(2):
        base = len(sent[0])
        idem = KafkaProducer(bootstrap_servers=bootstrap)
        check(idem.config["enable_idempotence"],
              "kafka-python turned idempotence off (it does so for brokers it takes to be < 0.11)")
        values = [f"idem-{round_}-{i}".encode() for i in range(100)]
        futs = [idem.send(topic, value=v, partition=0) for v in values]
        idem.flush(timeout=60)
        offsets = [f.get(timeout=30).offset for f in futs]
        check(offsets == list(range(base, base + 100)),
              f"idempotent producer offsets {offsets[:5]}..., want from {base}")
        pid = idem._transaction_manager.producer_id_and_epoch
        check(pid.producer_id >= 0 and pid.epoch == 0,
              f"idempotent producer holds producer id {pid.producer_id}, epoch {pid.epoch}")
        ids.append(pid.producer_id)
        idem.close()
        sent[0].extend(values)
        consumer.seek(tps[0], base)
        got_idem = []
        deadline = time.time() + 30
        while len(got_idem) < 100 and time.time() < deadline:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                got_idem.extend(r.value for r in records if tp.partition == 0)
        check(got_idem == values, f"idempotent producer: read back {len(got_idem)} of 100")
    check(ids[0] != ids[1], f"two producers got the same producer id {ids[0]}")
    consumer.close()
    print(f"default (idempotent) producer OK (producer ids {ids[0]}, {ids[1]})")


if __name__ == "__main__":
    main()
