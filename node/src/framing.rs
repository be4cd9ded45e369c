//! Kafka framing: every request and response is an `i32` big-endian length followed by that
//! many bytes.
//!
//! Invariant: a frame is parsed only once it is wholly buffered, and its declared length is
//! checked against `socket.request.max.bytes` *before* any buffer grows to hold it, so a
//! hostile length prefix cannot make us allocate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// A frame that must close the connection.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
}

/// Takes the next whole frame (without its length prefix) out of `buf`, or `None` if more bytes
/// are needed. On `None`, `buf` may be reserved to fit the rest of the frame.
pub fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < LENGTH_PREFIX {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max,
        });
    }
    if buf.len() < LENGTH_PREFIX + size {
        buf.reserve(LENGTH_PREFIX + size - buf.len());
        return Ok(None);
    }
    buf.advance(LENGTH_PREFIX);
    Ok(Some(buf.split_to(size).freeze()))
}

/// Starts a response frame: reserves the length prefix, to be filled by [`finish_frame`].
pub fn begin_frame(capacity: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(LENGTH_PREFIX + capacity);
    out.put_i32(0);
    out
}

/// Writes the length prefix of a frame started with [`begin_frame`].
pub fn finish_frame(out: &mut BytesMut) {
    let len = (out.len() - LENGTH_PREFIX) as i32;
    out[..LENGTH_PREFIX].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_frames_wait_for_more() {
        let mut buf = BytesMut::new();
        assert_eq!(next_frame(&mut buf, 100), Ok(None));
        buf.put_slice(&[0, 0]);
        assert_eq!(next_frame(&mut buf, 100), Ok(None));
        buf.put_slice(&[0, 3, b'a']);
        assert_eq!(next_frame(&mut buf, 100), Ok(None));
        buf.put_slice(b"bc");
        buf.put_slice(&[0, 0, 0, 1, b'z', 0]);
        assert_eq!(
            next_frame(&mut buf, 100),
            Ok(Some(Bytes::from_static(b"abc")))
        );
        assert_eq!(
            next_frame(&mut buf, 100),
            Ok(Some(Bytes::from_static(b"z")))
        );
        assert_eq!(next_frame(&mut buf, 100), Ok(None));
        assert_eq!(&buf[..], &[0]);
    }

    #[test]
    fn oversized_and_negative_frames_are_refused_before_buffering() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            next_frame(&mut buf, 1 << 20),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(buf.capacity() < 1 << 20);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(next_frame(&mut buf, 100), Err(FrameError::Negative(-2)));
    }

    #[test]
    fn response_frames_carry_their_length() {
        let mut out = begin_frame(8);
        out.put_slice(b"hello");
        finish_frame(&mut out);
        assert_eq!(&out[..], &[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    }
}
