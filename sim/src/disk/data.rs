//! File contents: the unsynced changes of one file, and what a crash (or a failed fsync) makes of
//! them.
//!
//! A file has a *durable* image (what the platters hold) and, on top, its unsynced changes in the
//! order they were made; what reads see is the durable image with every change applied. At a power
//! crash each change has its own fate ([`Fate`]): a write is kept whole, dropped, or torn (only a
//! prefix of its 512-byte sectors lands: the cut is a multiple of 512 *in file offsets*, strictly
//! inside the write); a `set_len` is kept or dropped. The surviving changes are then applied to the
//! durable image **in the order they were made**, so a later write that survives overwrites an
//! earlier one, and a later write may survive while an earlier one is lost. (Issue order is also
//! what write-back of a page cache produces: it writes a page's newest contents.)

use rand::Rng;

/// Disk sector size: the unit a torn write is cut at.
pub const SECTOR: u64 = 512;

/// An unsynced change to a file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DataOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl DataOp {
    pub fn apply(&self, image: &mut Vec<u8>) {
        match self {
            DataOp::Write { offset, data } => write_into(image, *offset, data),
            DataOp::SetLen(len) => image.resize(to_usize(*len), 0),
        }
    }

    pub fn describe(&self) -> Change {
        match self {
            DataOp::Write { offset, data } => Change::Write {
                offset: *offset,
                len: data.len() as u64,
            },
            DataOp::SetLen(len) => Change::SetLen { len: *len },
        }
    }
}

/// A public description of an unsynced change (without its bytes), for crash reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Write { offset: u64, len: u64 },
    SetLen { len: u64 },
}

/// What a crash made of one unsynced change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Kept,
    Dropped,
    /// Only the first `landed` bytes of the write reached the disk; `offset + landed` is a multiple
    /// of [`SECTOR`] and `0 < landed < len`.
    Torn {
        landed: u64,
    },
}

/// How hard a crash hits unsynced data: drawn once per crash so that runs see everything from
/// "nearly all written back" to "nearly all lost".
#[derive(Debug, Clone, Copy)]
pub(super) struct Severity {
    /// Chance that a change not torn is kept.
    pub keep: f64,
    /// Chance that a write that spans a sector boundary is torn.
    pub tear: f64,
}

impl Severity {
    pub fn draw<R: Rng + ?Sized>(rng: &mut R) -> Severity {
        Severity {
            keep: rng.random_range(0.0..=1.0),
            tear: 0.25,
        }
    }
}

/// Applies the surviving part of `pending` to `durable`; returns each change with its fate.
pub(super) fn resolve<R: Rng + ?Sized>(
    durable: &mut Vec<u8>,
    pending: Vec<DataOp>,
    severity: Severity,
    rng: &mut R,
) -> Vec<(Change, Fate)> {
    let mut out = Vec::with_capacity(pending.len());
    for op in pending {
        let fate = match &op {
            DataOp::Write { offset, data } => {
                let cuts = tear_points(*offset, data.len() as u64);
                if cuts > 0 && rng.random_bool(severity.tear) {
                    let first = first_boundary_after(*offset);
                    let cut = first + SECTOR * rng.random_range(0..cuts);
                    let landed = cut - offset;
                    write_into(durable, *offset, &data[..to_usize(landed)]);
                    Fate::Torn { landed }
                } else if rng.random_bool(severity.keep) {
                    op.apply(durable);
                    Fate::Kept
                } else {
                    Fate::Dropped
                }
            }
            DataOp::SetLen(_) => {
                if rng.random_bool(severity.keep) {
                    op.apply(durable);
                    Fate::Kept
                } else {
                    Fate::Dropped
                }
            }
        };
        out.push((op.describe(), fate));
    }
    out
}

/// The smallest multiple of [`SECTOR`] strictly greater than `offset`.
fn first_boundary_after(offset: u64) -> u64 {
    (offset / SECTOR + 1) * SECTOR
}

/// How many sector boundaries lie strictly inside `[offset, offset + len)`: the places a write can
/// be torn.
pub(super) fn tear_points(offset: u64, len: u64) -> u64 {
    let end = offset + len;
    let first = first_boundary_after(offset);
    if first >= end {
        0
    } else {
        (end - 1 - first) / SECTOR + 1
    }
}

pub(super) fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_usize(offset);
    let end = start + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

/// File offsets in the simulation fit in memory, so in `usize`.
pub(super) fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("simulated file sizes fit in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tear_points_are_interior_sector_boundaries() {
        assert_eq!(tear_points(0, 512), 0, "one whole sector cannot tear");
        assert_eq!(tear_points(0, 513), 1);
        assert_eq!(tear_points(100, 412), 0, "ends exactly on a boundary");
        assert_eq!(tear_points(100, 413), 1);
        assert_eq!(tear_points(511, 2), 1);
        assert_eq!(tear_points(0, 4096), 7);
        assert_eq!(tear_points(1000, 0), 0);
    }
}
