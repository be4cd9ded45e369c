//! The clean-shutdown checkpoint (`PartitionLog::checkpoint_clean_shutdown`): the next open
//! trusts the active segment after a walk of its batch headers instead of scanning it (no CRC
//! pass, no index rebuild, no fsync), and must answer exactly as a log that scanned it. A
//! damaged active index is not trusted (rebuilt by the scan); bytes after the checkpointed end
//! (appends after the restart, then a crash) send the segment back to the scan.

use std::path::PathBuf;

use proptest::prelude::*;

use super::{EPOCH, batch, dir, flush, open, read_all};
use crate::log::recovery::read_checkpoint;
use crate::log::*;
use crate::storage::MemStorage;

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

fn active_file(ext: &str) -> PathBuf {
    dir().join(format!("{:020}.{ext}", 0))
}

/// Appends one batch per timestamp (`n` records each), flushes, and checkpoints cleanly or not.
fn written(stamps: &[(usize, i64)], clean: bool) -> MemStorage {
    let s = MemStorage::new();
    let (mut log, _) = open(&s, config());
    for (i, &(n, ts)) in stamps.iter().enumerate() {
        log.append(&batch(i, n, ts), EPOCH, 0).expect("append");
    }
    flush(&mut log);
    if clean {
        log.checkpoint_clean_shutdown().expect("clean checkpoint");
    } else {
        log.checkpoint_recovery_point().expect("checkpoint");
    }
    s
}

/// Every answer the log gives about its records: reads, time lookups, the newest timestamp.
fn answers(log: &PartitionLog, stamps: &[(usize, i64)]) -> String {
    let mut targets = vec![i64::MIN, -1, 0];
    for (_, ts) in stamps {
        targets.extend([ts - 1, *ts, ts + 1]);
    }
    let found: Vec<_> = targets
        .iter()
        .map(|t| log.offset_for_timestamp(*t).expect("lookup"))
        .collect();
    format!(
        "{:?} {:?} {:?} end {}",
        read_all(log, Offset(0)),
        found,
        log.max_timestamp().expect("max timestamp"),
        log.log_end_offset()
    )
}

/// Appends `more` batches, then returns the active segment's index files.
fn append_more(log: &mut PartitionLog, more: &[(usize, i64)], s: &MemStorage) -> Vec<Vec<u8>> {
    for (i, &(n, ts)) in more.iter().enumerate() {
        log.append(&batch(100 + i, n, ts), EPOCH, 0)
            .expect("append");
    }
    ["index", "timeindex"]
        .iter()
        .map(|ext| s.file(&active_file(ext)).expect("index").contents())
        .collect()
}

proptest! {
    /// A cleanly closed log reopens trusting its active segment and answers exactly as the same
    /// log reopened after a plain checkpoint (which scans it); appends then write the same
    /// index entries in both, so what the trusted open took from the walk is what the scan
    /// would have rebuilt. CreateTime timestamps need not increase.
    #[test]
    fn clean_reopen_answers_as_a_scan_does(
        stamps in proptest::collection::vec((1usize..5, -1i64..10_000), 1..40),
        more in proptest::collection::vec((1usize..5, -1i64..10_000), 0..10),
    ) {
        let clean = written(&stamps, true);
        let scanned = written(&stamps, false);
        let checkpoint = read_checkpoint(&clean, &dir()).expect("checkpoint");
        let (mut a, report) = open(&clean, config());
        prop_assert_eq!(checkpoint.indexes_durable_below, a.log_end_offset());
        prop_assert_eq!(report.rebuilt_indexes, 0);
        let (mut b, _) = open(&scanned, config());
        prop_assert_eq!(answers(&a, &stamps), answers(&b, &stamps));
        let all: Vec<_> = stamps.iter().chain(&more).copied().collect();
        prop_assert_eq!(append_more(&mut a, &more, &clean), append_more(&mut b, &more, &scanned));
        prop_assert_eq!(answers(&a, &all), answers(&b, &all));
    }
}

/// What the trusted open skips: a payload byte flipped below the recovery point is not looked
/// for at open (as in a trusted sealed segment) but still refused on every read, and the
/// batches around it are served; a plain checkpoint's open scans and reports it.
#[test]
fn clean_reopen_finds_damaged_data_on_read_not_at_open() {
    let stamps = [(2, 10), (2, 20), (2, 30)];
    for clean in [true, false] {
        let s = written(&stamps, clean);
        let mut bytes = s.file(&active_file("log")).expect("log").contents();
        let first = crate::batch::BatchHeader::parse(&bytes)
            .expect("header")
            .total_size();
        bytes[first + 70] ^= 0x10;
        s.file(&active_file("log")).expect("log").replace(bytes);
        let (log, report) = open(&s, config());
        assert_eq!(report.corrupt_batches.is_empty(), clean, "{report:?}");
        assert_eq!(log.log_end_offset(), Offset(6));
        assert!(matches!(
            log.read(Offset(2), 1 << 20, Offset(6)),
            Err(LogError::Corrupt {
                offset: Offset(2),
                ..
            })
        ));
        for at in [0, 4] {
            let r = log.read(Offset(at), 1, Offset(6)).expect("read");
            assert_eq!(crate::batch::BatchIter::new(&r.records).count(), 1);
        }
    }
}

/// Rewrites a file's bytes.
type Damage = Box<dyn Fn(Vec<u8>) -> Vec<u8>>;

/// Damaged active indexes after a clean shutdown are not trusted (the scan rebuilds them), or,
/// for a well-formed `.index` entry that points inside a batch, verified where a read uses it
/// (`Segment::walk_start`): every answer is the undamaged log's.
#[test]
fn damaged_active_indexes_are_rebuilt() {
    let stamps: Vec<(usize, i64)> = (0..12)
        .map(|i| (2, [500, 100, 900][i % 3] + i as i64))
        .collect();
    let intact = {
        let (log, _) = open(&written(&stamps, true), config());
        answers(&log, &stamps)
    };
    let entry =
        |ts: i64, rel: u32| [ts.to_be_bytes().to_vec(), rel.to_be_bytes().to_vec()].concat();
    let damage: [(&str, Damage); 5] = [
        ("index", Box::new(|_| Vec::new())),
        (
            "index",
            Box::new(|mut b| {
                b[7] ^= 1;
                b
            }),
        ), // a position inside a batch
        ("timeindex", Box::new(|_| Vec::new())),
        (
            "timeindex",
            Box::new(move |b| [b, entry(1 << 40, 23)].concat()),
        ), // names no batch start
        ("timeindex", Box::new(move |_| entry(100, 0))), // below a later batch
    ];
    for (ext, f) in &damage {
        let s = written(&stamps, true);
        let file = s.file(&active_file(ext)).expect("index");
        file.replace(f(file.contents()));
        let (log, _) = open(&s, config());
        assert_eq!(answers(&log, &stamps), intact, "damaged {ext}");
    }
}

/// Appends after a clean restart and a crash (no new checkpoint): the file now ends past the
/// checkpointed end, so the active segment is scanned again and keeps every batch.
#[test]
fn appends_after_a_clean_restart_send_the_next_open_back_to_the_scan() {
    let stamps = [(2, 10), (3, 5), (1, 40)];
    let s = written(&stamps, true);
    let (mut log, _) = open(&s, config());
    let more = [(2, 7), (2, 50)];
    append_more(&mut log, &more, &s);
    drop(log); // killed: nothing flushed, no checkpoint
    let (log, report) = open(&s, config());
    assert_eq!(log.log_end_offset(), Offset(10), "{report:?}");
    let all: Vec<_> = stamps.iter().chain(&more).copied().collect();
    let (reference, _) = open(&written(&all, false), config());
    assert_eq!(answers(&log, &all), answers(&reference, &all));
}
