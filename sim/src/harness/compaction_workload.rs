//! The compacted-topic workload (issue #16), beside the main one when
//! [`super::run::Options::compacted_keys`] is non-zero: topic [`KV_TOPIC`], one partition,
//! `cleanup.policy=compact` with small segments, a low dirty ratio and a short
//! `delete.retention.ms` ([`topic_configs`]), and the brokers' cleaner woken every 200 ms and
//! recovery points checkpointed every 500 ms ([`BROKER_SETTINGS`]), so segments roll and get
//! cleaned, and tombstones expire, within a run.
//!
//! Two producers ([`PRODUCERS`]), each with two history processes, idempotent with `acks=-1` like
//! the main workload's, send batches of one or two keyed records over `compacted_keys` keys
//! (`k00`, `k01`, ..., the low ones hot, the high ones cold): values unique per run (a counter
//! from 1, 8 bytes big-endian), one record in eight a tombstone (null value). Keys and choices
//! come from rngs seeded from the run's seed. Every send is recorded in a [`KvHistory`]
//! (invoke, then ok at its base offset, fail, or info). After the heal, [`final_read`] reads
//! the partition from offset 0 to its high watermark; `checker::compaction` judges the two.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_client::consumer::{fetched_partitions, start_fetch};
use strata_client::{Admin, Connection, ConnectionConfig, FetchConfig, ProduceOutcome, Producer};
use strata_core::batch::{BatchIter, build_batch};
use strata_core::record::{decode_batch, encode_batch};

use super::workload::{OP_TIMEOUT, producer_config};
use crate::history::ProcessId;
use crate::kv_history::{KvFinalRead, KvHistory, KvOutcome, KvRead, KvRecord, KvValue};

/// The compacted topic.
pub const KV_TOPIC: &str = "kv";
/// Producers of the compacted topic.
pub const PRODUCERS: u32 = 2;
/// History processes per producer (sends in flight at once).
const SLOTS: u32 = 2;

/// The broker settings the workload needs: the cleaner looks for work every 200 ms, and the
/// recovery point is checkpointed every 500 ms rather than the runs' 2 s: the cleaner touches
/// only segments the *checkpointed* recovery point covers, so a node that loses power more
/// often than it checkpoints would never clean.
pub const BROKER_SETTINGS: &[&str] = &[
    "log.cleaner.backoff.ms=200",
    "log.flush.offset.checkpoint.interval.ms=500",
];

/// The compacted topic's configs on a cluster of `nodes`: 2 KiB segments, clean as soon as 1% is
/// dirty, and tombstones kept `delete.retention.ms` after their segment was cleaned: 1 s on a
/// single node (short, so that cold keys' tombstones expire within a run), 60 s on a cluster.
///
/// Why 60 s: a replica catching up is a reader from behind, and (as in Kafka, whose docs bound
/// by `delete.retention.ms` how long a reader may take to see every tombstone) one that lags
/// longer than that can miss a tombstone the leader already removed and keep the value it
/// deleted; if it then leads, the value is back (seen with 1 s: sweep_cluster seed 221 at
/// d1959e4, a follower isolated ~7 s). Outages in a run last seconds; 60 s outlives them.
pub fn topic_configs(nodes: usize) -> Vec<(&'static str, &'static str)> {
    let retention = if nodes > 1 { "60000" } else { "1000" };
    vec![
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2048"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", retention),
    ]
}

/// What the workload's tasks share.
pub struct KvWorkload {
    pub history: Mutex<KvHistory>,
    next_value: AtomicU64,
    /// Set to end the producers.
    pub stop: AtomicBool,
    pub addrs: Vec<String>,
    /// Keys written: `k00` .. `k{keys-1}`.
    pub keys: usize,
    seed: u64,
}

impl KvWorkload {
    pub fn new(addrs: Vec<String>, keys: usize, seed: u64) -> Arc<KvWorkload> {
        Arc::new(KvWorkload {
            history: Mutex::new(KvHistory::default()),
            next_value: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            addrs,
            keys: keys.max(1),
            seed,
        })
    }

    fn history(&self) -> std::sync::MutexGuard<'_, KvHistory> {
        self.history.lock().expect("kv history lock poisoned")
    }

    /// The history once every task has finished.
    pub fn into_history(self: Arc<KvWorkload>) -> KvHistory {
        Arc::into_inner(self)
            .expect("every kv task has finished")
            .history
            .into_inner()
            .expect("kv history lock poisoned")
    }

    /// One to two records: random keys (skewed), fresh values, one in eight a tombstone.
    fn next_records(&self, rng: &mut StdRng) -> Vec<KvRecord> {
        (0..rng.random_range(1..=2))
            .map(|_| KvRecord {
                // Skewed (the least of three draws): hot keys are superseded at once, cold
                // ones rarely, so their tombstones outlive `delete.retention.ms` and expire.
                key: format!(
                    "k{:02}",
                    (0..3)
                        .map(|_| rng.random_range(0..self.keys))
                        .min()
                        .unwrap_or(0)
                ),
                value: if rng.random_ratio(1, 8) {
                    KvValue::Tombstone
                } else {
                    KvValue::Value(self.next_value.fetch_add(1, Ordering::Relaxed))
                },
            })
            .collect()
    }
}

/// The records as one v2 batch without producer id (the producer stamps its own): keys set,
/// tombstones with a null value.
pub fn encode(records: &[KvRecord]) -> Bytes {
    let values: Vec<[u8; 8]> = records
        .iter()
        .map(|r| match r.value {
            KvValue::Value(v) => v.to_be_bytes(),
            KvValue::Tombstone => [0; 8],
        })
        .collect();
    let pairs: Vec<(&[u8], Option<&[u8]>)> = records
        .iter()
        .zip(&values)
        .map(|(r, v)| (&v[..], Some(r.key.as_bytes())))
        .collect();
    let plain = build_batch(&pairs, strata_client::clock::now_ms());
    // `build_batch` writes every value; rewrite the tombstones' as null.
    let mut decoded = decode_batch(&plain).expect("a batch just built decodes");
    for (d, r) in decoded.records.iter_mut().zip(records) {
        if r.value == KvValue::Tombstone {
            d.value = None;
        }
    }
    let batch =
        encode_batch(&decoded.header, &decoded.records, None).expect("a decoded batch re-encodes");
    Bytes::from(batch)
}

/// One producer (`index`) with [`SLOTS`] processes (`2_000 + index * 10 + slot`), sending until
/// stopped.
pub async fn run_producer(w: Arc<KvWorkload>, index: u32) {
    let producer = Arc::new(Producer::new(&w.addrs.join(","), producer_config(true)));
    let mut slots = Vec::new();
    for slot in 0..SLOTS {
        let (w, producer) = (w.clone(), producer.clone());
        let p = ProcessId(2_000 + index * 10 + slot);
        let mut rng = StdRng::seed_from_u64(w.seed ^ 0x6b76_0000_0000_0000 ^ u64::from(p.0));
        slots.push(tokio::spawn(async move {
            while !w.stop.load(Ordering::Relaxed) {
                let records = w.next_records(&mut rng);
                let batch = encode(&records);
                let i = w.history().invoke(p, records);
                let outcome = producer.produce_batch(KV_TOPIC, 0, batch).await;
                w.history().complete(i, outcome_of(&outcome));
                tokio::time::sleep(Duration::from_millis(rng.random_range(20..60))).await;
            }
        }));
    }
    for s in slots {
        s.await.expect("kv producer slot");
    }
}

fn outcome_of(outcome: &ProduceOutcome) -> KvOutcome {
    match outcome {
        ProduceOutcome::Ok { base_offset, .. } => {
            KvOutcome::Ok((*base_offset >= 0).then_some(*base_offset))
        }
        ProduceOutcome::Failed(code) => KvOutcome::Fail(format!("error code {}", code.0)),
        ProduceOutcome::Indefinite(reason) => KvOutcome::Info(format!("{reason:?}")),
    }
}

/// A connection to the partition's leader, found with Metadata from broker `n % brokers`.
async fn leader_connection(w: &KvWorkload, n: usize) -> Option<Connection> {
    let addr = &w.addrs[n % w.addrs.len()];
    let lookup = async {
        let conn = Connection::connect(addr, ConnectionConfig::default())
            .await
            .ok()?;
        Admin::new(&conn).metadata(Some(&[KV_TOPIC][..])).await.ok()
    };
    let meta = tokio::time::timeout(OP_TIMEOUT, lookup)
        .await
        .ok()
        .flatten()?;
    let brokers: BTreeMap<i32, String> = meta
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let leader = meta
        .topics
        .iter()
        .filter(|t| t.name.as_ref().is_some_and(|n| n.as_str() == KV_TOPIC))
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == 0)
        .and_then(|p| brokers.get(&p.leader_id.0))?;
    let connect = Connection::connect(leader, ConnectionConfig::default());
    tokio::time::timeout(OP_TIMEOUT, connect).await.ok()?.ok()
}

/// What one fetch of the final read brought.
struct Fetched {
    records: Vec<KvRead>,
    /// Past the last batch returned, empty ones (cleaned, kept for producer state) included.
    next: i64,
    high_watermark: i64,
    log_start_offset: i64,
}

/// One fetch of the partition from `position`.
async fn fetch_once(conn: &Connection, position: i64) -> Result<Fetched, String> {
    let config = FetchConfig {
        max_wait_ms: 200,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partition_max_bytes: 1 << 20,
    };
    let positions = [(KV_TOPIC, 0, position)];
    let fetch = async {
        let in_flight = start_fetch(conn, &positions, &config).await?;
        Ok::<_, strata_client::consumer::ConsumerError>(in_flight.wait().await?)
    };
    let resp = match tokio::time::timeout(OP_TIMEOUT, fetch).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("timed out".to_string()),
    };
    let from = BTreeMap::from([((KV_TOPIC.to_string(), 0), position)]);
    let parts = fetched_partitions(&resp, &from).map_err(|e| e.to_string())?;
    let Some(f) = parts.into_iter().find(|f| f.partition == 0) else {
        return Err("no entry for the partition".to_string());
    };
    if !f.error.is_ok() {
        return Err(format!("error code {}", f.error.0));
    }
    let mut next = position;
    let raw = resp.responses.iter().flat_map(|t| &t.partitions);
    for bytes in raw
        .filter(|p| p.partition_index == 0)
        .filter_map(|p| p.records.as_ref())
    {
        for (_, h) in BatchIter::new(bytes).map_while(Result::ok) {
            next = next.max(h.next_offset().0);
        }
    }
    let records = f.records.iter().map(read_record).collect();
    Ok(Fetched {
        records,
        next,
        high_watermark: f.high_watermark,
        log_start_offset: f.log_start_offset,
    })
}

fn read_record(r: &strata_client::ConsumedRecord) -> KvRead {
    let key = r.key.as_deref().map_or_else(
        || "<null key>".to_string(),
        |k| String::from_utf8_lossy(k).into_owned(),
    );
    let value = match r.value.as_deref() {
        None => KvValue::Tombstone,
        Some(v) => KvValue::Value(<[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes)),
    };
    KvRead {
        offset: r.offset,
        key,
        value,
    }
}

/// Reads the partition from offset 0 to its high watermark (after the producers stopped),
/// retrying on any error with the leader looked up again, at most `budget`; records the read in
/// the history. `Err` if it could not reach the high watermark (a liveness failure).
pub async fn final_read(w: &KvWorkload, budget: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut read = KvFinalRead::default();
    let (mut position, mut attempt, mut last_error) = (0i64, 0usize, String::new());
    let mut conn = None;
    loop {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the final read of {KV_TOPIC}-0 could not reach the high watermark {} within \
                 {budget:?} (read up to {position}; last error: {last_error})",
                read.high_watermark
            ));
        }
        attempt += 1;
        if conn.is_none() {
            conn = leader_connection(w, attempt).await;
        }
        let Some(c) = &conn else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match fetch_once(c, position).await {
            Ok(f) => {
                let stalled = f.next <= position;
                read.records.extend(f.records);
                (position, read.high_watermark) = (f.next, f.high_watermark);
                read.log_start_offset = f.log_start_offset;
                if position >= read.high_watermark {
                    w.history().final_read = Some(read);
                    return Ok(());
                }
                if stalled {
                    last_error = format!("nothing returned from {position}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(e) => {
                (last_error, conn) = (e, None);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
