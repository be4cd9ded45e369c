//! The controller quorum's Raft, sans-IO: raft-rs's `RawNode` over a log persisted through the
//! [`crate::storage::Storage`] seam.
//!
//! The metadata log ([`crate::metadata`]) is this Raft log: each normal entry carries one
//! postcard-encoded batch of metadata records, and its Raft index is the metadata offset.
//!
//! ## Driving contract
//!
//! ```text
//! let (mut quorum, snapshot) = Quorum::open(storage, dir, config)?;  // recovers
//! if let Some(s) = snapshot { state_machine.install(s) }              // entries after it follow
//! loop {
//!     on timer (every tick period, jittered by the driver's seeded RNG):  quorum.tick();
//!     on a message from peer `from`:                                      quorum.step(from, &bytes)?;
//!     on a proposal (leader only):                                        quorum.propose(data)?;
//!     let ready = quorum.poll_ready()?;   // persists (fsync) BEFORE returning anything
//!     if let Some(s) = ready.snapshot { state_machine.install(s) }  // first
//!     for c in ready.committed { state_machine.apply(c) }           // then in index order
//!     for (to, bytes) in ready.messages { send(to, bytes) }          // lossy transport is fine
//! }
//! ```
//!
//! Invariants:
//! - **Persist before send.** `poll_ready` syncs every snapshot, entry and hard state of the
//!   Readies it drains before it returns their messages; any error (an fsync error above all)
//!   is returned and the node must stop: the state on disk is then unknown.
//! - **One vote per term** (Raft §5.2): a vote leaves this node only after the hard state
//!   carrying it is synced, and recovery never lowers the durable term or forgets its vote.
//! - **Committed entries are handed out once**, in index order, after any snapshot that
//!   precedes them; raft-rs considers them applied when `poll_ready` returns.
//! - **Determinism.** raft-rs draws election timeouts from a thread-local OS-seeded RNG; we pin
//!   its range to a single value (`max_election_tick = min_election_tick + 1`), so the same
//!   schedule of ticks and messages gives the same elections and logs. Jitter between nodes
//!   comes from the driver varying the tick period with its seeded RNG.
//! - Membership is fixed by [`QuorumConfig::voters`] (no configuration changes).
//! - Node ids map to Raft ids as `raft_id = node_id + 1` (raft-rs reserves 0 for "none").
//!
//! ## Files (under the quorum directory, all written through `Storage`)
//!
//! `hard_state` — two 512-byte slots at offsets 0 and 512, each (big-endian):
//! ```text
//! crc32c:u32 | seq:u64 | term:u64 | vote:u64 | commit:u64      (36 bytes; crc over bytes 4..36)
//! ```
//! Write `seq` goes to slot `seq % 2`, then `sync_data`. Recovery takes the valid slot with the
//! highest `seq`; since each write is synced before the next one starts, a torn write only
//! damages the newest, unacknowledged state. `vote` is a Raft id (0: none).
//!
//! `raft.log` — append-only frames, one per entry, consecutive indexes:
//! ```text
//! len:u32be | crc32c(body):u32be | body = protobuf eraftpb::Entry (len bytes)
//! ```
//! When Raft overwrites a conflicting suffix the file is truncated at that entry's frame and
//! the new frames are appended; every append is synced. Recovery keeps the frames up to the
//! first short, oversized (> 64 MiB), bad-CRC, undecodable or out-of-sequence one and truncates
//! the rest (only an unsynced tail can be torn). Compaction and snapshot installation rewrite
//! the file atomically (`raft.log.tmp`, sync, rename, sync dir).
//!
//! `snapshot` — the latest snapshot, replaced atomically (`snapshot.tmp`, sync, rename, sync
//! dir); empty before the first one:
//! ```text
//! crc32c:u32be | index:u64be | term:u64be | data       (crc over everything after itself)
//! ```
//! A damaged snapshot file is an error ([`QuorumError::Corrupt`]): the log before it is gone.
//! The snapshot is written before the log is rewritten; recovery drops frames at or below the
//! snapshot index (and everything, if the frame at the snapshot index has another term).

mod files;
mod log_bridge;
mod node;
mod persisted_log;
#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests;

use thiserror::Error;

use crate::types::NodeId;

pub use log_bridge::{TracingDrain, logger};
pub use node::Quorum;

/// Settings of one controller's Raft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// This controller.
    pub node_id: NodeId,
    /// Every voter, this one included (`controller.quorum.voters`).
    pub voters: Vec<NodeId>,
    /// Ticks without a leader before a follower campaigns (exactly this many: see the module
    /// docs on determinism). 10.
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats. 2.
    pub heartbeat_tick: usize,
    /// The driver compacts once this many entries follow the snapshot
    /// ([`Quorum::needs_compaction`]).
    pub max_entries_in_memory: usize,
    /// Largest append message raft-rs builds (bytes).
    pub max_size_per_msg: u64,
    /// Append messages in flight per follower.
    pub max_inflight_msgs: usize,
}

impl QuorumConfig {
    /// Defaults for `node_id` among `voters`.
    pub fn new(node_id: NodeId, voters: Vec<NodeId>) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters,
            election_tick: 10,
            heartbeat_tick: 2,
            max_entries_in_memory: 10_000,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
        }
    }
}

#[derive(Debug, Error)]
pub enum QuorumError {
    /// Fatal for the node: a write or sync failed, so the durable state is unknown.
    #[error("quorum storage failed: {0}")]
    Io(#[from] std::io::Error),
    /// A quorum file is damaged beyond what recovery may repair.
    #[error("quorum files are corrupt: {0}")]
    Corrupt(String),
    #[error("invalid quorum config: {0}")]
    Config(String),
    /// A message from the network that does not decode or does not fit (dropped; not fatal).
    #[error("rejected raft message from {from}: {reason}")]
    BadMessage { from: NodeId, reason: String },
    /// Proposals go to the leader.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// raft-rs refused the operation (a dropped proposal, say).
    #[error("raft: {0}")]
    Raft(String),
}

/// A snapshot of the state machine at `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

/// A committed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub index: u64,
    pub term: u64,
    /// The proposed bytes; `None` for Raft's own entries (the empty entry a new leader appends,
    /// configuration changes), which only advance the applied index.
    pub data: Option<Vec<u8>>,
}

/// Where a proposal went: it is committed if an entry with this index *and* term is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
}

/// What [`Quorum::poll_ready`] drained, all of it already durable.
#[derive(Debug, Default)]
pub struct Ready {
    /// Protobuf-encoded `eraftpb::Message`s, per destination in send order.
    pub messages: Vec<(NodeId, Vec<u8>)>,
    /// A snapshot from the leader to install before `committed` (it covers every index up to
    /// its own; committed entries drained earlier in the same call were dropped for it).
    pub snapshot: Option<Snapshot>,
    /// Newly committed entries, in index order.
    pub committed: Vec<Committed>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.snapshot.is_none() && self.committed.is_empty()
    }
}

/// Raft ids are `node_id + 1`: raft-rs reserves 0 for "no node".
pub(crate) fn raft_id(node: NodeId) -> u64 {
    u64::try_from(node.0).expect("node ids are validated non-negative") + 1
}

/// The node of a Raft id; `None` for 0 (no node) or one out of range.
pub(crate) fn node_id(raft_id: u64) -> Option<NodeId> {
    let id = raft_id.checked_sub(1)?;
    i32::try_from(id).ok().map(NodeId)
}
