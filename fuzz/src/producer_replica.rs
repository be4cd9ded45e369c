//! One replica of `producer_ops`: a partition log on its own disk, with the model of what it
//! holds (its history of batches, the producers' floors, the snapshots that must still be there)
//! and the checks run on it after every step. See `producer_ops` and `producer_model`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_core::Offset;
use strata_core::log::producer_state::ProducerStateManager;
use strata_core::log::{LogConfig, PartitionLog, RecoveryReport};
use strata_core::storage::MemStorage;

use crate::durable::DurableStorage;
use crate::image::{self, Served};
use crate::producer_model::{Allowed, Entry, MBatch, entries};
use crate::producer_ops::PRODUCERS;

/// One replica: its disk, its log, and the model of both.
pub(crate) struct Replica {
    pub(crate) name: &'static str,
    pub(crate) disk: DurableStorage,
    pub(crate) log: PartitionLog,
    /// Every batch of the log's lineage below its log end, also those retention deleted.
    pub(crate) history: Vec<MBatch>,
    /// Per producer: the log end at the last event that may have made the partition forget part
    /// of its past (see `producer_model`).
    pub(crate) floor: [Offset; PRODUCERS],
    /// Torn snapshot files are expected only after a crash.
    crashed: bool,
    /// The snapshots that loaded after the last step: each one gone since needs a reason.
    loadable: BTreeSet<Offset>,
    /// Why snapshots may have been removed during the current step.
    removable: Vec<Removable>,
}

/// A reason for a snapshot file to disappear (`producer_snapshots`' docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Removable {
    /// A truncation deletes every snapshot above the offset it was asked for, as does recovery
    /// above the recovered log end.
    Above(Offset),
    /// Retention deletes snapshots below the new log start.
    Below(Offset),
    /// A checkpoint replaces the snapshots strictly inside the active segment, below the end.
    Inside(Offset, Offset),
    /// A crash tore it; the rebuild at recovery deletes it.
    Torn(Offset),
}

impl Removable {
    pub(crate) fn covers(&self, o: Offset) -> bool {
        match *self {
            Removable::Above(x) => o > x,
            Removable::Below(x) => o < x,
            Removable::Inside(a, b) => a < o && o < b,
            Removable::Torn(x) => o == x,
        }
    }
}

fn open(disk: &DurableStorage, config: &LogConfig, now: i64) -> (PartitionLog, RecoveryReport) {
    match PartitionLog::open(Arc::new(disk.clone()), image::dir(), config.clone(), now) {
        Ok(opened) => opened,
        Err(e) => panic!("PartitionLog::open failed without any IO error: {e}"),
    }
}

pub(crate) fn served(b: &MBatch) -> Served {
    Served {
        base: b.base,
        last: b.last,
        bytes: b.bytes.clone(),
    }
}

impl Replica {
    pub(crate) fn new(name: &'static str, config: &LogConfig, now: i64) -> Replica {
        let disk = DurableStorage::new(MemStorage::new());
        let (log, _) = open(&disk, config, now);
        Replica {
            name,
            disk,
            log,
            history: Vec::new(),
            floor: [Offset::ZERO; PRODUCERS],
            crashed: false,
            loadable: BTreeSet::new(),
            removable: Vec::new(),
        }
    }

    pub(crate) fn end(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// The last batch of `pid` in the history: its epoch and last sequence.
    pub(crate) fn view(&self, pid: usize) -> Option<(i16, i32)> {
        self.history
            .iter()
            .rev()
            .filter_map(|b| b.producer)
            .find(|p| p.pid == pid as i64)
            .map(|p| (p.epoch, p.last_seq))
    }

    pub(crate) fn allowed(&self, pid: usize) -> Allowed {
        Allowed::of(&self.history, pid as i64, self.floor[pid], Offset(i64::MAX))
    }

    /// Every `<offset>.snapshot` file with its bytes.
    pub(crate) fn snapshots(&self) -> Vec<(Offset, Vec<u8>)> {
        let dir = image::dir();
        let mut out = Vec::new();
        for path in self.disk.mem.paths() {
            if path.parent() != Some(dir.as_path()) {
                continue;
            }
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".snapshot"))
            else {
                continue;
            };
            let offset = stem.parse::<i64>().expect("snapshot names are offsets");
            let bytes = self
                .disk
                .mem
                .file(&path)
                .map(|f| f.contents())
                .unwrap_or_default();
            out.push((Offset(offset), bytes));
        }
        out
    }

    /// The offsets of the snapshot files that load.
    pub(crate) fn loadable_snapshots(&self) -> BTreeSet<Offset> {
        self.snapshots()
            .into_iter()
            .filter(|(_, bytes)| {
                ProducerStateManager::load_snapshot(bytes, i64::MAX, i64::MIN).is_ok()
            })
            .map(|(o, _)| o)
            .collect()
    }

    /// The base offset of the active segment: the newest `.log` file's.
    pub(crate) fn active_base(&self) -> Offset {
        self.disk
            .mem
            .paths()
            .iter()
            .filter_map(|p| p.file_name()?.to_str()?.strip_suffix(".log")?.parse().ok())
            .max()
            .map_or(Offset::ZERO, Offset)
    }

    pub(crate) fn checkpoint(&mut self) {
        let (base, end) = (self.active_base(), self.end());
        self.removable.push(Removable::Inside(base, end));
        self.log
            .checkpoint_recovery_point()
            .expect("checkpoint on MemStorage");
    }

    /// After a rebuild (at open, or after a truncation): whether it may have started from an
    /// empty state at the log start, forgetting producers whose batches all lie below it. A
    /// rebuild takes the newest snapshot at or below the log end that loads, deleting the ones
    /// that do not on its way, so afterwards a loadable snapshot at or above the log start is on
    /// disk if and only if it started from one. (Only the roll snapshot at the log start's base
    /// holds the producers of deleted segments; a crash may have torn it, also long before the
    /// retention pass that made its segment the first.)
    pub(crate) fn start_snapshot_missing(&self) -> bool {
        let (start, end) = (self.log.log_start_offset(), self.end());
        !self.snapshots().iter().any(|(o, bytes)| {
            start <= *o
                && *o <= end
                && ProducerStateManager::load_snapshot(bytes, i64::MAX, i64::MIN).is_ok()
        })
    }

    /// After the log end moved down (truncation, crash): floors follow it; after a rebuild from
    /// the log start, what lies below the log start may be forgotten.
    pub(crate) fn on_cut(&mut self) {
        let missing = self.start_snapshot_missing();
        let (start, end) = (self.log.log_start_offset(), self.end());
        for f in &mut self.floor {
            *f = (*f).min(end);
            if missing {
                *f = (*f).max(start);
            }
        }
    }

    /// After an open at `now`: a producer found in the snapshot may have expired (`load_snapshot`
    /// drops them; the replay after it does not), if any of its batches is that old.
    pub(crate) fn on_open(&mut self, now: i64, expiration_ms: i64) {
        let end = self.end();
        for (pid, f) in self.floor.iter_mut().enumerate() {
            let old = self
                .history
                .iter()
                .filter_map(|b| b.producer)
                .any(|p| p.pid == pid as i64 && now.saturating_sub(p.ts) >= expiration_ms);
            if old {
                *f = end;
            }
        }
    }

    /// Truncates the log (as a follower does) and the model with it.
    pub(crate) fn truncate(&mut self, to: Offset) {
        self.removable.push(Removable::Above(to));
        self.log.truncate_to(to).expect("truncate on MemStorage");
        let end = self.end();
        assert!(
            end <= to,
            "{}: truncate_to({to}) left the log end at {end}",
            self.name
        );
        self.history.retain(|b| b.base < end);
        self.on_cut();
    }

    pub(crate) fn flush(&mut self) {
        if let Some(plan) = self.log.begin_flush() {
            plan.execute().expect("MemStorage syncs cannot fail");
            self.log.complete_flush(&plan);
        }
    }

    /// Runs a retention pass and checks that it expired exactly the producers idle for
    /// `producer.id.expiration.ms` and changed no other producer (KAFKA-7190: retention alone
    /// keeps them).
    pub(crate) fn enforce_retention(&mut self, now: i64, expiration_ms: i64) {
        let before = entries(self.log.producer_state());
        let report = self
            .log
            .enforce_retention(now)
            .expect("retention on MemStorage");
        assert_eq!(report.log_start_offset, self.log.log_start_offset());
        self.removable
            .push(Removable::Below(self.log.log_start_offset()));
        let after = entries(self.log.producer_state());
        let kept: BTreeMap<i64, Entry> = before
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.last_ts) < expiration_ms)
            .map(|(p, e)| (*p, e.clone()))
            .collect();
        assert_eq!(
            after, kept,
            "{}: retention at {now} must expire exactly the producers idle for {expiration_ms} ms",
            self.name
        );
        let end = self.end();
        for pid in before.keys().filter(|p| !after.contains_key(p)) {
            self.floor[*pid as usize] = end;
        }
    }

    pub(crate) fn crash(&mut self, seed: u64, config: &LogConfig, now: i64, trace: bool) {
        let flushed = self.log.flushed_offset();
        let start = self.log.log_start_offset();
        let first = self
            .history
            .iter()
            .position(|b| b.base >= start)
            .unwrap_or(self.history.len());
        let acked = self.history[first..]
            .iter()
            .filter(|b| b.last < flushed)
            .count();
        let (crashed, cut) = self.disk.crash_image(seed);
        self.disk = DurableStorage::new(crashed);
        let survived = self.loadable_snapshots();
        let torn = self
            .loadable
            .difference(&survived)
            .map(|o| Removable::Torn(*o));
        self.removable.extend(torn);
        let (log, report) = open(&self.disk, config, now);
        self.log = log;
        self.crashed = true;
        self.removable.push(Removable::Above(self.end()));
        if trace {
            eprintln!("  {}: files that lost unsynced bytes: {cut:?}", self.name);
            eprintln!(
                "  {}: recovered: {report:?}, acked {acked} below {flushed}",
                self.name
            );
        }
        assert!(
            report.corrupt_batches.is_empty(),
            "{}: crash reported corruption: {report:?}",
            self.name
        );
        assert_eq!(
            self.log.log_start_offset(),
            start,
            "{}: a crash moved the log start",
            self.name
        );
        let recovered = image::read_all(&self.log, image::no_corruption);
        let tail: Vec<Served> = self.history[first..].iter().map(served).collect();
        assert!(
            recovered.len() >= acked,
            "{}: lost flushed batches: {acked} below flushed offset {flushed}, {} recovered",
            self.name,
            recovered.len()
        );
        assert!(
            recovered.len() <= tail.len() && recovered[..] == tail[..recovered.len()],
            "{}: recovered log is not a prefix of what was appended",
            self.name
        );
        self.history.truncate(first + recovered.len());
        // Snapshots are not fsynced: any may be torn.
        self.on_cut();
        self.on_open(now, config.producer_id_expiration_ms);
    }

    pub(crate) fn reopen(&mut self, config: &LogConfig, now: i64) {
        let (log, report) = open(&self.disk, config, now);
        self.log = log;
        self.removable.push(Removable::Above(self.end()));
        assert!(
            report.truncated_bytes == 0 && report.corrupt_batches.is_empty(),
            "{}: clean reopen cut or found corruption: {report:?}",
            self.name
        );
        self.on_cut();
        self.on_open(now, config.producer_id_expiration_ms);
    }

    /// The invariants checked after every step.
    pub(crate) fn check(&mut self, expiration_ms: i64) {
        let name = self.name;
        let loadable = self.loadable_snapshots();
        for gone in self.loadable.difference(&loadable) {
            assert!(
                self.removable.iter().any(|r| r.covers(*gone)),
                "{name}: snapshot {gone} was removed, and nothing done in this step removes it \
                 (reasons: {:?})",
                self.removable
            );
        }
        self.loadable = loadable;
        self.removable.clear();
        image::check_offsets(&self.log);
        let (start, end) = (self.log.log_start_offset(), self.end());
        assert_eq!(
            end,
            self.history.last().map_or(Offset::ZERO, |b| b.last.next()),
            "{name}: log end"
        );
        let got = image::read_all(&self.log, image::no_corruption);
        let want: Vec<Served> = self
            .history
            .iter()
            .filter(|b| b.base >= start)
            .map(served)
            .collect();
        assert_eq!(
            got, want,
            "{name}: the log does not hold what the model does"
        );
        match want.first() {
            Some(first) => assert_eq!(start, first.base, "{name}: log start"),
            None => assert_eq!(start, end, "{name}: an empty log starts at its end"),
        }

        let state = self.log.producer_state();
        assert_eq!(
            state.map_end_offset(),
            end,
            "{name}: producer state map end"
        );
        let got = entries(state);
        for pid in got.keys() {
            assert!(
                (0..PRODUCERS as i64).contains(pid),
                "{name}: state of producer {pid}, which never wrote"
            );
        }
        for pid in 0..PRODUCERS {
            let allowed = self.allowed(pid);
            assert!(
                allowed.admits(got.get(&(pid as i64))),
                "{name}: producer {pid}'s state {:?} is not allowed: {allowed:?} (floor {})",
                got.get(&(pid as i64)),
                self.floor[pid]
            );
        }

        for (offset, bytes) in self.snapshots() {
            assert!(
                start <= offset && offset <= end,
                "{name}: snapshot {offset} outside the log [{start}, {end}]"
            );
            assert!(
                offset == Offset::ZERO || self.history.iter().any(|b| b.last.next() == offset),
                "{name}: snapshot {offset} is not at a batch boundary"
            );
            let (snap, covers) =
                match ProducerStateManager::load_snapshot(&bytes, expiration_ms, i64::MIN) {
                    Ok(loaded) => loaded,
                    Err(e) => {
                        assert!(self.crashed, "{name}: snapshot {offset} does not load: {e}");
                        continue;
                    }
                };
            assert_eq!(
                covers, offset,
                "{name}: snapshot named {offset} covers {covers}"
            );
            for (pid, e) in entries(&snap) {
                let ok = (0..PRODUCERS as i64).contains(&pid)
                    && Allowed::of(&self.history, pid, Offset(i64::MAX), offset).admits(Some(&e));
                assert!(
                    ok,
                    "{name}: snapshot {offset} holds producer {pid} as {e:?}, which the batches \
                     below it do not allow"
                );
            }
        }
    }
}
