//! What a leader knows of one follower (Kafka's `Replica` / `ReplicaState`): how far its log
//! reaches and when it was last caught up, learned from its Fetch requests.
//!
//! ## The caught-up rule (Kafka's `Replica.updateFetchStateOrThrow`)
//! A Fetch at time `t` from offset `f` shows the follower holds every offset below `f`.
//! - `f >=` the leader's log end offset now: caught up at `t`.
//! - else `f >=` the leader's log end offset as of the follower's previous fetch (at `t0`): it
//!   has everything the leader had then, so it was caught up at `t0`.
//! - else: no news; the last caught-up time stays.
//!
//! The caught-up time never moves backwards. A follower whose caught-up time is older than
//! `replica.lag.time.max.ms` has fallen out of sync (see `IsrState::maybe_shrink`).

use crate::types::{Instant, Offset};

/// Kafka's `UnifiedLog.UnknownOffset`: the follower has not fetched in this leadership.
pub const UNKNOWN_OFFSET: Offset = Offset(-1);

/// The leader's view of one follower. Fields are Kafka's `ReplicaState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset: the offset of its latest Fetch. [`UNKNOWN_OFFSET`] until it
    /// fetches; the high watermark cannot pass it while the follower is in the maximal ISR.
    pub log_end_offset: Offset,
    /// When the latest Fetch arrived (`lastFetchTimeMs`): the time the second caught-up rule
    /// credits on the next fetch.
    pub last_fetch_time: Option<Instant>,
    /// When the follower last held everything the leader had (`lastCaughtUpTimeMs`); `None`:
    /// never in this leadership.
    pub last_caught_up_time: Option<Instant>,
    /// The leader's log end offset at the latest Fetch (`lastFetchLeaderLogEndOffset`): what the
    /// next fetch must reach for the second caught-up rule.
    pub leader_end_offset_at_last_fetch: Offset,
}

impl FollowerState {
    /// The state when a leadership begins at `now` with the leader's log ending at
    /// `leader_log_end_offset` (Kafka's `resetReplicaState`). An ISR member counts as caught up
    /// at `now`, so it has `replica.lag.time.max.ms` to fetch before it can be removed; others
    /// have never been caught up. The election stands in for a previous fetch: a first fetch
    /// from at least `leader_log_end_offset` shows the follower had all the leader had then.
    pub fn new(in_sync: bool, leader_log_end_offset: Offset, now: Instant) -> FollowerState {
        FollowerState {
            log_end_offset: UNKNOWN_OFFSET,
            last_fetch_time: Some(now),
            last_caught_up_time: in_sync.then_some(now),
            leader_end_offset_at_last_fetch: leader_log_end_offset,
        }
    }

    /// Records a Fetch from `fetch_offset` at `now`, when the leader's log ends at
    /// `leader_log_end_offset`. See the module docs for the caught-up rule.
    pub fn on_fetch(&mut self, now: Instant, fetch_offset: Offset, leader_log_end_offset: Offset) {
        let caught_up_at = if fetch_offset >= leader_log_end_offset {
            Some(now)
        } else if fetch_offset >= self.leader_end_offset_at_last_fetch {
            self.last_fetch_time
        } else {
            None
        };
        self.last_caught_up_time = self.last_caught_up_time.max(caught_up_at);
        self.log_end_offset = fetch_offset;
        self.leader_end_offset_at_last_fetch = self
            .leader_end_offset_at_last_fetch
            .max(leader_log_end_offset);
        self.last_fetch_time = self.last_fetch_time.max(Some(now));
    }

    /// Kafka's `ReplicaState.isCaughtUp`: the follower holds everything the leader has, or was
    /// caught up within the last `replica_lag_time_max_ms`.
    pub fn is_caught_up(
        &self,
        now: Instant,
        leader_log_end_offset: Offset,
        replica_lag_time_max_ms: u64,
    ) -> bool {
        if self.log_end_offset == leader_log_end_offset {
            return true;
        }
        let lag = Instant::from_millis(replica_lag_time_max_ms).0;
        self.last_caught_up_time
            .is_some_and(|t| now.0.saturating_sub(t.0) <= lag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    /// Kafka's `lastCaughtUpTimeMs` rule, one row per case:
    /// (previous fetch time, leader end at previous fetch, caught up before, fetch offset,
    /// leader end now, caught up after).
    #[test]
    fn caught_up_rule_table() {
        type Row = (u64, i64, Option<u64>, i64, i64, Option<u64>);
        let rows: &[Row] = &[
            // At the leader's end now: caught up now.
            (100, 50, Some(10), 60, 60, Some(200)),
            // Behind now, but past where the leader was at the previous fetch: caught up then.
            (100, 50, Some(10), 55, 60, Some(100)),
            (100, 50, None, 50, 60, Some(100)),
            // Behind both: no news.
            (100, 50, Some(10), 40, 60, Some(10)),
            (100, 50, None, 40, 60, None),
            // Never backwards: an older credit does not replace a newer one.
            (100, 50, Some(150), 55, 60, Some(150)),
        ];
        for (i, &(prev, prev_end, before, fetch, end, after)) in rows.iter().enumerate() {
            let mut f = FollowerState {
                log_end_offset: Offset(0),
                last_fetch_time: Some(ms(prev)),
                last_caught_up_time: before.map(ms),
                leader_end_offset_at_last_fetch: Offset(prev_end),
            };
            f.on_fetch(ms(200), Offset(fetch), Offset(end));
            assert_eq!(f.last_caught_up_time, after.map(ms), "row {i}");
            assert_eq!(f.log_end_offset, Offset(fetch), "row {i}");
            assert_eq!(f.last_fetch_time, Some(ms(200)), "row {i}");
            assert_eq!(
                f.leader_end_offset_at_last_fetch,
                Offset(end.max(prev_end)),
                "row {i}"
            );
        }
    }

    #[test]
    fn a_steady_follower_one_fetch_behind_stays_caught_up() {
        // The leader grows by 10 between fetches; each fetch reaches where the leader was at the
        // previous one, so the follower is credited with the previous fetch's time.
        let mut f = FollowerState::new(true, Offset(0), ms(0));
        for i in 1..=20u64 {
            let t = ms(i * 100);
            f.on_fetch(t, Offset((i as i64 - 1) * 10), Offset(i as i64 * 10));
            assert!(f.is_caught_up(t, Offset(i as i64 * 10), 150), "fetch {i}");
        }
        // It stops fetching: after the lag it is out of sync, unless it had everything.
        assert!(!f.is_caught_up(ms(2_000 + 200), Offset(200), 150));
        assert!(
            f.is_caught_up(ms(9_999), Offset(190), 150),
            "holds the whole log"
        );
    }

    #[test]
    fn new_state_credits_only_isr_members() {
        let isr = FollowerState::new(true, Offset(30), ms(5));
        assert_eq!(isr.last_caught_up_time, Some(ms(5)));
        assert_eq!(isr.log_end_offset, UNKNOWN_OFFSET);
        let other = FollowerState::new(false, Offset(30), ms(5));
        assert_eq!(other.last_caught_up_time, None);
        assert!(!other.is_caught_up(ms(5), Offset(30), 1_000));
    }
}
