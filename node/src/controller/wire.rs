//! Frames on the `CONTROLLER://` listener: `[len u32be][postcard Envelope]` (see
//! `strata_core::rpc`).
//!
//! Invariant: a declared length above [`MAX_FRAME_BYTES`] is refused before any buffer grows
//! for it, and an undecodable body is an error, never a panic; either closes the connection.

use bytes::{Buf, BytesMut};
use strata_core::rpc::{self, Envelope, MAX_FRAME_BYTES};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    #[error("{0}")]
    Malformed(#[from] rpc::CodecError),
    #[error("peer closed the connection mid-frame")]
    Truncated,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `envelope` as one frame.
pub fn frame(envelope: &Envelope) -> Vec<u8> {
    let body = rpc::encode(envelope);
    let len = u32::try_from(body.len()).expect("internal messages are far below 4 GiB");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads whole frames from a stream. [`FrameReader::next`] is cancel-safe: partial frames stay
/// buffered.
#[derive(Debug)]
pub struct FrameReader<R> {
    rd: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(rd: R) -> FrameReader<R> {
        FrameReader {
            rd,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// The next envelope; `Ok(None)` when the peer closed cleanly between frames.
    pub async fn next(&mut self) -> Result<Option<Envelope>, WireError> {
        loop {
            if let Some(envelope) = self.take_frame()? {
                return Ok(Some(envelope));
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(WireError::Truncated)
                };
            }
        }
    }

    fn take_frame(&mut self) -> Result<Option<Envelope>, WireError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(WireError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        let body = self.buf.split_to(len);
        Ok(Some(rpc::decode(&body)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::rpc::{Request, Response};
    use strata_core::types::NodeId;

    #[tokio::test]
    async fn frames_round_trip_and_garbage_is_an_error() {
        let a = Envelope::Raft {
            from: NodeId(1),
            message: vec![1, 2, 3],
        };
        let b = Envelope::Request {
            correlation_id: 9,
            request: Request::FetchMetadata {
                from_offset: 3,
                max_wait_ms: 10,
            },
        };
        let mut bytes = frame(&a);
        bytes.extend(frame(&b));
        let mut r = FrameReader::new(&bytes[..]);
        assert_eq!(r.next().await.expect("a"), Some(a));
        assert_eq!(r.next().await.expect("b"), Some(b));
        assert_eq!(r.next().await.expect("eof"), None);

        let mut r = FrameReader::new(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(r.next().await, Err(WireError::TooLarge(_))));
        let mut r = FrameReader::new(&[0, 0, 0, 2, 0xff, 0xff][..]);
        assert!(matches!(r.next().await, Err(WireError::Malformed(_))));
        let whole = frame(&Envelope::Response {
            correlation_id: 1,
            response: Response::NotController { leader: None },
        });
        let mut r = FrameReader::new(&whole[..whole.len() - 1]);
        assert!(matches!(r.next().await, Err(WireError::Truncated)));
    }
}
