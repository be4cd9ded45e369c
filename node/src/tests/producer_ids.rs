//! Tests of [`super`]: the allocator's hand-out, prefetch and refusal rules; waiters sharing
//! fetches; and a single node's reservations in its metadata file across crashes (MemStorage).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::AtomicI64;

use strata_core::storage::MemStorage;

use super::*;
use crate::broker::Broker;
use crate::config::Config;
use crate::metadata_store::MetadataStore;

fn block(first: i64, count: i32) -> Block {
    Block::new(first, count).expect("a valid block")
}

#[test]
fn blocks_hold_at_least_one_non_negative_id() {
    assert!(Block::new(-1, 10).is_err());
    assert!(Block::new(0, 0).is_err());
    assert!(Block::new(0, -5).is_err());
    assert!(Block::new(i64::MAX - 5, 10).is_err());
    assert_eq!(block(i64::MAX - 10, 10).end(), i64::MAX);
}

/// KIP-730 as Kafka's RPCProducerIdManager does it: ids in order from the current block, the next
/// block fetched once 90% are handed out, then ids go on from it.
#[test]
fn allocator_hands_out_in_order_and_prefetches_at_ninety_percent() {
    let now = Instant::now();
    let mut a = Allocator::default();
    assert_eq!(a.next_id(), None, "nothing before the first block");
    assert!(a.maybe_start_fetch(now), "an empty allocator fetches");
    assert!(!a.maybe_start_fetch(now), "one fetch at a time");
    a.on_fetched(now, Ok(block(0, 10))).expect("accepted");
    for want in 0..9 {
        assert!(
            !a.maybe_start_fetch(now),
            "no prefetch before 90% ({want} handed out)"
        );
        assert_eq!(a.next_id(), Some(want));
    }
    assert!(
        a.maybe_start_fetch(now),
        "prefetch once 9 of 10 are handed out"
    );
    assert_eq!(a.next_id(), Some(9));
    assert_eq!(a.next_id(), None, "used up, the next block is not here yet");
    a.on_fetched(now, Ok(block(100, 10))).expect("accepted");
    assert!(!a.maybe_start_fetch(now), "a block is waiting");
    assert_eq!(a.next_id(), Some(100));
}

/// A block that would repeat ids is refused, and a failure holds further fetches back.
#[test]
fn allocator_refuses_blocks_that_go_back_and_backs_off() {
    let now = Instant::now();
    let mut a = Allocator::default();
    assert!(a.maybe_start_fetch(now));
    a.on_fetched(now, Ok(block(0, 10))).expect("accepted");
    for want in 0..10 {
        assert_eq!(a.next_id(), Some(want));
    }
    assert!(a.maybe_start_fetch(now));
    let refused = a.on_fetched(now, Ok(block(5, 10)));
    assert!(
        matches!(
            refused,
            Err(BlockError::Backwards {
                first: 5,
                accepted_end: 10
            })
        ),
        "{refused:?}"
    );
    assert_eq!(a.next_id(), None);
    assert!(!a.maybe_start_fetch(now), "backing off");
    assert!(
        !a.maybe_start_fetch(now + RETRY_BACKOFF / 2),
        "still backing off"
    );
    assert!(a.maybe_start_fetch(now + RETRY_BACKOFF));
    assert!(a.on_fetched(now, Err(BlockError::NotRegistered)).is_err());
    assert!(a.maybe_start_fetch(now + RETRY_BACKOFF * 2));
    a.on_fetched(now, Ok(block(10, 1)))
        .expect("contiguous is fine");
    assert_eq!(a.next_id(), Some(10));
}

/// A fake block source: blocks of `size` from 0 up, each after a short delay (or a failure while
/// `fail` is set). Counts fetches.
struct Source {
    next: AtomicI64,
    fetches: AtomicI64,
    fail: std::sync::atomic::AtomicBool,
    size: i32,
}

impl Source {
    fn new(size: i32) -> Arc<Source> {
        Arc::new(Source {
            next: AtomicI64::new(0),
            fetches: AtomicI64::new(0),
            fail: Default::default(),
            size,
        })
    }

    fn fetcher(self: &Arc<Self>) -> impl Fn() -> BlockFetch + Send + Sync + 'static {
        let source = self.clone();
        move || {
            let source = source.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                source.fetches.fetch_add(1, Ordering::SeqCst);
                if source.fail.load(Ordering::SeqCst) {
                    return Err(BlockError::Unreachable("test".into()));
                }
                let first = source
                    .next
                    .fetch_add(i64::from(source.size), Ordering::SeqCst);
                Block::new(first, source.size)
            })
        }
    }
}

/// Many requests at once while blocks are small: every one gets an id, no id twice, and they
/// share fetches (one in flight at a time).
#[tokio::test]
async fn concurrent_waiters_get_distinct_ids() {
    let ids = ProducerIds::new();
    let source = Source::new(3);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let ids = ids.clone();
        let fetch = source.fetcher();
        tasks.push(tokio::spawn(async move {
            ids.next_id(fetch, WAIT_BUDGET).await
        }));
    }
    let mut got = BTreeSet::new();
    for t in tasks {
        let id = t.await.expect("join").expect("an id within the budget");
        assert!(got.insert(id), "id {id} handed out twice");
    }
    assert_eq!(got.len(), 40);
    let fetches = source.fetches.load(Ordering::SeqCst);
    assert!(
        (14..=16).contains(&fetches),
        "40 ids from blocks of 3 take 14 fetches (one more may be prefetched): {fetches}"
    );
}

/// A failed fetch answers the requests that waited for it (no id: COORDINATOR_LOAD_IN_PROGRESS),
/// holds new fetches back for the backoff, and the next fetch after it serves again.
#[tokio::test]
async fn a_failed_fetch_is_unavailable_then_retried() {
    let ids = ProducerIds::new();
    let source = Source::new(10);
    source.fail.store(true, Ordering::SeqCst);
    assert_eq!(
        ids.clone().next_id(source.fetcher(), WAIT_BUDGET).await,
        None
    );
    assert_eq!(
        ids.try_next(&source.fetcher()),
        Next::Unavailable,
        "backing off"
    );
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    source.fail.store(false, Ordering::SeqCst);
    tokio::time::sleep(RETRY_BACKOFF).await;
    assert_eq!(
        ids.clone().next_id(source.fetcher(), WAIT_BUDGET).await,
        Some(0)
    );
}

fn single_node(storage: &MemStorage) -> Arc<Broker> {
    let config = Config::default().with("log.dirs", "/mem").expect("config");
    Broker::open(config, Arc::new(storage.clone())).expect("open")
}

async fn id_from(broker: &Arc<Broker>) -> Option<i64> {
    let b = broker.clone();
    broker
        .producer_ids
        .clone()
        .next_id(
            move || crate::handlers::init_producer_id::fetch_block(&b),
            WAIT_BUDGET,
        )
        .await
}

fn stored_end(storage: &MemStorage) -> i64 {
    MetadataStore::new(Arc::new(storage.clone()), Path::new("/mem"))
        .load()
        .expect("load")
        .expect("a metadata file")
        .producer_id_block_end
}

/// Single node: every id handed out is below the end already in the metadata file (MemStorage
/// writes are durable at once, so "in the file" is "durable" here), and ids strictly increase.
#[tokio::test]
async fn single_node_reserves_before_handing_out() {
    let storage = MemStorage::new();
    let broker = single_node(&storage);
    assert_eq!(
        stored_end(&storage),
        0,
        "a new data dir has reserved nothing"
    );
    let mut last = -1;
    for _ in 0..2_500 {
        let id = id_from(&broker).await.expect("an id");
        assert!(id > last, "{id} after {last}");
        assert!(
            id < stored_end(&storage),
            "id {id} handed out before it was reserved"
        );
        last = id;
    }
    assert_eq!(last, 2_499, "a fresh single node hands out 0, 1, 2, ...");
}

/// kill -9 and restart (the storage as it was at the crash, MemStorage being durable at once):
/// the restarted node's ids are all above every id handed out before, prefetched block or not.
#[tokio::test]
async fn single_node_ids_continue_after_a_crash() {
    let storage = MemStorage::new();
    let broker = single_node(&storage);
    let mut seen = BTreeSet::new();
    for _ in 0..950 {
        seen.insert(id_from(&broker).await.expect("an id"));
    }
    // 950 ids: the first block is 90% out, so the second one was reserved too.
    tokio::task::yield_now().await;
    assert_eq!(
        stored_end(&storage),
        2_000,
        "the prefetch reserved a second block"
    );
    let crashed = storage.deep_clone();
    drop(broker);
    let broker = single_node(&crashed);
    let first = id_from(&broker).await.expect("an id after restart");
    assert_eq!(first, 2_000, "after the crash ids start at the stored end");
    seen.insert(first);
    for _ in 0..1_500 {
        let id = id_from(&broker).await.expect("an id");
        assert!(seen.insert(id), "id {id} repeated after a restart");
        assert!(id > 949);
    }
    // A clean restart keeps going too.
    let end = stored_end(&crashed);
    drop(broker);
    let broker = single_node(&crashed);
    assert_eq!(id_from(&broker).await, Some(end));
}

/// A reservation whose fsync fails hands out nothing from its block (the answer is
/// COORDINATOR_LOAD_IN_PROGRESS); once the disk works again ids come, none of them repeated.
#[tokio::test]
async fn single_node_failed_reservation_hands_out_nothing() {
    let storage = MemStorage::new();
    let broker = single_node(&storage);
    storage.fail_syncs(true);
    assert_eq!(id_from(&broker).await, None);
    storage.fail_syncs(false);
    tokio::time::sleep(RETRY_BACKOFF).await;
    let id = id_from(&broker).await.expect("an id once the disk works");
    assert!(id < stored_end(&storage));
    drop(broker);
    let broker = single_node(&storage);
    assert!(id_from(&broker).await.expect("an id") > id);
}
