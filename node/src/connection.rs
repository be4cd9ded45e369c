//! One client connection: a reader that frames and dispatches requests in order, and a writer
//! that sends the responses back in the same order.
//!
//! Invariants:
//! - Requests are dispatched strictly in arrival order (so a connection's appends happen in its
//!   request order); their deferred parts (fsync waits, long polls) are awaited by the writer in
//!   that same order, so responses are never reordered even with pipelining.
//! - At most `queued.max.requests` responses are pending per connection; beyond that the reader
//!   stops reading (TCP backpressure).
//! - A request's bytes are leased from the broker-wide [`MemoryPool`]
//!   (`queued.max.request.bytes`) from its length prefix until it is handled (see
//!   [`crate::memory_pool`] for why that cannot deadlock); while the pool is short the reader
//!   reads nothing (TCP backpressure again, never an error).
//! - Memory per connection is bounded by configuration, not by load: reads go through a fixed
//!   [`READ_AHEAD`] buffer that never grows, and each request body is read into a buffer of
//!   exactly its size, its own, so a request that something keeps (a long poll's topic names)
//!   keeps only itself, never a read buffer shared with other requests.
//! - Anything that must close the connection (bad frame, unknown API, garbage body) is logged
//!   at warn with the peer address; other connections are unaffected.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::sync::watch;

use crate::broker::Broker;
use crate::dispatch::{Reply, dispatch_from};
use crate::framing::{FrameError, LENGTH_PREFIX, frame_size};
use crate::memory_pool::{Lease, MemoryPool};

/// Bytes read from the socket ahead of need: a fixed buffer (small requests and length prefixes
/// are served from it; a body larger than it is read straight into the body's own buffer).
pub const READ_AHEAD: usize = 64 * 1024;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `socket.request.max.bytes`.
    pub max_frame: usize,
    /// `queued.max.requests`.
    pub max_pending: usize,
}

/// Why a connection stops reading.
#[derive(Debug, Error)]
enum ReadError {
    /// A length prefix we refuse: the connection closes (logged at warn).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The socket failed, or the peer closed in the middle of a request.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the next request: its length prefix, then, holding a lease of its size, its body into
/// a buffer of its own. `Ok(None)`: the peer closed between requests.
async fn read_request<R: AsyncRead + Unpin>(
    rd: &mut R,
    max_frame: usize,
    pool: &MemoryPool,
) -> Result<Option<(Bytes, Lease)>, ReadError> {
    let mut prefix = [0u8; LENGTH_PREFIX];
    if rd.read(&mut prefix[..1]).await? == 0 {
        return Ok(None);
    }
    rd.read_exact(&mut prefix[1..]).await?;
    let size = frame_size(prefix, max_frame)?;
    let lease = pool.acquire(size).await;
    let mut body = BytesMut::with_capacity(size);
    while body.len() < size {
        let want = size - body.len();
        if rd.read_buf(&mut (&mut body).limit(want)).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(Some((body.freeze(), lease)))
}

/// Serves one connection until the peer closes it, it misbehaves, or the broker shuts down.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    pool: MemoryPool,
    mut shutdown: watch::Receiver<bool>,
) {
    let (rd, wr) = tokio::io::split(stream);
    let mut rd = BufReader::with_capacity(READ_AHEAD, rd);
    let (tx, rx) = mpsc::channel::<Reply>(limits.max_pending.max(1));
    let writer = tokio::spawn(write_loop(wr, rx, peer));
    loop {
        let read = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = read_request(&mut rd, limits.max_frame, &pool) => r,
        };
        let (frame, lease) = match read {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(ReadError::Frame(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "read failed");
                break;
            }
        };
        let reply = dispatch_from(&broker, frame, Some(peer));
        // Handled: what the reply still needs it holds apart from the request's buffer.
        drop(lease);
        match reply {
            Ok(Reply::None) => {}
            Ok(reply) => {
                if tx.send(reply).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
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
