//! Starting and stopping a cluster node: the co-located controller (if this node is a voter),
//! the broker's link to the quorum, and its background tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::sync::watch;
use anyhow::Context;
use strata_core::metadata::MetadataImage;
use strata_core::storage::Storage;
use strata_core::types::NodeId;

use super::{ClusterState, isr_sync, membership};
use crate::broker::Broker;
use crate::clock;
use crate::config::Config;
use crate::controller::{
    ControllerClient, ControllerConfig, ControllerHandle, ControllerService,
    ControllerServiceConfig, Voter,
};
use crate::metadata_store::new_cluster_id;

/// How long a stopping broker waits for its leaderships to move away.
const CONTROLLED_SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);

/// Opens a cluster node: starts its controller (if it is one), then the broker state.
pub async fn open(config: Config, storage: Arc<dyn Storage>) -> anyhow::Result<Arc<Broker>> {
    let controller = if config.cluster.is_controller {
        Some(
            start_controller(&config, storage.clone())
                .await
                .context("cannot start the controller")?,
        )
    } else {
        None
    };
    let voters = voters(&config);
    let timeout = Duration::from_millis(config.cluster_int("controller.quorum.request.timeout.ms"));
    let (image, _) = watch::channel(Arc::new(MetadataImage::default()));
    let cluster = Arc::new(ClusterState {
        node_id: NodeId(config.node_id),
        image,
        client: ControllerClient::new(voters, timeout),
        broker_epoch: AtomicI64::new(-1),
        controller: std::sync::Mutex::new(controller),
        creating: Default::default(),
        fetchers: Default::default(),
        stopping: AtomicBool::new(false),
    });
    Broker::open_cluster(config, storage, cluster).context("cannot open the data dir")
}

/// Starts membership, metadata and ISR tasks (cluster brokers only).
pub fn spawn_tasks(broker: &Arc<Broker>) {
    if broker.cluster().is_none() || !broker.config.cluster.is_broker {
        return;
    }
    tokio::spawn(membership::run_heartbeats(broker.clone()));
    tokio::spawn(membership::run_metadata(broker.clone()));
    tokio::spawn(isr_sync::run_shrinker(broker.clone()));
}

/// Controlled shutdown, then stops the background tasks and the controller.
pub async fn shutdown(broker: &Arc<Broker>) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    if broker.config.cluster.is_broker {
        membership::controlled_shutdown(broker, CONTROLLED_SHUTDOWN_BUDGET).await;
    }
    cluster.stopping.store(true, Ordering::Relaxed);
    let controller = cluster
        .controller
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(c) = controller
        && let Err(e) = c.shutdown().await
    {
        tracing::warn!(error = %e, "the controller stopped with an error");
    }
}

fn voters(config: &Config) -> Vec<Voter> {
    config
        .cluster
        .voters
        .iter()
        .map(|(id, l)| Voter {
            id: NodeId(*id),
            host: l.host.clone(),
            port: l.port,
        })
        .collect()
}

/// The controller's settings from the node's configuration (KRaft names).
fn controller_config(config: &Config, seed: u64) -> ControllerConfig {
    ControllerConfig {
        session_timeout_ms: config.cluster_int("broker.session.timeout.ms"),
        default_num_partitions: config.num_partitions,
        default_replication_factor: i16::try_from(config.cluster_int("default.replication.factor"))
            .unwrap_or(1),
        auto_leader_rebalance: config.value("auto.leader.rebalance.enable") == "true",
        leader_imbalance_check_interval_ms: config
            .cluster_int("leader.imbalance.check.interval.seconds")
            .saturating_mul(1000),
        unclean_leader_election: config.value("unclean.leader.election.enable") == "true",
        producer_id_block_size: 1000,
        // Used only if this controller is the first to be active (it writes the ClusterId
        // record); every node then reads the committed one.
        cluster_id: new_cluster_id(u128::from(seed)),
    }
}

async fn start_controller(
    config: &Config,
    storage: Arc<dyn Storage>,
) -> anyhow::Result<ControllerHandle> {
    let listener = config
        .cluster
        .controller_listener
        .clone()
        .context("a controller needs a CONTROLLER listener")?;
    // Seeded from the clock (the simulator's is virtual, so runs replay) and the node id.
    let seed = (clock::now_nanos() as u64) ^ (u64::from(config.node_id as u32) << 32);
    let election_ms = config.cluster_int("controller.quorum.election.timeout.ms");
    let mut service = ControllerServiceConfig::new(
        NodeId(config.node_id),
        voters(config),
        listener.addr(),
        config.data_dir.clone(),
    );
    service.controller = controller_config(config, seed);
    service
        .controller
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid controller settings: {e}"))?;
    service.seed = seed;
    // Topic config changes are checked against this node's broker defaults.
    service.topic_configs = Arc::new(crate::topic_config::TopicConfigTable::new(config.clone()));
    service.tick_ms = (election_ms / 10).max(10);
    service.request_timeout = Duration::from_millis(
        config
            .cluster_int("controller.quorum.request.timeout.ms")
            .max(5_000),
    );
    ControllerService::start(service, storage).await
}
