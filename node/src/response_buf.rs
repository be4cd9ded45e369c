//! Response frames as chunk lists, so record sets go from segment file to socket without being
//! copied into a response buffer.
//!
//! A Fetch response is mostly record bytes that the log already read into `Bytes`. Encoding it
//! with `kafka-protocol` into one `BytesMut` would copy every byte once more. [`ChunkedBuf`] is an
//! encoding target that copies the small fields but, when the encoder writes one of the record
//! sets it was told about (recognised by address and length), keeps that `Bytes` by reference as
//! its own chunk. The connection writes the chunks in order and flushes once.
//!
//! Invariant: the chunks of a [`Frame`], concatenated, are exactly the bytes the same response
//! encodes to in a `BytesMut` (checked by the tests below).

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Record sets shorter than this are copied: a separate chunk would cost more than the copy.
const MIN_ZERO_COPY: usize = 4096;

/// One response frame, length prefix included, as chunks to write in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Frame {
    pub chunks: Vec<Bytes>,
}

impl Frame {
    /// Total bytes of the frame.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one contiguous buffer (tests and small frames).
    pub fn to_vec(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

impl From<BytesMut> for Frame {
    fn from(b: BytesMut) -> Frame {
        Frame {
            chunks: vec![b.freeze()],
        }
    }
}

/// An encoding target that keeps the given record sets by reference.
#[derive(Debug)]
pub struct ChunkedBuf {
    /// Finished chunks, in order.
    chunks: Vec<Bytes>,
    /// Bytes being copied in since the last zero-copy chunk.
    current: BytesMut,
    /// Record sets to keep by reference when the encoder writes them.
    zero_copy: Vec<Bytes>,
    /// Bytes written so far (the encoder's `offset`).
    len: usize,
}

impl ChunkedBuf {
    pub fn new(zero_copy: Vec<Bytes>) -> ChunkedBuf {
        let zero_copy = zero_copy
            .into_iter()
            .filter(|b| b.len() >= MIN_ZERO_COPY)
            .collect();
        ChunkedBuf {
            chunks: Vec::new(),
            current: BytesMut::with_capacity(1024),
            zero_copy,
            len: 0,
        }
    }

    fn flush_current(&mut self) {
        if !self.current.is_empty() {
            self.chunks.push(self.current.split().freeze());
        }
    }

    /// The frame: a 4-byte length prefix, then everything written.
    pub fn finish(mut self) -> Frame {
        self.flush_current();
        let mut chunks = Vec::with_capacity(self.chunks.len() + 1);
        let len = i32::try_from(self.len).expect("a response frame is smaller than 2 GiB");
        chunks.push(Bytes::copy_from_slice(&len.to_be_bytes()));
        chunks.append(&mut self.chunks);
        Frame { chunks }
    }
}

// SAFETY: `ChunkedBuf` is a `BytesMut` (`current`) plus chunks that are already finished.
// `remaining_mut`, `chunk_mut` and `advance_mut` delegate to `current`, so the `BufMut` contract
// (`advance_mut(cnt)` only after `cnt` bytes of `chunk_mut()` were initialised) is `BytesMut`'s.
// `put_slice` either copies through `current` or appends an owned `Bytes` chunk; both keep
// `len` equal to the bytes written.
#[allow(unsafe_code)]
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded under the caller's guarantee, see the impl comment.
        unsafe { self.current.advance_mut(cnt) };
        self.len += cnt;
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= MIN_ZERO_COPY {
            let found = self
                .zero_copy
                .iter()
                .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
                .cloned();
            if let Some(records) = found {
                self.flush_current();
                self.chunks.push(records);
                self.len += src.len();
                return;
            }
        }
        self.current.extend_from_slice(src);
        self.len += src.len();
    }
}

impl ByteBufMut for ChunkedBuf {
    fn offset(&self) -> usize {
        self.len
    }

    /// Gaps (`seek`/`range`) are used only when encoding compressed record batches, never when
    /// encoding a response; they work within the bytes copied since the last zero-copy chunk.
    fn seek(&mut self, offset: usize) {
        let start = self.len - self.current.len();
        assert!(
            offset >= start,
            "ChunkedBuf cannot seek back into a finished chunk"
        );
        self.current.resize(offset - start, 0);
        self.len = offset;
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let start = self.len - self.current.len();
        assert!(
            r.start >= start,
            "ChunkedBuf cannot reach back into a finished chunk"
        );
        &mut self.current[r.start - start..r.end - start]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(7)
                    .with_records(Some(r.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(StrBytes::from_static_str("t").into())
                .with_partitions(partitions),
        ])
    }

    /// The chunks concatenate to the same bytes as a plain encoding, for flexible and
    /// non-flexible versions, and the big record sets are shared, not copied.
    #[test]
    fn chunked_encoding_matches_plain_encoding() {
        let big = Bytes::from(vec![7u8; 100_000]);
        let small = Bytes::from(vec![9u8; 100]);
        let records = vec![big.clone(), small.clone(), Bytes::new(), big.clone()];
        for version in [4i16, 11, 12] {
            let resp = response(&records);
            let mut plain = BytesMut::new();
            plain.put_i32(0);
            resp.encode(&mut plain, version).expect("encode");
            let len = (plain.len() - 4) as i32;
            plain[..4].copy_from_slice(&len.to_be_bytes());

            let mut chunked = ChunkedBuf::new(records.clone());
            resp.encode(&mut chunked, version).expect("encode");
            let frame = chunked.finish();
            assert_eq!(frame.to_vec(), plain.to_vec(), "version {version}");
            let shared = frame
                .chunks
                .iter()
                .filter(|c| c.as_ptr() == big.as_ptr())
                .count();
            assert_eq!(shared, 2, "both big record sets are kept by reference");
        }
    }
}
