//! `group_coordinator`: one `__consumer_offsets` partition's [`GroupCoordinator`] driven by
//! arbitrary request sequences (every request kind, from five clients that learn from their
//! replies), timer firings, high-watermark advances, failed appends and leader changes.
//!
//! The harness is the driver and follows the contract of `core/src/group/mod.rs` exactly:
//! after every output with records it appends them as one batch (through the bytes: core's
//! encoding, decoded back) and replays them at the next offset, or reports
//! `on_append_failed` (whose output it handles the same way), before any other call; it ticks
//! at `next_deadline()` (or late, or early); a leader change unloads the coordinator and loads
//! a fresh one from the log (maybe truncated to the high watermark, compacted, or with another
//! writer's batch of older or flexible record versions at its end: `group_foreign.rs`).
//! Input format: `group_steps.rs`; requests: `group_clients.rs`; the log model:
//! `group_model.rs`; what replies must be: `group_replies.rs`; a scenario: `group_scenario.rs`.
//!
//! Properties, beyond the coordinator's own `assert!`s (a panic is a failure):
//! - every request gets exactly one reply over the run, of its own kind: parked replies come
//!   out of later calls, at the latest from `unload`, after which none is outstanding;
//! - a reply that reports a write as done (an OffsetCommit partition, a DeleteGroups group or
//!   an OffsetDelete with error NONE, the leader's SyncGroup, a static member's rejoin) comes
//!   only once the high watermark is past that request's own batch, never for a failed
//!   append, and the batch holds what it reports; a parked SyncGroup that succeeds gets the
//!   assignment of a committed GroupMetadata record of its generation;
//! - OffsetFetch answers exactly from the committed records (the model's, not the
//!   coordinator's image): the value, or -1 without one, and with `require_stable`
//!   UNSTABLE_OFFSET_COMMIT for partitions with an uncommitted commit record;
//! - the coordinator's committed and latest images equal what the model's log replays to;
//! - a GroupMetadata record never carries a lower generation than the group's last one in the
//!   log, and a live group's generation is never below it; a group whose batch ends with its
//!   GroupMetadata value is still live (only a tombstone removes a written group);
//! - a Stable group, as DescribeGroups shows it, is what its last GroupMetadata record says
//!   (members, instance ids, client ids and hosts, subscriptions, assignments, protocol);
//! - a fresh coordinator loading the log agrees (committed image equal to the old one across
//!   truncation of the uncommitted tail and compaction; both images at the end of the run);
//! - a loading or unloaded coordinator answers at once with its error and writes nothing;
//! - ticks at one instant converge: after at most [`MAX_TICKS_AT_ONE_INSTANT`] nothing is due
//!   at that instant (else a driver sleeping until `next_deadline()` would spin).

use std::collections::{BTreeMap, VecDeque};

use strata_core::error::ErrorCode;
use strata_core::group::{
    GroupConfig, GroupCoordinator, GroupRecord, GroupState, Now, Output, Request, RequestId,
    Response,
};
use strata_core::types::{Instant, LeaderEpoch, Offset};

use crate::group_clients::{Clients, POOL, group_id};
use crate::group_foreign::foreign_batch;
use crate::group_model::{Entry, Log};
use crate::group_replies::{
    Via, Write, check_fetch, check_generations, check_stable_groups, check_write_reply,
    error_codes, same_kind, writes_for_itself,
};
use crate::group_steps::{Step, read_config};
use crate::input::Reader;

/// Steps per input.
pub const MAX_STEPS: usize = 128;
/// Ticks at one instant before the harness calls it a spin.
pub const MAX_TICKS_AT_ONE_INSTANT: usize = 8;
/// Deadlines an `Advance` walks one by one before it jumps the rest.
const MAX_DEADLINES_WALKED: usize = 64;

/// What a run tolerates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Generate the inputs of open findings (`fuzz/findings/README.md`). None is open in this
    /// target today: the eight consumer-group findings are fixed and their inputs generated
    /// always (`offset.metadata.max.bytes` above `i16::MAX`, a rebalance timeout of 0, loaded
    /// GroupMetadata with no protocol, at generation `i32::MAX`, with a v4-only string, or above
    /// `group.max.size`; failed static replacements checked; no run stops early). Off in the
    /// target unless `STRATA_FUZZ_OPEN_FINDINGS` is set.
    pub open_findings: bool,
}

impl Options {
    /// The target's options: open findings only with `STRATA_FUZZ_OPEN_FINDINGS` set.
    pub fn from_env() -> Options {
        Options {
            open_findings: std::env::var_os("STRATA_FUZZ_OPEN_FINDINGS").is_some(),
        }
    }
}

/// What a run reached (for tests that a scenario exercises what it should).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub steps: usize,
    pub requests: usize,
    /// JoinGroup replies with error NONE.
    pub joins_ok: usize,
    pub syncs_ok: usize,
    /// Some group was Stable after some step.
    pub stable: bool,
    /// OffsetCommit partitions answered NONE.
    pub commits_ok: usize,
    /// OffsetFetch partitions answered with a committed offset.
    pub offsets_fetched: usize,
    /// DeleteGroups groups answered NONE.
    pub groups_deleted: usize,
    pub append_failures: usize,
    pub reloads: usize,
    /// Foreign (other writer's) batches loaded.
    pub foreign_batches: usize,
    pub ticks: usize,
    pub batches: usize,
}

pub fn group_coordinator(data: &[u8]) {
    run(data, Options::from_env());
}

pub fn run(data: &[u8], options: Options) -> Summary {
    let mut r = Reader::new(data);
    let config = read_config(&mut r);
    let trace = std::env::var_os("STRATA_FUZZ_TRACE").is_some();
    let _ = options; // no open finding left to tolerate
    let mut d = Driver::new(config);
    for _ in 0..MAX_STEPS {
        if r.is_empty() {
            break;
        }
        let step = Step::read(&mut r);
        if trace {
            eprintln!("{step:?}");
        }
        d.step(step);
        d.check();
        d.summary.steps += 1;
    }
    d.finish()
}

/// A request sent and not yet answered.
#[derive(Debug)]
struct Sent {
    client: Option<usize>,
    request: Request,
}

struct Driver {
    config: GroupConfig,
    c: GroupCoordinator,
    epoch: i32,
    now: Now,
    log: Log,
    clients: Clients,
    next_request: u64,
    outstanding: BTreeMap<RequestId, Sent>,
    /// Requests whose success waits on their own batch.
    writes: BTreeMap<RequestId, Write>,
    /// The request whose `handle` produced the records being appended.
    writer: Option<RequestId>,
    /// Error codes for the next appends.
    fail_next: VecDeque<ErrorCode>,
    summary: Summary,
    trace: bool,
}

/// A member-id seed per leader epoch, as the node derives one (never the same twice here).
fn seed(epoch: i32) -> u64 {
    0x5eed_0000_0000_0000 ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl Driver {
    fn new(config: GroupConfig) -> Driver {
        let now = Now {
            instant: Instant::from_millis(1_000),
            wall_ms: 1_700_000_000_000,
        };
        let mut c = GroupCoordinator::new(config.clone(), LeaderEpoch(1), seed(1));
        let out = c.on_loaded(now, Offset::ZERO);
        let mut d = Driver {
            clients: Clients::new(config.clone()),
            config,
            c,
            epoch: 1,
            now,
            log: Log::default(),
            next_request: 0,
            outstanding: BTreeMap::new(),
            writes: BTreeMap::new(),
            writer: None,
            fail_next: VecDeque::new(),
            summary: Summary::default(),
            trace: std::env::var_os("STRATA_FUZZ_TRACE").is_some(),
        };
        d.absorb(out, Via::Other);
        d
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Join {
                client,
                group,
                mode,
                protocols,
                session,
                rebalance,
            } => {
                let (c, request) = self
                    .clients
                    .join(client, group, mode, protocols, session, rebalance);
                self.send(Some(c), request);
            }
            Step::Sync {
                client,
                mode,
                assign,
            } => {
                let (c, request) = self.clients.sync(client, mode, assign);
                self.send(Some(c), request);
            }
            Step::Heartbeat { client, mode } => {
                let (c, request) = self.clients.heartbeat(client, mode);
                self.send(Some(c), request);
            }
            Step::Leave {
                group,
                clients,
                mode,
            } => {
                let request = self.clients.leave(group, clients, mode);
                self.send(None, request);
            }
            Step::Commit {
                client,
                mode,
                partitions,
                offset,
                metadata,
            } => {
                let (c, request) = self
                    .clients
                    .commit(client, mode, partitions, offset, metadata);
                self.send(Some(c), request);
            }
            Step::Fetch { group, mode } => self.send(None, Clients::fetch(group, mode)),
            Step::List { filter } => self.send(None, Clients::list(filter)),
            Step::Describe { groups } => self.send(None, Clients::describe(groups)),
            Step::Delete { groups } => self.send(None, Clients::delete(groups)),
            Step::OffsetDelete { group, mode } => {
                self.send(None, Clients::offset_delete(group, mode))
            }
            Step::ToDeadline {} => {
                if let Some(deadline) = self.c.next_deadline() {
                    self.clock_to(deadline);
                    self.tick_until_quiet();
                }
            }
            Step::Advance { ms, mode } => {
                let ms = [
                    1,
                    10,
                    999,
                    1_000,
                    3_000,
                    5_999,
                    6_000,
                    10_001,
                    20_001,
                    300_001,
                    8 * 86_400_000,
                    30 * 86_400_000,
                ][usize::from(ms) % 12];
                self.advance(ms, mode & 1 != 0);
            }
            Step::TickEarly {} => self.tick_until_quiet(),
            Step::HighWatermark { mode } => {
                let to = match mode % 3 {
                    0 => self.log.log_end,
                    1 => self.log.next_batch_end().unwrap_or(self.log.high_watermark),
                    _ => self.log.high_watermark,
                };
                self.log.high_watermark = self.log.high_watermark.max(to);
                let out = self.c.on_high_watermark(self.now, Offset(to));
                self.absorb(out, Via::Other);
            }
            Step::FailAppends { code, count } => {
                let code = [
                    ErrorCode::NOT_ENOUGH_REPLICAS,
                    ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                    ErrorCode::REQUEST_TIMED_OUT,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    ErrorCode::NOT_LEADER_OR_FOLLOWER,
                    ErrorCode::KAFKA_STORAGE_ERROR,
                    ErrorCode::MESSAGE_TOO_LARGE,
                    ErrorCode::RECORD_LIST_TOO_LARGE,
                    ErrorCode::INVALID_FETCH_SIZE,
                    ErrorCode::UNKNOWN_SERVER_ERROR,
                ][usize::from(code) % 10];
                for _ in 0..=(count % 3) {
                    self.fail_next.push_back(code);
                }
            }
            Step::Reload { mode, foreign } => self.reload(mode, foreign),
            Step::WallClock { delta } => {
                let delta = [-86_400_000, -1_000, 1_000, 8 * 86_400_000][usize::from(delta) % 4];
                self.now.wall_ms = self.now.wall_ms.saturating_add(delta);
            }
        }
    }

    // --- Driving -----------------------------------------------------------------------------

    fn send(&mut self, client: Option<usize>, request: Request) {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.summary.requests += 1;
        self.outstanding.insert(
            id,
            Sent {
                client,
                request: request.clone(),
            },
        );
        if self.trace {
            eprintln!("  {id:?} -> {request:?}");
        }
        let out = self.c.handle(self.now, id, request.clone());
        if writes_for_itself(&request, &out.records) {
            self.writes.insert(id, Write::Pending);
            self.writer = Some(id);
        }
        self.absorb(out, Via::Own(id));
        self.writer = None;
    }

    /// Sends the replies, then appends the records (or fails the append, as told) and
    /// reports it, until an output has no records.
    fn absorb(&mut self, mut out: Output, mut via: Via) {
        loop {
            self.deliver(std::mem::take(&mut out.replies), via);
            if out.records.is_empty() {
                return;
            }
            let writer = self.writer.take();
            if let Some(code) = self.fail_next.pop_front() {
                if self.trace {
                    eprintln!("  append failed ({code:?}): {:?}", out.records);
                }
                if let Some(id) = writer {
                    self.writes.insert(id, Write::Failed);
                }
                self.summary.append_failures += 1;
                out = self.c.on_append_failed(self.now, code);
                via = Via::Other;
                continue;
            }
            check_generations(&self.log, &out.records);
            let entries: Vec<Entry> = out.records.iter().map(Entry::written).collect();
            let last = self.log.append(entries);
            if self.trace {
                eprintln!("  appended at {last}: {:?}", out.records);
            }
            self.c.replay(last, &out.records);
            self.check_written_groups_live(&out.records);
            self.summary.batches += 1;
            if let Some(id) = writer {
                self.writes.insert(id, Write::At(last));
            }
            return;
        }
    }

    /// A group whose batch ends with its GroupMetadata value is live: only a tombstone in the
    /// same batch (deletion, retention) removes a written group (finding 8, fixed: a group
    /// emptied and expired by retention in one tick is tombstoned).
    fn check_written_groups_live(&mut self, records: &[GroupRecord]) {
        let mut last: BTreeMap<&str, bool> = BTreeMap::new();
        for record in records {
            if let GroupRecord::GroupMetadata { group, value } = record {
                last.insert(group, value.is_some());
            }
        }
        for (group, written) in last {
            assert!(
                !written || self.c.group_state(group).is_some(),
                "group {group}: its GroupMetadata was written, then it was dropped without a \
                 tombstone"
            );
        }
    }

    fn clock_to(&mut self, at: Instant) {
        if at > self.now.instant {
            let delta_ms = (at.0 - self.now.instant.0) / 1_000_000;
            self.now.instant = at;
            self.now.wall_ms = self.now.wall_ms.saturating_add(delta_ms as i64);
        }
    }

    /// Ticks at `now` until nothing is due at `now` (a driver ticks whenever
    /// `next_deadline() <= now`).
    fn tick_until_quiet(&mut self) {
        for _ in 0..MAX_TICKS_AT_ONE_INSTANT {
            let out = self.c.tick(self.now);
            self.summary.ticks += 1;
            self.absorb(out, Via::Other);
            if self.c.next_deadline().is_none_or(|d| d > self.now.instant) {
                return;
            }
        }
        panic!(
            "still due after {MAX_TICKS_AT_ONE_INSTANT} ticks at {:?} (next deadline {:?}): a \
             driver sleeping until next_deadline() would spin",
            self.now.instant,
            self.c.next_deadline()
        );
    }

    /// Moves the clock `ms` forward: deadline by deadline, or in one late jump.
    fn advance(&mut self, ms: u64, late: bool) {
        let target = self.now.instant.saturating_add_millis(ms);
        if !late {
            for _ in 0..MAX_DEADLINES_WALKED {
                match self.c.next_deadline() {
                    Some(d) if d <= target => {
                        self.clock_to(d);
                        self.tick_until_quiet();
                    }
                    _ => break,
                }
            }
        }
        self.clock_to(target);
        self.tick_until_quiet();
    }

    /// Leader change: unload, then a fresh coordinator loads the (maybe truncated, compacted,
    /// extended) log at the same high watermark.
    fn reload(&mut self, mode: u8, foreign: u8) {
        let replies = self.c.unload();
        self.deliver(replies, Via::Other);
        assert!(
            self.outstanding.is_empty(),
            "requests left unanswered by unload: {:?}",
            self.outstanding.keys().collect::<Vec<_>>()
        );
        let probe = mode & 8 != 0;
        if probe {
            self.probe(foreign, ErrorCode::NOT_COORDINATOR);
        }
        let old_committed = self.c.committed_image().clone();
        if mode & 1 != 0 {
            self.log.truncate_uncommitted();
        }
        if mode & 2 != 0 {
            self.log.compact(mode & 4 != 0);
        }
        if mode & 16 != 0 {
            let entries = foreign_batch(foreign, self.now.wall_ms);
            self.log.append(entries);
            self.summary.foreign_batches += 1;
        }
        self.epoch += 1;
        self.c = GroupCoordinator::new(
            self.config.clone(),
            LeaderEpoch(self.epoch),
            seed(self.epoch),
        );
        if probe {
            self.probe(foreign, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        }
        for batch in &self.log.batches {
            self.c.replay(batch.last, &batch.reread());
        }
        let out = self.c.on_loaded(self.now, Offset(self.log.high_watermark));
        self.absorb(out, Via::Other);
        assert_eq!(
            self.c.committed_image(),
            &old_committed,
            "the committed image survives a leader change"
        );
        self.summary.reloads += 1;
    }

    /// A request to a coordinator that is loading or unloaded: answered at once with `error`,
    /// nothing written.
    fn probe(&mut self, sel: u8, error: ErrorCode) {
        let request = match sel % 5 {
            0 => self.clients.sync(sel, 0, 0).1,
            1 => self.clients.commit(sel, 1, 0, 1, 2).1,
            2 => Clients::fetch(sel, 0),
            3 => Clients::describe(7),
            _ => Clients::delete(1),
        };
        self.next_request += 1;
        let id = RequestId(self.next_request);
        let out = self.c.handle(self.now, id, request);
        assert!(out.records.is_empty(), "a probe wrote {:?}", out.records);
        assert_eq!(out.replies.len(), 1, "a probe is answered at once");
        let (reply_id, response) = &out.replies[0];
        assert_eq!(*reply_id, id);
        let errors = error_codes(response);
        assert!(
            !errors.is_empty() && errors.iter().all(|e| *e == error),
            "a probe's reply carries {error:?}: {response:?}"
        );
    }

    // --- Replies -----------------------------------------------------------------------------

    fn deliver(&mut self, replies: Vec<(RequestId, Response)>, via: Via) {
        for (id, response) in replies {
            if self.trace {
                eprintln!("  {id:?} <- {response:?}");
            }
            let sent = self.outstanding.remove(&id).unwrap_or_else(|| {
                panic!("a reply to no outstanding request: {id:?} {response:?}")
            });
            assert!(
                same_kind(&sent.request, &response),
                "{id:?}: {response:?} answers {:?}",
                sent.request
            );
            check_write_reply(
                &self.log,
                self.writes.get(&id).copied(),
                id,
                &sent.request,
                &response,
                via,
            );
            if let (Request::OffsetFetch(r), Response::OffsetFetch(f)) = (&sent.request, &response)
            {
                assert_eq!(via, Via::Own(id), "OffsetFetch is answered at once");
                check_fetch(&self.log, r, f);
            }
            if let (Request::ListGroups(r), Response::ListGroups(l)) = (&sent.request, &response) {
                for g in &l.groups {
                    let state = self.c.group_state(&g.group_id).map(GroupState::name);
                    assert_eq!(state, Some(g.group_state.as_str()), "ListGroups: {g:?}");
                    assert!(
                        r.states_filter.is_empty()
                            || r.states_filter
                                .iter()
                                .any(|s| s.eq_ignore_ascii_case(&g.group_state)),
                        "ListGroups: {g:?} outside the filter {:?}",
                        r.states_filter
                    );
                }
            }
            if let Response::DescribeGroups(groups) = &response {
                assert_eq!(via, Via::Own(id), "DescribeGroups is answered at once");
                check_stable_groups(&self.log, groups);
            }
            self.count(&response);
            if let Some(c) = sent.client {
                self.clients.list[c].learn(&response);
            }
        }
    }

    fn count(&mut self, response: &Response) {
        let s = &mut self.summary;
        match response {
            Response::JoinGroup(r) if r.error_code.is_ok() => s.joins_ok += 1,
            Response::SyncGroup(r) if r.error_code.is_ok() => s.syncs_ok += 1,
            Response::OffsetCommit(r) => {
                s.commits_ok += r
                    .topics
                    .iter()
                    .flat_map(|(_, p)| p)
                    .filter(|(_, e)| e.is_ok())
                    .count();
            }
            Response::OffsetFetch(r) => {
                s.offsets_fetched += r
                    .groups
                    .iter()
                    .flat_map(|g| &g.topics)
                    .flat_map(|(_, p)| p)
                    .filter(|p| p.error_code.is_ok() && p.offset != -1)
                    .count();
            }
            Response::DeleteGroups(r) => {
                s.groups_deleted += r.iter().filter(|(_, e)| e.is_ok()).count();
            }
            _ => {}
        }
    }

    /// After every step.
    fn check(&mut self) {
        assert_eq!(
            self.c.committed_image(),
            &self.log.image(true),
            "the committed image is what the committed records replay to"
        );
        assert_eq!(
            self.c.latest_image(),
            &self.log.image(false),
            "the latest image is what the log replays to"
        );
        let generations = self.log.generations();
        for sel in 0..POOL {
            let id = group_id(sel);
            if let (Some(live), Some(logged)) = (self.c.generation(&id), generations.get(&id)) {
                assert!(
                    live >= *logged,
                    "group {id}: live generation {live} below the logged {logged}"
                );
            }
            if self.c.group_state(&id) == Some(GroupState::Stable) {
                self.summary.stable = true;
            }
        }
    }

    /// The end of the input: unload (every request answered), then a fresh load agrees.
    fn finish(mut self) -> Summary {
        let committed = self.c.committed_image().clone();
        let latest = self.c.latest_image().clone();
        let replies = self.c.unload();
        self.deliver(replies, Via::Other);
        assert!(
            self.outstanding.is_empty(),
            "requests never answered: {:?}",
            self.outstanding.keys().collect::<Vec<_>>()
        );
        let mut fresh = GroupCoordinator::new(
            self.config.clone(),
            LeaderEpoch(self.epoch + 1),
            seed(self.epoch + 1),
        );
        for batch in &self.log.batches {
            fresh.replay(batch.last, &batch.reread());
        }
        let _ = fresh.on_loaded(self.now, Offset(self.log.high_watermark));
        assert_eq!(
            fresh.committed_image(),
            &committed,
            "load = replay (committed)"
        );
        assert_eq!(fresh.latest_image(), &latest, "load = replay (latest)");
        self.summary
    }
}
