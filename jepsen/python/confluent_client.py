#!/usr/bin/env python3
"""One confluent-kafka client (a producer or a consumer), driven by strata-jepsen over JSON lines.

strata-jepsen (`jepsen/src/confluent.rs`) starts one of these per client and writes one request
per line on stdin; the client answers each with exactly one line on stdout, in order, and exits
when stdin closes. Everything else (librdkafka's logs, Python warnings) goes to stderr. The Rust
side records invoke / ok / fail / info with its own clock around each request, so this script
keeps no time of its own and never decides what a history means: it reports what the client said.

Requests and answers (all JSON objects on one line):

Producer (`--role producer`; `enable.idempotence=true` with `acks=all`, or `acks=1`):
  {"op":"send","topic":"t","partition":0,"values":[17,18],"timeout_ms":10000}
  -> {"outcome":"ok","offsets":[42,43]}
   | {"outcome":"fail","error":"..."}   definitely not written: refused before it was sent
   | {"outcome":"info","error":"..."}   indefinite: may or may not be in the log
  A value is the integer as 8 bytes big-endian, no key (as Strata's own client writes them, so
  each workload reads the other's values). With several values, outcome is the
  worst of them (info over fail over ok) and `offsets` has null for values not acknowledged.

Consumer (`--role consumer`, `enable.auto.commit=false`, `auto.offset.reset=earliest`):
  {"op":"assign","partitions":[["t",0,0],...]}        assign mode, explicit positions
  -> {"outcome":"ok"} | {"outcome":"info","error":"..."}
  {"op":"subscribe","topics":["t"]}                   subscribe mode (the group of --group)
  -> {"outcome":"ok"} | {"outcome":"info","error":"..."}
  {"op":"poll","max_records":100,"timeout_ms":100}
  -> {"outcome":"ok","records":[["t",0,offset,value],...],
      "watermarks":[["t",0,low,high],...],           cached by librdkafka, -1001 when unknown
      "rebalance":null | {"revoked":[["t",0],...]}
                       | {"assigned":[["t",0,seek_or_null],...],
                          "committed":[["t",0,offset_or_null,metadata_or_null],...] | null,
                          "committed_error":null | "...",
                          "member_id":"...","generation":5}}
  A poll stops at the first rebalance callback: records returned after it belong to the next
  assignment and are kept for the next poll, so every record of an answer was consumed under
  the assignment the Rust side knew when it sent the poll. On assignment, the committed offsets
  are read (OffsetFetch) and every partition is assigned explicitly at its committed offset (or
  0 when none: `auto.offset.reset=earliest` then applies), so the Rust side knows the position
  and records it as a Seek.
  {"op":"commit","offsets":[["t",0,offset,tag],...]}  synchronous commit, metadata = tag
  -> {"outcome":"ok"} | {"outcome":"fail","code":22,"error":"..."}
   | {"outcome":"info","error":"..."}
  each with "generation" and "member_id" when librdkafka held the same ones before and after.
  {"op":"final_read","partitions":[["t",0],...],"timeout_ms":60000}
  -> {"outcome":"ok","partitions":[["t",0,high,low,[[offset,value],...]],...]}
   | {"outcome":"info","error":"..."}
  Reads each partition from offset 0 (a fresh assignment) up to its high watermark as queried
  when the read started.
"""

import argparse
import json
import struct
import sys
import time

import confluent_kafka as ck
from confluent_kafka import KafkaError, KafkaException, TopicPartition

# Delivery errors that prove a message was never written: the broker never saw it, or
# refused it for a reason no retry can change before the append. Everything else (timeouts,
# NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS after earlier attempts that may have been
# appended, lost connections) is indefinite.
DEFINITE = {
    getattr(KafkaError, name)
    for name in (
        "MSG_SIZE_TOO_LARGE",
        "_MSG_SIZE_TOO_LARGE",
        "_UNKNOWN_PARTITION",
        "_UNKNOWN_TOPIC",
        "UNKNOWN_TOPIC_OR_PART",
        "TOPIC_AUTHORIZATION_FAILED",
        "_INVALID_ARG",
        "INVALID_RECORD",
    )
    if hasattr(KafkaError, name)
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def error_text(err):
    if isinstance(err, KafkaError):
        return "%s: %s" % (err.name(), err.str())
    return str(err)


def parse_value(raw):
    """Our values are 8-byte big-endian integers (the encoding of Strata's own client in the
    same run); anything else is reported as 2**64-1 (never sent)."""
    if isinstance(raw, (bytes, bytearray)) and len(raw) == 8:
        return int.from_bytes(raw, "big")
    return 2**64 - 1


class Producer:
    def __init__(self, args):
        conf = {
            "bootstrap.servers": args.bootstrap,
            "client.id": args.client_id,
            "linger.ms": 0,
            "message.timeout.ms": args.message_timeout_ms,
            "request.timeout.ms": min(5000, args.message_timeout_ms),
            "socket.timeout.ms": 5000,
            "topic.metadata.refresh.interval.ms": 1000,
            "reconnect.backoff.max.ms": 1000,
        }
        if args.acks == -1:
            conf["enable.idempotence"] = True
            conf["acks"] = "all"
        else:
            # Without idempotence a retry may append a second copy: no retries, so a lost
            # answer is an indefinite send and never a duplicate.
            conf["enable.idempotence"] = False
            conf["acks"] = str(args.acks)
            conf["message.send.max.retries"] = 0
        self.producer = ck.Producer(conf)

    def send(self, req):
        results = {}

        def report(i):
            def on_delivery(err, msg):
                results[i] = (err, msg.offset() if err is None else None)

            return on_delivery

        values = req["values"]
        sent = 0
        refused = None
        for i, value in enumerate(values):
            try:
                self.producer.produce(
                    req["topic"],
                    value=int(value).to_bytes(8, "big"),
                    partition=req["partition"],
                    on_delivery=report(i),
                )
                sent += 1
            except (BufferError, KafkaException) as e:
                # Not queued: never sent. Later values are not sent either (keeps order).
                refused = str(e)
                break
        deadline = time.monotonic() + req.get("timeout_ms", 30000) / 1000.0 + 5.0
        while len(results) < sent and time.monotonic() < deadline:
            self.producer.poll(0.05)
        offsets = [None] * len(values)
        worst = "ok"
        reasons = []
        for i in range(len(values)):
            if i >= sent:
                worst = "fail" if worst == "ok" else worst
                reasons.append("not sent: %s" % refused)
                continue
            if i not in results:
                worst = "info"
                reasons.append("no delivery report in time")
                continue
            err, offset = results[i]
            if err is None:
                offsets[i] = offset
            elif err.code() in DEFINITE:
                worst = "fail" if worst == "ok" else worst
                reasons.append(error_text(err))
            else:
                worst = "info"
                reasons.append(error_text(err))
        if worst == "ok":
            answer({"outcome": "ok", "offsets": offsets})
        else:
            answer(
                {
                    "outcome": worst,
                    "error": "; ".join(sorted(set(reasons))),
                    "offsets": offsets,
                }
            )

    def close(self):
        self.producer.flush(5)


def parse_group_metadata(raw):
    """(generation, member id) from librdkafka's serialized consumer group metadata:
    b"CGMDv2:" + generation (int32, native order) + group id + NUL + member id + NUL + ..."""
    if not isinstance(raw, (bytes, bytearray)) or not raw.startswith(b"CGMDv2:"):
        return None, None
    body = raw[7:]
    if len(body) < 4:
        return None, None
    (generation,) = struct.unpack("=i", body[:4])
    parts = body[4:].split(b"\x00")
    member = parts[1].decode("utf-8", "replace") if len(parts) > 1 else None
    return generation, member


class Consumer:
    def __init__(self, args):
        self.args = args
        self.consumer = ck.Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "client.id": args.client_id,
                "group.id": args.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "max.poll.interval.ms": 60000,
                "socket.timeout.ms": 5000,
                "topic.metadata.refresh.interval.ms": 1000,
                "reconnect.backoff.max.ms": 1000,
                "fetch.wait.max.ms": 100,
            }
        )
        self.events = []  # rebalance events not yet reported, in order
        self.stash = []  # records consumed after a rebalance event, for the next poll
        self.watermark_tps = set()

    # Rebalance callbacks run inside consumer.poll().
    def on_assign(self, consumer, partitions):
        committed = None
        committed_error = None
        for attempt in range(6):
            try:
                committed = consumer.committed(partitions, timeout=5)
                break
            except KafkaException as e:
                committed_error = error_text(e.args[0]) if e.args else str(e)
                log("committed() failed (attempt %d): %s" % (attempt, committed_error))
        generation, member = parse_group_metadata(consumer.consumer_group_metadata())
        assigned = []
        explicit = []
        by_tp = {}
        if committed is not None:
            committed_error = None
            for tp in committed:
                by_tp[(tp.topic, tp.partition)] = tp
        for tp in partitions:
            c = by_tp.get((tp.topic, tp.partition))
            if committed is None or (c is not None and c.error is not None):
                seek = None  # unknown: let librdkafka fetch it again
                explicit.append(TopicPartition(tp.topic, tp.partition, ck.OFFSET_STORED))
            else:
                seek = c.offset if c is not None and c.offset >= 0 else 0
                explicit.append(TopicPartition(tp.topic, tp.partition, seek))
            assigned.append([tp.topic, tp.partition, seek])
            self.watermark_tps.add((tp.topic, tp.partition))
        consumer.assign(explicit)
        self.events.append(
            {
                "assigned": assigned,
                "committed": None
                if committed is None
                else [
                    [
                        tp.topic,
                        tp.partition,
                        tp.offset if tp.offset >= 0 and tp.error is None else None,
                        getattr(tp, "metadata", None),
                    ]
                    for tp in committed
                ],
                "committed_error": committed_error,
                "member_id": member if member is not None else consumer.memberid(),
                "generation": generation,
            }
        )

    def on_revoke(self, consumer, partitions):
        consumer.unassign()
        self.events.append({"revoked": [[tp.topic, tp.partition] for tp in partitions]})

    def assign(self, req):
        tps = [TopicPartition(t, p, o) for t, p, o in req["partitions"]]
        for t, p, _ in req["partitions"]:
            self.watermark_tps.add((t, p))
        try:
            self.consumer.assign(tps)
            answer({"outcome": "ok"})
        except KafkaException as e:
            answer({"outcome": "info", "error": str(e)})

    def subscribe(self, req):
        try:
            self.consumer.subscribe(
                req["topics"], on_assign=self.on_assign, on_revoke=self.on_revoke
            )
            answer({"outcome": "ok"})
        except KafkaException as e:
            answer({"outcome": "info", "error": str(e)})

    def poll(self, req):
        records = []
        errors = []
        event = None
        if self.events:
            event = self.events.pop(0)
        else:
            records, self.stash = self.stash, []
            deadline = time.monotonic() + req.get("timeout_ms", 100) / 1000.0
            limit = req.get("max_records", 100)
            while len(records) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                msg = self.consumer.poll(remaining)
                if self.events:
                    # The callback ran inside this poll: what it returned is the next
                    # assignment's.
                    event = self.events.pop(0)
                    if msg is not None and msg.error() is None:
                        self.stash.append(self.record(msg))
                    break
                if msg is None:
                    continue
                if msg.error() is not None:
                    errors.append(error_text(msg.error()))
                    continue
                records.append(self.record(msg))
        watermarks = []
        for t, p in sorted(self.watermark_tps):
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(t, p), cached=True
                )
            except KafkaException:
                low, high = -1001, -1001
            watermarks.append([t, p, low, high])
        answer(
            {
                "outcome": "ok",
                "records": records,
                "watermarks": watermarks,
                "rebalance": event,
                "errors": errors,
            }
        )

    @staticmethod
    def record(msg):
        return [msg.topic(), msg.partition(), msg.offset(), parse_value(msg.value())]

    def commit(self, req):
        offsets = [
            TopicPartition(t, p, o, metadata=str(tag)) for t, p, o, tag in req["offsets"]
        ]
        before = parse_group_metadata(self.consumer.consumer_group_metadata())
        reply = {"outcome": "ok"}
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
            for tp in result or []:
                if tp.error is not None:
                    reply = self.commit_error(tp.error)
                    break
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError):
                reply = self.commit_error(err)
            else:
                reply = {"outcome": "info", "error": str(e)}
        after = parse_group_metadata(self.consumer.consumer_group_metadata())
        # The generation the commit carried, when librdkafka held one throughout.
        if before == after and before[0] is not None:
            reply["generation"], reply["member_id"] = before
        answer(reply)

    @staticmethod
    def commit_error(err):
        # A broker's error code is a refusal; librdkafka's own (negative) codes are timeouts
        # and lost connections: the commit may have been written.
        if err.code() > 0:
            return {"outcome": "fail", "code": err.code(), "error": error_text(err)}
        return {"outcome": "info", "error": error_text(err)}

    def final_read(self, req):
        deadline = time.monotonic() + req.get("timeout_ms", 60000) / 1000.0
        out = []
        try:
            for t, p in req["partitions"]:
                tp = TopicPartition(t, p)
                low, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                self.consumer.assign([TopicPartition(t, p, 0)])
                seen = []
                position = 0
                while position < high:
                    if time.monotonic() > deadline:
                        raise TimeoutError("final read of %s-%d stopped at %d of %d" % (t, p, position, high))
                    msg = self.consumer.poll(0.5)
                    if msg is None:
                        continue
                    if msg.error() is not None:
                        log("final read: %s" % error_text(msg.error()))
                        continue
                    if msg.offset() >= high:
                        position = high
                        break
                    seen.append([msg.offset(), parse_value(msg.value())])
                    position = msg.offset() + 1
                out.append([t, p, high, low, seen])
            self.consumer.unassign()
            answer({"outcome": "ok", "partitions": out})
        except (KafkaException, TimeoutError) as e:
            answer({"outcome": "info", "error": str(e)})

    def close(self):
        self.consumer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--role", choices=["producer", "consumer"], required=True)
    parser.add_argument("--client-id", default="strata-jepsen")
    parser.add_argument("--group", default="strata-jepsen")
    parser.add_argument("--acks", type=int, default=-1)
    parser.add_argument("--message-timeout-ms", type=int, default=10000)
    args = parser.parse_args()
    client = Producer(args) if args.role == "producer" else Consumer(args)
    handlers = {
        "send": "send",
        "assign": "assign",
        "subscribe": "subscribe",
        "poll": "poll",
        "commit": "commit",
        "final_read": "final_read",
    }
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            handler = getattr(client, handlers[req["op"]])
        except (ValueError, KeyError, AttributeError) as e:
            answer({"outcome": "info", "error": "bad request: %s" % e})
            continue
        handler(req)
    client.close()


if __name__ == "__main__":
    main()
