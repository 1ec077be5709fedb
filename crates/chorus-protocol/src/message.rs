//! The y-protocols messages ([`Message`], [`SyncMessage`]) and their outer and sync
//! type tags: decoding one websocket frame into exactly one message, encoding it back,
//! and labelling frames for metrics.

use bytes::Bytes;

use crate::chorus::{ChorusMessage, CHORUS_MESSAGE_TYPE};
use crate::error::DecodeError;
use crate::varint::{Reader, Writer};

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
    /// Awareness update (raw; see [`decode_awareness`](crate::decode_awareness)).
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
