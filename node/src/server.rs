//! The broker process: bind, recover, accept, serve, and shut down gracefully.
//!
//! Shutdown order: stop accepting; tell connections to stop reading; let their in-flight
//! requests finish (bounded by [`SHUTDOWN_GRACE`]); fsync every log; return.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use strata_core::storage::Storage;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::sync::watch;

use crate::broker::Broker;
use crate::config::{Config, Listener};
use crate::connection::{Limits, serve};
use crate::fs_storage::FsStorage;
use crate::memory_pool::MemoryPool;

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound, recovered broker, ready to serve.
#[derive(Debug)]
pub struct Server {
    /// Shared broker state.
    broker: Arc<Broker>,
    /// The Kafka listener.
    listener: TcpListener,
    /// Where it is bound (port resolved when `listeners` says 0).
    local_addr: SocketAddr,
    /// `queued.max.request.bytes`, shared by every connection.
    pool: MemoryPool,
}

/// Counts live connections; decrements on drop so every exit path is counted.
struct ConnectionGuard {
    /// Shared counter.
    live: Arc<AtomicUsize>,
    /// Held until the connection ends; shutdown waits for all of these to drop.
    _done: mpsc::Sender<()>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Server {
    /// Binds on real files (`log.dirs`).
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        Server::bind_with_storage(config, Arc::new(FsStorage)).await
    }

    /// Binds the listener, then opens (recovers) every log on `storage`.
    pub async fn bind_with_storage(
        mut config: Config,
        storage: Arc<dyn Storage>,
    ) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(config.listener.addr())
            .await
            .with_context(|| format!("cannot bind listener {}", config.listener.addr()))?;
        let local_addr = listener
            .local_addr()
            .context("listener has no local address")?;
        if config.advertised.is_none() {
            config.advertised = Some(Listener {
                host: config.listener.host.clone(),
                port: local_addr.port(),
            });
        }
        let broker = if config.cluster.enabled() {
            crate::replication::startup::open(config, storage).await?
        } else {
            Broker::open(config, storage).context("cannot open the data dir")?
        };
        tracing::info!(
            "strata listening on {} (node.id {}, data {})",
            local_addr,
            broker.config.node_id,
            broker.config.data_dir.display()
        );
        let pool = MemoryPool::new(broker.config.queued_max_request_bytes);
        Ok(Server {
            broker,
            listener,
            local_addr,
            pool,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The pool of request bytes (`queued.max.request.bytes`) its connections lease from.
    pub fn memory_pool(&self) -> &MemoryPool {
        &self.pool
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server {
            broker,
            listener,
            pool,
            ..
        } = self;
        let config = broker.config.clone();
        let limits = Limits {
            max_frame: config.socket_request_max_bytes,
            max_pending: config.queued_max_requests,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let live = Arc::new(AtomicUsize::new(0));
        broker.start_flushers();
        crate::replication::startup::spawn_tasks(&broker);
        tokio::spawn(retention_loop(broker.clone(), stop_rx.clone()));
        tokio::spawn(crate::cleaner::cleaner_loop(
            broker.clone(),
            stop_rx.clone(),
        ));
        tokio::spawn(broker.groups.clone().run(broker.clone(), stop_rx.clone()));
        tokio::spawn(recovery_checkpoint_loop(broker.clone(), stop_rx.clone()));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if live.load(Ordering::Relaxed) >= config.max_connections {
                            tracing::warn!(%peer, max = config.max_connections, "max.connections reached; closing new connection");
                            drop(stream);
                            continue;
                        }
                        live.fetch_add(1, Ordering::Relaxed);
                        let guard = ConnectionGuard { live: live.clone(), _done: done_tx.clone() };
                        spawn_connection(&broker, stream, peer, limits, &pool, &stop_rx, guard);
                    }
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        drop(listener);
        crate::replication::startup::shutdown(&broker).await;
        let _ = stop_tx.send(true);
        drop(done_tx);
        if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!(
                live = live.load(Ordering::Relaxed),
                "in-flight requests still running after the grace period"
            );
        }
        if !broker.flush_all().await {
            anyhow::bail!("a log failed to flush during shutdown");
        }
        tracing::info!("strata stopped; every log flushed");
        Ok(())
    }
}

/// Serves `stream` on its own task; `guard` counts the connection until it ends.
fn spawn_connection(
    broker: &Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    pool: &MemoryPool,
    stop: &watch::Receiver<bool>,
    guard: ConnectionGuard,
) {
    let _ = stream.set_nodelay(true);
    let (broker, pool, stop) = (broker.clone(), pool.clone(), stop.clone());
    tokio::spawn(async move {
        serve(broker, stream, peer, limits, pool, stop).await;
        drop(guard);
    });
}

async fn retention_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.retention_check_interval_ms);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => broker.enforce_retention(),
        }
    }
}

async fn recovery_checkpoint_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.recovery_checkpoint_interval_ms);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {
                broker.checkpoint_recovery_points(false);
            }
        }
    }
}

/// Binds and serves until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Server::bind(config).await?.run(shutdown).await
}
