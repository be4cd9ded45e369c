//! Fetch sessions (KIP-227): the broker's cache of incremental fetch sessions.
//!
//! A fetcher of many partitions need not list them all in every Fetch. Its first (full) request
//! creates a session that remembers each partition's fetch position; later (incremental)
//! requests list only the partitions whose position changed, and the answers list only the
//! partitions with something new. Kafka's rules (`FetchSession.scala`), with a simpler
//! eviction. Sans-IO: the caller passes `now`, and holds the cache's lock only for one call.
//!
//! ## Request metadata (`session_id`, `session_epoch`, Fetch v7+; older requests are sessionless)
//!
//! ```text
//! id  epoch   meaning
//! 0   -1      sessionless: read what the request lists, answer with session id 0
//! 0   0       full: as sessionless, then create a session from the answer if a slot is free
//!             (or one can be evicted); the answer carries its id, or 0
//! s   0       closes session s, then as (0, 0)
//! s   -1      closes session s, then sessionless
//! s   e > 0   incremental in s: FETCH_SESSION_ID_NOT_FOUND if s is unknown (or was created by
//!             another replica id), INVALID_FETCH_SESSION_EPOCH unless e is its next epoch
//! 0   e > 0   FETCH_SESSION_ID_NOT_FOUND
//! any e < -1  INVALID_FETCH_SESSION_EPOCH
//! ```
//!
//! A session error is answered at once with the top-level error code, session id 0 and no
//! partitions; the fetcher starts over with a full fetch.
//!
//! ## Incremental requests and answers
//! - The request's partitions are added to the session (at the end of its order) or update the
//!   cached fetch offset, `partition_max_bytes`, `current_leader_epoch`, the fetcher's log start
//!   and its durable end; then `forgotten_topics_data` removes partitions. A session left empty
//!   is closed and the fetch answered sessionless.
//! - The fetch reads every partition of the session, in the session's order, with the cached
//!   positions. A follower's progress on the leader (its durable end, Strata's
//!   `DURABLE_END_TAG`) is therefore reported on every round, listed or not: the cached durable
//!   end is the last one the follower sent, which it resends whenever it moves.
//! - The answer lists a partition only if it carries records, an error, or a high watermark,
//!   last stable offset or log start offset different from the last answer that listed it. A
//!   partition added by the request has no last answer (cached high watermark -1), so its first
//!   answer lists it; an error resets the cached high watermark to -1, so the partition is
//!   listed again once the error clears.
//! - A partition whose answer carried records moves to the end of the session's order, so that
//!   an answer cut short by `max_bytes` (KIP-74) does not starve the partitions behind it.
//! - The session's epoch: 1 after creation, then +1 per incremental request (wrapping from
//!   `i32::MAX` to 1). It advances when the request is accepted; the answer checks it again, so
//!   a duplicate request that overtook a long poll makes the older answer
//!   INVALID_FETCH_SESSION_EPOCH, and a session evicted meanwhile FETCH_SESSION_ID_NOT_FOUND.
//!
//! ## Eviction
//! At most `max.incremental.fetch.session.cache.slots` sessions (default [`MAX_SESSIONS`], 1000,
//! as Kafka's; 0 turns incremental sessions off). A full fetch finding no free slot evicts,
//! in this order: the least recently used session unused for [`EVICTION_AFTER_MS`] (Kafka's
//! `min.incremental.fetch.session.eviction.ms`); else, if the new session is a follower's
//! (`replica_id` ≥ 0), the least recently used consumer session. Otherwise no session is
//! created and the fetch is answered sessionless. Kafka also lets a bigger consumer session
//! evict a smaller one; we do not.
//!
//! ## Topic ids
//! Fetch v13+ names topics by id and adds FETCH_SESSION_TOPIC_ID_ERROR for a session whose
//! requests switch between names and ids. This broker serves Fetch up to v12 (names only), so
//! the error cannot arise; a session is keyed by topic name.
//!
//! ## Invariants ([`FetchSessionCache::check_invariants`])
//! - At most [`MAX_SESSIONS`] sessions; ids are positive and unique; every session has at
//!   least one partition and a positive next epoch.
//! - A session's order lists each of its partitions exactly once.
//! - Deterministic: session ids come from a seeded generator (the seed from the node's clock
//!   and id: simulated time under the simulator), maps are ordered, ties broken by id.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use strata_core::ErrorCode;
use strata_core::types::Instant;

/// Most sessions a broker keeps (Kafka's `max.incremental.fetch.session.cache.slots` default).
pub const MAX_SESSIONS: usize = 1000;
/// A session unused this long may be evicted by any new one (Kafka's
/// `min.incremental.fetch.session.eviction.ms` default).
pub const EVICTION_AFTER_MS: u64 = 120_000;

/// The tag (in a Fetch v12+ request partition's tagged fields) under which a Strata follower
/// reports its durable log end: 8 bytes, big-endian `i64`. Kafka's own followers never send it
/// and Kafka's leaders skip tags they do not know, so neither misreads the other. Far above the
/// tags Kafka uses (0 and 1 in FetchPartition).
pub const DURABLE_END_TAG: i32 = 0x5354_0001;

/// `partition` with the follower's durable log end in [`DURABLE_END_TAG`].
pub fn with_durable_end(mut partition: FetchPartition, durable_end: i64) -> FetchPartition {
    partition.unknown_tagged_fields.insert(
        DURABLE_END_TAG,
        Bytes::copy_from_slice(&durable_end.to_be_bytes()),
    );
    partition
}

/// One partition of a fetch: as a request lists it, or as a session remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFetch {
    pub partition: i32,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    /// KIP-320: the leader epoch the fetcher believes current (-1: unchecked).
    pub current_leader_epoch: i32,
    /// The fetcher's own log start (a follower's; -1 from consumers).
    pub log_start_offset: i64,
    /// A Strata follower's durable log end ([`DURABLE_END_TAG`]); a malformed tag is absent.
    pub durable_end: Option<i64>,
}

impl PartitionFetch {
    pub fn from_request(p: &FetchPartition) -> PartitionFetch {
        let durable_end = p
            .unknown_tagged_fields
            .get(&DURABLE_END_TAG)
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(i64::from_be_bytes);
        PartitionFetch {
            partition: p.partition,
            fetch_offset: p.fetch_offset,
            partition_max_bytes: p.partition_max_bytes,
            current_leader_epoch: p.current_leader_epoch,
            log_start_offset: p.log_start_offset,
            durable_end,
        }
    }

    /// The durable log end a follower's fetch reports: its [`DURABLE_END_TAG`] capped at its
    /// `fetch_offset`, or the `fetch_offset` itself.
    pub fn reported_durable_end(&self) -> i64 {
        match self.durable_end {
            Some(end) => end.min(self.fetch_offset),
            None => self.fetch_offset,
        }
    }
}

/// One topic's partitions of a fetch, in fetch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFetch {
    pub topic: String,
    pub partitions: Vec<PartitionFetch>,
}

impl TopicFetch {
    /// The partitions a request lists, in its order.
    pub fn from_request(topics: &[FetchTopic]) -> Vec<TopicFetch> {
        topics
            .iter()
            .map(|t| TopicFetch {
                topic: t.topic.0.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(PartitionFetch::from_request)
                    .collect(),
            })
            .collect()
    }
}

/// What a fetch request asks of the session cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRequest {
    pub session_id: i32,
    pub session_epoch: i32,
    pub replica_id: i32,
}

/// How to serve one fetch, decided by [`FetchSessionCache::new_context`].
#[derive(Debug, PartialEq, Eq)]
pub enum FetchContext {
    /// A session error: answer at once with this top-level code (session id 0, no partitions).
    Error(ErrorCode),
    /// Read what the request lists; answer with session id 0.
    Sessionless,
    /// Read what the request lists; then [`FetchSessionCache::create`] a session from the
    /// answer.
    Full,
    /// Read the session's partitions (`topics`, in its order); then
    /// [`FetchSessionCache::answer_incremental`].
    Incremental {
        session_id: i32,
        epoch: i32,
        topics: Vec<TopicFetch>,
    },
}

type Key = (String, i32);

/// One partition of a session: the fetcher's position and the last answer that listed it.
#[derive(Debug, Clone)]
struct Cached {
    fetch: PartitionFetch,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// Position in the session's order.
    seq: u64,
}

#[derive(Debug)]
struct Session {
    /// Who created it (-1: a consumer); only the same replica id may use it.
    replica_id: i32,
    /// The epoch the next incremental request must carry.
    next_epoch: i32,
    last_used: Instant,
    partitions: BTreeMap<Key, Cached>,
    /// `seq` -> partition: the fetch order.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

impl Session {
    /// Adds `p` at the end of the order, or updates its cached position in place.
    fn upsert(&mut self, topic: &str, p: &PartitionFetch) {
        let key = (topic.to_string(), p.partition);
        if let Some(c) = self.partitions.get_mut(&key) {
            c.fetch = p.clone();
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        let cached = Cached {
            fetch: p.clone(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            seq,
        };
        self.partitions.insert(key, cached);
    }

    fn forget(&mut self, key: &Key) {
        if let Some(c) = self.partitions.remove(key) {
            self.order.remove(&c.seq);
        }
    }

    fn move_to_end(&mut self, key: &Key) {
        let Some(c) = self.partitions.get_mut(key) else {
            return;
        };
        self.order.remove(&c.seq);
        c.seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(c.seq, key.clone());
    }

    /// The session's partitions in its order, grouped by topic (topics in the order their
    /// first partition comes).
    fn topics(&self) -> Vec<TopicFetch> {
        let mut out: Vec<TopicFetch> = Vec::new();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for key in self.order.values() {
            let cached = &self.partitions[key];
            let i = *index.entry(key.0.as_str()).or_insert_with(|| {
                out.push(TopicFetch {
                    topic: key.0.clone(),
                    partitions: Vec::new(),
                });
                out.len() - 1
            });
            out[i].partitions.push(cached.fetch.clone());
        }
        out
    }
}

/// Kafka's `FetchMetadata.nextEpoch` for an open session.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

/// The broker's fetch sessions (see the module docs).
#[derive(Debug)]
pub struct FetchSessionCache {
    sessions: BTreeMap<i32, Session>,
    max_sessions: usize,
    /// splitmix64 state: session ids.
    rng: u64,
}

impl FetchSessionCache {
    pub fn new(seed: u64) -> FetchSessionCache {
        FetchSessionCache::with_capacity(seed, MAX_SESSIONS)
    }

    /// A cache of `max.incremental.fetch.session.cache.slots` sessions (0: no incremental
    /// sessions, every fetch is a full one, as in Kafka).
    pub fn for_config(config: &crate::config::Config, seed: u64) -> FetchSessionCache {
        let slots = config.cluster_int("max.incremental.fetch.session.cache.slots");
        FetchSessionCache::with_capacity(seed, usize::try_from(slots).unwrap_or(usize::MAX))
    }

    pub fn with_capacity(seed: u64, max_sessions: usize) -> FetchSessionCache {
        FetchSessionCache {
            sessions: BTreeMap::new(),
            max_sessions,
            rng: seed,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Decides how to serve a fetch (the table in the module docs); an accepted incremental
    /// request updates its session and advances its epoch.
    pub fn new_context(
        &mut self,
        req: SessionRequest,
        topics: &[TopicFetch],
        forgotten: &[ForgottenTopic],
        now: Instant,
    ) -> FetchContext {
        match req.session_epoch {
            -1 | 0 => {
                if req.session_id != 0 {
                    self.sessions.remove(&req.session_id);
                }
                if req.session_epoch == 0 {
                    FetchContext::Full
                } else {
                    FetchContext::Sessionless
                }
            }
            e if e < -1 => FetchContext::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH),
            epoch => self.incremental(req, epoch, topics, forgotten, now),
        }
    }

    fn incremental(
        &mut self,
        req: SessionRequest,
        epoch: i32,
        topics: &[TopicFetch],
        forgotten: &[ForgottenTopic],
        now: Instant,
    ) -> FetchContext {
        let Some(session) = self.sessions.get_mut(&req.session_id) else {
            return FetchContext::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.replica_id != req.replica_id {
            return FetchContext::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        }
        if session.next_epoch != epoch {
            return FetchContext::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
        }
        for t in topics {
            for p in &t.partitions {
                session.upsert(&t.topic, p);
            }
        }
        for t in forgotten {
            for &partition in &t.partitions {
                session.forget(&(t.topic.0.to_string(), partition));
            }
        }
        if session.partitions.is_empty() {
            self.sessions.remove(&req.session_id);
            return FetchContext::Sessionless;
        }
        session.last_used = now;
        session.next_epoch = next_epoch(epoch);
        FetchContext::Incremental {
            session_id: req.session_id,
            epoch,
            topics: session.topics(),
        }
    }

    /// After a full fetch: creates a session holding `topics` (what the request listed) and
    /// what `response` (its answer, in the same order) said of each, if a slot is free or one
    /// can be evicted. Returns the new session's id, or 0.
    pub fn create(
        &mut self,
        replica_id: i32,
        topics: &[TopicFetch],
        response: &FetchResponse,
        now: Instant,
    ) -> i32 {
        let parts = topics.iter().map(|t| t.partitions.len()).sum::<usize>();
        if parts == 0 || !self.make_room(replica_id >= 0, now) {
            return 0;
        }
        let mut session = Session {
            replica_id,
            next_epoch: 1,
            last_used: now,
            partitions: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
        };
        for (t, answered) in topics.iter().zip(&response.responses) {
            for (p, a) in t.partitions.iter().zip(&answered.partitions) {
                session.upsert(&t.topic, p);
                let key = (t.topic.clone(), p.partition);
                if let Some(c) = session.partitions.get_mut(&key) {
                    remember_answer(c, a);
                }
            }
        }
        let id = self.new_session_id();
        self.sessions.insert(id, session);
        id
    }

    /// After an incremental fetch of session `session_id` whose request carried `epoch`: the
    /// answer to send, listing only what changed (module docs); the session remembers it.
    pub fn answer_incremental(
        &mut self,
        session_id: i32,
        epoch: i32,
        response: FetchResponse,
    ) -> FetchResponse {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return error_response(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.next_epoch != next_epoch(epoch) {
            return error_response(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
        }
        let mut topics = Vec::with_capacity(response.responses.len());
        for mut t in response.responses {
            let topic = t.topic.0.to_string();
            t.partitions.retain(|a| {
                let key = (topic.clone(), a.partition_index);
                let Some(c) = session.partitions.get_mut(&key) else {
                    return false;
                };
                let listed = must_answer(c, a);
                remember_answer(c, a);
                if a.records.as_ref().is_some_and(|r| !r.is_empty()) {
                    session.move_to_end(&key);
                }
                listed
            });
            if !t.partitions.is_empty() {
                topics.push(t);
            }
        }
        FetchResponse::default()
            .with_session_id(session_id)
            .with_responses(topics)
    }

    /// Frees a slot if the cache is full (module docs, "Eviction"). Returns whether one is free.
    fn make_room(&mut self, follower: bool, now: Instant) -> bool {
        if self.sessions.len() < self.max_sessions {
            return true;
        }
        let stale_before = now
            .0
            .saturating_sub(EVICTION_AFTER_MS.saturating_mul(1_000_000));
        let lru = |consumers_only: bool| {
            self.sessions
                .iter()
                .filter(|(_, s)| !consumers_only || s.replica_id < 0)
                .min_by_key(|(id, s)| (s.last_used, **id))
                .map(|(id, s)| (*id, s.last_used))
        };
        let victim = match lru(false) {
            Some((id, used)) if used.0 < stale_before => Some(id),
            _ if follower => lru(true).map(|(id, _)| id),
            _ => None,
        };
        match victim {
            Some(id) => {
                self.sessions.remove(&id);
                true
            }
            None => false,
        }
    }

    /// A positive id no session holds (Kafka draws them at random too: a fetcher that
    /// reconnects after a restart must not land in someone else's session).
    fn new_session_id(&mut self) -> i32 {
        loop {
            self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let id = i32::try_from(z >> 33).expect("31 bits fit an i32");
            if id > 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Asserts the module's invariants.
    pub fn check_invariants(&self) {
        assert!(self.sessions.len() <= self.max_sessions);
        for (id, s) in &self.sessions {
            assert!(*id > 0, "session id {id}");
            assert!(s.next_epoch > 0, "session {id} next epoch {}", s.next_epoch);
            assert!(!s.partitions.is_empty(), "session {id} is empty");
            assert_eq!(s.order.len(), s.partitions.len(), "session {id} order");
            for (seq, key) in &s.order {
                assert_eq!(s.partitions[key].seq, *seq, "session {id} order of {key:?}");
            }
        }
    }
}

/// Kafka's `CachedPartition.maybeUpdateResponseData` test: must the answer list `a`?
fn must_answer(c: &Cached, a: &PartitionData) -> bool {
    a.records.as_ref().is_some_and(|r| !r.is_empty())
        || a.error_code != ErrorCode::NONE.0
        || a.high_watermark != c.high_watermark
        || a.last_stable_offset != c.last_stable_offset
        || a.log_start_offset != c.log_start_offset
}

/// The session remembers what an answer said of a partition; after an error, nothing (so the
/// partition is listed again once the error clears).
fn remember_answer(c: &mut Cached, a: &PartitionData) {
    if a.error_code == ErrorCode::NONE.0 {
        c.high_watermark = a.high_watermark;
        c.last_stable_offset = a.last_stable_offset;
        c.log_start_offset = a.log_start_offset;
    } else {
        c.high_watermark = -1;
    }
}

/// The answer to a session error: the code, session id 0, no partitions.
pub fn error_response(code: ErrorCode) -> FetchResponse {
    FetchResponse::default()
        .with_error_code(code.0)
        .with_session_id(0)
}

#[cfg(test)]
#[path = "tests/fetch_session.rs"]
mod tests;
