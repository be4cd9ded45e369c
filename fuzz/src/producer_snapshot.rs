//! `producer_snapshot`: the producer-state snapshot format (`strata_core::log::producer_state`,
//! module docs) — the bytes recovery reads back from `<offset>.snapshot` files that a crash may
//! have torn and a disk may have damaged.
//!
//! The first byte picks a mode:
//! - `0`: the rest as snapshot bytes;
//! - `1`: the same with the version and the CRC fixed up, so mutations reach the field checks;
//! - otherwise: the rest drives a [`ProducerStateManager`] through arbitrary replicated batches
//!   (any producer id, epoch, sequence, timestamp, control and transactional bits), leader
//!   appends (checked, then committed), expiry, log-start moves and truncations (a rebuild replays
//!   the batches from scratch), snapshotting it at arbitrary points; then damages its snapshot.
//!
//! Properties:
//! - `load_snapshot` never panics; whatever it accepts is sound (ids increasing and not negative,
//!   at most 5 batches per producer, in offset order, below the map end, sequence ranges matching
//!   offset ranges, the last timestamp the last batch's) and re-encodes to exactly the bytes it
//!   came from (the format is canonical); the loaded state takes leader checks and expiry without
//!   panicking;
//! - a built state round-trips exactly through `snapshot` / `load_snapshot`, and a load at a later
//!   time drops exactly the producers idle for `producer.id.expiration.ms`;
//! - while nothing expired and the log start never moved: the state equals a replay of every batch
//!   from scratch, and loading an earlier snapshot and replaying the batches after it gives the
//!   same state (what a rebuild after truncation or recovery relies on); after a truncation that
//!   keeps the state (`Truncation::Exact`) too;
//! - every single flipped byte of a valid snapshot, every shorter prefix and the snapshot with a
//!   byte appended are refused (the version is checked, CRC-32C catches every error burst of up
//!   to 32 bits, and the parser must reach the end exactly).

use arbitrary::{Arbitrary, Unstructured};
use strata_core::batch::BatchHeader;
use strata_core::log::producer_state::{
    AppendCheck, NUM_BATCHES_TO_RETAIN, ProducerStateEntry, ProducerStateManager, Truncation,
};
use strata_core::types::ProducerId;
use strata_core::{LeaderEpoch, Offset};

use crate::producer_model::seq_add;

const MAX_STEPS: usize = 48;

pub fn producer_snapshot(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => check_bytes(rest, rest),
        1 => check_bytes(&fix_up(rest), rest),
        _ => built(rest),
    }
}

/// `bytes` with version 1 and a correct CRC (if long enough to have them).
fn fix_up(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if b.len() >= 6 {
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        let crc = crc32c::crc32c(&b[6..]);
        b[2..6].copy_from_slice(&crc.to_be_bytes());
    }
    b
}

type Producers = Vec<(ProducerId, ProducerStateEntry)>;

fn producers(state: &ProducerStateManager) -> Producers {
    state.producers().map(|(p, e)| (*p, e.clone())).collect()
}

/// Loads arbitrary bytes; whatever loads must be sound and canonical. `extra` drives the leader
/// checks tried on the loaded state.
fn check_bytes(bytes: &[u8], extra: &[u8]) {
    let expiration_ms = 1_000;
    let Ok((state, covers)) = ProducerStateManager::load_snapshot(bytes, expiration_ms, i64::MIN)
    else {
        return;
    };
    assert_eq!(covers, state.map_end_offset());
    assert_sound(&state);
    assert_eq!(
        state.snapshot(),
        bytes,
        "an accepted snapshot re-encodes to the same bytes"
    );
    // The loaded state is usable: leader checks of arbitrary batches and expiry never panic.
    let mut u = Unstructured::new(extra);
    for _ in 0..8 {
        let Ok(h) = header(&mut u, state.map_end_offset()) else {
            break;
        };
        let _ = state.check_leader_append(&h);
    }
    let mut state = state;
    for now in [i64::MIN, -1, 0, i64::MAX] {
        state.remove_expired(now);
    }
}

/// The constraints of the format's docs, through the public API.
fn assert_sound(state: &ProducerStateManager) {
    let end = state.map_end_offset();
    assert!(end.0 >= 0);
    let mut previous: Option<ProducerId> = None;
    for (id, e) in state.producers() {
        assert!(id.0 >= 0 && previous.is_none_or(|p| p < *id));
        previous = Some(*id);
        assert!(e.batches().len() <= NUM_BATCHES_TO_RETAIN);
        let mut last: Option<Offset> = None;
        for b in e.batches() {
            assert!(b.first_offset.0 >= 0 && b.first_offset <= b.last_offset);
            assert!(
                b.last_offset < end,
                "batch {b:?} at or past the map end {end}"
            );
            assert!(
                last.is_none_or(|l| l < b.first_offset),
                "batches in offset order"
            );
            last = Some(b.last_offset);
            let delta = i32::try_from(b.last_offset.0 - b.first_offset.0).expect("in range");
            let expected = if b.first_seq.0 == -1 {
                -1
            } else {
                seq_add(b.first_seq.0, delta)
            };
            assert_eq!(b.last_seq.0, expected, "sequence range of {b:?}");
        }
        if let Some(b) = e.batches().last() {
            assert_eq!(e.last_timestamp_ms(), b.timestamp_ms);
        }
    }
}

/// A batch header as a log would hold it at `base` (only the fields the state reads matter).
fn header(u: &mut Unstructured<'_>, base: Offset) -> arbitrary::Result<BatchHeader> {
    let pid = match u8::arbitrary(u)? {
        0..=199 => i64::from(u8::arbitrary(u)? % 6),
        200..=249 => i64::arbitrary(u)? & i64::MAX,
        _ => -1,
    };
    let epoch = match u8::arbitrary(u)? % 4 {
        0 => i16::arbitrary(u)?,
        _ => i16::from(u8::arbitrary(u)? % 4),
    };
    let seq = match u8::arbitrary(u)? % 4 {
        0 => i32::arbitrary(u)?,
        1 => i32::MAX - i32::from(u8::arbitrary(u)? % 4),
        _ => i32::from(u8::arbitrary(u)?),
    };
    let delta = i32::from(u8::arbitrary(u)? % 5);
    let ts = match u8::arbitrary(u)? % 4 {
        0 => i64::arbitrary(u)?,
        _ => 1_000 * i64::from(u16::arbitrary(u)?),
    };
    let attributes = match u8::arbitrary(u)? % 8 {
        0 => 0x20, // control
        1 => 0x10, // transactional
        _ => 0,
    };
    Ok(BatchHeader {
        base_offset: base,
        batch_length: 0,
        partition_leader_epoch: LeaderEpoch(0),
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: delta,
        base_timestamp: ts,
        max_timestamp: ts,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        record_count: delta + 1,
    })
}

/// Builds a state from the input, with the batches it holds (the "log") and the snapshots taken.
struct Built {
    state: ProducerStateManager,
    log: Vec<BatchHeader>,
    /// Snapshots taken while the state was pure, by offset.
    snapshots: Vec<(Offset, Vec<u8>)>,
    /// Nothing expired and the log start never moved: the state is a pure function of `log`.
    pure: bool,
    expiration_ms: i64,
}

impl Built {
    /// Every batch of the log below `end` applied to an empty state.
    fn replay(&self, from: ProducerStateManager, end: Offset) -> ProducerStateManager {
        let mut s = from;
        for h in self.log.iter().filter(|h| h.base_offset < end) {
            s.apply_replicated(h);
        }
        s
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        let end = self.state.map_end_offset();
        let step = u8::arbitrary(u)? % 8;
        if std::env::var_os("STRATA_FUZZ_TRACE").is_some() {
            eprintln!("step {step}");
        }
        match step {
            0..=2 => {
                let h = header(u, end)?;
                self.state.apply_replicated(&h);
                self.log.push(h);
            }
            3 | 4 => {
                let h = header(u, end)?;
                // The broker's time if the log stamps LogAppendTime.
                let lat = if bool::arbitrary(u)? {
                    1_000 * i64::from(u16::arbitrary(u)?)
                } else {
                    -1
                };
                if let Ok(AppendCheck::New(staged)) = self.state.check_leader_append(&h) {
                    let last = Offset(end.0 + staged.offset_count() - 1);
                    self.state.commit(staged, end, last, lat);
                    // As the log stores it: a LogAppendTime batch carries the broker's time.
                    let mut stored = h;
                    if lat >= 0 {
                        stored.max_timestamp = lat;
                    }
                    self.log.push(stored);
                }
            }
            5 => {
                let now = 1_000 * i64::from(u16::arbitrary(u)?);
                if self.state.remove_expired(now) > 0 {
                    self.pure = false;
                }
            }
            6 => {
                // Truncate to a batch boundary, as the log does.
                if self.log.is_empty() {
                    return Ok(());
                }
                let i = usize::from(u8::arbitrary(u)?) % self.log.len();
                let cut = self.log[i].base_offset;
                let kept = self.state.truncate_to(cut);
                self.log.truncate(i);
                self.snapshots.retain(|(o, _)| *o <= cut);
                if kept == Truncation::RebuildNeeded {
                    let mut fresh = ProducerStateManager::new(self.expiration_ms);
                    fresh.truncate_fully_and_start_at(Offset::ZERO);
                    self.state = self.replay(fresh, cut);
                    self.pure = true;
                    // A moved log start may have left a hole below the cut.
                    self.state.on_log_start_moved(cut);
                } else if self.pure {
                    let scratch = self.replay(ProducerStateManager::new(self.expiration_ms), cut);
                    assert_eq!(
                        producers(&self.state),
                        producers(&scratch),
                        "a truncation kept a state that differs from a replay of the log"
                    );
                }
            }
            _ => {
                if bool::arbitrary(u)? {
                    let snapshot = self.state.snapshot();
                    if self.pure {
                        self.snapshots.push((end, snapshot));
                    }
                } else {
                    let by = i64::from(u8::arbitrary(u)? % 4);
                    self.state.on_log_start_moved(Offset(end.0 + by));
                    if by > 0 {
                        self.pure = false;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs the steps the input describes (after its first byte, the expiration).
fn build(data: &[u8]) -> (Built, Unstructured<'_>) {
    let mut u = Unstructured::new(data);
    let expiration_ms = 1 + 1_000 * i64::from(u8::arbitrary(&mut u).unwrap_or(0));
    let mut b = Built {
        state: ProducerStateManager::new(expiration_ms),
        log: Vec::new(),
        snapshots: Vec::new(),
        pure: true,
        expiration_ms,
    };
    let trace = std::env::var_os("STRATA_FUZZ_TRACE").is_some();
    for _ in 0..MAX_STEPS {
        if u.is_empty() || b.step(&mut u).is_err() {
            break;
        }
        // A replay from scratch ends where the last batch ends: a moved log start (also one a
        // truncation kept) makes the state no longer a function of the batches alone.
        let replayed_end = b.log.last().map_or(Offset::ZERO, BatchHeader::next_offset);
        if b.state.map_end_offset() != replayed_end {
            b.pure = false;
        }
        if trace {
            let s = &b.state;
            eprintln!(
                "map end {}, {} batches, pure {}, producers {:?}",
                s.map_end_offset(),
                b.log.len(),
                b.pure,
                producers(s)
            );
        }
    }
    (b, u)
}

fn built(data: &[u8]) {
    let (b, mut u) = build(data);
    let expiration_ms = b.expiration_ms;
    let state = &b.state;
    let end = state.map_end_offset();
    let bytes = state.snapshot();

    // Round trip, exactly.
    let (loaded, covers) = ProducerStateManager::load_snapshot(&bytes, expiration_ms, i64::MIN)
        .unwrap_or_else(|e| panic!("a state's own snapshot does not load: {e}"));
    assert_eq!(covers, end);
    assert_eq!(loaded.map_end_offset(), end);
    assert_eq!(producers(&loaded), producers(state), "round trip");
    assert_eq!(loaded.snapshot(), bytes, "re-encoding is stable");
    assert_sound(&loaded);

    // Expiry at load drops exactly the idle producers.
    let now = 1_000 * i64::from(u16::arbitrary(&mut u).unwrap_or(0));
    let (at_now, _) = ProducerStateManager::load_snapshot(&bytes, expiration_ms, now)
        .unwrap_or_else(|e| panic!("a state's own snapshot does not load: {e}"));
    let live: Producers = producers(state)
        .into_iter()
        .filter(|(_, e)| now.saturating_sub(e.last_timestamp_ms()) < expiration_ms)
        .collect();
    assert_eq!(producers(&at_now), live, "expiry at load");

    // A pure state is what replaying the log gives, from scratch or from any earlier snapshot.
    if b.pure {
        let scratch = b.replay(ProducerStateManager::new(expiration_ms), end);
        assert_eq!(producers(&scratch), producers(state), "replay from scratch");
        assert_eq!(scratch.map_end_offset(), end);
        for (offset, snap) in &b.snapshots {
            let (from, covers) = ProducerStateManager::load_snapshot(snap, expiration_ms, i64::MIN)
                .unwrap_or_else(|e| panic!("snapshot at {offset} does not load: {e}"));
            assert_eq!(covers, *offset);
            let rebuilt = b.replay(from, end);
            assert_eq!(
                producers(&rebuilt),
                producers(state),
                "snapshot at {offset} + replay"
            );
            assert_eq!(rebuilt.map_end_offset(), end);
        }
    }

    // Damage: every single flipped byte, every prefix, one byte more.
    let pos = usize::from(u16::arbitrary(&mut u).unwrap_or(0)) % bytes.len();
    let mask = u8::arbitrary(&mut u).unwrap_or(0).max(1);
    let mut flipped = bytes.clone();
    flipped[pos] ^= mask;
    assert!(
        ProducerStateManager::load_snapshot(&flipped, expiration_ms, i64::MIN).is_err(),
        "byte {pos} ^ {mask:#04x} of a snapshot was accepted"
    );
    let cut = usize::from(u16::arbitrary(&mut u).unwrap_or(0)) % bytes.len();
    assert!(
        ProducerStateManager::load_snapshot(&bytes[..cut], expiration_ms, i64::MIN).is_err(),
        "a snapshot cut to {cut} of {} bytes was accepted",
        bytes.len()
    );
    let mut longer = bytes.clone();
    longer.push(u8::arbitrary(&mut u).unwrap_or(0));
    assert!(
        ProducerStateManager::load_snapshot(&longer, expiration_ms, i64::MIN).is_err(),
        "a snapshot with a byte appended was accepted"
    );
    // The flipped byte with a CRC to match: refused, or sound and canonical.
    check_bytes(&fix_up(&flipped), u.take_rest());
}

/// Seeds: a structured state of every step kind, and a snapshot of it as raw bytes.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    // Steps as `Built::step` reads them: a batch of 2 records of producer `pid` at `seq`, epoch 0,
    // timestamp 1,000,000 (see `header`).
    let batch = |pid: u8, seq: u8| vec![0, pid, 1, 0, 2, seq, 1, 1, 0x03, 0xe8, 2];
    let mut steps = vec![10u8]; // producer.id.expiration.ms 10,001
    for seq in [0u8, 2, 4] {
        steps.push(0); // replicated
        steps.extend(batch(1, seq));
    }
    steps.extend([7, 1]); // snapshot
    for (pid, seq) in [(2u8, 0u8), (2, 6), (2, 2), (1, 6), (1, 2)] {
        steps.push(3); // leader append: new, gap, next, next, duplicate
        steps.extend(batch(pid, seq));
        steps.push(0); // CreateTime
    }
    steps.extend([7, 1]); // snapshot
    steps.extend([6, 5]); // truncate to the 6th batch
    steps.extend([7, 0, 2]); // the log start moves 2 past the map end
    steps.extend([5, 0x10, 0x00]); // expire at 4,096 s
    let (b, _) = build(&steps);
    let snapshot = b.state.snapshot();
    let with_mode = |mode: u8, bytes: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(bytes);
        v
    };
    vec![
        ("seed-built".to_string(), with_mode(2, &steps)),
        ("seed-raw".to_string(), with_mode(0, &snapshot)),
        ("seed-raw-fixcrc".to_string(), with_mode(1, &snapshot)),
    ]
}
