//! Kafka framing: every request and response is an `i32` big-endian length followed by that
//! many bytes.
//!
//! Invariant: a frame is parsed only once it is wholly read, and its declared length is
//! checked against `socket.request.max.bytes` ([`frame_size`]) *before* any buffer is made to
//! hold it, so a hostile length prefix cannot make us allocate (the reader is
//! `crate::connection`'s).

use bytes::{BufMut, BytesMut};
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

/// The size of the frame a length prefix announces, once checked against `max`
/// (`socket.request.max.bytes`).
pub fn frame_size(prefix: [u8; LENGTH_PREFIX], max: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    let size = usize::try_from(size).map_err(|_| FrameError::Negative(size))?;
    if size > max {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max,
        });
    }
    Ok(size)
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
    fn oversized_and_negative_frames_are_refused() {
        assert_eq!(frame_size([0, 0, 0, 100], 100), Ok(100));
        assert_eq!(frame_size([0, 0, 0, 0], 100), Ok(0));
        assert_eq!(
            frame_size([0x7f, 0xff, 0xff, 0xff], 1 << 20),
            Err(FrameError::TooLarge {
                size: i32::MAX as i64,
                max: 1 << 20
            })
        );
        assert_eq!(
            frame_size([0xff, 0xff, 0xff, 0xfe], 100),
            Err(FrameError::Negative(-2))
        );
    }

    #[test]
    fn response_frames_carry_their_length() {
        let mut out = begin_frame(8);
        out.put_slice(b"hello");
        finish_frame(&mut out);
        assert_eq!(&out[..], &[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    }
}
