//! Fetching assigned partitions from explicit offsets (no consumer group), with long polling.
//!
//! A Fetch response carries raw record batches. A batch may start before the requested offset
//! (the broker serves whole batches) and the last one may be cut short by `max_bytes`, so
//! decoding walks whole batches with [`BatchIter`], decodes each with `kafka-protocol`'s
//! `RecordBatchDecoder`, and drops records below the fetch position. Only uncompressed batches
//! decode here (the crate's compression features are off); compressed ones are a
//! [`ConsumerError::Decode`].

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use strata_core::batch::BatchIter;
use strata_core::error::ErrorCode;
use thiserror::Error;

use super::connection::{Connection, ConnectionError, InFlight};

/// Fetch versions this client can speak: 4 is the first with v2 batches, 12 the last without
/// topic ids.
pub const FETCH_VERSIONS: (i16, i16) = (4, 12);

#[derive(Debug, Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("fetch failed: error {0:?}")]
    Fetch(ErrorCode),
    #[error("decode batch at byte {position}: {reason}")]
    Decode { position: usize, reason: String },
}

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The batch the record came in: its offsets and producer fields, as the broker wrote them.
    pub batch: BatchProducer,
}

/// Where a fetched batch lies and the idempotent-producer fields of its v2 header (bytes 43..57:
/// `producerId`, `producerEpoch`, `baseSequence`). Checkers of idempotence judge these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProducer {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    /// `-1` for a batch without producer id.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// What one partition returned in one fetch.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    pub topic: String,
    pub partition: i32,
    /// The partition's error; when not `NONE`, `records` is empty and the position unchanged.
    pub error: ErrorCode,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Vec<ConsumedRecord>,
    /// The offset after the last whole batch returned (its base offset + `lastOffsetDelta` + 1),
    /// where the next fetch starts: past records a compacted topic's cleaner removed from the
    /// batch's end, past batches it emptied, and past control batches — as Kafka's consumers
    /// move on. `None` if no whole batch came back.
    pub next_offset: Option<i64>,
}

/// Long-poll settings of a fetch.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// How long the broker may hold the request waiting for `min_bytes`.
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    /// Upper bound for the whole response (the broker still returns one whole batch if the
    /// first one is larger, KIP-74).
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Builds a Fetch request for `(topic, partition, offset)` triples.
pub fn fetch_request(positions: &[(&str, i32, i64)], config: &FetchConfig) -> FetchRequest {
    // Group by topic, keeping first-seen order.
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &(topic, partition, offset) in positions {
        let part = FetchPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(config.partition_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![part]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(config.max_wait_ms)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Decodes the whole batches in `records`, keeping records at or after `from_offset`.
pub fn decode_records(
    records: &Bytes,
    from_offset: i64,
) -> Result<Vec<ConsumedRecord>, ConsumerError> {
    let mut out = Vec::new();
    let mut iter = BatchIter::new(records);
    while let Some(item) = iter.next() {
        let (position, header) = item.map_err(|e| ConsumerError::Decode {
            position: iter.position(),
            reason: e.to_string(),
        })?;
        if header.is_control() {
            continue;
        }
        let mut batch = records.slice(position..position + header.total_size());
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| ConsumerError::Decode {
            position,
            reason: e.to_string(),
        })?;
        let stamp = BatchProducer {
            base_offset: header.base_offset.0,
            last_offset_delta: header.last_offset_delta,
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
        };
        out.extend(
            set.records
                .into_iter()
                .filter(|r| r.offset >= from_offset)
                .map(|r| ConsumedRecord {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    batch: stamp,
                }),
        );
    }
    Ok(out)
}

/// The offset after the last whole batch in `records` (see [`FetchedPartition::next_offset`]).
pub fn next_offset_after(records: &Bytes) -> Option<i64> {
    BatchIter::new(records)
        .map_while(Result::ok)
        .last()
        .map(|(_, h)| h.next_offset().0)
}

/// The position after a fetch that started at `from` and returned `fetched`: never back.
pub fn advanced(from: i64, fetched: &FetchedPartition) -> i64 {
    let after_records = fetched.records.last().map(|r| r.offset + 1);
    from.max(after_records.unwrap_or(from))
        .max(fetched.next_offset.unwrap_or(from))
}

/// A consumer of explicitly assigned partitions over one connection.
pub struct Consumer {
    conn: Arc<Connection>,
    config: FetchConfig,
    /// Next offset to fetch per `(topic, partition)`. A BTreeMap so requests list partitions in
    /// a deterministic order (the simulator replays runs).
    positions: BTreeMap<(String, i32), i64>,
}

impl Consumer {
    pub fn new(conn: Arc<Connection>, config: FetchConfig) -> Consumer {
        Consumer {
            conn,
            config,
            positions: BTreeMap::new(),
        }
    }

    /// Starts consuming `topic`/`partition` at `offset` (replacing any earlier position).
    pub fn assign(&mut self, topic: &str, partition: i32, offset: i64) {
        self.positions
            .insert((topic.to_string(), partition), offset);
    }

    /// The next offset that will be fetched.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    /// One fetch of every assigned partition. Positions advance past what was returned.
    pub async fn poll(&mut self) -> Result<Vec<FetchedPartition>, ConsumerError> {
        let positions: Vec<(&str, i32, i64)> = self
            .positions
            .iter()
            .map(|((t, p), o)| (t.as_str(), *p, *o))
            .collect();
        let version = self.conn.version_for(ApiKey::Fetch, FETCH_VERSIONS)?;
        let req = fetch_request(&positions, &self.config);
        let resp = self.conn.request(&req, version).await?;
        let fetched = fetched_partitions(&resp, &self.positions)?;
        for f in &fetched {
            if let Some(from) = self.positions.get_mut(&(f.topic.clone(), f.partition)) {
                *from = advanced(*from, f);
            }
        }
        Ok(fetched)
    }
}

/// Writes a Fetch for `positions` without waiting (for pipelined readers such as the bench).
pub async fn start_fetch(
    conn: &Connection,
    positions: &[(&str, i32, i64)],
    config: &FetchConfig,
) -> Result<InFlight<FetchResponse>, ConsumerError> {
    let version = conn.version_for(ApiKey::Fetch, FETCH_VERSIONS)?;
    Ok(conn
        .start(&fetch_request(positions, config), version)
        .await?)
}

/// Turns a Fetch response into per-partition results, decoding records at or after the
/// position each partition was fetched from.
pub fn fetched_partitions(
    resp: &FetchResponse,
    positions: &BTreeMap<(String, i32), i64>,
) -> Result<Vec<FetchedPartition>, ConsumerError> {
    if resp.error_code != 0 {
        return Err(ConsumerError::Fetch(ErrorCode(resp.error_code)));
    }
    let mut out = Vec::new();
    for t in &resp.responses {
        let topic = t.topic.0.as_str().to_string();
        for p in &t.partitions {
            let from = positions
                .get(&(topic.clone(), p.partition_index))
                .copied()
                .unwrap_or(0);
            let error = ErrorCode(p.error_code);
            let (records, next_offset) = match (&p.records, error.is_ok()) {
                (Some(r), true) => (decode_records(r, from)?, next_offset_after(r)),
                _ => (Vec::new(), None),
            };
            out.push(FetchedPartition {
                topic: topic.clone(),
                partition: p.partition_index,
                error,
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
                records,
                next_offset,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::batch::{assign_offset, build_batch};
    use strata_core::types::{LeaderEpoch, Offset};

    #[test]
    fn decodes_whole_batches_and_skips_below_position() {
        let mut a = build_batch(&[(b"a0", Some(b"k")), (b"a1", None)], 10);
        assign_offset(&mut a, Offset(5), LeaderEpoch(0));
        let mut b = build_batch(&[(b"b0", None)], 20);
        assign_offset(&mut b, Offset(7), LeaderEpoch(0));
        let mut buf = a.clone();
        buf.extend_from_slice(&b);
        buf.extend_from_slice(&a[..20]); // cut-off trailing batch
        let recs = decode_records(&Bytes::from(buf), 6).expect("decode");
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![6, 7]);
        assert_eq!(recs[0].value.as_deref(), Some(&b"a1"[..]));
        assert_eq!(recs[1].timestamp, 20);
    }

    /// A compacted topic's batches may end with removed records or hold none (the cleaner keeps
    /// an idempotent producer's last batch empty): the position moves past the whole batch, as
    /// Kafka's consumers do, so the next fetch does not return the same batch again.
    #[test]
    fn the_position_moves_past_cleaned_and_emptied_batches() {
        use strata_core::record::{decode_batch, encode_batch};
        // Offsets 10..=11, only 10 kept; then 12..=12 emptied.
        let mut pair = build_batch(&[(b"v0", Some(b"k0")), (b"v1", Some(b"k1"))], 10);
        assign_offset(&mut pair, Offset(10), LeaderEpoch(0));
        let pair = decode_batch(&pair).expect("decode");
        let cleaned = encode_batch(&pair.header, &pair.records[..1], None).expect("encode");
        let mut one = build_batch(&[(b"v2", Some(b"k2"))], 10);
        assign_offset(&mut one, Offset(12), LeaderEpoch(0));
        let one = decode_batch(&one).expect("decode");
        let emptied = encode_batch(&one.header, &[], None).expect("encode");
        let records = Bytes::from([cleaned, emptied].concat());
        assert_eq!(next_offset_after(&records), Some(13));
        let fetched = FetchedPartition {
            topic: "t".into(),
            partition: 0,
            error: ErrorCode::NONE,
            high_watermark: 13,
            log_start_offset: 0,
            records: decode_records(&records, 10).expect("decode"),
            next_offset: next_offset_after(&records),
        };
        assert_eq!(fetched.records.len(), 1);
        assert_eq!(advanced(10, &fetched), 13, "past both batches, not to 11");
        let none = FetchedPartition {
            records: Vec::new(),
            next_offset: None,
            ..fetched
        };
        assert_eq!(
            advanced(10, &none),
            10,
            "nothing returned: the position stays"
        );
    }

    #[test]
    fn request_groups_partitions_by_topic() {
        let req = fetch_request(
            &[("t", 0, 1), ("u", 0, 2), ("t", 1, 3)],
            &FetchConfig::default(),
        );
        assert_eq!(req.topics.len(), 2);
        assert_eq!(req.topics[0].partitions.len(), 2);
        assert_eq!(req.topics[0].partitions[1].fetch_offset, 3);
    }
}
