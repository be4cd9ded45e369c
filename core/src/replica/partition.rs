//! The replica state of one partition on one broker, sans-IO: its role (sole replica, leader,
//! follower, or neither) with the leader's ISR state, its durable end and its high watermark,
//! and every rule that moves them — Kafka's `Partition` without the log. The node wraps one in a
//! mutex, publishes a snapshot of it to waiters after every call, and runs the log and the
//! flusher beside it; everything a rule decides is here and tested without a runtime.
//!
//! ## Rules
//! - **Appends** ([`PartitionReplica::admit_append`]): only the leader (or the sole replica)
//!   appends, stamping its leader epoch; with `acks=-1` a committed ISR smaller than
//!   `min.insync.replicas` refuses the append first (`NOT_ENOUGH_REPLICAS`), as Kafka's
//!   `appendRecordsToLeader` does. After the wait, [`PartitionReplica::enough_replicas`] decides
//!   `NOT_ENOUGH_REPLICAS_AFTER_APPEND`.
//! - **Durable end** ([`PartitionReplica::on_durable_end`]): the end of what this replica holds
//!   durably — its flushed offset with `fsync.before.ack`, else its log end — as the driver
//!   learns it (a flush completed, or an append without fsync).
//! - **High watermark**: the sole replica's is its durable end; a leader's is the minimum over
//!   the maximal ISR (KIP-497, [`IsrState::high_watermark`]) with its own durable end for itself;
//!   a follower's is its leader's, capped by its own durable end
//!   ([`PartitionReplica::on_leader_high_watermark`]). It only ever moves forward (Kafka's
//!   `maybeIncrementLeaderHW`): every call returns whether it moved, so that the driver wakes
//!   consumers.
//! - **Serving** ([`PartitionReplica::serving_high_watermark`]): a new leader serves consumers
//!   only once its high watermark reached its epoch's start offset; before that it may hold a
//!   lower high watermark than its predecessor published, and consumers never see it go back.
//! - **ISR changes** (KIP-497): a follower's fetch records its progress and may propose an
//!   expansion ([`PartitionReplica::on_follower_fetch`]); the shrinker may propose removals
//!   ([`PartitionReplica::maybe_shrink`]). At most one AlterPartition is in flight
//!   (`alter_in_flight`); its outcome ([`PartitionReplica::on_alter_partition_outcome`]) commits
//!   it, forgets it, or keeps it pending to be resent: an AlterPartition without an answer is
//!   indefinite (cluster seed 1787), so the pending ISR keeps holding the high watermark.
//!
//! ## Invariants (asserted after every change, [`PartitionReplica::assert_invariants`])
//! - The high watermark never goes back.
//! - The sole replica's and a leader's high watermark never pass their own durable end.
//! - A leader holds one leader epoch for its whole role: its ISR state belongs to that epoch,
//!   and it is a member of its committed (hence maximal) ISR.
//! - `min.insync.replicas` is at least 1; the epoch start offset is not negative.

use crate::error::ErrorCode;
use crate::replica::IsrState;
use crate::types::{Instant, NodeId, Offset};

/// The leader's replication state, for one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderState {
    pub leader_epoch: i32,
    /// Log end offset when this broker became leader in `leader_epoch`.
    pub epoch_start_offset: i64,
    /// Followers' progress and the ISR (committed and pending).
    pub isr: IsrState,
    /// `min.insync.replicas` of the topic.
    pub min_insync_replicas: usize,
    /// An AlterPartition for this partition is in flight.
    pub alter_in_flight: bool,
}

/// This broker's role for a partition.
#[derive(Debug, Clone)]
pub enum Role {
    /// Single-node cluster: leader with ISR = {self}, epoch 0.
    Sole,
    Leader(Box<LeaderState>),
    Follower {
        leader: NodeId,
        leader_epoch: i32,
        /// The follower still has to truncate (KIP-279) before it fetches.
        needs_truncation: bool,
    },
    /// Not a replica here, or a replica of an offline partition.
    Remote {
        leader: Option<NodeId>,
        leader_epoch: i32,
    },
}

impl Role {
    /// The leader epoch this broker holds for the partition, if it leads it.
    pub fn leader_epoch(&self) -> Option<i32> {
        match self {
            Role::Sole => Some(0),
            Role::Leader(l) => Some(l.leader_epoch),
            _ => None,
        }
    }

    /// The epoch the broker knows of, leader or not (-1: none).
    pub fn known_epoch(&self) -> i32 {
        match self {
            Role::Sole => 0,
            Role::Leader(l) => l.leader_epoch,
            Role::Follower { leader_epoch, .. } | Role::Remote { leader_epoch, .. } => {
                *leader_epoch
            }
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Sole | Role::Leader(_))
    }
}

/// An ISR change to send to the controller (AlterPartition), already marked pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub isr: Vec<NodeId>,
    /// The leadership that proposes it.
    pub leader_epoch: i32,
    /// The partition state it is based on (the controller refuses it against any other).
    pub partition_epoch: i32,
}

/// What an AlterPartition attempt told the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterPartitionOutcome {
    /// The controller's committed state of this leadership's partition: the change, or, with
    /// `INVALID_UPDATE_VERSION`, the newer state it was refused against.
    Committed {
        isr: Vec<NodeId>,
        partition_epoch: i32,
    },
    /// Refused against the very partition epoch it was based on (`INELIGIBLE_REPLICA`):
    /// nothing was committed, and no earlier attempt can commit any more.
    NotApplied,
    /// No answer, or an answer that says the metadata is about to replace this role: the
    /// pending ISR keeps holding the high watermark and the same proposal goes again.
    Unknown,
}

/// What the driver does after an AlterPartition outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterStep {
    /// The proposal is settled (or belongs to a role that ended): stop.
    Done,
    /// Wait, then ask [`PartitionReplica::resend_pending`] whether to send it again.
    RetryLater,
}

/// The replica state of one partition (see the module docs).
#[derive(Debug, Clone)]
pub struct PartitionReplica {
    role: Role,
    /// The first offset consumers may not see yet.
    high_watermark: i64,
    /// The end of what this replica holds durably (see the module docs).
    durable_end: i64,
}

impl PartitionReplica {
    /// A replica whose log starts at `log_start_offset` and is durable to `durable_end`. The
    /// sole replica's high watermark is its durable end; in a cluster it starts at the log start
    /// and is learnt again from the ISR or the leader, never assumed.
    pub fn new(role: Role, log_start_offset: i64, durable_end: i64) -> PartitionReplica {
        let high_watermark = match role {
            Role::Sole => durable_end,
            _ => log_start_offset.min(durable_end),
        };
        let replica = PartitionReplica {
            role,
            high_watermark,
            durable_end,
        };
        replica.assert_invariants();
        replica
    }

    /// A partition without a local replica: it answers NOT_LEADER_OR_FOLLOWER.
    pub fn remote(leader: Option<NodeId>, leader_epoch: i32) -> PartitionReplica {
        PartitionReplica::new(
            Role::Remote {
                leader,
                leader_epoch,
            },
            0,
            0,
        )
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn durable_end(&self) -> i64 {
        self.durable_end
    }

    /// The leader epoch while this broker leads the partition.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.role.leader_epoch()
    }

    /// A metadata change replaced the role. Returns whether the high watermark moved.
    pub fn on_role_change(&mut self, role: Role) -> bool {
        self.role = role;
        self.advance()
    }

    /// Sets whether the follower of `leader_epoch` must truncate (KIP-279) before it fetches.
    /// `false` if that role ended meanwhile.
    pub fn set_needs_truncation(&mut self, leader_epoch: i32, needs: bool) -> bool {
        match &mut self.role {
            Role::Follower {
                leader_epoch: held,
                needs_truncation,
                ..
            } if *held == leader_epoch => {
                *needs_truncation = needs;
                true
            }
            _ => false,
        }
    }

    /// What the leader checks before an append: its epoch to stamp, or the error to answer.
    /// `expected_epoch` (the group coordinator's) must be that epoch.
    pub fn admit_append(&self, acks: i16, expected_epoch: Option<i32>) -> Result<i32, ErrorCode> {
        let epoch = match &self.role {
            Role::Sole => 0,
            Role::Leader(l) => {
                if acks == -1 && l.isr.isr().len() < l.min_insync_replicas {
                    return Err(ErrorCode::NOT_ENOUGH_REPLICAS);
                }
                l.leader_epoch
            }
            _ => return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
        };
        if expected_epoch.is_some_and(|e| e != epoch) {
            return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        }
        Ok(epoch)
    }

    /// Whether the committed ISR still has `min.insync.replicas` members (checked once a batch
    /// is replicated, as Kafka does).
    pub fn enough_replicas(&self) -> bool {
        match &self.role {
            Role::Leader(l) => l.isr.isr().len() >= l.min_insync_replicas,
            _ => true,
        }
    }

    /// The driver learnt that this replica is durable to `end` (a flush completed, or an append
    /// without fsync). Returns whether the high watermark moved. A report below the durable end
    /// already known changes nothing: two appends without fsync on different connections may
    /// report their log ends out of order (the node reports after releasing the log's lock);
    /// only a truncation ([`PartitionReplica::on_truncated`]) lowers it.
    pub fn on_durable_end(&mut self, end: i64) -> bool {
        self.durable_end = self.durable_end.max(end);
        self.advance()
    }

    /// A follower cut its log to `log_end_offset` (KIP-279): what it holds durably ends there
    /// at most.
    pub fn on_truncated(&mut self, log_end_offset: i64) {
        self.durable_end = self.durable_end.min(log_end_offset);
        self.assert_invariants();
    }

    /// The log was replaced by an empty one that starts and ends at `log_end_offset` (a
    /// follower starting afresh at its leader's log start): that empty log is durable already.
    pub fn on_log_replaced(&mut self, log_end_offset: i64) {
        self.durable_end = log_end_offset;
        self.assert_invariants();
    }

    /// A follower learnt its leader's high watermark: its own is that, capped by what it holds.
    /// Returns whether it moved.
    pub fn on_leader_high_watermark(&mut self, leader_high_watermark: i64) -> bool {
        let moved = self.publish(leader_high_watermark.min(self.durable_end));
        self.assert_invariants();
        moved
    }

    /// The high watermark consumers may be served, or the error to answer: this broker does not
    /// lead the partition, or it is a new leader whose high watermark has not yet reached its
    /// epoch's start offset.
    pub fn serving_high_watermark(&self) -> Result<i64, ErrorCode> {
        match &self.role {
            Role::Sole => Ok(self.high_watermark),
            Role::Leader(l) if self.high_watermark >= l.epoch_start_offset => {
                Ok(self.high_watermark)
            }
            _ => Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
        }
    }

    /// A follower `replica` fetched, reporting `fetch_offset` as its *durable* log end (the
    /// driver passes the durable end the follower reported, never more than the offset it
    /// fetches from), while the leader's log ends at `leader_log_end_offset` (the driver answers
    /// `OFFSET_OUT_OF_RANGE` beyond it without calling this). Records its progress, moves the
    /// high watermark, and returns an ISR expansion to send if it caught up; `Err` answers the
    /// fetch.
    pub fn on_follower_fetch(
        &mut self,
        now: Instant,
        replica: NodeId,
        fetch_offset: i64,
        leader_log_end_offset: i64,
    ) -> Result<FollowerFetch, ErrorCode> {
        let Role::Leader(l) = &mut self.role else {
            return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        };
        if !l.isr.replicas().contains(&replica) {
            return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        }
        l.isr.on_follower_fetch(
            now,
            replica,
            Offset(fetch_offset),
            Offset(leader_log_end_offset),
        );
        let high_watermark_moved = self.advance();
        let expansion = self.maybe_expand(now);
        Ok(FollowerFetch {
            high_watermark_moved,
            expansion,
        })
    }

    /// With no change in flight, an ISR expansion adding every follower that reached the high
    /// watermark and this leader's epoch start, marked pending.
    fn maybe_expand(&mut self, now: Instant) -> Option<IsrProposal> {
        let hw = Offset(self.high_watermark);
        let Role::Leader(l) = &mut self.role else {
            return None;
        };
        if l.alter_in_flight {
            return None;
        }
        let isr = l.isr.maybe_expand(hw, Offset(l.epoch_start_offset))?;
        Some(propose(l, isr, now))
    }

    /// With no change in flight, an ISR shrink removing the followers that lag more than
    /// `replica_lag_time_max_ms` behind a log ending at `leader_log_end_offset`, marked pending.
    pub fn maybe_shrink(
        &mut self,
        now: Instant,
        leader_log_end_offset: i64,
        replica_lag_time_max_ms: u64,
    ) -> Option<IsrProposal> {
        let Role::Leader(l) = &mut self.role else {
            return None;
        };
        if l.alter_in_flight {
            return None;
        }
        let isr =
            l.isr
                .maybe_shrink(now, Offset(leader_log_end_offset), replica_lag_time_max_ms)?;
        Some(propose(l, isr, now))
    }

    /// The metadata log committed this leadership's partition state at `partition_epoch` (with
    /// the topic's current `min.insync.replicas`). Returns whether the high watermark moved.
    pub fn on_partition_committed(
        &mut self,
        isr: Vec<NodeId>,
        partition_epoch: i32,
        min_insync_replicas: usize,
    ) -> bool {
        if let Role::Leader(l) = &mut self.role
            && partition_epoch > l.isr.partition_epoch()
        {
            l.isr.on_isr_committed(isr, partition_epoch);
            l.min_insync_replicas = min_insync_replicas;
        }
        self.advance()
    }

    /// The outcome of an attempt of `proposal`. Commits it, forgets it, or keeps it pending;
    /// says whether the driver tries again. Moves the high watermark as the ISR allows.
    pub fn on_alter_partition_outcome(
        &mut self,
        proposal: &IsrProposal,
        outcome: AlterPartitionOutcome,
    ) -> AlterStep {
        let step = match &mut self.role {
            Role::Leader(l) if l.leader_epoch == proposal.leader_epoch => {
                settle(l, proposal, outcome)
            }
            // A new leadership has its own state.
            _ => AlterStep::Done,
        };
        self.advance();
        step
    }

    /// After the pause of [`AlterStep::RetryLater`]: whether to send `proposal` again. `false`
    /// ends the attempt (the role ended, or the change is no longer pending: not applied, or
    /// settled by the metadata meanwhile), and the next proposal comes from the committed ISR.
    pub fn resend_pending(&mut self, proposal: &IsrProposal) -> bool {
        let Role::Leader(l) = &mut self.role else {
            return false;
        };
        if l.leader_epoch != proposal.leader_epoch {
            return false;
        }
        if l.isr.pending().is_none() {
            l.alter_in_flight = false;
            return false;
        }
        true
    }

    /// Checks the invariants of the module docs; panics on a violation.
    pub fn assert_invariants(&self) {
        match &self.role {
            Role::Sole => assert!(
                self.high_watermark <= self.durable_end,
                "the sole replica's high watermark {} passed its durable end {}",
                self.high_watermark,
                self.durable_end
            ),
            Role::Leader(l) => {
                assert!(
                    self.high_watermark <= self.durable_end,
                    "leader epoch {}: high watermark {} passed the leader's durable end {}",
                    l.leader_epoch,
                    self.high_watermark,
                    self.durable_end
                );
                assert_eq!(
                    l.isr.leader_epoch().0,
                    l.leader_epoch,
                    "a leader's ISR state belongs to its epoch"
                );
                assert!(
                    l.isr.maximal_isr().contains(&l.isr.local()),
                    "the leader is in its maximal ISR"
                );
                assert!(l.min_insync_replicas >= 1, "min.insync.replicas >= 1");
                assert!(l.epoch_start_offset >= 0, "epoch start offset >= 0");
            }
            Role::Follower { .. } | Role::Remote { .. } => {}
        }
    }

    /// Recomputes the high watermark the role allows and publishes it if it is higher.
    fn advance(&mut self) -> bool {
        let allowed = match &self.role {
            Role::Sole => Some(self.durable_end),
            // -1 while an ISR member has not fetched yet in this leadership: publishing only
            // moves forward, so that keeps the current value.
            Role::Leader(l) => Some(l.isr.high_watermark(Offset(self.durable_end)).0),
            // Followers learn theirs from the leader.
            _ => None,
        };
        let moved = allowed.is_some_and(|hw| self.publish(hw));
        self.assert_invariants();
        moved
    }

    /// Moves the high watermark forward to `hw`; never back.
    fn publish(&mut self, hw: i64) -> bool {
        if hw > self.high_watermark {
            self.high_watermark = hw;
            true
        } else {
            false
        }
    }
}

/// What a follower's fetch did on the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerFetch {
    pub high_watermark_moved: bool,
    /// An ISR expansion to send (already pending).
    pub expansion: Option<IsrProposal>,
}

/// Marks `isr` pending and in flight, as the proposal of `l`'s leadership.
fn propose(l: &mut LeaderState, isr: Vec<NodeId>, now: Instant) -> IsrProposal {
    l.isr.set_pending(isr.clone(), now);
    l.alter_in_flight = true;
    IsrProposal {
        isr,
        leader_epoch: l.leader_epoch,
        partition_epoch: l.isr.partition_epoch(),
    }
}

/// Applies an AlterPartition outcome to the leadership that sent `proposal`.
fn settle(
    l: &mut LeaderState,
    proposal: &IsrProposal,
    outcome: AlterPartitionOutcome,
) -> AlterStep {
    if l.isr.partition_epoch() != proposal.partition_epoch {
        // The metadata log already told the outcome (a newer partition state ended the
        // pending change).
        l.alter_in_flight = false;
        return AlterStep::Done;
    }
    match outcome {
        AlterPartitionOutcome::Committed {
            isr,
            partition_epoch,
        } => {
            if partition_epoch > l.isr.partition_epoch() {
                l.isr.on_isr_committed(isr, partition_epoch);
            } else {
                // The same state (an ISR equal to the committed one).
                l.isr.on_isr_rejected();
            }
            l.alter_in_flight = false;
            AlterStep::Done
        }
        AlterPartitionOutcome::NotApplied => {
            // `alter_in_flight` stays set through the pause, then `resend_pending` clears it.
            l.isr.on_isr_rejected();
            AlterStep::RetryLater
        }
        AlterPartitionOutcome::Unknown => AlterStep::RetryLater,
    }
}

#[cfg(test)]
#[path = "tests/partition.rs"]
mod tests;
