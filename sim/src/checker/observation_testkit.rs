//! Terse construction of hand-made [`Observations`] for the cluster checkers' unit tests.

use bytes::{BufMut, Bytes, BytesMut};
use strata_core::types::{Instant, LeaderEpoch, NodeId, Offset};

use super::testkit::tp;
use crate::observation::{BatchCopy, LeaderClaim, Observations, ReplicaCopy};

/// `node` claims to lead `topic-partition` in `epoch` at `at` nanoseconds.
pub(crate) fn claim(at: u64, node: i32, topic: &str, partition: i32, epoch: i32) -> LeaderClaim {
    LeaderClaim {
        at: Instant(at),
        node: NodeId(node),
        tp: tp(topic, partition),
        leader_epoch: LeaderEpoch(epoch),
    }
}

/// A batch `[base..=last]` shaped like a v2 batch: the header fields the checkers read
/// (`baseOffset`, `batchLength`, `partitionLeaderEpoch`, `magic`, `crc`) and one payload byte per
/// record. `content` stands for the records: equal arguments give equal bytes, a different
/// `content` gives a different payload and crc.
pub(crate) fn batch(base: i64, last: i64, epoch: i32, content: u8) -> BatchCopy {
    let records = usize::try_from(last - base + 1).expect("last >= base");
    let mut bytes = BytesMut::new();
    bytes.put_i64(base);
    let batch_length = i32::try_from(9 + records).expect("small test batch");
    bytes.put_i32(batch_length);
    bytes.put_i32(epoch);
    bytes.put_u8(2);
    bytes.put_u32(0xC0C0_0000 | u32::from(content));
    bytes.put_bytes(content, records);
    BatchCopy {
        base_offset: Offset(base),
        last_offset: Offset(last),
        bytes: Bytes::from(bytes),
    }
}

/// A copy of `t-0` on `node` serving from `log_start` up to the end of its last batch.
pub(crate) fn replica(node: i32, log_start: i64, batches: Vec<BatchCopy>) -> ReplicaCopy {
    let log_end = batches
        .last()
        .map_or(Offset(log_start), |b| b.last_offset.next());
    ReplicaCopy {
        node: NodeId(node),
        tp: tp("t", 0),
        log_start_offset: Offset(log_start),
        log_end_offset: log_end,
        batches,
    }
}

/// Observations of `t-0` alone: its replicas, final high watermark and final ISR.
pub(crate) fn partition(replicas: Vec<ReplicaCopy>, hw: i64, isr: &[i32]) -> Observations {
    let mut observations = Observations {
        replicas,
        ..Observations::default()
    };
    observations
        .final_high_watermarks
        .insert(tp("t", 0), Offset(hw));
    observations
        .final_isr
        .insert(tp("t", 0), isr.iter().map(|n| NodeId(*n)).collect());
    observations
}
