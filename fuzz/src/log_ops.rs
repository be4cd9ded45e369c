//! `log_ops`: a structure-aware sequence of partition-log operations, crashes and recoveries,
//! checked against a model after every step.
//!
//! The input is decoded with `arbitrary` into a config and up to [`MAX_OPS`] [`Op`]s. The disk is
//! a [`DurableStorage`]; a crash drops the log and reopens on an image that keeps every synced
//! byte and an arbitrary prefix of each file's unsynced tail.
//!
//! Properties after every step: `log_start <= flushed <= log_end`; a full read serves exactly
//! the model's batches (same offsets, same bytes: dense, increasing, nothing corrupt). After a
//! reopen or crash, and on `Probe`: a read at every (or the probed) offset starts with the batch
//! holding it, and `offset_for_timestamp` agrees with a linear search. At a crash, every batch
//! below the flushed offset (acknowledged by a completed flush) survives recovery, and what
//! survives is a prefix of the model.

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use strata_core::batch::{TimestampType, assign_offset, set_log_append_time};
use strata_core::log::{FlushPlan, LogConfig, PartitionLog};
use strata_core::{LeaderEpoch, Offset};

use crate::durable::DurableStorage;
use crate::image::{self, Served};
use crate::index_files::{check_every_offset, check_timestamps};

pub const MAX_OPS: usize = 64;
const EPOCH: LeaderEpoch = LeaderEpoch(5);

#[derive(Debug)]
pub struct Input {
    pub config: ConfigIn,
    pub ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
pub struct ConfigIn {
    pub segment_bytes: u16,
    pub index_interval: u16,
    pub index_entries: u8,
    pub segment_ms: u16,
    pub log_append_time: bool,
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    /// A record set of `1 + batches % 3` batches of `1 + records % 4` records each.
    Append {
        batches: u8,
        records: u8,
        value_len: u8,
        ts: u16,
    },
    BeginFlush,
    ExecuteFlush,
    CompleteFlush,
    /// Begin, execute and complete at once.
    Flush,
    Roll,
    /// `truncate_to(log_end - back)`.
    TruncateTo {
        back: u8,
    },
    Retention {
        ms: Option<u16>,
        bytes: Option<u16>,
    },
    Checkpoint,
    /// Lose unsynced writes (see [`DurableStorage::crash_image`]) and recover.
    Crash {
        seed: u64,
    },
    /// Close and reopen on the same disk.
    Reopen,
    Tick {
        ms: u16,
    },
    Probe {
        offset: u16,
        ts: u16,
    },
}

impl ConfigIn {
    fn to_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: 100 + u64::from(self.segment_bytes % 4_000),
            segment_ms: if self.segment_ms == 0 {
                i64::MAX
            } else {
                i64::from(self.segment_ms)
            },
            index_interval_bytes: 1 + u32::from(self.index_interval % 600),
            segment_index_bytes: 8 * (1 + u32::from(self.index_entries % 64)),
            retention_ms: -1,
            retention_bytes: -1,
            message_timestamp_type: if self.log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            ..LogConfig::default()
        }
    }
}

pub fn log_ops(data: &[u8]) {
    if let Some(input) = Input::decode(data) {
        run(&input);
    }
}

impl Input {
    /// A config, then ops back to back until the bytes run out (every byte is used, unlike
    /// `Vec::arbitrary`'s length-prefixed or continuation-byte encodings).
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
    disk: DurableStorage,
    log: PartitionLog,
    config: LogConfig,
    /// The batches the log must hold, in offset order.
    model: Vec<Served>,
    /// A group commit begun and not completed; `true` once executed.
    pending: Option<(FlushPlan, bool)>,
    now: i64,
}

pub fn run(input: &Input) {
    let config = input.config.to_config();
    let disk = DurableStorage::new(strata_core::storage::MemStorage::new());
    let (log, _) = image::open(Arc::new(disk.clone()), config.clone());
    let mut h = Harness {
        disk,
        log,
        config,
        model: Vec::new(),
        pending: None,
        now: 1_000_000,
    };
    // `STRATA_FUZZ_TRACE=1` prints each step, for reproducing a failure by hand.
    let trace = std::env::var_os("STRATA_FUZZ_TRACE").is_some();
    for (i, op) in input.ops.iter().take(MAX_OPS).enumerate() {
        if trace {
            eprintln!("step {i}: {op:?}");
        }
        h.step(op);
        if trace {
            let l = &h.log;
            let (s, f, e) = (l.log_start_offset(), l.flushed_offset(), l.log_end_offset());
            eprintln!(
                "  start {s} flushed {f} end {e}, {} segments",
                l.segment_count()
            );
        }
        h.check();
    }
    h.check_lookups();
}

impl Harness {
    /// Runs one op.
    fn step(&mut self, op: &Op) {
        match *op {
            Op::Append {
                batches,
                records,
                value_len,
                ts,
            } => self.append(batches, records, value_len, ts),
            Op::BeginFlush => {
                if self.pending.is_none() {
                    self.pending = self.log.begin_flush().map(|p| (p, false));
                }
            }
            Op::ExecuteFlush => {
                if let Some((plan, executed)) = &mut self.pending {
                    plan.execute().expect("MemStorage syncs cannot fail");
                    *executed = true;
                }
            }
            Op::CompleteFlush => {
                // Also after a truncation overtook the plan: the log must not count what was
                // appended after it as flushed (`complete-flush-after-truncate-and-reappend`).
                if let Some((plan, true)) = &self.pending {
                    self.log.complete_flush(plan);
                    self.pending = None;
                }
            }
            Op::Flush => {
                if let Some(plan) = self.log.begin_flush() {
                    plan.execute().expect("MemStorage syncs cannot fail");
                    self.log.complete_flush(&plan);
                }
            }
            Op::Roll => self.log.roll().expect("roll on MemStorage"),
            Op::TruncateTo { back } => self.truncate(back),
            Op::Retention { ms, bytes } => self.retention(ms, bytes),
            Op::Checkpoint => self
                .log
                .checkpoint_recovery_point()
                .expect("checkpoint on MemStorage"),
            Op::Crash { seed } => self.crash(seed),
            Op::Reopen => self.reopen(),
            Op::Tick { ms } => self.now += i64::from(ms),
            Op::Probe { offset, ts } => self.probe(offset, ts),
        }
    }

    fn append(&mut self, batches: u8, records: u8, value_len: u8, ts: u16) {
        let ts = if ts == u16::MAX {
            -1
        } else {
            1_000_000 + i64::from(ts)
        };
        let n = 1 + usize::from(batches % 3);
        let mut set = Vec::new();
        let mut spans = Vec::new();
        for i in 0..n {
            let tag = (self.model.len() * 3 + i) as u32;
            let b = image::make_batch(
                tag,
                1 + usize::from(records % 4),
                usize::from(value_len % 80),
                ts,
            );
            spans.push((set.len(), b.len(), 1 + i64::from(records % 4)));
            set.extend_from_slice(&b);
        }
        let end = self.log.log_end_offset();
        let info = self
            .log
            .append(&set, EPOCH, self.now)
            .unwrap_or_else(|e| panic!("append of valid batches failed: {e}"));
        assert_eq!(info.first_offset, end, "append starts at the log end");
        let mut next = end;
        for (pos, len, count) in spans {
            let mut b = set[pos..pos + len].to_vec();
            assign_offset(&mut b, next, EPOCH);
            if self.config.message_timestamp_type == TimestampType::LogAppendTime {
                set_log_append_time(&mut b, self.now);
            }
            let last = Offset(next.0 + count - 1);
            self.model.push(Served {
                base: next,
                last,
                bytes: b,
            });
            next = last.next();
        }
        assert_eq!(info.last_offset.next(), next);
    }

    fn truncate(&mut self, back: u8) {
        let end = self.log.log_end_offset();
        let to = Offset((end.0 - i64::from(back)).max(0));
        self.log.truncate_to(to).expect("truncate on MemStorage");
        let cut = to.max(self.log.log_start_offset());
        if to < end {
            self.model.retain(|b| b.last < cut);
        }
    }

    fn retention(&mut self, ms: Option<u16>, bytes: Option<u16>) {
        self.config.retention_ms = ms.map_or(-1, i64::from);
        self.config.retention_bytes = bytes.map_or(-1, i64::from);
        self.log.set_config(self.config.clone());
        let report = self
            .log
            .enforce_retention(self.now)
            .expect("retention on MemStorage");
        assert_eq!(report.log_start_offset, self.log.log_start_offset());
        let start = self.log.log_start_offset();
        self.model.retain(|b| b.base >= start);
    }

    fn crash(&mut self, seed: u64) {
        let flushed = self.log.flushed_offset();
        let acked = self.model.iter().filter(|b| b.last < flushed).count();
        self.pending = None;
        let (crashed, cut) = self.disk.crash_image(seed);
        self.disk = DurableStorage::new(crashed);
        let (log, report) = image::open(Arc::new(self.disk.clone()), self.config.clone());
        self.log = log;
        if std::env::var_os("STRATA_FUZZ_TRACE").is_some() {
            for path in self.disk.mem.paths() {
                let len = self.disk.mem.file(&path).map_or(0, |f| f.contents().len());
                eprintln!("  crash image: {} {len} bytes", path.display());
            }
            eprintln!("  files that lost unsynced bytes: {cut:?}");
            eprintln!("  recovered: {report:?}, acked {acked} below {flushed}");
        }
        let recovered = image::read_all(&self.log, image::no_corruption);
        assert!(
            report.corrupt_batches.is_empty(),
            "crash reported corruption: {report:?}"
        );
        assert!(
            recovered.len() >= acked,
            "lost acknowledged batches: {acked} below flushed offset {flushed}, {} recovered",
            recovered.len()
        );
        assert_eq!(
            recovered[..],
            self.model[..recovered.len().min(self.model.len())],
            "recovered log is not a prefix of what was appended"
        );
        self.model.truncate(recovered.len());
        self.check_lookups();
    }

    fn reopen(&mut self) {
        self.pending = None;
        if std::env::var_os("STRATA_FUZZ_TRACE").is_some() {
            for path in self.disk.mem.paths() {
                let bytes = self
                    .disk
                    .mem
                    .file(&path)
                    .map(|f| f.contents())
                    .unwrap_or_default();
                eprintln!(
                    "  reopen: {} {:?}",
                    path.display(),
                    &bytes[..bytes.len().min(48)]
                );
            }
        }
        let (log, report) = image::open(Arc::new(self.disk.clone()), self.config.clone());
        self.log = log;
        assert_eq!(
            report.truncated_bytes, 0,
            "clean reopen cut bytes: {report:?}"
        );
        self.check_lookups();
    }

    fn probe(&self, offset: u16, ts: u16) {
        if let Some(b) = self
            .model
            .get(usize::from(offset) % self.model.len().max(1))
        {
            check_every_offset(&self.log, std::slice::from_ref(b));
        }
        let _ = ts;
        check_timestamps(&self.log, &self.model);
    }

    fn check_lookups(&self) {
        check_every_offset(&self.log, &self.model);
        check_timestamps(&self.log, &self.model);
    }

    /// The invariants checked after every step.
    fn check(&self) {
        image::check_offsets(&self.log);
        let served = image::read_all(&self.log, image::no_corruption);
        assert_eq!(
            served, self.model,
            "the log does not hold what the model does"
        );
        match self.model.first() {
            Some(first) => assert_eq!(self.log.log_start_offset(), first.base),
            None => assert_eq!(self.log.log_start_offset(), self.log.log_end_offset()),
        }
        if let Some(last) = self.model.last() {
            assert_eq!(self.log.log_end_offset(), last.last.next());
        }
    }
}
