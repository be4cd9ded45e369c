//! Malformed traffic on raw sockets while a healthy client is served in parallel. Each bad
//! connection may be closed or answered with an error, but the broker must stay up, keep serving
//! the healthy client, and answer a Produce carrying a corrupt batch with CORRUPT_MESSAGE (2)
//! rather than dropping the connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use strata_client::producer::{finish_produce, start_produce};
use strata_client::{Admin, ProduceOutcome};
use strata_core::batch::build_batch;
use strata_core::error::ErrorCode;
use strata_tests::StrataNode;
use strata_tests::kafka::{connect, create_topic, now_ms, produce_ok, producer, read_partition};

/// The request size limit we start the broker with (small, so "oversized" is cheap to send).
const MAX_REQUEST: i32 = 1024 * 1024;
/// How long a raw socket waits for the broker to answer or close; only a bound, not an assertion.
const READ_BOUND: Duration = Duration::from_secs(30);

/// What the broker did with a connection after the bad input.
#[derive(Debug, PartialEq, Eq)]
enum Reaction {
    Closed,
    /// A response frame (its bytes after the length).
    Answered(Vec<u8>),
}

fn raw(bootstrap: &str) -> TcpStream {
    let s = TcpStream::connect(bootstrap).expect("connect raw socket");
    s.set_read_timeout(Some(READ_BOUND)).expect("set timeout");
    s
}

fn reaction(s: &mut TcpStream) -> Reaction {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ) =>
        {
            return Reaction::Closed;
        }
        Err(e) => panic!("broker neither answered nor closed the connection: {e}"),
    }
    let len = i32::from_be_bytes(len);
    assert!(
        (4..=MAX_REQUEST).contains(&len),
        "response frame length {len}"
    );
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).expect("read response body");
    Reaction::Answered(body)
}

/// A request frame: v1 header (api key, version, correlation id, client id) and `body`.
fn frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client = b"bad-input";
    let mut f = Vec::new();
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(&(client.len() as i16).to_be_bytes());
    f.extend_from_slice(client);
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

/// Either closed, or answered with the request's correlation id.
fn closed_or_answered(case: &str, r: Reaction, correlation_id: i32) {
    if let Reaction::Answered(body) = r {
        assert_eq!(
            &body[0..4],
            &correlation_id.to_be_bytes(),
            "{case}: response correlation id"
        );
    }
}

fn bad_cases(bootstrap: &str) {
    // 1. A truncated frame, then close: nothing to answer, must not hurt the broker.
    let mut s = raw(bootstrap);
    s.write_all(&100i32.to_be_bytes())
        .and_then(|_| s.write_all(&[0u8; 10]))
        .expect("write");
    s.shutdown(Shutdown::Both).expect("shutdown");

    // 2. A frame longer than socket.request.max.bytes: the broker closes without reading it.
    let mut s = raw(bootstrap);
    s.write_all(&(MAX_REQUEST + 1).to_be_bytes())
        .expect("write");
    assert_eq!(reaction(&mut s), Reaction::Closed, "oversized frame");

    // 3. Unknown API key.
    let mut s = raw(bootstrap);
    s.write_all(&frame(999, 0, 3, &[])).expect("write");
    closed_or_answered("unknown api key", reaction(&mut s), 3);

    // 4a. ApiVersions at an unknown version: a v0-shaped answer with UNSUPPORTED_VERSION (KIP-511).
    let mut s = raw(bootstrap);
    // The trailing 0 is an empty tagged-field set, in case the header is read as flexible (v2).
    s.write_all(&frame(18, 127, 41, &[0])).expect("write");
    match reaction(&mut s) {
        Reaction::Answered(body) => {
            assert_eq!(
                &body[0..4],
                &41i32.to_be_bytes(),
                "ApiVersions v127 correlation id"
            );
            assert_eq!(
                i16::from_be_bytes([body[4], body[5]]),
                35,
                "ApiVersions v127 error code"
            );
        }
        Reaction::Closed => panic!("ApiVersions v127 must be answered with error 35, not closed"),
    }
    // 4b. Metadata at an unsupported version.
    let mut s = raw(bootstrap);
    s.write_all(&frame(3, 99, 42, &[])).expect("write");
    closed_or_answered("metadata v99", reaction(&mut s), 42);

    // 7. Negative frame length.
    let mut s = raw(bootstrap);
    s.write_all(&(-1i32).to_be_bytes())
        .and_then(|_| s.write_all(&[0u8; 16]))
        .expect("write");
    assert_eq!(reaction(&mut s), Reaction::Closed, "negative frame length");

    // 5a. Garbage body: a Produce v3 cut off in the middle of its fields.
    let mut s = raw(bootstrap);
    s.write_all(&frame(0, 3, 51, &[0xff, 0xff, 0x00, 0x01, 0x7f]))
        .expect("write");
    closed_or_answered("truncated produce body", reaction(&mut s), 51);

    // 5b. Garbage body: a Metadata v1 whose topic array claims 2^31-1 entries. Last, as the one
    // most likely to hurt: a decoder that trusts the count allocates for it up front.
    let mut s = raw(bootstrap);
    let mut garbage = i32::MAX.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0x00, 0x13]);
    s.write_all(&frame(3, 1, 5, &garbage)).expect("write");
    closed_or_answered("garbage body", reaction(&mut s), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_do_not_hurt_the_broker() {
    let max = MAX_REQUEST.to_string();
    let mut node = StrataNode::start_with(&[("socket.request.max.bytes", &max)]);
    let b = node.bootstrap();
    create_topic(&b, "healthy", 1, &[]).await;
    create_topic(&b, "victim", 1, &[]).await;

    // A healthy client producing and reading back, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let healthy = {
        let (b, stop, rounds) = (b.clone(), stop.clone(), rounds.clone());
        tokio::spawn(async move {
            let p = producer(&b);
            let conn = connect(&b).await;
            let mut n = 0u64;
            // Bounded: the raw cases finish long before this many rounds.
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                let v = format!("healthy-{n}").into_bytes();
                let base = produce_ok(&p, "healthy", 0, std::slice::from_ref(&v)).await;
                let read = read_partition(conn.clone(), "healthy", 0, base).await;
                assert_eq!(read.error, None, "healthy fetch at {base}");
                assert_eq!(
                    read.records.first().and_then(|r| r.value.as_deref()),
                    Some(&v[..])
                );
                n += 1;
                rounds.store(n, Ordering::Relaxed);
            }
        })
    };

    // 6. A Produce with a corrupt batch: error 2 in the response, and the connection lives on.
    let conn = connect(&b).await;
    let mut batch = build_batch(&[(b"will be corrupted", None)], now_ms());
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let f = start_produce(&conn, "victim", 0, Bytes::from(batch), -1, 30_000)
        .await
        .expect("send corrupt produce")
        .expect("acks=-1 has a response");
    assert_eq!(
        finish_produce(f, 0).await,
        ProduceOutcome::Failed(ErrorCode::CORRUPT_MESSAGE)
    );
    Admin::new(&conn)
        .metadata(None)
        .await
        .expect("same connection still serves after CORRUPT_MESSAGE");

    let bb = b.clone();
    tokio::task::spawn_blocking(move || bad_cases(&bb))
        .await
        .expect("raw cases");

    stop.store(true, Ordering::Relaxed);
    healthy
        .await
        .expect("the healthy client kept working throughout");
    assert!(
        rounds.load(Ordering::Relaxed) > 0,
        "the healthy client completed no round"
    );
    assert!(node.is_running(), "strata died");

    // Afterwards: a full round trip, and nothing from the corrupt produce was stored.
    let p = producer(&b);
    let base = produce_ok(&p, "victim", 0, &[b"fine".to_vec()]).await;
    assert_eq!(base, 0, "the corrupt batch must not have taken an offset");
    let read = read_partition(conn.clone(), "victim", 0, 0).await;
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].value.as_deref(), Some(&b"fine"[..]));
}
