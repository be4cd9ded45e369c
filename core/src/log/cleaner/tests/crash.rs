//! Crash safety of the swap (module docs, "Swap"): a cleaning crashes at every mutating storage
//! operation in turn, and both what a process crash leaves and what a power loss leaves
//! (`disk`) recover to a log where every key's newest value is present, no deleted key comes
//! back, and offsets strictly increase — whether the swap was rolled back or completed. The
//! recovery itself is then crashed at every operation too.

use std::collections::BTreeMap;

use super::super::swap::recover_swap;
use super::disk::PowerLossDisk;
use super::*;
use crate::batch::compute_crc;
use crate::storage::MemStorage;

/// key -> newest value (`None`: the newest record is a tombstone).
type Model = BTreeMap<String, Option<String>>;

/// The cleaning under test runs at this time: the first cleaning's tombstone horizons passed.
const NOW: i64 = 10_000;

/// A compacted log with superseded values, tombstones (one of a key set again after it), a
/// first cleaning behind it (so tombstones have horizons) and new dirty data, all durable.
fn crash_config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        ..config()
    }
}

fn scenario() -> (PowerLossDisk, PartitionLog, Model) {
    let disk = PowerLossDisk::default();
    let mut log = open(Arc::new(disk.clone()), crash_config());
    let mut model = Model::new();
    let mut put = |log: &mut PartitionLog, recs: &[Kv]| {
        append(log, recs, 100);
        for (k, v) in recs {
            let k = k.expect("keyed").to_string();
            model.insert(k, v.map(str::to_string));
        }
    };
    for round in 0..4 {
        let v = format!("v{round}");
        let v = v.as_str();
        put(
            &mut log,
            &[
                (Some("k0"), Some(v)),
                (Some("k1"), Some(v)),
                (Some("k2"), Some(v)),
            ],
        );
        put(&mut log, &[(Some("k3"), Some(v)), (Some("k4"), Some(v))]);
    }
    put(&mut log, &[(Some("k1"), None), (Some("k4"), None)]);
    log.roll().expect("roll");
    settle(&mut log);
    clean_all(&mut log, 1_000).expect("first cleaning");
    put(
        &mut log,
        &[(Some("k4"), Some("back")), (Some("k0"), Some("last"))],
    );
    for round in 0..3 {
        let v = format!("w{round}");
        put(
            &mut log,
            &[
                (Some("k2"), Some(v.as_str())),
                (Some("k5"), Some(v.as_str())),
            ],
        );
    }
    log.roll().expect("roll");
    settle(&mut log);
    disk.sync_everything();
    (disk, log, model)
}

/// Runs the cleaning until it ends or the disk crashes.
fn crashing_clean(log: &mut PartitionLog) {
    let end = log.log_end_offset();
    let Ok(Some(mut task)) = log.begin_clean(NOW, end, BIG_BUDGET) else {
        return;
    };
    for _ in 0..10_000 {
        match task.step() {
            Ok(s) if s.done => break,
            Ok(_) => {}
            Err(_) => {
                let _ = log.abort_clean(task);
                return;
            }
        }
    }
    let _ = log.finish_clean(task);
}

/// Recovers `image` and checks it; returns whether the log there is the cleaned one (fewer
/// records than before the cleaning, `before`).
fn check_image(image: &MemStorage, model: &Model, before: usize) -> bool {
    recover_swap(image, &dir()).expect("recover");
    let names = image.list_dir(&dir()).expect("list");
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")),
        "{names:?}"
    );
    let mut recs = Vec::new();
    for name in names.iter().filter(|n| n.ends_with(".log")) {
        let file = image.file(&dir().join(name)).expect("segment");
        let raw = file.contents();
        for item in BatchIter::new(&raw) {
            let (at, h) = item.expect("whole batches");
            let batch = &raw[at..at + h.total_size()];
            assert_eq!(compute_crc(batch), h.crc, "{name}: batch {}", h.base_offset);
            recs.extend(decode_batch(batch).expect("decode").records);
        }
    }
    let offsets: Vec<Offset> = recs.iter().map(|r| r.offset).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets increase: {offsets:?}"
    );
    let found = table(&recs);
    for (k, v) in model {
        match v {
            Some(_) => assert_eq!(found.get(k), Some(v), "{k}'s newest value"),
            None => assert!(
                matches!(found.get(k), None | Some(None)),
                "deleted {k} came back as {:?}",
                found.get(k)
            ),
        }
    }
    assert!(found.keys().all(|k| model.contains_key(k)), "{found:?}");
    // The log opens on it (recovery trusts or rescans the cleaned segments, gaps and all) and
    // a consumer reads exactly those records.
    let (log, report) =
        PartitionLog::open(Arc::new(image.clone()), dir(), crash_config(), 0).expect("open");
    assert!(report.corrupt_batches.is_empty(), "{report:?}");
    assert_eq!(
        report.rebuilt_indexes, 0,
        "the cleaned indexes are trusted: {report:?}"
    );
    assert_eq!(fetch_all(&log), recs);
    recs.len() < before
}

/// Crashes recovery of `image` at every operation; each power loss then recovers to a good
/// log. Returns the operations a whole recovery takes.
fn crash_recovery(image: &MemStorage, model: &Model, before: usize) -> u64 {
    for m in 1.. {
        let disk = PowerLossDisk::from_image(image);
        disk.arm(m);
        let done = recover_swap(&disk, &dir()).is_ok() && !disk.crashed();
        for image in disk.power_loss_images() {
            check_image(&image, model, before);
        }
        check_image(&disk.process_crash_image(), model, before);
        if done {
            return disk.ops();
        }
    }
    unreachable!()
}

#[test]
fn a_crash_at_every_operation_of_a_cleaning_recovers_to_a_good_log() {
    let (_, log, model) = scenario();
    let before = records(&log).len();
    let (mut completed, mut rolled_back, mut recovery_ops) = (0, 0, 0);
    for n in 1.. {
        let (disk, mut log, _) = scenario();
        disk.arm(n);
        crashing_clean(&mut log);
        if !disk.crashed() {
            // The whole cleaning ran: it took n - 1 operations, each crashed once above.
            let image = disk.process_crash_image();
            assert!(
                check_image(&image, &model, before),
                "the whole cleaning cleaned"
            );
            assert!(
                n > 20,
                "a cleaning of several segments takes {n} operations"
            );
            break;
        }
        let mut images = disk.power_loss_images();
        images.push(disk.process_crash_image());
        for image in images {
            if check_image(&image.deep_clone(), &model, before) {
                completed += 1;
            } else {
                rolled_back += 1;
            }
            recovery_ops = recovery_ops.max(crash_recovery(&image, &model, before));
        }
    }
    assert!(
        completed > 0 && rolled_back > 0,
        "{completed} completed, {rolled_back} rolled back"
    );
    assert!(
        recovery_ops > 3,
        "some recovery redid a swap ({recovery_ops} operations)"
    );
}
