//! [`ControllerClient`]: how brokers reach the active controller.
//!
//! It sends each request to the last controller known to be active, follows `NotController`
//! hints, and otherwise cycles through the voters with a small doubling backoff until the
//! request timeout. It keeps one connection per voter, reused by concurrent requests (matched
//! by `correlation_id`); a connection that fails is dropped and made anew on next use.
//!
//! A timeout or a dropped connection is an indefinite outcome: the request may have been
//! committed. Controller requests are written to be retried (registration makes a new epoch,
//! heartbeats and fetches are idempotent, admin requests report `TOPIC_ALREADY_EXISTS`...).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_core::rpc::{Envelope, Request, Response};
use strata_core::types::NodeId;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::voter::Voter;
use super::wire::{FrameReader, frame};

/// First retry backoff; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// Shortest per-attempt timeout (a long poll adds its `max_wait_ms`).
const MIN_ATTEMPT: Duration = Duration::from_millis(250);
/// Frames queued per connection.
const CONNECTION_QUEUE: usize = 256;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no controller answered within the request timeout (last: {last_error})")]
    Timeout { last_error: String },
    #[error("no controller voters configured")]
    NoVoters,
}

/// A client of the controller quorum, shared by a broker's tasks.
#[derive(Debug)]
pub struct ControllerClient {
    voters: Vec<Voter>,
    request_timeout: Duration,
    next_correlation: AtomicU64,
    /// Never held across an await.
    state: Mutex<ClientState>,
}

#[derive(Debug, Default)]
struct ClientState {
    /// The controller that last answered with something other than `NotController`.
    active: Option<NodeId>,
    conns: BTreeMap<NodeId, Arc<Connection>>,
}

impl ControllerClient {
    pub fn new(voters: Vec<Voter>, request_timeout: Duration) -> ControllerClient {
        ControllerClient {
            voters,
            request_timeout,
            next_correlation: AtomicU64::new(1),
            state: Mutex::new(ClientState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClientState> {
        self.state.lock().expect("controller client lock poisoned")
    }

    /// The controller believed active, if any.
    pub fn active_controller(&self) -> Option<NodeId> {
        self.state().active
    }

    /// Sends `request` to the active controller, wherever it is, within the request timeout.
    pub async fn send(&self, request: Request) -> Result<Response, ClientError> {
        let first = self.voters.first().ok_or(ClientError::NoVoters)?.id;
        let deadline = Instant::now() + self.request_timeout;
        let long_poll = match &request {
            Request::FetchMetadata { max_wait_ms, .. } => {
                Duration::from_millis(u64::from(*max_wait_ms))
            }
            _ => Duration::ZERO,
        };
        let mut target = self.state().active.unwrap_or(first);
        let mut backoff = MIN_BACKOFF;
        let mut last_error = String::from("none tried");
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout { last_error });
            }
            let attempt =
                (MIN_ATTEMPT.max(self.request_timeout / 4) + long_poll).min(deadline - now);
            match self.try_once(target, &request, attempt).await {
                Ok(Response::NotController { leader }) => {
                    last_error =
                        format!("controller {target} is not active (leader hint {leader:?})");
                    self.state().active = None;
                    target = match leader {
                        Some(l) if self.voters.iter().any(|v| v.id == l) => l,
                        _ => self.next_voter(target),
                    };
                }
                Ok(response) => {
                    self.state().active = Some(target);
                    return Ok(response);
                }
                Err(e) => {
                    last_error = format!("controller {target}: {e}");
                    let mut state = self.state();
                    state.conns.remove(&target);
                    if state.active == Some(target) {
                        state.active = None;
                    }
                    drop(state);
                    target = self.next_voter(target);
                }
            }
            let now = Instant::now();
            tokio::time::sleep(backoff.min(deadline.saturating_duration_since(now))).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn next_voter(&self, after: NodeId) -> NodeId {
        let i = self.voters.iter().position(|v| v.id == after).unwrap_or(0);
        self.voters[(i + 1) % self.voters.len()].id
    }

    async fn try_once(
        &self,
        target: NodeId,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, String> {
        let existing = self
            .state()
            .conns
            .get(&target)
            .filter(|c| !c.is_closed())
            .cloned();
        let conn = match existing {
            Some(conn) => conn,
            None => {
                let voter = self
                    .voters
                    .iter()
                    .find(|v| v.id == target)
                    .ok_or("unknown voter")?;
                let conn = tokio::time::timeout(timeout, Connection::connect(&voter.addr()))
                    .await
                    .map_err(|_| "connect timed out".to_string())??;
                let conn = Arc::new(conn);
                self.state().conns.insert(target, conn.clone());
                conn
            }
        };
        let correlation_id = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        conn.request(correlation_id, request.clone(), timeout).await
    }
}

/// One connection to a controller: a writer task, a reader task dispatching responses.
#[derive(Debug)]
struct Connection {
    out: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<BTreeMap<u64, oneshot::Sender<Response>>>>,
    closed: Arc<AtomicBool>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Connection {
    async fn connect(addr: &str) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = tokio::io::split(stream);
        let closed = Arc::new(AtomicBool::new(false));
        let pending: Arc<Mutex<BTreeMap<u64, oneshot::Sender<Response>>>> = Arc::default();
        let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(CONNECTION_QUEUE);
        let writer_closed = closed.clone();
        let writer = tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                let write = async {
                    wr.write_all(&bytes).await?;
                    wr.flush().await
                };
                if write.await.is_err() {
                    break;
                }
            }
            writer_closed.store(true, Ordering::Relaxed);
        });
        let reader_closed = closed.clone();
        let reader_pending = pending.clone();
        let addr = addr.to_string();
        let reader = tokio::spawn(async move {
            let mut frames = FrameReader::new(rd);
            loop {
                match frames.next().await {
                    Ok(Some(Envelope::Response {
                        correlation_id,
                        response,
                    })) => {
                        let waiter = reader_pending
                            .lock()
                            .expect("pending lock poisoned")
                            .remove(&correlation_id);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(response);
                        }
                    }
                    Ok(Some(_)) => {
                        tracing::warn!(%addr, "controller sent a non-response frame; closing");
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "controller connection: closing");
                        break;
                    }
                }
            }
            reader_closed.store(true, Ordering::Relaxed);
            // Dropping the waiters tells every pending request the connection is gone.
            reader_pending
                .lock()
                .expect("pending lock poisoned")
                .clear();
        });
        Ok(Connection {
            out,
            pending,
            closed,
            reader,
            writer,
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    async fn request(
        &self,
        correlation_id: u64,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, String> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending lock poisoned")
            .insert(correlation_id, tx);
        let bytes = frame(&Envelope::Request {
            correlation_id,
            request,
        });
        let forget = || {
            self.pending
                .lock()
                .expect("pending lock poisoned")
                .remove(&correlation_id);
        };
        // The timeout covers the queueing too: a writer stuck on an unreachable peer fills the
        // queue, and a request must not wait for it longer than its timeout.
        let exchange = async {
            if self.out.send(bytes).await.is_err() {
                return Err("connection closed".to_string());
            }
            rx.await.map_err(|_| "connection closed".to_string())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                forget();
                Err(e)
            }
            Err(_) => {
                forget();
                Err("request timed out".into())
            }
        }
    }
}
