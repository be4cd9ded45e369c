//! What this broker is for one partition: the sole replica of a single-node cluster, the leader,
//! a follower, or nothing (another broker's partition, or offline).
//!
//! Invariants:
//! - Only a `Leader` (or `Sole`) appends client batches, stamping its `leader_epoch`.
//! - A `Leader`'s high watermark is the minimum over the maximal ISR (committed ISR plus pending
//!   additions, KIP-497) of each member's durable log end offset; its own counts as its flushed
//!   offset with `fsync.before.ack` (a replica counts toward acks=-1 only once the batch is
//!   fsynced), else its log end offset.
//! - A new leader serves consumers only once its high watermark reaches the start offset of its
//!   epoch (`epoch_start_offset`): before that it may hold an older, lower high watermark than
//!   the previous leader published, and clients must never see the high watermark go back.

use strata_core::replica::IsrState;
use strata_core::types::NodeId;

/// The leader's replication state.
#[derive(Debug)]
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
#[derive(Debug)]
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
