//! The cleaner's view of records inside a batch: `crate::record`'s decoding (all four codecs)
//! and re-encoding, and the KIP-534 delete horizon.

pub use crate::record::{Record, decode_batch, delete_horizon, encode_batch};
