//! The websocket frame decoder: any bytes decode or fail with a [`DecodeError`]
//! (never a panic, never an allocation the frame does not pay for), and what decodes
//! encodes back to the same message.
//!
//! [`DecodeError`]: chorus_protocol::DecodeError

use bytes::Bytes;
use chorus_protocol::{decode_awareness, frame_kind, Message};

/// Awareness entries one frame may carry, as the room bounds it.
const MAX_AWARENESS_ENTRIES: usize = 64;

/// Decode `data` as one frame; a decoded message must survive encode → decode.
pub fn frame_decode(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let _ = frame_kind(data);
    let Ok(message) = Message::decode(&frame) else {
        return;
    };
    let again = Message::decode(&message.encode());
    assert_eq!(again.as_ref(), Ok(&message), "encode → decode changed it");
    if let Message::Awareness(body) = &message {
        if let Ok(entries) = decode_awareness(body, MAX_AWARENESS_ENTRIES) {
            assert!(entries.len() <= MAX_AWARENESS_ENTRIES);
        }
    }
}
