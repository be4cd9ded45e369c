//! The active controller's decisions (KRaft, KIP-631), sans IO.
//!
//! The controller decides; the metadata log remembers. A [`Controller`] holds the committed
//! [`MetadataImage`] and answers each broker request with a [`Response`] **and** the
//! [`MetadataRecord`]s that carry it out. It never changes the image itself: the records are
//! proposed to the Raft quorum, and the image changes only when they are committed and
//! [`Controller::replay`]ed — on this node and every other, identically. Only the broker sessions
//! (last heartbeat per broker) are local, unreplicated state: a new active controller starts
//! every session afresh ([`Controller::on_activated`]), as KRaft does.
//!
//! ## Driving contract
//!
//! ```text
//! let mut controller = Controller::new(config);
//! // on every node: replay each committed entry (or install a snapshot's image)
//! controller.replay(index, &records);           controller.install_image(image);
//! // on the active controller only:
//! controller.on_activated(now);                 // its term's first entry is applied
//! loop {
//!     // exactly one of:
//!     let (response, records) = controller.handle(now, &request);
//!     let records = controller.tick(now);       // at next_deadline() and after each replay
//!     propose(records); wait until committed and replayed; then send the response
//! }
//! ```
//!
//! **One decision in flight.** `handle` and `tick` decide against the image as replayed so far,
//! so the driver calls them only when every record they returned before is committed and
//! replayed (or was dropped because this node lost leadership, after which it is not active
//! until the next `on_activated`). Broker epochs (`image.offset + 1`) and partition epochs
//! (`+ 1` on the image) are unique only under this rule. Error responses carry no records.
//!
//! `next_deadline` returns when `tick` has work: the next session expiry, the next leader
//! rebalance check, or "now" (the last `now` seen) when a cluster id is missing or a leaderless
//! partition can be given a leader.
//!
//! ## Invariants (asserted, also in release builds)
//!
//! - Every emitted partition record keeps `leader ∈ ISR ⊆ replicas`, a non-empty ISR, and bumps
//!   the partition epoch by one per change and the leader epoch by one exactly when the leader
//!   changes (KIP-497; `changes::check_partition_change`).
//! - A newly chosen leader is unfenced and its replica is not offline; an ISR grows only by such
//!   replicas; a fenced broker, and an offline replica, lead nothing and are in no ISR except as
//!   its last member (`changes::Changes::finish`, and `MetadataImage::replay` for offline
//!   replicas).
//! - Broker epochs of successive registrations of a broker strictly grow.
//! - Producer id blocks are disjoint and increasing (KIP-730).
//!
//! Files: `brokers.rs` (register, heartbeat, fence, unfence), `election.rs` (clean, unclean and
//! preferred election, KIP-460), `offline.rs` (offline replicas, KIP-858 per partition),
//! `assignment.rs` (replica placement), `topics.rs` (create,
//! delete, create partitions), `topic_configs.rs` (IncrementalAlterConfigs, KIP-339, and
//! AlterConfigs), `alter_partition.rs` (KIP-497), `producer_ids.rs` (KIP-730),
//! `changes.rs` (the staged batch every decision goes through).

mod alter_partition;
mod assignment;
mod brokers;
mod changes;
mod config;
mod election;
mod offline;
mod producer_ids;
mod topic_configs;
mod topics;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use config::{ConfigError, ControllerConfig, MAX_PARTITIONS_PER_TOPIC};
pub use topic_configs::{ConfigShape, TopicConfigPolicy, apply_config_changes};
pub use topics::{INVALID_REPLICA_ASSIGNMENT, MAX_TOPIC_NAME_LENGTH, validate_topic_name};

use changes::Changes;

use crate::error::ErrorCode;
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::rpc::{Request, Response};
use crate::types::{Instant, NodeId};

/// The controller state machine (see the module docs for the driving contract).
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    /// The committed metadata: changed only by `replay` and `install_image`.
    image: MetadataImage,
    /// Last heartbeat (or registration, or activation) per broker. Not replicated: a new active
    /// controller grants every broker a full session from its activation.
    sessions: BTreeMap<NodeId, Instant>,
    /// When the last automatic preferred-leader pass ran (`None`: not active yet).
    last_rebalance_check: Option<Instant>,
    /// The latest `now` given, for `next_deadline`'s "due now".
    last_now: Instant,
    /// The topic config table config changes are checked against (`None`: they are refused).
    topic_configs: Option<Arc<dyn TopicConfigPolicy>>,
}

impl Controller {
    /// A controller with an empty image.
    ///
    /// # Panics
    /// If `config` does not pass [`ControllerConfig::validate`] (the node validates first).
    pub fn new(config: ControllerConfig) -> Controller {
        if let Err(e) = config.validate() {
            panic!("invalid controller config: {e}");
        }
        Controller {
            config,
            image: MetadataImage::default(),
            sessions: BTreeMap::new(),
            last_rebalance_check: None,
            last_now: Instant::default(),
            topic_configs: None,
        }
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The committed metadata image.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Applies the records committed at metadata offset `offset`.
    pub fn replay(&mut self, offset: u64, records: &[MetadataRecord]) {
        self.image.replay(offset, records);
    }

    /// Replaces the image with one from a Raft snapshot.
    pub fn install_image(&mut self, image: MetadataImage) {
        self.image = image;
        self.sessions
            .retain(|id, _| self.image.brokers.contains_key(id));
    }

    /// This node just became the active controller (its Raft term's first entry is applied):
    /// every registered broker gets a fresh session starting at `now` (KIP-631: a failover
    /// must not fence brokers whose heartbeats went to the old controller), and the rebalance
    /// interval starts.
    pub fn on_activated(&mut self, now: Instant) {
        self.observe(now);
        self.sessions = self.image.brokers.keys().map(|id| (*id, now)).collect();
        self.last_rebalance_check = Some(now);
    }

    /// Decides `request` against the committed image (see the module docs).
    pub fn handle(&mut self, now: Instant, request: &Request) -> (Response, Vec<MetadataRecord>) {
        self.observe(now);
        let (response, records) = match request {
            Request::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
            } => self.handle_register(now, *broker_id, host, *port, rack),
            Request::Heartbeat {
                broker_id,
                broker_epoch,
                metadata_offset,
                want_shutdown,
            } => self.handle_heartbeat(
                now,
                *broker_id,
                *broker_epoch,
                *metadata_offset,
                *want_shutdown,
            ),
            Request::FetchMetadata { .. } => (
                Response::Error {
                    error_code: ErrorCode::INVALID_REQUEST.0,
                    message: "FetchMetadata is served by the driver, not the controller".into(),
                },
                Vec::new(),
            ),
            Request::AlterPartition(r) => self.handle_alter_partition(r),
            Request::CreateTopics(r) => self.handle_create_topics(r),
            Request::DeleteTopics { names } => self.handle_delete_topics(names),
            Request::CreatePartitions(r) => self.handle_create_partitions(r),
            Request::ElectLeaders(r) => {
                let mut changes = Changes::new(&self.image);
                let results = election::elect_leaders(&mut changes, r);
                (Response::Topics(results), changes.finish())
            }
            Request::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => self.handle_allocate_producer_ids(*broker_id, *broker_epoch),
            Request::OfflineReplicas {
                broker_id,
                broker_epoch,
                partitions,
            } => self.handle_offline_replicas(*broker_id, *broker_epoch, partitions),
            Request::AlterConfigs(r) => self.handle_alter_configs(r),
        };
        if is_error(&response) {
            assert!(
                records.is_empty(),
                "error responses carry no records: {response:?}"
            );
        }
        (response, records)
    }

    /// Periodic work (see the module docs): the cluster id, session expiry, elections for
    /// leaderless partitions, and — every `leader_imbalance_check_interval_ms` when
    /// `auto_leader_rebalance` is on — preferred leaders back. Returns records, maybe none.
    pub fn tick(&mut self, now: Instant) -> Vec<MetadataRecord> {
        self.observe(now);
        let unclean = self.config.unclean_leader_election;
        let mut changes = Changes::new(&self.image);
        if self.image.cluster_id.is_none() {
            changes.push(MetadataRecord::ClusterId {
                cluster_id: self.config.cluster_id.clone(),
            });
        }
        brokers::fence_expired(&mut self.sessions, &self.config, now, &mut changes);
        election::elect_leaderless(&mut changes, unclean, |_, _, _| true);
        if self.config.auto_leader_rebalance {
            let due = match self.last_rebalance_check {
                None => {
                    self.last_rebalance_check = Some(now);
                    false
                }
                Some(last) => {
                    now >= last
                        .saturating_add_millis(self.config.leader_imbalance_check_interval_ms)
                }
            };
            if due {
                self.last_rebalance_check = Some(now);
                election::rebalance_preferred(&mut changes);
            }
        }
        changes.finish()
    }

    /// When `tick` next has work to do (`None`: nothing scheduled).
    pub fn next_deadline(&self) -> Option<Instant> {
        let changes = Changes::new(&self.image);
        let due_now = self.image.cluster_id.is_none()
            || changes.all_partitions().iter().any(|(topic, index)| {
                changes.partition(topic, *index).is_some_and(|p| {
                    p.leader.is_none()
                        && election::elect(
                            &changes,
                            topic,
                            *index,
                            &p,
                            self.config.unclean_leader_election,
                        )
                        .is_some()
                })
            });
        if due_now {
            return Some(self.last_now);
        }
        let timeout = self.config.session_timeout_nanos();
        let expiry = self
            .image
            .live_brokers()
            .filter_map(|b| self.sessions.get(&b.broker_id))
            .map(|last| Instant(last.0.saturating_add(timeout).saturating_add(1)))
            .min();
        let rebalance = self
            .last_rebalance_check
            .filter(|_| self.config.auto_leader_rebalance)
            .map(|last| last.saturating_add_millis(self.config.leader_imbalance_check_interval_ms));
        [expiry, rebalance].into_iter().flatten().min()
    }

    /// The broker is registered with exactly this epoch (its current incarnation).
    fn epoch_is_current(&self, broker_id: NodeId, broker_epoch: i64) -> bool {
        self.image
            .brokers
            .get(&broker_id)
            .is_some_and(|b| b.broker_epoch == broker_epoch)
    }

    fn observe(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }
}

fn is_error(response: &Response) -> bool {
    match response {
        Response::Heartbeat { error_code, .. }
        | Response::AlterPartition { error_code, .. }
        | Response::ProducerIds { error_code, .. }
        | Response::OfflineReplicas { error_code }
        | Response::Error { error_code, .. } => *error_code != ErrorCode::NONE.0,
        Response::NotController { .. } => true,
        Response::Registered { .. }
        | Response::Metadata(_)
        | Response::Topics(_)
        | Response::AlterConfigs(_) => false,
    }
}
