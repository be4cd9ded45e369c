//! The image as a Raft snapshot holds it: `postcard(MetadataImage)`.
//!
//! Postcard is not self-describing, so the image's fields are only ever appended at the end,
//! and a snapshot written before a field existed ends where that field would start. Decoding
//! tries the current layout first (which must consume every byte), then each older layout,
//! newest first, filling the missing fields with their empty values. The layouts cannot be
//! confused: an older snapshot is too short for the current layout, and a current one leaves
//! bytes over for an older layout.
//!
//! | version | fields |
//! |---|---|
//! | 0 | `offset, cluster_id, brokers, topics, next_producer_id` |
//! | 1 | version 0 + `offline_replicas` |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::image::{BrokerImage, MetadataImage, TopicImage};
use crate::types::NodeId;

/// Version 0 of the image (before offline replicas).
#[derive(Serialize, Deserialize)]
struct ImageV0 {
    offset: u64,
    cluster_id: Option<String>,
    brokers: BTreeMap<NodeId, BrokerImage>,
    topics: BTreeMap<String, TopicImage>,
    next_producer_id: i64,
}

/// Encodes the image for a snapshot.
pub fn encode_image(image: &MetadataImage) -> Vec<u8> {
    postcard::to_allocvec(image).expect("serialising an image into a Vec cannot fail")
}

/// Decodes a snapshot's image, of the current layout or an older one (see the module docs).
pub fn decode_image(bytes: &[u8]) -> Result<MetadataImage, postcard::Error> {
    let current = exact::<MetadataImage>(bytes);
    if current.is_ok() {
        return current;
    }
    if let Ok(v0) = exact::<ImageV0>(bytes) {
        return Ok(MetadataImage {
            offset: v0.offset,
            cluster_id: v0.cluster_id,
            brokers: v0.brokers,
            topics: v0.topics,
            next_producer_id: v0.next_producer_id,
            offline_replicas: BTreeMap::new(),
        });
    }
    current
}

/// Decodes `T` from all of `bytes` (bytes left over are an error).
fn exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(postcard::Error::DeserializeUnexpectedEnd)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn image() -> MetadataImage {
        let mut image = MetadataImage {
            offset: 42,
            cluster_id: Some("c".into()),
            next_producer_id: 2000,
            ..MetadataImage::default()
        };
        image.brokers.insert(
            NodeId(1),
            BrokerImage {
                broker_id: NodeId(1),
                broker_epoch: 7,
                host: "h".into(),
                port: 9092,
                rack: None,
                fenced: false,
            },
        );
        image
    }

    #[test]
    fn current_layout_round_trips_with_offline_replicas() {
        let mut image = image();
        image
            .offline_replicas
            .insert(NodeId(1), BTreeSet::from([("t".to_string(), 3)]));
        assert_eq!(decode_image(&encode_image(&image)).expect("decodes"), image);
    }

    #[test]
    fn version_0_snapshot_decodes_with_no_offline_replicas() {
        let image = image();
        let v0 = ImageV0 {
            offset: image.offset,
            cluster_id: image.cluster_id.clone(),
            brokers: image.brokers.clone(),
            topics: image.topics.clone(),
            next_producer_id: image.next_producer_id,
        };
        let bytes = postcard::to_allocvec(&v0).expect("encodes");
        assert_eq!(decode_image(&bytes).expect("decodes"), image);
        // And the current layout is never mistaken for version 0.
        assert!(exact::<ImageV0>(&encode_image(&image)).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_image(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode_image(&[]).is_err());
    }
}
