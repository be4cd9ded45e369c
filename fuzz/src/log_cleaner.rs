//! `log_cleaner`: a compacted partition log (`cleanup.policy=compact`, issue #16) driven by
//! keyed appends, rolls, flushes, checkpoints, time, cleanings (whole, cut short by a crash at
//! any storage operation, or with an append / roll / truncation between the task's steps and
//! `finish_clean`), crashes and truncations, checked against a model after every step.
//!
//! The input is decoded with `arbitrary` into a config (small segments, `delete.retention.ms`,
//! `min.compaction.lag.ms`, `max.compaction.lag.ms`, `min.cleanable.dirty.ratio`) and up to
//! [`MAX_OPS`] [`Op`]s. Records have keys from a set of eight and unique values; batches use
//! any of the four codecs or none, and may come from one of three idempotent producers. The
//! disk is a [`PowerLossDisk`]: a crash loses unsynced bytes and unsynced directory changes
//! (creations, removals, renames), and it can be armed to fail at the n-th operation.
//!
//! Properties, after every step (on the reopened log after a crash):
//! - a read from the log start serves whole CRC-valid batches, offsets strictly increasing;
//! - every record served is the one written at its offset (never a value not written);
//! - for every key, the last record the read shows is the newest write of that key the model
//!   holds (a crash may lose only writes at or above the flushed offset: the recovered log
//!   end is at least the flushed offset, and the model forgets what lies at or above it), or
//!   the key is absent only if that write is a tombstone a cleaning that began after it may
//!   have given a horizon that a later cleaning reached — never an older value (resurrection);
//! - no `.cleaned` file or `.swap` marker is left in the directory outside a cleaning.
//!
//! At every cleaning: nothing at or above the high watermark passed to `begin_clean`, nor in
//! the active segment, changes (byte for byte); `finish_clean` after a truncation between
//! `begin_clean` and it abandons; the log stays usable after any abandoned cleaning. After any
//! crash (also one cut short in recovery itself) `PartitionLog::open` succeeds: the swap is
//! finished or rolled back.

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use strata_core::log::{CleanReport, CleanTask, CleanupPolicy, LogConfig, PartitionLog};
use strata_core::types::ProducerId;
use strata_core::{LeaderEpoch, Offset};

use crate::cleaner_model::{Model, keyed_batch};
use crate::image::{self, Served};
use crate::power_loss::PowerLossDisk;

pub const MAX_OPS: usize = 64;
const EPOCH: LeaderEpoch = LeaderEpoch(3);
/// An offset-map budget no input fills.
const BIG_BUDGET: usize = 1 << 30;
/// What one key of the offset map costs (`ENTRY_OVERHEAD` plus a two-byte key).
const KEY_COST: usize = 66;

#[derive(Debug)]
pub struct Input {
    pub config: ConfigIn,
    pub ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
pub struct ConfigIn {
    pub segment_bytes: u16,
    pub index_interval: u8,
    pub delete_retention_ms: u16,
    pub min_lag_ms: u16,
    /// `None`: never (Kafka's default).
    pub max_lag_ms: Option<u16>,
    /// Per 255.
    pub dirty_ratio: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct AppendIn {
    /// `1 + records % 4` records.
    pub records: u8,
    /// Record i's key is `(keys >> 3i) % 8`.
    pub keys: u16,
    /// Record i is a tombstone if bit i is set.
    pub tombstones: u8,
    /// `codec % 5`: none, gzip, snappy, lz4, zstd.
    pub codec: u8,
    /// `producer % 4`: idempotent producer 0, 1 or 2, or none.
    pub producer: u8,
}

/// What happens between a cleaning's steps and its `finish_clean`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Between {
    Append(AppendIn),
    Roll,
    Settle,
    TruncateTo { back: u8 },
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    Append(AppendIn),
    Roll,
    /// Begin, execute and complete a group commit.
    Flush,
    Checkpoint,
    /// Flush, then checkpoint (so that everything sealed may be cleaned).
    Settle,
    Tick {
        ms: u16,
    },
    /// A whole cleaning with the high watermark `hw`/255 of the way from the log start to the
    /// log end, and an offset map of `budget % 8` keys (0: unbounded).
    Clean {
        hw: u8,
        budget: u8,
    },
    /// A cleaning on a disk that fails at its `1 + at`-th operation, then a crash.
    CleanCrash {
        hw: u8,
        at: u8,
        seed: u64,
    },
    /// A cleaning with `between` after `steps` of its steps (the rest after it).
    CleanBetween {
        hw: u8,
        steps: u8,
        between: Between,
    },
    /// A crash (see [`PowerLossDisk::crash_image`]); with `recovery_at`, the recovery crashes
    /// at that operation and a second crash follows.
    Crash {
        seed: u64,
        recovery_at: Option<u8>,
    },
    /// Close and open again on the same disk.
    Reopen,
    /// `truncate_to(log_end - back)`.
    TruncateTo {
        back: u8,
    },
}

impl ConfigIn {
    fn to_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: 150 + u64::from(self.segment_bytes % 1_500),
            index_interval_bytes: 1 + u32::from(self.index_interval),
            retention_ms: -1,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::COMPACT,
            delete_retention_ms: i64::from(self.delete_retention_ms),
            min_compaction_lag_ms: i64::from(self.min_lag_ms % 4_000),
            max_compaction_lag_ms: self.max_lag_ms.map_or(i64::MAX, i64::from),
            min_cleanable_dirty_ratio: f64::from(self.dirty_ratio) / 255.0,
            ..LogConfig::default()
        }
    }
}

pub fn log_cleaner(data: &[u8]) {
    if let Some(input) = Input::decode(data) {
        run(&input);
    }
}

impl Input {
    /// A config, then ops back to back until the bytes run out.
    pub fn decode(data: &[u8]) -> Option<Input> {
        let mut u = Unstructured::new(data);
        let config = ConfigIn::arbitrary(&mut u).ok()?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            match Op::arbitrary(&mut u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Some(Input { config, ops })
    }
}

/// The system under test and its model.
struct Harness {
    disk: PowerLossDisk,
    log: PartitionLog,
    config: LogConfig,
    model: Model,
    now: i64,
    /// The highest high watermark a cleaning was given (lowered to the log end by a crash):
    /// truncations stay at or above it, as a follower's do in Kafka (the cleaner may have
    /// dropped records below it that only records below it supersede).
    hw_floor: Offset,
    trace: bool,
    summary: Summary,
}

/// What a run did, for the seeds' tests: a format change that stops inputs from reaching the
/// cleaner fails `cargo test`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Cleanings swapped in.
    pub swapped: usize,
    /// Cleanings `finish_clean` abandoned.
    pub abandoned: usize,
    /// Cleanings the disk crashed in.
    pub crashed: usize,
    /// Checks that found a key's newest tombstone gone (expired).
    pub expired: usize,
}

pub fn run(input: &Input) -> Summary {
    let config = input.config.to_config();
    let disk = PowerLossDisk::default();
    let (log, _) = image::open(Arc::new(disk.clone()), config.clone());
    let mut h = Harness {
        disk,
        log,
        config,
        model: Model::default(),
        now: 1_000_000,
        hw_floor: Offset(0),
        trace: std::env::var_os("STRATA_FUZZ_TRACE").is_some(),
        summary: Summary::default(),
    };
    for (i, op) in input.ops.iter().take(MAX_OPS).enumerate() {
        if h.trace {
            eprintln!("step {i}: {op:?}");
        }
        h.step(op);
        h.check();
    }
    h.summary
}

impl Harness {
    fn step(&mut self, op: &Op) {
        match *op {
            Op::Append(a) => self.append(a),
            Op::Roll => self.log.roll().expect("roll on a sound disk"),
            Op::Flush => self.flush(),
            Op::Checkpoint => self.checkpoint(),
            Op::Settle => {
                self.flush();
                self.checkpoint();
            }
            Op::Tick { ms } => self.now += i64::from(ms),
            Op::Clean { hw, budget } => {
                let budget = match budget % 8 {
                    0 => BIG_BUDGET,
                    n => KEY_COST * usize::from(n),
                };
                self.clean(hw, budget);
            }
            Op::CleanCrash { hw, at, seed } => self.clean_crash(hw, at, seed),
            Op::CleanBetween { hw, steps, between } => self.clean_between(hw, steps, between),
            Op::Crash { seed, recovery_at } => self.crash(seed, recovery_at),
            Op::Reopen => {
                let (log, _) = image::open(Arc::new(self.disk.clone()), self.config.clone());
                self.log = log;
            }
            Op::TruncateTo { back } => self.truncate(back),
        }
    }

    fn append(&mut self, a: AppendIn) {
        let n = 1 + usize::from(a.records % 4);
        let records: Vec<(u8, Option<u32>)> = (0..n)
            .map(|i| {
                let key = ((a.keys >> (3 * i)) % 8) as u8;
                let value = u32::try_from(self.model.serials + i as u64).expect("few records");
                (key, (a.tombstones >> i & 1 == 0).then_some(value))
            })
            .collect();
        let producer = (a.producer % 4 < 3).then(|| {
            let pid = 1_000 + i64::from(a.producer % 4);
            let entry = self.log.producer_state().entry(ProducerId(pid));
            (pid, 0, entry.map_or(0, |e| e.last_seq().0 + 1))
        });
        let batch = keyed_batch(&records, self.now, producer, i16::from(a.codec % 5));
        let info = self
            .log
            .append(&batch, EPOCH, self.now)
            .unwrap_or_else(|e| panic!("append of a valid keyed batch failed: {e}"));
        assert!(
            info.first_offset >= self.model_end(),
            "an append at {} below the last record written",
            info.first_offset
        );
        self.model.append(info.first_offset, &records);
    }

    /// The offset after the model's last record (0 if it holds none).
    fn model_end(&self) -> Offset {
        self.model
            .written
            .keys()
            .next_back()
            .map_or(Offset(0), |o| o.next())
    }

    fn flush(&mut self) {
        if let Some(plan) = self.log.begin_flush() {
            plan.execute().expect("sync on a sound disk");
            self.log.complete_flush(&plan);
        }
    }

    fn checkpoint(&mut self) {
        self.log
            .checkpoint_recovery_point()
            .expect("checkpoint on a sound disk");
    }

    /// Truncation cuts whole batches: the log end becomes at most `to` (below it when `to` is
    /// inside a batch or a gap), and everything below the new log end stays.
    fn truncate(&mut self, back: u8) {
        let end = self.log.log_end_offset();
        let to = Offset(end.0 - i64::from(back)).max(self.hw_floor);
        self.log.truncate_to(to).expect("truncate on a sound disk");
        let new_end = self.log.log_end_offset();
        assert!(
            new_end <= end.min(to.max(self.log.log_start_offset())),
            "log end {new_end} after truncating to {to} (was {end})"
        );
        self.model.cut(new_end);
    }

    /// The high watermark `hw`/255 of the way from the log start to the log end.
    fn high_watermark(&self, hw: u8) -> Offset {
        let (start, end) = (self.log.log_start_offset().0, self.log.log_end_offset().0);
        Offset(start + (end - start) * i64::from(hw) / 255)
    }

    /// Begins a cleaning (recording it in the model), `None` if none is due.
    fn begin(&mut self, hw: Offset, budget: usize) -> Option<CleanTask> {
        self.hw_floor = self.hw_floor.max(hw);
        let task = self
            .log
            .begin_clean(self.now, hw, budget)
            .expect("begin_clean on a sound disk")?;
        self.model.cleanings.push((self.model.serials, self.now));
        Some(task)
    }

    fn clean(&mut self, hw: u8, budget: usize) {
        let hw = self.high_watermark(hw);
        let kept = self.protected(hw);
        let Some(mut task) = self.begin(hw, budget) else {
            return;
        };
        steps(&mut task, usize::MAX);
        let report = self
            .log
            .finish_clean(task)
            .expect("finish_clean on a sound disk");
        self.trace_report(&report);
        assert!(
            !report.abandoned,
            "a cleaning with nothing in between was abandoned"
        );
        self.check_protected(&kept);
    }

    fn clean_between(&mut self, hw: u8, n: u8, between: Between) {
        let hw = self.high_watermark(hw);
        let kept = self.protected(hw);
        let Some(mut task) = self.begin(hw, BIG_BUDGET) else {
            return;
        };
        steps(&mut task, usize::from(n));
        let end = self.log.log_end_offset();
        match between {
            Between::Append(a) => self.append(a),
            Between::Roll => self.log.roll().expect("roll on a sound disk"),
            Between::Settle => {
                self.flush();
                self.checkpoint();
            }
            Between::TruncateTo { back } => self.truncate(back),
        }
        steps(&mut task, usize::MAX);
        let report = self
            .log
            .finish_clean(task)
            .expect("finish_clean on a sound disk");
        self.trace_report(&report);
        if self.log.log_end_offset() < end {
            assert!(
                report.abandoned,
                "a cleaning overtaken by a truncation swapped"
            );
        } else {
            self.check_protected(&kept);
        }
    }

    fn clean_crash(&mut self, hw: u8, at: u8, seed: u64) {
        let hw = self.high_watermark(hw);
        self.disk.arm(1 + u64::from(at));
        self.hw_floor = self.hw_floor.max(hw);
        if let Ok(Some(mut task)) = self.log.begin_clean(self.now, hw, BIG_BUDGET) {
            self.model.cleanings.push((self.model.serials, self.now));
            let stepped = (0..100_000).try_for_each(|_| match task.step() {
                Ok(s) if s.done => Err(true),
                Ok(_) => Ok(()),
                Err(_) => Err(false),
            });
            if stepped == Err(true) {
                if let Ok(report) = self.log.finish_clean(task) {
                    self.trace_report(&report);
                }
            } else {
                let _ = self.log.abort_clean(task);
            }
        }
        self.summary.crashed += usize::from(self.disk.crashed());
        if self.trace {
            eprintln!(
                "  disk crashed during the cleaning: {}",
                self.disk.crashed()
            );
        }
        self.crash(seed, None);
    }

    /// A power loss, then recovery (itself cut short at `recovery_at` if given, then again).
    fn crash(&mut self, seed: u64, recovery_at: Option<u8>) {
        let flushed = self.log.flushed_offset();
        let mut disk = self.disk.crash_image(seed);
        if let Some(at) = recovery_at {
            disk.arm(1 + u64::from(at));
            let opened =
                PartitionLog::open(Arc::new(disk.clone()), image::dir(), self.config.clone(), 0);
            drop(opened);
            disk = disk.crash_image(seed.rotate_left(29));
        }
        let (log, report) = image::open(Arc::new(disk.clone()), self.config.clone());
        if self.trace {
            eprintln!("  recovered: {report:?}, flushed was {flushed}");
        }
        assert!(
            report.corrupt_batches.is_empty(),
            "a crash left corruption: {report:?}"
        );
        let end = log.log_end_offset();
        assert!(
            end >= flushed,
            "the log end after a crash, {end}, is below the flushed offset {flushed}"
        );
        self.model.cut(end);
        self.hw_floor = self.hw_floor.min(end);
        self.disk = disk;
        self.log = log;
    }

    /// Every batch a cleaning with high watermark `hw` must leave alone: those ending at or
    /// above it or the active segment's base.
    fn protected(&self, hw: Offset) -> Vec<Served> {
        let from = hw.min(self.active_base());
        image::read_all(&self.log, image::no_corruption)
            .into_iter()
            .filter(|b| b.last >= from)
            .collect()
    }

    fn check_protected(&self, kept: &[Served]) {
        let now: Vec<Served> = image::read_all(&self.log, image::no_corruption)
            .into_iter()
            .filter(|b| kept.iter().any(|k| k.base == b.base))
            .collect();
        assert_eq!(
            now, kept,
            "a cleaning changed batches at or above the high watermark"
        );
    }

    /// The active segment's base: the newest `.log` file's.
    fn active_base(&self) -> Offset {
        self.names()
            .iter()
            .filter_map(|n| n.strip_suffix(".log")?.parse::<i64>().ok())
            .max()
            .map_or(Offset(0), Offset)
    }

    fn names(&self) -> Vec<String> {
        use strata_core::storage::Storage;
        self.disk
            .list_dir(&image::dir())
            .expect("list the log directory")
    }

    fn trace_report(&mut self, report: &CleanReport) {
        if report.abandoned {
            self.summary.abandoned += 1;
        } else {
            self.summary.swapped += 1;
        }
        if self.trace {
            eprintln!("  {report:?}");
        }
    }

    fn check(&mut self) {
        image::check_offsets(&self.log);
        self.summary.expired += self.model.check(&self.log);
        assert!(
            self.log.log_end_offset() >= self.model_end(),
            "the log ends before the model's last record"
        );
        let names = self.names();
        assert!(
            names
                .iter()
                .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")),
            "cleaning files left behind: {names:?}"
        );
    }
}

/// Runs up to `n` steps of `task` (on a sound disk); `n = usize::MAX`: until it is done.
fn steps(task: &mut CleanTask, n: usize) {
    for i in 0.. {
        if i == n || task.is_done() {
            return;
        }
        assert!(i < 1_000_000, "a cleaning ends");
        task.step().expect("a cleaning step on a sound disk");
    }
}
