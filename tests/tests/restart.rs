//! Durability across restarts: a graceful stop (SIGTERM) keeps everything, and a `kill -9`
//! right after acknowledgements keeps every acknowledged message (acks=-1 is acknowledged only
//! after fsync, design §3).

use std::collections::VecDeque;

use bytes::Bytes;
use strata_client::ProduceOutcome;
use strata_client::producer::{finish_produce, start_produce};
use strata_core::batch::build_batch;
use strata_tests::StrataNode;
use strata_tests::kafka::{
    connect, create_topic, latest_offset, now_ms, produce_ok, producer, read_partition,
};

fn values(tag: &str, batch: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{tag}-{batch}-{i}").into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_then_restart_keeps_all_data() {
    let mut node = StrataNode::start();
    let b = node.bootstrap();
    create_topic(&b, "graceful", 2, &[]).await;
    let p = producer(&b);
    let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(), Vec::new()];
    for batch in 0..50 {
        let partition = (batch % 2) as i32;
        let vs = values("graceful", batch, 20);
        let base = produce_ok(&p, "graceful", partition, &vs).await;
        assert_eq!(
            base,
            expected[partition as usize].len() as i64,
            "base offset of batch {batch}"
        );
        expected[partition as usize].extend(vs);
    }
    drop(p);
    let code = node.stop();
    assert_eq!(code, Some(0), "strata should exit 0 on SIGTERM");
    node.restart();

    let conn = connect(&b).await;
    for partition in 0..2 {
        let want = &expected[partition as usize];
        assert_eq!(
            latest_offset(&conn, "graceful", partition).await,
            want.len() as i64
        );
        let read = read_partition(conn.clone(), "graceful", partition, 0).await;
        assert_eq!(
            read.error, None,
            "reading partition {partition} after restart"
        );
        let got: Vec<Vec<u8>> = read
            .records
            .iter()
            .map(|r| r.value.clone().unwrap_or_default().to_vec())
            .collect();
        let offsets: Vec<i64> = read.records.iter().map(|r| r.offset).collect();
        assert_eq!(
            offsets,
            (0..want.len() as i64).collect::<Vec<_>>(),
            "offsets of partition {partition}"
        );
        assert!(
            got == *want,
            "values of partition {partition} differ after restart"
        );
    }
    // And the log keeps growing where it ended.
    let p = producer(&b);
    let base = produce_ok(&p, "graceful", 0, &values("after", 0, 1)).await;
    assert_eq!(base, expected[0].len() as i64);
}

/// Acknowledged batches survive `kill -9` issued while more produce requests are in flight.
/// Batches whose outcome was indefinite may or may not be there; nothing else may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_keeps_every_acknowledged_message() {
    let mut node = StrataNode::start();
    let b = node.bootstrap();
    create_topic(&b, "acked", 1, &[]).await;
    let conn = connect(&b).await;
    // (batch number, base offset) of acknowledged batches; numbers of indefinite ones.
    let mut acked: Vec<(usize, i64)> = Vec::new();
    let mut indefinite: Vec<usize> = Vec::new();
    let mut window = VecDeque::new();
    let mut next = 0usize;
    let kill_after = 150;
    let mut killed = false;
    while !(killed && window.is_empty()) {
        if !killed && window.len() < 8 {
            let vs = values("acked", next, 10);
            let recs: Vec<(&[u8], Option<&[u8]>)> = vs.iter().map(|v| (&v[..], None)).collect();
            let batch = Bytes::from(build_batch(&recs, now_ms()));
            match start_produce(&conn, "acked", 0, batch, -1, 30_000).await {
                Ok(Some(f)) => window.push_back((next, f)),
                Ok(None) => unreachable!("acks=-1 always has a response"),
                Err(e) => panic!("produce {next} not sent before the kill: {e}"),
            }
            next += 1;
            continue;
        }
        let Some((n, f)) = window.pop_front() else {
            break;
        };
        match finish_produce(f, 0).await {
            ProduceOutcome::Ok { base_offset, .. } => acked.push((n, base_offset)),
            ProduceOutcome::Indefinite(_) if killed => indefinite.push(n),
            other => panic!("batch {n}: {other:?} before the kill"),
        }
        if !killed && acked.len() >= kill_after {
            // Right after an acknowledgement, with up to 7 requests still in flight.
            node.kill9();
            killed = true;
        }
    }
    drop(conn);
    assert!(acked.len() >= kill_after);
    node.restart();

    let conn = connect(&b).await;
    let read = read_partition(conn.clone(), "acked", 0, 0).await;
    assert_eq!(read.error, None, "reading after kill -9 and restart");
    let by_offset: std::collections::BTreeMap<i64, Vec<u8>> = read
        .records
        .iter()
        .map(|r| (r.offset, r.value.clone().unwrap_or_default().to_vec()))
        .collect();
    for (n, base) in &acked {
        for (i, v) in values("acked", *n, 10).iter().enumerate() {
            let at = base + i as i64;
            assert_eq!(
                by_offset.get(&at),
                Some(v),
                "acknowledged batch {n} (base offset {base}) record {i} lost or changed after kill -9"
            );
        }
    }
    // Every record present belongs to a batch we sent, acknowledged or indefinite.
    let sent: std::collections::BTreeSet<Vec<u8>> =
        (0..next).flat_map(|n| values("acked", n, 10)).collect();
    for (o, v) in &by_offset {
        assert!(
            sent.contains(v),
            "offset {o} holds a value nobody sent: {:?}",
            String::from_utf8_lossy(v)
        );
    }
    println!(
        "{} acknowledged, {} indefinite, {} records after restart",
        acked.len(),
        indefinite.len(),
        by_offset.len()
    );
    let p = producer(&b);
    let end = latest_offset(&conn, "acked", 0).await;
    assert_eq!(
        produce_ok(&p, "acked", 0, &values("after", 0, 1)).await,
        end
    );
}
