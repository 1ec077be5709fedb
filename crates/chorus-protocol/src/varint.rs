//! lib0 variable-length integers, byte arrays and strings, with strict bounds checks.

use crate::DecodeError;
use bytes::{BufMut, Bytes, BytesMut};

/// The largest integer lib0 (JavaScript) can represent exactly: 2^53 - 1.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// A cursor over one frame. Byte-array reads return zero-copy slices.
pub struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Start reading at the first byte of `buf`.
    pub fn new(buf: &'a Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Read a lib0 varuint; refuses values beyond 53 bits.
    pub fn read_var_u64(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(DecodeError::TruncatedVarint);
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            // Eight groups (56 bits) already exceed 53 bits; stop before shifting out of range.
            if shift >= 56 {
                return Err(DecodeError::VarintOverflow);
            }
        }
        if value > MAX_SAFE {
            return Err(DecodeError::VarintOverflow);
        }
        Ok(value)
    }

    /// Read a varuint length followed by that many bytes.
    pub fn read_var_bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.read_var_u64()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::TruncatedPayload)?;
        if len > self.remaining() {
            return Err(DecodeError::TruncatedPayload);
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    /// Read a varuint length followed by that many bytes of UTF-8.
    pub fn read_var_string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.read_var_bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8)
    }
}

/// Builds one frame.
pub struct Writer {
    buf: BytesMut,
}

impl Writer {
    /// A writer with room for `cap` bytes before it reallocates.
    pub fn with_capacity(cap: usize) -> Self {
        Writer {
            buf: BytesMut::with_capacity(cap),
        }
    }

    /// Write one raw byte (message tags are single-byte varints).
    pub fn write_u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    /// Write a lib0 varuint.
    pub fn write_var_u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// Write a varuint length and the bytes.
    pub fn write_var_bytes(&mut self, b: &[u8]) {
        self.write_var_u64(b.len() as u64);
        self.buf.put_slice(b);
    }

    /// Write bytes as they are (no length).
    pub fn write_raw(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }

    /// Write a varuint length and the UTF-8 bytes of `s`.
    pub fn write_var_string(&mut self, s: &str) {
        self.write_var_bytes(s.as_bytes());
    }

    /// The finished frame.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_up_to_53_bits() {
        for v in [0u64, 1, 127, 128, 300, 1 << 31, (1 << 53) - 1] {
            let mut w = Writer::with_capacity(10);
            w.write_var_u64(v);
            let bytes = w.finish();
            let mut r = Reader::new(&bytes);
            assert_eq!(r.read_var_u64().unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn varint_past_53_bits_is_refused() {
        let mut w = Writer::with_capacity(10);
        w.write_var_u64(1 << 53);
        let bytes = w.finish();
        assert_eq!(
            Reader::new(&bytes).read_var_u64(),
            Err(DecodeError::VarintOverflow)
        );
    }
}
