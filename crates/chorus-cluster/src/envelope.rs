//! The bytes of one bus message: who sent it, which incarnation of that node, its
//! place in the sender's sequence for the channel, when it was sent, the payload.
//!
//! ```text
//! version u8 (1) | kind u8 | incarnation u64 | seq u64 | sent_at_micros u64
//! | from_len u8 | from | payload
//! ```
//! Integers are big-endian. `sent_at_micros` is on the sender's monotonic clock:
//! only a node's own heartbeats are timed with it (bus lag), never another's.

use bytes::{BufMut, Bytes, BytesMut};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 1 + 8 + 8 + 8 + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// To one node.
    Direct = 0,
    /// To every node.
    Broadcast = 1,
    /// To every node, no payload: "I am alive".
    Heartbeat = 2,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) kind: Kind,
    pub(crate) incarnation: u64,
    pub(crate) seq: u64,
    pub(crate) sent_at_micros: u64,
    pub(crate) from: &'a str,
    pub(crate) payload: &'a [u8],
}

impl Envelope<'_> {
    pub(crate) fn encode(&self) -> Bytes {
        // Node ids are short; one longer than 255 bytes is cut (ids are validated
        // at start-up, so this never happens in practice).
        let from = &self.from.as_bytes()[..self.from.len().min(255)];
        let mut out = BytesMut::with_capacity(HEADER + from.len() + self.payload.len());
        out.put_u8(VERSION);
        out.put_u8(self.kind as u8);
        out.put_u64(self.incarnation);
        out.put_u64(self.seq);
        out.put_u64(self.sent_at_micros);
        out.put_u8(from.len() as u8);
        out.put_slice(from);
        out.put_slice(self.payload);
        out.freeze()
    }

    /// `None` for anything that is not a version-1 envelope.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Envelope<'_>> {
        if bytes.len() < HEADER || bytes[0] != VERSION {
            return None;
        }
        let kind = match bytes[1] {
            0 => Kind::Direct,
            1 => Kind::Broadcast,
            2 => Kind::Heartbeat,
            _ => return None,
        };
        let u64_at = |i: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let from_len = usize::from(bytes[26]);
        let rest = &bytes[HEADER..];
        if rest.len() < from_len {
            return None;
        }
        let (from, payload) = rest.split_at(from_len);
        Some(Envelope {
            kind,
            incarnation: u64_at(2),
            seq: u64_at(10),
            sent_at_micros: u64_at(18),
            from: std::str::from_utf8(from).ok()?,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_reads_back_as_written() {
        let e = Envelope {
            kind: Kind::Broadcast,
            incarnation: 0x0102_0304_0506_0708,
            seq: 300,
            sent_at_micros: 42,
            from: "node-a",
            payload: b"\x00\x01payload",
        };
        let bytes = e.encode();
        assert_eq!(Envelope::decode(&bytes), Some(e));
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(Envelope::decode(b""), None);
        assert_eq!(Envelope::decode(&[2; 40]), None, "unknown version");
        let mut bytes = Envelope {
            kind: Kind::Direct,
            incarnation: 1,
            seq: 1,
            sent_at_micros: 0,
            from: "n",
            payload: b"",
        }
        .encode()
        .to_vec();
        bytes[1] = 9;
        assert_eq!(Envelope::decode(&bytes), None, "unknown kind");
        bytes[1] = 0;
        bytes[26] = 200;
        assert_eq!(
            Envelope::decode(&bytes),
            None,
            "from longer than the message"
        );
    }
}
