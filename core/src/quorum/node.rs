//! [`Quorum`]: one controller's Raft node (raft-rs `RawNode`) and the handling of its Readies.

use std::path::Path;
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{EntryType, Message, MessageType};
use raft::{RawNode, StateRole};

use super::persisted_log::PersistedLog;
use super::{
    Committed, Proposal, QuorumConfig, QuorumError, Ready, Snapshot, log_bridge, node_id, raft_id,
};
use crate::storage::Storage;
use crate::types::NodeId;

/// Largest term or index a peer's message may carry (see [`Quorum::step`]).
const MAX_TERM_OR_INDEX: u64 = i64::MAX as u64;

/// A controller's Raft node. Single-threaded: the driver owns it and calls it in turn.
pub struct Quorum {
    raw: RawNode<PersistedLog>,
    config: QuorumConfig,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.config.node_id)
            .field("term", &self.term())
            .field("leader", &self.leader_id())
            .finish_non_exhaustive()
    }
}

impl Quorum {
    /// Recovers (or creates) the quorum state under `dir`. Returns the snapshot the state
    /// machine must start from, if one was taken; the committed entries after it come out of
    /// [`Quorum::poll_ready`] as usual.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        config: QuorumConfig,
    ) -> Result<(Quorum, Option<Snapshot>), QuorumError> {
        validate(&config)?;
        let voters: Vec<u64> = config.voters.iter().map(|v| raft_id(*v)).collect();
        let (log, snapshot) = PersistedLog::open(storage, dir, voters)?;
        let raft_config = raft::Config {
            id: raft_id(config.node_id),
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            // The state machine restarts from the snapshot; later entries are applied again.
            applied: log.snapshot_index(),
            max_size_per_msg: config.max_size_per_msg,
            max_inflight_msgs: config.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            // One possible value: raft-rs's own draw is not reproducible (see module docs).
            min_election_tick: config.election_tick,
            max_election_tick: config.election_tick + 1,
            ..Default::default()
        };
        tracing::info!(node = %config.node_id, term = log.hard_state().term,
            commit = log.hard_state().commit, snapshot = log.snapshot_index(), entries = log.len(),
            "quorum recovered");
        let raw = RawNode::new(&raft_config, log, &log_bridge::logger())
            .map_err(|e| QuorumError::Config(e.to_string()))?;
        let snapshot = snapshot.map(|s| Snapshot {
            index: s.index,
            term: s.term,
            data: s.data,
        });
        Ok((Quorum { raw, config }, snapshot))
    }

    /// Advances Raft's logical clock by one tick.
    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// Steps a protobuf-encoded message received from voter `from`. Malformed, misaddressed and
    /// impossible messages (ones no correct peer sends, on which raft-rs would panic or diverge
    /// from what recovery gives back: see `impossible`) are rejected; the caller logs and drops
    /// them. Nothing here panics on network input (fuzzed by `fuzz/src/quorum_step.rs`).
    pub fn step(&mut self, from: NodeId, message: &[u8]) -> Result<(), QuorumError> {
        let bad = |reason: String| QuorumError::BadMessage { from, reason };
        if !self.config.voters.contains(&from) || from == self.config.node_id {
            return Err(bad("not a peer voter".into()));
        }
        let m = Message::parse_from_bytes(message).map_err(|e| bad(e.to_string()))?;
        if m.from != raft_id(from) {
            return Err(bad(format!("claims to be from raft id {}", m.from)));
        }
        if m.to != raft_id(self.config.node_id) {
            return Err(bad(format!("addressed to raft id {}", m.to)));
        }
        if matches!(
            m.get_msg_type(),
            MessageType::MsgHup
                | MessageType::MsgBeat
                | MessageType::MsgUnreachable
                | MessageType::MsgSnapStatus
                | MessageType::MsgCheckQuorum
                | MessageType::MsgPropose
                | MessageType::MsgReadIndex
                | MessageType::MsgReadIndexResp
                | MessageType::MsgTransferLeader
                | MessageType::MsgTimeoutNow
        ) {
            // Local messages, and forwarded proposals/reads: we forward nothing. No node
            // transfers leadership (raft-rs panics forwarding a MsgTransferLeader that carries
            // a term, found by the `quorum_step` fuzz target).
            return Err(bad(format!("unexpected type {:?}", m.get_msg_type())));
        }
        if m.get_msg_type() == MessageType::MsgSnapshot && !self.snapshot_fits(&m) {
            return Err(bad("snapshot for another membership".into()));
        }
        if let Some(reason) = self.impossible(&m) {
            return Err(bad(reason));
        }
        self.raw.step(m).map_err(|e| bad(e.to_string()))
    }

    /// Well-formed messages no correct peer sends, on which raft-rs would panic (`fatal!`)
    /// instead of refusing them (found by the `quorum_step` fuzz target).
    fn impossible(&self, m: &Message) -> Option<String> {
        let log = &self.raw.raft.raft_log;
        // Terms and indexes count elections and entries: none reaches 2^63, and raft-rs adds 1
        // to them unchecked (a term of u64::MAX overflows the next campaign).
        let snap = m.get_snapshot().get_metadata();
        let numbers = [
            m.term,
            m.log_term,
            m.index,
            m.commit,
            m.commit_term,
            m.reject_hint,
        ]
        .into_iter()
        .chain([m.request_snapshot, snap.index, snap.term])
        .chain(m.get_entries().iter().flat_map(|e| [e.index, e.term]));
        if numbers.into_iter().any(|n| n > MAX_TERM_OR_INDEX) {
            return Some("a term or index beyond 2^63".into());
        }
        // raft-rs takes term 0 for a local message and skips every term check (a heartbeat of
        // term 0 would be applied by any follower). Peers stamp every message they send with
        // their term, which is at least 1 once anyone campaigned.
        if m.term == 0 {
            return Some("term 0 (a local message)".into());
        }
        // A leader's heartbeat commits at most what this node acknowledged in the leader's term
        // (`min(matched, committed)`), and what it acknowledged is synced here. raft-rs
        // `commit_to`s a current (or newer) heartbeat's commit unchecked; a stale one it only
        // answers, so a stale leader may still learn the newer term from it.
        if m.get_msg_type() == MessageType::MsgHeartbeat
            && m.term >= self.raw.raft.term
            && m.commit > log.last_index()
        {
            return Some(format!(
                "heartbeat commits {} beyond the log end {}",
                m.commit,
                log.last_index()
            ));
        }
        // A leader appends a slice of its log: consecutive indexes after `index`, terms that do
        // not decrease, from `log_term` up to its own term. raft-rs slices the entries by index
        // arithmetic (a gap or an overlap panics or corrupts the log).
        if m.get_msg_type() == MessageType::MsgAppend {
            // Only index 0 has term 0: raft-rs takes any index past its log end as having term
            // 0, so `(25, 0)` would "match" an empty log and commit 25 entries it does not have.
            if (m.index == 0) != (m.log_term == 0) {
                return Some(format!("append after ({}, {})", m.index, m.log_term));
            }
            let (mut index, mut term) = (m.index, m.log_term.max(1));
            for e in m.get_entries() {
                if Some(e.index) != index.checked_add(1) || e.term < term || e.term > m.term {
                    return Some(format!(
                        "entry ({}, {}) does not follow ({index}, {term}) in an append of term {}",
                        e.index, e.term, m.term
                    ));
                }
                (index, term) = (e.index, e.term);
            }
        }
        // A snapshot covers a non-empty prefix of the leader's log, whose terms are at most the
        // leader's. A later term would be raised into the hard state only at recovery (the
        // recovered term is at least the last log term), so memory and disk would disagree.
        if m.get_msg_type() == MessageType::MsgSnapshot
            && (snap.index == 0 || snap.term == 0 || snap.term > m.term)
        {
            return Some(format!(
                "snapshot at ({}, {}) in a message of term {}",
                snap.index, snap.term, m.term
            ));
        }
        // Every later leader holds the committed entries (Leader Completeness, Raft §5.4), so a
        // snapshot at or below our commit index has our term there. raft-rs ignores one below
        // the commit index but installs one *at* it whose term differs: a committed entry would
        // be replaced and handed to the state machine again.
        if m.get_msg_type() == MessageType::MsgSnapshot
            && snap.index <= log.committed
            && log.term(snap.index).is_ok_and(|t| t != snap.term)
        {
            return Some(format!(
                "snapshot at ({}, {}) contradicts the committed log",
                snap.index, snap.term
            ));
        }
        // A follower acknowledges at most what the leader sent it, a prefix of the leader's
        // log; raft-rs would take a larger index as matched and slice its log past the end.
        if m.get_msg_type() == MessageType::MsgAppendResponse
            && !m.reject
            && m.term >= self.raw.raft.term
            && m.index > log.last_index()
        {
            return Some(format!(
                "acknowledges index {} beyond the log end {}",
                m.index,
                log.last_index()
            ));
        }
        None
    }

    /// A snapshot must carry our (fixed) voter set; raft-rs would adopt any membership.
    fn snapshot_fits(&self, m: &Message) -> bool {
        let mut theirs = m
            .get_snapshot()
            .get_metadata()
            .get_conf_state()
            .voters
            .clone();
        let mut ours: Vec<u64> = self.config.voters.iter().map(|v| raft_id(*v)).collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        theirs == ours
            && m.get_snapshot()
                .get_metadata()
                .get_conf_state()
                .learners
                .is_empty()
    }

    /// Proposes `data` (leader only). Committed once an entry with the returned index and term
    /// is; an entry of another term at that index means the proposal was lost.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<Proposal, QuorumError> {
        if !self.is_leader() {
            return Err(QuorumError::NotLeader {
                leader: self.leader_id(),
            });
        }
        assert!(
            !data.is_empty(),
            "empty entries are Raft's own: propose something"
        );
        self.raw
            .propose(Vec::new(), data)
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let log = &self.raw.raft.raft_log;
        Ok(Proposal {
            index: log.last_index(),
            term: log.last_term(),
        })
    }

    /// Whether [`Quorum::poll_ready`] has anything to do (a driver may skip it, and the disk,
    /// when not).
    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    /// Drains every pending Ready: persists snapshots, entries and hard state (synced), then
    /// returns the messages to send and what was committed. See the module docs for the order
    /// in which the caller applies them.
    pub fn poll_ready(&mut self) -> Result<Ready, QuorumError> {
        let mut out = Ready::default();
        let mut messages: Vec<Message> = Vec::new();
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            // A leader may send these before persisting (Raft thesis §10.2.1); we do not bother.
            messages.extend(rd.take_messages());
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                self.raw.mut_store().apply_snapshot(&snap)?;
                let meta = snap.get_metadata();
                tracing::info!(node = %self.config.node_id, index = meta.index, term = meta.term,
                    "quorum installed a snapshot from the leader");
                // The snapshot covers everything up to its index.
                out.committed.clear();
                out.snapshot = Some(Snapshot {
                    index: meta.index,
                    term: meta.term,
                    data: snap.data.to_vec(),
                });
            }
            push_committed(&mut out.committed, rd.take_committed_entries());
            if !rd.entries().is_empty() {
                self.raw.mut_store().append(rd.entries())?;
            }
            messages.extend(rd.take_persisted_messages());
            let mut light = self.raw.advance(rd);
            // The hard state (term, vote and the commit the light ready may have advanced) is
            // synced after the entries and before any message leaves.
            let hs = self.raw.raft.hard_state();
            self.raw.mut_store().set_hard_state(&hs)?;
            messages.extend(light.take_messages());
            push_committed(&mut out.committed, light.take_committed_entries());
            self.raw.advance_apply();
        }
        for m in messages {
            let Some(to) = node_id(m.to) else {
                tracing::error!(to = m.to, "raft addressed a message to no node: dropped");
                continue;
            };
            let bytes = m
                .write_to_bytes()
                .expect("encoding a protobuf message into a Vec cannot fail");
            out.messages.push((to, bytes));
        }
        // Per-destination order is what Raft relies on; a stable sort keeps it and makes the
        // output independent of raft-rs's internal iteration order.
        out.messages.sort_by_key(|(to, _)| *to);
        Ok(out)
    }

    pub fn leader_id(&self) -> Option<NodeId> {
        match self.raw.raft.leader_id {
            0 => None,
            id => node_id(id),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// The highest committed index known here.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// Leader, and the state machine has applied (`applied_index`) the first entry of this
    /// leader's term, so it holds everything any earlier leader committed. Only then may the
    /// leader decide from its state machine (KRaft waits the same way).
    pub fn is_leader_ready(&self, applied_index: u64) -> bool {
        self.is_leader() && self.raw.raft.raft_log.term(applied_index).ok() == Some(self.term())
    }

    /// Whether enough entries follow the snapshot that the driver should [`Quorum::compact`].
    pub fn needs_compaction(&self, applied_index: u64) -> bool {
        let store = self.raw.store();
        applied_index > store.snapshot_index() && store.len() >= self.config.max_entries_in_memory
    }

    /// Persists `state_machine_snapshot` (the state after applying `applied_index`) as the
    /// snapshot and drops the log up to it. A no-op when `applied_index` is not past the current
    /// snapshot.
    pub fn compact(
        &mut self,
        applied_index: u64,
        state_machine_snapshot: Vec<u8>,
    ) -> Result<(), QuorumError> {
        let applied = self.raw.raft.raft_log.applied;
        if applied_index > applied {
            return Err(QuorumError::Raft(format!(
                "cannot compact at {applied_index}: only {applied} is applied"
            )));
        }
        if applied_index <= self.raw.store().snapshot_index() {
            return Ok(());
        }
        self.raw
            .mut_store()
            .compact(applied_index, state_machine_snapshot)?;
        tracing::info!(node = %self.config.node_id, index = applied_index, "quorum log compacted");
        Ok(())
    }

    /// The durable (term, vote, commit), for tests and diagnostics.
    pub fn hard_state(&self) -> (u64, Option<NodeId>, u64) {
        let hs = self.raw.store().hard_state();
        (hs.term, node_id(hs.vote), hs.commit)
    }
}

fn push_committed(out: &mut Vec<Committed>, entries: Vec<raft::eraftpb::Entry>) {
    for e in entries {
        let data = (e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
            .then(|| e.data.to_vec());
        if let Some(last) = out.last() {
            assert_eq!(
                e.index,
                last.index + 1,
                "committed entries come in index order"
            );
        }
        out.push(Committed {
            index: e.index,
            term: e.term,
            data,
        });
    }
}

fn validate(config: &QuorumConfig) -> Result<(), QuorumError> {
    let bad = |why: &str| Err(QuorumError::Config(why.to_string()));
    if config.voters.iter().any(|v| v.0 < 0) {
        return bad("voter ids must be non-negative");
    }
    let mut sorted = config.voters.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != config.voters.len() {
        return bad("duplicate voter");
    }
    if !config.voters.contains(&config.node_id) {
        return bad("this node is not among the voters");
    }
    if config.heartbeat_tick == 0 || config.election_tick <= config.heartbeat_tick {
        return bad("need 0 < heartbeat_tick < election_tick");
    }
    if config.max_entries_in_memory == 0 {
        return bad("max_entries_in_memory must be positive");
    }
    Ok(())
}
