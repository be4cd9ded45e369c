//! `batch_validate`: arbitrary bytes as a producer's record set.
//!
//! Runs [`validate_produce`], [`validate_batch`] and [`BatchIter`] on the input. Properties: no
//! panics; `BatchIter` yields back-to-back whole batches; if `validate_produce` accepts, the
//! batches' `total_size`s sum to the input length, `BatchIter` walks exactly those headers, and
//! stamping offsets with [`assign_offset`] (and `LogAppendTime` with [`set_log_append_time`]), as
//! the partition log does, keeps every batch valid with the new base offset.

use strata_core::batch::{
    BatchHeader, BatchIter, HEADER_LEN, assign_offset, set_log_append_time, validate_batch,
    validate_produce,
};
use strata_core::{LeaderEpoch, Offset};

/// `max.message.bytes` for the check: Kafka's default.
const MAX_MESSAGE_BYTES: usize = 1_048_588;

pub fn batch_validate(data: &[u8]) {
    let single = validate_batch(data);
    if let Ok(h) = &single {
        assert!(
            h.total_size() <= data.len(),
            "validated batch is inside the input"
        );
    }
    check_iter(data);
    let Ok(headers) = validate_produce(data, MAX_MESSAGE_BYTES) else {
        return;
    };
    assert!(!headers.is_empty(), "an accepted record set has a batch");
    let total: usize = headers.iter().map(BatchHeader::total_size).sum();
    assert_eq!(
        total,
        data.len(),
        "accepted batches cover the input exactly"
    );
    if headers.len() == 1 {
        assert_eq!(
            single.ok(),
            Some(headers[0]),
            "one batch validates alone too"
        );
    }
    let walked: Vec<BatchHeader> = BatchIter::new(data)
        .map(|item| item.map(|(_, h)| h))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("BatchIter fails on an accepted record set: {e}"));
    assert_eq!(walked, headers, "BatchIter walks the validated headers");
    for h in &headers {
        assert!(h.total_size() <= MAX_MESSAGE_BYTES);
        assert_eq!(
            i64::from(h.last_offset_delta) + 1,
            i64::from(h.record_count)
        );
        assert!(!h.is_control() && !h.is_transactional());
    }
    check_stamping(data, &headers);
}

/// `BatchIter` yields whole batches back to back, and stops for good after an error.
fn check_iter(data: &[u8]) {
    let mut iter = BatchIter::new(data);
    let mut end = 0;
    let mut failed = false;
    while let Some(item) = iter.next() {
        assert!(!failed, "BatchIter yields nothing after an error");
        match item {
            Ok((pos, h)) => {
                assert_eq!(pos, end, "batches are back to back");
                end = pos + h.total_size();
                assert!(end <= data.len(), "yielded batch is inside the buffer");
                assert_eq!(iter.position(), end);
            }
            Err(_) => failed = true,
        }
    }
    if failed {
        assert_eq!(
            iter.position(),
            data.len(),
            "an error exhausts the iterator"
        );
    } else {
        assert_eq!(iter.position(), end);
        assert!(
            data.len() - end < HEADER_LEN || BatchHeader::parse(&data[end..]).is_ok(),
            "BatchIter stops early only at a partial batch"
        );
    }
}

/// Stamps offsets into a copy, as `PartitionLog::append` does, and re-validates.
fn check_stamping(data: &[u8], headers: &[BatchHeader]) {
    let epoch = LeaderEpoch(data.len() as i32);
    let mut copy = data.to_vec();
    let mut appended = data.to_vec();
    let mut next = Offset(1 << 40);
    let mut pos = 0;
    for h in headers {
        let size = h.total_size();
        let b = &mut copy[pos..pos + size];
        assign_offset(b, next, epoch);
        let v =
            validate_batch(b).unwrap_or_else(|e| panic!("assign_offset broke batch at {pos}: {e}"));
        assert_eq!(v.base_offset, next);
        assert_eq!(v.partition_leader_epoch, epoch);
        assert_eq!(
            (v.crc, v.record_count),
            (h.crc, h.record_count),
            "only offsets change"
        );
        let a = &mut appended[pos..pos + size];
        assign_offset(a, next, epoch);
        set_log_append_time(a, 1_234);
        let v = validate_batch(a)
            .unwrap_or_else(|e| panic!("set_log_append_time broke batch at {pos}: {e}"));
        assert_eq!((v.base_offset, v.max_timestamp), (next, 1_234));
        next = Offset(next.0 + i64::from(h.record_count));
        pos += size;
    }
    for stamped in [&copy, &appended] {
        let again = validate_produce(stamped, MAX_MESSAGE_BYTES)
            .unwrap_or_else(|e| panic!("stamped record set no longer validates: {e}"));
        assert_eq!(again.len(), headers.len());
    }
}
