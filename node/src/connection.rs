//! One client connection: a reader that frames and dispatches requests in order, and a writer
//! that sends the responses back in the same order.
//!
//! Invariants:
//! - Requests are dispatched strictly in arrival order (so a connection's appends happen in its
//!   request order); their deferred parts (fsync waits, long polls) are awaited by the writer in
//!   that same order, so responses are never reordered even with pipelining.
//! - At most `queued.max.requests` responses are pending per connection; beyond that the reader
//!   stops reading (TCP backpressure).
//! - Anything that must close the connection (bad frame, unknown API, garbage body) is logged
//!   at warn with the peer address; other connections are unaffected.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::sync::watch;

use crate::broker::Broker;
use crate::dispatch::{Reply, dispatch_from};
use crate::framing::next_frame;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `socket.request.max.bytes`.
    pub max_frame: usize,
    /// `queued.max.requests`.
    pub max_pending: usize,
}

/// Serves one connection until the peer closes it, it misbehaves, or the broker shuts down.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Reply>(limits.max_pending.max(1));
    let writer = tokio::spawn(write_loop(wr, rx, peer));
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    'conn: loop {
        loop {
            match next_frame(&mut buf, limits.max_frame) {
                Ok(Some(frame)) => match dispatch_from(&broker, frame, Some(peer)) {
                    Ok(Reply::None) => {}
                    Ok(reply) => {
                        if tx.send(reply).await.is_err() {
                            break 'conn;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "closing connection");
                        break 'conn;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection");
                    break 'conn;
                }
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) => {
                    if !buf.is_empty() {
                        tracing::debug!(%peer, buffered = buf.len(), "peer closed mid-frame");
                    }
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    break;
                }
            },
        }
    }
    drop(tx);
    let _ = writer.await;
}

async fn write_loop(mut wr: WriteHalf<TcpStream>, mut rx: mpsc::Receiver<Reply>, peer: SocketAddr) {
    while let Some(reply) = rx.recv().await {
        let frame = match reply {
            Reply::Now(frame) => frame,
            Reply::Later(pending) => match pending.await {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection");
                    break;
                }
            },
            Reply::None => continue,
        };
        for chunk in &frame.chunks {
            if let Err(e) = wr.write_all(chunk).await {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
        }
        // Always flush: the simulator only sends TCP data on flush.
        if let Err(e) = wr.flush().await {
            tracing::debug!(%peer, error = %e, "flush failed");
            return;
        }
    }
    let _ = wr.shutdown().await;
}
