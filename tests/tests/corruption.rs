//! Recovery from damaged segment files: a torn tail in the last segment is cut off, a bit flip
//! in an older batch is detected by its CRC and never served, and the node keeps working.
//!
//! Segment files are `<data>/<topic>-<partition>/%020d.log`, each a run of v2 batches
//! (`baseOffset` i64, `batchLength` i32, … — see `strata_core::batch`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use strata_core::batch::{BatchHeader, BatchIter, HEADER_LEN};
use strata_core::error::ErrorCode;
use strata_tests::StrataNode;
use strata_tests::kafka::{
    connect, create_topic, latest_offset, produce_ok, producer, read_partition,
};
use strata_tests::node::open_rw;

const TOPIC: &str = "damaged";

fn value(batch: usize, i: usize) -> Vec<u8> {
    format!("damaged-{batch}-{i}-{}", "p".repeat(80)).into_bytes()
}

/// The `.log` files of a partition directory, in offset order.
fn segments(dir: &PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// `(position, header)` of every whole batch in a segment file.
fn batches(path: &PathBuf) -> Vec<(usize, BatchHeader)> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    BatchIter::new(&buf)
        .map(|r| r.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_and_flipped_byte_are_detected_after_restart() {
    let mut node = StrataNode::start();
    let b = node.bootstrap();
    create_topic(&b, TOPIC, 1, &[("segment.bytes", "16384")]).await;
    let p = producer(&b);
    // 300 batches of 4 records (~470 bytes each): about nine 16 KiB segments.
    let per_batch = 4;
    for batch in 0..300 {
        let vs: Vec<Vec<u8>> = (0..per_batch).map(|i| value(batch, i)).collect();
        let base = produce_ok(&p, TOPIC, 0, &vs).await;
        assert_eq!(base, (batch * per_batch) as i64);
    }
    drop(p);
    assert_eq!(node.stop(), Some(0), "strata should exit 0 on SIGTERM");

    let dir = node.partition_dir(TOPIC, 0);
    let segs = segments(&dir);
    assert!(
        segs.len() >= 3,
        "expected several segments with segment.bytes=16384, found {segs:?}"
    );

    // Torn tail: cut the last whole batch of the last non-empty segment in half.
    let (last_seg, last_batches) = segs
        .iter()
        .rev()
        .map(|s| (s.clone(), batches(s)))
        .find(|(_, bs)| !bs.is_empty())
        .expect("some segment holds batches");
    let (torn_pos, torn) = *last_batches.last().expect("non-empty");
    open_rw(&last_seg)
        .set_len((torn_pos + torn.total_size() / 2) as u64)
        .expect("truncate last segment");
    let end_after_recovery = torn.base_offset.0;

    // Bit flip: the third batch of the first segment, inside its records (CRC-covered).
    let first = batches(&segs[0]);
    assert!(
        first.len() >= 5,
        "first segment has {} batches",
        first.len()
    );
    let (bad_pos, bad) = first[2];
    let flip_at = (bad_pos + HEADER_LEN + 10) as u64;
    let mut f = open_rw(&segs[0]);
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(flip_at))
        .and_then(|_| f.read_exact(&mut byte))
        .expect("read byte");
    byte[0] ^= 0x5a;
    f.seek(SeekFrom::Start(flip_at))
        .and_then(|_| f.write_all(&byte))
        .expect("write byte");
    f.sync_all().expect("sync");
    drop(f);
    let corrupt_offset = bad.base_offset.0;

    node.restart();
    let conn = connect(&b).await;

    // The torn batch is gone: the log ends at the last whole batch.
    assert_eq!(
        latest_offset(&conn, TOPIC, 0).await,
        end_after_recovery,
        "latest offset after recovering a torn tail"
    );

    // Everything before the corrupt batch is served, intact and in order.
    let read = read_partition(conn.clone(), TOPIC, 0, 0).await;
    let before: Vec<&strata_client::ConsumedRecord> = read
        .records
        .iter()
        .filter(|r| r.offset < corrupt_offset)
        .collect();
    assert_eq!(
        before.len() as i64,
        corrupt_offset,
        "records before the corrupt batch"
    );
    for r in &before {
        let (batch, i) = (r.offset as usize / per_batch, r.offset as usize % per_batch);
        assert_eq!(
            r.value.as_deref(),
            Some(&value(batch, i)[..]),
            "record at offset {}",
            r.offset
        );
    }
    // Nothing of the corrupt batch is ever served.
    assert!(
        read.records
            .iter()
            .all(|r| r.offset < corrupt_offset || r.offset > bad.last_offset().0),
        "records of the corrupt batch were served"
    );

    // Fetching at the corrupt batch gives CORRUPT_MESSAGE.
    let at = read_partition(conn.clone(), TOPIC, 0, corrupt_offset).await;
    assert_eq!(
        at.error,
        Some(ErrorCode::CORRUPT_MESSAGE),
        "fetch at the corrupt batch: {at:?}"
    );
    assert!(
        at.records.is_empty(),
        "records served from the corrupt batch"
    );

    // New produces work and land at the recovered end.
    let p = producer(&b);
    let base = produce_ok(&p, TOPIC, 0, &[b"after-recovery".to_vec()]).await;
    assert_eq!(base, end_after_recovery);
    let tail = read_partition(conn.clone(), TOPIC, 0, base).await;
    assert_eq!(tail.error, None);
    assert_eq!(
        tail.records.first().and_then(|r| r.value.as_deref()),
        Some(&b"after-recovery"[..])
    );

    // The node says what it found.
    let log = node.log().to_lowercase();
    assert!(
        log.contains("corrupt") || log.contains("crc"),
        "the broker log does not mention the corruption:\n{}",
        node.log()
    );
}
