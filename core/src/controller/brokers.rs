//! Broker lifecycle (KIP-631): registration, heartbeats, fencing and unfencing.
//!
//! ```text
//!   RegisterBroker ──> registered, fenced ──(heartbeat caught up)──> unfenced
//!        ^                    ^                                         │
//!        │                    └──── session expired / want_shutdown ────┘
//!        └── a new incarnation (new broker_epoch) fences the old one
//! ```
//!
//! - `broker_epoch` is `image.offset + 1` at the time of the request: the driver serialises
//!   proposals and each commits above the image offset it was decided on, so epochs of
//!   successive registrations strictly grow and an old incarnation's heartbeats are refused
//!   with `STALE_BROKER_EPOCH`.
//! - A fenced broker leads nothing and sits in no ISR, except as the **last** member of an ISR
//!   (an ISR is never empty, so that the replica with all committed data is remembered and
//!   becomes leader again when it comes back).
//! - A broker is unfenced once its heartbeat reports a metadata offset at or past its
//!   registration (it has caught up), and then takes back the partitions that were waiting for
//!   it.

use std::collections::BTreeMap;

use super::Controller;
use super::changes::{Changes, Target};
use super::config::ControllerConfig;
use super::election::{elect, elect_leaderless};
use crate::error::ErrorCode;
use crate::metadata::MetadataRecord;
use crate::rpc::Response;
use crate::types::{Instant, NodeId};

impl Controller {
    /// BrokerRegistration (KIP-631).
    pub(super) fn handle_register(
        &mut self,
        now: Instant,
        broker_id: NodeId,
        host: &str,
        port: u16,
        rack: &Option<String>,
    ) -> (Response, Vec<MetadataRecord>) {
        if broker_id.0 < 0 {
            return (
                Response::Error {
                    error_code: ErrorCode::INVALID_REQUEST.0,
                    message: format!("broker id {broker_id} is negative"),
                },
                Vec::new(),
            );
        }
        let broker_epoch = i64::try_from(self.image.offset)
            .ok()
            .and_then(|o| o.checked_add(1))
            .expect("metadata offsets stay below i64::MAX");
        let previous = self.image.brokers.get(&broker_id);
        if let Some(previous) = previous {
            assert!(
                broker_epoch > previous.broker_epoch,
                "broker epochs grow: the previous registration committed at or below the image offset"
            );
        }
        let mut changes = Changes::new(&self.image);
        changes.push(MetadataRecord::RegisterBroker {
            broker_id,
            broker_epoch,
            host: host.to_string(),
            port,
            rack: rack.clone(),
        });
        if previous.is_some() {
            // The old incarnation may have crashed with an unflushed log: it loses its
            // leaderships and leaves ISRs exactly as if it had been fenced, in the same batch.
            fence_partitions(&mut changes, broker_id, self.config.unclean_leader_election);
        }
        let records = changes.finish();
        self.sessions.insert(broker_id, now);
        (Response::Registered { broker_epoch }, records)
    }

    /// BrokerHeartbeat (KIP-631).
    pub(super) fn handle_heartbeat(
        &mut self,
        now: Instant,
        broker_id: NodeId,
        broker_epoch: i64,
        metadata_offset: u64,
        want_shutdown: bool,
    ) -> (Response, Vec<MetadataRecord>) {
        let broker = match self.image.brokers.get(&broker_id) {
            Some(b) if b.broker_epoch == broker_epoch => b,
            _ => {
                return (
                    Response::Heartbeat {
                        error_code: ErrorCode::STALE_BROKER_EPOCH.0,
                        fenced: true,
                        shutdown_ready: false,
                    },
                    Vec::new(),
                );
            }
        };
        let unclean = self.config.unclean_leader_election;
        let mut changes = Changes::new(&self.image);
        let caught_up = i64::try_from(metadata_offset).unwrap_or(i64::MAX) >= broker_epoch;
        let fenced_after = if want_shutdown {
            // Controlled shutdown: leaderships move away now; the broker may exit once fenced.
            if !broker.fenced {
                changes.push(MetadataRecord::FenceBroker {
                    broker_id,
                    broker_epoch,
                });
                fence_partitions(&mut changes, broker_id, unclean);
            }
            true
        } else if broker.fenced && caught_up {
            changes.push(MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            });
            // Partitions waiting for it (it is their last ISR member) come back online.
            elect_leaderless(&mut changes, unclean, |_, _, t| {
                t.replicas.contains(&broker_id)
            });
            false
        } else {
            broker.fenced
        };
        let records = changes.finish();
        self.sessions.insert(broker_id, now);
        (
            Response::Heartbeat {
                error_code: ErrorCode::NONE.0,
                fenced: fenced_after,
                shutdown_ready: want_shutdown && fenced_after,
            },
            records,
        )
    }
}

/// Fences every unfenced broker whose session expired (`now - last heartbeat >
/// broker.session.timeout.ms`). Brokers without a session (registered before this controller
/// took over and not yet seen) get one starting now.
pub(super) fn fence_expired(
    sessions: &mut BTreeMap<NodeId, Instant>,
    config: &ControllerConfig,
    now: Instant,
    changes: &mut Changes<'_>,
) {
    let timeout = config.session_timeout_nanos();
    for (id, broker) in &changes.image().brokers {
        let last = *sessions.entry(*id).or_insert(now);
        if broker.fenced || now.0.saturating_sub(last.0) <= timeout {
            continue;
        }
        tracing::info!(broker_id = %id, "broker session expired: fencing");
        changes.push(MetadataRecord::FenceBroker {
            broker_id: *id,
            broker_epoch: broker.broker_epoch,
        });
        fence_partitions(changes, *id, config.unclean_leader_election);
    }
}

/// The partition changes of fencing `broker` (which `changes` already shows fenced): it leaves
/// every ISR where others remain, and where it led, the first eligible replica in the new ISR
/// takes over (none: the partition goes offline, unless unclean election is on).
pub(super) fn fence_partitions(changes: &mut Changes<'_>, broker: NodeId, unclean: bool) {
    assert!(
        !changes.is_unfenced(broker),
        "fence the broker before moving its partitions"
    );
    for (topic, index) in changes.all_partitions() {
        remove_replica(changes, &topic, index, broker, unclean);
    }
}

/// Takes `broker`'s replica of `topic`-`index`, which may no longer lead or stay in sync (its
/// broker is fenced, or the replica is offline), out of the partition's ISR and leadership: it
/// leaves the ISR unless it is the last member (an ISR is never empty: the replica with every
/// committed record is remembered and leads again when it is back), and if it led, the first
/// eligible replica of the new ISR takes over (none: the partition goes offline, unless unclean
/// election is on). Nothing changes when it neither leads nor is in the ISR.
pub(super) fn remove_replica(
    changes: &mut Changes<'_>,
    topic: &str,
    index: i32,
    broker: NodeId,
    unclean: bool,
) {
    assert!(
        !changes.is_eligible(broker, topic, index),
        "mark the replica fenced or offline before moving {topic}-{index} off broker {broker}"
    );
    let Some(current) = changes.partition(topic, index) else {
        return;
    };
    if !current.isr.contains(&broker) && current.leader != Some(broker) {
        return;
    }
    let isr = if current.isr.len() > 1 {
        current
            .isr
            .iter()
            .copied()
            .filter(|r| *r != broker)
            .collect()
    } else {
        current.isr.clone() // never empty: the last member stays
    };
    let leader = current.leader.filter(|l| *l != broker);
    let mut next = Target {
        replicas: current.replicas.clone(),
        isr,
        leader,
    };
    if next.leader.is_none()
        && let Some(elected) = elect(changes, topic, index, &next, unclean)
    {
        next = elected;
    }
    changes.set_partition(topic, index, next);
}
