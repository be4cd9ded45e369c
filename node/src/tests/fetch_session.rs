//! The fetch session cache (KIP-227): creation, incremental add/update/forget, what an
//! incremental answer lists, epoch and id errors, closing, eviction.

use bytes::Bytes;
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::messages::fetch_request::ForgottenTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use strata_core::ErrorCode;
use strata_core::types::Instant;

use super::*;
use crate::handlers::topic_name;

const CONSUMER: i32 = -1;
const FOLLOWER: i32 = 2;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn part(partition: i32, fetch_offset: i64) -> PartitionFetch {
    PartitionFetch {
        partition,
        fetch_offset,
        partition_max_bytes: 1 << 20,
        current_leader_epoch: 0,
        log_start_offset: -1,
        durable_end: None,
    }
}

fn topic(name: &str, partitions: Vec<PartitionFetch>) -> TopicFetch {
    TopicFetch {
        topic: name.to_string(),
        partitions,
    }
}

fn request(session_id: i32, session_epoch: i32, replica_id: i32) -> SessionRequest {
    SessionRequest {
        session_id,
        session_epoch,
        replica_id,
    }
}

/// What a read of `topics` answers: high watermark `hw` everywhere, records where
/// `with_records` names the partition.
fn answer(topics: &[TopicFetch], hw: i64, with_records: &[(&str, i32)]) -> FetchResponse {
    let responses = topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let records = if with_records.contains(&(t.topic.as_str(), p.partition)) {
                        Bytes::from_static(b"batch")
                    } else {
                        Bytes::new()
                    };
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(0)
                        .with_records(Some(records))
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic_name(&t.topic))
                .with_partitions(parts)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

/// `(topic, partition)` of every partition an answer lists, in order.
fn listed(r: &FetchResponse) -> Vec<(String, i32)> {
    r.responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic.0.to_string(), p.partition_index))
        })
        .collect()
}

fn order(topics: &[TopicFetch]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), p.partition)))
        .collect()
}

fn key(t: &str, p: i32) -> (String, i32) {
    (t.to_string(), p)
}

/// A cache holding one session over `a-0`, `a-1`, `b-0` (answered with hw 10); its id.
fn with_session(cache: &mut FetchSessionCache, replica_id: i32) -> i32 {
    let topics = vec![
        topic("a", vec![part(0, 5), part(1, 5)]),
        topic("b", vec![part(0, 5)]),
    ];
    let ctx = cache.new_context(request(0, 0, replica_id), &topics, &[], at(0));
    assert_eq!(ctx, FetchContext::Full);
    let id = cache.create(replica_id, &topics, &answer(&topics, 10, &[]), at(0));
    assert!(id > 0, "a session was created");
    cache.check_invariants();
    id
}

/// The incremental context's session topics, or a panic naming what came instead.
fn incremental(ctx: FetchContext) -> (i32, i32, Vec<TopicFetch>) {
    match ctx {
        FetchContext::Incremental {
            session_id,
            epoch,
            topics,
        } => (session_id, epoch, topics),
        other => panic!("expected an incremental context, got {other:?}"),
    }
}

#[test]
fn a_full_fetch_creates_a_session_and_the_next_epoch_is_one() {
    let mut cache = FetchSessionCache::new(7);
    let id = with_session(&mut cache, FOLLOWER);
    let ctx = cache.new_context(request(id, 1, FOLLOWER), &[], &[], at(1));
    let (sid, epoch, topics) = incremental(ctx);
    assert_eq!((sid, epoch), (id, 1));
    assert_eq!(
        order(&topics),
        [key("a", 0), key("a", 1), key("b", 0)],
        "an empty incremental request reads every partition of the session"
    );
    // The session remembered the fetch offsets of the full request.
    assert!(
        topics
            .iter()
            .all(|t| t.partitions.iter().all(|p| p.fetch_offset == 5))
    );
}

#[test]
fn an_incremental_request_adds_updates_and_forgets() {
    let mut cache = FetchSessionCache::new(7);
    let id = with_session(&mut cache, FOLLOWER);
    let mut updated = part(1, 9);
    updated.durable_end = Some(8);
    let listed_now = vec![
        topic("a", vec![updated.clone()]),
        topic("c", vec![part(3, 0)]),
    ];
    let forgotten = vec![
        ForgottenTopic::default()
            .with_topic(topic_name("b"))
            .with_partitions(vec![0]),
    ];
    let ctx = cache.new_context(request(id, 1, FOLLOWER), &listed_now, &forgotten, at(1));
    let (_, _, topics) = incremental(ctx);
    assert_eq!(order(&topics), [key("a", 0), key("a", 1), key("c", 3)]);
    assert_eq!(
        topics[0].partitions[1], updated,
        "a-1's position and durable end updated"
    );
    assert_eq!(
        topics[0].partitions[0].fetch_offset, 5,
        "a-0 kept its cached position"
    );
    cache.check_invariants();
}

#[test]
fn an_incremental_answer_lists_only_what_changed() {
    let mut cache = FetchSessionCache::new(7);
    let id = with_session(&mut cache, FOLLOWER);
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 1, FOLLOWER), &[], &[], at(1)));
    // Nothing new: the answer lists nothing, under the session's id.
    let out = cache.answer_incremental(id, epoch, answer(&topics, 10, &[]));
    assert_eq!(out.session_id, id);
    assert_eq!(out.error_code, 0);
    assert!(listed(&out).is_empty(), "{:?}", listed(&out));
    // Records on b-0 and a new high watermark everywhere: all three, once.
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 2, FOLLOWER), &[], &[], at(2)));
    let out = cache.answer_incremental(id, epoch, answer(&topics, 11, &[("b", 0)]));
    assert_eq!(listed(&out), [key("a", 0), key("a", 1), key("b", 0)]);
    // Records on a-1 only: only a-1.
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 3, FOLLOWER), &[], &[], at(3)));
    let out = cache.answer_incremental(id, epoch, answer(&topics, 11, &[("a", 1)]));
    assert_eq!(listed(&out), [key("a", 1)]);
}

#[test]
fn an_error_is_always_listed_and_the_partition_again_once_it_clears() {
    let mut cache = FetchSessionCache::new(7);
    let id = with_session(&mut cache, CONSUMER);
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 1, CONSUMER), &[], &[], at(1)));
    let mut failing = answer(&topics, 10, &[]);
    failing.responses[1].partitions[0].error_code = ErrorCode::NOT_LEADER_OR_FOLLOWER.0;
    let out = cache.answer_incremental(id, epoch, failing.clone());
    assert_eq!(listed(&out), [key("b", 0)]);
    let (_, epoch, _) = incremental(cache.new_context(request(id, 2, CONSUMER), &[], &[], at(2)));
    let out = cache.answer_incremental(id, epoch, failing);
    assert_eq!(listed(&out), [key("b", 0)], "still failing: listed again");
    // Cleared, same high watermark as before the error: listed once more, then not.
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 3, CONSUMER), &[], &[], at(3)));
    let out = cache.answer_incremental(id, epoch, answer(&topics, 10, &[]));
    assert_eq!(listed(&out), [key("b", 0)]);
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 4, CONSUMER), &[], &[], at(4)));
    let out = cache.answer_incremental(id, epoch, answer(&topics, 10, &[]));
    assert!(listed(&out).is_empty());
}

#[test]
fn an_added_partition_is_listed_in_its_first_answer() {
    let mut cache = FetchSessionCache::new(7);
    let id = with_session(&mut cache, FOLLOWER);
    let added = vec![topic("c", vec![part(0, 0)])];
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 1, FOLLOWER), &added, &[], at(1)));
    let out = cache.answer_incremental(id, epoch, answer(&topics, 10, &[]));
    assert_eq!(listed(&out), [key("c", 0)]);
}

#[test]
fn a_partition_that_returned_records_moves_to_the_end_of_the_order() {
    let mut cache = FetchSessionCache::new(7);
    let id = with_session(&mut cache, FOLLOWER);
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 1, FOLLOWER), &[], &[], at(1)));
    cache.answer_incremental(id, epoch, answer(&topics, 10, &[("a", 0)]));
    let (_, epoch, topics) =
        incremental(cache.new_context(request(id, 2, FOLLOWER), &[], &[], at(2)));
    // a-0 went behind a-1 (partitions are grouped by topic, topics in order of their first).
    assert_eq!(order(&topics), [key("a", 1), key("a", 0), key("b", 0)]);
    cache.answer_incremental(id, epoch, answer(&topics, 10, &[("a", 1)]));
    let (_, _, topics) = incremental(cache.new_context(request(id, 3, FOLLOWER), &[], &[], at(3)));
    assert_eq!(order(&topics), [key("b", 0), key("a", 0), key("a", 1)]);
    cache.check_invariants();
}

#[test]
fn session_errors() {
    let mut cache = FetchSessionCache::new(7);
    let id = with_session(&mut cache, FOLLOWER);
    let unknown = if id == 1 { 2 } else { 1 };
    let cases = [
        (
            request(unknown, 1, FOLLOWER),
            ErrorCode::FETCH_SESSION_ID_NOT_FOUND,
        ),
        (
            request(0, 1, FOLLOWER),
            ErrorCode::FETCH_SESSION_ID_NOT_FOUND,
        ),
        (request(id, 1, 3), ErrorCode::FETCH_SESSION_ID_NOT_FOUND),
        (
            request(id, 2, FOLLOWER),
            ErrorCode::INVALID_FETCH_SESSION_EPOCH,
        ),
        (
            request(id, -2, FOLLOWER),
            ErrorCode::INVALID_FETCH_SESSION_EPOCH,
        ),
    ];
    for (req, code) in cases {
        assert_eq!(
            cache.new_context(req, &[], &[], at(1)),
            FetchContext::Error(code),
            "{req:?}"
        );
    }
    // None of them touched the session: epoch 1 is still the next.
    incremental(cache.new_context(request(id, 1, FOLLOWER), &[], &[], at(1)));
    // A replayed epoch is refused.
    assert_eq!(
        cache.new_context(request(id, 1, FOLLOWER), &[], &[], at(1)),
        FetchContext::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
    );
}

#[test]
fn an_answer_overtaken_by_the_next_request_is_an_epoch_error() {
    let mut cache = FetchSessionCache::new(7);
    let id = with_session(&mut cache, FOLLOWER);
    let (_, first, topics) =
        incremental(cache.new_context(request(id, 1, FOLLOWER), &[], &[], at(1)));
    incremental(cache.new_context(request(id, 2, FOLLOWER), &[], &[], at(2)));
    let out = cache.answer_incremental(id, first, answer(&topics, 10, &[]));
    assert_eq!(out.error_code, ErrorCode::INVALID_FETCH_SESSION_EPOCH.0);
    assert!(listed(&out).is_empty());
}

#[test]
fn closing_a_session() {
    let mut cache = FetchSessionCache::new(7);
    // Epoch -1 with the id: closed, answered sessionless.
    let id = with_session(&mut cache, CONSUMER);
    let ctx = cache.new_context(request(id, -1, CONSUMER), &[], &[], at(1));
    assert_eq!(ctx, FetchContext::Sessionless);
    assert!(cache.is_empty());
    // Epoch 0 with the id: closed, and a new full fetch.
    let id = with_session(&mut cache, CONSUMER);
    assert_eq!(
        cache.new_context(request(id, 0, CONSUMER), &[], &[], at(1)),
        FetchContext::Full
    );
    assert!(cache.is_empty());
    // Forgetting every partition: closed, answered sessionless.
    let id = with_session(&mut cache, CONSUMER);
    let forgotten = vec![
        ForgottenTopic::default()
            .with_topic(topic_name("a"))
            .with_partitions(vec![0, 1]),
        ForgottenTopic::default()
            .with_topic(topic_name("b"))
            .with_partitions(vec![0]),
    ];
    let ctx = cache.new_context(request(id, 1, CONSUMER), &[], &forgotten, at(1));
    assert_eq!(ctx, FetchContext::Sessionless);
    assert!(cache.is_empty());
    // And a closed session's id is unknown afterwards.
    assert_eq!(
        cache.new_context(request(id, 2, CONSUMER), &[], &[], at(1)),
        FetchContext::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
}

#[test]
fn a_full_fetch_of_nothing_creates_no_session() {
    let mut cache = FetchSessionCache::new(7);
    assert_eq!(
        cache.create(FOLLOWER, &[], &FetchResponse::default(), at(0)),
        0
    );
    assert!(cache.is_empty());
}

#[test]
fn no_slots_means_no_sessions_and_every_fetch_full() {
    let config = crate::config::Config::default()
        .with("max.incremental.fetch.session.cache.slots", "0")
        .expect("0 is a valid slot count");
    let mut cache = FetchSessionCache::for_config(&config, 7);
    let topics = vec![topic("a", vec![part(0, 5)])];
    let ctx = cache.new_context(request(0, 0, FOLLOWER), &topics, &[], at(0));
    assert_eq!(ctx, FetchContext::Full);
    assert_eq!(
        cache.create(FOLLOWER, &topics, &answer(&topics, 10, &[]), at(0)),
        0,
        "no slot, no session: the fetch is answered sessionless"
    );
    assert!(cache.is_empty());
    let by_default = FetchSessionCache::for_config(&crate::config::Config::default(), 7);
    assert!(format!("{by_default:?}").contains("max_sessions: 1000"));
    assert!(
        crate::config::Config::default()
            .with("max.incremental.fetch.session.cache.slots", "-1")
            .is_err(),
        "a negative slot count is refused"
    );
}

#[test]
fn eviction_stale_first_then_consumers_for_followers_else_none() {
    let mut cache = FetchSessionCache::with_capacity(7, 2);
    let topics = vec![topic("a", vec![part(0, 0)])];
    let resp = answer(&topics, 0, &[]);
    let consumer = cache.create(CONSUMER, &topics, &resp, at(0));
    let follower = cache.create(FOLLOWER, &topics, &resp, at(1_000));
    assert!(consumer > 0 && follower > 0 && consumer != follower);
    // Full: a consumer cannot evict a fresh session; a follower evicts the consumer's.
    assert_eq!(cache.create(CONSUMER, &topics, &resp, at(2_000)), 0);
    let second = cache.create(3, &topics, &resp, at(2_000));
    assert!(second > 0);
    let gone = cache.new_context(request(consumer, 1, CONSUMER), &[], &[], at(2_000));
    assert_eq!(
        gone,
        FetchContext::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
    // Only followers now: another follower cannot evict a fresh one.
    assert_eq!(cache.create(4, &topics, &resp, at(3_000)), 0);
    // Keep `second` in use; `follower` goes stale and anyone may evict it.
    let later = 1_000 + EVICTION_AFTER_MS + 1;
    incremental(cache.new_context(request(second, 1, 3), &[], &[], at(later)));
    let third = cache.create(CONSUMER, &topics, &resp, at(later));
    assert!(third > 0);
    let gone = cache.new_context(request(follower, 1, FOLLOWER), &[], &[], at(later));
    assert_eq!(
        gone,
        FetchContext::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
    );
    incremental(cache.new_context(request(second, 2, 3), &[], &[], at(later)));
    assert_eq!(cache.len(), 2);
    cache.check_invariants();
}

#[test]
fn session_ids_are_positive_unique_and_follow_the_seed() {
    let ids = |seed| {
        let mut cache = FetchSessionCache::new(seed);
        let topics = vec![topic("a", vec![part(0, 0)])];
        let resp = answer(&topics, 0, &[]);
        (0..200)
            .map(|_| cache.create(FOLLOWER, &topics, &resp, at(0)))
            .collect::<Vec<_>>()
    };
    let first = ids(42);
    assert!(first.iter().all(|id| *id > 0));
    let unique: std::collections::BTreeSet<_> = first.iter().collect();
    assert_eq!(unique.len(), first.len());
    assert_eq!(first, ids(42), "the same seed draws the same ids");
    assert_ne!(first, ids(43));
}

#[test]
fn epochs_wrap_to_one() {
    assert_eq!(next_epoch(1), 2);
    assert_eq!(next_epoch(i32::MAX), 1);
}
