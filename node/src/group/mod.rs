//! The broker side of consumer groups: one [`strata_core::group::GroupCoordinator`] per
//! `__consumer_offsets` partition this broker leads, bound to that partition's leader epoch.
//!
//! ```text
//!   handlers ──submit(partition, request)──▶ GroupCoordinators ──▶ Slot (one per led partition)
//!                                                 ▲                   │  core.handle / tick / on_high_watermark
//!   role changes (role_signal) ──reconcile────────┘                   ▼
//!                                             records ──one batch──▶ Partition::append_as_leader
//!                                             replies ◀── parked until the high watermark passes them
//! ```
//!
//! - **Coordinator of a group**: the leader of partition `abs(javaHash(group)) % partitions` of
//!   [`OFFSETS_TOPIC`] ([`strata_core::group::partition_for`]), with the partition count of the
//!   topic as it exists (`offsets.topic.num.partitions` when this broker created it).
//! - **Leadership**: [`GroupCoordinators::reconcile`] runs on every role or topic-map change
//!   (the broker's `role_signal`) and on a request for a partition without a coordinator. A
//!   partition led in epoch `e` with no slot gets one for `e`, which loads (see [`slot`]); a slot
//!   whose partition no longer leads in its epoch (another epoch, a follower, a failed log, the
//!   topic deleted or replaced) ends: parked replies get NOT_COORDINATOR, and a load still
//!   running is dropped. Requests for a partition with no slot get NOT_COORDINATOR.
//! - **Writes**: a call's records are one batch appended through the same leader append path as
//!   Produce; the coordinator parks replies until the partition's high watermark passes the
//!   batch (so fsynced on every ISR member), and fails them when the append fails (below
//!   `min.insync.replicas`: COORDINATOR_NOT_AVAILABLE) or the epoch ends.
//! - **Time**: each slot's task sleeps until the core's `next_deadline()` on tokio's clock
//!   (simulated under madsim) and passes `Now { instant: broker.now(), wall_ms }`; member ids
//!   come from a seed derived from node, partition and epoch. No other randomness.
//! - Clients cannot produce to the offsets topic (INVALID_TOPIC_EXCEPTION, as Kafka's "cannot
//!   append to internal topic"): only the coordinator writes it, so a leader's log does not move
//!   while it loads.
//!
//! Size of the offsets topic: see [`offsets_topic`].

pub mod batches;
pub mod host;
pub mod offsets_topic;
pub mod slot;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use strata_core::ErrorCode;
use strata_core::group::{GroupConfig, Now, Request, RequestId, Response, partition_for};
use tokio::sync::oneshot;

use crate::clock;
use crate::config::Config;
use crate::sync::watch;
use slot::Slot;

pub use host::GroupHost;
pub use offsets_topic::OFFSETS_TOPIC;

/// Where a submitted request's reply comes from.
pub type Pending = Result<oneshot::Receiver<Response>, ErrorCode>;

/// Every group coordinator of this broker (see the module docs).
#[derive(Debug)]
pub struct GroupCoordinators {
    /// The core's settings, from the broker's `group.*` / `offsets.*` settings.
    config: GroupConfig,
    /// Seeds member ids together with partition and epoch.
    node_id: i32,
    /// Slots by offsets partition. Locked only for short synchronous sections, before a slot's
    /// own lock and never inside it.
    slots: Mutex<BTreeMap<i32, Arc<Slot>>>,
    /// The next [`RequestId`].
    next_request: AtomicU64,
}

/// The core's settings from the broker's.
pub fn group_config(config: &Config) -> GroupConfig {
    let int = |name: &str| config.cluster_int(name);
    let i32_of = |name: &str| i32::try_from(int(name)).unwrap_or(i32::MAX);
    GroupConfig {
        min_session_timeout_ms: i32_of("group.min.session.timeout.ms"),
        max_session_timeout_ms: i32_of("group.max.session.timeout.ms"),
        initial_rebalance_delay_ms: i32_of("group.initial.rebalance.delay.ms"),
        max_size: usize::try_from(int("group.max.size")).unwrap_or(usize::MAX),
        offset_metadata_max_bytes: usize::try_from(int("offset.metadata.max.bytes"))
            .unwrap_or(usize::MAX),
        offsets_retention_ms: i64::try_from(int("offsets.retention.minutes"))
            .unwrap_or(i64::MAX / 60_000)
            .saturating_mul(60_000),
        offsets_retention_check_interval_ms: int("offsets.retention.check.interval.ms"),
        snapshot_min_records: int("offsets.snapshot.min.records"),
        ..GroupConfig::default()
    }
}

impl GroupCoordinators {
    pub fn new(config: &Config) -> GroupCoordinators {
        GroupCoordinators {
            config: group_config(config),
            node_id: config.node_id,
            slots: Mutex::new(BTreeMap::new()),
            next_request: AtomicU64::new(0),
        }
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<i32, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The offsets partition coordinating `group_id`, if the offsets topic exists here.
    pub fn partition_of<H: GroupHost + ?Sized>(host: &H, group_id: &str) -> Option<i32> {
        let topic = host.offsets_topic()?;
        let n = i32::try_from(topic.partitions.len()).ok()?;
        (n > 0).then(|| partition_for(group_id, n))
    }

    /// Brings the slots in line with this broker's leaderships of the offsets topic.
    pub fn reconcile<H: GroupHost>(&self, host: &Arc<H>) {
        let topic = host.offsets_topic();
        let mut ended = Vec::new();
        let mut slots = self.slots();
        slots.retain(|&index, slot| {
            let current = topic
                .as_ref()
                .and_then(|t| {
                    usize::try_from(index)
                        .ok()
                        .and_then(|i| t.partitions.get(i))
                })
                .is_some_and(|p| Arc::ptr_eq(p, &slot.partition));
            let keep = current
                && !slot.is_ended()
                && !slot.partition.state().failed
                && slot.partition.role().leader_epoch() == Some(slot.leader_epoch);
            if !keep {
                ended.push(slot.clone());
            }
            keep
        });
        if let Some(t) = &topic {
            for p in &t.partitions {
                if slots.contains_key(&p.index) || !p.has_log() || p.state().failed {
                    continue;
                }
                let Some(epoch) = p.role().leader_epoch() else {
                    continue;
                };
                tracing::info!(
                    partition = p.index,
                    leader_epoch = epoch,
                    "loading group coordinator"
                );
                let slot = Arc::new(Slot::new(
                    p.clone(),
                    epoch,
                    self.node_id,
                    self.config.clone(),
                ));
                slots.insert(p.index, slot.clone());
                tokio::spawn(slot.drive(host.clone()));
            }
        }
        drop(slots);
        for slot in ended {
            tracing::info!(
                partition = slot.partition.index,
                leader_epoch = slot.leader_epoch,
                "unloading group coordinator"
            );
            slot.end();
        }
    }

    /// The live slot of `partition`; reconciles first when there is none (or it ended), so a
    /// request never waits for the role-change task.
    fn slot<H: GroupHost>(&self, host: &Arc<H>, partition: i32) -> Option<Arc<Slot>> {
        if let Some(slot) = self.slots().get(&partition).filter(|s| !s.is_ended()) {
            return Some(slot.clone());
        }
        self.reconcile(host);
        self.slots().get(&partition).cloned()
    }

    /// Hands `request` to the coordinator of offsets partition `partition` now (in request
    /// order); the reply comes from [`wait`]. No coordinator here: NOT_COORDINATOR.
    pub fn submit<H: GroupHost>(&self, host: &Arc<H>, partition: i32, request: Request) -> Pending {
        let slot = self
            .slot(host, partition)
            .ok_or(ErrorCode::NOT_COORDINATOR)?;
        let id = RequestId(self.next_request.fetch_add(1, Ordering::Relaxed));
        let now = Now {
            instant: host.now(),
            wall_ms: clock::now_ms(),
        };
        slot.call(now, id, request)
    }

    /// As [`GroupCoordinators::submit`], to the coordinator of `group_id`.
    pub fn submit_group<H: GroupHost>(
        &self,
        host: &Arc<H>,
        group_id: &str,
        request: Request,
    ) -> Pending {
        let partition =
            Self::partition_of(host.as_ref(), group_id).ok_or(ErrorCode::NOT_COORDINATOR)?;
        self.submit(host, partition, request)
    }

    /// For requests naming several groups (OffsetFetch v8+, DescribeGroups, DeleteGroups): one
    /// request per coordinator partition, built by `make` from that partition's items, submitted
    /// now. Returns per request the positions in `items` it covers (the core answers groups in
    /// request order) and its pending reply; items whose group has no coordinator here are one
    /// more entry whose reply is NOT_COORDINATOR.
    pub fn submit_by_group<T, H: GroupHost>(
        &self,
        host: &Arc<H>,
        items: Vec<(String, T)>,
        make: impl Fn(Vec<T>) -> Request,
    ) -> Vec<(Vec<usize>, Pending)> {
        let mut by_partition: BTreeMap<Option<i32>, (Vec<usize>, Vec<T>)> = BTreeMap::new();
        for (i, (group_id, item)) in items.into_iter().enumerate() {
            let entry = by_partition
                .entry(Self::partition_of(host.as_ref(), &group_id))
                .or_insert_with(|| (Vec::new(), Vec::new()));
            entry.0.push(i);
            entry.1.push(item);
        }
        by_partition
            .into_iter()
            .map(|(partition, (positions, items))| {
                let pending = match partition {
                    Some(p) => self.submit(host, p, make(items)),
                    None => Err(ErrorCode::NOT_COORDINATOR),
                };
                (positions, pending)
            })
            .collect()
    }

    /// The offsets partitions this broker has a coordinator for (loaded or loading).
    pub fn partitions(&self) -> Vec<i32> {
        self.slots().keys().copied().collect()
    }

    /// Follows role changes until `stop`, then ends every slot.
    pub async fn run<H: GroupHost>(self: Arc<Self>, host: Arc<H>, mut stop: watch::Receiver<bool>) {
        let mut roles = host.roles();
        loop {
            roles.borrow_and_update();
            self.reconcile(&host);
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                r = roles.changed() => if r.is_err() { break },
            }
        }
        self.shutdown();
    }

    /// Ends every slot (broker shutdown): parked replies get NOT_COORDINATOR.
    pub fn shutdown(&self) {
        let slots = std::mem::take(&mut *self.slots());
        for slot in slots.into_values() {
            slot.end();
        }
    }
}

/// The replies of [`GroupCoordinators::submit_by_group`], one per item in item order: `answer`
/// turns a reply into its items' answers (in order), `failed` answers an item whose coordinator
/// gave none (the error) or a reply of the wrong kind or length (UNKNOWN_SERVER_ERROR).
pub async fn gather<A>(
    count: usize,
    submitted: Vec<(Vec<usize>, Pending)>,
    answer: impl Fn(Response) -> Option<Vec<A>>,
    failed: impl Fn(usize, ErrorCode) -> A,
) -> Vec<A> {
    let mut slots: Vec<Option<A>> = (0..count).map(|_| None).collect();
    for (positions, pending) in submitted {
        let answers = match wait(pending).await {
            Ok(r) => answer(r).ok_or(ErrorCode::UNKNOWN_SERVER_ERROR),
            Err(code) => Err(code),
        };
        match answers {
            Ok(answers) if answers.len() == positions.len() => {
                for (i, a) in positions.into_iter().zip(answers) {
                    slots[i] = Some(a);
                }
            }
            Ok(_) => {
                for i in positions {
                    slots[i] = Some(failed(i, ErrorCode::UNKNOWN_SERVER_ERROR));
                }
            }
            Err(code) => {
                for i in positions {
                    slots[i] = Some(failed(i, code));
                }
            }
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.unwrap_or_else(|| failed(i, ErrorCode::UNKNOWN_SERVER_ERROR)))
        .collect()
}

/// The reply to a submitted request; NOT_COORDINATOR if its coordinator ended first.
pub async fn wait(pending: Pending) -> Result<Response, ErrorCode> {
    pending?.await.map_err(|_| ErrorCode::NOT_COORDINATOR)
}

#[cfg(test)]
mod tests;
