//! The model of `log_cleaner`: every keyed record written to the log, by offset, and the times
//! of the cleanings, and the check of what a consumer reading the log from its start gets.

use std::collections::BTreeMap;

use bytes::Bytes;
use strata_core::Offset;
use strata_core::batch::{BatchHeader, build_batch_with_producer};
use strata_core::log::PartitionLog;
use strata_core::record::{Record, decode_batch, encode_batch};

use crate::image;

/// One record as written: its key (an index into a small set) and its value (unique per
/// record; `None`: a tombstone), and which write it was (the count of records before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub key: u8,
    pub value: Option<u32>,
    pub serial: u64,
}

/// What the log must reflect.
#[derive(Debug, Default)]
pub struct Model {
    /// Every record written and not truncated or lost in a crash, by offset.
    pub written: BTreeMap<Offset, Written>,
    /// Records written so far (the next `serial`), and values handed out.
    pub serials: u64,
    /// `(serials when it began, now)` of every cleaning begun, in order.
    pub cleanings: Vec<(u64, i64)>,
}

pub fn key_bytes(key: u8) -> Bytes {
    Bytes::from(format!("k{key}"))
}

pub fn value_bytes(value: u32) -> Bytes {
    Bytes::from(format!("v{value}"))
}

/// A batch of keyed records `(key, value)` at timestamp `ts`, compressed with `codec` (0-4),
/// of producer `(id, epoch, base sequence)` or none.
pub fn keyed_batch(
    records: &[(u8, Option<u32>)],
    ts: i64,
    producer: Option<(i64, i16, i32)>,
    codec: i16,
) -> Vec<u8> {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let template = build_batch_with_producer(&[(b"x", None)], ts, pid, epoch, seq);
    let mut header = BatchHeader::parse(&template).expect("a built batch parses");
    header.last_offset_delta = i32::try_from(records.len()).expect("a few records") - 1;
    header.attributes |= codec;
    let recs: Vec<Record> = records
        .iter()
        .zip(0..)
        .map(|((k, v), i)| Record {
            offset: Offset(i),
            timestamp: ts,
            attributes: 0,
            key: Some(key_bytes(*k)),
            value: v.map(value_bytes),
            headers: Vec::new(),
        })
        .collect();
    encode_batch(&header, &recs, None).expect("encoding records of a valid batch")
}

impl Model {
    /// Records an append of `records` (their values already counted in `serials`) at `first`.
    pub fn append(&mut self, first: Offset, records: &[(u8, Option<u32>)]) {
        for (i, (key, value)) in (0..).zip(records) {
            self.written.insert(
                Offset(first.0 + i),
                Written {
                    key: *key,
                    value: *value,
                    serial: self.serials,
                },
            );
            self.serials += 1;
        }
    }

    /// Forgets every record at or above `end` (a truncation, or a crash's lost tail).
    pub fn cut(&mut self, end: Offset) {
        self.written.retain(|o, _| *o < end);
    }

    /// The newest write of every key, with its offset.
    fn newest(&self) -> BTreeMap<u8, (Offset, Written)> {
        let mut newest = BTreeMap::new();
        for (o, w) in &self.written {
            newest.insert(w.key, (*o, *w));
        }
        newest
    }

    /// Whether a tombstone written as `serial` may be gone: some cleaning that began after it
    /// (which may have given its batch a horizon of that cleaning's time plus
    /// `delete.retention.ms`) was followed by one at or past that horizon.
    fn may_expire(&self, serial: u64, delete_retention_ms: i64) -> bool {
        let Some(&(_, first)) = self.cleanings.iter().find(|(s, _)| *s > serial) else {
            return false;
        };
        self.cleanings
            .iter()
            .any(|(_, t)| *t >= first.saturating_add(delete_retention_ms))
    }

    /// The properties of a full read of `log` from its start (module docs of `log_cleaner`):
    /// whole CRC-valid batches with offsets strictly increasing (`image::read_all`), every
    /// record as written at its offset, and for every key the newest write — a tombstone
    /// possibly gone once it may have expired. Returns how many keys' tombstones were gone.
    pub fn check(&self, log: &PartitionLog) -> usize {
        let served = image::read_all(log, image::no_corruption);
        let mut last: BTreeMap<u8, Offset> = BTreeMap::new();
        for b in &served {
            let decoded = decode_batch(&b.bytes).expect("a served batch decodes");
            for r in decoded.records {
                let w = self.written.get(&r.offset).unwrap_or_else(|| {
                    panic!("record at {} was never written (or was lost)", r.offset)
                });
                assert_eq!(r.key, Some(key_bytes(w.key)), "key at {}", r.offset);
                assert_eq!(r.value, w.value.map(value_bytes), "value at {}", r.offset);
                last.insert(w.key, r.offset);
            }
        }
        let retention = log.config().delete_retention_ms;
        let mut expired = 0;
        for (key, (offset, w)) in self.newest() {
            match (last.get(&key), w.value) {
                (Some(seen), _) => assert_eq!(
                    *seen, offset,
                    "k{key}: the read ends at offset {seen}, its newest write is at {offset}"
                ),
                (None, Some(_)) => panic!("k{key}: its newest value (offset {offset}) is gone"),
                (None, None) => {
                    assert!(
                        self.may_expire(w.serial, retention),
                        "k{key}: its tombstone at {offset} is gone before any horizon passed"
                    );
                    expired += 1;
                }
            }
        }
        expired
    }
}
