//! The consumer protocol's bytes (what a member's JoinGroup metadata and SyncGroup assignment
//! carry, opaque to the broker) and the range assignor the group leader runs.
//!
//! Format (Kafka's `ConsumerProtocol`): an int16 version, then a `ConsumerProtocolSubscription`
//! (topics, user data, owned partitions v1+, generation v2+, rack v3+) or a
//! `ConsumerProtocolAssignment` (assigned partitions, user data) encoded at that version.
//! We write version 1 (owned partitions, what eager rebalancing needs) and read 0..=3, since a
//! group may mix clients.
//!
//! Range (Kafka's `RangeAssignor`, `partition.assignment.strategy` default's first entry): per
//! topic, the members subscribed to it in member-id order, partitions in order, the first
//! `partitions % members` members one partition more. Deterministic, so every run of the
//! simulator assigns alike.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The protocol type consumers join with.
pub const PROTOCOL_TYPE: &str = "consumer";
/// The assignor's name, as Kafka's clients spell it.
pub const RANGE: &str = "range";
/// The consumer protocol version this client writes.
const WRITE_VERSION: i16 = 1;
/// The highest consumer protocol version this client reads.
const READ_MAX_VERSION: i16 = 3;

/// A topic partition on the client side.
pub type TopicPartitions = Vec<(String, i32)>;

/// Encodes a member's subscription (JoinGroup protocol metadata).
pub fn encode_subscription(topics: &[String], owned: &[(String, i32)]) -> Bytes {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(
            group_by_topic(owned)
                .into_iter()
                .map(|(topic, partitions)| {
                    OwnedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    encode_versioned(&subscription)
}

/// The topics a member subscribes to, from its JoinGroup metadata.
pub fn decode_subscription(bytes: &Bytes) -> Result<Vec<String>, String> {
    let subscription: ConsumerProtocolSubscription = decode_versioned(bytes)?;
    Ok(subscription
        .topics
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect())
}

/// Encodes an assignment (SyncGroup).
pub fn encode_assignment(partitions: &[(String, i32)]) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        group_by_topic(partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    encode_versioned(&assignment)
}

/// The partitions of an assignment, sorted. An empty byte string (a member the leader left
/// out) is an empty assignment.
pub fn decode_assignment(bytes: &Bytes) -> Result<TopicPartitions, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let assignment: ConsumerProtocolAssignment = decode_versioned(bytes)?;
    let mut partitions: TopicPartitions = assignment
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic.0.as_str().to_owned(), *p))
        })
        .collect();
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

/// The range assignment of `partitions_per_topic` to `members` (member id → subscribed topics).
/// Every member gets an entry, possibly empty; topics nobody subscribes to are not assigned.
pub fn range_assign(
    members: &BTreeMap<String, Vec<String>>,
    partitions_per_topic: &BTreeMap<String, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out: BTreeMap<String, TopicPartitions> =
        members.keys().map(|m| (m.clone(), Vec::new())).collect();
    for (topic, &count) in partitions_per_topic {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let n = i32::try_from(subscribers.len()).unwrap_or(i32::MAX);
        let per_member = count / n;
        let extra = count % n;
        let mut next = 0;
        for (i, member) in subscribers.into_iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let take = per_member + i32::from(i < extra);
            let assigned = out.get_mut(member).expect("every member has an entry");
            assigned.extend((next..next + take).map(|p| (topic.clone(), p)));
            next += take;
        }
        assert_eq!(next, count, "range assigns every partition once");
    }
    for partitions in out.values_mut() {
        partitions.sort();
    }
    out
}

fn group_by_topic(partitions: &[(String, i32)]) -> BTreeMap<String, Vec<i32>> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    for partitions in by_topic.values_mut() {
        partitions.sort_unstable();
        partitions.dedup();
    }
    by_topic
}

fn encode_versioned<T: Encodable>(message: &T) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(WRITE_VERSION);
    message
        .encode(&mut buf, WRITE_VERSION)
        .expect("a consumer protocol message of our own making encodes");
    buf.freeze()
}

fn decode_versioned<T: Decodable>(bytes: &Bytes) -> Result<T, String> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err("consumer protocol message shorter than its version".to_string());
    }
    // Kafka reads newer versions as the highest it knows (fields are only ever appended).
    let version = buf.get_i16().min(READ_MAX_VERSION);
    if version < 0 {
        return Err(format!("consumer protocol version {version}"));
    }
    T::decode(&mut buf, version).map_err(|e| format!("consumer protocol v{version}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn range_spreads_partitions_with_the_first_members_taking_the_extra() {
        let assigned = range_assign(
            &members(&[("b", &["t"]), ("a", &["t"]), ("c", &["t"])]),
            &BTreeMap::from([("t".to_string(), 7)]),
        );
        let p = |xs: &[i32]| xs.iter().map(|p| ("t".to_string(), *p)).collect::<Vec<_>>();
        assert_eq!(assigned["a"], p(&[0, 1, 2]));
        assert_eq!(assigned["b"], p(&[3, 4]));
        assert_eq!(assigned["c"], p(&[5, 6]));
    }

    #[test]
    fn range_leaves_extra_members_empty_and_skips_unsubscribed_topics() {
        let assigned = range_assign(
            &members(&[("a", &["t"]), ("b", &["t"]), ("c", &["u"])]),
            &BTreeMap::from([("t".to_string(), 1), ("v".to_string(), 3)]),
        );
        assert_eq!(assigned["a"], vec![("t".to_string(), 0)]);
        assert!(assigned["b"].is_empty());
        assert!(assigned["c"].is_empty());
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let topics = vec!["t".to_string(), "u".to_string()];
        let owned = vec![("t".to_string(), 2), ("t".to_string(), 0)];
        let bytes = encode_subscription(&topics, &owned);
        assert_eq!(decode_subscription(&bytes).expect("decodes"), topics);
        let parts = vec![("u".to_string(), 1), ("t".to_string(), 3)];
        let decoded = decode_assignment(&encode_assignment(&parts)).expect("decodes");
        assert_eq!(decoded, vec![("t".to_string(), 3), ("u".to_string(), 1)]);
        assert_eq!(decode_assignment(&Bytes::new()).expect("empty"), Vec::new());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_subscription(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0xff, 0xff, 1])).is_err());
    }
}
