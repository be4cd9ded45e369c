//! `producer_ops`: idempotent producers (KIP-98) against two replicas of one partition — a leader
//! that checks and deduplicates producer batches and a follower that copies its batches with
//! `append_replicated` — through rolls, checkpoints (which write producer-state snapshots),
//! truncations, leader changes, retention, expiry, crashes and reopens, checked against the model
//! of `producer_model` after every step.
//!
//! The input is decoded with `arbitrary` into a config and up to [`MAX_OPS`] [`Op`]s. Each replica
//! (`producer_replica`) has its own [`crate::durable::DurableStorage`]; a crash reopens it on the
//! image a power loss could leave (snapshots are never fsynced: they may come back torn or empty).
//!
//! Four producers (ids 0..4) choose each batch's sequence ([`Choice`]): the next one after what
//! the leader's log holds, the next one after what the producer itself last had acknowledged, a
//! retry of one of its acknowledged batches (still in the log or not), a gap, a new epoch (at 0
//! or not), the previous epoch, a sequence about to wrap past `i32::MAX`; or a batch without a
//! producer id. A request holds 1 to 3 batches.
//!
//! Properties, after every step, on both replicas:
//! - the log serves exactly the model's batches from its log start (the history below it went to
//!   retention), and a crash keeps every flushed batch and a prefix of the rest;
//! - the producer state covers the log end, and each producer's state is one the model allows
//!   (`producer_model::Allowed`: exactly the fold of its batches in the log, unless expiry or a
//!   lost snapshot may have made the partition forget older batches);
//! - every `<offset>.snapshot` file lies between the log start and the log end, at a batch
//!   boundary, and holds a state the batches below its offset allow (torn ones only after a
//!   crash); a snapshot that loaded disappears only for a reason (truncation above the offset
//!   asked for, retention below the new log start, a checkpoint inside the active segment, a
//!   crash that tore it).
//!
//! And on every produce request: the leader answers what the rules give for its state before the
//! request (`producer_model::predict`) — a duplicate with the original batch's offsets and the log
//! end unchanged, a write exactly at the log end, or a refusal with Kafka's error code and nothing
//! written — and the state does not change unless something was written. For one-batch requests
//! the promises are also checked directly against the log's history: `Next` and a new epoch at 0
//! are written; while the producer's state must be exact, a retry of one of its last 5 batches is
//! a duplicate with that batch's offsets, a retry of a removed batch that continues the sequence is
//! written anew, a gap is `OUT_OF_ORDER_SEQUENCE_NUMBER` and an older epoch
//! `INVALID_PRODUCER_EPOCH`.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use strata_core::batch::{
    BatchIter, TimestampType, assign_offset, build_batch_with_producer, set_log_append_time,
};
use strata_core::log::LogConfig;
use strata_core::log::producer_state::DEFAULT_PRODUCER_ID_EXPIRATION_MS;
use strata_core::{ErrorCode, LeaderEpoch, Offset};

use crate::image;
use crate::producer_model::{Allowed, MBatch, Meta, Outcome, Req, entries, predict, seq_add};
use crate::producer_replica::Replica;

pub const MAX_OPS: usize = 64;
/// Producer ids 0..PRODUCERS.
pub const PRODUCERS: usize = 4;
const START_MS: i64 = 1_000_000;

#[derive(Debug)]
pub struct Input {
    pub config: ConfigIn,
    pub ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
pub struct ConfigIn {
    pub segment_bytes: u16,
    pub index_interval: u16,
    pub index_entries: u8,
    pub segment_ms: u16,
    pub log_append_time: bool,
    /// `producer.id.expiration.ms`: the default (a day) or a few seconds to minutes.
    pub expiration: u16,
}

impl ConfigIn {
    fn to_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: 150 + u64::from(self.segment_bytes % 2_000),
            segment_ms: if self.segment_ms == 0 {
                i64::MAX
            } else {
                i64::from(self.segment_ms)
            },
            index_interval_bytes: 1 + u32::from(self.index_interval % 600),
            segment_index_bytes: 8 * (1 + u32::from(self.index_entries % 64)),
            retention_ms: -1,
            retention_bytes: -1,
            message_timestamp_type: if self.log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            producer_id_expiration_ms: if self.expiration.is_multiple_of(4) {
                DEFAULT_PRODUCER_ID_EXPIRATION_MS
            } else {
                1 + i64::from(self.expiration) * 4
            },
            ..LogConfig::default()
        }
    }
}

/// Which replica an op acts on.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Leader,
    Follower,
    Both,
}

/// How a batch's producer epoch and sequence are chosen (module docs).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// After the producer's last batch in the leader's log (in its epoch), or 0.
    Next,
    /// After the producer's own last acknowledged batch.
    ClientNext,
    /// The `k`-th most recent acknowledged batch, byte for byte.
    Retry(u8),
    /// Skips 1 to 3 sequence numbers after `Next`.
    Gap(u8),
    NewEpoch,
    /// A new epoch not starting at 0.
    NewEpochAt(u8),
    /// The epoch before the log's, with the next sequence.
    OldEpoch,
    /// A sequence 0 to 2 below `i32::MAX`, so the batch's last sequence may wrap.
    NearWrap(u8),
    /// No producer id.
    NoProducer,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct BatchSpec {
    pub producer: u8,
    pub choice: Choice,
    /// `1 + records % 3` records.
    pub records: u8,
    pub value_len: u8,
    /// CreateTime timestamp: `now + 4 * ts` ms (`i16::MIN`: -1).
    pub ts: i16,
}

#[derive(Debug)]
pub enum Op {
    /// A produce request of 1 to 3 batches to the leader.
    Produce(Vec<BatchSpec>),
    /// The follower truncates to where it diverges from the leader, then fetches up to
    /// `1 + fetches % 4` times.
    Replicate {
        fetches: u8,
        max_bytes: u16,
    },
    /// The follower becomes leader in a new leader epoch; the old leader follows.
    LeaderChange,
    /// The follower truncates `back % 32` offsets (not below the high watermark).
    TruncateFollower {
        back: u8,
    },
    Flush(Which),
    Roll(Which),
    Checkpoint(Which),
    /// The follower catches up, both flush, then both enforce these retention settings (Kafka
    /// deletes only below the high watermark, which both replicas hold).
    Retention {
        ms: Option<u16>,
        bytes: Option<u16>,
    },
    /// A retention pass with retention off: only producer expiry.
    Expire(Which),
    Tick {
        ms: u16,
    },
    /// To the moment (-1, 0 or +1 ms) a producer's last batch in the leader's log is
    /// `producer.id.expiration.ms` old, if that is not in the past: the expiry boundary.
    TickTo {
        producer: u8,
        delta: u8,
    },
    /// Lose unsynced writes (see [`crate::durable::DurableStorage::crash_image`]) and recover.
    Crash {
        which: Which,
        seed: u64,
    },
    /// Close and reopen on the same disk.
    Reopen(Which),
}

impl Op {
    /// Produce requests are the most frequent op.
    fn read(u: &mut Unstructured<'_>) -> arbitrary::Result<Op> {
        let tag = u8::arbitrary(u)?;
        Ok(match tag % 32 {
            0..=11 => Op::Produce(vec![BatchSpec::arbitrary(u)?]),
            12..=13 => {
                let n = 2 + usize::from(u8::arbitrary(u)? % 2);
                Op::Produce(
                    (0..n)
                        .map(|_| BatchSpec::arbitrary(u))
                        .collect::<arbitrary::Result<_>>()?,
                )
            }
            14..=17 => Op::Replicate {
                fetches: u.arbitrary()?,
                max_bytes: u.arbitrary()?,
            },
            18 => Op::LeaderChange,
            19 => Op::TruncateFollower {
                back: u.arbitrary()?,
            },
            20..=21 => Op::Flush(u.arbitrary()?),
            22 => Op::Roll(u.arbitrary()?),
            23 => Op::Checkpoint(u.arbitrary()?),
            24 => Op::Retention {
                ms: u.arbitrary()?,
                bytes: u.arbitrary()?,
            },
            25 => Op::Expire(u.arbitrary()?),
            26..=27 => Op::Tick { ms: u.arbitrary()? },
            28..=29 => Op::Crash {
                which: u.arbitrary()?,
                seed: u.arbitrary()?,
            },
            30 => Op::Reopen(u.arbitrary()?),
            _ => Op::TickTo {
                producer: u.arbitrary()?,
                delta: u.arbitrary()?,
            },
        })
    }
}

impl Input {
    /// A config, then ops back to back until the bytes run out.
    pub fn decode(data: &[u8]) -> Option<Input> {
        let mut u = Unstructured::new(data);
        let config = ConfigIn::arbitrary(&mut u).ok()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            match Op::read(&mut u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Some(Input { config, ops })
    }
}

pub fn producer_ops(data: &[u8]) {
    if let Some(input) = Input::decode(data) {
        run(&input);
    }
}

/// A batch a producer had acknowledged, enough to send it again byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    epoch: i16,
    seq: i32,
    records: usize,
    value_len: usize,
    ts: i64,
}

impl Sent {
    fn last_seq(&self) -> i32 {
        seq_add(self.seq, self.records as i32 - 1)
    }
}

/// What a producer client knows: its epoch and what it had acknowledged (newest last).
#[derive(Debug, Default)]
struct Client {
    epoch: i16,
    sent: Vec<Sent>,
}

const SENT_KEPT: usize = 16;

fn producer_batch(pid: usize, s: &Sent) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..s.records)
        .map(|i| {
            let mut v = format!("p{pid}-e{}-s{}-{i}-", s.epoch, s.seq).into_bytes();
            v.resize(v.len().max(s.value_len), b'x');
            v
        })
        .collect();
    let recs: Vec<(&[u8], Option<&[u8]>)> = values.iter().map(|v| (v.as_slice(), None)).collect();
    build_batch_with_producer(&recs, s.ts, pid as i64, s.epoch, s.seq)
}

/// The system under test and its model.
struct Harness {
    replicas: [Replica; 2],
    leader: usize,
    epoch: LeaderEpoch,
    config: LogConfig,
    now: i64,
    clients: [Client; PRODUCERS],
    /// Both replicas hold the same flushed batches below this offset: set when `Retention`
    /// made them equal; truncations do not go below it.
    hw: Offset,
    tag: u32,
    trace: bool,
}

pub fn run(input: &Input) {
    let config = input.config.to_config();
    let now = START_MS;
    let mut h = Harness {
        replicas: [
            Replica::new("replica 0", &config, now),
            Replica::new("replica 1", &config, now),
        ],
        leader: 0,
        epoch: LeaderEpoch(0),
        config,
        now,
        clients: Default::default(),
        hw: Offset::ZERO,
        tag: 0,
        // `STRATA_FUZZ_TRACE=1` prints each step, for reproducing a failure by hand.
        trace: std::env::var_os("STRATA_FUZZ_TRACE").is_some(),
    };
    for (i, op) in input.ops.iter().take(MAX_OPS).enumerate() {
        if h.trace {
            eprintln!("step {i} (leader: replica {}): {op:?}", h.leader);
        }
        h.step(op);
        for r in &mut h.replicas {
            if h.trace {
                let l = &r.log;
                eprintln!(
                    "  {}: start {} flushed {} end {}, {} segments, producers {:?}",
                    r.name,
                    l.log_start_offset(),
                    l.flushed_offset(),
                    l.log_end_offset(),
                    l.segment_count(),
                    entries(l.producer_state())
                );
            }
            r.check(h.config.producer_id_expiration_ms);
        }
    }
}

/// A one-batch request's outcome the module docs promise, when the model knows it.
fn promise(choice: Choice, r: &Req, allowed: &Allowed) -> Option<Outcome> {
    let full = allowed.full.as_ref();
    let cached = full
        .filter(|f| f.epoch == r.epoch)
        .and_then(|f| {
            f.batches
                .iter()
                .find(|m| m.first_seq == r.first_seq && m.last_seq == r.last_seq)
        })
        .copied();
    let continues = full.is_none_or(|f| {
        (f.epoch == r.epoch && crate::producer_model::follows(f.last_seq(), r.first_seq))
            || (f.epoch < r.epoch && r.first_seq == 0)
    });
    let exact = allowed.exact();
    match choice {
        // Never a duplicate of a cached batch (which a non-increasing history could hold).
        Choice::Next | Choice::NewEpoch if cached.is_none() => Some(Outcome::Written),
        Choice::Retry(_) if exact => match cached {
            Some(m) => Some(Outcome::Duplicate(m)),
            None if continues => Some(Outcome::Written),
            None => None,
        },
        Choice::Gap(_) if exact && cached.is_none() && full.is_some_and(|f| f.epoch == r.epoch) => {
            Some(Outcome::Refused(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER))
        }
        Choice::OldEpoch if exact && full.is_some_and(|f| f.epoch > r.epoch) => {
            Some(Outcome::Refused(ErrorCode::INVALID_PRODUCER_EPOCH))
        }
        _ => None,
    }
}

impl Harness {
    fn pair(&mut self) -> (&mut Replica, &mut Replica) {
        let [a, b] = &mut self.replicas;
        if self.leader == 0 { (a, b) } else { (b, a) }
    }

    fn which(&self, w: Which) -> Vec<usize> {
        match w {
            Which::Leader => vec![self.leader],
            Which::Follower => vec![1 - self.leader],
            Which::Both => vec![0, 1],
        }
    }

    fn step(&mut self, op: &Op) {
        let expiration_ms = self.config.producer_id_expiration_ms;
        match op {
            Op::Produce(specs) => self.produce(specs),
            Op::Replicate { fetches, max_bytes } => {
                if self.diverge() {
                    for _ in 0..1 + fetches % 4 {
                        if !self.fetch(1 + usize::from(*max_bytes % 3_000)) {
                            break;
                        }
                    }
                }
            }
            Op::LeaderChange => {
                self.leader = 1 - self.leader;
                self.epoch = LeaderEpoch(self.epoch.0 + 1);
                let epoch = self.epoch;
                self.replicas[self.leader]
                    .log
                    .maybe_assign_leader_epoch(epoch)
                    .expect("a new leader's epoch is the newest");
            }
            Op::TruncateFollower { back } => {
                let hw = self.hw;
                let (_, f) = self.pair();
                let end = f.end();
                let to = Offset((end.0 - i64::from(back % 32)).max(hw.0));
                if to < end {
                    f.truncate(to);
                }
            }
            Op::Flush(w) => {
                for i in self.which(*w) {
                    self.replicas[i].flush();
                }
            }
            Op::Roll(w) => {
                for i in self.which(*w) {
                    self.replicas[i].log.roll().expect("roll on MemStorage");
                }
            }
            Op::Checkpoint(w) => {
                for i in self.which(*w) {
                    self.replicas[i].checkpoint();
                }
            }
            Op::Retention { ms, bytes } => self.retention(*ms, *bytes),
            Op::Expire(w) => {
                for i in self.which(*w) {
                    self.replicas[i].enforce_retention(self.now, expiration_ms);
                }
            }
            Op::Tick { ms } => self.now += i64::from(*ms),
            Op::TickTo { producer, delta } => {
                let pid = usize::from(*producer) % PRODUCERS;
                let last_ts = self.replicas[self.leader]
                    .history
                    .iter()
                    .rev()
                    .filter_map(|b| b.producer)
                    .find(|p| p.pid == pid as i64)
                    .map(|p| p.ts);
                if let Some(ts) = last_ts {
                    let at = ts.saturating_add(expiration_ms) + i64::from(delta % 3) - 1;
                    self.now = self.now.max(at);
                }
            }
            Op::Crash { which, seed } => {
                for i in self.which(*which) {
                    let seed = seed.rotate_left(17 * i as u32);
                    self.replicas[i].crash(seed, &self.config, self.now, self.trace);
                }
            }
            Op::Reopen(w) => {
                for i in self.which(*w) {
                    self.replicas[i].reopen(&self.config, self.now);
                }
            }
        }
    }

    /// Chooses a batch's producer fields; `None` for a batch without a producer id.
    /// `pending`: the request's earlier batches, per producer (epoch, last sequence).
    fn resolve(
        &mut self,
        spec: &BatchSpec,
        pending: &mut BTreeMap<usize, (i16, i32)>,
    ) -> Option<(usize, Sent)> {
        let pid = usize::from(spec.producer) % PRODUCERS;
        let records = 1 + usize::from(spec.records % 3);
        let value_len = usize::from(spec.value_len % 40);
        let ts = if spec.ts == i16::MIN {
            -1
        } else {
            self.now + i64::from(spec.ts) * 4
        };
        let view = pending
            .get(&pid)
            .copied()
            .or_else(|| self.replicas[self.leader].view(pid));
        let client = &mut self.clients[pid];
        let next = |v: Option<(i16, i32)>, epoch: i16| match v {
            Some((e, last)) => (e, seq_add(last, 1)),
            None => (epoch, 0),
        };
        let (epoch, seq) = match spec.choice {
            Choice::NoProducer => return None,
            Choice::Next => next(view, client.epoch),
            Choice::ClientNext => client
                .sent
                .last()
                .map_or((client.epoch, 0), |s| (s.epoch, seq_add(s.last_seq(), 1))),
            Choice::Retry(k) => {
                if client.sent.is_empty() {
                    next(view, client.epoch)
                } else {
                    let i = client.sent.len() - 1 - usize::from(k) % client.sent.len();
                    let s = client.sent[i];
                    pending.insert(pid, (s.epoch, s.last_seq()));
                    return Some((pid, s));
                }
            }
            Choice::Gap(g) => match view {
                Some((e, last)) => (e, seq_add(last, 2 + i32::from(g % 3))),
                None => (client.epoch, 1 + i32::from(g % 3)),
            },
            Choice::NewEpoch | Choice::NewEpochAt(_) => {
                let e = client.epoch.max(view.map_or(0, |v| v.0)) + 1;
                let seq = match spec.choice {
                    Choice::NewEpochAt(s) => 1 + i32::from(s % 5),
                    _ => 0,
                };
                (e, seq)
            }
            Choice::OldEpoch => match view {
                Some((e, last)) if e > 0 => (e - 1, seq_add(last, 1)),
                v => next(v, client.epoch),
            },
            Choice::NearWrap(d) => (
                view.map_or(client.epoch, |v| v.0),
                i32::MAX - i32::from(d % 3),
            ),
        };
        client.epoch = client.epoch.max(epoch);
        let sent = Sent {
            epoch,
            seq,
            records,
            value_len,
            ts,
        };
        pending.insert(pid, (epoch, sent.last_seq()));
        Some((pid, sent))
    }

    fn produce(&mut self, specs: &[BatchSpec]) {
        let now = self.now;
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let mut set = Vec::new();
        let mut req = Vec::new();
        let mut sent = Vec::new();
        let mut pending = BTreeMap::new();
        for spec in specs {
            match self.resolve(spec, &mut pending) {
                Some((pid, s)) => {
                    set.extend_from_slice(&producer_batch(pid, &s));
                    req.push(Some(Req {
                        pid: pid as i64,
                        epoch: s.epoch,
                        first_seq: s.seq,
                        last_seq: s.last_seq(),
                    }));
                    sent.push(Some((pid, s)));
                }
                None => {
                    self.tag += 1;
                    let records = 1 + usize::from(spec.records % 3);
                    let ts = now + i64::from(spec.ts) * 4;
                    let b =
                        image::make_batch(self.tag, records, usize::from(spec.value_len % 40), ts);
                    set.extend_from_slice(&b);
                    req.push(None);
                    sent.push(None);
                }
            }
        }
        let epoch = self.epoch;
        let trace = self.trace;
        let leader = &mut self.replicas[self.leader];
        let before = entries(leader.log.producer_state());
        let end = leader.end();
        let expected = predict(&before, &req);
        let promised = match (specs, req.first()) {
            ([spec], Some(Some(r))) => promise(spec.choice, r, &leader.allowed(r.pid as usize)),
            _ => None,
        };
        if trace {
            eprintln!("  request {req:?}: expect {expected:?}, promised {promised:?}");
        }
        let result = leader.log.append(&set, epoch, now);
        let actual = match &result {
            Ok(info) if info.duplicate => {
                assert_eq!(info.bytes, 0, "a duplicate writes nothing");
                Outcome::Duplicate(Meta {
                    first_seq: 0,
                    last_seq: 0,
                    first: info.first_offset.0,
                    last: info.last_offset.0,
                    ts: info.log_append_time_ms,
                })
            }
            Ok(_) => Outcome::Written,
            Err(e) => Outcome::Refused(e.error_code()),
        };
        let same = |want: &Outcome| match (want, &actual) {
            (Outcome::Duplicate(m), Outcome::Duplicate(a)) => {
                (m.first, m.last) == (a.first, a.last)
                    && a.ts == if log_append_time { m.ts } else { -1 }
            }
            (w, a) => w == a,
        };
        if let Some(p) = &promised {
            assert!(
                same(p),
                "{}: request {req:?} promised {p:?}, got {result:?}",
                leader.name
            );
        }
        assert!(
            same(&expected),
            "{}: request {req:?} with state {before:?} should be {expected:?}, got {result:?}",
            leader.name
        );
        match result {
            Ok(info) if !info.duplicate => {
                assert_eq!(info.first_offset, end, "a write starts at the log end");
                assert_eq!(info.bytes, set.len());
                let mut next = end;
                for item in BatchIter::new(&set) {
                    let (pos, h) = item.expect("the harness builds whole batches");
                    let mut b = set[pos..pos + h.total_size()].to_vec();
                    assign_offset(&mut b, next, epoch);
                    if log_append_time {
                        set_log_append_time(&mut b, now);
                    }
                    let stored = MBatch::stored(b);
                    next = stored.last.next();
                    leader.history.push(stored);
                }
                assert_eq!(info.last_offset.next(), next);
                for (pid, s) in sent.into_iter().flatten() {
                    let client = &mut self.clients[pid];
                    client.sent.push(s);
                    if client.sent.len() > SENT_KEPT {
                        client.sent.remove(0);
                    }
                }
            }
            _ => {
                assert_eq!(leader.end(), end, "nothing written, the log end stays");
                assert_eq!(
                    entries(leader.log.producer_state()),
                    before,
                    "nothing written, the producer state stays"
                );
                if let Outcome::Duplicate(m) = actual {
                    // The answer names a batch of the request's producers in the log's lineage.
                    let original = leader.history.iter().any(|b| {
                        (b.base.0, b.last.0) == (m.first, m.last)
                            && b.producer.is_some_and(|p| {
                                req.iter().flatten().any(|r| {
                                    (r.pid, r.epoch, r.first_seq, r.last_seq)
                                        == (p.pid, p.epoch, p.first_seq, p.last_seq)
                                })
                            })
                    });
                    assert!(original, "duplicate answer {m:?} names no original batch");
                }
            }
        }
    }

    /// The offset up to which the follower's history equals the leader's.
    fn common(&self) -> Offset {
        let l = &self.replicas[self.leader].history;
        let f = &self.replicas[1 - self.leader].history;
        l.iter()
            .zip(f)
            .take_while(|(a, b)| a == b)
            .last()
            .map_or(Offset::ZERO, |(a, _)| a.last.next())
    }

    /// The follower truncates to where it diverges from the leader (the answer
    /// OffsetForLeaderEpoch would lead to, KIP-101/279). `false` if it cannot follow.
    fn diverge(&mut self) -> bool {
        let common = self.common();
        let (_, f) = self.pair();
        if common < f.log.log_start_offset() {
            return false;
        }
        if f.end() > common {
            f.truncate(common);
        }
        true
    }

    /// One fetch of at most `max_bytes` from the follower's log end; `false` if nothing came.
    fn fetch(&mut self, max_bytes: usize) -> bool {
        let now = self.now;
        let (l, f) = self.pair();
        let at = f.end();
        if at >= l.end() || at < l.log.log_start_offset() {
            return false;
        }
        let read = l
            .log
            .read(at, max_bytes, l.end())
            .unwrap_or_else(|e| panic!("{}: fetch at {at} failed: {e}", l.name));
        assert!(
            !read.records.is_empty(),
            "a fetch below the log end returns a batch"
        );
        let info = f
            .log
            .append_replicated(Bytes::clone(&read.records), now)
            .unwrap_or_else(|e| panic!("{}: append_replicated at {at} failed: {e}", f.name));
        assert_eq!(info.first_offset, at);
        let new_end = f.end();
        assert_eq!(info.last_offset.next(), new_end);
        let copied = l
            .history
            .iter()
            .filter(|b| b.base >= at && b.base < new_end)
            .cloned();
        f.history.extend(copied);
        true
    }

    fn retention(&mut self, ms: Option<u16>, bytes: Option<u16>) {
        if !self.diverge() {
            return;
        }
        while self.fetch(1 << 20) {}
        let end = self.replicas[self.leader].end();
        if self.replicas[1 - self.leader].end() != end {
            return; // the follower cannot catch up (see `diverge`)
        }
        let mut config = self.config.clone();
        config.retention_ms = ms.map_or(-1, i64::from);
        config.retention_bytes = bytes.map_or(-1, i64::from);
        for r in &mut self.replicas {
            r.flush();
            r.log.set_config(config.clone());
            r.enforce_retention(self.now, config.producer_id_expiration_ms);
            r.log.set_config(self.config.clone());
        }
        self.hw = end;
    }
}
