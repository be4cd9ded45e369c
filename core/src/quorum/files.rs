//! Byte-level encodings of the quorum's three files (see the module docs of [`super`] for the
//! formats) and the scans that recover them. Pure functions over byte slices and
//! [`StorageFile`]s; the decisions of what to keep live in [`super::persisted_log`].

use std::io;
use std::path::Path;
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::Entry;

use crate::storage::{Storage, StorageFile, read_vec};

pub(super) const LOG_FILE: &str = "raft.log";
pub(super) const LOG_TMP: &str = "raft.log.tmp";
pub(super) const HARD_STATE_FILE: &str = "hard_state";
pub(super) const SNAPSHOT_FILE: &str = "snapshot";
pub(super) const SNAPSHOT_TMP: &str = "snapshot.tmp";

/// Each hard-state slot sits alone in its own 512-byte sector, so a torn write of one slot
/// cannot touch the other.
pub(super) const SLOT_STRIDE: u64 = 512;
/// `crc:u32 | seq:u64 | term:u64 | vote:u64 | commit:u64`.
pub(super) const SLOT_LEN: usize = 36;
/// `len:u32 | crc:u32` before each protobuf entry.
pub(super) const FRAME_HEADER: usize = 8;
/// A frame longer than this is treated as torn (a real entry is bounded by the proposal size).
pub(super) const MAX_ENTRY_BYTES: usize = 64 * 1024 * 1024;
/// `crc:u32 | index:u64 | term:u64` before the snapshot data.
pub(super) const SNAPSHOT_HEADER: usize = 20;

/// One durable hard state (Raft §5: `currentTerm`, `votedFor`, plus the commit index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct HardStateSlot {
    /// Write sequence number: the valid slot with the highest `seq` is current.
    pub seq: u64,
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

pub(super) fn encode_slot(slot: &HardStateSlot) -> [u8; SLOT_LEN] {
    let mut out = [0u8; SLOT_LEN];
    out[4..12].copy_from_slice(&slot.seq.to_be_bytes());
    out[12..20].copy_from_slice(&slot.term.to_be_bytes());
    out[20..28].copy_from_slice(&slot.vote.to_be_bytes());
    out[28..36].copy_from_slice(&slot.commit.to_be_bytes());
    let crc = crc32c::crc32c(&out[4..]);
    out[..4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// `None` for a never-written, torn or corrupt slot.
pub(super) fn decode_slot(bytes: &[u8]) -> Option<HardStateSlot> {
    let bytes = bytes.get(..SLOT_LEN)?;
    if bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let crc = u32::from_be_bytes(bytes[..4].try_into().ok()?);
    if crc != crc32c::crc32c(&bytes[4..]) {
        return None;
    }
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    Some(HardStateSlot {
        seq: u64_at(4)?,
        term: u64_at(12)?,
        vote: u64_at(20)?,
        commit: u64_at(28)?,
    })
}

/// The current hard state: the valid slot with the highest sequence number.
pub(super) fn read_hard_state(file: &dyn StorageFile) -> io::Result<Option<HardStateSlot>> {
    let bytes = read_vec(file, 0, SLOT_STRIDE as usize + SLOT_LEN)?;
    let first = decode_slot(&bytes);
    let second = bytes.get(SLOT_STRIDE as usize..).and_then(decode_slot);
    Ok(match (first, second) {
        (Some(a), Some(b)) => Some(if a.seq >= b.seq { a } else { b }),
        (a, b) => a.or(b),
    })
}

/// Writes `slot` into the slot its sequence number selects and syncs it.
pub(super) fn write_hard_state(file: &dyn StorageFile, slot: &HardStateSlot) -> io::Result<()> {
    let at = (slot.seq % 2) * SLOT_STRIDE;
    file.write_at(&encode_slot(slot), at)?;
    file.sync_data()
}

/// Appends the frame of `entry` to `out`.
pub(super) fn encode_frame(entry: &Entry, out: &mut Vec<u8>) {
    let body = entry
        .write_to_bytes()
        .expect("encoding a protobuf entry into a Vec cannot fail");
    let len = u32::try_from(body.len()).expect("a Raft entry is far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
}

/// What a scan of `raft.log` found.
#[derive(Debug, Default)]
pub(super) struct ScannedLog {
    /// The entries of the valid prefix, in file order.
    pub entries: Vec<Entry>,
    /// File position of each entry's frame.
    pub positions: Vec<u64>,
    /// Length of the valid prefix (where the next frame goes).
    pub valid_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<String>,
}

/// Scans frames from the start; stops at the first short, oversized, bad-CRC, undecodable or
/// out-of-sequence frame (entries must have consecutive indexes and non-decreasing terms).
pub(super) fn scan_log(bytes: &[u8]) -> ScannedLog {
    let mut scan = ScannedLog::default();
    let mut at = 0usize;
    while at < bytes.len() {
        let stop = |why: String| Some(format!("{why} at byte {at}"));
        let Some(header) = bytes.get(at..at + FRAME_HEADER) else {
            scan.stopped = stop("short frame header".into());
            break;
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_ENTRY_BYTES {
            scan.stopped = stop(format!("frame length {len} over the limit"));
            break;
        }
        let Some(body) = bytes.get(at + FRAME_HEADER..at + FRAME_HEADER + len) else {
            scan.stopped = stop("short frame body".into());
            break;
        };
        if crc32c::crc32c(body) != crc {
            scan.stopped = stop("frame CRC mismatch".into());
            break;
        }
        let entry = match Entry::parse_from_bytes(body) {
            Ok(entry) => entry,
            Err(e) => {
                scan.stopped = stop(format!("undecodable entry ({e})"));
                break;
            }
        };
        if entry.index == 0 {
            // An all-zero header decodes as an empty body with a matching CRC.
            scan.stopped = stop("entry with index 0".into());
            break;
        }
        if let Some(prev) = scan.entries.last()
            && (entry.index != prev.index + 1 || entry.term < prev.term)
        {
            scan.stopped = stop(format!(
                "entry {}@{} does not follow {}@{}",
                entry.index, entry.term, prev.index, prev.term
            ));
            break;
        }
        scan.positions.push(at as u64);
        scan.entries.push(entry);
        at += FRAME_HEADER + len;
        scan.valid_len = at as u64;
    }
    scan
}

/// A decoded `snapshot` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SnapshotFile {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

pub(super) fn encode_snapshot(snapshot: &SnapshotFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER + snapshot.data.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&snapshot.index.to_be_bytes());
    out.extend_from_slice(&snapshot.term.to_be_bytes());
    out.extend_from_slice(&snapshot.data);
    let crc = crc32c::crc32c(&out[4..]);
    out[..4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// `Ok(None)` for an empty file (no snapshot yet); `Err` for a damaged one.
pub(super) fn decode_snapshot(bytes: &[u8]) -> Result<Option<SnapshotFile>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() < SNAPSHOT_HEADER {
        return Err(format!(
            "snapshot file of {} bytes is shorter than its header",
            bytes.len()
        ));
    }
    let crc = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if crc != crc32c::crc32c(&bytes[4..]) {
        return Err("snapshot file CRC mismatch".into());
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&bytes[4..12]);
    let mut term = [0u8; 8];
    term.copy_from_slice(&bytes[12..20]);
    Ok(Some(SnapshotFile {
        index: u64::from_be_bytes(index),
        term: u64::from_be_bytes(term),
        data: bytes[SNAPSHOT_HEADER..].to_vec(),
    }))
}

/// Replaces `dir/name` atomically with `bytes`: write `dir/tmp`, sync it, rename over `name`,
/// sync the directory. Returns the handle of the new file.
pub(super) fn replace_file(
    storage: &dyn Storage,
    dir: &Path,
    tmp: &str,
    name: &str,
    bytes: &[u8],
) -> io::Result<Arc<dyn StorageFile>> {
    let tmp_path = dir.join(tmp);
    let file = storage.open(&tmp_path)?;
    file.set_len(0)?;
    file.write_at(bytes, 0)?;
    file.sync_data()?;
    storage.rename(&tmp_path, &dir.join(name))?;
    storage.sync_dir(dir)?;
    Ok(file)
}

/// The whole content of a file.
pub(super) fn read_all(file: &dyn StorageFile) -> io::Result<Vec<u8>> {
    let len = usize::try_from(file.len()?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
    read_vec(file, 0, len)
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        let mut e = Entry::default();
        e.index = index;
        e.term = term;
        e.data = data.to_vec().into();
        e
    }

    #[test]
    fn slots_round_trip_and_reject_damage() {
        let slot = HardStateSlot {
            seq: 9,
            term: 3,
            vote: 2,
            commit: 41,
        };
        let bytes = encode_slot(&slot);
        assert_eq!(decode_slot(&bytes), Some(slot));
        for i in 0..SLOT_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert_eq!(decode_slot(&bad), None, "flip in byte {i}");
        }
        assert_eq!(decode_slot(&[0; SLOT_LEN]), None);
        assert_eq!(decode_slot(&bytes[..10]), None);
    }

    #[test]
    fn scan_stops_at_torn_and_out_of_sequence_frames() {
        let mut bytes = Vec::new();
        for i in 1..=3 {
            encode_frame(&entry(i, 1, b"abc"), &mut bytes);
        }
        let whole = bytes.len();
        let scan = scan_log(&bytes);
        assert_eq!(scan.entries.len(), 3);
        assert_eq!(scan.valid_len, whole as u64);
        assert!(scan.stopped.is_none());

        // A torn tail: the last frame is cut short.
        let scan = scan_log(&bytes[..whole - 2]);
        assert_eq!(scan.entries.len(), 2);
        assert_eq!(scan.valid_len, scan.positions[1] + (whole / 3) as u64);
        assert!(scan.stopped.is_some());

        // A gap in the indexes.
        let mut gap = bytes.clone();
        encode_frame(&entry(5, 1, b""), &mut gap);
        assert_eq!(scan_log(&gap).entries.len(), 3);

        // Zeros (an extended but unwritten tail) are a bad CRC, not an empty entry.
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 16]);
        let scan = scan_log(&zeros);
        assert_eq!(scan.entries.len(), 3);
        assert_eq!(scan.valid_len, whole as u64);
    }

    #[test]
    fn snapshot_file_round_trips_and_detects_damage() {
        let snap = SnapshotFile {
            index: 7,
            term: 2,
            data: b"image".to_vec(),
        };
        let bytes = encode_snapshot(&snap);
        assert_eq!(decode_snapshot(&bytes), Ok(Some(snap)));
        assert_eq!(decode_snapshot(&[]), Ok(None));
        let mut bad = bytes.clone();
        bad[15] ^= 1;
        assert!(decode_snapshot(&bad).is_err());
        assert!(decode_snapshot(&bytes[..5]).is_err());
    }
}
