//! Fault settings the harness changes at run time ([`DiskFaults`]), the counters the disk keeps
//! ([`DiskStats`]), and the latency model.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

/// Which faults the disk injects, and how often. All probabilities are per call, in `[0, 1]`.
/// [`DiskFaults::default`] injects nothing: a perfect disk (that still loses unsynced data at a
/// power crash, which is not a fault but the page cache's contract).
#[derive(Debug, Clone, PartialEq)]
pub struct DiskFaults {
    /// `write_at` fails with EIO (and changes nothing).
    pub write_eio_probability: f64,
    /// `sync_data` / `sync_dir` fail with EIO, Linux style: the unsynced changes they covered are
    /// resolved as at a power crash (each kept, dropped or torn) and forgotten, so a later sync
    /// succeeds without writing what was dropped. See the module docs.
    pub fsync_eio_probability: f64,
    /// A `read_at` that returns data flips one random bit of the caller's buffer (never the stored
    /// bytes): a transient read error, as from a bad cable or controller.
    pub read_bitflip_probability: f64,
    /// Total bytes of all (visible) files; a `write_at` or `set_len` that would grow past it fails
    /// with ENOSPC (raw OS error 28, `ErrorKind::StorageFull`). `None`: unlimited.
    pub capacity: Option<u64>,
    /// What [`crate::disk::SimDisk::next_latency`] returns outside slow spells.
    pub latency: Duration,
    /// Chance, per `next_latency` query, that a slow spell starts.
    pub slow_spell_probability: f64,
    /// How many `next_latency` queries a slow spell lasts.
    pub slow_spell_calls: u32,
    /// What `next_latency` returns during a slow spell.
    pub slow_latency: Duration,
}

impl Default for DiskFaults {
    fn default() -> Self {
        DiskFaults {
            write_eio_probability: 0.0,
            fsync_eio_probability: 0.0,
            read_bitflip_probability: 0.0,
            capacity: None,
            latency: Duration::ZERO,
            slow_spell_probability: 0.0,
            slow_spell_calls: 0,
            slow_latency: Duration::ZERO,
        }
    }
}

impl DiskFaults {
    /// Asserts every probability is a probability (a typo here silently disables a fault).
    pub(super) fn assert_valid(&self) {
        for (name, p) in [
            ("write_eio_probability", self.write_eio_probability),
            ("fsync_eio_probability", self.fsync_eio_probability),
            ("read_bitflip_probability", self.read_bitflip_probability),
            ("slow_spell_probability", self.slow_spell_probability),
        ] {
            assert!((0.0..=1.0).contains(&p), "{name} = {p} is not in [0, 1]");
        }
    }
}

/// What the disk did, for tests, checkers and the end-of-run report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Successful `write_at` calls, and the bytes they wrote.
    pub writes: u64,
    pub bytes_written: u64,
    /// `read_at` calls that succeeded.
    pub reads: u64,
    /// Successful `sync_data` / `sync_dir` calls.
    pub data_syncs: u64,
    pub dir_syncs: u64,
    /// Faults injected, by kind.
    pub write_eio: u64,
    pub fsync_eio: u64,
    pub enospc: u64,
    pub read_bitflips: u64,
    /// Power crashes ([`crate::disk::SimDisk::crash`]) and process kills (`crash_keep_all`).
    pub power_crashes: u64,
    pub kills: u64,
    /// Calls refused because they came through a handle from before a crash or kill.
    pub stale_calls: u64,
}

/// Which injected failure a call hits, if any: the next-N counters first, then the dice.
#[derive(Debug, Default)]
pub(super) struct FaultState {
    pub faults: DiskFaults,
    /// The next this-many `write_at` calls fail with EIO.
    pub fail_next_writes: u64,
    /// The next this-many `sync_data` / `sync_dir` calls fail with EIO.
    pub fail_next_syncs: u64,
    /// `next_latency` queries left in the current slow spell.
    pub slow_calls_left: u32,
}

impl FaultState {
    pub fn write_eio(&mut self, rng: &mut StdRng) -> bool {
        if self.fail_next_writes > 0 {
            self.fail_next_writes -= 1;
            return true;
        }
        roll(rng, self.faults.write_eio_probability)
    }

    pub fn fsync_eio(&mut self, rng: &mut StdRng) -> bool {
        if self.fail_next_syncs > 0 {
            self.fail_next_syncs -= 1;
            return true;
        }
        roll(rng, self.faults.fsync_eio_probability)
    }

    pub fn read_bitflip(&mut self, rng: &mut StdRng) -> bool {
        roll(rng, self.faults.read_bitflip_probability)
    }

    pub fn next_latency(&mut self, rng: &mut StdRng) -> Duration {
        if self.slow_calls_left == 0
            && self.faults.slow_spell_calls > 0
            && roll(rng, self.faults.slow_spell_probability)
        {
            self.slow_calls_left = self.faults.slow_spell_calls;
        }
        if self.slow_calls_left > 0 {
            self.slow_calls_left -= 1;
            self.faults.slow_latency
        } else {
            self.faults.latency
        }
    }
}

/// True with probability `p`; draws nothing when `p` is 0, so a disk without faults consumes no
/// randomness (adding a fault kind later does not reshuffle old seeds' runs).
fn roll(rng: &mut StdRng, p: f64) -> bool {
    p > 0.0 && rng.random_bool(p)
}
