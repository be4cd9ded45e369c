//! The controller service: the tokio driver of the controller quorum (`strata_core::quorum`)
//! and the controller decisions (`Controller`), serving the `CONTROLLER://` listener.
//!
//! Map: [`ControllerService`] binds and starts; [`driver`] is the single owner task holding
//! the quorum and the controller (module docs: its invariants); [`transport`] accepts
//! connections and runs one sender task per peer; [`wire`] frames envelopes; [`client`] is the
//! brokers' side ([`ControllerClient`]).
//!
//! ```text
//!  brokers ──Request──▶ transport ──Input──▶ driver ──propose──▶ Quorum ──persist (off reactor)
//!  peers ────Raft─────▶ transport ──Input──▶ driver ◀──committed── Quorum
//!                                            driver ──Raft──▶ peer sender tasks ──▶ peers
//!                                            driver ──replay──▶ Controller ──▶ image watch
//! ```
//!
//! Files: the quorum's under `<data_dir>/__cluster_metadata/` (formats in
//! `strata_core::quorum`). Raft snapshots hold `postcard(MetadataImage)`; normal entries hold
//! `postcard(Vec<MetadataRecord>)`.
//!
//! Timing: Raft ticks every `tick_ms`, each period drawn from `[tick_ms/2, 3·tick_ms/2]` by a
//! `StdRng` seeded from `seed` and the node id — the only source of election-timeout spread,
//! so a simulation replays exactly from its seed.

pub mod client;
pub mod driver;
pub mod transport;
pub mod voter;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use strata_core::metadata::MetadataImage;
use strata_core::quorum::{Quorum, QuorumConfig};
use strata_core::storage::Storage;
use strata_core::types::NodeId;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::sync::watch;
use tokio::task::JoinHandle;

pub use client::{ClientError, ControllerClient};
pub use driver::Status;
pub use strata_core::controller::ControllerConfig;
pub use voter::Voter;

use driver::{Driver, DriverConfig, off_reactor};
use strata_core::controller::{Controller, TopicConfigPolicy};

use crate::config::Config;
use crate::topic_config::TopicConfigTable;

/// Subdirectory of the data dir holding the quorum's files (Kafka's name for the metadata log).
pub const METADATA_DIR: &str = "__cluster_metadata";
/// Inputs queued for the driver; Raft messages beyond are dropped, requests wait.
const INBOX: usize = 4096;

/// Settings of one controller.
#[derive(Debug, Clone)]
pub struct ControllerServiceConfig {
    /// This controller's `node.id`; must be among `voters`.
    pub node_id: NodeId,
    /// Every voter, this one included.
    pub voters: Vec<Voter>,
    /// Where the `CONTROLLER://` listener binds (`host:port`, port 0 allowed) when started with
    /// [`ControllerService::start`].
    pub listen: String,
    /// The node's data dir; quorum files go to `<data_dir>/__cluster_metadata/`.
    pub data_dir: PathBuf,
    pub controller: ControllerConfig,
    /// Seeds the tick jitter.
    pub seed: u64,
    /// Raft tick period (ms). Elections take 10 ticks, heartbeats 2.
    pub tick_ms: u64,
    /// How long a request may wait for its turn and its commit before `REQUEST_TIMED_OUT`.
    pub request_timeout: Duration,
    /// Compact the quorum log once this many entries follow the snapshot.
    pub compact_after_entries: usize,
    /// The topic config table config changes (IncrementalAlterConfigs) are checked against:
    /// names, kinds, and the broker defaults that APPEND/SUBTRACT and the cross-checks use.
    /// [`ControllerServiceConfig::new`] gives the built-in defaults; a node sets its own.
    pub topic_configs: Arc<dyn TopicConfigPolicy>,
}

impl ControllerServiceConfig {
    /// Defaults for everything but identity, voters and paths.
    pub fn new(node_id: NodeId, voters: Vec<Voter>, listen: String, data_dir: PathBuf) -> Self {
        ControllerServiceConfig {
            node_id,
            voters,
            listen,
            data_dir,
            controller: ControllerConfig::kafka_defaults("strata-cluster"),
            seed: 0,
            tick_ms: 100,
            request_timeout: Duration::from_secs(10),
            compact_after_entries: 10_000,
            topic_configs: Arc::new(TopicConfigTable::new(Config::default())),
        }
    }
}

/// Entry points.
#[derive(Debug)]
pub struct ControllerService;

impl ControllerService {
    /// Binds `config.listen` and starts.
    pub async fn start(
        config: ControllerServiceConfig,
        storage: Arc<dyn Storage>,
    ) -> anyhow::Result<ControllerHandle> {
        ControllerService::bind(&config.listen)
            .await?
            .start(config, storage)
            .await
    }

    /// Binds the listener only (step one of two: tests bind every voter on port 0 first, then
    /// start each with the resolved addresses).
    pub async fn bind(listen: &str) -> anyhow::Result<BoundController> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot bind the controller listener {listen}"))?;
        let local_addr = listener
            .local_addr()
            .context("listener has no local address")?;
        Ok(BoundController {
            listener,
            local_addr,
        })
    }
}

/// A bound, not yet started controller listener.
#[derive(Debug)]
pub struct BoundController {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl BoundController {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Recovers the quorum from `storage` and starts serving (`config.listen` is ignored).
    pub async fn start(
        self,
        config: ControllerServiceConfig,
        storage: Arc<dyn Storage>,
    ) -> anyhow::Result<ControllerHandle> {
        anyhow::ensure!(
            config.voters.iter().any(|v| v.id == config.node_id),
            "node {} is not among the controller voters",
            config.node_id
        );
        let dir = config.data_dir.join(METADATA_DIR);
        let mut quorum_config =
            QuorumConfig::new(config.node_id, config.voters.iter().map(|v| v.id).collect());
        quorum_config.max_entries_in_memory = config.compact_after_entries.max(1);
        let open_storage = storage.clone();
        let (quorum, snapshot) = off_reactor(storage.latency_hint(), move || {
            Quorum::open(open_storage, &dir, quorum_config)
        })
        .await?
        .context("cannot recover the controller quorum")?;

        let (stop_tx, stop_rx) = watch::channel(false);
        let peers: BTreeMap<NodeId, mpsc::Sender<Vec<u8>>> = config
            .voters
            .iter()
            .filter(|v| v.id != config.node_id)
            .map(|v| {
                let tx = transport::spawn_peer_sender(v.id, v.addr(), stop_rx.clone());
                (v.id, tx)
            })
            .collect();
        let (status_tx, status_rx) = watch::channel(Status::default());
        let (image_tx, image_rx) = watch::channel(Arc::new(MetadataImage::default()));
        let mut controller = Controller::new(config.controller.clone());
        controller.set_topic_config_policy(config.topic_configs.clone());
        let driver = Driver::new(
            DriverConfig {
                node_id: config.node_id,
                seed: config.seed,
                tick_ms: config.tick_ms,
                request_timeout: config.request_timeout,
            },
            quorum,
            snapshot,
            controller,
            storage,
            peers,
            status_tx,
            image_tx,
        )?;
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
        tokio::spawn(transport::accept_loop(
            self.listener,
            inbox_tx,
            stop_rx.clone(),
        ));
        let driver = tokio::spawn(driver.run(inbox_rx, stop_rx));
        tracing::info!(node = %config.node_id, addr = %self.local_addr, "controller started");
        Ok(ControllerHandle {
            local_addr: self.local_addr,
            status: status_rx,
            image: image_rx,
            stop: stop_tx,
            driver,
        })
    }
}

/// A running controller.
#[derive(Debug)]
pub struct ControllerHandle {
    local_addr: SocketAddr,
    status: watch::Receiver<Status>,
    image: watch::Receiver<Arc<MetadataImage>>,
    stop: watch::Sender<bool>,
    driver: JoinHandle<anyhow::Result<()>>,
}

impl ControllerHandle {
    /// The bound `CONTROLLER://` address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The quorum leader as this node knows it.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.status.borrow().leader
    }

    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        self.status.borrow().active
    }

    /// Leadership and liveness, as a watch.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The latest replayed image (a co-located broker reads it without RPC).
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// Stops the listener, the connections, the peer senders and the driver. Returns the
    /// driver's fatal error, if it had stopped on one.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.driver
            .await
            .map_err(|e| anyhow::anyhow!("controller driver task failed: {e}"))?
    }
}
