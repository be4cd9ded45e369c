//! The cleaner's pieces on their own: the offset map, the checkpoint file, the swap marker, the
//! grouping of sources, and the survival rules on hand-made batches.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::super::checkpoint::{
    CLEANER_CHECKPOINT, read_cleaner_checkpoint, truncate_cleaner_checkpoint,
    write_cleaner_checkpoint,
};
use super::super::offset_map::{ENTRY_OVERHEAD, OffsetMap};
use super::super::records::{Record, decode_batch, delete_horizon};
use super::super::retain::{BatchFate, RetainRules, RetainStats};
use super::super::swap::{SwapGroup, SwapMarker};
use super::super::task::{SourceSegment, group_sources};
use super::*;
use crate::storage::{MemStorage, StorageFile};

fn key(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn the_offset_map_keeps_each_keys_newest_offset() {
    let mut map = OffsetMap::new(Offset(10), BIG_BUDGET);
    let (a, b) = (key("a"), key("b"));
    assert!(map.add_batch([(&a, Offset(10)), (&b, Offset(11))].into_iter(), Offset(12)));
    assert!(map.add_batch([(&a, Offset(15))].into_iter(), Offset(16)));
    assert_eq!(map.latest(b"a"), Some(Offset(15)));
    assert_eq!(map.latest(b"b"), Some(Offset(11)));
    assert_eq!(map.latest(b"c"), None);
    assert_eq!(
        (map.start(), map.end(), map.len()),
        (Offset(10), Offset(16), 2)
    );
}

#[test]
fn a_full_offset_map_refuses_a_batch_whole_but_never_the_first() {
    let per_key = 1 + ENTRY_OVERHEAD;
    let mut map = OffsetMap::new(Offset(0), 2 * per_key);
    let keys: Vec<Bytes> = ["a", "b", "c", "d"].iter().map(|k| key(k)).collect();
    // The first batch is taken even over budget: a cleaning always progresses.
    let mut tiny = OffsetMap::new(Offset(0), 1);
    assert!(tiny.add_batch(
        [(&keys[0], Offset(0)), (&keys[1], Offset(1))].into_iter(),
        Offset(2)
    ));
    assert!(map.add_batch([(&keys[0], Offset(0))].into_iter(), Offset(1)));
    // Known keys cost nothing more.
    assert!(map.add_batch([(&keys[0], Offset(1))].into_iter(), Offset(2)));
    // Two new keys do not fit: refused, nothing changes.
    assert!(!map.add_batch(
        [(&keys[1], Offset(2)), (&keys[2], Offset(3))].into_iter(),
        Offset(4)
    ));
    assert_eq!(
        (map.end(), map.len(), map.latest(b"b")),
        (Offset(2), 1, None)
    );
    assert!(map.add_batch(
        [(&keys[1], Offset(2)), (&keys[1], Offset(3))].into_iter(),
        Offset(4)
    ));
    assert_eq!(
        (map.used_bytes(), map.latest(b"b")),
        (2 * per_key, Some(Offset(3)))
    );
}

#[test]
fn the_cleaner_checkpoint_round_trips_and_bad_files_read_as_none() {
    let s = MemStorage::new();
    assert_eq!(read_cleaner_checkpoint(&s, &dir()), None);
    write_cleaner_checkpoint(&s, &dir(), Offset(1234)).expect("write");
    assert_eq!(read_cleaner_checkpoint(&s, &dir()), Some(Offset(1234)));
    let path = dir().join(CLEANER_CHECKPOINT);
    for bad in ["", "0\n", "1\n5\n", "0\n-3\n", "0\nx\n", "0\n5\n6\n"] {
        s.file(&path)
            .expect("file")
            .replace(bad.as_bytes().to_vec());
        assert_eq!(read_cleaner_checkpoint(&s, &dir()), None, "{bad:?}");
    }
}

#[test]
fn a_truncation_below_the_cleaner_checkpoint_lowers_it() {
    let s = MemStorage::new();
    truncate_cleaner_checkpoint(&s, &dir(), Offset(5)).expect("no file: nothing to do");
    assert_eq!(read_cleaner_checkpoint(&s, &dir()), None);
    write_cleaner_checkpoint(&s, &dir(), Offset(100)).expect("write");
    truncate_cleaner_checkpoint(&s, &dir(), Offset(100)).expect("at the end: kept");
    assert_eq!(read_cleaner_checkpoint(&s, &dir()), Some(Offset(100)));
    truncate_cleaner_checkpoint(&s, &dir(), Offset(60)).expect("lowered");
    assert_eq!(read_cleaner_checkpoint(&s, &dir()), Some(Offset(60)));
}

fn marker() -> SwapMarker {
    SwapMarker {
        groups: vec![
            SwapGroup {
                sources: vec![Offset(0), Offset(40), Offset(77)],
                has_output: true,
            },
            SwapGroup {
                sources: vec![Offset(120)],
                has_output: false,
            },
        ],
    }
}

#[test]
fn a_swap_marker_round_trips_and_any_torn_or_changed_one_is_invalid() {
    let m = marker();
    let bytes = m.encode();
    assert_eq!(SwapMarker::decode(&bytes), Some(m.clone()));
    assert_eq!(m.path(&dir()), dir().join("00000000000000000000.swap"));
    for len in 0..bytes.len() {
        assert_eq!(
            SwapMarker::decode(&bytes[..len]),
            None,
            "prefix of {len} bytes"
        );
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        assert_eq!(SwapMarker::decode(&b), None, "byte {i} flipped");
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"group 1 1 1\n");
    assert_eq!(SwapMarker::decode(&longer), None);
}

fn source(base: i64, end: i64, size: u64) -> SourceSegment {
    let log: Arc<dyn StorageFile> = MemStorage::new().open(&dir().join("x")).expect("open");
    SourceSegment {
        base_offset: Offset(base),
        log,
        size,
        end: Offset(end),
        offset_index_bytes: 8,
        time_index_bytes: 12,
    }
}

#[test]
fn sources_are_grouped_within_segment_bytes_index_bytes_and_relative_offsets() {
    let ranges = |groups: Vec<super::super::task::Group>| -> Vec<std::ops::Range<usize>> {
        groups.into_iter().map(|g| g.sources).collect()
    };
    let s = vec![
        source(0, 10, 400),
        source(10, 20, 500),
        source(20, 30, 200),
        source(30, 40, 900),
    ];
    assert_eq!(
        ranges(group_sources(&s, 1_000, 1 << 20)),
        vec![0..2, 2..3, 3..4]
    );
    assert_eq!(ranges(group_sources(&s, 10_000, 1 << 20)), vec![0..4]);
    // Index files: 8 bytes of `.index` per source here; 16 allow two sources.
    assert_eq!(ranges(group_sources(&s, 10_000, 24)), vec![0..2, 2..4]);
    let far = vec![source(0, 10, 1), source(10, i64::from(i32::MAX) + 1, 1)];
    assert_eq!(
        ranges(group_sources(&far, 10_000, 1 << 20)),
        vec![0..1, 1..2]
    );
}

fn rules<'a>(map: &'a OffsetMap, now: i64, last: &'a BTreeSet<Offset>) -> RetainRules<'a> {
    RetainRules {
        map,
        now_ms: now,
        delete_retention_ms: 100,
        producer_last_offsets: last,
    }
}

/// A batch at `base` and its decoded records.
fn at(base: i64, records: &[Kv], pid: i64) -> (BatchHeader, Vec<Record>) {
    let mut raw = kbatch_with(records, 5, pid, if pid >= 0 { 0 } else { -1 }, 0);
    crate::batch::assign_offset(&mut raw, Offset(base), EPOCH);
    let d = decode_batch(&raw).expect("decode");
    (d.header, d.records)
}

fn map_of(entries: &[(&str, i64)], end: i64) -> OffsetMap {
    let mut map = OffsetMap::new(Offset(0), BIG_BUDGET);
    let keys: Vec<(Bytes, Offset)> = entries.iter().map(|(k, o)| (key(k), Offset(*o))).collect();
    for (k, o) in &keys {
        assert!(map.add_batch([(k, *o)].into_iter(), o.next()));
    }
    map.cover_to(Offset(end));
    map
}

#[test]
fn superseded_and_keyless_records_go_the_rest_is_copied_verbatim() {
    let map = map_of(&[("b", 3), ("a", 12)], 20);
    let none = BTreeSet::new();
    let mut stats = RetainStats::default();
    let (h, recs) = at(
        10,
        &[
            (Some("a"), Some("1")),
            (None, Some("2")),
            (Some("b"), Some("3")),
        ],
        -1,
    );
    let BatchFate::Rewrite {
        records,
        delete_horizon_ms,
    } = rules(&map, 0, &none).judge(&h, recs, &mut stats)
    else {
        panic!("a superseded and a keyless record go");
    };
    assert_eq!(kvs(&records), vec![(Some("b".into()), Some("3".into()))]);
    assert_eq!(records[0].offset, Offset(12));
    assert_eq!(delete_horizon_ms, None);
    assert_eq!((stats.superseded, stats.keyless), (1, 1));
    let (h, recs) = at(12, &[(Some("a"), Some("1"))], -1);
    assert_eq!(
        rules(&map, 0, &none).judge(&h, recs, &mut stats),
        BatchFate::Verbatim
    );
    let (h, recs) = at(0, &[(Some("a"), Some("1")), (Some("b"), Some("0"))], -1);
    assert_eq!(
        rules(&map, 0, &none).judge(&h, recs, &mut stats),
        BatchFate::Drop
    );
}

#[test]
fn tombstones_get_a_horizon_under_the_map_and_go_once_it_passed() {
    let none = BTreeSet::new();
    let mut stats = RetainStats::default();
    let map = map_of(&[("a", 5)], 10);
    let (h, recs) = at(5, &[(Some("a"), None)], -1);
    let fate = rules(&map, 1_000, &none).judge(&h, recs.clone(), &mut stats);
    assert_eq!(
        fate,
        BatchFate::Rewrite {
            records: recs.clone(),
            delete_horizon_ms: Some(1_100)
        },
        "KIP-534: horizon = now + delete.retention.ms"
    );
    // Beyond the map's end the horizon waits (see the module docs).
    let short = map_of(&[("x", 1)], 5);
    assert_eq!(
        rules(&short, 1_000, &none).judge(&h, recs.clone(), &mut stats),
        BatchFate::Verbatim
    );
    // With a horizon: kept before it, dropped from it on.
    let header = BatchHeader::parse(
        &super::super::records::encode_batch(&h, &recs, Some(1_100)).expect("encode"),
    )
    .expect("parse");
    assert_eq!(delete_horizon(&header), Some(1_100));
    assert_eq!(
        rules(&map, 1_099, &none).judge(&header, recs.clone(), &mut stats),
        BatchFate::Verbatim
    );
    assert_eq!(
        rules(&map, 1_100, &none).judge(&header, recs, &mut stats),
        BatchFate::Drop
    );
    assert_eq!(stats.expired_tombstones, 1);
}

#[test]
fn a_producers_last_batch_is_kept_empty_and_control_batches_are_kept() {
    let map = map_of(&[("a", 9)], 10);
    let (h, recs) = at(3, &[(Some("a"), Some("1")), (Some("a"), Some("2"))], 7);
    let mut stats = RetainStats::default();
    let last: BTreeSet<Offset> = [Offset(4)].into();
    assert_eq!(
        rules(&map, 0, &last).judge(&h, recs.clone(), &mut stats),
        BatchFate::Rewrite {
            records: vec![],
            delete_horizon_ms: None
        }
    );
    let other: BTreeSet<Offset> = [Offset(8)].into();
    assert_eq!(
        rules(&map, 0, &other).judge(&h, recs.clone(), &mut stats),
        BatchFate::Drop
    );
    let mut control = h;
    control.attributes |= 1 << 5;
    assert_eq!(
        rules(&map, 0, &other).judge(&control, recs, &mut stats),
        BatchFate::Verbatim
    );
}
