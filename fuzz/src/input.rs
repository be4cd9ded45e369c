//! A forgiving reader for the byte-level input formats of the file targets, and the matching
//! writer the seed generator uses. Every read succeeds: past the end of the input it yields
//! zeros or empty slices, so any byte string is a valid input.

/// Reads fields front to back; never fails.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A section: a big-endian `u16` length, then that many bytes (clamped to what is left).
    pub fn section(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.bytes(n)
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Builds inputs in the format [`Reader`] reads (for seeds).
#[derive(Default)]
pub struct Writer {
    pub out: Vec<u8>,
}

impl Writer {
    pub fn u8(mut self, v: u8) -> Writer {
        self.out.push(v);
        self
    }

    pub fn u16(mut self, v: u16) -> Writer {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(mut self, v: u32) -> Writer {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn section(mut self, bytes: &[u8]) -> Writer {
        let n = u16::try_from(bytes.len()).expect("seed sections are below 64 KiB");
        self.out.extend_from_slice(&n.to_be_bytes());
        self.out.extend_from_slice(bytes);
        self
    }

    pub fn raw(mut self, bytes: &[u8]) -> Writer {
        self.out.extend_from_slice(bytes);
        self
    }
}
