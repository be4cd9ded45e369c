//! The model behind `producer_ops`: what an idempotent producer's state in a partition may be,
//! given the batches the partition's log holds (and once held), and what a leader must answer to
//! a producer's batches given that state. Written from the rules in
//! `strata_core::log::producer_state`'s docs (Kafka's `ProducerStateManager`), not from its code.
//!
//! ## Which states are allowed
//! A log's *history* is every batch of its current lineage below its log end offset, including
//! batches retention deleted (below the log start): what replaying the log from offset 0 would
//! see. Folding a producer's batches of the history through Kafka's `ProducerStateEntry.addBatch`
//! (a new epoch forgets the batches of the old one; at most [`WINDOW`] batches are kept) gives its
//! exact state. The partition may have forgotten part of that past, legitimately:
//! - expiry (`producer.id.expiration.ms`), at retention time or when a snapshot is loaded at open;
//! - a rebuild (at open, or after a truncation) that found no loadable snapshot at or above the
//!   log start and started from an empty state there: batches below the log start are forgotten
//!   (they are kept otherwise: retention does not remove producers, KIP-360). Snapshots are
//!   written without fsync, so a crash may tear the roll snapshot of a segment, also long before
//!   retention makes that segment the first.
//!
//! So the state of producer `p` must be the fold of a *suffix* of `p`'s batches in the history
//! (the empty suffix: `p` unknown), and the suffix must contain every batch of `p` at or above
//! `p`'s *floor*: the log end at the last event that may have made the partition forget part of
//! `p`'s past (0 while no such event happened: then the state is exact). Forgetting never loses a
//! batch written after it, and a rebuild only adds older batches back (a snapshot written before
//! an expiry, loaded by a truncation, "resurrects" the producer, as in Kafka), so the floor only
//! moves at those events (and down to the log end at a truncation or crash). [`Allowed`] is that
//! set of states; it reduces to the last `1..=5` batches of the producer's last epoch run.

use std::collections::BTreeMap;

use strata_core::batch::BatchHeader;
use strata_core::log::producer_state::{
    NUM_BATCHES_TO_RETAIN, ProducerStateEntry, ProducerStateManager,
};
use strata_core::{ErrorCode, Offset};

/// Batches a partition remembers per producer (Kafka's `NUM_BATCHES_TO_RETAIN`).
pub const WINDOW: usize = 5;
const _: () = assert!(WINDOW == NUM_BATCHES_TO_RETAIN);

/// `seq + delta`, wrapping from `i32::MAX` to 0 as Kafka's `incrementSequence` does.
pub fn seq_add(seq: i32, delta: i32) -> i32 {
    let sum = i64::from(seq) + i64::from(delta);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

/// Whether `next` directly follows `last` (Kafka's `inSequence`).
pub fn follows(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The producer fields of a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PMeta {
    pub pid: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    /// `maxTimestamp` as stored (the broker's time for `LogAppendTime`).
    pub ts: i64,
}

/// One batch of a log's history, as stored (offsets and leader epoch stamped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MBatch {
    pub base: Offset,
    pub last: Offset,
    pub bytes: Vec<u8>,
    pub producer: Option<PMeta>,
}

impl MBatch {
    /// Parses a stored batch (`bytes` is exactly one whole batch).
    pub fn stored(bytes: Vec<u8>) -> MBatch {
        let h = BatchHeader::parse(&bytes).expect("the harness stores whole batches");
        assert_eq!(h.total_size(), bytes.len(), "one whole batch");
        let producer = h.has_producer_id().then(|| PMeta {
            pid: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: seq_add(h.base_sequence, h.last_offset_delta),
            ts: h.max_timestamp,
        });
        MBatch {
            base: h.base_offset,
            last: h.last_offset(),
            bytes,
            producer,
        }
    }

    fn meta(&self) -> Option<(PMeta, Meta)> {
        self.producer.map(|p| {
            (
                p,
                Meta {
                    first_seq: p.first_seq,
                    last_seq: p.last_seq,
                    first: self.base.0,
                    last: self.last.0,
                    ts: p.ts,
                },
            )
        })
    }
}

/// What a partition caches of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first: i64,
    pub last: i64,
    pub ts: i64,
}

/// One producer's state, as the model compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub epoch: i16,
    pub batches: Vec<Meta>,
    pub last_ts: i64,
}

impl Entry {
    pub fn of(e: &ProducerStateEntry) -> Entry {
        Entry {
            epoch: e.producer_epoch().0,
            batches: e
                .batches()
                .map(|b| Meta {
                    first_seq: b.first_seq.0,
                    last_seq: b.last_seq.0,
                    first: b.first_offset.0,
                    last: b.last_offset.0,
                    ts: b.timestamp_ms,
                })
                .collect(),
            last_ts: e.last_timestamp_ms(),
        }
    }

    /// The last sequence written (`-1`, Kafka's `NO_SEQUENCE`, with no batch).
    pub fn last_seq(&self) -> i32 {
        self.batches.last().map_or(-1, |b| b.last_seq)
    }
}

/// Every producer's state in `state`, by id.
pub fn entries(state: &ProducerStateManager) -> BTreeMap<i64, Entry> {
    state
        .producers()
        .map(|(id, e)| (id.0, Entry::of(e)))
        .collect()
}

/// The states allowed for one producer (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The exact fold of the producer's history (`None`: it never wrote in this lineage).
    pub full: Option<Entry>,
    /// The fewest of `full`'s batches the state may hold; 0: the producer may be unknown.
    pub min_len: usize,
}

impl Allowed {
    /// The allowed states of `pid` given `history` (batches in offset order) and its floor;
    /// only batches below `below` count (a snapshot's view of the history).
    pub fn of(history: &[MBatch], pid: i64, floor: Offset, below: Offset) -> Allowed {
        let mine: Vec<(PMeta, Meta)> = history
            .iter()
            .take_while(|b| b.base < below)
            .filter_map(MBatch::meta)
            .filter(|(p, _)| p.pid == pid)
            .collect();
        let n = mine.len();
        let Some((last, _)) = mine.last() else {
            return Allowed {
                full: None,
                min_len: 0,
            };
        };
        // The final run of batches of the last epoch: an epoch change clears the cache.
        let run_start = n - mine
            .iter()
            .rev()
            .take_while(|(p, _)| p.epoch == last.epoch)
            .count();
        let full_len = WINDOW.min(n - run_start);
        let full = Entry {
            epoch: last.epoch,
            batches: mine[n - full_len..].iter().map(|(_, m)| *m).collect(),
            last_ts: last.ts,
        };
        // The fold of `mine[k..]` for the largest `k` allowed: the first batch at the floor.
        let at_floor = mine
            .iter()
            .position(|(_, m)| m.first >= floor.0)
            .unwrap_or(n);
        let min_len = if at_floor == n {
            0
        } else {
            WINDOW.min(n - at_floor.max(run_start))
        };
        Allowed {
            full: Some(full),
            min_len,
        }
    }

    /// Whether the state must be exactly the fold of the whole history.
    pub fn exact(&self) -> bool {
        self.full
            .as_ref()
            .is_none_or(|f| self.min_len == f.batches.len())
    }

    pub fn admits(&self, state: Option<&Entry>) -> bool {
        match (state, &self.full) {
            (None, _) => self.min_len == 0,
            (Some(_), None) => false,
            (Some(e), Some(full)) => {
                let m = e.batches.len();
                let n = full.batches.len();
                e.epoch == full.epoch
                    && e.last_ts == full.last_ts
                    && m >= self.min_len.max(1)
                    && m <= n
                    && e.batches[..] == full.batches[n - m..]
            }
        }
    }
}

/// One batch of a produce request, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Req {
    pub pid: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

/// What a leader must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Duplicate(Meta),
    Refused(ErrorCode),
}

/// The leader's answer to a request (`None`: a batch without a producer id) given the partition's
/// producer state, by the rules of `producer_state`'s docs: per batch in order, a retry of a
/// cached batch of the same epoch answers for the whole request; an older epoch is
/// `INVALID_PRODUCER_EPOCH`; a new epoch of a known producer must start at 0 and a known
/// producer's batch of the same epoch must follow its last sequence (the request's own earlier
/// batches count), else `OUT_OF_ORDER_SEQUENCE_NUMBER`; an unknown producer is accepted at any
/// sequence, as are its later batches in the request (KIP-360).
pub fn predict(state: &BTreeMap<i64, Entry>, req: &[Option<Req>]) -> Outcome {
    // Per producer: (epoch, last sequence) as the request leaves them so far.
    let mut updated: BTreeMap<i64, (Option<i16>, i32)> = BTreeMap::new();
    for b in req.iter().flatten() {
        let current = state.get(&b.pid);
        if let Some(e) = current
            && e.epoch == b.epoch
            && let Some(m) = e
                .batches
                .iter()
                .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq)
        {
            return Outcome::Duplicate(*m);
        }
        let known = current.is_some();
        let (epoch, last) = *updated.entry(b.pid).or_insert_with(|| {
            (
                current.map(|e| e.epoch),
                current.map_or(-1, Entry::last_seq),
            )
        });
        match epoch {
            Some(e) if b.epoch < e => return Outcome::Refused(ErrorCode::INVALID_PRODUCER_EPOCH),
            // A new epoch of a known producer restarts at 0.
            Some(e) if b.epoch != e && b.first_seq != 0 => {
                return Outcome::Refused(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
            }
            Some(e) if b.epoch != e => {}
            Some(_) if known && !follows(last, b.first_seq) => {
                return Outcome::Refused(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
            }
            _ => {}
        }
        updated.insert(b.pid, (Some(b.epoch), b.last_seq));
    }
    Outcome::Written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first: i64, seq: i32) -> Meta {
        Meta {
            first_seq: seq,
            last_seq: seq,
            first,
            last: first,
            ts: 7,
        }
    }

    fn batch(off: i64, epoch: i16, seq: i32) -> MBatch {
        let mut bytes =
            strata_core::batch::build_batch_with_producer(&[(b"v", None)], 7, 1, epoch, seq);
        strata_core::batch::assign_offset(&mut bytes, Offset(off), strata_core::LeaderEpoch(0));
        MBatch::stored(bytes)
    }

    #[test]
    fn allowed_states_are_suffix_folds_down_to_the_floor() {
        let h: Vec<MBatch> = (0..8).map(|i| batch(i, 0, i as i32)).collect();
        let exact = Allowed::of(&h, 1, Offset(0), Offset(i64::MAX));
        assert!(exact.exact());
        let full = exact.full.clone().unwrap();
        assert_eq!(
            full.batches,
            (3..8).map(|i| meta(i, i as i32)).collect::<Vec<_>>()
        );
        let mut short = full.clone();
        short.batches.remove(0);
        assert!(!exact.admits(Some(&short)) && exact.admits(Some(&full)) && !exact.admits(None));
        // A floor at offset 6: the last two batches must be there, older ones may be forgotten.
        let relaxed = Allowed::of(&h, 1, Offset(6), Offset(i64::MAX));
        assert_eq!(relaxed.min_len, 2);
        assert!(relaxed.admits(Some(&short)));
        short.batches.drain(..3);
        assert!(!relaxed.admits(Some(&short)));
        // A floor past every batch: unknown is allowed.
        assert!(Allowed::of(&h, 1, Offset(8), Offset(i64::MAX)).admits(None));
        // A new epoch clears the older epoch's batches.
        let mut h2 = h.clone();
        h2.push(batch(8, 1, 0));
        let a = Allowed::of(&h2, 1, Offset(0), Offset(i64::MAX));
        assert_eq!(a.full.unwrap().batches, vec![meta(8, 0)]);
    }

    #[test]
    fn predictions_follow_the_rules() {
        let mut state = BTreeMap::new();
        state.insert(
            1,
            Entry {
                epoch: 2,
                batches: vec![meta(0, 0), meta(1, 1)],
                last_ts: 7,
            },
        );
        let r = |epoch, seq| {
            Some(Req {
                pid: 1,
                epoch,
                first_seq: seq,
                last_seq: seq,
            })
        };
        assert_eq!(predict(&state, &[r(2, 0)]), Outcome::Duplicate(meta(0, 0)));
        assert_eq!(predict(&state, &[r(2, 2)]), Outcome::Written);
        assert_eq!(predict(&state, &[r(2, 2), r(2, 3)]), Outcome::Written);
        assert_eq!(
            predict(&state, &[r(2, 3)]),
            Outcome::Refused(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(
            predict(&state, &[r(1, 2)]),
            Outcome::Refused(ErrorCode::INVALID_PRODUCER_EPOCH)
        );
        assert_eq!(predict(&state, &[r(3, 0)]), Outcome::Written);
        assert_eq!(
            predict(&state, &[r(3, 1)]),
            Outcome::Refused(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        // A later duplicate answers for the whole request.
        assert_eq!(
            predict(&state, &[r(2, 2), r(2, 1)]),
            Outcome::Duplicate(meta(1, 1))
        );
        // Unknown producers: any sequence, also for later batches of the request.
        let u = |seq| {
            Some(Req {
                pid: 2,
                epoch: 0,
                first_seq: seq,
                last_seq: seq,
            })
        };
        assert_eq!(predict(&state, &[u(40), u(90)]), Outcome::Written);
        assert!(follows(i32::MAX, 0) && seq_add(i32::MAX - 1, 2) == 0);
    }
}
