"""Writes the golden batches of core/src/record/tests/golden.rs: one batch per codec as real
clients write it, captured from a running strata node's segment files.

    strata --data-dir /tmp/golden-data --listen 127.0.0.1:PORT &
    PYTHONPATH=<dir with python-snappy, lz4, zstandard> \
        python3 generate.py 127.0.0.1:PORT /tmp/golden-data core/src/record/tests/golden

confluent-kafka (librdkafka) writes every codec; kafka-python writes snappy with the xerial
framing of Kafka's Java client (it needs python-snappy, lz4 and zstandard for its codecs).
Every batch holds the same five records (see RECORDS), with CreateTime timestamps, except the
`logappend` topic, created with message.timestamp.type=LogAppendTime.
"""

import os
import struct
import sys

BASE_TS = 1_700_000_000_000
HEADERS = [("h", b"x"), ("h", b"y"), ("g", None), ("h", b"z")]
# (key, value, headers, timestamp): duplicate header keys in order, a null header value, a
# keyless record, a tombstone, an empty key and value, a compressible value, a timestamp
# before the first (a negative delta).
RECORDS = [
    (b"k1", b"v1", HEADERS, BASE_TS + 10),
    (None, b"v2", [], BASE_TS + 20),
    (b"k3", None, [], BASE_TS + 5),
    (b"", b"", [], BASE_TS + 30),
    (b"k5", b"strata golden value " * 100, [], BASE_TS + 40),
]


def confluent(bootstrap, codec, topic, extra_config=None):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=extra_config or {})])["" + topic].result()
    p = Producer({
        "bootstrap.servers": bootstrap,
        "compression.type": codec,
        "enable.idempotence": True,
        "linger.ms": 500,
    })
    for key, value, headers, ts in RECORDS:
        p.produce(topic, key=key, value=value, headers=headers, timestamp=ts)
    assert p.flush(10) == 0


def kafka_python(bootstrap, codec, topic):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=500)
    for key, value, headers, ts in RECORDS:
        # kafka-python cannot send a null header value: it sends an empty one instead.
        headers = [(k, v if v is not None else b"") for k, v in headers]
        p.send(topic, key=key, value=value, headers=headers, timestamp_ms=ts)
    p.flush(10)
    p.close()


def first_batch(data_dir, topic):
    with open(os.path.join(data_dir, topic + "-0", "00000000000000000000.log"), "rb") as f:
        log = f.read()
    (length,) = struct.unpack(">i", log[8:12])
    assert len(log) == 12 + length, f"{topic}: one batch expected"
    return log


def main():
    bootstrap, data_dir, out = sys.argv[1:4]
    topics = []
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        topic = f"librdkafka-{codec}"
        confluent(bootstrap, codec, topic)
        topics.append(topic)
    topic = "librdkafka-gzip-logappend"
    confluent(bootstrap, "gzip", topic, {"message.timestamp.type": "LogAppendTime"})
    topics.append(topic)
    for codec in ["gzip", "snappy", "lz4", "zstd"]:
        topic = f"kafka-python-{codec}"
        kafka_python(bootstrap, codec, topic)
        topics.append(topic)
    for topic in topics:
        with open(os.path.join(out, topic + ".bin"), "wb") as f:
            f.write(first_batch(data_dir, topic))
        print("wrote", topic)


if __name__ == "__main__":
    main()
