//! A reader of lib0 v1 bytes ([`Cursor`]), the encoding of Yjs updates and state
//! vectors, and why bytes do not read as an update ([`Unreadable`]). The guard's two
//! readers of an update (`blocks.rs`, `profile.rs`) walk the encoding with it
//! instead of decoding it through yrs; what an item means is theirs to say.

use yrs::{ClientID, ID};

/// Deepest nesting of a value read.
const MAX_VALUE_DEPTH: u32 = 64;

/// Why an update cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// A content kind or node kind Yjs 13 cannot decode.
    NotYjs,
    /// A content kind Yjs 13 and yrs read differently (legacy JSON).
    Misread,
    /// Bytes that do not read as a v1 update.
    Malformed,
}

/// A reader of lib0 v1 bytes ([`super::blocks`]' and [`super::profile`]'s).
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf }
    }

    pub(super) fn byte(&mut self) -> Result<u8, Unreadable> {
        let (&b, rest) = self.buf.split_first().ok_or(Unreadable::Malformed)?;
        self.buf = rest;
        Ok(b)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Unreadable> {
        let (head, rest) = self.buf.split_at_checked(n).ok_or(Unreadable::Malformed)?;
        self.buf = rest;
        Ok(head)
    }

    pub(super) fn var(&mut self) -> Result<u64, Unreadable> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Unreadable::Malformed)
    }

    pub(super) fn clock(&mut self) -> Result<u32, Unreadable> {
        u32::try_from(self.var()?).map_err(|_| Unreadable::Malformed)
    }

    pub(super) fn id(&mut self) -> Result<ID, Unreadable> {
        let client = self.var()?;
        let clock = self.clock()?;
        Ok(ID::new(ClientID::new(client), clock))
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], Unreadable> {
        let len = usize::try_from(self.var()?).map_err(|_| Unreadable::Malformed)?;
        self.take(len)
    }

    pub(super) fn string(&mut self) -> Result<&'a str, Unreadable> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Unreadable::Malformed)
    }

    /// Skip one lib0 value.
    pub(super) fn value(&mut self, depth: u32) -> Result<(), Unreadable> {
        if depth > MAX_VALUE_DEPTH {
            return Err(Unreadable::Malformed);
        }
        match self.byte()? {
            127 | 126 | 121 | 120 => {}
            125 => {
                self.var()?;
            }
            124 => {
                self.take(4)?;
            }
            123 | 122 => {
                self.take(8)?;
            }
            119 | 116 => {
                self.bytes()?;
            }
            118 => {
                for _ in 0..self.var()? {
                    self.bytes()?;
                    self.value(depth + 1)?;
                }
            }
            117 => {
                for _ in 0..self.var()? {
                    self.value(depth + 1)?;
                }
            }
            _ => return Err(Unreadable::Malformed),
        }
        Ok(())
    }
}
