#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a three-node strata cluster, in phases that the Rust test
`tests/tests/cluster.rs` runs one after another (it owns the broker processes, so it does the
killing between and during them).

Usage:
  cluster_failover.py create   BOOTSTRAP TOPIC
      Creates TOPIC (6 partitions, replication factor 3, min.insync.replicas=2), waits until
      every partition has a leader and three replicas, prints the layout (see `describe`).
  cluster_failover.py describe BOOTSTRAP TOPIC
      Prints the layout: `BROKER id host:port` per broker, then
      `PARTITION p leader replicas isrs` per partition (lists comma-separated).
  cluster_failover.py produce  BOOTSTRAP TOPIC COUNT [SECONDS]
      Produces the values 0..COUNT-1 (decimal strings, no key) to partition 0 with acks=all,
      no idempotence and retries. The first half is produced and flushed, then the script
      prints `HALFWAY` (the test kills partition 0's leader on that line) and produces the
      second half paced over SECONDS (default 10) seconds, so the failover happens mid-stream.
      Then prints `ACK value offset` per acknowledged value, `FAILED value error` per value
      whose delivery failed, and `DONE acked=N failed=M`.
  cluster_failover.py consume  BOOTSTRAP TOPIC
      Reads partition 0 from the log start to the high watermark with an assign()ed consumer
      (no subscription, no commits); prints `WATERMARKS low high`, then `READ offset value` per
      record in the order read.

Exits non-zero with a `FAIL:` line on stderr when a phase cannot do its job; the checking of
what was read against what was acknowledged is done by the Rust test.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from checks import check, fail

PARTITIONS = 6
REPLICATION = 3
MIN_INSYNC = "2"
TARGET_PARTITION = 0
LAYOUT_TIMEOUT_S = 60


def describe(bootstrap, topic, wait_for_complete):
    """Prints the layout; with wait_for_complete, first waits until every partition has a leader
    and REPLICATION replicas."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + LAYOUT_TIMEOUT_S
    last = "no metadata"
    while True:
        try:
            md = admin.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                last = f"topic {topic}: {t.error if t else 'absent'}"
            elif not wait_for_complete:
                break
            elif len(t.partitions) != PARTITIONS:
                last = f"{len(t.partitions)} partitions"
            else:
                incomplete = [p for p in t.partitions.values()
                              if p.leader < 0 or len(p.replicas) != REPLICATION]
                if not incomplete:
                    break
                last = "incomplete partitions: " + ", ".join(
                    f"{p.id} (leader {p.leader}, replicas {p.replicas})" for p in incomplete)
        except KafkaException as e:
            last = str(e)
        if time.time() > deadline:
            fail(f"no complete layout for {topic} after {LAYOUT_TIMEOUT_S} s: {last}")
        time.sleep(0.5)
    for b in sorted(md.brokers.values(), key=lambda b: b.id):
        print(f"BROKER {b.id} {b.host}:{b.port}")
    for p in sorted(t.partitions.values(), key=lambda p: p.id):
        replicas = ",".join(str(r) for r in p.replicas)
        isrs = ",".join(str(r) for r in p.isrs)
        print(f"PARTITION {p.id} {p.leader} {replicas} {isrs}")


def elect(bootstrap, topic):
    """Waits until partition 0's preferred replica (its first) is back in the ISR, then asks for a
    preferred election (ElectLeaders, KIP-460) and prints the result and the layout."""
    from confluent_kafka import ElectionType, TopicPartition
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + LAYOUT_TIMEOUT_S
    while True:
        p0 = admin.list_topics(topic, timeout=10).topics[topic].partitions[0]
        if p0.replicas and p0.replicas[0] in p0.isrs:
            break
        if time.time() > deadline:
            fail(f"preferred replica {p0.replicas[:1]} not back in the ISR {p0.isrs}")
        time.sleep(0.5)
    preferred = p0.replicas[0]
    if p0.leader != preferred:
        try:
            result = admin.elect_leaders(ElectionType.PREFERRED,
                                         [TopicPartition(topic, 0)]).result(timeout=30)
        except KafkaException as e:
            fail(f"elect_leaders: {e}")
        for tp, err in result.items():
            print(f"ELECTED {tp.partition} {err if err else 'ok'}")
    deadline = time.time() + LAYOUT_TIMEOUT_S
    while admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader != preferred:
        if time.time() > deadline:
            fail(f"partition 0 is not led by its preferred replica {preferred} after the election")
        time.sleep(0.5)
    cluster = admin.describe_cluster().result(timeout=30)
    print(f"CLUSTER {cluster.cluster_id} controller {cluster.controller.id} nodes "
          + ",".join(str(n.id) for n in sorted(cluster.nodes, key=lambda n: n.id)))
    describe(bootstrap, topic, wait_for_complete=False)


def strict(bootstrap, topic):
    """Creates `topic` with one partition, RF 3 and min.insync.replicas=3; prints the layout."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3,
                                            config={"min.insync.replicas": "3"})])
    try:
        futures[topic].result(timeout=60)
    except KafkaException as e:
        fail(f"create topic {topic}: {e}")
    wait_isr(bootstrap, topic, 3)


def wait_isr(bootstrap, topic, size):
    """Waits until partition 0 has a leader and an ISR of `size`; prints it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + LAYOUT_TIMEOUT_S
    while True:
        try:
            p0 = admin.list_topics(topic, timeout=10).topics[topic].partitions[0]
            if p0.leader >= 0 and len(p0.isrs) == size:
                print(f"ISR {p0.leader} " + ",".join(str(r) for r in p0.isrs))
                return
        except (KafkaException, KeyError):
            pass
        if time.time() > deadline:
            fail(f"partition 0 of {topic} never had an ISR of {size}")
        time.sleep(0.5)


def produce_one(bootstrap, topic):
    """One acks=all message without retries; prints `DELIVERY ok <offset>` or the error name."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                  "message.send.max.retries": 0, "request.timeout.ms": 10000,
                  "delivery.timeout.ms": 20000})
    out = []
    p.produce(topic, value=b"x", partition=0,
              on_delivery=lambda err, msg: out.append(
                  f"DELIVERY err {err.name()}" if err else f"DELIVERY ok {msg.offset()}"))
    p.flush(30)
    print(out[0] if out else "DELIVERY none")


def create(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS,
                                            replication_factor=REPLICATION,
                                            config={"min.insync.replicas": MIN_INSYNC})])
    try:
        futures[topic].result(timeout=60)
    except KafkaException as e:
        fail(f"create topic {topic}: {e}")
    describe(bootstrap, topic, wait_for_complete=True)


def produce(bootstrap, topic, count, seconds):
    acked = {}    # value -> offset
    failed = {}   # value -> error

    def on_delivery(err, msg):
        v = int(msg.value())
        if err is not None:
            failed[v] = str(err).replace("\n", " ")
        else:
            acked[v] = msg.offset()

    prod = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        # One request in flight per connection: retries cannot reorder (librdkafka's rule
        # without idempotence), so acknowledged values must have increasing offsets.
        "max.in.flight.requests.per.connection": 1,
        "message.send.max.retries": 1_000_000,
        "retry.backoff.ms": 100,
        "delivery.timeout.ms": 120_000,
        "request.timeout.ms": 10_000,
        "linger.ms": 5,
    })

    def send(v):
        while True:
            try:
                prod.produce(topic, value=str(v).encode(), partition=TARGET_PARTITION,
                             on_delivery=on_delivery)
                return
            except BufferError:
                prod.poll(0.1)

    half = count // 2
    for v in range(half):
        send(v)
        prod.poll(0)
    remaining = prod.flush(120)
    check(remaining == 0, f"{remaining} of the first {half} messages undelivered before the kill")
    check(not failed, f"delivery failed before the kill: {sorted(failed.items())[:5]}")
    print("HALFWAY", flush=True)

    interval = seconds / max(1, count - half)
    start = time.time()
    for i, v in enumerate(range(half, count)):
        send(v)
        prod.poll(0)
        ahead = start + i * interval - time.time()
        if ahead > 0:
            time.sleep(ahead)
    remaining = prod.flush(150)
    check(remaining == 0, f"{remaining} messages neither delivered nor failed after flush")

    out = [f"ACK {v} {o}" for v, o in sorted(acked.items())]
    out += [f"FAILED {v} {e}" for v, e in sorted(failed.items())]
    out.append(f"DONE acked={len(acked)} failed={len(failed)}")
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


def consume(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap,
                         # Required by the client; unused: assign() and no commits.
                         "group.id": f"{topic}-reader",
                         "enable.auto.commit": False,
                         "auto.offset.reset": "earliest",
                         "enable.partition.eof": True})
    tp = TopicPartition(topic, TARGET_PARTITION)
    deadline = time.time() + 60
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            break
        except KafkaException as e:
            if time.time() > deadline:
                fail(f"watermarks of {topic}-{TARGET_PARTITION}: {e}")
            time.sleep(0.5)
    print(f"WATERMARKS {low} {high}")
    consumer.assign([TopicPartition(topic, TARGET_PARTITION, low)])
    out = []
    position = low
    deadline = time.time() + 120
    while position < high:
        if time.time() > deadline:
            fail(f"read stopped at offset {position}, high watermark {high}")
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consume error at {position}: {msg.error()}")
            out.append(f"READ {msg.offset()} {msg.value().decode()}")
            position = msg.offset() + 1
    consumer.close()
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))
    sys.stdout.flush()


def main():
    if len(sys.argv) < 4:
        fail(__doc__)
    phase, bootstrap, topic = sys.argv[1:4]
    if phase == "create":
        create(bootstrap, topic)
    elif phase == "describe":
        describe(bootstrap, topic, wait_for_complete=False)
    elif phase == "produce":
        count = int(sys.argv[4])
        seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
        produce(bootstrap, topic, count, seconds)
    elif phase == "strict":
        strict(bootstrap, topic)
    elif phase == "isr2":
        wait_isr(bootstrap, topic, 2)
    elif phase == "strict_wait3":
        wait_isr(bootstrap, topic, 3)
    elif phase == "produce_one":
        produce_one(bootstrap, topic)
    elif phase == "elect":
        elect(bootstrap, topic)
    elif phase == "consume":
        consume(bootstrap, topic)
    else:
        fail(f"unknown phase {phase!r}\n{__doc__}")


if __name__ == "__main__":
    main()
