//! The bytes of one bus message: who sent it, which incarnation of that node, its
//! place in the sender's sequence for the channel, when it was sent, the payload,
//! and a MAC over all of it and the channel it was published on.
//!
//! ```text
//! version u8 (2) | kind u8 | incarnation u64 | seq u64 | sent_at_micros u64
//! | from_len u8 | from | payload | mac [32]
//! mac = HMAC-SHA256(cluster key, channel | 0x00 | everything before the mac)
//! ```
//! Integers are big-endian. `sent_at_micros` is on the sender's monotonic clock:
//! only a node's own heartbeats are timed with it (bus lag), never another's.
//!
//! Why the channel is signed too: a message to one node, re-published by someone
//! with Redis access on another node's channel, would otherwise verify there.

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 2;
const HEADER: usize = 1 + 1 + 8 + 8 + 8 + 1;
/// Length of the MAC that ends every envelope.
pub(crate) const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

fn mac_of(key: &[u8], channel: &str, signed: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(channel.as_bytes());
    mac.update(&[0]);
    mac.update(signed);
    mac
}

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
    /// The envelope as published on `channel`, signed with `key`.
    pub(crate) fn encode(&self, channel: &str, key: &[u8]) -> Bytes {
        // Node ids are short; one longer than 255 bytes is cut (ids are validated
        // at start-up, so this never happens in practice).
        let from = &self.from.as_bytes()[..self.from.len().min(255)];
        let mut out = BytesMut::with_capacity(HEADER + from.len() + self.payload.len() + MAC_LEN);
        out.put_u8(VERSION);
        out.put_u8(self.kind as u8);
        out.put_u64(self.incarnation);
        out.put_u64(self.seq);
        out.put_u64(self.sent_at_micros);
        out.put_u8(from.len() as u8);
        out.put_slice(from);
        out.put_slice(self.payload);
        let mac = mac_of(key, channel, &out).finalize().into_bytes();
        out.put_slice(&mac);
        out.freeze()
    }

    /// The envelope `bytes` received on `channel`, if it is a version-2 envelope
    /// whose MAC one of `keys` verifies (in constant time); `None` for anything
    /// else, forged, tampered with or moved to another channel.
    pub(crate) fn open<'a>(
        bytes: &'a [u8],
        channel: &str,
        keys: &[Vec<u8>],
    ) -> Option<Envelope<'a>> {
        let signed_len = bytes.len().checked_sub(MAC_LEN)?;
        let (signed, mac) = bytes.split_at(signed_len);
        if !keys
            .iter()
            .any(|key| mac_of(key, channel, signed).verify_slice(mac).is_ok())
        {
            return None;
        }
        Envelope::decode(signed)
    }

    /// The fields of a version-2 envelope without its MAC (`None` for anything else).
    fn decode(bytes: &[u8]) -> Option<Envelope<'_>> {
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

    const KEY: &[u8] = b"a cluster key of thirty-two bytes!";
    const CHANNEL: &str = "chorus:t:node:b";

    fn sample() -> Envelope<'static> {
        Envelope {
            kind: Kind::Broadcast,
            incarnation: 0x0102_0304_0506_0708,
            seq: 300,
            sent_at_micros: 42,
            from: "node-a",
            payload: b"\x00\x01payload",
        }
    }

    #[test]
    fn an_envelope_reads_back_as_written_under_any_of_the_keys() {
        let bytes = sample().encode(CHANNEL, KEY);
        assert_eq!(
            Envelope::open(&bytes, CHANNEL, &[KEY.to_vec()]),
            Some(sample())
        );
        // Rotation: the key it was signed with is the second one the receiver has.
        let keys = [b"the next key, not yet used to sign".to_vec(), KEY.to_vec()];
        assert_eq!(Envelope::open(&bytes, CHANNEL, &keys), Some(sample()));
    }

    #[test]
    fn a_wrong_key_another_channel_or_any_changed_byte_is_refused() {
        let bytes = sample().encode(CHANNEL, KEY).to_vec();
        let keys = [KEY.to_vec()];
        assert_eq!(
            Envelope::open(&bytes, CHANNEL, &[b"another key".to_vec()]),
            None
        );
        assert_eq!(
            Envelope::open(&bytes, "chorus:t:node:c", &keys),
            None,
            "moved"
        );
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0x01;
            assert_eq!(Envelope::open(&tampered, CHANNEL, &keys), None, "byte {i}");
        }
        assert_eq!(
            Envelope::open(&bytes[..bytes.len() - 1], CHANNEL, &keys),
            None
        );
        assert_eq!(Envelope::open(b"", CHANNEL, &keys), None);
    }

    #[test]
    fn a_signed_envelope_that_is_not_version_2_is_still_refused() {
        assert_eq!(Envelope::decode(&[1; 40]), None, "version 1");
        let mut bytes = sample().encode(CHANNEL, KEY).to_vec();
        bytes.truncate(bytes.len() - MAC_LEN);
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
