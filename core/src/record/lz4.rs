//! LZ4 as Kafka writes it for v2 batches: the standard LZ4 frame format (Kafka's
//! `Lz4BlockOutputStream`; the broken header checksum of old clients applies to magic v0 only).
//!
//! ```text
//! offset  size  field
//!      0     4  magic             04 22 4D 18 (0x184D2204, little-endian)
//!      4     1  FLG               version 01, block independence (Kafka: 1), block checksum,
//!                                 content size, content checksum, dictionary id flags
//!      5     1  BD                block maximum size (Kafka: 4 = 64 KiB)
//!      …   0/8  content size      if flagged
//!      …   0/4  dictionary id     if flagged
//!      …     1  header checksum   second byte of xxh32 of FLG..dictionary id
//!      …     …  blocks, each:     u32 LE size (high bit: stored uncompressed), data,
//!                                 u32 block checksum if flagged
//!      …     4  end mark          0
//!      …   0/4  content checksum  if flagged
//! ```
//!
//! `lz4_flex` decodes (checking the header checksum and every flagged checksum), but takes a
//! frame cut before its end mark for a whole one. Kafka's reader refuses that
//! (`PREMATURE_EOS`), and so do we: [`check_frames`] walks the block sizes first and requires
//! the region to be whole frames, each ending with its end mark.

use std::io::Write;

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::compression::{Codec, read_capped};
use super::error::RecordError;

const MAGIC: u32 = 0x184D_2204;
const FLG_DICT_ID: u8 = 0x01;
const FLG_CONTENT_CHECKSUM: u8 = 0x04;
const FLG_CONTENT_SIZE: u8 = 0x08;
const FLG_BLOCK_CHECKSUM: u8 = 0x10;
const BLOCK_UNCOMPRESSED: u32 = 0x8000_0000;

fn failed(reason: &str) -> RecordError {
    RecordError::Decompression {
        codec: "lz4",
        reason: reason.to_string(),
    }
}

/// Inflates LZ4 frames, refusing output over `limit` bytes.
pub(crate) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    check_frames(data)?;
    read_capped(Codec::Lz4, FrameDecoder::new(data), limit)
}

/// Compresses as Kafka's `Lz4BlockOutputStream` does: one frame of independent 64 KiB blocks
/// (Kafka's reader refuses linked blocks), no checksums but the header's, no content size.
pub(crate) fn compress(data: &[u8]) -> Result<Vec<u8>, RecordError> {
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent);
    let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
    let done = encoder.write_all(data).map_err(|e| e.to_string());
    done.and_then(|()| encoder.finish().map_err(|e| e.to_string()))
        .map_err(|reason| RecordError::Compression {
            codec: "lz4",
            reason,
        })
}

/// `data` is one or more whole frames, back to back.
pub(crate) fn check_frames(data: &[u8]) -> Result<(), RecordError> {
    if data.is_empty() {
        return Err(failed("no frame"));
    }
    let mut pos = 0;
    while pos < data.len() {
        pos = frame_end(data, pos)?;
    }
    Ok(())
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, RecordError> {
    let b = data
        .get(at..at.saturating_add(4))
        .ok_or_else(|| failed("frame cut short"))?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Where the frame starting at `start` ends (past its end mark and content checksum).
fn frame_end(data: &[u8], start: usize) -> Result<usize, RecordError> {
    if u32_at(data, start)? != MAGIC {
        return Err(failed("not an LZ4 frame (bad magic)"));
    }
    let flg = *data
        .get(start + 4)
        .ok_or_else(|| failed("frame cut short"))?;
    let mut pos = start + 6; // magic, FLG, BD
    if flg & FLG_CONTENT_SIZE != 0 {
        pos += 8;
    }
    if flg & FLG_DICT_ID != 0 {
        pos += 4;
    }
    pos += 1; // header checksum
    let block_checksum = if flg & FLG_BLOCK_CHECKSUM != 0 { 4 } else { 0 };
    loop {
        let size = u32_at(data, pos)?;
        pos += 4;
        if size == 0 {
            break; // end mark
        }
        pos = pos.saturating_add((size & !BLOCK_UNCOMPRESSED) as usize + block_checksum);
    }
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        pos += 4;
    }
    if pos > data.len() {
        return Err(failed("frame cut short"));
    }
    Ok(pos)
}
