#!/usr/bin/env python3
"""aiokafka consumer groups against strata (issue 12): aiokafka 0.14 speaks old, non-flexible
versions (FindCoordinator v1, JoinGroup v5, SyncGroup v3, Heartbeat v1, OffsetCommit v3).

Usage: aiokafka_groups.py BOOTSTRAP SCENARIO, SCENARIO one of:
  rebalance   three members on a 6-partition topic own each partition once and consume every
              message once; a fourth joins and one leaves: consumption resumes from the
              committed offsets, nothing skipped
  restart     commit, close, a new consumer of the group resumes at the committed offset
  two-groups  two groups on one topic each get every message
Each member runs its own event loop in a thread. Exits non-zero with a message on the first
failed check.
"""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from checks import check
from group_checks import Client, MemberThread, rebalance_scenario, two_groups_scenario


def consumer(bootstrap, group, name="aiokafka"):
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=name,
                            auto_offset_reset="earliest", enable_auto_commit=False,
                            session_timeout_ms=10000, heartbeat_interval_ms=500)


class Member(MemberThread):
    """An aiokafka member: commits each record (awaited)."""

    def __init__(self, bootstrap, group, topic, name, ledger):
        super().__init__(name, topic, ledger)
        self.bootstrap, self.group = bootstrap, group

    def run(self):
        try:
            asyncio.run(self.consume())
        except Exception as e:  # surfaced by stop()
            self.error = e

    async def consume(self):
        c = consumer(self.bootstrap, self.group, self.name)
        c.subscribe([self.topic])
        await c.start()
        try:
            while not self.stopping.is_set():
                batches = await c.getmany(timeout_ms=200)
                self.assigned = {tp.partition for tp in c.assignment()}
                for tp, records in batches.items():
                    for r in records:
                        self.ledger.consumed(self.name, tp.partition, r.offset)
                        try:
                            await c.commit({tp: r.offset + 1})
                        except KafkaError:
                            self.ledger.commit_failed(tp.partition, r.offset)
        finally:
            await c.stop()


async def create(bootstrap, topic, partitions):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def produce(bootstrap, topic, partitions, per_partition, ends):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=f"{p}-{i}".encode(), partition=p)
                   for i in range(per_partition) for p in range(partitions)]
        for f in futures:
            md = await f
            ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    finally:
        await producer.stop()


async def committed(bootstrap, group, topic, partitions):
    c = consumer(bootstrap, group)
    await c.start()
    try:
        return {p: await c.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await c.stop()


def client(bootstrap):
    return Client(
        "aiokafka",
        lambda group, topic, name, ledger: Member(bootstrap, group, topic, name, ledger),
        lambda topic, n: asyncio.run(create(bootstrap, topic, n)),
        lambda topic, n, per, ends: asyncio.run(produce(bootstrap, topic, n, per, ends)),
        lambda group, topic, n: asyncio.run(committed(bootstrap, group, topic, n)))


async def restart(bootstrap):
    topic, group = "aio-restart", "aio-restart"
    await create(bootstrap, topic, 1)
    await produce(bootstrap, topic, 1, 100, {})
    tp = TopicPartition(topic, 0)

    async def read(count):
        c = consumer(bootstrap, group)
        c.subscribe([topic])
        await c.start()
        offsets = []
        try:
            while len(offsets) < count:
                batches = await c.getmany(timeout_ms=1000, max_records=count - len(offsets))
                offsets.extend(r.offset for r in batches.get(tp, []))
            if count == 40:
                await c.commit({tp: 40})
        finally:
            await c.stop()
        return offsets

    first = await read(40)
    check(first == list(range(40)), f"first consumer read {first}")
    rest = await read(60)
    check(rest == list(range(40, 100)), f"restarted consumer read {rest[:5]}..., want 40..99")
    print("restart: the second consumer resumed at the committed offset 40")


def main():
    bootstrap, scenario = sys.argv[1], sys.argv[2]
    if scenario == "rebalance":
        rebalance_scenario(client(bootstrap), "aio-rebalance", "aio-rebalance")
    elif scenario == "two-groups":
        two_groups_scenario(client(bootstrap), "aio-pubsub")
    else:
        asyncio.run({"restart": restart}[scenario](bootstrap))
    print("OK")


if __name__ == "__main__":
    main()
