//! Zigzag varints as Kafka writes them inside v2 records (`ByteUtils.readVarint` /
//! `readVarlong`, the protobuf encoding): 7 bits a byte, least significant group first, the high
//! bit set on every byte but the last; a signed value `v` is stored as `(v << 1) ^ (v >> 63)`.
//!
//! Reading follows Kafka exactly: a varint has at most 5 bytes and a varlong at most 10 (a longer
//! one is malformed); bits past the type's width in the last byte are dropped, as Java's shifts
//! drop them. Writing always produces the shortest form.

use bytes::Bytes;

use super::error::RecordError;

/// Longest varint (`int32`) Kafka reads.
const MAX_VARINT_BYTES: usize = 5;
/// Longest varlong (`int64`) Kafka reads.
const MAX_VARLONG_BYTES: usize = 10;

/// A read position in a buffer of records. Byte slices it hands out share the buffer
/// (`Bytes::slice`), so decoded keys and values cost no copy.
pub(crate) struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// A cursor at `pos` (at most `buf.len()`).
    pub(crate) fn at(buf: &'a Bytes, pos: usize) -> Cursor<'a> {
        assert!(
            pos <= buf.len(),
            "cursor position past the end of its buffer"
        );
        Cursor { buf, pos }
    }

    /// Bytes read so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn read_i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        let b = *self.buf.get(self.pos).ok_or(RecordError::PastEnd {
            field,
            at: self.pos,
        })?;
        self.pos += 1;
        Ok(b as i8)
    }

    /// The next `len` bytes, shared with the buffer.
    pub(crate) fn read_bytes(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<Bytes, RecordError> {
        if len > self.remaining() {
            return Err(RecordError::PastEnd {
                field,
                at: self.pos,
            });
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    fn read_unsigned(&mut self, max_bytes: usize) -> Result<u64, RecordError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(RecordError::BadVarint { at: start });
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::BadVarint { at: start })
    }

    /// A zigzag `int32` of at most 5 bytes.
    pub(crate) fn read_varint(&mut self) -> Result<i32, RecordError> {
        // Kafka shifts into an int: bits past 32 are dropped.
        let raw = self.read_unsigned(MAX_VARINT_BYTES)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A zigzag `int64` of at most 10 bytes.
    pub(crate) fn read_varlong(&mut self) -> Result<i64, RecordError> {
        let raw = self.read_unsigned(MAX_VARLONG_BYTES)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
}

/// Appends `v` as a zigzag varlong (also right for an `int32` varint: same bytes).
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends `v` as a zigzag varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, i64::from(v));
}
