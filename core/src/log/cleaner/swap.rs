//! The crash-safe swap of cleaned segments for their sources, and its recovery (the protocol
//! and the argument are in the parent module's docs).
//!
//! ## The swap marker `<first source base>.swap`
//!
//! ```text
//! strata-cleaner-swap 0\n                       magic and format version
//! group <output base> <0|1> <source base> ...\n  one line per group: 1 if an output segment
//!                                                replaces the sources (named by the first),
//!                                                0 if they simply go
//! crc <CRC-32C of every byte before this line, 8 lowercase hex digits>\n
//! ```
//!
//! Nothing may follow the `crc` line. A marker that does not parse or whose CRC does not match
//! was torn by a crash before the commit point: it is as if there were none.

use std::io;
use std::path::{Path, PathBuf};

use crate::storage::{Storage, read_vec};
use crate::types::Offset;

use super::super::{LogError, io_err};
use super::writer::{CLEANED_SUFFIX, cleaned_path, segment_paths};

const MAGIC: &str = "strata-cleaner-swap 0";
/// The suffix of a swap marker.
pub const SWAP_SUFFIX: &str = ".swap";
/// Largest marker read: 2^20 bytes hold tens of thousands of segment names.
const MAX_MARKER_BYTES: u64 = 1 << 20;

/// One group of a swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapGroup {
    /// Source segment bases, increasing; the output (if any) is named by the first.
    pub sources: Vec<Offset>,
    pub has_output: bool,
}

/// What a swap replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapMarker {
    pub groups: Vec<SwapGroup>,
}

impl SwapMarker {
    /// The marker's file name: the first source's base offset.
    pub fn path(&self, dir: &Path) -> PathBuf {
        let first = self.groups.first().and_then(|g| g.sources.first());
        let base = first.map_or(0, |b| b.0);
        dir.join(format!("{base:020}{SWAP_SUFFIX}"))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("{MAGIC}\n");
        for g in &self.groups {
            let output = g.sources.first().map_or(0, |b| b.0);
            text.push_str(&format!("group {output} {}", u8::from(g.has_output)));
            for s in &g.sources {
                text.push_str(&format!(" {}", s.0));
            }
            text.push('\n');
        }
        let crc = crc32c::crc32c(text.as_bytes());
        text.push_str(&format!("crc {crc:08x}\n"));
        text.into_bytes()
    }

    /// Parses a marker; `None` if it is torn or malformed in any way.
    pub fn decode(bytes: &[u8]) -> Option<SwapMarker> {
        let text = std::str::from_utf8(bytes).ok()?;
        let body_end = text.trim_end_matches('\n').rfind('\n')? + 1;
        let (body, tail) = text.split_at(body_end);
        let crc = tail.strip_prefix("crc ")?.strip_suffix('\n')?;
        if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32c::crc32c(body.as_bytes()) {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut groups = Vec::new();
        for line in lines {
            let mut words = line.split(' ');
            if words.next()? != "group" {
                return None;
            }
            let output: i64 = words.next()?.parse().ok()?;
            let has_output = match words.next()? {
                "0" => false,
                "1" => true,
                _ => return None,
            };
            let sources: Vec<Offset> = words
                .map(|w| w.parse().ok().map(Offset))
                .collect::<Option<_>>()?;
            let increasing = sources.windows(2).all(|w| w[0] < w[1]);
            if sources.first() != Some(&Offset(output)) || !increasing || output < 0 {
                return None;
            }
            groups.push(SwapGroup {
                sources,
                has_output,
            });
        }
        (!groups.is_empty()).then_some(SwapMarker { groups })
    }
}

/// Commits a swap whose `.cleaned` files are written, fsynced and named durably: writes and
/// fsyncs the marker, syncs the directory (the commit point), then [`apply`]. Each storage
/// operation is one crash point of the crash tests.
pub fn commit(storage: &dyn Storage, dir: &Path, marker: &SwapMarker) -> Result<(), LogError> {
    let path = marker.path(dir);
    let file = storage
        .open(&path)
        .map_err(io_err("write swap marker", &path))?;
    let bytes = marker.encode();
    file.set_len(0)
        .and_then(|()| file.write_at(&bytes, 0))
        .and_then(|()| file.sync_data())
        .map_err(io_err("write swap marker", &path))?;
    storage.sync_dir(dir).map_err(io_err("commit swap", dir))?;
    apply(storage, dir, marker)
}

/// Step 3 of the swap, idempotent (recovery redoes it after a crash): every `.cleaned` file
/// still there is renamed over its final name, every other source's files are deleted, the
/// directory is synced, then the marker is deleted and the directory synced again.
pub fn apply(storage: &dyn Storage, dir: &Path, marker: &SwapMarker) -> Result<(), LogError> {
    for g in &marker.groups {
        let replaced = if g.has_output { 1 } else { 0 };
        if g.has_output {
            for final_path in segment_paths(dir, g.sources[0]) {
                let from = cleaned_path(&final_path);
                match storage.rename(&from, &final_path) {
                    Ok(()) => {}
                    // Renamed before a crash.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("swap cleaned segment", &from)(e)),
                }
            }
        }
        for base in &g.sources[replaced..] {
            // `.log` last, as retention does: until it goes the segment stays whole.
            for path in segment_paths(dir, *base).into_iter().rev() {
                remove_if_present(storage, &path)?;
            }
        }
    }
    storage.sync_dir(dir).map_err(io_err("swap", dir))?;
    remove_if_present(storage, &marker.path(dir))?;
    storage.sync_dir(dir).map_err(io_err("swap", dir))
}

fn remove_if_present(storage: &dyn Storage, path: &Path) -> Result<(), LogError> {
    match storage.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Finishes or rolls back a swap a crash interrupted; run by `PartitionLog::open` before it
/// lists the segments. Every valid marker's swap is completed ([`apply`]); then every invalid
/// marker and every `.cleaned` file left is deleted (a cleaning that never reached its commit
/// point) and, if anything was, the directory is synced. Returns how many swaps it completed.
pub fn recover_swap(storage: &dyn Storage, dir: &Path) -> Result<usize, LogError> {
    let names = match storage.list_dir(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("list log dir", dir)(e)),
    };
    let mut completed = 0;
    let mut removed = false;
    for name in names.iter().filter(|n| n.ends_with(SWAP_SUFFIX)) {
        let path = dir.join(name);
        let file = storage
            .open(&path)
            .map_err(io_err("read swap marker", &path))?;
        let len = file.len().map_err(io_err("read swap marker", &path))?;
        let raw = read_vec(&*file, 0, len.min(MAX_MARKER_BYTES) as usize)
            .map_err(io_err("read swap marker", &path))?;
        match SwapMarker::decode(&raw) {
            Some(marker) if marker.path(dir) == path => {
                let why = "completing a cleaner swap a crash interrupted";
                tracing::warn!(dir = %dir.display(), marker = %name, "{why}");
                apply(storage, dir, &marker)?;
                completed += 1;
            }
            _ => {
                let why = "removing a torn cleaner swap marker";
                tracing::warn!(dir = %dir.display(), marker = %name, "{why}");
                remove_if_present(storage, &path)?;
                removed = true;
            }
        }
    }
    let names = storage.list_dir(dir).map_err(io_err("list log dir", dir))?;
    for name in names.iter().filter(|n| n.ends_with(CLEANED_SUFFIX)) {
        remove_if_present(storage, &dir.join(name))?;
        removed = true;
    }
    if removed {
        storage.sync_dir(dir).map_err(io_err("sync log dir", dir))?;
    }
    Ok(completed)
}
