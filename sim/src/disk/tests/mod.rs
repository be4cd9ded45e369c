//! Tests of the disk model itself: each names the property of the module docs it checks, and
//! each can fail (the `seeds_until` helpers assert an outcome *is* reached, not just allowed).

mod log;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use strata_core::storage::{Storage, StorageFile, read_vec};

use super::*;

const DIR: &str = "/data/t-0";

fn p(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// A disk with `DIR` created.
fn disk(seed: u64) -> (SimDisk, Arc<dyn Storage>) {
    let d = SimDisk::new(seed);
    let s = d.storage();
    s.create_dir_all(Path::new(DIR)).expect("mkdir");
    (d, s)
}

/// Opens `name` in `DIR` and makes its creation durable.
fn durable_file(s: &dyn Storage, name: &str) -> Arc<dyn StorageFile> {
    let f = s.open(&p(name)).expect("open");
    s.sync_dir(Path::new(DIR)).expect("sync dir");
    f
}

fn read_all(f: &dyn StorageFile) -> Vec<u8> {
    let len = usize::try_from(f.len().expect("len")).expect("small");
    read_vec(f, 0, len).expect("read")
}

fn crash(d: &SimDisk, seed: u64) -> CrashReport {
    let r = d.crash(&mut StdRng::seed_from_u64(seed));
    d.check_invariants();
    r
}

// ----- Page cache -----

#[test]
fn writes_are_visible_at_once_and_durable_only_after_sync_data() {
    let (d, s) = disk(1);
    let f = durable_file(&*s, "a.log");
    f.write_at(b"hello", 0).expect("write");
    assert_eq!(read_all(&*f), b"hello", "visible at once");
    assert_eq!(d.visible_contents(&p("a.log")).expect("named"), b"hello");
    assert_eq!(d.durable_contents(&p("a.log")).expect("durably named"), b"");
    assert_eq!(d.unsynced_changes(&p("a.log")), Some(1));
    f.set_len(3).expect("set_len");
    assert_eq!(read_all(&*f), b"hel", "set_len visible at once");
    f.sync_data().expect("sync");
    assert_eq!(d.durable_contents(&p("a.log")).expect("named"), b"hel");
    assert_eq!(d.unsynced_changes(&p("a.log")), Some(0));
}

#[test]
fn synced_writes_survive_every_crash() {
    for seed in 0..200 {
        let (d, s) = disk(seed);
        let f = durable_file(&*s, "a.log");
        f.write_at(&[7u8; 3000], 100).expect("write");
        f.sync_data().expect("sync");
        f.write_at(&[9u8; 1000], 5000).expect("unsynced write");
        crash(&d, seed);
        let after = d.durable_contents(&p("a.log")).expect("file survives");
        assert!(after.len() >= 3100, "seed {seed}: synced bytes lost");
        assert_eq!(&after[100..3100], &[7u8; 3000][..], "seed {seed}");
        assert_eq!(d.visible_contents(&p("a.log")), Some(after), "seed {seed}");
    }
}

#[test]
fn the_worst_crash_loses_every_unsynced_change_and_nothing_synced() {
    let (d, s) = disk(1);
    let f = durable_file(&*s, "a.log");
    f.write_at(&[7u8; 3000], 0).expect("write");
    f.sync_data().expect("sync");
    f.write_at(&[9u8; 1000], 3000).expect("unsynced write");
    f.write_at(&[8u8; 10], 0).expect("unsynced overwrite");
    let created = s.open(&p("new.log")).expect("open");
    created.write_at(b"y", 0).expect("write");
    created.sync_data().expect("data sync, not the name");
    let r = d.crash_losing_unsynced();
    d.check_invariants();
    assert_eq!(
        d.durable_contents(&p("a.log")),
        Some(vec![7u8; 3000]),
        "synced bytes kept, unsynced ones all dropped"
    );
    assert_eq!(d.visible_contents(&p("a.log")), Some(vec![7u8; 3000]));
    assert!(
        d.visible_contents(&p("new.log")).is_none(),
        "unsynced creation lost"
    );
    assert!(r.dir_ops.iter().all(|o| !o.kept), "{r:?}");
    let fates: Vec<_> = r.files.iter().flat_map(|f| f.changes.iter()).collect();
    assert_eq!(fates.len(), 2, "{r:?}");
    assert!(
        fates.iter().all(|(_, fate)| *fate == Fate::Dropped),
        "{r:?}"
    );
}

/// Runs `f` over seeds until it returns true; fails if no seed of 500 does.
fn seeds_until(what: &str, mut f: impl FnMut(u64) -> bool) {
    assert!((0..500).any(&mut f), "no seed of 500 showed: {what}");
}

// ----- Crash: torn writes -----

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, len: usize },
    SetLen(u64),
    Sync,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..6000, 0usize..2500).prop_map(|(offset, len)| Op::Write { offset, len }),
        1 => (0u64..6000).prop_map(Op::SetLen),
        1 => Just(Op::Sync),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After a crash a file is its durable image plus, for each unsynced change in the order
    /// made, nothing, all of it, or (for a write) a prefix ending on a 512-byte file offset.
    /// Checked by replaying the crash report on an independent copy of the durable image.
    #[test]
    fn crash_result_is_durable_image_plus_kept_dropped_or_sector_torn_changes(
        ops in prop::collection::vec(op_strategy(), 1..30),
        seed in any::<u64>(),
    ) {
        let (d, s) = disk(seed);
        let f = durable_file(&*s, "a.log");
        let mut durable: Vec<u8> = Vec::new();
        let mut unsynced: Vec<(Change, Vec<u8>)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Write { offset, len } => {
                    let bytes: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8 | 1).collect();
                    f.write_at(&bytes, offset).expect("write");
                    unsynced.push((Change::Write { offset, len: len as u64 }, bytes));
                }
                Op::SetLen(len) => {
                    f.set_len(len).expect("set_len");
                    unsynced.push((Change::SetLen { len }, Vec::new()));
                }
                Op::Sync => {
                    f.sync_data().expect("sync");
                    durable = read_all(&*f);
                    unsynced.clear();
                }
            }
        }
        prop_assert_eq!(d.durable_contents(&p("a.log")).expect("named"), durable.clone());
        let report = crash(&d, seed);
        let mut expect = durable;
        if unsynced.is_empty() {
            prop_assert!(report.files.is_empty());
        } else {
            prop_assert_eq!(report.files.len(), 1);
            let fc = &report.files[0];
            prop_assert_eq!(fc.path.clone(), Some(p("a.log")));
            prop_assert_eq!(fc.changes.len(), unsynced.len());
            for ((change, fate), (issued, bytes)) in fc.changes.iter().zip(&unsynced) {
                prop_assert_eq!(change, issued, "the report lists changes in the order made");
                match (*issued, *fate) {
                    (_, Fate::Dropped) => {}
                    (Change::Write { offset, .. }, Fate::Kept) => write(&mut expect, offset, bytes),
                    (Change::SetLen { len }, Fate::Kept) => expect.resize(len as usize, 0),
                    (Change::Write { offset, len }, Fate::Torn { landed }) => {
                        prop_assert!(landed > 0 && landed < len, "torn strictly inside");
                        prop_assert_eq!((offset + landed) % SECTOR, 0, "torn at a sector boundary");
                        write(&mut expect, offset, &bytes[..landed as usize]);
                    }
                    (Change::SetLen { .. }, Fate::Torn { .. }) => prop_assert!(false, "set_len torn"),
                }
            }
        }
        prop_assert_eq!(d.durable_contents(&p("a.log")).expect("named"), expect.clone());
        prop_assert_eq!(d.visible_contents(&p("a.log")).expect("named"), expect);
    }

    /// The same property without trusting the report: writes to disjoint regions of a file whose
    /// old contents are synced each show, after a crash, a prefix of new bytes of length 0, the
    /// whole write, or one ending on a 512-byte boundary, followed by the old bytes.
    #[test]
    fn each_disjoint_write_lands_whole_not_at_all_or_sector_torn(
        lens in prop::collection::vec((0usize..700, 1usize..1500), 1..8),
        seed in any::<u64>(),
    ) {
        let (d, s) = disk(seed);
        let f = durable_file(&*s, "a.log");
        let mut regions = Vec::new();
        let mut at = 0u64;
        for &(gap, len) in &lens {
            regions.push((at + gap as u64, len));
            at += (gap + len) as u64;
        }
        f.write_at(&vec![0xAA; at as usize], 0).expect("old contents");
        f.sync_data().expect("sync");
        for (i, &(offset, len)) in regions.iter().enumerate() {
            f.write_at(&vec![i as u8; len], offset).expect("write");
        }
        crash(&d, seed);
        let after = d.durable_contents(&p("a.log")).expect("named");
        prop_assert_eq!(after.len() as u64, at, "no change of length");
        for (i, &(offset, len)) in regions.iter().enumerate() {
            let region = &after[offset as usize..offset as usize + len];
            let landed = region.iter().take_while(|&&b| b == i as u8).count();
            prop_assert!(region[landed..].iter().all(|&b| b == 0xAA), "write {} is not a prefix", i);
            let end = offset + landed as u64;
            prop_assert!(
                landed == 0 || landed == len || end.is_multiple_of(SECTOR),
                "write {} at {} tore after {} bytes, not on a sector boundary", i, offset, landed
            );
        }
    }
}

fn write(image: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = offset as usize;
    if image.len() < start + bytes.len() {
        image.resize(start + bytes.len(), 0);
    }
    image[start..start + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn crashes_show_every_fate_including_torn() {
    let mut seen = [false; 3];
    for seed in 0..200 {
        let (d, s) = disk(seed);
        let f = durable_file(&*s, "a.log");
        f.write_at(&[1u8; 2048], 100).expect("write");
        let r = crash(&d, seed);
        let fate = r.files[0].changes[0].1;
        let i = match fate {
            Fate::Kept => 0,
            Fate::Dropped => 1,
            Fate::Torn { landed } => {
                assert!([412, 924, 1436, 1948].contains(&landed), "landed {landed}");
                2
            }
        };
        seen[i] = true;
    }
    assert_eq!(seen, [true; 3], "kept, dropped and torn all happen");
}

#[test]
fn a_later_write_can_survive_an_earlier_lost_one() {
    seeds_until("second write kept, first dropped", |seed| {
        let (d, s) = disk(seed);
        let f = durable_file(&*s, "a.log");
        f.write_at(&[0u8; 1024], 0).expect("write");
        f.sync_data().expect("sync");
        f.write_at(&[1u8; 512], 0).expect("first");
        f.write_at(&[2u8; 512], 512).expect("second");
        crash(&d, seed);
        let after = d.durable_contents(&p("a.log")).expect("named");
        after[..512] == [0u8; 512] && after[512..] == [2u8; 512]
    });
}

// ----- Crash: directory changes -----

#[test]
fn a_created_file_can_vanish_without_sync_dir_and_cannot_with_it() {
    let mut vanished = false;
    for seed in 0..200 {
        let (d, s) = disk(seed);
        let synced = durable_file(&*s, "kept.log");
        synced.write_at(b"x", 0).expect("write");
        synced.sync_data().expect("sync");
        let f = s.open(&p("maybe.log")).expect("open");
        f.write_at(b"y", 0).expect("write");
        f.sync_data()
            .expect("data sync does not make the name durable");
        crash(&d, seed);
        assert_eq!(
            d.durable_contents(&p("kept.log")),
            Some(b"x".to_vec()),
            "seed {seed}"
        );
        let names = d.storage().list_dir(Path::new(DIR)).expect("list");
        assert!(names.contains(&"kept.log".to_string()), "seed {seed}");
        vanished |= !names.contains(&"maybe.log".to_string());
    }
    assert!(vanished, "an unsynced creation never vanished");
}

#[test]
fn a_rename_without_sync_dir_can_revert_and_never_half_happens() {
    let mut reverted = false;
    let mut landed = false;
    for seed in 0..200 {
        let (d, s) = disk(seed);
        let old = durable_file(&*s, "recovery-point");
        old.write_at(b"old", 0).expect("write");
        old.sync_data().expect("sync");
        let tmp = durable_file(&*s, "recovery-point.tmp");
        tmp.write_at(b"new", 0).expect("write");
        tmp.sync_data().expect("sync");
        s.rename(&p("recovery-point.tmp"), &p("recovery-point"))
            .expect("rename");
        crash(&d, seed);
        match d.durable_contents(&p("recovery-point")).as_deref() {
            Some(b"old") => {
                assert_eq!(
                    d.durable_contents(&p("recovery-point.tmp")).as_deref(),
                    Some(&b"new"[..])
                );
                reverted = true;
            }
            Some(b"new") => {
                assert_eq!(
                    d.durable_contents(&p("recovery-point.tmp")),
                    None,
                    "seed {seed}"
                );
                landed = true;
            }
            other => panic!("seed {seed}: recovery-point is {other:?}"),
        }
    }
    assert!(reverted && landed, "reverted {reverted}, landed {landed}");
}

#[test]
fn a_synced_rename_always_survives() {
    for seed in 0..100 {
        let (d, s) = disk(seed);
        let tmp = durable_file(&*s, "a.tmp");
        tmp.write_at(b"new", 0).expect("write");
        tmp.sync_data().expect("sync");
        s.rename(&p("a.tmp"), &p("a")).expect("rename");
        s.sync_dir(Path::new(DIR)).expect("sync dir");
        crash(&d, seed);
        assert_eq!(d.durable_files(), vec![p("a")], "seed {seed}");
        assert_eq!(d.durable_contents(&p("a")).as_deref(), Some(&b"new"[..]));
    }
}

#[test]
fn directory_changes_survive_as_a_prefix_per_directory() {
    // create a, rename a -> b, create c: a crash keeps a prefix of these three.
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..300 {
        let (d, s) = disk(seed);
        s.open(&p("a")).expect("open");
        s.rename(&p("a"), &p("b")).expect("rename");
        s.open(&p("c")).expect("open");
        crash(&d, seed);
        let names = d.storage().list_dir(Path::new(DIR)).expect("list");
        let valid: [&[&str]; 4] = [&[], &["a"], &["b"], &["b", "c"]];
        assert!(
            valid.iter().any(|v| *v == names),
            "seed {seed}: {names:?} is not a prefix"
        );
        outcomes.insert(names);
    }
    assert_eq!(outcomes.len(), 4, "every prefix happens: {outcomes:?}");
}

#[test]
fn syncing_one_directory_leaves_another_unsynced() {
    seeds_until("the other directory's creation lost", |seed| {
        let (d, s) = disk(seed);
        s.create_dir_all(Path::new("/data/t-1")).expect("mkdir");
        s.open(&p("a")).expect("open");
        s.open(Path::new("/data/t-1/b")).expect("open");
        s.sync_dir(Path::new("/data/t-1")).expect("sync");
        crash(&d, seed);
        assert!(
            d.durable_files().contains(&PathBuf::from("/data/t-1/b")),
            "seed {seed}"
        );
        !d.durable_files().contains(&p("a"))
    });
}

#[test]
fn remove_dir_all_without_sync_can_come_back_whole() {
    let mut back = false;
    for seed in 0..100 {
        let (d, s) = disk(seed);
        let f = durable_file(&*s, "a.log");
        f.write_at(b"data", 0).expect("write");
        f.sync_data().expect("sync");
        s.remove_dir_all(Path::new(DIR)).expect("rm");
        assert!(
            s.list_dir(Path::new(DIR))
                .is_err_and(|e| e.kind() == ErrorKind::NotFound)
        );
        crash(&d, seed);
        match d.durable_contents(&p("a.log")) {
            Some(c) => {
                assert_eq!(c, b"data");
                back = true;
            }
            None => assert!(d.storage().list_dir(Path::new(DIR)).is_err(), "seed {seed}"),
        }
    }
    assert!(back);
}

// ----- Kill versus power loss, stale handles -----

#[test]
fn stale_handles_and_views_fail_after_a_crash_and_touch_nothing() {
    for power in [false, true] {
        let (d, s) = disk(5);
        let f = durable_file(&*s, "a.log");
        f.write_at(b"synced", 0).expect("write");
        f.sync_data().expect("sync");
        if power {
            crash(&d, 5);
        } else {
            d.crash_keep_all();
        }
        assert!(f.write_at(b"ZOMBIE", 0).is_err());
        assert!(f.set_len(0).is_err());
        assert!(f.sync_data().is_err());
        assert!(f.read_at(&mut [0u8; 4], 0).is_err());
        assert!(f.len().is_err());
        assert!(s.open(&p("zombie.log")).is_err());
        assert!(s.remove_file(&p("a.log")).is_err());
        assert!(s.list_dir(Path::new(DIR)).is_err());
        assert_eq!(d.stats().stale_calls, 8);
        let fresh = d.storage();
        assert_eq!(fresh.list_dir(Path::new(DIR)).expect("list"), vec!["a.log"]);
        let g = fresh.open(&p("a.log")).expect("open");
        assert_eq!(read_all(&*g), b"synced");
        d.check_invariants();
    }
}

#[test]
fn kill_keeps_unsynced_data_but_it_stays_unsynced() {
    let mut lost_later = false;
    for seed in 0..100 {
        let (d, s) = disk(seed);
        let f = durable_file(&*s, "a.log");
        f.write_at(&[3u8; 100], 0).expect("write");
        s.open(&p("new.log")).expect("open");
        d.crash_keep_all();
        let s2 = d.storage();
        assert_eq!(
            read_all(&*s2.open(&p("a.log")).expect("open")),
            vec![3u8; 100]
        );
        assert_eq!(
            s2.list_dir(Path::new(DIR)).expect("list"),
            vec!["a.log", "new.log"]
        );
        assert_eq!(
            d.unsynced_changes(&p("a.log")),
            Some(1),
            "still unsynced after a kill"
        );
        crash(&d, seed);
        lost_later |= d.durable_contents(&p("a.log")) != Some(vec![3u8; 100]);
    }
    assert!(
        lost_later,
        "a power crash after a kill never lost the unsynced write"
    );
}

// ----- Faults -----

#[test]
fn write_eio_fails_and_writes_nothing() {
    let (d, s) = disk(1);
    let f = durable_file(&*s, "a.log");
    d.fail_next_writes(1);
    let e = f.write_at(b"lost", 0).expect_err("EIO");
    assert_eq!(e.raw_os_error(), Some(5));
    assert_eq!(read_all(&*f), b"");
    f.write_at(b"ok", 0).expect("only one write fails");
    assert_eq!(d.stats().write_eio, 1);
    d.set_faults(DiskFaults {
        write_eio_probability: 1.0,
        ..Default::default()
    });
    assert!(f.write_at(b"x", 0).is_err());
}

#[test]
fn fsync_eio_is_reported_once_and_unsynced_data_may_be_lost_for_good() {
    let mut lost_despite_later_ok = false;
    for seed in 0..100 {
        let (d, s) = disk(seed);
        let f = durable_file(&*s, "a.log");
        f.write_at(&[1u8; 600], 0).expect("write");
        f.sync_data().expect("sync");
        f.write_at(&[2u8; 1400], 600).expect("write");
        d.fail_next_syncs(1);
        let e = f.sync_data().expect_err("EIO");
        assert_eq!(e.raw_os_error(), Some(5));
        assert_eq!(
            read_all(&*f).len(),
            2000,
            "the page cache still shows the data"
        );
        f.sync_data().expect("the error is reported once");
        assert_eq!(d.unsynced_changes(&p("a.log")), Some(0));
        d.check_invariants();
        crash(&d, seed);
        let after = d.durable_contents(&p("a.log")).expect("named");
        assert_eq!(
            &after[..600],
            &[1u8; 600][..],
            "seed {seed}: synced data lost"
        );
        lost_despite_later_ok |= after.len() < 2000 || after[600..] != [2u8; 1400];
    }
    assert!(lost_despite_later_ok, "fsync EIO never lost data");
}

#[test]
fn sync_dir_eio_is_reported_and_may_lose_the_change() {
    seeds_until(
        "creation lost after sync_dir EIO and a later good sync_dir",
        |seed| {
            let (d, s) = disk(seed);
            s.open(&p("a")).expect("open");
            d.fail_next_syncs(1);
            assert_eq!(
                s.sync_dir(Path::new(DIR)).expect_err("EIO").raw_os_error(),
                Some(5)
            );
            s.sync_dir(Path::new(DIR)).expect("reported once");
            assert_eq!(d.unsynced_dir_ops(), 0);
            crash(&d, seed);
            d.durable_files().is_empty()
        },
    );
}

#[test]
fn enospc_at_capacity_and_room_again_after_removal_or_truncation() {
    let (d, s) = disk(1);
    d.set_faults(DiskFaults {
        capacity: Some(1000),
        ..Default::default()
    });
    let a = s.open(&p("a")).expect("open");
    let b = s.open(&p("b")).expect("open");
    a.write_at(&[1; 600], 0).expect("fits");
    let e = b.write_at(&[2; 500], 0).expect_err("full");
    assert_eq!(e.kind(), ErrorKind::StorageFull);
    assert_eq!(e.raw_os_error(), Some(28));
    assert!(b.set_len(500).is_err_and(|e| e.raw_os_error() == Some(28)));
    assert_eq!(read_all(&*b), b"", "a failed write changes nothing");
    a.write_at(&[3; 600], 0).expect("overwriting needs no room");
    b.write_at(&[2; 400], 0).expect("exactly full");
    assert_eq!(d.used_bytes(), 1000);
    a.set_len(100).expect("truncate");
    b.write_at(&[2; 500], 400).expect("truncation freed room");
    assert!(b.write_at(&[2; 1], 900).is_err());
    s.remove_file(&p("a")).expect("rm");
    b.write_at(&[2; 100], 900).expect("removal freed room");
    assert_eq!(d.stats().enospc, 3);
}

#[test]
fn read_bitflips_change_one_bit_of_the_buffer_never_the_stored_data() {
    let (d, s) = disk(9);
    let f = durable_file(&*s, "a.log");
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    f.write_at(&data, 0).expect("write");
    d.set_faults(DiskFaults {
        read_bitflip_probability: 1.0,
        ..Default::default()
    });
    for _ in 0..50 {
        let got = read_vec(&*f, 0, 4096).expect("read");
        let flipped: u32 = got
            .iter()
            .zip(&data)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped, 1);
    }
    assert_eq!(d.visible_contents(&p("a.log")), Some(data.clone()));
    d.set_faults(DiskFaults::default());
    assert_eq!(read_vec(&*f, 0, 4096).expect("read"), data);
    assert_eq!(d.stats().read_bitflips, 50);
}

#[test]
fn corrupt_durable_damages_the_stored_byte() {
    let (d, s) = disk(1);
    let f = durable_file(&*s, "a.log");
    f.write_at(b"abc", 0).expect("write");
    f.sync_data().expect("sync");
    d.corrupt_durable(&p("a.log"), 1).expect("corrupt");
    assert_eq!(read_all(&*f), [b'a', !b'b', b'c']);
    crash(&d, 1);
    assert_eq!(
        d.durable_contents(&p("a.log")).expect("named"),
        [b'a', !b'b', b'c']
    );
    assert!(d.corrupt_durable(&p("a.log"), 3).is_err());
    assert!(d.corrupt_durable(&p("none"), 0).is_err());
}

#[test]
fn latency_has_slow_spells() {
    let d = SimDisk::new(3);
    assert_eq!(d.next_latency(), Duration::ZERO);
    d.set_faults(DiskFaults {
        latency: Duration::from_micros(100),
        slow_spell_probability: 0.1,
        slow_spell_calls: 5,
        slow_latency: Duration::from_millis(200),
        ..Default::default()
    });
    let l: Vec<Duration> = (0..500).map(|_| d.next_latency()).collect();
    let slow = l
        .iter()
        .filter(|x| **x == Duration::from_millis(200))
        .count();
    assert!((5..500).contains(&slow), "{slow} slow");
    assert!(
        l.iter()
            .all(|x| *x == Duration::from_micros(100) || *x == Duration::from_millis(200))
    );
}

#[test]
fn storage_semantics_match_fs_storage() {
    let (_d, s) = disk(1);
    assert_eq!(
        s.list_dir(Path::new("/nope")).expect_err("missing").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.open(Path::new("/nope/a")).expect_err("no dir").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.remove_file(&p("x")).expect_err("missing").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.rename(&p("x"), &p("y")).expect_err("missing").kind(),
        ErrorKind::NotFound
    );
    s.remove_dir_all(Path::new("/nope"))
        .expect("missing dir is fine");
    s.create_dir_all(&p("sub/deeper")).expect("mkdir");
    s.open(&p("f")).expect("open");
    assert_eq!(s.list_dir(Path::new(DIR)).expect("list"), vec!["f", "sub"]);
    assert_eq!(s.list_dir(Path::new("/")).expect("list"), vec!["data"]);
    let f = s.open(&p("f")).expect("reopen");
    f.write_at(b"z", 5).expect("write");
    assert_eq!(read_all(&*f), b"\0\0\0\0\0z");
    assert_eq!(f.read_at(&mut [0u8; 4], 100).expect("read past end"), 0);
}

#[test]
fn an_unlinked_file_stays_usable_through_its_handle() {
    let (d, s) = disk(1);
    let f = durable_file(&*s, "a");
    s.remove_file(&p("a")).expect("rm");
    f.write_at(b"still here", 0).expect("write to unlinked");
    assert_eq!(read_all(&*f), b"still here");
    assert!(d.files().is_empty());
    drop(f);
    s.sync_dir(Path::new(DIR)).expect("sync");
    d.check_invariants();
}

// ----- Determinism -----

/// A workload touching every random choice: fault dice, latency, crash dice.
fn transcript(seed: u64) -> String {
    let (d, s) = disk(seed);
    d.set_faults(DiskFaults {
        write_eio_probability: 0.1,
        fsync_eio_probability: 0.1,
        read_bitflip_probability: 0.2,
        slow_spell_probability: 0.2,
        slow_spell_calls: 2,
        slow_latency: Duration::from_millis(50),
        ..Default::default()
    });
    let mut out = String::new();
    let mut crash_rng = StdRng::seed_from_u64(seed ^ 0xdead);
    for round in 0..4 {
        let s = if round == 0 { s.clone() } else { d.storage() };
        for i in 0..20u64 {
            let f = s.open(&p(&format!("{}.log", i % 3))).expect("open");
            let r1 = f
                .write_at(&vec![i as u8; 700], i * 300)
                .map_err(|e| e.raw_os_error());
            let r2 = if i % 4 == 0 {
                f.sync_data().map_err(|e| e.raw_os_error())
            } else {
                Ok(())
            };
            let r3 = if i % 7 == 0 {
                s.sync_dir(Path::new(DIR)).map_err(|e| e.raw_os_error())
            } else {
                Ok(())
            };
            let mut buf = [0u8; 64];
            let r4 = f
                .read_at(&mut buf, i * 10)
                .map(|n| buf[..n].to_vec())
                .map_err(|e| e.raw_os_error());
            out += &format!("{r1:?}{r2:?}{r3:?}{r4:?}{:?};", d.next_latency());
        }
        let report = d.crash(&mut crash_rng);
        out += &format!("{report:?}\n");
        for f in d.files() {
            out += &format!("{}={:?}\n", f.display(), d.durable_contents(&f));
        }
    }
    out + &format!("{:?}", d.stats())
}

#[test]
fn same_seed_same_disk() {
    for seed in [0, 1, 42] {
        assert_eq!(transcript(seed), transcript(seed), "seed {seed}");
    }
    assert_ne!(transcript(1), transcript(2), "the seed matters");
}
