//! The coordinator's records as record batches of the offsets topic, and back.
//!
//! A call's records are appended as **one** uncompressed v2 batch (no producer id, no headers),
//! each record's key and value in the `__consumer_offsets` formats of
//! [`strata_core::group::records`]; a tombstone is a null value. The log assigns offsets and
//! stamps the leader epoch, as for any produced batch.
//!
//! Reading back (loading) walks whole batches: control batches are skipped, and a record that is
//! not a classic group record (no key, an unknown key version, a malformed value) is logged and
//! skipped, never a panic: the log is input like any other. Kafka fails the load instead; we keep
//! the partition's other groups available (a record we cannot read is one we never wrote).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_core::batch::BatchIter;
use strata_core::group::GroupRecord;
use strata_core::types::Offset;

/// Encodes `records` as one batch (offsets from 0; the log assigns the real ones).
pub fn encode(records: &[GroupRecord], now_ms: i64) -> anyhow::Result<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The crate starts a new batch wherever `offset - sequence` changes; the batch's
            // base sequence is the first record's, so this gives one batch with NO_SEQUENCE.
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp: now_ms,
            key: Some(Bytes::from(r.encode_key())),
            value: r.encode_value().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

/// One batch read back: its offsets and the group records it holds.
#[derive(Debug)]
pub struct ReadBatch {
    pub last_offset: Offset,
    pub next_offset: Offset,
    pub records: Vec<GroupRecord>,
}

/// Decodes the whole batches in `bytes` (a log read). Stops at the first batch that cannot be
/// walked or decoded: what came before it is returned with the error.
pub fn decode(bytes: &Bytes) -> (Vec<ReadBatch>, Option<String>) {
    let mut out = Vec::new();
    for item in BatchIter::new(bytes) {
        let (position, header) = match item {
            Ok(v) => v,
            Err(e) => return (out, Some(e.to_string())),
        };
        let mut records = Vec::new();
        if !header.is_control() {
            let mut raw = bytes.slice(position..position + header.total_size());
            let set = match RecordBatchDecoder::decode(&mut raw) {
                Ok(set) => set,
                Err(e) => return (out, Some(format!("batch at {}: {e}", header.base_offset))),
            };
            for record in set.records {
                let Some(key) = record.key else {
                    tracing::warn!(
                        offset = record.offset,
                        "offsets topic record without a key skipped"
                    );
                    continue;
                };
                match GroupRecord::decode(&key, record.value.as_deref()) {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        tracing::warn!(offset = record.offset, error = %e, "offsets topic record skipped")
                    }
                }
            }
        }
        out.push(ReadBatch {
            last_offset: header.last_offset(),
            next_offset: header.next_offset(),
            records,
        });
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::group::records::{OffsetCommitKey, OffsetCommitValue};

    #[test]
    fn records_round_trip_through_a_batch() {
        let commit = GroupRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
            },
            value: Some(OffsetCommitValue {
                offset: 42,
                leader_epoch: 7,
                metadata: "m".into(),
                commit_timestamp: 1_000,
                expire_timestamp: -1,
            }),
        };
        let tombstone = GroupRecord::GroupMetadata {
            group: "g".into(),
            value: None,
        };
        let bytes = encode(&[commit.clone(), tombstone.clone()], 5).expect("encode");
        let header = strata_core::batch::validate_batch(&bytes).expect("a valid v2 batch");
        assert_eq!(header.record_count, 2);
        let (batches, error) = decode(&bytes);
        assert_eq!(error, None);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].last_offset, Offset(1));
        assert_eq!(batches[0].next_offset, Offset(2));
        assert_eq!(batches[0].records, vec![commit, tombstone]);
    }
}
