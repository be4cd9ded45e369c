//! Follower truncation after a leader change (KIP-101, KIP-279).
//!
//! A follower that (re)starts fetching from a leader first sends OffsetForLeaderEpoch with its
//! latest epoch `E`. The leader answers with the largest epoch `L <= E` it knows and the offset
//! where `L` ends in its log ([`crate::log::LeaderEpochCache::end_offset_for`]). Before KIP-279
//! the follower truncated to that offset alone; after two quick leader changes the logs could
//! then diverge *below* it (KIP-279's example, tested below). KIP-279 makes the follower look up
//! its own end offset for the leader's epoch `L` and truncate to the smaller of the two — and,
//! when it does not know `L` itself, truncate to where its largest epoch below `L` ends and ask
//! again.
//!
//! [`offset_truncation_state`] is Kafka's `AbstractFetcherThread.getOffsetTruncationState`.
//!
//! Invariant: the offset returned is never above the follower's log end offset (truncation
//! never extends a log).

use crate::log::leader_epoch_cache::{
    EpochEndOffset, EpochEntry, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, end_offset_for,
};
use crate::types::Offset;

/// Where to truncate, and whether that is final (Kafka's `OffsetTruncationState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetTruncationState {
    /// Truncate the follower's log to this offset (`PartitionLog::truncate_to`).
    pub offset: Offset,
    /// `false`: after truncating, send OffsetForLeaderEpoch again with the follower's new latest
    /// epoch; `true`: start fetching from `offset`.
    pub truncation_completed: bool,
}

/// The offset a follower truncates to, given the leader's OffsetForLeaderEpoch answer for the
/// follower's latest epoch, the follower's leader epoch entries, its log end offset, and its
/// high watermark (the initial fetch offset Kafka falls back to).
pub fn offset_truncation_state(
    leader: EpochEndOffset,
    follower_epochs: &[EpochEntry],
    follower_log_end_offset: Offset,
    follower_high_watermark: Offset,
) -> OffsetTruncationState {
    let leo = follower_log_end_offset;
    let state = if leader.end_offset == UNDEFINED_EPOCH_OFFSET {
        // The leader knows no epoch at or below the one asked for: the follower had no epoch to
        // ask with (an empty or pre-KIP-101 log), or the leader's cache is empty. Nothing to
        // compare: fall back to the high watermark, which every ISR member had (pre-KIP-101).
        OffsetTruncationState {
            offset: follower_high_watermark.min(leo),
            truncation_completed: true,
        }
    } else if leader.leader_epoch == UNDEFINED_EPOCH {
        // An offset without an epoch: OffsetForLeaderEpoch v0 (before KIP-279). Trust the offset
        // alone, as KIP-101 did.
        OffsetTruncationState {
            offset: leader.end_offset.min(leo),
            truncation_completed: true,
        }
    } else {
        // The follower's own end for the epoch the leader answered with.
        let follower = end_offset_for(follower_epochs, leader.leader_epoch, leo);
        if follower.end_offset == UNDEFINED_EPOCH_OFFSET {
            // The follower knows no epoch at or below the leader's (it tracked none then, or the
            // leader answered with an epoch newer than any the follower has, which an honest
            // leader does not): the leader's offset alone, as KIP-101.
            OffsetTruncationState {
                offset: leader.end_offset.min(leo),
                truncation_completed: true,
            }
        } else if follower.leader_epoch != leader.leader_epoch {
            // The follower never had the leader's epoch: everything from the follower's first
            // epoch above it is suspect. Truncate there and ask again with the follower's new
            // latest epoch (KIP-279's loop).
            OffsetTruncationState {
                offset: follower.end_offset.min(leo),
                truncation_completed: false,
            }
        } else {
            // Both know the epoch: the logs agree up to where the earlier of the two ends it.
            OffsetTruncationState {
                offset: follower.end_offset.min(leader.end_offset).min(leo),
                truncation_completed: true,
            }
        }
    };
    assert!(
        state.offset <= leo,
        "truncation never extends the log: {state:?} above {leo}"
    );
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LeaderEpoch;

    fn e(epoch: i32, start: i64) -> EpochEntry {
        EpochEntry::new(epoch, start)
    }

    struct Row {
        name: &'static str,
        leader: (i32, i64),
        follower: Vec<EpochEntry>,
        leo: i64,
        hw: i64,
        want: (i64, bool),
    }

    #[test]
    fn truncation_table() {
        let rows = [
            // KIP-101 "Scenario 1: high watermark truncation followed by immediate leader
            // election": B has m1, m2 (epoch 0) but its HW is only 1 when it restarts. Truncating
            // to the HW would lose m2 if B then became leader; asking the leader keeps it.
            Row {
                name: "KIP-101 scenario 1",
                leader: (0, 2),
                follower: vec![e(0, 0)],
                leo: 2,
                hw: 1,
                want: (2, true),
            },
            // KIP-101 "Scenario 2: replica divergence on restart after multiple hard failures":
            // A has m1, m2 (epoch 0); B had only m1, came back first, led epoch 1 and wrote m3 at
            // offset 1. A, now following, asks for epoch 0: it ends at 1 on B, so m2 goes.
            Row {
                name: "KIP-101 scenario 2",
                leader: (0, 1),
                follower: vec![e(0, 0)],
                leo: 2,
                hw: 1,
                want: (1, true),
            },
            // KIP-279's figure: A led epoch 0 (m1@0, m2@1); B got m1, led epoch 1 and wrote m3@1,
            // then crashed; A came back, led epoch 2 and wrote m4@2. B asks for epoch 1; A never
            // had it and answers (0, 2). Pre-KIP-279, B truncated to 2 and kept m3@1 while A has
            // m2@1: divergence. KIP-279: B's own epoch 0 ends at 1, so B truncates to 1.
            Row {
                name: "KIP-279 fast leader change",
                leader: (0, 2),
                follower: vec![e(0, 0), e(1, 1)],
                leo: 2,
                hw: 1,
                want: (1, true),
            },
            // The follower does not know the leader's epoch 2 (it had 1 and 3): truncate to where
            // its epoch 3 starts, then ask again (the second round is the next test).
            Row {
                name: "KIP-279 unknown leader epoch: intermediate truncation",
                leader: (2, 12),
                follower: vec![e(0, 0), e(1, 3), e(3, 7)],
                leo: 10,
                hw: 2,
                want: (7, false),
            },
            // No epoch to compare with: back to the high watermark.
            Row {
                name: "undefined answer: high watermark",
                leader: (-1, -1),
                follower: vec![],
                leo: 9,
                hw: 4,
                want: (4, true),
            },
            // OffsetForLeaderEpoch v0: an offset without an epoch.
            Row {
                name: "undefined epoch, valid offset",
                leader: (-1, 6),
                follower: vec![e(0, 0)],
                leo: 9,
                hw: 4,
                want: (6, true),
            },
            // The leader's epoch predates every epoch the follower still has (retention moved the
            // follower's log start): the follower's end for it is its first start offset.
            Row {
                name: "leader epoch older than all the follower's",
                leader: (3, 120),
                follower: vec![e(5, 100), e(7, 150)],
                leo: 170,
                hw: 160,
                want: (100, true),
            },
            // An epoch newer than the follower knows: the leader's offset alone.
            Row {
                name: "leader epoch newer than all the follower's",
                leader: (4, 20),
                follower: vec![e(1, 0)],
                leo: 30,
                hw: 10,
                want: (20, true),
            },
            // Never above the follower's log end offset.
            Row {
                name: "leader ahead: no truncation",
                leader: (2, 500),
                follower: vec![e(2, 0)],
                leo: 40,
                hw: 40,
                want: (40, true),
            },
        ];
        for r in rows {
            let got = offset_truncation_state(
                EpochEndOffset::new(r.leader.0, r.leader.1),
                &r.follower,
                Offset(r.leo),
                Offset(r.hw),
            );
            assert_eq!(
                (got.offset.0, got.truncation_completed),
                r.want,
                "{}",
                r.name
            );
        }
    }

    /// The follower's side of the OffsetForLeaderEpoch loop, against a leader's cache: ask with
    /// the latest epoch, truncate, repeat until complete. Returns the final offset and rounds.
    fn converge(
        leader: &[EpochEntry],
        leader_leo: i64,
        follower: &[EpochEntry],
        leo: i64,
    ) -> (i64, usize) {
        let mut epochs = follower.to_vec();
        let mut leo = Offset(leo);
        for round in 1..10 {
            let asked = epochs.last().map_or(UNDEFINED_EPOCH, |x| x.epoch);
            let answer = end_offset_for(leader, asked, Offset(leader_leo));
            let state = offset_truncation_state(answer, &epochs, leo, Offset::ZERO);
            leo = state.offset;
            epochs.retain(|x| x.start_offset < leo);
            if state.truncation_completed {
                return (leo.0, round);
            }
        }
        panic!("truncation did not converge");
    }

    /// KIP-279: divergence after two quick leader changes in a row, resolved in two rounds.
    /// Leader: epochs 0@0, 2@5, 4@12. Follower: 0@0, 1@3, 3@7 (epochs 1 and 3 it led itself,
    /// never replicated). Its epoch-1 data at offsets 3..5 conflicts with the leader's epoch-0
    /// data there, so it must end at 3.
    #[test]
    fn kip_279_two_round_truncation() {
        let leader = [e(0, 0), e(2, 5), e(4, 12)];
        let follower = [e(0, 0), e(1, 3), e(3, 7)];
        assert_eq!(converge(&leader, 20, &follower, 10), (3, 2));
        // A follower whose log is a prefix of the leader's truncates nothing, in one round.
        assert_eq!(converge(&leader, 20, &[e(0, 0), e(2, 5)], 9), (9, 1));
        // Same epochs, follower ahead in the leader's old epoch: cut to the leader's end of it.
        assert_eq!(converge(&leader, 20, &[e(0, 0), e(2, 5)], 15), (12, 1));
        // An empty follower asks with no epoch and falls back to its high watermark (0).
        assert_eq!(converge(&leader, 20, &[], 0), (0, 1));
        assert_eq!(LeaderEpoch(-1), UNDEFINED_EPOCH);
    }
}
