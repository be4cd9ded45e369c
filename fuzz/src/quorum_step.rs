//! `quorum_step`: one controller's Raft ([`Quorum`], node 1 of voters 1, 2, 3, on `MemStorage`)
//! fed whatever the network can deliver. The fuzzer plays everyone else: it sends raw bytes or
//! structured `eraftpb::Message`s (any type, any term, index, commit, entries, snapshot) claiming
//! to come from peers and from non-voters, answers the node's own messages as a peer would (or
//! refuses them), and interleaves `tick`, `propose`, `poll_ready`, `compact` and restarts.
//!
//! Input: an [`Unstructured`] stream of up to [`MAX_OPS`] ops (see [`Op`]).
//!
//! Properties:
//! - nothing panics (raft-rs `fatal!`s on some well-formed but impossible messages; `step` must
//!   refuse those before raft-rs sees them);
//! - `step` refuses (as an `Err`) bytes that are not a protobuf `Message`, and anything from a
//!   node that is not a peer voter;
//! - after every `poll_ready`: the term and the commit index never decrease (restarts
//!   included); committed entries are dense and come after any snapshot; every outgoing
//!   message decodes, is from node 1 and is addressed to a peer voter; the durable hard state
//!   equals the in-memory term and commit, and a quorum reopened from a `deep_clone` of the
//!   storage recovers exactly that hard state.

use std::path::Path;
use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use protobuf::{Message as _, ProtobufEnum as _};
use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType, Snapshot};
use strata_core::quorum::{Quorum, QuorumConfig};
use strata_core::storage::MemStorage;
use strata_core::types::NodeId;

/// The quorum directory (as the node names it).
const DIR: &str = "/data/__cluster_metadata";
/// Ops per input: enough for elections, appends and compaction; short enough to stay fast.
pub const MAX_OPS: usize = 96;
const ME: NodeId = NodeId(1);
const PEERS: [NodeId; 2] = [NodeId(2), NodeId(3)];

fn raft_id(n: NodeId) -> u64 {
    u64::try_from(n.0).expect("non-negative test ids") + 1
}

fn config() -> QuorumConfig {
    let mut c = QuorumConfig::new(ME, vec![NodeId(1), NodeId(2), NodeId(3)]);
    c.election_tick = 6;
    c.heartbeat_tick = 2;
    // Small, so the driver-side compaction advice fires in short inputs.
    c.max_entries_in_memory = 8;
    c
}

fn open(storage: &MemStorage) -> (Quorum, u64) {
    let (q, snap) = Quorum::open(Arc::new(storage.clone()), Path::new(DIR), config())
        .unwrap_or_else(|e| panic!("the quorum reopens from what it persisted: {e}"));
    (q, snap.map_or(0, |s| s.index))
}

/// What the test knows from outside.
struct State {
    storage: MemStorage,
    quorum: Quorum,
    /// The state machine's applied index.
    applied: u64,
    /// Highest term and commit index seen after a `poll_ready`.
    term: u64,
    commit: u64,
    /// The messages of the last `poll_ready`, for answers.
    outbox: Vec<Message>,
}

pub fn quorum_step(data: &[u8]) {
    let storage = MemStorage::new();
    let (quorum, applied) = open(&storage);
    let mut s = State {
        storage,
        quorum,
        applied,
        term: 0,
        commit: 0,
        outbox: Vec::new(),
    };
    let mut u = Unstructured::new(data);
    let trace = std::env::var_os("STRATA_FUZZ_TRACE").is_some();
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::read(&mut u) else {
            break;
        };
        if trace {
            eprintln!("{op:?}");
        }
        s.run(op);
        if trace {
            eprintln!("  -> {:?}, commit {}", s.quorum, s.quorum.commit_index());
        }
    }
    s.poll();
}

/// One step of the schedule.
#[derive(Debug)]
enum Op {
    Tick(u8),
    /// Arbitrary bytes from `from`.
    Raw {
        from: NodeId,
        bytes: Vec<u8>,
    },
    /// A structured message from `from`.
    Step {
        from: NodeId,
        message: Message,
    },
    /// `from`'s natural answer to the node's `index`-th latest message (granted, or refused).
    Answer {
        index: usize,
        reject: bool,
    },
    Propose(Vec<u8>),
    Poll,
    /// Compacts at the applied index.
    Compact,
    /// Crash and recover from the storage.
    Restart,
}

impl Op {
    fn read(u: &mut Unstructured<'_>) -> Result<Op> {
        Ok(match u.int_in_range(0u8..=9)? {
            0 => Op::Tick(u.int_in_range(1..=8)?),
            1 => Op::Raw {
                from: sender(u)?,
                bytes: blob(u, 512)?,
            },
            2 | 3 => {
                let from = sender(u)?;
                Op::Step {
                    from,
                    message: message(u, from)?,
                }
            }
            4 | 5 => Op::Answer {
                index: u.int_in_range(0..=7)?,
                reject: u.ratio(1, 6)?,
            },
            6 => {
                let mut data = blob(u, 64)?;
                data.push(0); // the driver never proposes an empty entry
                Op::Propose(data)
            }
            7 => Op::Poll,
            8 => Op::Compact,
            _ => Op::Restart,
        })
    }
}

/// Mostly a peer; sometimes this node itself or a node outside the quorum.
fn sender(u: &mut Unstructured<'_>) -> Result<NodeId> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => ME,
        1 => NodeId(4),
        2 => NodeId(0),
        3 => NodeId(u.arbitrary()?),
        n => PEERS[usize::from(n % 2)],
    })
}

/// A structured message from node 2 (`Op::Step`) as [`message`] reads it: `kind` indexes its
/// list of peer types; `fields` are term, log_term, index, commit, commit_term (each < 14).
fn seed_message(kind: u8, fields: [u8; 5], entries: u8, snapshot: Option<(u8, u8)>) -> Vec<u8> {
    let mut m = vec![2, 4, 1, kind, 1, 1]; // node 2; a peer type; from and to as addressed
    for v in fields {
        m.extend([v + 2, 0]);
    }
    m.extend([1, 2, 0, 1, entries, 1]); // accepted, hint 0, no request_snapshot, consecutive
    for _ in 0..entries {
        m.extend([0, 1, 2, b'x', b'y']); // the message's term, normal, 2 bytes of data
    }
    match snapshot {
        None if kind != 8 => m.push(1),
        None => m.extend([2, 0, 2, 0, 0, 1, 0]),
        Some((index, term)) => m.extend([index + 2, 0, term + 2, 0, 0, 1, 2, b's', b'm']),
    }
    m
}

/// Up to `max` bytes, the length first (so the input reads front to back).
fn blob(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    Ok(u.bytes(n.min(u.len()))?.to_vec())
}

/// A small number near where the logs are, or anything.
fn small(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => u.arbitrary()?,
        1 => u64::MAX,
        n => u64::from(n - 2) + u64::from(u.int_in_range(0u8..=3)?) * 4,
    })
}

fn message_type(u: &mut Unstructured<'_>) -> Result<MessageType> {
    // The types a peer sends, weighted up; any other value otherwise.
    const PEER: [MessageType; 12] = [
        MessageType::MsgAppend,
        MessageType::MsgAppendResponse,
        MessageType::MsgRequestVote,
        MessageType::MsgRequestVoteResponse,
        MessageType::MsgRequestPreVote,
        MessageType::MsgRequestPreVoteResponse,
        MessageType::MsgHeartbeat,
        MessageType::MsgHeartbeatResponse,
        MessageType::MsgSnapshot,
        MessageType::MsgTimeoutNow,
        MessageType::MsgTransferLeader,
        MessageType::MsgPropose,
    ];
    if u.ratio(1, 8)? {
        let n: u8 = u.arbitrary()?;
        return Ok(MessageType::from_i32(i32::from(n % 20)).unwrap_or(MessageType::MsgHup));
    }
    Ok(*u.choose(&PEER)?)
}

fn message(u: &mut Unstructured<'_>, from: NodeId) -> Result<Message> {
    let mut m = Message::new();
    m.set_msg_type(message_type(u)?);
    m.from = if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        u64::try_from(from.0).map_or(0, |f| f + 1)
    };
    m.to = if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        raft_id(ME)
    };
    m.term = small(u)?;
    m.log_term = small(u)?;
    m.index = small(u)?;
    m.commit = small(u)?;
    m.commit_term = small(u)?;
    m.reject = u.ratio(1, 4)?;
    m.reject_hint = small(u)?;
    if u.ratio(1, 8)? {
        m.request_snapshot = small(u)?;
    }
    let n = u.int_in_range(0u8..=3)?;
    let consecutive = !u.ratio(1, 8)?;
    for i in 0..u64::from(n) {
        let mut e = Entry::new();
        e.index = if consecutive {
            m.index.wrapping_add(1 + i)
        } else {
            small(u)?
        };
        e.term = if u.ratio(3, 4)? { m.term } else { small(u)? };
        if u.ratio(1, 8)? {
            e.set_entry_type(EntryType::EntryConfChange);
        }
        e.data = blob(u, 64)?.into();
        m.entries.push(e);
    }
    if m.get_msg_type() == MessageType::MsgSnapshot || u.ratio(1, 16)? {
        let mut snap = Snapshot::new();
        let meta = snap.mut_metadata();
        meta.index = small(u)?;
        meta.term = small(u)?;
        let mut cs = ConfState::new();
        cs.voters = if u.ratio(7, 8)? {
            vec![2, 3, 4] // raft ids of nodes 1, 2, 3
        } else {
            vec![small(u)?, small(u)?]
        };
        if u.ratio(1, 16)? {
            cs.learners = vec![small(u)?];
        }
        meta.set_conf_state(cs);
        snap.data = blob(u, 64)?.into();
        m.set_snapshot(snap);
    }
    Ok(m)
}

/// The answer a peer gives to `m` (`None` for messages that get none).
fn answer(m: &Message, reject: bool) -> Option<Message> {
    let t = match m.get_msg_type() {
        MessageType::MsgRequestPreVote => MessageType::MsgRequestPreVoteResponse,
        MessageType::MsgRequestVote => MessageType::MsgRequestVoteResponse,
        MessageType::MsgAppend | MessageType::MsgSnapshot => MessageType::MsgAppendResponse,
        MessageType::MsgHeartbeat => MessageType::MsgHeartbeatResponse,
        _ => return None,
    };
    let mut r = Message::new();
    r.set_msg_type(t);
    r.from = m.to;
    r.to = m.from;
    r.term = m.term;
    r.reject = reject;
    r.index = match m.get_msg_type() {
        MessageType::MsgAppend if reject => m.index,
        MessageType::MsgAppend => m.index + m.entries.len() as u64,
        MessageType::MsgSnapshot => m.get_snapshot().get_metadata().index,
        _ => 0,
    };
    if reject {
        r.reject_hint = m.index.saturating_sub(1);
        r.log_term = 0;
    }
    Some(r)
}

impl State {
    fn run(&mut self, op: Op) {
        match op {
            Op::Tick(n) => {
                for _ in 0..n {
                    self.quorum.tick();
                }
            }
            Op::Raw { from, bytes } => {
                let parses = Message::parse_from_bytes(&bytes).is_ok();
                let result = self.quorum.step(from, &bytes);
                if !parses || !PEERS.contains(&from) {
                    assert!(
                        result.is_err(),
                        "step accepted {} bytes from {from} that are not a peer's message",
                        bytes.len()
                    );
                }
            }
            Op::Step { from, message } => self.step(from, &message),
            Op::Answer { index, reject } => {
                let Some(m) = self.outbox.iter().rev().nth(index) else {
                    return;
                };
                let Some(r) = answer(m, reject) else {
                    return;
                };
                let from = NodeId(i32::try_from(m.to - 1).expect("checked in poll"));
                self.step(from, &r);
            }
            Op::Propose(data) => {
                let leader = self.quorum.is_leader();
                let result = self.quorum.propose(data);
                if !leader {
                    assert!(result.is_err(), "a follower accepted a proposal");
                }
            }
            Op::Poll => self.poll(),
            Op::Compact => {
                self.poll();
                let data = self.applied.to_be_bytes().to_vec();
                self.quorum
                    .compact(self.applied, data)
                    .unwrap_or_else(|e| panic!("compact at the applied index: {e}"));
            }
            Op::Restart => {
                self.poll();
                let (quorum, applied) = open(&self.storage);
                self.quorum = quorum;
                self.applied = applied;
                self.outbox.clear();
                self.check_recovered();
            }
        }
    }

    fn step(&mut self, from: NodeId, m: &Message) {
        let bytes = m
            .write_to_bytes()
            .expect("encoding a protobuf message into a Vec cannot fail");
        let result = self.quorum.step(from, &bytes);
        if !PEERS.contains(&from) || m.from != raft_id(from) || m.to != raft_id(ME) {
            assert!(result.is_err(), "step accepted a misaddressed {m:?}");
        }
    }

    fn poll(&mut self) {
        let ready = self
            .quorum
            .poll_ready()
            .unwrap_or_else(|e| panic!("poll_ready on MemStorage: {e}"));
        if let Some(snap) = &ready.snapshot {
            assert!(
                snap.index > self.applied,
                "a snapshot at {} below the applied index {}",
                snap.index,
                self.applied
            );
            self.applied = snap.index;
        }
        for c in &ready.committed {
            assert_eq!(c.index, self.applied + 1, "committed entries are dense");
            self.applied = c.index;
        }
        self.outbox.clear();
        for (to, bytes) in &ready.messages {
            assert!(PEERS.contains(to), "a message to {to}, not a peer voter");
            let m = Message::parse_from_bytes(bytes).expect("outgoing messages decode");
            assert_eq!(m.to, raft_id(*to), "a message's `to` is its destination");
            assert_eq!(m.from, raft_id(ME), "a message's `from` is this node");
            self.outbox.push(m);
        }
        self.check_recovered();
    }

    /// Monotonic term and commit; the durable hard state is the in-memory one and a reopened
    /// copy recovers it.
    fn check_recovered(&mut self) {
        let term = self.quorum.term();
        let commit = self.quorum.commit_index();
        assert!(
            term >= self.term,
            "the term went back: {} -> {term}",
            self.term
        );
        assert!(
            commit >= self.commit,
            "the commit index went back: {} -> {commit}",
            self.commit
        );
        self.term = term;
        self.commit = commit;
        assert!(self.applied <= commit, "applied past the commit index");
        let durable = self.quorum.hard_state();
        assert_eq!(
            (durable.0, durable.2),
            (term, commit),
            "the durable hard state lags the in-memory one after poll_ready"
        );
        let (copy, _) = open(&self.storage.deep_clone());
        assert_eq!(
            copy.hard_state(),
            durable,
            "a reopened copy recovers another hard state"
        );
        assert_eq!(copy.term(), term);
        assert_eq!(copy.commit_index(), commit);
    }
}

/// Seeds: an election won and a leader replicating, compacting and restarting; a follower
/// taking appends, a heartbeat and a snapshot from a peer leader; raw garbage and non-voters.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    // Op bytes as `Op::read` reads them (`int_in_range` takes the byte modulo the range size;
    // `ratio(1, k)` is false for byte 1).
    const TICK8: [u8; 2] = [0, 7];
    const POLL: u8 = 7;
    const GRANT_LAST: [u8; 3] = [4, 0, 1];
    let mut leader = Vec::new();
    leader.extend(TICK8);
    for _ in 0..3 {
        leader.push(POLL);
        leader.extend(GRANT_LAST); // pre-vote, vote, then the new leader's empty entry
        leader.extend([4, 1, 1]); // the other peer as well
    }
    for payload in [&b"abc"[..], b"d"] {
        leader.extend([6, payload.len() as u8]);
        leader.extend(payload);
        leader.push(POLL);
        leader.extend(GRANT_LAST);
    }
    leader.extend([POLL, 8, 9, 0, 3, POLL]); // compact, restart, heartbeats
    leader.extend([4, 0, 0, POLL]); // a refused heartbeat answer

    let mut follower = Vec::new();
    follower.extend(seed_message(0, [1, 0, 0, 0, 0], 2, None)); // MsgAppend of 2 entries
    follower.push(POLL);
    follower.extend(seed_message(0, [1, 1, 2, 2, 0], 1, None));
    follower.push(POLL);
    follower.extend(seed_message(6, [1, 0, 0, 3, 0], 0, None)); // MsgHeartbeat, commit 3
    follower.push(POLL);
    follower.extend(seed_message(8, [2, 2, 9, 9, 0], 0, Some((11, 2)))); // MsgSnapshot
    follower.extend([POLL, 9, POLL]);

    let mut garbage = vec![1, 4, 0, 5, 0xff, 0x08, 0x01, 0x10, 0x02];
    garbage.extend([1, 1, 0, 2, 0x08, 0x01]); // a non-voter
    garbage.extend([2, 0]); // a structured message claiming to be from this node
    vec![
        ("seed-leader".to_string(), leader),
        ("seed-follower".to_string(), follower),
        ("seed-garbage".to_string(), garbage),
    ]
}
