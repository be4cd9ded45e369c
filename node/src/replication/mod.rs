//! The broker side of a cluster: membership (registration, heartbeats, metadata), the mapping
//! of metadata onto local partitions, follower fetching, and ISR changes.
//!
//! ```text
//!   controller quorum ──FetchMetadata──▶ membership ──image──▶ reconcile ──roles──▶ partitions
//!          ▲                                                                 │      ▲
//!          └──────────── AlterPartition (isr_sync) ◀── leader ISR state ◀────┘      │
//!                                                       follower fetcher ──Fetch────┘ (other brokers)
//! ```
//!
//! Invariants:
//! - The broker's [`MetadataImage`] changes only by replaying committed records in order (or by
//!   replacing it whole with a newer image from the controller).
//! - Roles change only in [`reconcile`], from the image; leader epochs a partition holds never
//!   go back.
//! - A follower appends only batches fetched from the leader of its current epoch, after
//!   truncating to the leader's log (KIP-101/279), so replicas never diverge below the high
//!   watermark.

pub mod admin;
pub mod fetch_session;
pub mod fetcher;
pub mod isr_sync;
pub mod membership;
pub mod reconcile;
mod replicas;
pub mod startup;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex};

use crate::sync::watch;
use strata_core::metadata::MetadataImage;
use strata_core::types::NodeId;

use crate::controller::{ControllerClient, ControllerHandle};

/// What a broker in a cluster knows and holds beyond its partitions.
#[derive(Debug)]
pub struct ClusterState {
    /// This broker's id.
    pub node_id: NodeId,
    /// The latest replayed metadata image.
    pub image: watch::Sender<Arc<MetadataImage>>,
    /// Talks to the active controller.
    pub client: ControllerClient,
    /// The epoch of this broker's registration (-1 until registered).
    pub broker_epoch: AtomicI64,
    /// The co-located controller, if this node is one (taken at shutdown).
    pub controller: Mutex<Option<ControllerHandle>>,
    /// Topics an auto-create request is in flight for (one request per topic at a time).
    pub creating: Mutex<BTreeSet<String>>,
    /// Leaders a fetcher task currently runs for.
    pub fetchers: Mutex<BTreeSet<NodeId>>,
    /// Set at shutdown: background tasks exit.
    pub stopping: AtomicBool,
}

impl ClusterState {
    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// The active controller as far as this node knows (-1 if unknown).
    pub fn controller_id(&self) -> i32 {
        if let Some(c) = &*self.controller.lock().unwrap_or_else(|p| p.into_inner())
            && let Some(id) = c.leader_id()
        {
            return id.0;
        }
        self.client.active_controller().map(|n| n.0).unwrap_or(-1)
    }
}
