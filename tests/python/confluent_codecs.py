#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against strata: admin create, acks=all produce through every
compression codec, assign-based consume, ListOffsets and offsets_for_times, and an idempotent
producer.

Usage: confluent_codecs.py BOOTSTRAP. Exits non-zero with a message on the first failed check.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from checks import check, fail

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
TOTAL = 100_000
HOUR_MS = 3_600_000
STAMPED = 5  # messages per partition with explicit, far-apart timestamps


def main():
    bootstrap = sys.argv[1]
    topic = "ck-codecs"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    futures[topic].result(timeout=30)
    md = admin.list_topics(topic, timeout=30)
    check(len(md.topics[topic].partitions) == PARTITIONS,
          f"metadata shows {len(md.topics[topic].partitions)} partitions, want {PARTITIONS}")

    # by_partition[p] is the list of (value, timestamp or None) in produce order.
    by_partition = {p: [] for p in range(PARTITIONS)}
    errors = []
    acked = {}

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.value()!r}: {err}")
        else:
            acked[(msg.partition(), msg.offset())] = msg.value()

    # First, messages with explicit timestamps hours apart, two days ago (older than any
    # message produced later, younger than the default retention).
    base_ts = int(time.time() * 1000) - 48 * HOUR_MS
    p0 = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                   "enable.idempotence": False})
    for p in range(PARTITIONS):
        for k in range(STAMPED):
            value = f"stamped-{p}-{k}".encode()
            ts = base_ts + k * HOUR_MS
            p0.produce(topic, value=value, partition=p, timestamp=ts, on_delivery=on_delivery)
            p0.flush(30)  # one batch per message, so every timestamp has its own batch
            by_partition[p].append((value, ts))
    check(not errors, f"stamped produce errors: {errors[:5]}")

    per_codec = TOTAL // len(CODECS)
    n = 0
    for codec in CODECS:
        prod = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": codec,
                         "linger.ms": 5, "enable.idempotence": False,
                         "max.in.flight.requests.per.connection": 1})
        for i in range(per_codec):
            p = n % PARTITIONS
            value = f"{codec}-{i}-{'v' * (i % 40)}".encode()
            while True:
                try:
                    prod.produce(topic, key=str(n).encode(), value=value, partition=p,
                                 on_delivery=on_delivery)
                    break
                except BufferError:
                    prod.poll(0.1)
            by_partition[p].append((value, None))
            n += 1
        remaining = prod.flush(60)
        check(remaining == 0, f"{codec}: {remaining} messages not delivered after flush")
        check(not errors, f"{codec}: delivery errors: {errors[:5]}")
        print(f"produced {per_codec} messages with compression {codec}")

    total = sum(len(v) for v in by_partition.values())
    check(len(acked) == total, f"{len(acked)} acknowledged, {total} produced")
    for p in range(PARTITIONS):
        offsets = sorted(o for (q, o) in acked if q == p)
        check(offsets == list(range(len(by_partition[p]))),
              f"partition {p}: acknowledged offsets are not 0..{len(by_partition[p]) - 1}")

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck-codecs-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.max.bytes": 8 * 1024 * 1024})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    deadline = time.time() + 120
    count = 0
    while count < total and time.time() < deadline:
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consume error: {msg.error()}")
            got[msg.partition()].append((msg.offset(), msg.value(), msg.timestamp()))
            count += 1
    check(count == total, f"consumed {count} of {total} messages")
    for p in range(PARTITIONS):
        offsets = [o for (o, _, _) in got[p]]
        check(offsets == list(range(len(by_partition[p]))),
              f"partition {p}: consumed offsets not 0..n-1 in order (first {offsets[:10]})")
        for (o, value, (ts_type, ts)) in got[p]:
            want_value, want_ts = by_partition[p][o]
            check(value == want_value, f"partition {p} offset {o}: {value!r} != {want_value!r}")
            check(acked[(p, o)] == value, f"partition {p} offset {o}: acked {acked[(p, o)]!r}")
            if want_ts is not None:
                check(ts == want_ts, f"partition {p} offset {o}: timestamp {ts} != {want_ts}")
    print(f"consumed {count} messages, every one exactly once and in order")

    # ListOffsets: earliest and latest.
    for p in range(PARTITIONS):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        check(low == 0, f"partition {p}: earliest offset {low}, want 0")
        check(high == len(by_partition[p]), f"partition {p}: latest offset {high}, want {len(by_partition[p])}")

    # ListOffsets by timestamp: the first offset whose timestamp is >= the one asked for.
    for p in range(PARTITIONS):
        queries = []
        for k in range(STAMPED):
            queries.append((base_ts + k * HOUR_MS, k))        # exactly a stamped message
            queries.append((base_ts + k * HOUR_MS - 1, k))    # just before it
        queries.append((base_ts + (STAMPED - 1) * HOUR_MS + 1, STAMPED))  # first unstamped one
        queries.append((int(time.time() * 1000) + 24 * HOUR_MS, -1))  # in the future: none
        # One query per call: a request naming the same partition twice is invalid in Kafka,
        # and librdkafka collapses duplicates.
        for ts, want in queries:
            [tp] = consumer.offsets_for_times([TopicPartition(topic, p, ts)], timeout=10)
            check(tp.error is None, f"partition {p}: offsets_for_times({ts}) error {tp.error}")
            check(tp.offset == want, f"partition {p}: offsets_for_times({ts}) = {tp.offset}, want {want}")
    print("ListOffsets earliest/latest/by-time agree with what was produced")
    consumer.close()
    idempotent_round_trip(bootstrap, admin)
    print("OK")


def idempotent_round_trip(bootstrap, admin):
    """enable.idempotence=True: librdkafka gets a producer id (InitProducerId) before it sends
    anything and fails fatally if it cannot, so acknowledged deliveries show it got one. Up to 5
    batches in flight per partition; every value is read back once, in order."""
    topic = "ck-idempotent"
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    fatal = []
    prod = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 2,
                     "batch.num.messages": 50, "max.in.flight.requests.per.connection": 5,
                     "error_cb": lambda err: fatal.append(str(err)) if err.fatal() else None})
    sent = {0: [], 1: []}
    acked = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.value()!r}: {err}")
        else:
            acked[msg.value()] = (msg.partition(), msg.offset())

    for i in range(2_000):
        p = i % 2
        value = f"idem-{i}".encode()
        while True:
            try:
                prod.produce(topic, value=value, partition=p, on_delivery=on_delivery)
                break
            except BufferError:
                prod.poll(0.1)
        sent[p].append(value)
    remaining = prod.flush(60)
    check(not fatal, f"idempotent producer: fatal error {fatal[:1]}")
    check(remaining == 0 and not errors,
          f"idempotent producer: {remaining} not delivered, errors {errors[:5]}")
    for p in (0, 1):
        offsets = [acked[v] for v in sent[p]]
        check(offsets == [(p, o) for o in range(len(sent[p]))],
              f"idempotent producer: partition {p} acknowledged offsets {offsets[:5]}..., "
              f"want 0..{len(sent[p]) - 1} in produce order")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck-idempotent-reader",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
    got = {0: [], 1: []}
    deadline = time.time() + 60
    while len(got[0]) + len(got[1]) < 2_000 and time.time() < deadline:
        for msg in consumer.consume(num_messages=1_000, timeout=1.0):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consume error: {msg.error()}")
            got[msg.partition()].append(msg.value())
    consumer.close()
    for p in (0, 1):
        check(got[p] == sent[p], f"idempotent producer: partition {p} read back {len(got[p])} "
                                 f"of {len(sent[p])} values, or out of order")
    print("idempotent producer: 2000 messages acknowledged and read back once, in order")


if __name__ == "__main__":
    main()
