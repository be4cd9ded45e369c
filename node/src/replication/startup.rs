//! Starting and stopping a cluster node: the co-located controller (if this node is a voter),
//! the broker's link to the quorum, and its background tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use strata_core::metadata::MetadataImage;
use strata_core::storage::Storage;
use strata_core::types::NodeId;
use tokio::sync::watch;

use super::{ClusterState, isr_sync, membership};
use crate::broker::Broker;
use crate::config::Config;
use crate::controller::{ControllerClient, ControllerHandle};

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
    let voters: Vec<(NodeId, String)> = config
        .cluster
        .voters
        .iter()
        .map(|(id, l)| (NodeId(*id), l.addr()))
        .collect();
    let timeout = Duration::from_millis(config.cluster_int("controller.quorum.request.timeout.ms"));
    let (image, _) = watch::channel(Arc::new(MetadataImage::default()));
    let cluster = Arc::new(ClusterState {
        node_id: NodeId(config.node_id),
        image,
        client: ControllerClient::new(voters, timeout),
        broker_epoch: AtomicI64::new(-1),
        controller,
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
    if let Some(c) = &cluster.controller {
        c.shutdown().await;
    }
}

async fn start_controller(
    config: &Config,
    storage: Arc<dyn Storage>,
) -> anyhow::Result<ControllerHandle> {
    crate::controller::start_for_node(config, storage).await
}
