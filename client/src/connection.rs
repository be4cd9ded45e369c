//! One TCP connection to a broker: framing, correlation ids and pipelining.
//!
//! ## Wire format
//!
//! Every request and response is a frame: a big-endian `i32` length, then that many bytes.
//! A request frame holds the request header (api key, api version, correlation id, client id, and
//! tagged fields in the flexible versions) and the body. A response frame holds the correlation id
//! (plus tagged fields for flexible response headers) and the body.
//!
//! ## Pipelining
//!
//! Kafka answers the requests of one connection in the order it received them. So the
//! connection keeps a FIFO of waiters: [`Connection::start`] writes a request and queues a waiter
//! under one lock (so queue order equals wire order), and a reader task pops the front waiter for
//! each response frame, checking the correlation id. Any number of requests may be in flight;
//! callers bound that themselves.
//!
//! Runs under madsim: the stream is split with `tokio::io::split` (not `into_split`), every write
//! is followed by `flush()`, and the reader task is aborted when the connection is dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex as SyncMutex;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, oneshot};

/// Largest response frame we accept by default. Fetch responses are bounded by the request's
/// `max_bytes`; this only guards against a broken length prefix.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// Why a request did not get a response.
#[derive(Debug, Error)]
pub enum ConnectionError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// The connection broke. Requests already written may or may not have been executed.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The connection had already broken before this request: it was not sent.
    #[error("connection already broken, request not sent: {0}")]
    Broken(String),
    #[error("encode {api:?} v{version}: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("decode {api:?} v{version} response: {reason}")]
    Decode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("api {api:?}: broker supports v{min}..=v{max}, we need one of v{our_min}..=v{our_max}")]
    NoCommonVersion {
        api: ApiKey,
        min: i16,
        max: i16,
        our_min: i16,
        our_max: i16,
    },
}

impl ConnectionError {
    /// True when the request may have reached the broker and been executed anyway.
    pub fn is_indefinite(&self) -> bool {
        matches!(self, ConnectionError::Closed(_))
    }

    /// True when the connection is unusable and a new one is needed.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            ConnectionError::Closed(_)
                | ConnectionError::Broken(_)
                | ConnectionError::Connect { .. }
        )
    }
}

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header; brokers log it.
    pub client_id: String,
    /// Upper bound on a response frame, see [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub max_response_bytes: usize,
    /// Ask the broker for its version ranges on connect, so [`Connection::version_for`] can pick.
    pub api_versions_handshake: bool,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "strata-client".to_string(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            api_versions_handshake: true,
        }
    }
}

/// A waiter for one response: the raw frame (starting at the correlation id) or why none came.
type Waiter = oneshot::Sender<Result<Bytes, String>>;

/// State shared by the writers and the reader task.
struct Shared {
    /// Waiters in wire order, with their correlation ids.
    pending: VecDeque<(i32, Waiter)>,
    /// Set once the connection broke; later requests fail at once with this reason.
    closed: Option<String>,
    /// Next correlation id.
    next_correlation_id: i32,
}

impl Shared {
    /// Marks the connection broken and fails every waiter.
    fn fail_all(&mut self, reason: &str) {
        if self.closed.is_none() {
            self.closed = Some(reason.to_string());
        }
        for (_, w) in self.pending.drain(..) {
            let _ = w.send(Err(reason.to_string()));
        }
    }
}

/// A pipelined connection to one broker. Share it with `Arc` to send from several tasks.
pub struct Connection {
    addr: String,
    config: ConnectionConfig,
    writer: Mutex<WriteHalf<TcpStream>>,
    shared: Arc<SyncMutex<Shared>>,
    reader: tokio::task::JoinHandle<()>,
    /// The broker's `(min, max)` per api key, from the handshake (empty without one).
    versions: Vec<(i16, i16, i16)>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A request written to the socket whose response has not been read yet.
pub struct InFlight<T> {
    rx: oneshot::Receiver<Result<Bytes, String>>,
    api: ApiKey,
    version: i16,
    response_header_version: i16,
    _marker: std::marker::PhantomData<T>,
}

impl<T: Decodable> InFlight<T> {
    /// Waits for the response and decodes it.
    pub async fn wait(self) -> Result<T, ConnectionError> {
        let frame = match self.rx.await {
            Ok(Ok(frame)) => frame,
            Ok(Err(reason)) => return Err(ConnectionError::Closed(reason)),
            Err(_) => return Err(ConnectionError::Closed("reader task ended".to_string())),
        };
        decode_response(frame, self.api, self.version, self.response_header_version)
    }
}

fn decode_response<T: Decodable>(
    mut frame: Bytes,
    api: ApiKey,
    version: i16,
    header_version: i16,
) -> Result<T, ConnectionError> {
    let err = |reason: String| ConnectionError::Decode {
        api,
        version,
        reason,
    };
    kafka_protocol::messages::ResponseHeader::decode(&mut frame, header_version)
        .map_err(|e| err(format!("header: {e}")))?;
    let body = T::decode(&mut frame, version).map_err(|e| err(e.to_string()))?;
    if frame.has_remaining() {
        return Err(err(format!("{} trailing bytes", frame.remaining())));
    }
    Ok(body)
}

impl Connection {
    /// Connects and, if configured, runs the ApiVersions handshake.
    pub async fn connect(
        addr: &str,
        config: ConnectionConfig,
    ) -> Result<Connection, ConnectionError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ConnectionError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = tokio::io::split(stream);
        let shared = Arc::new(SyncMutex::new(Shared {
            pending: VecDeque::new(),
            closed: None,
            next_correlation_id: 1,
        }));
        let reader = tokio::spawn(read_loop(
            read_half,
            Arc::clone(&shared),
            config.max_response_bytes,
        ));
        let mut conn = Connection {
            addr: addr.to_string(),
            config,
            writer: Mutex::new(write_half),
            shared,
            reader,
            versions: Vec::new(),
        };
        if conn.config.api_versions_handshake {
            // v3 is the first flexible version and what current clients send first.
            let req = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("strata-client"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            // A broker that refuses v3 answers with a v0-shaped body we cannot decode at v3; the
            // frame is consumed either way, so we just go on without version ranges.
            match conn.request::<ApiVersionsRequest>(&req, 3).await {
                Ok(resp) if resp.error_code == 0 => {
                    conn.versions = resp
                        .api_keys
                        .iter()
                        .map(|k| (k.api_key, k.min_version, k.max_version))
                        .collect();
                }
                Ok(_) | Err(ConnectionError::Decode { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(conn)
    }

    /// True once the connection broke; every later request fails with [`ConnectionError::Broken`].
    pub fn is_broken(&self) -> bool {
        lock(&self.shared).closed.is_some()
    }

    /// Gives up on the connection (a request timed out: the broker or the path to it is stuck):
    /// every request in flight fails with [`ConnectionError::Closed`] (indefinite: it may still
    /// be executed), later ones with [`ConnectionError::Broken`], and the reader stops. The
    /// socket closes when the last handle is dropped.
    pub fn close(&self, reason: &str) {
        lock(&self.shared).fail_all(reason);
        self.reader.abort();
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version in `ours` that the broker also supports (per the handshake), or
    /// `ours.1` when there was no handshake.
    pub fn version_for(&self, api: ApiKey, ours: (i16, i16)) -> Result<i16, ConnectionError> {
        if self.versions.is_empty() {
            return Ok(ours.1);
        }
        let Some(&(_, min, max)) = self.versions.iter().find(|(k, _, _)| *k == api as i16) else {
            return Err(ConnectionError::NoCommonVersion {
                api,
                min: -1,
                max: -1,
                our_min: ours.0,
                our_max: ours.1,
            });
        };
        let v = ours.1.min(max);
        if v < ours.0 || v < min {
            return Err(ConnectionError::NoCommonVersion {
                api,
                min,
                max,
                our_min: ours.0,
                our_max: ours.1,
            });
        }
        Ok(v)
    }

    /// Sends a request and waits for its response.
    pub async fn request<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ConnectionError> {
        self.start(req, version).await?.wait().await
    }

    /// Writes a request and returns a handle to its response, without waiting: call it several
    /// times to pipeline.
    pub async fn start<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<InFlight<R::Response>, ConnectionError> {
        let (tx, rx) = oneshot::channel();
        self.write_request(req, version, Some(tx)).await?;
        let api = api_key(R::KEY)?;
        Ok(InFlight {
            rx,
            api,
            version,
            response_header_version: <R::Response as HeaderVersion>::header_version(version),
            _marker: std::marker::PhantomData,
        })
    }

    /// Writes a request that gets no response (a Produce with `acks=0`).
    pub async fn send_without_response<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<(), ConnectionError> {
        self.write_request(req, version, None).await
    }

    async fn write_request<R: Request>(
        &self,
        req: &R,
        version: i16,
        waiter: Option<Waiter>,
    ) -> Result<(), ConnectionError> {
        let api = api_key(R::KEY)?;
        let encode_err = |reason: String| ConnectionError::Encode {
            api,
            version,
            reason,
        };
        // Hold the writer lock from taking the correlation id until the frame is flushed, so the
        // waiter queue and the wire agree on order.
        let mut writer = self.writer.lock().await;
        let correlation_id = {
            let mut shared = lock(&self.shared);
            if let Some(reason) = &shared.closed {
                return Err(ConnectionError::Broken(reason.clone()));
            }
            let id = shared.next_correlation_id;
            shared.next_correlation_id = id.wrapping_add(1);
            id
        };
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.config.client_id.clone())));
        let header_version = R::header_version(version);
        let mut buf = BytesMut::new();
        buf.put_i32(0); // length, patched below
        header
            .encode(&mut buf, header_version)
            .map_err(|e| encode_err(e.to_string()))?;
        req.encode(&mut buf, version)
            .map_err(|e| encode_err(e.to_string()))?;
        let len = i32::try_from(buf.len() - 4).map_err(|_| encode_err("frame too large".into()))?;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        if let Some(w) = waiter {
            lock(&self.shared).pending.push_back((correlation_id, w));
        }
        let written = async {
            writer.write_all(&buf).await?;
            writer.flush().await
        }
        .await;
        if let Err(e) = written {
            let reason = format!("write: {e}");
            lock(&self.shared).fail_all(&reason);
            return Err(ConnectionError::Closed(reason));
        }
        Ok(())
    }

    /// Writes raw bytes to the socket (for tests that send malformed frames on purpose). A
    /// response to them, if any, is not matched to a waiter.
    pub async fn write_raw(&self, bytes: &[u8]) -> Result<(), ConnectionError> {
        let mut writer = self.writer.lock().await;
        let written = async {
            writer.write_all(bytes).await?;
            writer.flush().await
        }
        .await;
        written.map_err(|e| ConnectionError::Closed(format!("write: {e}")))
    }
}

fn api_key(key: i16) -> Result<ApiKey, ConnectionError> {
    ApiKey::try_from(key).map_err(|_| ConnectionError::Closed(format!("unknown api key {key}")))
}

fn lock(m: &SyncMutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding this lock leaves the queue consistent (every change is one call).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads response frames and hands each to the waiter at the front of the queue.
async fn read_loop(mut read: ReadHalf<TcpStream>, shared: Arc<SyncMutex<Shared>>, max: usize) {
    let reason = loop {
        let mut len = [0u8; 4];
        if let Err(e) = read.read_exact(&mut len).await {
            break format!("read: {e}");
        }
        let len = i32::from_be_bytes(len);
        if len < 4 || len as usize > max {
            break format!("response frame length {len} out of range 4..={max}");
        }
        let mut frame = vec![0u8; len as usize];
        if let Err(e) = read.read_exact(&mut frame).await {
            break format!("read: {e}");
        }
        let frame = Bytes::from(frame);
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let mut s = lock(&shared);
        match s.pending.pop_front() {
            Some((expected, w)) if expected == correlation_id => {
                let _ = w.send(Ok(frame));
            }
            Some((expected, w)) => {
                let reason =
                    format!("correlation id {correlation_id} arrived, {expected} expected");
                let _ = w.send(Err(reason.clone()));
                s.fail_all(&reason);
                return;
            }
            None => {
                let reason = format!("unsolicited response with correlation id {correlation_id}");
                s.fail_all(&reason);
                return;
            }
        }
    };
    lock(&shared).fail_all(&reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use tokio::net::TcpListener;

    /// Reads `n` request frames, then answers each (in order) with a Metadata v1 response whose
    /// controller id is the request's correlation id; with `close_after` it instead closes after
    /// reading that many.
    async fn responder(listener: TcpListener, n: usize, close_after: Option<usize>) {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut ids = Vec::new();
        for i in 0..n {
            if close_after == Some(i) {
                return;
            }
            let mut len = [0u8; 4];
            sock.read_exact(&mut len).await.expect("len");
            let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
            sock.read_exact(&mut frame).await.expect("frame");
            ids.push(i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]));
        }
        for id in ids {
            let mut buf = BytesMut::new();
            buf.put_i32(0);
            buf.put_i32(id);
            MetadataResponse::default()
                .with_controller_id(id.into())
                .encode(&mut buf, 1)
                .expect("encode");
            let len = (buf.len() - 4) as i32;
            buf[0..4].copy_from_slice(&len.to_be_bytes());
            sock.write_all(&buf).await.expect("write");
        }
        sock.flush().await.expect("flush");
    }

    fn no_handshake() -> ConnectionConfig {
        ConnectionConfig {
            api_versions_handshake: false,
            ..ConnectionConfig::default()
        }
    }

    #[tokio::test]
    async fn pipelined_requests_get_their_own_responses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = tokio::spawn(responder(listener, 5, None));
        let conn = Connection::connect(&addr, no_handshake())
            .await
            .expect("connect");
        let mut in_flight = Vec::new();
        for _ in 0..5 {
            in_flight.push(
                conn.start(&MetadataRequest::default(), 1)
                    .await
                    .expect("start"),
            );
        }
        let mut ids = Vec::new();
        for f in in_flight {
            ids.push(f.wait().await.expect("response").controller_id.0);
        }
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        server.await.expect("responder");
    }

    #[tokio::test]
    async fn connection_loss_after_sending_is_indefinite() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = tokio::spawn(responder(listener, 2, Some(1)));
        let conn = Connection::connect(&addr, no_handshake())
            .await
            .expect("connect");
        let f = conn
            .start(&MetadataRequest::default(), 1)
            .await
            .expect("start");
        let err = f.wait().await.expect_err("the peer closed");
        assert!(err.is_indefinite(), "{err}");
        server.await.expect("responder");
        let later = conn.request(&MetadataRequest::default(), 1).await;
        assert!(
            matches!(later, Err(ConnectionError::Broken(_))),
            "a request on a broken connection is not sent: {later:?}"
        );
    }

    #[test]
    fn response_header_and_body_decode() {
        let body = MetadataResponse::default().with_controller_id(3.into());
        let mut buf = BytesMut::new();
        buf.put_i32(77);
        body.encode(&mut buf, 1).expect("encode");
        let decoded: MetadataResponse =
            decode_response(buf.freeze(), ApiKey::Metadata, 1, 0).expect("decode");
        assert_eq!(decoded.controller_id, 3);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let body = MetadataResponse::default();
        let mut buf = BytesMut::new();
        buf.put_i32(1);
        body.encode(&mut buf, 1).expect("encode");
        buf.put_u8(0);
        let r: Result<MetadataResponse, _> = decode_response(buf.freeze(), ApiKey::Metadata, 1, 0);
        assert!(matches!(r, Err(ConnectionError::Decode { .. })));
    }
}
