//! The four codecs of a v2 batch's records region (attribute bits 0-2), as Kafka's clients
//! write them:
//!
//! - 1, gzip: RFC 1952 members (Java's `GZIPOutputStream`), several read in turn. `flate2`,
//!   pure-Rust backend.
//! - 2, snappy: xerial framing or one raw block ([`super::snappy`]). `snap`, pure Rust.
//! - 3, lz4: LZ4 frames ([`super::lz4`]). `lz4_flex`, pure Rust.
//! - 4, zstd: standard zstd frames (zstd-jni, librdkafka). `zstd`, bindings to libzstd.
//!
//! Encoding picks what Kafka's Java producer writes at its default levels (gzip 6, zstd 3; lz4's
//! fast compressor), so every client can read a batch the cleaner rewrote.
//!
//! Every decompression is capped: output beyond the caller's limit is
//! [`RecordError::TooLarge`], found while streaming (nothing past `limit + 1` bytes is ever
//! produced). zstd frames also declare a window that the decoder allocates up front; frames
//! asking for more than [`ZSTD_WINDOW_LOG_MAX`] are refused, so a 20-byte frame cannot make us
//! allocate libzstd's default maximum of 128 MiB.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::error::RecordError;
use super::{lz4, snappy};

/// Largest zstd window we accept: 2^24 = 16 MiB. zstd levels 1-19 write windows of at most
/// 2^23 (8 MiB) even when the input size is unknown; only the "ultra" levels 20-22 ask for more.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// zstd level of Kafka's producer default (`compression.zstd.level`).
const ZSTD_LEVEL: i32 = 3;

/// Compression codec of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec of a batch's `attributes` (bits 0-2); 5-7 are unknown.
    pub fn from_attributes(attributes: i16) -> Result<Codec, RecordError> {
        match attributes & 0x07 {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            other => Err(RecordError::UnknownCodec(other)),
        }
    }

    /// The codec's id in attribute bits 0-2.
    pub fn id(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// Kafka's name for the codec (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// Inflates a records region compressed with `codec` (not `None`), refusing output over `limit`
/// bytes.
pub(crate) fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => read_capped(codec, MultiGzDecoder::new(data), limit),
        Codec::Snappy => snappy::decompress(data, limit),
        Codec::Lz4 => lz4::decompress(data, limit),
        Codec::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(data).map_err(|e| failed(codec, e))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| failed(codec, e))?;
            read_capped(codec, decoder, limit)
        }
    }
}

fn failed(codec: Codec, reason: impl ToString) -> RecordError {
    RecordError::Decompression {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

/// Reads `reader` to its end, or to `limit + 1` bytes, whichever comes first.
pub(crate) fn read_capped(
    codec: Codec,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| failed(codec, e))?;
    if out.len() > limit {
        return Err(RecordError::TooLarge { limit });
    }
    Ok(out)
}

/// Compresses a records region as Kafka's Java producer does.
pub(crate) fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    let failed = |reason: String| RecordError::Compression {
        codec: codec.name(),
        reason,
    };
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(data).map_err(|e| failed(e.to_string()))?;
            encoder.finish().map_err(|e| failed(e.to_string()))
        }
        Codec::Snappy => snappy::compress(data),
        Codec::Lz4 => lz4::compress(data),
        Codec::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).map_err(|e| failed(e.to_string())),
    }
}
