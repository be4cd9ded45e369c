//! The leader's view of a partition's replicas (Kafka's `Partition` leader state, KIP-497).
//!
//! ## ISR states
//! The ISR the controller last committed (`isr`, with its `partition_epoch`) may have one change
//! in flight to the controller (AlterPartition): `pending`. Kafka's vocabulary:
//! - *committed*: no change in flight;
//! - *pending expand*: the pending ISR adds followers;
//! - *pending shrink*: the pending ISR removes followers.
//!
//! The **maximal ISR** is the committed ISR together with the pending one: pending additions are
//! in it, pending removals are still in it. KIP-497 computes the high watermark over the maximal
//! ISR, so the high watermark is conservative in both directions: a follower being added holds
//! it back at once (it may be in the ISR the moment the controller commits, and an ISR member
//! must have everything below the high watermark), and a follower being removed holds it back
//! until the removal is committed (the controller may refuse it). What counts only once
//! committed is the ISR *size* for `min.insync.replicas` before an append (use [`IsrState::isr`]).
//!
//! ## Rules
//! - High watermark: the minimum over the maximal ISR of each member's log end offset; the leader
//!   contributes the end offset the driver passes (its durable end offset, design §3). Followers
//!   outside the maximal ISR count for nothing. The leader only ever moves its high watermark
//!   forward (Kafka's `maybeIncrementLeaderHW`): the driver keeps the larger of the current one
//!   and [`IsrState::high_watermark`].
//! - Expand: with no change in flight, a replica outside the ISR whose log end offset reached the
//!   high watermark and the start offset of the leader's epoch joins (Kafka's
//!   `isFollowerInSync`; the second condition keeps out a follower that has not yet truncated
//!   to this leader's log).
//! - Shrink: with no change in flight, an ISR follower that is not caught up
//!   ([`FollowerState::is_caught_up`]) for more than `replica.lag.time.max.ms` leaves. The
//!   leader never removes itself.
//! - One change at a time: `maybe_*` propose nothing while a change is pending. The driver sends
//!   a proposal, calls [`IsrState::set_pending`], and later [`IsrState::on_isr_committed`] or
//!   [`IsrState::on_isr_rejected`].
//!
//! ## Invariants (asserted)
//! - The leader (`local`) is a replica and a member of the committed ISR, and of any ISR it
//!   proposes.
//! - The committed ISR and any pending ISR are subsets of the replicas, without duplicates.

use std::collections::BTreeMap;

use super::follower::FollowerState;
use crate::types::{Instant, LeaderEpoch, NodeId, Offset};

/// An ISR change sent to the controller and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsrChange {
    /// The proposed ISR.
    pub isr: Vec<NodeId>,
    /// When it was sent (the driver may resend after a timeout).
    pub sent_at: Instant,
}

/// A leader's replica and ISR state for one partition, for one leader epoch.
#[derive(Debug, Clone)]
pub struct IsrState {
    /// This node: the leader.
    local: NodeId,
    /// Every replica of the partition, in the assignment's order (the preferred leader first).
    replicas: Vec<NodeId>,
    /// The ISR the controller committed, as it sent it.
    isr: Vec<NodeId>,
    /// A change in flight to the controller.
    pending: Option<PendingIsrChange>,
    /// The epoch of this leadership; a new epoch means a new `IsrState`.
    leader_epoch: LeaderEpoch,
    /// The version of the partition's state the committed ISR belongs to (KIP-497): sent with
    /// every AlterPartition so that the controller refuses proposals based on stale state.
    partition_epoch: i32,
    /// Every replica but the leader.
    followers: BTreeMap<NodeId, FollowerState>,
}

impl IsrState {
    /// The state of a leadership that begins at `now` (Kafka's `Partition.makeLeader`).
    pub fn new(
        local: NodeId,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        leader_log_end_offset: Offset,
        now: Instant,
    ) -> IsrState {
        let followers = replicas
            .iter()
            .filter(|r| **r != local)
            .map(|r| {
                let state = FollowerState::new(isr.contains(r), leader_log_end_offset, now);
                (*r, state)
            })
            .collect();
        let state = IsrState {
            local,
            replicas,
            isr,
            pending: None,
            leader_epoch,
            partition_epoch,
            followers,
        };
        state.assert_invariants();
        state
    }

    pub fn local(&self) -> NodeId {
        self.local
    }

    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }

    /// The committed ISR (what `min.insync.replicas` is checked against before an append).
    pub fn isr(&self) -> &[NodeId] {
        &self.isr
    }

    /// The committed ISR with the pending one: the members the high watermark waits for.
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut members: Vec<NodeId> = self.isr.clone();
        if let Some(p) = &self.pending {
            members.extend(p.isr.iter().filter(|n| !self.isr.contains(n)));
        }
        members
    }

    pub fn pending(&self) -> Option<&PendingIsrChange> {
        self.pending.as_ref()
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// What the leader knows of `follower`; `None` if it is not a replica (or is the leader).
    pub fn follower(&self, follower: NodeId) -> Option<&FollowerState> {
        self.followers.get(&follower)
    }

    /// Records a Fetch from `follower` at `fetch_offset` (see [`FollowerState::on_fetch`]).
    /// `false` if `follower` is not a follower of this partition (the driver answers the Fetch
    /// with an error). The driver checks `fetch_offset <= leader_log_end_offset` first (else
    /// `OFFSET_OUT_OF_RANGE`).
    pub fn on_follower_fetch(
        &mut self,
        now: Instant,
        follower: NodeId,
        fetch_offset: Offset,
        leader_log_end_offset: Offset,
    ) -> bool {
        assert!(
            fetch_offset <= leader_log_end_offset,
            "fetch offset {fetch_offset} beyond the leader's log end {leader_log_end_offset}"
        );
        let Some(state) = self.followers.get_mut(&follower) else {
            return false;
        };
        state.on_fetch(now, fetch_offset, leader_log_end_offset);
        true
    }

    /// The high watermark the replicas' progress allows: the minimum over the maximal ISR of
    /// each member's log end offset, the leader's being `leader_end_offset`. `-1` while a member
    /// has not fetched in this leadership. The driver only moves its high watermark forward.
    pub fn high_watermark(&self, leader_end_offset: Offset) -> Offset {
        self.maximal_isr()
            .iter()
            .filter(|n| **n != self.local)
            .filter_map(|n| self.followers.get(n))
            .map(|f| f.log_end_offset)
            .fold(leader_end_offset, Offset::min)
    }

    /// A proposed ISR adding every replica outside the ISR that reached both `high_watermark`
    /// and `leader_epoch_start_offset` (the offset where this leader's epoch starts in its
    /// log), in replica order; `None` if there is none or a change is pending.
    pub fn maybe_expand(
        &self,
        high_watermark: Offset,
        leader_epoch_start_offset: Offset,
    ) -> Option<Vec<NodeId>> {
        if self.pending.is_some() {
            return None;
        }
        let joining: Vec<NodeId> = self
            .followers
            .iter()
            .filter(|(n, _)| !self.isr.contains(n))
            .filter(|(_, f)| {
                f.log_end_offset >= high_watermark && f.log_end_offset >= leader_epoch_start_offset
            })
            .map(|(n, _)| *n)
            .collect();
        if joining.is_empty() {
            return None;
        }
        Some(self.in_replica_order(|n| self.isr.contains(&n) || joining.contains(&n)))
    }

    /// A proposed ISR without the followers that are not caught up (more than
    /// `replica_lag_time_max_ms` behind, see [`FollowerState::is_caught_up`]) when the
    /// leader's log ends at `leader_log_end_offset`, in replica order; `None` if every
    /// follower keeps up or a change is pending. Never removes the leader.
    pub fn maybe_shrink(
        &self,
        now: Instant,
        leader_log_end_offset: Offset,
        replica_lag_time_max_ms: u64,
    ) -> Option<Vec<NodeId>> {
        if self.pending.is_some() {
            return None;
        }
        let out_of_sync: Vec<NodeId> = self
            .isr
            .iter()
            .filter(|n| **n != self.local)
            .filter(|n| {
                self.followers.get(n).is_none_or(|f| {
                    !f.is_caught_up(now, leader_log_end_offset, replica_lag_time_max_ms)
                })
            })
            .copied()
            .collect();
        if out_of_sync.is_empty() {
            return None;
        }
        let proposed =
            self.in_replica_order(|n| self.isr.contains(&n) && !out_of_sync.contains(&n));
        assert!(proposed.contains(&self.local), "a shrink keeps the leader");
        Some(proposed)
    }

    /// The driver sent `isr` to the controller at `now` (AlterPartition with this partition
    /// epoch). Until answered, the high watermark waits for the maximal ISR.
    pub fn set_pending(&mut self, isr: Vec<NodeId>, now: Instant) {
        assert!(self.pending.is_none(), "one ISR change at a time");
        self.assert_valid_isr(&isr);
        self.pending = Some(PendingIsrChange { isr, sent_at: now });
    }

    /// The controller committed `isr` at `partition_epoch` (an AlterPartition response, or the
    /// partition's change record in the metadata log). `false`, and nothing changes, if that
    /// state is not newer than the one held (a late or duplicate answer).
    pub fn on_isr_committed(&mut self, isr: Vec<NodeId>, partition_epoch: i32) -> bool {
        if partition_epoch <= self.partition_epoch {
            return false;
        }
        self.assert_valid_isr(&isr);
        self.isr = isr;
        self.partition_epoch = partition_epoch;
        self.pending = None;
        self.assert_invariants();
        true
    }

    /// The change in flight failed or was refused (e.g. `INVALID_UPDATE_VERSION`: the partition
    /// moved on): forget it; `maybe_*` propose again from the committed ISR.
    pub fn on_isr_rejected(&mut self) {
        self.pending = None;
    }

    /// The replicas satisfying `keep`, in the assignment's order.
    fn in_replica_order(&self, keep: impl Fn(NodeId) -> bool) -> Vec<NodeId> {
        self.replicas.iter().copied().filter(|n| keep(*n)).collect()
    }

    fn assert_valid_isr(&self, isr: &[NodeId]) {
        assert!(
            isr.contains(&self.local),
            "the leader is in its ISR: {isr:?}"
        );
        for (i, n) in isr.iter().enumerate() {
            assert!(self.replicas.contains(n), "ISR member {n} is not a replica");
            assert!(!isr[..i].contains(n), "ISR member {n} twice");
        }
    }

    fn assert_invariants(&self) {
        assert!(
            self.replicas.contains(&self.local),
            "the leader is a replica"
        );
        self.assert_valid_isr(&self.isr);
        if let Some(p) = &self.pending {
            self.assert_valid_isr(&p.isr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG_MS: u64 = 10_000;

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    fn ids(v: &[i32]) -> Vec<NodeId> {
        v.iter().map(|n| NodeId(*n)).collect()
    }

    /// Leader 1 of replicas [1, 2, 3] with `isr`, leader log end 100, at time 0.
    fn state(isr: &[i32]) -> IsrState {
        IsrState::new(
            NodeId(1),
            ids(&[1, 2, 3]),
            ids(isr),
            LeaderEpoch(4),
            7,
            Offset(100),
            ms(0),
        )
    }

    fn fetch(s: &mut IsrState, at_ms: u64, follower: i32, offset: i64, leader_end: i64) {
        assert!(s.on_follower_fetch(
            ms(at_ms),
            NodeId(follower),
            Offset(offset),
            Offset(leader_end)
        ));
    }

    /// High watermark over the maximal ISR (KIP-497), one row per case:
    /// (committed ISR, pending ISR, follower 2's and 3's log end offsets (-1 = not fetched),
    /// leader end offset, high watermark).
    #[test]
    fn high_watermark_table() {
        type Row = (&'static [i32], Option<&'static [i32]>, i64, i64, i64, i64);
        let rows: &[Row] = &[
            // Committed ISR only: the slowest member.
            (&[1, 2, 3], None, 90, 80, 100, 80),
            // The leader's own (durable) end offset can be the minimum.
            (&[1, 2, 3], None, 120, 110, 100, 100),
            // Followers outside the ISR count for nothing.
            (&[1, 2], None, 90, 10, 100, 90),
            (&[1], None, 5, 10, 100, 100),
            // KIP-497: a pending addition holds the high watermark back at once.
            (&[1, 2], Some(&[1, 2, 3]), 90, 60, 100, 60),
            // KIP-497: a pending removal still holds it back until committed.
            (&[1, 2, 3], Some(&[1, 2]), 90, 40, 100, 40),
            // A member that has not fetched in this leadership holds it at -1 (no progress).
            (&[1, 2, 3], None, 90, -1, 100, -1),
        ];
        for (i, &(isr, pending, f2, f3, leader_end, hw)) in rows.iter().enumerate() {
            let mut s = state(isr);
            if let Some(p) = pending {
                s.set_pending(ids(p), ms(0));
            }
            for (node, leo) in [(2, f2), (3, f3)] {
                if leo >= 0 {
                    fetch(&mut s, 1, node, leo, leader_end.max(leo));
                }
            }
            assert_eq!(s.high_watermark(Offset(leader_end)), Offset(hw), "row {i}");
        }
    }

    /// KIP-497 end to end: follower 3 catches up and is proposed; while the expansion is pending
    /// it holds the high watermark back; after the commit it is in the ISR.
    #[test]
    fn pending_expansion_holds_the_high_watermark_back_until_committed() {
        let mut s = state(&[1, 2]);
        fetch(&mut s, 1, 2, 100, 100);
        fetch(&mut s, 1, 3, 95, 100);
        assert_eq!(s.high_watermark(Offset(100)), Offset(100));
        let proposed = s
            .maybe_expand(Offset(90), Offset(50))
            .expect("3 reached the HW");
        assert_eq!(proposed, ids(&[1, 2, 3]));
        s.set_pending(proposed.clone(), ms(2));
        assert_eq!(s.maximal_isr(), ids(&[1, 2, 3]));
        assert_eq!(
            s.isr(),
            ids(&[1, 2]),
            "min.insync.replicas sees only the committed ISR"
        );
        assert_eq!(s.high_watermark(Offset(100)), Offset(95), "3 holds it back");
        assert_eq!(
            s.maybe_expand(Offset(90), Offset(50)),
            None,
            "one change at a time"
        );
        assert!(
            !s.on_isr_committed(proposed.clone(), 7),
            "stale partition epoch"
        );
        assert!(s.on_isr_committed(proposed, 8));
        assert_eq!(
            (s.isr(), s.partition_epoch(), s.pending()),
            (&ids(&[1, 2, 3])[..], 8, None)
        );
        assert_eq!(s.high_watermark(Offset(100)), Offset(95));
    }

    /// KIP-497: a pending shrink still waits for the follower being removed.
    #[test]
    fn pending_shrink_holds_the_high_watermark_back_until_committed() {
        let mut s = state(&[1, 2, 3]);
        fetch(&mut s, 1, 2, 100, 100);
        fetch(&mut s, 1, 3, 30, 100);
        assert_eq!(
            s.maybe_shrink(ms(LAG_MS), Offset(100), LAG_MS),
            None,
            "within the lag"
        );
        let proposed = s
            .maybe_shrink(ms(LAG_MS + 1), Offset(100), LAG_MS)
            .expect("3 is too far behind");
        assert_eq!(proposed, ids(&[1, 2]));
        s.set_pending(proposed.clone(), ms(LAG_MS + 1));
        assert_eq!(s.high_watermark(Offset(100)), Offset(30), "3 still counts");
        assert_eq!(s.maybe_shrink(ms(LAG_MS * 5), Offset(100), LAG_MS), None);
        // Refused: back to the committed ISR, and the next pass proposes again.
        s.on_isr_rejected();
        assert_eq!(s.high_watermark(Offset(100)), Offset(30));
        assert_eq!(
            s.maybe_shrink(ms(LAG_MS + 2), Offset(100), LAG_MS),
            Some(proposed.clone())
        );
        s.set_pending(proposed.clone(), ms(LAG_MS + 2));
        assert!(s.on_isr_committed(proposed, 8));
        assert_eq!(
            s.high_watermark(Offset(100)),
            Offset(100),
            "3 no longer counts"
        );
    }

    /// Expansion rule, one row per case: (follower 3's log end offset, high watermark, leader
    /// epoch start offset, joins).
    #[test]
    fn expand_table() {
        let rows: &[(i64, i64, i64, bool)] = &[
            (80, 80, 50, true),
            (79, 80, 50, false), // below the high watermark
            (80, 80, 90, false), // has not reached this leader's epoch (may not have truncated)
            (100, 80, 100, true),
            (-1, 0, 0, false), // never fetched
        ];
        for (i, &(leo, hw, epoch_start, joins)) in rows.iter().enumerate() {
            let mut s = state(&[1, 2]);
            if leo >= 0 {
                fetch(&mut s, 1, 3, leo, 100);
            }
            let got = s.maybe_expand(Offset(hw), Offset(epoch_start));
            assert_eq!(got, joins.then(|| ids(&[1, 2, 3])), "row {i}");
        }
        // Several at once, in replica order.
        let mut s = IsrState::new(
            NodeId(3),
            ids(&[1, 2, 3]),
            ids(&[3]),
            LeaderEpoch(1),
            0,
            Offset(10),
            ms(0),
        );
        fetch(&mut s, 1, 2, 10, 10);
        fetch(&mut s, 1, 1, 10, 10);
        assert_eq!(s.maybe_expand(Offset(10), Offset(0)), Some(ids(&[1, 2, 3])));
    }

    /// Shrink rule (Kafka's `isCaughtUp`), one row per case: (follower 2's fetch time and
    /// offset, leader end offset at that fetch, now, leader end now, removed).
    #[test]
    fn shrink_table() {
        let rows: &[(u64, i64, i64, u64, i64, bool)] = &[
            // Caught up at the fetch, checked within the lag.
            (5_000, 100, 100, 15_000, 120, false),
            // Caught up at the fetch, checked past the lag while the leader moved on.
            (5_000, 100, 100, 15_001, 120, true),
            // Holds the whole log: in sync however long ago it fetched.
            (5_000, 100, 100, 99_000, 100, false),
            // Never caught up since the election (time 0) and past the lag.
            (5_000, 50, 100, 10_001, 100, true),
        ];
        for (i, &(at, offset, end_then, now, end_now, removed)) in rows.iter().enumerate() {
            let mut s = state(&[1, 2, 3]);
            fetch(&mut s, at, 2, offset, end_then);
            fetch(&mut s, now, 3, end_now, end_now);
            let got = s.maybe_shrink(ms(now), Offset(end_now), LAG_MS);
            assert_eq!(got, removed.then(|| ids(&[1, 3])), "row {i}");
        }
        // Nobody fetches: every follower goes, the leader stays.
        let s = state(&[1, 2, 3]);
        assert_eq!(
            s.maybe_shrink(ms(LAG_MS + 1), Offset(100), LAG_MS),
            Some(ids(&[1]))
        );
        assert_eq!(
            state(&[1]).maybe_shrink(ms(LAG_MS * 9), Offset(100), LAG_MS),
            None
        );
    }

    #[test]
    fn unknown_followers_are_refused() {
        let mut s = state(&[1, 2, 3]);
        assert!(!s.on_follower_fetch(ms(1), NodeId(9), Offset(0), Offset(100)));
        assert!(
            !s.on_follower_fetch(ms(1), NodeId(1), Offset(0), Offset(100)),
            "the leader"
        );
        assert_eq!(
            s.follower(NodeId(2)).map(|f| f.log_end_offset),
            Some(Offset(-1))
        );
        assert_eq!(s.leader_epoch(), LeaderEpoch(4));
    }

    #[test]
    #[should_panic(expected = "the leader is in its ISR")]
    fn proposing_an_isr_without_the_leader_is_a_bug() {
        state(&[1, 2]).set_pending(ids(&[2]), ms(0));
    }
}
