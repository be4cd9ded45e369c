#!/usr/bin/env python3
"""confluent-kafka (librdkafka) consumer groups against strata (issue 12).

Usage: confluent_groups.py BOOTSTRAP SCENARIO [REPLICATION_FACTOR], SCENARIO one of:
  rebalance-ASSIGNOR  three members on a 6-partition topic, each partition owned by exactly one
                      and every message consumed once; a fourth joins and one leaves: the group
                      rebalances, consumption resumes from the committed offsets, nothing skipped
                      (ASSIGNOR: range, roundrobin, cooperative-sticky)
  restart             commit, close, a new consumer of the group resumes at the committed offset
  static              a static member (group.instance.id) restarts without a rebalance
  two-groups          two groups on one topic each get every message
  failover            (a cluster) three members consume 600 messages; the script prints
                      `COORDINATOR <node id>` and waits for a line on stdin, meanwhile the test
                      kills that broker; 600 more are consumed from the new coordinator's
                      committed offsets: nothing skipped, no acknowledged commit lost (a message
                      is consumed again only where its own commit failed)
Exits non-zero with a message on the first failed check.
"""
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from checks import check
from group_checks import (Client, Ledger, MemberThread, rebalance_scenario, stable,
                          two_groups_scenario, wait_for)

TIMEOUT = 90


class Member(MemberThread):
    """A confluent-kafka member: commits each message (sync) and counts its assignments."""

    def __init__(self, bootstrap, group, topic, name, ledger, extra=None):
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "session.timeout.ms": 10000, "heartbeat.interval.ms": 500}
        conf.update(extra or {})
        super().__init__(name, topic, ledger)
        self.consumer = Consumer(conf)
        self.assign_events = 0

    def on_assign(self, consumer, partitions):
        self.assign_events += 1

    def subscribe(self):
        self.consumer.subscribe([self.topic], on_assign=self.on_assign)

    def poll_once(self):
        msg = self.consumer.poll(0.2)
        self.assigned = {tp.partition for tp in self.consumer.assignment()}
        if msg is None or msg.error():
            return
        self.ledger.consumed(self.name, msg.partition(), msg.offset())
        try:
            self.consumer.commit(message=msg, asynchronous=False)
        except KafkaException:
            self.ledger.commit_failed(msg.partition(), msg.offset())


# The topics' replication factor (argument 3; 1 by default, for a single broker).
REPLICATION_FACTOR = int(sys.argv[3]) if len(sys.argv) > 3 else 1


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=REPLICATION_FACTOR)
    admin.create_topics([new])[topic].result(30)


def produce(bootstrap, topic, partitions, per_partition, ends):
    """Produces per_partition messages to each partition; ends[p] becomes the log end."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

    for i in range(per_partition):
        for p in range(partitions):
            producer.produce(topic, value=f"{p}-{i}".encode(), partition=p, on_delivery=on_delivery)
    check(producer.flush(60) == 0, "messages not delivered")
    check(not errors, f"delivery errors: {errors[:5]}")


def committed(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    c.close()
    return {tp.partition: tp.offset for tp in got}


def client(bootstrap, label, extra=None):
    return Client(
        label,
        lambda group, topic, name, ledger: Member(bootstrap, group, topic, name, ledger, extra),
        lambda topic, n: create(bootstrap, topic, n),
        lambda topic, n, per, ends: produce(bootstrap, topic, n, per, ends),
        lambda group, topic, n: committed(bootstrap, group, topic, n))


def restart(bootstrap):
    topic, group = "ck-restart", "ck-restart"
    create(bootstrap, topic, 1)
    ends = {}
    produce(bootstrap, topic, 1, 100, ends)
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    c = Consumer(conf)
    c.subscribe([topic])
    offsets = []
    while len(offsets) < 40:
        msg = c.poll(1.0)
        if msg is not None and not msg.error():
            offsets.append(msg.offset())
            last = msg
    c.commit(message=last, asynchronous=False)
    c.close()
    check(offsets == list(range(40)), f"first consumer read {offsets}")
    check(committed(bootstrap, group, topic, 1) == {0: 40}, "committed offset is not 40")
    c = Consumer(conf)
    c.subscribe([topic])
    rest = []
    while len(rest) < 60:
        msg = c.poll(1.0)
        if msg is not None and not msg.error():
            rest.append(msg.offset())
    c.close()
    check(rest == list(range(40, 100)), f"restarted consumer read {rest[:5]}..., want 40..99")
    print("restart: the second consumer resumed at the committed offset 40")


def static(bootstrap):
    topic, group, n = "ck-static", "ck-static", 4
    create(bootstrap, topic, n)
    ends = {}
    produce(bootstrap, topic, n, 50, ends)
    ledger = Ledger()
    extra = lambda iid: {"group.instance.id": iid, "session.timeout.ms": 30000}
    s1 = Member(bootstrap, group, topic, "s1", ledger, extra("static-1"))
    s2 = Member(bootstrap, group, topic, "s2", ledger, extra("static-2"))
    s1.start()
    s2.start()
    wait_for(lambda: ledger.count() == 200 and stable([s1, s2], n), TIMEOUT,
             "two static members to consume 200 messages")
    before = (set(s1.assigned), set(s2.assigned), s2.assign_events)
    s1.stop()  # a static member's close sends no LeaveGroup (KIP-345)
    produce(bootstrap, topic, n, 50, ends)
    s1b = Member(bootstrap, group, topic, "s1-restarted", ledger, extra("static-1"))
    s1b.start()
    wait_for(lambda: ledger.count() == 400, TIMEOUT, "the restarted static member to catch up")
    check(s1b.assigned == before[0],
          f"restarted static member got {s1b.assigned}, had {before[0]}")
    check(s2.assigned == before[1] and s2.assign_events == before[2],
          f"the other member was rebalanced: {s2.assigned} (had {before[1]}), "
          f"{s2.assign_events} assignments (had {before[2]})")
    ledger.check_exactly_once(ends, "static restart")
    s1b.stop()
    s2.stop()
    print(f"static: static-1 restarted into {s1b.assigned} without a rebalance; "
          f"static-2 kept {s2.assigned}; 400 messages consumed once")


def failover(bootstrap):
    topic, group, n = "ck-failover", "ck-failover", 6
    create(bootstrap, topic, n)
    ends = {}
    produce(bootstrap, topic, n, 100, ends)
    ledger = Ledger()
    members = [Member(bootstrap, group, topic, f"m{i}", ledger) for i in range(1, 4)]
    for m in members:
        m.start()
    wait_for(lambda: ledger.count() == 600 and stable(members, n), TIMEOUT,
             "three members to consume 600 messages")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(30)
    print(f"COORDINATOR {description.coordinator.id}", flush=True)
    check(sys.stdin.readline().strip() == "KILLED", "the test did not kill the coordinator")
    produce(bootstrap, topic, n, 100, ends)
    wait_for(lambda: ledger.count() == 1200 and stable(members, n), TIMEOUT,
             "the group to consume 1200 messages after the coordinator was killed")
    repeats = ledger.check_complete(ends, "coordinator failover")
    for m in members:
        m.stop()
    got = committed(bootstrap, group, topic, n)
    check(got == ends, f"committed offsets {got}, want the log ends {ends}")
    # A fresh admin client: the first one's connections may all have died with the brokers.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    after = admin.describe_consumer_groups([group])[group].result(60).coordinator.id
    print(f"failover: coordinator {description.coordinator.id} killed, {after} took over; "
          f"1200 messages consumed, none skipped, {repeats} again after a failed commit")


def main():
    bootstrap, scenario = sys.argv[1], sys.argv[2]
    if scenario.startswith("rebalance-"):
        assignor = scenario[len("rebalance-"):]
        rebalance_scenario(client(bootstrap, assignor, {"partition.assignment.strategy": assignor}),
                           f"ck-rebalance-{assignor}", f"ck-{assignor}")
    elif scenario == "two-groups":
        two_groups_scenario(client(bootstrap, "confluent-kafka"), "ck-pubsub")
    else:
        {"restart": restart, "static": static, "failover": failover}[scenario](bootstrap)
    print("OK")


if __name__ == "__main__":
    main()
