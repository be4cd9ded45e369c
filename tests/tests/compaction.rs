//! Log compaction seen by a real client (issue #16): confluent-kafka writes 100,000 updates over
//! 1,000 keys, about one in 97 a tombstone, lz4-compressed, idempotent, acks=all, to a topic with
//! `cleanup.policy=compact` and 64 KiB segments on a real `strata` process. The node's cleaner
//! (woken every 200 ms) must shrink the partition's `.log` files well below what was written, and
//! a consumer reading from the beginning must then build exactly the expected table: every key's
//! newest value, no key whose newest update was a tombstone, and far fewer records than were
//! written (older values are gone), in increasing offsets.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use strata_tests::StrataNode;
use strata_tests::tools::ensure_python_clients;

const SCRIPT: &str = r#"
import hashlib, sys
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]
UPDATES, KEYS = 100_000, 1_000

def update(i):
    key = f"key-{i % KEYS}".encode()
    # Hex digests: lz4 halves them, so the bytes on disk are real data, not padding.
    value = None if i % 97 == 0 else (f"value-{i}-" + hashlib.sha256(str(i).encode()).hexdigest()
                                      + hashlib.sha256(str(-i).encode()).hexdigest()).encode()
    return key, value

if mode == "produce":
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config={
        "cleanup.policy": "compact", "segment.bytes": "65536",
        "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"})])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "compression.type": "lz4", "linger.ms": 5})
    failed, written = [], 0
    for i in range(UPDATES):
        key, value = update(i)
        written += len(key) + len(value or b"")
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=0,
                          on_delivery=lambda err, msg: err and failed.append(err))
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0, "undelivered"
    assert not failed, failed[:3]
    print(f"PRODUCED bytes={written}")
else:
    expected = {}
    for i in range(UPDATES):
        key, value = update(i)
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-check",
                  "enable.auto.commit": False})
    _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    c.assign([TopicPartition(topic, 0, 0)])
    table, records, last = {}, 0, -1
    while last < high - 1:
        msg = c.poll(10)
        assert msg is not None, f"stalled at offset {last} below the high watermark {high}"
        assert msg.error() is None, msg.error()
        assert msg.offset() > last, f"offset {msg.offset()} after {last}"
        last = msg.offset()
        records += 1
        if msg.value() is None:
            table.pop(msg.key(), None)
        else:
            table[msg.key()] = msg.value()
    assert table == expected, f"{len(table)} keys read, {len(expected)} expected; " \
        f"first difference: {next((k for k in expected if table.get(k) != expected[k]), None)}"
    assert records < UPDATES // 4, f"{records} records read: little was compacted"
    print(f"VERIFIED records={records} keys={len(table)}")
"#;

fn script(mode: &str, bootstrap: &str, topic: &str) -> String {
    ensure_python_clients();
    let out = Command::new("python3")
        .args(["-c", SCRIPT, mode, bootstrap, topic])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the confluent-kafka script ({mode}) failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Bytes of the `.log` files in a partition directory.
fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn confluent_kafka_sees_the_latest_value_per_key_after_cleaning() {
    let node = StrataNode::start_with(&[
        ("log.cleaner.backoff.ms", "200"),
        ("log.flush.offset.checkpoint.interval.ms", "200"),
    ]);
    let out = script("produce", &node.bootstrap(), "compacted");
    let written: u64 = out
        .trim()
        .strip_prefix("PRODUCED bytes=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}\n{}", node.log_tail(40)));
    let dir = node.data_dir().join("compacted-0");
    // Keys and values written: ~14 MB, ~7 MB once lz4 halves the hex. The live table is ~1,000
    // keys of ~150 bytes, plus the segments not yet cleanable (the active one and those at or
    // above the recovery point): the partition must end far below an eighth of what was written.
    // Waited for, bounded (not timed): the cleaner runs every 200 ms.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut now_bytes = log_bytes(&dir);
    while now_bytes * 8 > written && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        now_bytes = log_bytes(&dir);
    }
    assert!(
        now_bytes * 8 <= written,
        "the partition still holds {now_bytes} bytes of {written} written\n{}",
        node.log_tail(40)
    );
    let out = script("verify", &node.bootstrap(), "compacted");
    assert!(out.contains("VERIFIED"), "{out}\n{}", node.log_tail(40));
    assert!(
        node.log().contains("log cleaned"),
        "the cleaner logged no cleaning"
    );
}
