//! `queued.max.request.bytes` (issue 14, memory bounded by configuration): a broker with a bound
//! of one request serves many concurrent large produces, every one answered and written once;
//! a reader short of bytes stops reading (backpressure) until bytes come back; leases come back
//! when a request is handled, refused, or its connection closes in the middle of it.

use std::future::Future;
use std::time::Duration;

use bytes::BufMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod common;
use common::{Running, call, create, frame, produce_req, read_frame};

/// Waits until `done` holds; the timeout only turns a hang into a failure.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("never: {what}"));
}

async fn connect(node: &Running) -> TcpStream {
    TcpStream::connect(node.addr).await.expect("connect")
}

/// A produce of one record of `value_len` bytes, framed.
fn big_produce(partition: i32, value_len: usize, correlation_id: i32) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let batch = strata_core::batch::build_batch(&[(&value[..], None)], 0);
    let req = produce_req("big", partition, batch, -1);
    frame(ApiKey::Produce, 9, correlation_id, &req).to_vec()
}

/// Reads one Produce response: its correlation id and (error, base offset).
async fn produce_answer(s: &mut TcpStream) -> (i32, (i16, i64)) {
    let mut resp = read_frame(s).await.expect("a response");
    let version = 9;
    let header =
        ResponseHeader::decode(&mut resp, ApiKey::Produce.response_header_version(version))
            .expect("header");
    let body = ProduceResponse::decode(&mut resp, version).expect("body");
    let p = &body.responses[0].partition_responses[0];
    (header.correlation_id, (p.error_code, p.base_offset))
}

async fn with_node<F: Future<Output = ()>>(bound: &str, test: impl FnOnce(Running) -> F) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = common::start(
        dir.path(),
        &[
            ("socket.request.max.bytes", bound),
            ("queued.max.request.bytes", bound),
        ],
    )
    .await;
    test(node).await;
}

/// 8 connections pipelining 4 produces of about 600 KB each, against a bound of one request
/// (1 MB): the readers take turns, and every produce is answered, in order, and written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_produces_share_a_small_bound() {
    with_node("1000000", |node| async move {
        let mut admin = connect(&node).await;
        assert_eq!(create(&mut admin, "big", 2).await, 0);
        let mut clients = Vec::new();
        for c in 0..8 {
            let addr = node.addr;
            clients.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                let mut out = Vec::new();
                for r in 0..4 {
                    out.extend(big_produce(c % 2, 600_000, r));
                }
                s.write_all(&out).await.expect("write");
                let mut answers = Vec::new();
                for r in 0..4 {
                    let (correlation_id, answer) = produce_answer(&mut s).await;
                    assert_eq!(correlation_id, r, "answers in request order");
                    answers.push((c % 2, answer));
                }
                answers
            }));
        }
        let mut offsets = [Vec::new(), Vec::new()];
        for client in clients {
            for (partition, (error, base_offset)) in client.await.expect("client") {
                assert_eq!(error, 0, "produce answered without error");
                offsets[partition as usize].push(base_offset);
            }
        }
        for mut o in offsets {
            o.sort();
            assert_eq!(o, (0..16).collect::<Vec<i64>>(), "each batch written once");
        }
        assert_eq!(
            node.pool.available(),
            Some(1_000_000),
            "every lease came back"
        );
        node.stop().await;
    })
    .await;
}

/// A reader that finds the pool short waits without reading, and is served once the bytes come
/// back; a lease comes back when its connection closes mid-request, and when a request is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_pool_stops_reading_until_bytes_come_back() {
    with_node("200000", |node| async move {
        let pool = node.pool.clone();
        let mut admin = connect(&node).await;
        assert_eq!(create(&mut admin, "big", 1).await, 0);
        let first = big_produce(0, 150_000, 1);
        let second = big_produce(0, 100_000, 2);
        let (a_len, b_len) = (first.len() - 4, second.len() - 4);
        // A holds a lease of its request's size while its body is still coming.
        let mut a = connect(&node).await;
        a.write_all(&first[..1000]).await.expect("write");
        eventually("A leased", || pool.available() == Some(200_000 - a_len)).await;
        // B's request does not fit next to it: B's reader waits.
        let mut b = connect(&node).await;
        b.write_all(&second).await.expect("write");
        eventually("B waits", || pool.waiting() == 1).await;
        a.write_all(&first[1000..]).await.expect("write");
        assert_eq!(produce_answer(&mut a).await, (1, (0, 0)));
        assert_eq!(produce_answer(&mut b).await, (2, (0, 1)));
        assert_eq!((pool.available(), pool.waiting()), (Some(200_000), 0));
        assert!(b_len < 200_000);
        // C closes in the middle of its request: its lease comes back.
        let mut c = connect(&node).await;
        c.write_all(&first[..1000]).await.expect("write");
        eventually("C leased", || pool.available() == Some(200_000 - a_len)).await;
        drop(c);
        eventually("C's lease back", || pool.available() == Some(200_000)).await;
        // D sends a body that does not decode: closed, and its lease is back.
        let mut d = connect(&node).await;
        let mut garbage = Vec::new();
        garbage.put_i32(50_000);
        garbage.extend([0x7f; 50_000]);
        d.write_all(&garbage).await.expect("write");
        assert!(read_frame(&mut d).await.is_none(), "closed");
        assert_eq!(pool.available(), Some(200_000));
        // E announces more than socket.request.max.bytes: closed before any lease.
        let mut e = connect(&node).await;
        e.write_all(&300_000i32.to_be_bytes()).await.expect("write");
        assert!(read_frame(&mut e).await.is_none(), "closed");
        assert_eq!(pool.available(), Some(200_000));
        // And the broker still serves.
        let md: MetadataResponse = call(
            &mut admin,
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
        assert_eq!(md.topics.len(), 1);
        node.stop().await;
    })
    .await;
}
