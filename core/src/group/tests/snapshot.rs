//! Snapshots of the offsets partition (`snapshot.rs`): when one starts, what its chunks hold,
//! pacing by the high watermark, failed appends, unload, and the invariant — replaying from
//! any offset at or below a completed snapshot's start gives the whole image.

use super::*;

fn snapshot_config(floor: u64, chunk_records: usize) -> GroupConfig {
    GroupConfig {
        snapshot_min_records: floor,
        snapshot_chunk_records: chunk_records,
        ..config()
    }
}

/// A standalone commit (generation -1, group "s") of `offset` for t/`partition`.
fn commit(h: &mut Harness, partition: i32, offset: i64) {
    let id = h.commit("s", -1, "", "t", partition, offset);
    if h.auto_commit {
        assert_eq!(h.commit_error(id), Some(ErrorCode::NONE));
    }
}

/// The image as the records a snapshot writes: groups' metadata, then offsets, in key order.
fn image_records(image: &GroupImage) -> Vec<GroupRecord> {
    let groups = image
        .groups
        .iter()
        .map(|(group, value)| GroupRecord::GroupMetadata {
            group: group.clone(),
            value: Some(value.clone()),
        });
    let offsets = image.offsets.iter().flat_map(|(group, slots)| {
        slots.iter().map(
            move |((topic, partition), value)| GroupRecord::OffsetCommit {
                key: records::OffsetCommitKey {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                },
                value: Some(value.clone()),
            },
        )
    });
    groups.chain(offsets).collect()
}

/// The batches appended at or after `start`.
fn batches_from(h: &Harness, start: Offset) -> Vec<Vec<GroupRecord>> {
    h.batch_starts()
        .into_iter()
        .zip(&h.log)
        .filter(|(first, _)| *first >= start)
        .map(|(_, (_, records))| records.clone())
        .collect()
}

/// The invariant: a load from every batch start at or below `start` gives the whole image.
fn assert_replay_from_anywhere_below(h: &Harness, start: Offset) {
    let image = h.c.latest_image();
    for first in h.batch_starts().into_iter().filter(|o| *o <= start) {
        assert_eq!(
            h.reload_from(first).latest_image(),
            image,
            "a load from {first} (at or below the snapshot start {start})"
        );
    }
}

/// Twelve commits over t/0..t/3 of group "s", with a floor of 10: a snapshot (in chunks of
/// `chunk_records`) is due.
fn due_for_snapshot(chunk_records: usize) -> Harness {
    let mut h = Harness::with_config(snapshot_config(10, chunk_records));
    for i in 0..12 {
        commit(&mut h, i % 4, i64::from(i));
    }
    assert!(due_now(&h));
    h
}

/// Whether `tick` has work now.
fn due_now(h: &Harness) -> bool {
    h.c.next_deadline().is_some_and(|d| d <= h.now.instant)
}

/// A snapshot re-emits the latest image in key order, in chunks of at most
/// `snapshot_chunk_records`, starting at the log end; once committed it reports everything
/// below its start superseded, and a load from there (or anywhere below) is a full load.
#[test]
fn a_snapshot_re_emits_the_image_and_supersedes_what_is_below_its_start() {
    let mut h = Harness::with_config(snapshot_config(10, 3));
    let (members, generation) = h.stable_group("g", 2);
    for round in 0..6 {
        for p in 0..4 {
            commit(&mut h, p, round * 10 + i64::from(p));
        }
    }
    let id = h.commit("g", generation, &members[0], "t", 9, 99);
    assert_eq!(h.commit_error(id), Some(ErrorCode::NONE));
    assert!(
        due_now(&h),
        "more than the floor and twice the image was written"
    );
    let start = Offset(h.log_end);
    let image = h.c.latest_image().clone();
    h.advance(0);

    assert_eq!(h.superseded, vec![start]);
    assert_eq!(h.c.snapshots_completed(), 1);
    assert_eq!(h.c.snapshot_start(), None);
    let chunks = batches_from(&h, start);
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 3));
    assert_eq!(
        chunks.concat(),
        image_records(&image),
        "the chunks are the image, exactly"
    );
    assert_eq!(
        h.c.latest_image(),
        &image,
        "replaying the snapshot changed nothing"
    );
    assert_replay_from_anywhere_below(&h, start);
    // Not a vacuous check: a load that starts after the first chunk misses its keys.
    let second_chunk = Offset(start.0 + chunks[0].len() as i64);
    assert_ne!(h.reload_from(second_chunk).latest_image(), &image);
    assert!(!due_now(&h), "the count starts again with the snapshot");
}

/// The trigger: more than max(`snapshot_min_records`, 2 × the image's records) replayed since
/// the last snapshot started, counting the snapshot's own records.
#[test]
fn a_snapshot_is_due_past_the_floor_and_twice_the_image() {
    // (floor, distinct partitions committed, total commits, due?)
    let cases = [
        (10, 2, 10, false),
        (10, 2, 11, true),
        (100, 2, 100, false),
        (100, 2, 101, true),
        // 30 keys: twice the image (60) is above the floor.
        (10, 30, 60, false),
        (10, 30, 61, true),
    ];
    for (floor, keys, commits, due) in cases {
        let mut h = Harness::with_config(snapshot_config(floor, 1_000));
        for i in 0..commits {
            commit(&mut h, i % keys, i64::from(i));
        }
        assert_eq!(
            due_now(&h),
            due,
            "floor {floor}, {keys} keys, {commits} commits"
        );
        h.advance(0);
        assert_eq!(
            h.superseded.len(),
            usize::from(due),
            "floor {floor}, {commits}"
        );
    }
    // After a snapshot of 30 keys, the count starts from its 30 records: 31 more are due.
    let mut h = Harness::with_config(snapshot_config(10, 1_000));
    for i in 0..61 {
        commit(&mut h, i % 30, i64::from(i));
    }
    h.advance(0);
    assert_eq!(h.superseded.len(), 1);
    for i in 0..30 {
        commit(&mut h, i, 100);
    }
    assert!(!due_now(&h), "30 + 30 = 60 is not above 60");
    commit(&mut h, 0, 101);
    assert!(due_now(&h));
}

/// A chunk holds at most `snapshot_chunk_records` records and `snapshot_chunk_bytes` bytes,
/// and at least one record however small the byte bound.
#[test]
fn chunks_respect_the_record_and_byte_bounds() {
    let mut probe = Harness::new();
    commit(&mut probe, 10, 1);
    let one = probe.log[0].1[0].encoded_len();
    // (records, bytes, expected chunk sizes for 7 keys)
    let cases: [(usize, usize, &[usize]); 4] = [
        (3, usize::MAX, &[3, 3, 1]),
        (100, 2 * one + one / 2, &[2, 2, 2, 1]),
        (2, 10 * one, &[2, 2, 2, 1]),
        (100, 1, &[1, 1, 1, 1, 1, 1, 1]),
    ];
    for (records, bytes, sizes) in cases {
        let mut config = snapshot_config(14, records);
        config.snapshot_chunk_bytes = bytes;
        let mut h = Harness::with_config(config);
        for i in 0..15 {
            commit(&mut h, 10 + i % 7, i64::from(i));
        }
        let start = Offset(h.log_end);
        h.advance(0);
        assert_eq!(h.superseded, vec![start], "({records}, {bytes})");
        let chunks = batches_from(&h, start);
        let got: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(got, sizes, "({records}, {bytes})");
        for chunk in &chunks {
            let size: usize = chunk.iter().map(GroupRecord::encoded_len).sum();
            assert!(chunk.len() == 1 || size <= bytes, "({records}, {bytes})");
        }
        assert_replay_from_anywhere_below(&h, start);
    }
}

/// The first chunk waits until the high watermark reaches the snapshot's start, and each next
/// one until the one before is committed; meanwhile `next_deadline` does not ask for a tick.
#[test]
fn chunks_go_at_the_pace_of_the_high_watermark() {
    let mut h = Harness::with_config(snapshot_config(10, 2));
    h.auto_commit = false;
    for i in 0..11 {
        commit(&mut h, i % 3, i64::from(i));
    }
    let start = Offset(h.log_end);
    h.advance(0);
    assert_eq!(h.c.snapshot_start(), Some(start), "started");
    assert_eq!(h.log_end, start.0, "but no chunk below the high watermark");
    assert!(!due_now(&h));
    h.commit_all();
    assert!(due_now(&h));
    h.advance(0);
    assert_eq!(h.log_end, start.0 + 2, "one chunk");
    h.advance(10_000);
    assert_eq!(h.log_end, start.0 + 2, "it waits for the high watermark");
    h.commit_to(start.0 + 1);
    assert!(!due_now(&h), "not all of it is committed");
    h.commit_all();
    h.advance(0);
    assert_eq!(h.log_end, start.0 + 3, "the last chunk");
    assert!(
        h.superseded.is_empty(),
        "not complete before it is committed"
    );
    h.commit_all();
    assert_eq!(
        h.superseded,
        vec![start],
        "complete once committed (from on_high_watermark)"
    );
    assert_replay_from_anywhere_below(&h, start);
}

/// Writes between chunks — to keys already emitted, keys not yet emitted, new keys, and
/// deletions — leave replay from the start exact: each chunk holds the values current when it
/// is emitted, and later writes land after it.
#[test]
fn writes_between_chunks_keep_replay_from_the_start_exact() {
    let mut h = due_for_snapshot(1);
    h.auto_commit = false;
    h.commit_all();
    let start = Offset(h.log_end);
    h.advance(0); // starts, emits t/0
    let delete = |h: &mut Harness, partition: i32| {
        h.send(Request::OffsetDelete(OffsetDelete {
            group_id: "s".into(),
            topics: vec![("t".into(), vec![partition])],
        }));
    };
    // Emitted so far: t/0. Then t/0 (emitted) and t/2 (not yet) change.
    commit(&mut h, 0, 500);
    commit(&mut h, 2, 502);
    h.commit_all();
    h.advance(0); // emits t/1
    // A new key after the cursor, and a key not yet emitted is deleted.
    commit(&mut h, 7, 507);
    delete(&mut h, 3);
    h.commit_all();
    h.advance(0); // emits t/2 = 502
    while h.superseded.is_empty() {
        h.commit_all();
        h.advance(0);
    }
    assert_eq!(h.superseded, vec![start]);
    let image = h.c.latest_image();
    assert_eq!(image.offset("s", "t", 0).map(|v| v.offset), Some(500));
    assert_eq!(image.offset("s", "t", 2).map(|v| v.offset), Some(502));
    assert_eq!(image.offset("s", "t", 3), None);
    assert_eq!(image.offset("s", "t", 7).map(|v| v.offset), Some(507));
    assert_replay_from_anywhere_below(&h, start);
}

/// A chunk whose append failed is emitted again after `snapshot_retry_backoff_ms`, from the
/// same key, with the values current then; the snapshot keeps its start.
#[test]
fn a_failed_chunk_is_emitted_again_after_the_backoff() {
    let mut h = due_for_snapshot(2);
    let start = Offset(h.log_end);
    let out = h.c.tick(h.now);
    assert_eq!(out.records.len(), 2, "the first chunk");
    let failed = h.c.on_append_failed(h.now, ErrorCode::NOT_ENOUGH_REPLICAS);
    assert_eq!(failed, Output::default(), "nothing waited on it");
    let backoff = h.c.config().snapshot_retry_backoff_ms;
    assert_eq!(
        h.c.next_deadline(),
        Some(h.now.instant.saturating_add_millis(backoff)),
        "the retry pause"
    );
    commit(&mut h, 0, 1_000); // written meanwhile: the retried chunk carries it
    h.advance(backoff - 1);
    assert_eq!(h.log_end, start.0 + 1, "no chunk during the pause");
    h.advance(1);
    assert_eq!(h.superseded, vec![start], "the same start");
    let chunks = batches_from(&h, Offset(start.0 + 1));
    assert_eq!(
        chunks[0],
        image_records(h.c.latest_image())[..2],
        "t/0 and t/1 again, t/0 with its value now"
    );
    assert_replay_from_anywhere_below(&h, start);
}

/// Unloading drops a snapshot in progress: nothing is reported, nothing waits, no deadline.
#[test]
fn unloading_mid_snapshot_drops_it() {
    let mut h = due_for_snapshot(1);
    h.auto_commit = false;
    h.advance(0);
    assert!(h.c.snapshot_start().is_some());
    assert!(h.c.unload().is_empty(), "no reply waits on a chunk");
    assert_eq!(h.c.snapshot_start(), None);
    assert_eq!(h.c.next_deadline(), None);
    let out = h.c.on_high_watermark(h.now, Offset(h.log_end));
    assert_eq!(out.superseded_below, None);
}

/// A coordinator loaded from a log counts every record it replayed since the log start
/// (the log does not say where the last snapshot started), so a long log snapshots soon after
/// the load; a short one does not.
#[test]
fn a_loaded_coordinator_counts_from_the_log_start() {
    let mut h = Harness::with_config(snapshot_config(1_000, 100));
    for i in 0..20 {
        commit(&mut h, i % 4, i64::from(i));
    }
    assert!(!due_now(&h));
    let mut loaded = GroupCoordinator::new(snapshot_config(10, 100), LeaderEpoch(2), 7);
    for (last, records) in &h.log {
        loaded.replay(*last, records);
    }
    let _ = loaded.on_loaded(h.now, Offset(h.log_end));
    assert_eq!(loaded.next_deadline(), Some(h.now.instant), "due at once");
    let out = loaded.tick(h.now);
    assert_eq!(out.records.len(), 4, "the image, in one chunk");
    assert_eq!(loaded.snapshot_start(), Some(Offset(h.log_end)));
}
