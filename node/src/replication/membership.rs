//! Cluster membership of a broker (KIP-631): register, heartbeat, and follow the metadata log.
//!
//! - Registration gives a new `broker_epoch`; the broker starts fenced and is unfenced by the
//!   controller once a heartbeat reports it has replayed the metadata up to its registration.
//! - Heartbeats every `broker.heartbeat.interval.ms`; `STALE_BROKER_EPOCH` (the controller
//!   fenced this incarnation, e.g. after a long pause) means register again.
//! - Offline replicas (a failed log, or one that would not open; see `replicas`): before each
//!   heartbeat, when the set differs from the last one the controller accepted, the whole set
//!   goes in an `OfflineReplicas` request (KIP-858's offline log directories, per partition).
//!   A registration clears the controller's copy, so the set is reported again after it,
//!   before the heartbeat that unfences this incarnation: an offline replica is never elected
//!   because the controller had not heard of it yet, except on a fresh start, where no log is
//!   open before the first metadata arrives (the report then follows within a heartbeat
//!   interval, and moves the leadership on).
//! - Metadata: a long-poll `FetchMetadata` from the image's offset; each answer is replayed in
//!   order (or replaces the image when the controller sends a whole one) and then reconciled
//!   onto the local partitions.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_core::ErrorCode;
use strata_core::rpc::{MetadataDelta, Request, Response};

use super::reconcile;
use crate::broker::Broker;
use crate::replication::ClusterState;

/// Pause after a failed controller request.
const RETRY: Duration = Duration::from_millis(100);
/// Long-poll time of metadata fetches.
const METADATA_WAIT_MS: u32 = 500;

/// Registers (retrying until a controller answers) and returns the broker epoch.
async fn register(broker: &Arc<Broker>) -> Option<i64> {
    let cluster = broker.cluster()?;
    let advertised = broker
        .config
        .advertised
        .clone()
        .unwrap_or_else(|| broker.config.listener.clone());
    loop {
        if cluster.stopping.load(Ordering::Relaxed) {
            return None;
        }
        let request = Request::RegisterBroker {
            broker_id: cluster.node_id,
            host: advertised.host.clone(),
            port: advertised.port,
            rack: None,
        };
        match cluster.client.send(request).await {
            Ok(Response::Registered { broker_epoch }) => {
                cluster.broker_epoch.store(broker_epoch, Ordering::SeqCst);
                tracing::info!(broker_epoch, "registered with the controller");
                return Some(broker_epoch);
            }
            Ok(other) => tracing::debug!(?other, "registration not accepted yet"),
            Err(e) => tracing::debug!(error = %e, "registration failed; retrying"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Heartbeats until the broker stops; re-registers when the controller says the epoch is stale.
pub async fn run_heartbeats(broker: Arc<Broker>) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let interval = Duration::from_millis(broker.config.cluster_int("broker.heartbeat.interval.ms"));
    if register(&broker).await.is_none() {
        return;
    }
    // What the controller holds for this incarnation: nothing right after a registration.
    let mut reported: BTreeSet<(String, i32)> = BTreeSet::new();
    loop {
        if cluster.stopping.load(Ordering::Relaxed) {
            return;
        }
        let stale = match report_offline(&broker, &cluster, &mut reported).await {
            Report::Stale => true,
            Report::Done => match heartbeat(&cluster).await {
                Some(code) => code == ErrorCode::STALE_BROKER_EPOCH.0,
                None => false,
            },
        };
        if stale {
            tracing::warn!("the controller fenced this broker's epoch; registering again");
            if register(&broker).await.is_none() {
                return;
            }
            reported.clear();
            continue;
        }
        tokio::time::sleep(interval).await;
    }
}

/// One heartbeat; its error code, if the controller answered one.
async fn heartbeat(cluster: &ClusterState) -> Option<i16> {
    let request = Request::Heartbeat {
        broker_id: cluster.node_id,
        broker_epoch: cluster.broker_epoch.load(Ordering::SeqCst),
        metadata_offset: cluster.image().offset,
        want_shutdown: false,
    };
    match cluster.client.send(request).await {
        Ok(Response::Heartbeat { error_code, .. }) => Some(error_code),
        Ok(other) => {
            tracing::debug!(?other, "unexpected heartbeat answer");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "heartbeat failed");
            None
        }
    }
}

/// How reporting offline replicas ended.
enum Report {
    /// Nothing to say, said, or to be tried again at the next heartbeat.
    Done,
    /// The controller no longer knows this incarnation: register again.
    Stale,
}

/// Sends this broker's offline replicas when they differ from `reported` (what the controller
/// last accepted), and remembers them once accepted.
async fn report_offline(
    broker: &Arc<Broker>,
    cluster: &ClusterState,
    reported: &mut BTreeSet<(String, i32)>,
) -> Report {
    let offline = broker.offline_replicas(&cluster.image(), cluster.node_id);
    if offline == *reported {
        return Report::Done;
    }
    let request = Request::OfflineReplicas {
        broker_id: cluster.node_id,
        broker_epoch: cluster.broker_epoch.load(Ordering::SeqCst),
        partitions: offline.iter().cloned().collect(),
    };
    match cluster.client.send(request).await {
        Ok(Response::OfflineReplicas { error_code }) if error_code == ErrorCode::NONE.0 => {
            tracing::warn!(offline = ?offline, "the controller knows this broker's offline replicas");
            *reported = offline;
            Report::Done
        }
        Ok(Response::OfflineReplicas { error_code })
            if error_code == ErrorCode::STALE_BROKER_EPOCH.0 =>
        {
            Report::Stale
        }
        Ok(other) => {
            tracing::debug!(?other, "offline replicas not accepted yet");
            Report::Done
        }
        Err(e) => {
            tracing::debug!(error = %e, "offline replicas report failed");
            Report::Done
        }
    }
}

/// Follows the metadata log and reconciles every change onto the partitions.
pub async fn run_metadata(broker: Arc<Broker>) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    loop {
        if cluster.stopping.load(Ordering::Relaxed) {
            return;
        }
        let current = cluster.image();
        let request = Request::FetchMetadata {
            from_offset: current.offset,
            max_wait_ms: METADATA_WAIT_MS,
        };
        let asked = tokio::time::Instant::now();
        // An answer that brings nothing new before the long poll could have ended (the
        // controller holds too many waiters, or it is behind this broker) is not asked again at
        // once: that would spin without end between the two.
        let nothing_new = || async move {
            if asked.elapsed() < Duration::from_millis(u64::from(METADATA_WAIT_MS) / 2) {
                tokio::time::sleep(RETRY).await;
            }
        };
        let next = match cluster.client.send(request).await {
            Ok(Response::Metadata(MetadataDelta::Records(batches))) => {
                let batches: Vec<_> = batches
                    .into_iter()
                    .filter(|(offset, _)| *offset > current.offset)
                    .collect();
                if batches.is_empty() {
                    nothing_new().await;
                    continue;
                }
                let mut image = (*current).clone();
                let mut last = image.offset;
                for (offset, records) in &batches {
                    if *offset <= last {
                        tracing::warn!(offset, last, "metadata batches out of order; refetching");
                        break;
                    }
                    image.replay(*offset, records);
                    last = *offset;
                }
                image
            }
            Ok(Response::Metadata(MetadataDelta::Image(image))) => {
                if image.offset <= current.offset {
                    nothing_new().await;
                    continue;
                }
                *image
            }
            Ok(other) => {
                tracing::debug!(?other, "metadata fetch not served");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "metadata fetch failed");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let image = Arc::new(next);
        cluster.image.send_replace(image.clone());
        reconcile::apply(&broker, &image);
    }
}

/// Controlled shutdown: asks the controller to move this broker's leaderships away and fence
/// it, waiting at most `budget`.
pub async fn controlled_shutdown(broker: &Arc<Broker>, budget: Duration) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + budget;
    while tokio::time::Instant::now() < deadline {
        let request = Request::Heartbeat {
            broker_id: cluster.node_id,
            broker_epoch: cluster.broker_epoch.load(Ordering::SeqCst),
            metadata_offset: cluster.image().offset,
            want_shutdown: true,
        };
        if let Ok(Response::Heartbeat {
            shutdown_ready: true,
            ..
        }) = cluster.client.send(request).await
        {
            tracing::info!("controlled shutdown complete");
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::warn!("controlled shutdown did not complete in time");
}
