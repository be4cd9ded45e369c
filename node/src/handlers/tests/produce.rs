//! Produce to a compacted topic (issue #16): every record needs a key (Kafka's `LogValidator`,
//! INVALID_RECORD), compressed batches included; the check follows the topic's current policy.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, ProduceResponse};
use strata_core::ErrorCode;
use strata_core::batch::build_batch;
use strata_core::record::{decode_batch, encode_batch};
use strata_core::storage::MemStorage;

use crate::broker::Broker;
use crate::config::Config;
use crate::dispatch::tests::{produce_to_t0, round_trip};

fn broker(policy: &str) -> Arc<Broker> {
    let config = Config::default().with("log.dirs", "/mem").expect("config");
    let broker = Broker::open(config, Arc::new(MemStorage::new())).expect("open");
    let configs = BTreeMap::from([("cleanup.policy".to_string(), policy.to_string())]);
    broker.create_topic("t", 1, configs, false).expect("create");
    broker
}

async fn produce(broker: &Arc<Broker>, batch: Vec<u8>) -> ErrorCode {
    let resp: ProduceResponse =
        round_trip(broker, ApiKey::Produce, 11, &produce_to_t0(1, batch)).await;
    ErrorCode(resp.responses[0].partition_responses[0].error_code)
}

fn log_end(broker: &Broker) -> i64 {
    let p = broker.partition("t", 0).expect("partition");
    let guard = p.log();
    guard.as_ref().expect("log").log_end_offset().0
}

/// `records` as a gzip batch (codec 1 in the attributes).
fn gzipped(records: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let plain = decode_batch(&build_batch(records, 5)).expect("decodes");
    let mut header = plain.header;
    header.attributes |= 1;
    encode_batch(&header, &plain.records, None).expect("encodes")
}

#[tokio::test]
async fn a_compacted_topic_refuses_keyless_records() {
    for policy in ["compact", "compact,delete"] {
        let broker = broker(policy);
        let keyless = build_batch(&[(b"v", Some(b"k")), (b"w", None)], 5);
        assert_eq!(produce(&broker, keyless).await, ErrorCode::INVALID_RECORD);
        let gzip_keyless = gzipped(&[(b"v", Some(b"k")), (b"w", None)]);
        assert_eq!(
            produce(&broker, gzip_keyless).await,
            ErrorCode::INVALID_RECORD
        );
        assert_eq!(log_end(&broker), 0, "{policy}: nothing appended");
        let keyed = build_batch(&[(b"v", Some(b"k")), (b"w", Some(b"l"))], 5);
        assert_eq!(produce(&broker, keyed).await, ErrorCode::NONE);
        let gzip_keyed = gzipped(&[(b"v", Some(b"k"))]);
        assert_eq!(produce(&broker, gzip_keyed).await, ErrorCode::NONE);
        assert_eq!(log_end(&broker), 3, "{policy}");
    }
}

/// Both batches of a two-batch record set are checked.
#[tokio::test]
async fn every_batch_of_a_record_set_needs_keys() {
    let broker = broker("compact");
    let mut two = build_batch(&[(b"v", Some(b"k"))], 5);
    two.extend(build_batch(&[(b"w", None)], 5));
    assert_eq!(produce(&broker, two).await, ErrorCode::INVALID_RECORD);
    assert_eq!(log_end(&broker), 0);
}

/// The check follows the policy the topic has now (IncrementalAlterConfigs).
#[tokio::test]
async fn keyless_records_are_fine_once_the_topic_stops_compacting() {
    let broker = broker("delete");
    let keyless = || build_batch(&[(b"v", None)], 5);
    assert_eq!(produce(&broker, keyless()).await, ErrorCode::NONE);
    let set = |policy: &'static str| {
        move |_: &BTreeMap<String, String>| {
            Ok(BTreeMap::from([(
                "cleanup.policy".to_string(),
                policy.to_string(),
            )]))
        }
    };
    broker
        .alter_topic_configs("t", set("compact"), false)
        .expect("alter");
    assert_eq!(produce(&broker, keyless()).await, ErrorCode::INVALID_RECORD);
    broker
        .alter_topic_configs("t", set("delete"), false)
        .expect("alter");
    assert_eq!(produce(&broker, keyless()).await, ErrorCode::NONE);
}
