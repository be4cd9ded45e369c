#!/usr/bin/env python3
"""Idempotent producers (KIP-98) of two real clients against a three-node strata cluster whose
partition leaders are `kill -9`ed while they produce. The Rust test `tests/tests/idempotence.rs`
owns the broker processes and runs these phases; it does the killing while `produce` runs and
judges what `produce` and `consume` print.

Usage:
  idempotent_failover.py create   BOOTSTRAP TOPIC
      Creates TOPIC (3 partitions, replication factor 3, min.insync.replicas=2), waits until the
      layout is complete, prints it (see `describe`).
  idempotent_failover.py describe BOOTSTRAP TOPIC
      Prints `PARTITION p leader replicas isr` per partition (lists comma-separated).
  idempotent_failover.py wait_isr BOOTSTRAP TOPIC
      Waits until every partition has a leader and all three replicas in its ISR, then prints the
      layout.
  idempotent_failover.py produce  CLIENT BOOTSTRAP TOPIC IDEMPOTENCE
      CLIENT is `confluent` (confluent-kafka, librdkafka) or `kafka-python`; IDEMPOTENCE is `on`
      or `off` (`off` exists to show that the checks catch the duplicates and reordering of a
      producer without it). Produces the values 0, 1, 2, ... (decimal strings, no key), value v
      to partition v % 3, acks=all, paced: a small burst every tick and a large burst (large
      batches) every 2 s, until the test says FINISH, then a last burst, and flushes.
      Talks with the test over stdin/stdout while producing:
        prints `STARTED` after WARMUP_S once a value is acknowledged (the producer id is in
          use);
        on stdin `MARK label`: prints `MARKED label produced resolved` (values handed to the
          client so far, values whose delivery report has arrived so far);
        on stdin `FINISH`: stops after the last burst.
      Then prints the report: `MARK label produced resolved` per mark, `ACK value partition
      offset` per acknowledged value, `FAILED value error` per failed one, `ERROR fatal|other
      text` per client-level error, `STAT name value` for the client's own counters, and
      `DONE produced=N acked=A failed=F`.
  idempotent_failover.py consume  BOOTSTRAP TOPIC
      Reads every partition from its log start to its high watermark with an assign()ed
      confluent-kafka consumer (read_uncommitted, no group, no commits); prints
      `WATERMARKS p low high` per partition, then `READ p offset value` per record in the order
      read.

Exits non-zero with a `FAIL:` line on stderr when a phase cannot do its job; the checks of what
was read against what was acknowledged are done by the Rust test.
"""
import json
import logging
import os
import queue
import sys
import threading
import time

from checks import check, fail

PARTITIONS = 3
REPLICATION = 3
MIN_INSYNC = "2"
LAYOUT_TIMEOUT_S = 90
TICK_S = 0.02
LARGE_BURST_EVERY_S = 2.0
# Per client: (values per tick, values per large burst, values after FINISH). confluent-kafka
# produces about 1,500 values/s, kafka-python (pure Python, slower) about 450/s.
PACE = {"confluent": (20, 1_000, 1_000), "kafka-python": (6, 300, 300)}
# STARTED comes this long after the first value, once one is acknowledged, so the first kill
# hits a producer in full flow.
WARMUP_S = 2.0
# No value acknowledged this long after the start: the producer cannot work (e.g. a fatal
# InitProducerId error); fail rather than leave the test waiting for STARTED.
START_TIMEOUT_S = 60.0
DELIVERY_TIMEOUT_MS = 120_000
FLUSH_TIMEOUT_S = 150


def admin_layout(admin, topic):
    """{partition: (leader, replicas, isr)} from Metadata, or a string saying what is missing."""
    md = admin.list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return f"topic {topic}: {t.error if t else 'absent'}"
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}


def print_layout(layout):
    for p, (leader, replicas, isr) in sorted(layout.items()):
        print(f"PARTITION {p} {leader} {','.join(map(str, replicas))} {','.join(map(str, isr))}")


def wait_layout(bootstrap, topic, full_isr):
    """Waits until every partition has a leader and REPLICATION replicas (and, with full_isr, all
    of them in the ISR); prints the layout."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + LAYOUT_TIMEOUT_S
    last = "no metadata"
    while True:
        try:
            layout = admin_layout(admin, topic)
            if isinstance(layout, str):
                last = layout
            elif len(layout) != PARTITIONS:
                last = f"{len(layout)} partitions"
            else:
                bad = {p: l for p, l in layout.items()
                       if l[0] < 0 or len(l[1]) != REPLICATION
                       or (full_isr and len(l[2]) != REPLICATION)}
                if not bad:
                    print_layout(layout)
                    return
                last = f"incomplete (leader, replicas, isr): {bad}"
        except KafkaException as e:
            last = str(e)
        if time.time() > deadline:
            fail(f"no complete layout for {topic} after {LAYOUT_TIMEOUT_S} s: {last}")
        time.sleep(0.5)


def create(bootstrap, topic):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS,
                                            replication_factor=REPLICATION,
                                            config={"min.insync.replicas": MIN_INSYNC})])
    try:
        futures[topic].result(timeout=60)
    except KafkaException as e:
        fail(f"create topic {topic}: {e}")
    wait_layout(bootstrap, topic, full_isr=True)


def describe(bootstrap, topic):
    from confluent_kafka.admin import AdminClient
    layout = admin_layout(AdminClient({"bootstrap.servers": bootstrap}), topic)
    check(not isinstance(layout, str), f"describe: {layout}")
    print_layout(layout)


class Confluent:
    """confluent-kafka's Producer. Delivery reports arrive on poll()/flush() in this thread."""

    def __init__(self, bootstrap, idempotence, on_ack, on_fail):
        from confluent_kafka import Producer
        self.errors = []
        self.stats = None

        def on_delivery(err, msg):
            v = int(msg.value())
            if err is not None:
                on_fail(v, f"{err.name()} {err.str()}".replace("\n", " "))
            else:
                on_ack(v, msg.partition(), msg.offset())

        def on_error(err):
            self.errors.append(("fatal" if err.fatal() else "other", f"{err.name()} {err.str()}"))

        def on_stats(s):
            self.stats = json.loads(s)

        self.on_delivery = on_delivery
        config = {
            "bootstrap.servers": bootstrap,
            # With idempotence librdkafka forces acks=all, up to 5 requests in flight per
            # partition and unlimited retries; without it we ask for the same, so that the
            # `off` run shows what idempotence prevents.
            "enable.idempotence": idempotence,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "message.send.max.retries": 1_000_000,
            "retry.backoff.ms": 100,
            "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
            "request.timeout.ms": 10_000,
            # A burst of 1,000 values becomes a few large batches.
            "linger.ms": 20,
            "statistics.interval.ms": 500,
            "error_cb": on_error,
            "stats_cb": on_stats,
        }
        if os.environ.get("STRATA_TEST_RDKAFKA_DEBUG"):
            # e.g. `eos,msg,protocol`: librdkafka's own account of the failover, on stderr.
            config["debug"] = os.environ["STRATA_TEST_RDKAFKA_DEBUG"]
        self.p = Producer(config)

    def send(self, topic, v, partition):
        while True:
            try:
                self.p.produce(topic, value=str(v).encode(), partition=partition,
                               on_delivery=self.on_delivery)
                return
            except BufferError:
                self.p.poll(0.1)

    def poll(self):
        self.p.poll(0)

    def flush(self, timeout):
        remaining = self.p.flush(timeout)
        check(remaining == 0, f"{remaining} messages neither delivered nor failed after flush")
        # One more statistics callback, so the counters include the end of the run.
        self.stats = None
        deadline = time.time() + 10
        while self.stats is None and time.time() < deadline:
            self.p.poll(0.1)

    def report(self):
        out = [f"ERROR {kind} {text}" for kind, text in self.errors]
        s = self.stats or {}
        # `txmsgs` of a partition counts a message each time it is put into a ProduceRequest,
        # so a total above the number of values means some were sent again (a retry).
        parts = [p for t in s.get("topics", {}).values() for p in t.get("partitions", {}).values()
                 if p.get("partition", -1) >= 0]
        eos = s.get("eos", {})
        out += [
            f"STAT client confluent-kafka {__import__('confluent_kafka').version()} "
            f"librdkafka {__import__('confluent_kafka').libversion()[0]}",
            f"STAT transmitted {sum(p.get('txmsgs', 0) for p in parts)}",
            f"STAT enqueued {sum(p.get('msgs', 0) for p in parts)}",
            f"STAT producer_id {eos.get('producer_id', -1)}",
            f"STAT producer_epoch {eos.get('producer_epoch', -1)}",
            f"STAT pid_acquisitions {eos.get('epoch_cnt', 0)}",
        ]
        return out


class RetryLog(logging.Handler):
    """Counts kafka-python's warnings by message template (the sender logs one per retried or
    failed batch), keeping the first few texts."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.counts = {}

    def emit(self, record):
        key = f"{record.levelname} {record.name}: {record.msg}"
        if "retrying" in str(record.msg) and isinstance(record.args, tuple) and len(record.args) > 3:
            key += f" [{record.args[3]}]"  # the error class the batch is retried for
        self.counts[key] = self.counts.get(key, 0) + 1


class KafkaPython:
    """kafka-python's KafkaProducer. Futures complete in its sender thread."""

    def __init__(self, bootstrap, idempotence, on_ack, on_fail):
        from kafka import KafkaProducer
        self.log = RetryLog()
        logging.getLogger("kafka").addHandler(self.log)
        self.lock = threading.Lock()
        self.on_ack = on_ack
        self.on_fail = on_fail
        self.p = KafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=idempotence,
            acks="all",
            max_in_flight_requests_per_connection=5,
            retries=1_000_000,
            retry_backoff_ms=100,
            delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
            request_timeout_ms=10_000,
            linger_ms=20,
        )

    def send(self, topic, v, partition):
        fut = self.p.send(topic, value=str(v).encode(), partition=partition)

        def ok(md, v=v):
            with self.lock:
                self.on_ack(v, md.partition, md.offset)

        def err(e, v=v):
            with self.lock:
                self.on_fail(v, f"{type(e).__name__} {e}".replace("\n", " "))

        fut.add_callback(ok)
        fut.add_errback(err)

    def poll(self):
        pass

    def flush(self, timeout):
        self.p.flush(timeout=timeout)
        self.p.close(timeout=30)

    def report(self):
        from kafka import __version__
        out = [f"STAT client kafka-python {__version__}"]
        # Private, but the only place kafka-python keeps the producer id it was given.
        pid = getattr(self.p._transaction_manager, "producer_id_and_epoch", None)
        if pid is not None:
            out.append(f"STAT producer_id {pid.producer_id}")
            out.append(f"STAT producer_epoch {pid.epoch}")
        retries = sum(c for k, c in self.log.counts.items() if "retrying" in k)
        out.append(f"STAT retry_warnings {retries}")
        out += [f"LOG {c} {k}" for k, c in sorted(self.log.counts.items())]
        return out


def produce(client_name, bootstrap, topic, idempotence):
    acked = {}      # value -> (partition, offset)
    failed = {}     # value -> error
    commands = queue.Queue()

    def on_ack(v, partition, offset):
        acked[v] = (partition, offset)

    def on_fail(v, error):
        failed[v] = error

    def read_stdin():
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("FINISH")

    threading.Thread(target=read_stdin, daemon=True).start()
    cls = {"confluent": Confluent, "kafka-python": KafkaPython}[client_name]
    client = cls(bootstrap, idempotence, on_ack, on_fail)
    per_tick, large_burst, last_burst = PACE[client_name]

    produced = 0
    marks = []
    started = False

    def burst(n):
        nonlocal produced
        for _ in range(n):
            client.send(topic, produced, produced % PARTITIONS)
            produced += 1
            if produced % 100 == 0:
                client.poll()

    finishing = False
    t0 = time.time()
    next_large = t0 + LARGE_BURST_EVERY_S
    tick = 0
    while not finishing:
        burst(per_tick)
        client.poll()
        if not started and acked and time.time() >= t0 + WARMUP_S:
            started = True
            print("STARTED", flush=True)
        if not started and time.time() >= t0 + START_TIMEOUT_S:
            fail(f"no value acknowledged after {START_TIMEOUT_S} s "
                 f"({produced} produced, {len(failed)} failed: {list(failed.items())[:3]})")
        if time.time() >= next_large:
            burst(large_burst)
            next_large += LARGE_BURST_EVERY_S
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                break
            if cmd.startswith("MARK "):
                label = cmd.split(" ", 1)[1]
                resolved = len(acked) + len(failed)
                marks.append((label, produced, resolved))
                print(f"MARKED {label} {produced} {resolved}", flush=True)
            elif cmd == "FINISH":
                finishing = True
            elif cmd:
                fail(f"unknown command {cmd!r}")
        tick += 1
        ahead = t0 + tick * TICK_S - time.time()
        if ahead > 0:
            time.sleep(ahead)
    burst(last_burst)
    client.flush(FLUSH_TIMEOUT_S)
    check(len(acked) + len(failed) == produced,
          f"{produced} produced, {len(acked)} acked and {len(failed)} failed after flush")

    out = [f"MARK {label} {n} {r}" for label, n, r in marks]
    out += [f"ACK {v} {p} {o}" for v, (p, o) in sorted(acked.items())]
    out += [f"FAILED {v} {e}" for v, e in sorted(failed.items())]
    out += client.report()
    out.append(f"DONE produced={produced} acked={len(acked)} failed={len(failed)}")
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


def consume(bootstrap, topic):
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap,
                         # Required by the client; unused: assign() and no commits.
                         "group.id": f"{topic}-reader",
                         "enable.auto.commit": False,
                         "enable.partition.eof": True})
    out = []
    for partition in range(PARTITIONS):
        tp = TopicPartition(topic, partition)
        deadline = time.time() + 60
        while True:
            try:
                low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                break
            except KafkaException as e:
                if time.time() > deadline:
                    fail(f"watermarks of {topic}-{partition}: {e}")
                time.sleep(0.5)
        out.append(f"WATERMARKS {partition} {low} {high}")
        consumer.assign([TopicPartition(topic, partition, low)])
        position = low
        deadline = time.time() + 120
        while position < high:
            if time.time() > deadline:
                fail(f"{topic}-{partition}: read stopped at offset {position}, high watermark {high}")
            for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    fail(f"consume error on {topic}-{partition} at {position}: {msg.error()}")
                if msg.offset() >= high:
                    continue
                out.append(f"READ {partition} {msg.offset()} {msg.value().decode()}")
                position = msg.offset() + 1
        consumer.unassign()
    consumer.close()
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


def main():
    args = sys.argv[1:]
    if not args:
        fail(__doc__)
    phase = args[0]
    if phase == "produce" and len(args) == 5:
        _, client, bootstrap, topic, idempotence = args
        check(client in PACE, f"unknown client {client!r}")
        check(idempotence in ("on", "off"), f"IDEMPOTENCE is on or off, not {idempotence!r}")
        produce(client, bootstrap, topic, idempotence == "on")
    elif phase == "create" and len(args) == 3:
        create(args[1], args[2])
    elif phase == "describe" and len(args) == 3:
        describe(args[1], args[2])
    elif phase == "wait_isr" and len(args) == 3:
        wait_layout(args[1], args[2], full_isr=True)
    elif phase == "consume" and len(args) == 3:
        consume(args[1], args[2])
    else:
        fail(f"bad arguments {args!r}\n{__doc__}")


if __name__ == "__main__":
    main()
