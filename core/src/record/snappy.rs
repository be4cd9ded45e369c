//! Snappy as Kafka clients write it: the xerial-snappy framing of Kafka's Java client
//! (`SnappyOutputStream`), or one raw snappy block (librdkafka writes raw blocks).
//!
//! ## xerial framing
//!
//! ```text
//! offset  size  field
//!      0     8  magic                 82 'S' 'N' 'A' 'P' 'P' 'Y' 00
//!      8     4  version               int32 BE, 1
//!     12     4  compatible version    int32 BE, 1
//!     16     …  blocks, each:         int32 BE length, then that many bytes of one raw
//!                                     snappy block (up to 32 KiB of input per block)
//! ```
//!
//! A stream may hold several such streams back to back (snappy-java reads a magic where a block
//! length would be as the start of a concatenated stream); we read them the same way. Input that
//! does not start with the magic is one raw snappy block, as snappy-java also falls back to.
//!
//! Before a block is inflated its declared length (the varint at the start of a raw block) is
//! checked against what is left of the caller's limit, so a decompression bomb is refused before
//! any memory is taken for it.

use snap::raw::{Decoder, Encoder, decompress_len};

use super::error::RecordError;

const CODEC: &str = "snappy";
const MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version, compatible version.
const STREAM_HEADER_LEN: usize = 16;
/// snappy-java's `DEFAULT_VERSION` and `MINIMUM_COMPATIBLE_VERSION`.
const VERSION: i32 = 1;
const COMPATIBLE_VERSION: i32 = 1;
/// snappy-java's default block size (`SnappyOutputStream.DEFAULT_BLOCK_SIZE`).
const BLOCK_SIZE: usize = 32 * 1024;

fn failed(reason: impl ToString) -> RecordError {
    RecordError::Decompression {
        codec: CODEC,
        reason: reason.to_string(),
    }
}

/// Inflates framed or raw snappy, refusing output over `limit` bytes.
pub(crate) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    if data.starts_with(&MAGIC) {
        decompress_framed(data, limit, &mut out)?;
    } else {
        decompress_block(data, limit, &mut out)?;
    }
    Ok(out)
}

fn decompress_framed(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.starts_with(&MAGIC) {
            if rest.len() < STREAM_HEADER_LEN {
                return Err(failed("truncated xerial stream header"));
            }
            pos += STREAM_HEADER_LEN;
            continue;
        }
        let Some(len_bytes) = rest.get(..4) else {
            return Err(failed("truncated xerial block length"));
        };
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let block = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(4..4 + len))
            .ok_or_else(|| failed(format!("xerial block length {len} past the end")))?;
        decompress_block(block, limit, out)?;
        pos += 4 + block.len();
    }
    Ok(())
}

/// Appends one raw snappy block to `out`.
fn decompress_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let len = decompress_len(block).map_err(failed)?;
    if len > limit.saturating_sub(out.len()) {
        return Err(RecordError::TooLarge { limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(failed)?;
    out.truncate(start + written);
    Ok(())
}

/// Compresses `data` with the xerial framing Kafka's Java client writes, which every client
/// reads (librdkafka, Java, Go and Python clients all detect the magic).
pub(crate) fn compress(data: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(STREAM_HEADER_LEN + data.len() / 2);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&COMPATIBLE_VERSION.to_be_bytes());
    let mut encoder = Encoder::new();
    for chunk in data.chunks(BLOCK_SIZE) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| RecordError::Compression {
                codec: CODEC,
                reason: e.to_string(),
            })?;
        // A block of at most 32 KiB of input compresses to well under 2 GiB.
        let len =
            i32::try_from(block.len()).map_err(|_| RecordError::EncodedTooLarge(block.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}
