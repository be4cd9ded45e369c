#!/usr/bin/env python3
"""kafka-python consumer groups against strata (issue 12): kafka-python 3 speaks the flexible
versions of every group API (FindCoordinator v6, JoinGroup v7+, OffsetCommit/OffsetFetch v8).

Usage: kafka_python_groups.py BOOTSTRAP SCENARIO, SCENARIO one of:
  rebalance   three members on a 6-partition topic own each partition once and consume every
              message once; a fourth joins and one leaves: consumption resumes from the
              committed offsets, nothing skipped
  restart     commit, close, a new consumer of the group resumes at the committed offset
  two-groups  two groups on one topic each get every message
Exits non-zero with a message on the first failed check.
"""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from checks import check
from group_checks import Client, MemberThread, rebalance_scenario, two_groups_scenario


def offset_and_metadata(offset):
    try:
        return OffsetAndMetadata(offset, "", -1)
    except TypeError:  # kafka-python before 2.1: no leader epoch
        return OffsetAndMetadata(offset, "")


class Member(MemberThread):
    """A kafka-python member: commits each record (sync)."""

    def __init__(self, bootstrap, group, topic, name, ledger):
        super().__init__(name, topic, ledger)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, client_id=name,
            auto_offset_reset="earliest", enable_auto_commit=False,
            session_timeout_ms=10000, heartbeat_interval_ms=500)

    def subscribe(self):
        self.consumer.subscribe([self.topic])

    def poll_once(self):
        batches = self.consumer.poll(timeout_ms=200)
        self.assigned = {tp.partition for tp in self.consumer.assignment()}
        for tp, records in batches.items():
            for r in records:
                self.ledger.consumed(self.name, tp.partition, r.offset)
                try:
                    self.consumer.commit({tp: offset_and_metadata(r.offset + 1)})
                except KafkaError:
                    self.ledger.commit_failed(tp.partition, r.offset)


def create(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()


def produce(bootstrap, topic, partitions, per_partition, ends):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [producer.send(topic, value=f"{p}-{i}".encode(), partition=p)
               for i in range(per_partition) for p in range(partitions)]
    producer.flush(60)
    for f in futures:
        md = f.get(30)
        ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    producer.close()


def committed(bootstrap, group, topic, partitions):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    got = {p: c.committed(TopicPartition(topic, p)) for p in range(partitions)}
    c.close()
    return got


def client(bootstrap):
    return Client(
        "kafka-python",
        lambda group, topic, name, ledger: Member(bootstrap, group, topic, name, ledger),
        lambda topic, n: create(bootstrap, topic, n),
        lambda topic, n, per, ends: produce(bootstrap, topic, n, per, ends),
        lambda group, topic, n: committed(bootstrap, group, topic, n))


def restart(bootstrap):
    topic, group = "kp-restart", "kp-restart"
    create(bootstrap, topic, 1)
    ends = {}
    produce(bootstrap, topic, 1, 100, ends)
    tp = TopicPartition(topic, 0)

    def consumer():
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                          auto_offset_reset="earliest", enable_auto_commit=False)
        c.subscribe([topic])
        return c

    c = consumer()
    offsets = []
    while len(offsets) < 40:
        for r in c.poll(timeout_ms=1000, max_records=40 - len(offsets)).get(tp, []):
            offsets.append(r.offset)
    c.commit({tp: offset_and_metadata(40)})
    c.close()
    check(offsets == list(range(40)), f"first consumer read {offsets}")
    c = consumer()
    rest = []
    while len(rest) < 60:
        for r in c.poll(timeout_ms=1000).get(tp, []):
            rest.append(r.offset)
    c.close()
    check(rest == list(range(40, 100)), f"restarted consumer read {rest[:5]}..., want 40..99")
    print("restart: the second consumer resumed at the committed offset 40")


def main():
    bootstrap, scenario = sys.argv[1], sys.argv[2]
    if scenario == "rebalance":
        rebalance_scenario(client(bootstrap), "kp-rebalance", "kp-rebalance")
    elif scenario == "two-groups":
        two_groups_scenario(client(bootstrap), "kp-pubsub")
    else:
        {"restart": restart}[scenario](bootstrap)
    print("OK")

if __name__ == "__main__":
    main()
