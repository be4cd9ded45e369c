//! The group coordinator (classic protocol), sans IO: one [`GroupCoordinator`] per
//! `__consumer_offsets` partition this node leads, bound to that partition's leader epoch.
//!
//! Kafka's reference is `group-coordinator/.../group/` (`GroupMetadataManager.java`,
//! `OffsetMetadataManager.java`, `classic/ClassicGroup.java`); `shared/groups.md` summarises it.
//!
//! ## Two kinds of state
//!
//! - **The image** ([`GroupImage`]: committed offsets and each group's last GroupMetadata) is
//!   what the partition's records replay to, and changes only by [`GroupCoordinator::replay`].
//!   Loading is replay. Two copies: `latest` (every record appended) and `committed` (records
//!   below the high watermark, advanced by [`GroupCoordinator::on_high_watermark`]). OffsetFetch
//!   reads `committed`; decisions (deletes, retention) read `latest`.
//! - **Live groups** (members, rebalance phase, timers, parked replies) are not replicated, as
//!   in Kafka: joins and heartbeats are never written. A loaded group is Stable (or Empty) with
//!   every session re-armed, so a failover causes no rebalance (unless it is above
//!   `group.max.size`: then it rebalances, as in Kafka).
//!
//! ## Driving contract
//!
//! ```text
//! let mut c = GroupCoordinator::new(config, leader_epoch, seed);  // Loading
//! for batch in log_start..log_end { c.replay(batch.last_offset, &batch.records); }
//! c.on_loaded(now, high_watermark);                               // Active
//! loop {
//!     // exactly one of:
//!     let out = c.handle(now, request_id, request);
//!     let out = c.tick(now);                  // at next_deadline()
//!     let out = c.on_high_watermark(now, hw); // the partition's high watermark advanced
//!     // then: if out.records is not empty, append them as ONE batch (acks=1, in the page
//!     // cache) before any other call, and report: c.replay(last_offset, &out.records) on
//!     // success, or c.on_append_failed(now, error) (whose output is handled the same way);
//!     // send out.replies; if out.superseded_below is Some(s), the partition's records below
//!     // s are no longer needed (s is below the high watermark): delete whole segments below it.
//! }
//! c.unload();                                 // leader epoch ended: parked -> NOT_COORDINATOR
//! ```
//!
//! A reply whose decision wrote records (OffsetCommit, the leader's SyncGroup and every
//! member's with it, a static member's rejoin, DeleteGroups, OffsetDelete) is **parked** until
//! the high watermark passes the batch's last offset: then `on_high_watermark` releases it
//! (Kafka's `CoordinatorRuntime` completes writes on its `HighWatermarkListener`). A failed
//! append fails its parked replies (Kafka's `appendGroupMetadataErrorToResponseError`
//! mapping); `unload` fails every parked reply with `NOT_COORDINATOR`. Nothing is leaked.
//! Replies parked on the group (JoinGroup during a rebalance, SyncGroup before the leader's)
//! come out of later `handle`/`tick` calls. Every request gets exactly one reply.
//!
//! ## Size
//!
//! The partition would grow with every commit. A coordinator snapshots it instead
//! (`snapshot.rs`): once enough was written since the last snapshot, `tick` re-emits the whole
//! latest image in chunks, and once they are committed it reports the records below the
//! snapshot's start superseded ([`Output::superseded_below`]). Invariant: replaying the
//! partition from any offset at or below that start gives the same image as replaying it all.
//!
//! Member ids are `clientId-` + a UUID v4 string drawn from a SplitMix64 seeded by `seed`
//! (the driver derives it from node, partition and leader epoch), never from the OS.
//!
//! ## Invariants (asserted, also in release builds)
//!
//! - A group's generation never goes back in what it writes (`Group::metadata_value`), except
//!   that it wraps from `i32::MAX` to 1 (`join::next_generation`; only a corrupt or foreign
//!   record gets there): what is written after `i32::MAX` is at least 1.
//! - Empty has no members, Stable and CompletingRebalance have some; the leader is a
//!   member, and there is one when there are members.
//! - Every member of a Stable group has an assignment; Stable/CompletingRebalance have a
//!   selected protocol; joins are parked only while PreparingRebalance, syncs never then.
//! - Members and pending members of a group ≤ `group.max.size`, except that a group loaded
//!   above it (the setting was lowered) is PreparingRebalance until its join phase ends within
//!   it; parked joins ≤ `group.max.size` always. The static-member map points at members
//!   carrying that instance id.
//! - Parked replies are exactly those waiting on an uncommitted offset: every write's offset
//!   lies at or above the high watermark and in the uncommitted queue.
//! - No group is kept Dead (deletion removes it), and a group forgotten by retention has its
//!   metadata tombstoned if the log holds any (`retention.rs`).
//!
//! The log is input: whatever [`GroupCoordinator::replay`] took loads without breaking these
//! (a group with members and no protocol loads Empty, one above `group.max.size` rebalances),
//! and every record the coordinator writes encodes (`records.rs`: encoding is total).
//!
//! Files: `api.rs` (requests, replies), `records.rs` (the `__consumer_offsets` formats),
//! `image.rs` (replay), `member.rs` (a group's live state), `join.rs` (JoinGroup and the join
//! phase), `sync.rs` (SyncGroup, Heartbeat, LeaveGroup, session expiry), `offsets.rs`
//! (OffsetCommit, OffsetFetch, OffsetDelete), `admin.rs` (ListGroups, DescribeGroups,
//! DeleteGroups), `retention.rs` (KIP-211), `snapshot.rs` (keeping the partition bounded),
//! `config.rs`.

mod admin;
mod api;
mod config;
mod image;
mod join;
mod member;
mod offsets;
pub mod records;
mod retention;
mod snapshot;
mod sync;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

pub use api::*;
pub use config::GroupConfig;
pub use image::{GroupImage, GroupOffsets};
pub use member::GroupState;
pub use records::{DecodeError, GroupRecord};

use member::{Group, MemberIdGenerator};

use crate::error::ErrorCode;
use crate::types::{Instant, LeaderEpoch, Offset};

/// The time a call happens at: monotonic for timers, wall-clock ms for what records carry
/// (commit timestamps, the time a group became Empty: KIP-211 retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    pub instant: Instant,
    pub wall_ms: i64,
}

/// What a call produced: replies to send, records to append (one batch), and which records
/// of the partition a completed snapshot superseded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub replies: Vec<(RequestId, Response)>,
    pub records: Vec<GroupRecord>,
    /// A snapshot that started at this offset is complete and committed: replaying the
    /// partition from any offset at or below it gives the whole image, so the records below it
    /// may be deleted (whole segments). Always below the high watermark. See `snapshot.rs`.
    pub superseded_below: Option<Offset>,
}

/// The partition of `__consumer_offsets` that coordinates `group_id`:
/// `Utils.abs(groupId.hashCode()) % partitions` with Java's UTF-16 `String.hashCode` and
/// `Utils.abs(Integer.MIN_VALUE) == 0`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "the offsets topic has partitions");
    let hash = group_id
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// Something parked until a write is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiter {
    /// A reply decided with the write, sent once it is committed.
    Reply(RequestId, Response),
    /// The leader's assignment for (group, generation): its commit completes every sync.
    Assignment { group: String, generation: i32 },
    /// A static member's replacement (KIP-345) and its join reply: a failed append reverts the
    /// group to `old` (Kafka's `updateStaticMemberThenRebalanceOrCompleteJoin`), so the live
    /// group stays what its last GroupMetadata says.
    StaticReplacement {
        group: String,
        /// The member as it was before `new_id` took its place.
        old: Box<member::Member>,
        new_id: String,
        id: RequestId,
        reply: Response,
    },
}

/// A decision's records not yet appended, and what waits on them.
#[derive(Debug, Clone)]
struct Write {
    records: Vec<GroupRecord>,
    waiters: Vec<Waiter>,
    /// The records are a snapshot chunk.
    snapshot_chunk: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Loading,
    Active,
    Unloaded,
}

/// Output being built by one call, with what waits on its records.
#[derive(Debug, Default)]
struct Out {
    replies: Vec<(RequestId, Response)>,
    records: Vec<GroupRecord>,
    waiters: Vec<Waiter>,
    /// `records` are a snapshot chunk (and nothing else).
    snapshot_chunk: bool,
    superseded_below: Option<Offset>,
}

impl Out {
    fn reply(&mut self, id: RequestId, response: Response) {
        self.replies.push((id, response));
    }
}

/// The coordinator of one `__consumer_offsets` partition (see the module docs).
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    leader_epoch: LeaderEpoch,
    status: Status,
    ids: MemberIdGenerator,
    groups: BTreeMap<String, Group>,
    /// Every record replayed.
    latest: GroupImage,
    /// Records below the high watermark.
    committed: GroupImage,
    /// Replayed batches not yet below the high watermark, by last offset.
    uncommitted: VecDeque<(Offset, Vec<GroupRecord>)>,
    high_watermark: Offset,
    last_replayed: Option<Offset>,
    /// The last call's records, until `replay` or `on_append_failed`.
    unappended: Option<Write>,
    /// Parked on appended, uncommitted batches, by their last offset.
    in_flight: BTreeMap<Offset, Vec<Waiter>>,
    next_retention_check: Option<Instant>,
    last_now: Instant,
    /// When to snapshot the partition, and the snapshot in progress (`snapshot.rs`).
    snapshots: snapshot::Snapshots,
}

impl GroupCoordinator {
    /// A coordinator for the partition's `leader_epoch`, loading (every request gets
    /// `COORDINATOR_LOAD_IN_PROGRESS` until [`GroupCoordinator::on_loaded`]).
    pub fn new(config: GroupConfig, leader_epoch: LeaderEpoch, seed: u64) -> GroupCoordinator {
        GroupCoordinator {
            config,
            leader_epoch,
            status: Status::Loading,
            ids: MemberIdGenerator::new(seed),
            groups: BTreeMap::new(),
            latest: GroupImage::default(),
            committed: GroupImage::default(),
            uncommitted: VecDeque::new(),
            high_watermark: Offset::ZERO,
            last_replayed: None,
            unappended: None,
            in_flight: BTreeMap::new(),
            next_retention_check: None,
            last_now: Instant::default(),
            snapshots: snapshot::Snapshots::default(),
        }
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The image below the high watermark.
    pub fn committed_image(&self) -> &GroupImage {
        &self.committed
    }

    /// The image of every record replayed.
    pub fn latest_image(&self) -> &GroupImage {
        &self.latest
    }

    /// A live group's state (`None`: no such group).
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// A live group's generation.
    pub fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation)
    }

    /// Applies a batch of records whose last offset is `last_offset`: while loading, each
    /// batch of the partition in order; when active, the batch just appended from the last
    /// call's [`Output::records`] (which must be these records).
    pub fn replay(&mut self, last_offset: Offset, records: &[GroupRecord]) {
        assert!(
            self.last_replayed.is_none_or(|last| last_offset > last),
            "batches replay in offset order: {last_offset} after {:?}",
            self.last_replayed
        );
        assert!(self.status != Status::Unloaded, "replay after unload");
        self.last_replayed = Some(last_offset);
        if let Some(write) = self.unappended.take() {
            assert_eq!(write.records, records, "replayed what the last call wrote");
            if !write.waiters.is_empty() {
                self.in_flight.insert(last_offset, write.waiters);
            }
            if write.snapshot_chunk {
                self.on_snapshot_chunk_appended(last_offset);
            }
        } else {
            assert!(
                self.status == Status::Loading,
                "an active coordinator replays only its own writes"
            );
        }
        let delta: isize = records.iter().map(|r| self.latest.apply(r)).sum();
        self.on_replayed_for_snapshot(records.len(), delta);
        if last_offset >= self.high_watermark {
            self.uncommitted.push_back((last_offset, records.to_vec()));
        } else {
            for record in records {
                self.committed.apply(record);
            }
        }
        self.check_invariants();
    }

    /// Loading is done (the log end is replayed): groups come alive from the image, Stable
    /// or Empty, with every session re-armed from `now`.
    pub fn on_loaded(&mut self, now: Now, high_watermark: Offset) -> Output {
        assert_eq!(self.status, Status::Loading, "loaded once");
        self.status = Status::Active;
        self.observe(now);
        let ids: Vec<String> = self.latest.group_ids().cloned().collect();
        for id in ids {
            self.revive(now, &id);
        }
        self.next_retention_check = Some(
            now.instant
                .saturating_add_millis(self.config.offsets_retention_check_interval_ms),
        );
        self.on_high_watermark(now, high_watermark)
    }

    /// Decides `request` (see the module docs). The reply is in the output, or parked.
    pub fn handle(&mut self, now: Now, id: RequestId, request: Request) -> Output {
        self.begin(now);
        let mut out = Out::default();
        match self.status {
            Status::Loading => out.reply(
                id,
                admin::error_response(&request, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
            ),
            Status::Unloaded => out.reply(
                id,
                admin::error_response(&request, ErrorCode::NOT_COORDINATOR),
            ),
            Status::Active => self.dispatch(now, id, request, &mut out),
        }
        self.finish(out)
    }

    fn dispatch(&mut self, now: Now, id: RequestId, request: Request, out: &mut Out) {
        match request {
            Request::JoinGroup(r) => self.handle_join(now, id, r, out),
            Request::SyncGroup(r) => self.handle_sync(now, id, r, out),
            Request::Heartbeat(r) => {
                let error = self.handle_heartbeat(now, &r);
                out.reply(id, Response::Heartbeat(error));
            }
            Request::LeaveGroup(r) => self.handle_leave(now, id, &r, out),
            Request::OffsetCommit(r) => self.handle_offset_commit(now, id, r, out),
            Request::OffsetFetch(r) => {
                let response = self.handle_offset_fetch(&r);
                out.reply(id, Response::OffsetFetch(response));
            }
            Request::ListGroups(r) => out.reply(id, Response::ListGroups(self.list_groups(&r))),
            Request::DescribeGroups(r) => {
                out.reply(id, Response::DescribeGroups(self.describe_groups(&r)))
            }
            Request::DeleteGroups(r) => self.handle_delete_groups(id, &r, out),
            Request::OffsetDelete(r) => self.handle_offset_delete(id, &r, out),
        }
    }

    /// Timers: join and sync phases, sessions, pending members, offsets retention; then the
    /// partition's snapshot (start, next chunk, completion: `snapshot.rs`).
    pub fn tick(&mut self, now: Now) -> Output {
        self.begin(now);
        let mut out = Out::default();
        if self.status == Status::Active {
            self.expire_timers(now, &mut out);
            if self
                .next_retention_check
                .is_some_and(|at| now.instant >= at)
            {
                self.next_retention_check = Some(
                    now.instant
                        .saturating_add_millis(self.config.offsets_retention_check_interval_ms),
                );
                self.expire_offsets(now, &mut out);
            }
            self.maybe_snapshot(now, &mut out);
        }
        self.finish(out)
    }

    /// The high watermark of the partition advanced: batches below it are committed, and
    /// what waited on them is released.
    pub fn on_high_watermark(&mut self, now: Now, high_watermark: Offset) -> Output {
        self.begin(now);
        let mut out = Out::default();
        if high_watermark > self.high_watermark {
            self.high_watermark = high_watermark;
        }
        while let Some((offset, _)) = self.uncommitted.front() {
            if *offset >= self.high_watermark {
                break;
            }
            let (_, records) = self.uncommitted.pop_front().expect("front exists");
            for record in &records {
                self.committed.apply(record);
            }
        }
        let still_waiting = self.in_flight.split_off(&self.high_watermark);
        let released = std::mem::replace(&mut self.in_flight, still_waiting);
        for waiter in released.into_values().flatten() {
            match waiter {
                Waiter::Reply(id, response) => out.reply(id, response),
                Waiter::Assignment { group, generation } => {
                    self.complete_assignment(now, &group, generation, &mut out)
                }
                Waiter::StaticReplacement { id, reply, .. } => out.reply(id, reply),
            }
        }
        if self.status == Status::Active {
            self.maybe_complete_snapshot(&mut out);
        }
        self.finish(out)
    }

    /// The last call's records could not be appended: what waited on them fails with
    /// Kafka's mapping of `error`, a leader's assignment makes its group rebalance, and a group
    /// whose removal was not written comes back from the image.
    pub fn on_append_failed(&mut self, now: Now, error: ErrorCode) -> Output {
        let write = self
            .unappended
            .take()
            .expect("on_append_failed follows a call that returned records");
        self.begin(now);
        let mut out = Out::default();
        if write.snapshot_chunk {
            self.on_snapshot_chunk_failed(now);
        }
        let error = map_append_error(error);
        for waiter in write.waiters {
            match waiter {
                Waiter::Reply(id, response) => out.reply(id, admin::with_error(response, error)),
                Waiter::Assignment { group, generation } => {
                    self.fail_assignment(now, &group, generation, error, &mut out)
                }
                Waiter::StaticReplacement {
                    group,
                    old,
                    new_id,
                    id,
                    reply,
                } => {
                    self.revert_static_replacement(now, &group, *old, &new_id);
                    out.reply(id, join::failed_replacement_reply(reply, error));
                }
            }
        }
        for record in &write.records {
            let id = record.group();
            if !self.groups.contains_key(id)
                && (self.latest.groups.contains_key(id) || self.latest.offsets.contains_key(id))
            {
                let id = id.to_owned();
                self.revive(now, &id);
            }
        }
        self.finish(out)
    }

    /// The leader epoch ended (or the node stops): every parked reply fails with
    /// `NOT_COORDINATOR`, and the coordinator answers nothing else.
    pub fn unload(&mut self) -> Vec<(RequestId, Response)> {
        self.status = Status::Unloaded;
        self.drop_snapshot();
        let mut replies = Vec::new();
        let mut waiters: Vec<Waiter> = std::mem::take(&mut self.in_flight)
            .into_values()
            .flatten()
            .collect();
        if let Some(write) = self.unappended.take() {
            waiters.extend(write.waiters);
        }
        for waiter in waiters {
            match waiter {
                Waiter::Reply(id, response)
                | Waiter::StaticReplacement {
                    id,
                    reply: response,
                    ..
                } => {
                    replies.push((id, admin::with_error(response, ErrorCode::NOT_COORDINATOR)));
                }
                Waiter::Assignment { .. } => {}
            }
        }
        for group in std::mem::take(&mut self.groups).into_values() {
            for member in group.members.into_values() {
                if let Some(id) = member.awaiting_join {
                    replies.push((id, join::join_error(&member.id, ErrorCode::NOT_COORDINATOR)));
                }
                if let Some(id) = member.awaiting_sync {
                    replies.push((id, sync::sync_error(ErrorCode::NOT_COORDINATOR)));
                }
            }
        }
        replies
    }

    /// When `tick` next has work (`None`: nothing scheduled).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.status != Status::Active {
            return None;
        }
        self.groups
            .values()
            .filter_map(Group::next_deadline)
            .chain(self.next_retention_check)
            .chain(self.snapshot_deadline())
            .min()
    }

    fn begin(&mut self, now: Now) {
        assert!(
            self.unappended.is_none(),
            "the last call's records must be appended (replay) or failed first"
        );
        self.observe(now);
    }

    fn observe(&mut self, now: Now) {
        self.last_now = self.last_now.max(now.instant);
    }

    fn finish(&mut self, out: Out) -> Output {
        if out.records.is_empty() {
            assert!(out.waiters.is_empty(), "only writes park replies");
        } else {
            assert!(
                !out.snapshot_chunk || out.waiters.is_empty(),
                "a snapshot chunk is a batch of its own"
            );
            self.unappended = Some(Write {
                records: out.records.clone(),
                waiters: out.waiters,
                snapshot_chunk: out.snapshot_chunk,
            });
        }
        self.check_invariants();
        Output {
            replies: out.replies,
            records: out.records,
            superseded_below: out.superseded_below,
        }
    }

    fn check_invariants(&self) {
        for group in self.groups.values() {
            group.check_invariants(self.config.max_size);
        }
        for offset in self.in_flight.keys() {
            assert!(
                *offset >= self.high_watermark,
                "a parked reply waits on an uncommitted offset"
            );
            assert!(
                self.uncommitted.iter().any(|(o, _)| o == offset),
                "a parked reply waits on a replayed batch"
            );
        }
        assert_eq!(
            self.snapshots.image_records,
            self.latest.record_count(),
            "the image's record count is kept by replay"
        );
    }

    /// The live group, created Empty (and written, as Kafka 4 writes a new group's empty
    /// metadata) when `create` is set and it does not exist.
    fn group_or_create(&mut self, now: Now, group_id: &str, out: &mut Out) -> &mut Group {
        if !self.groups.contains_key(group_id) {
            let mut group = Group::new(group_id);
            group.state_timestamp_ms = Some(now.wall_ms);
            let value = group.metadata_value(&BTreeMap::new(), self.latest.groups.get(group_id));
            out.records.push(GroupRecord::GroupMetadata {
                group: group_id.to_owned(),
                value: Some(value),
            });
            self.groups.insert(group_id.to_owned(), group);
        }
        self.groups
            .get_mut(group_id)
            .expect("present or just created")
    }

    /// Brings a group of the image to life (loading, or a removal whose append failed): as its
    /// last GroupMetadata says (`Group::loaded`), or Empty with offsets only. The log is input:
    /// a group loaded with more members than `group.max.size` (lowered since it was written)
    /// rebalances at once, as Kafka's `onLoaded` does ("Freshly-loaded group is over capacity");
    /// its join phase ends within the limit.
    fn revive(&mut self, now: Now, group_id: &str) {
        let mut group = match self.latest.groups.get(group_id) {
            Some(value) => Group::loaded(group_id, value, now.instant),
            None => Group::new(group_id),
        };
        if group.members.len() > self.config.max_size {
            let mut out = Out::default();
            let mut cx = join::Cx {
                config: &self.config,
                now,
                out: &mut out,
            };
            join::prepare_rebalance(&mut cx, &mut group);
            assert!(
                out.replies.is_empty() && out.records.is_empty(),
                "a loaded group has nothing parked and a rebalance's start writes nothing"
            );
        }
        self.groups.insert(group_id.to_owned(), group);
    }
}

/// Kafka's mapping of append errors to coordinator errors
/// (`CoordinatorRuntime`/`appendGroupMetadataErrorToResponseError`).
fn map_append_error(error: ErrorCode) -> ErrorCode {
    match error {
        ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::REQUEST_TIMED_OUT
        | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::KAFKA_STORAGE_ERROR => {
            ErrorCode::NOT_COORDINATOR
        }
        ErrorCode::MESSAGE_TOO_LARGE
        | ErrorCode::RECORD_LIST_TOO_LARGE
        | ErrorCode::INVALID_FETCH_SIZE => ErrorCode::UNKNOWN_SERVER_ERROR,
        other => other,
    }
}

/// A group id a coordinator can hold: non-empty where Kafka requires it, and short enough for
/// the records' int16-length string.
fn valid_group_id(group_id: &str, allow_empty: bool) -> bool {
    (allow_empty || !group_id.is_empty()) && group_id.len() <= i16::MAX as usize
}
