//! The controller's network: the `CONTROLLER://` listener (Raft messages from peers, requests
//! from brokers) and one sender task per peer controller for outgoing Raft messages.
//!
//! Invariants:
//! - Raft traffic is lossy by design: a full inbox or a full/disconnected peer queue drops the
//!   message (Raft retransmits); nothing here blocks the driver.
//! - Requests are forwarded to the driver with backpressure (at most
//!   [`MAX_REQUESTS_PER_CONNECTION`] in flight per connection); responses go back tagged with
//!   the request's `correlation_id`, in completion order.
//! - A bad frame (oversized, undecodable, a `Response` sent to us) closes that connection with a
//!   warn line; other connections are unaffected. Every write is flushed (madsim sends TCP data
//!   only on flush).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use strata_core::rpc::{Envelope, Response};
use strata_core::types::NodeId;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::sync::watch;

use super::driver::Input;
use super::wire::{FrameReader, frame};

/// Requests one connection may have in flight (FetchMetadata long-polls count).
pub const MAX_REQUESTS_PER_CONNECTION: usize = 64;
/// Outgoing Raft messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 1024;
/// Backoff between reconnection attempts to a peer, doubling up to the max.
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// A connect or a write that takes longer than this is abandoned (the peer is unreachable).
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts connections until `stop` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    inbox: mpsc::Sender<Input>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, peer, inbox.clone(), stop.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "controller listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// One inbound connection: a reader that forwards to the driver, a writer for responses.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    inbox: mpsc::Sender<Input>,
    mut stop: watch::Receiver<bool>,
) {
    let (rd, wr) = tokio::io::split(stream);
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(MAX_REQUESTS_PER_CONNECTION);
    let writer = tokio::spawn(write_loop(wr, out_rx, peer));
    let permits = Arc::new(Semaphore::new(MAX_REQUESTS_PER_CONNECTION));
    let mut reader = FrameReader::new(rd);
    loop {
        let envelope = tokio::select! {
            biased;
            _ = stop.changed() => break,
            next = reader.next() => match next {
                Ok(Some(envelope)) => envelope,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "controller connection: closing");
                    break;
                }
            },
        };
        match envelope {
            Envelope::Raft { from, message } => {
                if inbox.try_send(Input::Raft { from, message }).is_err() {
                    tracing::debug!(%peer, %from, "controller inbox full: raft message dropped");
                }
            }
            Envelope::Request {
                correlation_id,
                request,
            } => {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (reply, answer) = oneshot::channel();
                if inbox.send(Input::Request { request, reply }).await.is_err() {
                    break; // the driver stopped
                }
                let out = out_tx.clone();
                tokio::spawn(async move {
                    // A dropped reply means the driver stopped: the broker retries elsewhere.
                    let response = answer
                        .await
                        .unwrap_or(Response::NotController { leader: None });
                    let _ = out
                        .send(frame(&Envelope::Response {
                            correlation_id,
                            response,
                        }))
                        .await;
                    drop(permit);
                });
            }
            Envelope::Response { .. } => {
                tracing::warn!(%peer, "controller connection: unexpected response frame; closing");
                break;
            }
        }
    }
    drop(out_tx);
    // Responses still pending hold clones of the sender; do not wait for them after a stop.
    writer.abort();
}

async fn write_loop(
    mut wr: tokio::io::WriteHalf<TcpStream>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    peer: SocketAddr,
) {
    while let Some(bytes) = rx.recv().await {
        let write = async {
            wr.write_all(&bytes).await?;
            wr.flush().await
        };
        if let Err(e) = write.await {
            tracing::debug!(%peer, error = %e, "controller connection: write failed");
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Starts the sender task for peer `to` at `addr` (`host:port`); returns its queue.
pub fn spawn_peer_sender(
    to: NodeId,
    addr: String,
    stop: watch::Receiver<bool>,
) -> mpsc::Sender<Vec<u8>> {
    let (tx, rx) = mpsc::channel(PEER_QUEUE);
    tokio::spawn(peer_sender(to, addr, rx, stop));
    tx
}

async fn peer_sender(
    to: NodeId,
    addr: String,
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = RECONNECT_MIN;
    loop {
        let connected = tokio::select! {
            biased;
            _ = stop.changed() => return,
            c = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr.as_str())) => c,
        };
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(peer = %to, %addr, error = %e, "controller peer: connect failed");
                if sleep_or_stop(&mut stop, &mut backoff).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                tracing::debug!(peer = %to, %addr, "controller peer: connect timed out");
                if sleep_or_stop(&mut stop, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        backoff = RECONNECT_MIN;
        let _ = stream.set_nodelay(true);
        // We only write; the read half stays open so the peer does not see a half-close.
        let (_rd, mut wr) = tokio::io::split(stream);
        loop {
            let bytes = tokio::select! {
                biased;
                _ = stop.changed() => return,
                next = rx.recv() => match next {
                    Some(bytes) => bytes,
                    None => return,
                },
            };
            let write = async {
                wr.write_all(&bytes).await?;
                wr.flush().await
            };
            match tokio::time::timeout(IO_TIMEOUT, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(peer = %to, error = %e, "controller peer: write failed; reconnecting");
                    break;
                }
                Err(_) => {
                    tracing::debug!(peer = %to, "controller peer: write timed out; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Sleeps the backoff (doubling it); `true` if `stop` fired instead.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(RECONNECT_MAX);
    tokio::select! {
        biased;
        _ = stop.changed() => true,
        _ = tokio::time::sleep(wait) => false,
    }
}
