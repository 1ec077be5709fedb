//! # chorus-protocol — the websocket wire format, and nothing else
//!
//! Owns the byte layout of every websocket message Chorus speaks: the standard
//! y-protocols framing (sync step 1 / step 2 / update, awareness, auth, query
//! awareness), the Chorus extension messages that only opted-in clients see, and
//! the Hocuspocus provider's framing around them ([`hocuspocus`]).
//! The authoritative, language-neutral description is `proto/PROTOCOL.md`.
//!
//! Decoding is strict: every varint, every length prefix and the end of the frame
//! are checked, and anything that does not parse as exactly one message is a
//! [`DecodeError`] (the server answers it with close code 4400). The CRDT payloads
//! (state vectors, updates) are returned as [`Bytes`] slices of the incoming frame,
//! without copying and without interpreting them: that is the core's job.
//!
//! This crate must not touch IO, yrs, authentication or documents.

mod awareness;
mod chorus;
pub mod hocuspocus;
mod varint;

pub use awareness::{decode_awareness, encode_awareness, AwarenessEntry};
pub use chorus::{ChorusMessage, CHORUS_MESSAGE_TYPE};
pub use varint::{Reader, Writer};

use bytes::Bytes;

/// Outer message type tag: document sync.
pub const MSG_SYNC: u8 = 0;
/// Outer message type tag: awareness update.
pub const MSG_AWARENESS: u8 = 1;
/// Outer message type tag: y-protocols auth (permission denied).
pub const MSG_AUTH: u8 = 2;
/// Outer message type tag: query awareness.
pub const MSG_QUERY_AWARENESS: u8 = 3;

/// Sync sub-type tag: step 1 (state vector).
pub const SYNC_STEP1: u8 = 0;
/// Sync sub-type tag: step 2 (update answering a step 1).
pub const SYNC_STEP2: u8 = 1;
/// Sync sub-type tag: incremental update.
pub const SYNC_UPDATE: u8 = 2;

/// Why a frame could not be decoded. Every variant maps to close code 4400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame held no bytes at all.
    #[error("empty frame")]
    Empty,
    /// A variable-length integer ran past the end of the frame.
    #[error("truncated varint")]
    TruncatedVarint,
    /// A variable-length integer is longer than 53 bits (JavaScript's safe range).
    #[error("varint out of range")]
    VarintOverflow,
    /// A length prefix points past the end of the frame.
    #[error("length prefix exceeds frame")]
    TruncatedPayload,
    /// The outer message type is not one Chorus knows.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// The sync sub-type is not step 1, step 2 or update.
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    /// The Chorus extension message kind is unknown.
    #[error("unknown chorus message kind {0}")]
    UnknownChorusKind(u64),
    /// Bytes left over after one complete message.
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    /// A string field is not valid UTF-8.
    #[error("invalid utf-8 in string field")]
    InvalidUtf8,
}

/// The three y-protocols sync messages. Payloads are raw lib0-v1 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// A state vector: "send me what I am missing".
    Step1(Bytes),
    /// An update answering a step 1.
    Step2(Bytes),
    /// An incremental update.
    Update(Bytes),
}

/// One decoded websocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Document sync.
    Sync(SyncMessage),
    /// Awareness update (raw; see [`decode_awareness`]).
    Awareness(Bytes),
    /// y-protocols auth message: permission denied, with a reason.
    PermissionDenied(String),
    /// Ask the server for every awareness state.
    QueryAwareness,
    /// Chorus extension message.
    Chorus(ChorusMessage),
}

impl Message {
    /// Decode exactly one message from a websocket frame.
    pub fn decode(frame: &Bytes) -> Result<Message, DecodeError> {
        if frame.is_empty() {
            return Err(DecodeError::Empty);
        }
        let mut r = Reader::new(frame);
        let msg = match r.read_var_u64()? {
            t if t == u64::from(MSG_SYNC) => {
                let sub = r.read_var_u64()?;
                let payload = r.read_var_bytes()?;
                match sub {
                    s if s == u64::from(SYNC_STEP1) => Message::Sync(SyncMessage::Step1(payload)),
                    s if s == u64::from(SYNC_STEP2) => Message::Sync(SyncMessage::Step2(payload)),
                    s if s == u64::from(SYNC_UPDATE) => Message::Sync(SyncMessage::Update(payload)),
                    other => return Err(DecodeError::UnknownSyncType(other)),
                }
            }
            t if t == u64::from(MSG_AWARENESS) => Message::Awareness(r.read_var_bytes()?),
            t if t == u64::from(MSG_AUTH) => {
                // y-protocols: varuint 0 = permission denied, then a reason string.
                let kind = r.read_var_u64()?;
                if kind != 0 {
                    return Err(DecodeError::UnknownType(u64::from(MSG_AUTH)));
                }
                Message::PermissionDenied(r.read_var_string()?)
            }
            t if t == u64::from(MSG_QUERY_AWARENESS) => Message::QueryAwareness,
            t if t == u64::from(CHORUS_MESSAGE_TYPE) => {
                Message::Chorus(ChorusMessage::read(&mut r)?)
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        if r.remaining() != 0 {
            return Err(DecodeError::TrailingBytes(r.remaining()));
        }
        Ok(msg)
    }

    /// Encode this message as one websocket frame.
    pub fn encode(&self) -> Bytes {
        match self {
            Message::Sync(SyncMessage::Step1(p)) => encode_sync(SYNC_STEP1, p),
            Message::Sync(SyncMessage::Step2(p)) => encode_sync(SYNC_STEP2, p),
            Message::Sync(SyncMessage::Update(p)) => encode_sync(SYNC_UPDATE, p),
            Message::Awareness(p) => {
                let mut w = Writer::with_capacity(p.len() + 6);
                w.write_u8(MSG_AWARENESS);
                w.write_var_bytes(p);
                w.finish()
            }
            Message::PermissionDenied(reason) => {
                let mut w = Writer::with_capacity(reason.len() + 8);
                w.write_u8(MSG_AUTH);
                w.write_u8(0);
                w.write_var_string(reason);
                w.finish()
            }
            Message::QueryAwareness => Bytes::from_static(&[MSG_QUERY_AWARENESS]),
            Message::Chorus(m) => m.encode(),
        }
    }

    /// A short, stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Sync(SyncMessage::Step1(_)) => "sync_step1",
            Message::Sync(SyncMessage::Step2(_)) => "sync_step2",
            Message::Sync(SyncMessage::Update(_)) => "sync_update",
            Message::Awareness(_) => "awareness",
            Message::PermissionDenied(_) => "auth",
            Message::QueryAwareness => "query_awareness",
            Message::Chorus(_) => "chorus",
        }
    }
}

/// Encode a sync message (`[0][sub][varbytes payload]`) without building a [`Message`].
pub fn encode_sync(sub: u8, payload: &[u8]) -> Bytes {
    let mut w = Writer::with_capacity(payload.len() + 12);
    w.write_u8(MSG_SYNC);
    w.write_u8(sub);
    w.write_var_bytes(payload);
    w.finish()
}

/// Classify an already-encoded outgoing frame for metrics, without decoding it.
pub fn frame_kind(frame: &[u8]) -> &'static str {
    match (frame.first(), frame.get(1)) {
        (Some(&MSG_SYNC), Some(&SYNC_STEP1)) => "sync_step1",
        (Some(&MSG_SYNC), Some(&SYNC_STEP2)) => "sync_step2",
        (Some(&MSG_SYNC), Some(&SYNC_UPDATE)) => "sync_update",
        (Some(&MSG_AWARENESS), _) => "awareness",
        (Some(&MSG_AUTH), _) => "auth",
        (Some(&MSG_QUERY_AWARENESS), _) => "query_awareness",
        (Some(&CHORUS_MESSAGE_TYPE), _) => "chorus",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }

    #[test]
    fn decodes_every_sync_kind() {
        assert_eq!(
            Message::decode(&b(&[0, 0, 1, 0])).unwrap(),
            Message::Sync(SyncMessage::Step1(b(&[0])))
        );
        assert_eq!(
            Message::decode(&b(&[0, 1, 2, 0, 0])).unwrap(),
            Message::Sync(SyncMessage::Step2(b(&[0, 0])))
        );
        assert_eq!(
            Message::decode(&b(&[0, 2, 2, 0, 0])).unwrap(),
            Message::Sync(SyncMessage::Update(b(&[0, 0])))
        );
        assert_eq!(Message::decode(&b(&[3])).unwrap(), Message::QueryAwareness);
    }

    #[test]
    fn round_trips() {
        let msgs = [
            Message::Sync(SyncMessage::Step1(b(&[1, 2, 3]))),
            Message::Sync(SyncMessage::Step2(b(&[0; 300]))),
            Message::Sync(SyncMessage::Update(b(&[9; 20000]))),
            Message::Awareness(b(&[1, 5, 1, 2, b'{', b'}'])),
            Message::PermissionDenied("read-only session".into()),
            Message::QueryAwareness,
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn rejects_malformed_frames() {
        assert_eq!(Message::decode(&b(&[])), Err(DecodeError::Empty));
        assert_eq!(
            Message::decode(&b(&[0x80])),
            Err(DecodeError::TruncatedVarint)
        );
        assert_eq!(Message::decode(&b(&[7])), Err(DecodeError::UnknownType(7)));
        assert_eq!(
            Message::decode(&b(&[0, 5, 0])),
            Err(DecodeError::UnknownSyncType(5))
        );
        assert_eq!(
            Message::decode(&b(&[0, 2, 10, 1, 2])),
            Err(DecodeError::TruncatedPayload)
        );
        assert_eq!(
            Message::decode(&b(&[0, 2])),
            Err(DecodeError::TruncatedVarint)
        );
        assert_eq!(
            Message::decode(&b(&[0, 2, 1, 0, 9])),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            Message::decode(&b(&[
                0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])),
            Err(DecodeError::VarintOverflow)
        );
    }

    #[test]
    fn payloads_are_slices_not_copies() {
        let frame = b(&[0, 2, 3, 7, 8, 9]);
        let Message::Sync(SyncMessage::Update(p)) = Message::decode(&frame).unwrap() else {
            panic!("expected update")
        };
        assert_eq!(&p[..], &[7, 8, 9]);
        assert_eq!(p.as_ptr(), frame[3..].as_ptr());
    }

    #[test]
    fn frame_kind_matches_decode() {
        for m in [
            Message::Sync(SyncMessage::Step1(b(&[0]))),
            Message::Sync(SyncMessage::Update(b(&[0, 0]))),
            Message::Awareness(b(&[0])),
            Message::QueryAwareness,
        ] {
            assert_eq!(frame_kind(&m.encode()), m.kind());
        }
    }
}
