#!/usr/bin/env python3
"""Creates a benchmark topic with an admin client and waits until it is usable.

    python3 tests/bench/topic.py --bootstrap 127.0.0.1:19092 --topic t --partitions 8 \
        [--replication-factor 3] [--config min.insync.replicas=2] [--expect-brokers 3]

Waits (up to --timeout seconds) until Metadata lists --expect-brokers brokers, creates the topic
(an existing one is fine), then waits until every partition has a leader and a full ISR, so a
measurement never starts while leaders are still being elected or followers are catching up.
Exits non-zero with the reason if any of that does not happen in time.

Uses confluent-kafka (librdkafka), the admin client the end-to-end tests use too.
"""

import argparse
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--replication-factor", type=int, default=1)
    ap.add_argument("--config", action="append", default=[], help="topic config name=value")
    ap.add_argument("--expect-brokers", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    deadline = time.monotonic() + args.timeout
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    wait_for_brokers(admin, args.expect_brokers, deadline)
    configs = dict(kv.split("=", 1) for kv in args.config)
    create(admin, args, configs)
    wait_for_partitions(admin, args, deadline)


def fail(why):
    print(f"topic.py: {why}", file=sys.stderr)
    sys.exit(1)


def wait_for_brokers(admin, expected, deadline):
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            brokers = admin.list_topics(timeout=5).brokers
            if len(brokers) >= expected:
                return
            last = f"{len(brokers)} of {expected} brokers"
        except KafkaException as e:
            last = str(e)
        time.sleep(0.25)
    fail(f"waiting for {expected} brokers: {last}")


def create(admin, args, configs):
    topic = NewTopic(args.topic, args.partitions, args.replication_factor, config=configs)
    future = admin.create_topics([topic], operation_timeout=30)[args.topic]
    try:
        future.result()
    except KafkaException as e:
        if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
            fail(f"create {args.topic}: {e}")


def wait_for_partitions(admin, args, deadline):
    last = "no metadata"
    while time.monotonic() < deadline:
        try:
            meta = admin.list_topics(topic=args.topic, timeout=5).topics.get(args.topic)
        except KafkaException as e:
            meta, last = None, str(e)
        if meta is not None and meta.error is None:
            parts = meta.partitions.values()
            not_ready = [
                p.id
                for p in parts
                if p.leader < 0 or len(p.isrs) < args.replication_factor
            ]
            if len(parts) >= args.partitions and not not_ready:
                return
            last = f"{len(parts)} partitions, without leader or full ISR: {not_ready}"
        elif meta is not None:
            last = str(meta.error)
        time.sleep(0.1)
    fail(f"topic {args.topic} not ready: {last}")


if __name__ == "__main__":
    main()
